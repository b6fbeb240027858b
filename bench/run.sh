#!/usr/bin/env bash
# Side-by-side proxy benchmark on one machine, in one run: wrk against
#   direct  - the upstream itself (nginx serving a small fixed response)
#   warden  - `warden serve` in front of it as a plain proxy, as the issue asks ("no checks"): the
#             checks that are on by default (attack detection, data protection, security headers,
#             error scrubbing) and the audit trail turned off, every gateway limit on (the other
#             bench/*.sh scripts measure what each of those costs, against this same plain proxy)
#   nginx   - nginx as an equivalent keep-alive reverse proxy in front of the same upstream
# Prints a Markdown table with requests/s, p50 and p99, the CPU time each proxy spent per request
# (from /proc: robust on a shared machine, where req/s depends on what else runs), and the ratios
# Warden/nginx and Warden/direct.
#
# Usage: bench/run.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]   (defaults: 10 50 3)
# Needs: wrk and nginx (Debian: apt-get install wrk nginx-light). Everything listens on 127.0.0.1.
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "${1:-10}" "${@:2}"
need wrk nginx
build_warden
UP=$(free_port); NGX=$(free_port); WD=$(free_port); ADM=$(free_port)

# Two nginx instances, so that the proxy's CPU time can be told apart from the upstream's.
cat >"$work/upstream.conf" <<NGINX
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP;
    location / { default_type application/json; return 200 '{"ok":true,"service":"bench-upstream"}'; }
  }
}
NGINX
cat >"$work/proxy.conf" <<NGINX
worker_processes 2;
pid $work/proxy.pid;
error_log $work/proxy-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
NGINX
start_bg nginx -c "$work/upstream.conf" -p "$work" -g 'daemon off;'
start_bg nginx -c "$work/proxy.conf" -p "$work" -g 'daemon off;'
NGINX_PROXY=${pids[-1]}
# Plain proxy: access log off and nothing recorded, as for nginx; every gateway limit stays on.
cat >"$work/warden.yaml" <<YAML
listeners: [{address: "127.0.0.1:$WD", plain_http: true}]
admin: {address: "127.0.0.1:$ADM"}
attack_detection: {mode: off}
audit: {enabled: false}
data_protection: {enabled: false}
security_headers: {enabled: false}
error_scrubbing: {mode: off}
upstreams: {bench: {targets: ["http://127.0.0.1:$UP"]}}
routes: [{path_prefix: /, upstream: bench}]
YAML
start_bg "$WARDEN" --data-dir "$work/data" --log-level warn serve --config "$work/warden.yaml"
WARDEN_PID=${pids[-1]}
for port in "$UP" "$NGX" "$WD"; do wait_http "$port"; done

declare -A RPS P50 P99 CPU
for name in direct warden nginx; do RPS[$name]=""; P50[$name]=""; P99[$name]=""; CPU[$name]=""; done
NGINX_WORKERS=$(pgrep -P "$NGINX_PROXY" | tr '\n' ' ')
# Interleave the targets round by round so drift in machine load hits all three alike.
for r in $(seq "$ROUNDS"); do
  for name in direct warden nginx; do
    case $name in
      direct) port=$UP; procs="" ;;
      warden) port=$WD; procs=$WARDEN_PID ;;
      nginx) port=$NGX; procs=$NGINX_WORKERS ;;
    esac
    # shellcheck disable=SC2086
    read -r rps p50 p99 errs cpu _ < <(measure "$port" / $procs)
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; P50[$name]+="$p50 "; P99[$name]+="$p99 "; CPU[$name]+="$cpu "
    echo "round $r $name: $rps req/s, p50 ${p50}ms, p99 ${p99}ms, proxy cpu ${cpu}us/request" >&2
  done
done

python3 - "${RPS[direct]}" "${RPS[warden]}" "${RPS[nginx]}" "${P50[direct]}" "${P50[warden]}" "${P50[nginx]}" "${P99[direct]}" "${P99[warden]}" "${P99[nginx]}" "$DUR" "$CONNS" "$ROUNDS" "${CPU[warden]}" "${CPU[nginx]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
med = lambda s: st.median(float(x) for x in s.split())
names = ["direct", "warden", "nginx"]
rps = dict(zip(names, map(med, a[0:3]))); p50 = dict(zip(names, map(med, a[3:6]))); p99 = dict(zip(names, map(med, a[6:9])))
cpu = {"direct": None, "warden": med(a[12]), "nginx": med(a[13])}
print(f"wrk -t1 -c{a[10]} -d{a[9]}s, {a[11]} interleaved rounds, medians; 2-core machine shared by wrk, proxy and upstream\n")
print("| target | requests/s | p50 ms | p99 ms | proxy CPU µs/request |")
print("| --- | ---: | ---: | ---: | ---: |")
for n in names:
    c = "-" if cpu[n] is None else f"{cpu[n]:.2f}"
    print(f"| {n} | {rps[n]:.0f} | {p50[n]:.3f} | {p99[n]:.3f} | {c} |")
print()
print("| ratio | throughput | p50 | p99 | CPU per request |")
print("| --- | ---: | ---: | ---: | ---: |")
print(f"| Warden / nginx | {rps['warden']/rps['nginx']:.2f} | {p50['warden']/p50['nginx']:.2f} | {p99['warden']/p99['nginx']:.2f} | {cpu['warden']/cpu['nginx']:.2f} |")
print(f"| Warden / direct | {rps['warden']/rps['direct']:.2f} | {p50['warden']/p50['direct']:.2f} | {p99['warden']/p99['direct']:.2f} | - |")
# Each round's Warden and nginx runs are seconds apart: their ratio cancels most of the machine's
# drift, which the medians above (taken across rounds) do not.
pairs = lambda i, j: [float(w) / float(n) for w, n in zip(a[i].split(), a[j].split())]
for label, i, j in [("throughput", 1, 2), ("p99", 7, 8), ("CPU per request", 12, 13)]:
    r = pairs(i, j)
    print(f"\nWarden / nginx {label}, round by round: {' '.join(f'{x:.2f}' for x in r)}; median **{st.median(r):.2f}**", end="")
print()
PY
