#!/usr/bin/env bash
# User-space instructions per proxied request, Warden vs nginx, counted by callgrind: unlike
# requests/s, the count does not move with the load on a shared machine, so it shows small changes
# that wrk's noise hides. It leaves out the kernel (about two thirds of a proxied request's CPU time,
# the same for both: see bench/README.md) and cache effects between cores.
#
# Usage: bench/instructions.sh [REQUESTS=3000]
# Needs: valgrind, nginx, python3. Both proxies run one worker; requests go over 4 keep-alive
# connections, one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3000}
for tool in valgrind nginx python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release -p warden >/dev/null
WARDEN=$PWD/target/release/warden
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); WD=$(free_port); ADM=$(free_port)

cat >"$work/upstream.conf" <<NGINX
worker_processes 1; pid $work/upstream.pid; error_log $work/upstream-error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '{"ok":true,"service":"bench-upstream"}'; } } }
NGINX
cat >"$work/proxy.conf" <<NGINX
master_process off; daemon off; worker_processes 1; pid $work/proxy.pid; error_log $work/proxy-error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Request-Id \$request_id; } } }
NGINX
cat >"$work/client.py" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
for i in range(n):
    c = conns[i % 4]
    c.request("GET", "/", headers={"User-Agent": "bench", "Accept": "*/*"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
nginx -c "$work/upstream.conf" -p "$work" -g 'daemon off;' &
pids+=($!)

# count NAME PORT COMMAND...: start COMMAND under callgrind with instrumentation off, switch it on,
# send N requests, switch it off, and print instructions per request.
count() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.cg" "$@" 2>"$work/$name.vg" &
  local pid=$!
  pids+=($pid)
  sleep 2
  callgrind_control -i on "$pid" >/dev/null
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.3; done
  python3 "$work/client.py" "$port" "$N"
  callgrind_control -i off "$pid" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local total
  total=$(callgrind_annotate "$work/$name.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  echo $((total / N))
}
W=$(count warden "$WD" "$WARDEN" --data-dir "$work/data" --log-level warn serve --workers 1 \
  --listen "127.0.0.1:$WD" --upstream "http://127.0.0.1:$UP" --admin "127.0.0.1:$ADM")
X=$(count nginx "$NGX" nginx -c "$work/proxy.conf" -p "$work")
echo "| proxy | instructions/request |"
echo "| --- | ---: |"
echo "| warden | $W |"
echo "| nginx | $X |"
python3 -c "print(f'| Warden / nginx | {$W/$X:.2f} |')"
