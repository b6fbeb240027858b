#!/usr/bin/env bash
# Side-by-side proxy benchmark on one machine, in one run: wrk against
#   direct  - the upstream itself (nginx serving a small fixed response)
#   warden  - `warden serve` quick mode in front of it (plain proxy: no checks configured)
#   nginx   - nginx as an equivalent keep-alive reverse proxy in front of the same upstream
# Prints a Markdown table with requests/s, p50 and p99, and the ratios Warden/nginx and Warden/direct.
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

cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  # The upstream: one worker, a small fixed JSON answer.
  server {
    listen 127.0.0.1:$UP;
    location / { default_type application/json; return 200 '{"ok":true,"service":"bench-upstream"}'; }
  }
  # nginx as the reverse proxy under test.
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
nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' &
pids+=($!)
# Plain proxy: access log off, as for nginx; every gateway protection with no per-API config stays on.
WARDEN_DATA_DIR="$work/data" "$WARDEN" --log-level warn serve --listen "127.0.0.1:$WD" --upstream "http://127.0.0.1:$UP" --admin "127.0.0.1:$ADM" &
pids+=($!)
for port in "$UP" "$NGX" "$WD"; do
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
done

# wrk's --latency output: "Requests/sec: N" and " 50%  1.23ms" lines; latencies normalized to ms.
measure() {
  local out; out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$1/")
  python3 - "$out" <<'PY'
import re, sys
o = sys.argv[1]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))
def ms(p):
    v, u = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", o).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f} {errs.group(1) if errs else 0}")
PY
}

declare -A RPS P50 P99
for name in direct warden nginx; do RPS[$name]=""; P50[$name]=""; P99[$name]=""; done
# Interleave the targets round by round so drift in machine load hits all three alike.
for r in $(seq "$ROUNDS"); do
  for name in direct warden nginx; do
    case $name in direct) port=$UP ;; warden) port=$WD ;; nginx) port=$NGX ;; esac
    read -r rps p50 p99 errs < <(measure "$port")
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; P50[$name]+="$p50 "; P99[$name]+="$p99 "
    echo "round $r $name: $rps req/s, p50 ${p50}ms, p99 ${p99}ms" >&2
  done
done

python3 - "${RPS[direct]}" "${RPS[warden]}" "${RPS[nginx]}" "${P50[direct]}" "${P50[warden]}" "${P50[nginx]}" "${P99[direct]}" "${P99[warden]}" "${P99[nginx]}" "$DUR" "$CONNS" "$ROUNDS" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
med = lambda s: st.median(float(x) for x in s.split())
names = ["direct", "warden", "nginx"]
rps = dict(zip(names, map(med, a[0:3]))); p50 = dict(zip(names, map(med, a[3:6]))); p99 = dict(zip(names, map(med, a[6:9])))
print(f"wrk -t1 -c{a[10]} -d{a[9]}s, {a[11]} interleaved rounds, medians; 2-core machine shared by wrk, proxy and upstream\n")
print("| target | requests/s | p50 ms | p99 ms |")
print("| --- | ---: | ---: | ---: |")
for n in names:
    print(f"| {n} | {rps[n]:.0f} | {p50[n]:.3f} | {p99[n]:.3f} |")
print()
print(f"| ratio | throughput | p50 | p99 |")
print("| --- | ---: | ---: | ---: |")
print(f"| Warden / nginx | {rps['warden']/rps['nginx']:.2f} | {p50['warden']/p50['nginx']:.2f} | {p99['warden']/p99['nginx']:.2f} |")
print(f"| Warden / direct | {rps['warden']/rps['direct']:.2f} | {p50['warden']/p50['direct']:.2f} | {p99['warden']/p99['direct']:.2f} |")
PY
