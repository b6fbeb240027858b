#!/usr/bin/env bash
# User-space instructions per proxied request, Warden vs nginx, counted by callgrind: unlike
# requests/s, the count does not move with the load on a shared machine, so it shows small changes
# that wrk's noise hides. It leaves out the kernel (about two thirds of a proxied request's CPU time,
# the same for both: see bench/README.md) and cache effects between cores.
#
# Usage: bench/instructions.sh [REQUESTS=3000] [proxy|contract|detection]
#   proxy (default): GET / through Warden (the plain proxy of bench/run.sh) and through nginx.
#   contract: POST bench/corpus/order.json through Warden without and with the OpenAPI contract
#             (bench/corpus/order-spec.yaml) to an nginx answering the declared 1.9 KB order,
#             everything else at its defaults in both (as bench/contract.sh); LEAKY=1:
#             the 2 KB answer with undeclared fields instead.
#   detection: POST bench/corpus/order.json through Warden with attack detection off and on, to
#             an nginx answering a small JSON body, the audit trail off and everything else at
#             its defaults in both.
# KEEP_PROFILES=DIR keeps the callgrind profiles there (callgrind_annotate DIR/warden.cg); WARDEN=PATH
# measures that binary instead of building one (e.g. one built with line tables for annotation).
# Needs: valgrind, nginx, python3. The proxies run one worker; requests go over 4 keep-alive
# connections, one at a time, after 200 unmeasured ones (pools, caches and lazy state warm).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3000}
MODE=${2:-proxy}
# contract mode's answer: as declared, or LEAKY=1 for the one with undeclared fields to remove.
REPLY_FILE=bench/corpus/order-response-clean.json
[ -n "${LEAKY:-}" ] && REPLY_FILE=bench/corpus/order-response.json
case $MODE in proxy|contract|detection) ;; *) echo "mode is proxy, contract or detection, not $MODE" >&2; exit 2 ;; esac
for tool in valgrind nginx python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
if [ -z "${WARDEN:-}" ]; then
  cargo build --release -p warden >/dev/null
  WARDEN=$PWD/target/release/warden
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); WD=$(free_port); ADM=$(free_port); WD2=$(free_port); ADM2=$(free_port)
if [ "$MODE" = contract ]; then
  # nginx refuses POST to static files, so the answer is inlined (double quotes escaped).
  ANSWER="return 200 \"$(sed 's/"/\\"/g' "$REPLY_FILE")\";"
  BODY=$PWD/bench/corpus/order.json
  for name in plain contract; do
    port=$WD admin=$ADM extra=""
    if [ "$name" = contract ]; then port=$WD2 admin=$ADM2 extra=", openapi: {spec: $PWD/bench/corpus/order-spec.yaml}"; fi
    cat >"$work/$name.yaml" <<YAML
listeners: [{address: "127.0.0.1:$port", plain_http: true}]
admin: {address: "127.0.0.1:$admin"}
upstreams: {bench: {targets: ["http://127.0.0.1:$UP"]}}
routes: [{path_prefix: /, upstream: bench, auth: none$extra}]
YAML
  done
elif [ "$MODE" = detection ]; then
  ANSWER="return 200 '{\"ok\":true,\"service\":\"bench-upstream\"}';"
  BODY=$PWD/bench/corpus/order.json
  for name in plain contract; do
    # The audit trail off in both: its batched writes land in some measured windows and not
    # in others, which moves the count by more than the changes this mode is meant to show.
    port=$WD admin=$ADM extra=$'audit: {enabled: false}\nattack_detection: {mode: off}'
    if [ "$name" = contract ]; then port=$WD2 admin=$ADM2 extra="audit: {enabled: false}"; fi
    cat >"$work/$name.yaml" <<YAML
listeners: [{address: "127.0.0.1:$port", plain_http: true}]
admin: {address: "127.0.0.1:$admin"}
upstreams: {bench: {targets: ["http://127.0.0.1:$UP"]}}
routes: [{path_prefix: /, upstream: bench, auth: none}]
$extra
YAML
  done
else
  ANSWER="return 200 '{\"ok\":true,\"service\":\"bench-upstream\"}';"
  BODY=""
fi

