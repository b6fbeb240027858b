#!/usr/bin/env bash
# What enforcing an OpenAPI contract costs in the proxy, side by side in one run: wrk POSTing a
# ~1 KB JSON order (bench/corpus/order.json) to
#   direct    - an nginx answering every request with a ~2 KB JSON order (bench/corpus/order-response.json)
#   plain     - Warden in front of it, no contract (everything else at its defaults)
#   contract  - Warden enforcing bench/corpus/order-spec.yaml on the route: the operation looked
#               up, the body validated against its schema (strictly: undeclared and readOnly
#               properties refused), and the response filtered (that answer carries undeclared
#               fields, so it is re-serialised on every call: the worst case)
#   plain-clean, contract-clean - the same against an nginx whose answer declares nothing extra
#               (bench/corpus/order-response-clean.json): read and checked, passed unchanged
# Prints requests/s, Warden CPU per request, and the ratios contract / plain.
#
# Usage: bench/contract.sh [DURATION_SECONDS=8] [CONNECTIONS=50] [ROUNDS=3]
# Needs: wrk, nginx, python3.
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "$@"
need wrk nginx python3
build_warden
UP=$(free_port); P1=$(free_port); P2=$(free_port); A1=$(free_port); A2=$(free_port)
UP2=$(free_port); P3=$(free_port); P4=$(free_port); A3=$(free_port); A4=$(free_port)
# nginx's static module refuses POST, so the answer is inlined (double quotes escaped).
nginx_serve "$UP" "return 200 \"$(sed 's/"/\\"/g' bench/corpus/order-response.json)\";"
nginx_serve "$UP2" "return 200 \"$(sed 's/"/\\"/g' bench/corpus/order-response-clean.json)\";"
cp bench/corpus/order.json bench/corpus/order-spec.yaml "$work/"
cat >"$work/post.lua" <<LUA
local f = io.open("$work/order.json"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
LUA
route() { echo "routes: [{path_prefix: /, upstream: bench, auth: none$1}]"; }
warden_config "$P1" "$A1" "$UP" | grep -v '^routes:' >"$work/plain.yaml"; route "" >>"$work/plain.yaml"
warden_config "$P2" "$A2" "$UP" | grep -v '^routes:' >"$work/contract.yaml"
route ", openapi: {spec: order-spec.yaml}" >>"$work/contract.yaml"
warden_config "$P3" "$A3" "$UP2" | grep -v '^routes:' >"$work/plain-clean.yaml"; route "" >>"$work/plain-clean.yaml"
warden_config "$P4" "$A4" "$UP2" | grep -v '^routes:' >"$work/contract-clean.yaml"
route ", openapi: {spec: order-spec.yaml}" >>"$work/contract-clean.yaml"
start_bg "$WARDEN" --data-dir "$work/d1" --log-level warn serve --config "$work/plain.yaml"
declare -A PORT PID
PORT[plain]=$P1; PID[plain]=${pids[-1]}
start_bg "$WARDEN" --data-dir "$work/d2" --log-level warn serve --config "$work/contract.yaml"
PORT[contract]=$P2; PID[contract]=${pids[-1]}
start_bg "$WARDEN" --data-dir "$work/d3" --log-level warn serve --config "$work/plain-clean.yaml"
PORT[plain-clean]=$P3; PID[plain-clean]=${pids[-1]}
start_bg "$WARDEN" --data-dir "$work/d4" --log-level warn serve --config "$work/contract-clean.yaml"
PORT[contract-clean]=$P4; PID[contract-clean]=${pids[-1]}
wait_http "$UP"; wait_http "$UP2"; wait_http "$P1"; wait_http "$P3"
for port in "$P2" "$P4"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
# The contract is really enforced: the order passes and loses its undeclared fields, a mass
# assignment and an undeclared operation are refused.
out=$(curl -s -H 'Content-Type: application/json' --data-binary @"$work/order.json" "http://127.0.0.1:$P2/v1/orders")
case $out in *internal*|*warehouse_bin*|"") echo "the response was not filtered: $out" >&2; exit 1 ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d '{"customer":{"name":"a","email":"a@b.co"},"shipping":{"street":"s","city":"c","country":"US"},"items":[{"sku":"SKU-0815","qty":1}],"admin":true}' "http://127.0.0.1:$P2/v1/orders")
[ "$code" = 400 ] || { echo "mass assignment not refused ($code)" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/v1/admin")
[ "$code" = 404 ] || { echo "undeclared operation not refused ($code)" >&2; exit 1; }

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for name in direct plain contract plain-clean contract-clean; do
    if [ "$name" = direct ]; then port=$UP; procs=""; else port=${PORT[$name]}; procs=${PID[$name]}; fi
    # shellcheck disable=SC2086
    read -r rps _ _ errs cpu _ < <(WRK_ARGS="-s $work/post.lua" measure "$port" /v1/orders $procs)
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; CPU[$name]+="$cpu "
    echo "round $r $name: $rps req/s, warden cpu ${cpu}us/request" >&2
  done
done
python3 - "$DUR" "$CONNS" "$ROUNDS" "$(wc -c <"$work/order.json")" "$(wc -c <bench/corpus/order-response.json)" \
  "${RPS[direct]}" "${CPU[direct]}" "${RPS[plain]}" "${CPU[plain]}" "${RPS[contract]}" "${CPU[contract]}" \
  "${RPS[plain-clean]}" "${CPU[plain-clean]}" "${RPS[contract-clean]}" "${CPU[contract-clean]}" <<'PY'
import statistics as st, sys
dur, conns, rounds, req, resp = sys.argv[1:6]
med = lambda s: st.median(float(x) for x in s.split())
v = sys.argv[6:]
names = ["direct", "plain", "contract", "plain-clean", "contract-clean"]
res = {n: (med(v[2*i]), med(v[2*i+1])) for i, n in enumerate(names)}
print(f"wrk -t1 -c{conns} -d{dur}s, {rounds} interleaved rounds, medians; POST {req} bytes of JSON, answer {resp} bytes\n")
print("| target | requests/s | Warden CPU µs/request |")
print("| --- | ---: | ---: |")
for n in names:
    rps, cpu = res[n]
    print(f"| {n} | {rps:.0f} | {'-' if n == 'direct' else f'{cpu:.2f}'} |")
print()
for c, p, what in [("contract", "plain", "answer with undeclared fields (filtered, re-serialised)"),
                   ("contract-clean", "plain-clean", "answer as declared (checked, passed unchanged)")]:
    c, p = res[c], res[p]
    print(f"{what}: contract / plain: throughput {c[0]/p[0]:.2f}, CPU per request {c[1]/p[1]:.2f} (+{c[1]-p[1]:.1f} µs per request)")
PY
