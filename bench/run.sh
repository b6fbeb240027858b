#!/usr/bin/env bash
# Side-by-side proxy benchmark on one machine, in one run: wrk against
#   direct  - the upstream itself (nginx serving a small fixed response)
#   warden  - `warden serve` quick mode in front of it (plain proxy: no checks configured)
#   nginx   - nginx as an equivalent keep-alive reverse proxy in front of the same upstream
# Prints a Markdown table with requests/s, p50 and p99, the CPU time each proxy spent per request
# (from /proc: robust on a shared machine, where req/s depends on what else runs), and the ratios
# Warden/nginx and Warden/direct.
#
# Usage: bench/run.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]   (defaults: 10 50 3)
# Needs: wrk and nginx (Debian: apt-get install wrk nginx-light). Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
CONNS=${2:-50}
ROUNDS=${3:-3}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install wrk nginx-light" >&2; exit 1; }
done
cargo build --release -p warden >/dev/null
WARDEN=target/release/warden

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
nginx -c "$work/upstream.conf" -p "$work" -g 'daemon off;' &
pids+=($!)
nginx -c "$work/proxy.conf" -p "$work" -g 'daemon off;' &
NGINX_PROXY=$!
pids+=($NGINX_PROXY)
# Plain proxy: access log off, as for nginx; every gateway protection with no per-API config stays on.
WARDEN_DATA_DIR="$work/data" "$WARDEN" --log-level warn serve --listen "127.0.0.1:$WD" --upstream "http://127.0.0.1:$UP" --admin "127.0.0.1:$ADM" &
WARDEN_PID=$!
pids+=($WARDEN_PID)
for port in "$UP" "$NGX" "$WD"; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
done

# CPU time (user+system, in clock ticks) used so far by the given processes and their children's threads.
cpu_ticks() {
  local total=0 p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*/stat; do
      total=$((total + $(sed 's/.*) //' "$t" | awk '{print $12 + $13}')))
    done
  done
  echo "$total"
}

# wrk's --latency output: "Requests/sec: N" and " 50%  1.23ms" lines; latencies normalized to ms.
# Prints: req/s p50 p99 non2xx cpu_us_per_request (cpu of the measured proxy; 0 for direct).
measure() {
  local port=$1; shift
  local before after out
  before=$(cpu_ticks "$@")
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/")
  after=$(cpu_ticks "$@")
  python3 - "$out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
o, before, after, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))
reqs = int(re.search(r"(\d+) requests in", o).group(1))
def ms(p):
    v, u = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", o).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
cpu_us = (after - before) / hz * 1e6 / reqs
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f} {errs.group(1) if errs else 0} {cpu_us:.2f}")
PY
}

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
    read -r rps p50 p99 errs cpu < <(measure "$port" $procs)
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
PY