cat >"$work/upstream.conf" <<NGINX
worker_processes 1; pid $work/upstream.pid; error_log $work/upstream-error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; $ANSWER } } }
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
port, n, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
data = open(body, "rb").read() if body else None
conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
headers = {"User-Agent": "bench", "Accept": "*/*"}
if data:
    headers["Content-Type"] = "application/json"
# A keep-alive connection the proxy closed while idle (instrumentation switching on can take a
# while) is opened again and the request sent again: a broken pipe once cut runs short, which
# counted a fraction of the requests and read as a far cheaper proxy.
reopened = 0
for i in range(n):
    for attempt in range(3):
        c = conns[i % 4]
        try:
            if data:
                c.request("POST", "/v1/orders", body=data, headers=headers)
            else:
                c.request("GET", "/", headers=headers)
            r = c.getresponse(); r.read()
            break
        except (ConnectionError, http.client.HTTPException):
            c.close()
            conns[i % 4] = http.client.HTTPConnection("127.0.0.1", port)
            reopened += 1
    else:
        sys.exit(f"request {i} failed three times")
    assert r.status == 200, r.status
if reopened:
    print(f"{reopened} connections opened again", file=sys.stderr)
PY
nginx -c "$work/upstream.conf" -p "$work" -g 'daemon off;' &
pids+=($!)

# count NAME PORT COMMAND...: start COMMAND under callgrind with instrumentation off, switch it on,
# send N requests, switch it off, and print instructions per request.
count() {
  local name=$1 port=$2; shift 2
  local attempt total=0
  # callgrind takes the on/off commands when the process next runs; a toggle that arrives late
  # leaves most requests uncounted. No proxied request costs under 10k instructions, so a count
  # below that is a missed toggle: measure again (at most three times).
  for attempt in 1 2 3; do
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.cg" "$@" 2>"$work/$name.vg" &
    local pid=$!
    pids+=($pid)
    sleep 2
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.3; done
    python3 "$work/client.py" "$port" 200 "$BODY"
    callgrind_control -i on "$pid" >/dev/null
    python3 "$work/client.py" "$port" "$N" "$BODY"
    callgrind_control -i off "$pid" >/dev/null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    total=$(callgrind_annotate "$work/$name.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    [ $((total / N)) -ge 10000 ] && break
    echo "$name: $((total / N)) instructions a request is a missed toggle; measuring again ($attempt)" >&2
  done
  [ -n "${KEEP_PROFILES:-}" ] && mkdir -p "$KEEP_PROFILES" && cp "$work/$name.cg" "$KEEP_PROFILES/"
  echo $((total / N))
}
if [ "$MODE" != proxy ]; then
  # In detection mode, "plain" has detection off and "contract" names the defaults (on).
  P=$(count plain "$WD" "$WARDEN" --data-dir "$work/data1" --log-level warn serve --workers 1 --config "$work/plain.yaml")
  C=$(count contract "$WD2" "$WARDEN" --data-dir "$work/data2" --log-level warn serve --workers 1 --config "$work/contract.yaml")
  if [ "$MODE" = detection ]; then
    echo "| warden, POST $(wc -c <"$BODY") bytes | instructions/request |"
    echo "| --- | ---: |"
    echo "| detection off | $P |"
    echo "| detection on | $C |"
    python3 -c "print(f'| **on / off** | **{$C/$P:.2f}** (+{$C-$P}) |')"
    exit 0
  fi
  echo "| warden, POST $(wc -c <"$BODY") bytes, answer $(wc -c <"$REPLY_FILE") bytes | instructions/request |"
  echo "| --- | ---: |"
  echo "| plain | $P |"
  echo "| contract | $C |"
  python3 -c "print(f'| **contract / plain** | **{$C/$P:.2f}** (+{$C-$P}) |')"
  exit 0
fi
# The plain proxy of bench/run.sh: the checks on by default and the audit trail off, as nginx has none.
cat >"$work/plain.yaml" <<YAML
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
W=$(count warden "$WD" "$WARDEN" --data-dir "$work/data" --log-level warn serve --workers 1 --config "$work/plain.yaml")
X=$(count nginx "$NGX" nginx -c "$work/proxy.conf" -p "$work")
echo "| proxy | instructions/request |"
echo "| --- | ---: |"
echo "| warden | $W |"
echo "| nginx | $X |"
python3 -c "print(f'| Warden / nginx | {$W/$X:.2f} |')"
