#!/usr/bin/env bash
# What attack detection costs in the proxy, side by side in one run: wrk against
#   direct    - an nginx answering {"ok":true} to anything
#   off       - Warden in front of it, attack_detection.mode: off (everything else at its defaults)
#   on        - Warden with the defaults: attack detection on, blocking, paranoia 1
# for two requests: a GET with a query string and ordinary headers, and a POST of a ~1 KB JSON
# order (names, an address, notes in prose, an apostrophe). Neither is an attack: this measures
# the price every legitimate request pays. Prints requests/s, Warden CPU per request, ratios.
#
# Usage: bench/detection.sh [DURATION_SECONDS=8] [CONNECTIONS=50] [ROUNDS=3]
# Needs: wrk, nginx, python3. The detection and false-alarm rates: bench/detection.
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "$@"
need wrk nginx python3
build_warden
UP=$(free_port); P1=$(free_port); P2=$(free_port); A1=$(free_port); A2=$(free_port)
nginx_ok "$UP"

cp bench/corpus/order.json "$work/order.json"   # the same order bench/detection costs in-process
cat >"$work/post.lua" <<LUA
local f = io.open("$work/order.json"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "shop-ios/5.2.1 (iPhone; iOS 18.1)"
LUA
cat >"$work/get.lua" <<LUA
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
wrk.headers["Referer"] = "https://shop.example.com/orders?page=2"
wrk.headers["Cookie"] = "session=6f1c2d9e8a7b; theme=dark; consent=analytics%2Cads"
LUA
GETPATH='/v1/orders?status=shipped&sort=-created_at&q=O%27Brien%20blue%20shirt&page=2'
warden_config "$P1" "$A1" "$UP" "attack_detection: {mode: off}" >"$work/off.yaml"
warden_config "$P2" "$A2" "$UP" "" >"$work/on.yaml"
start_bg "$WARDEN" --data-dir "$work/d1" --log-level warn serve --config "$work/off.yaml"
OFF=${pids[-1]}
start_bg "$WARDEN" --data-dir "$work/d2" --log-level warn serve --config "$work/on.yaml"
ON=${pids[-1]}
for port in "$UP" "$P1" "$P2"; do wait_http "$port"; done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P2/x?q=1%27%20OR%20%271%27%3D%271")
[ "$code" = 403 ] || { echo "Warden with detection on did not refuse an injection ($code)" >&2; exit 1; }
for port in "$P1" "$P2"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$work/order.json" "http://127.0.0.1:$port/v1/orders")
  [ "$code" = 200 ] || { echo "the benchmark's order was refused ($code)" >&2; exit 1; }
done

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for req in get post; do
    for name in direct off on; do
      case $name in
        direct) port=$UP; procs="" ;;
        off) port=$P1; procs=$OFF ;;
        on) port=$P2; procs=$ON ;;
      esac
      path=$GETPATH; [ "$req" = post ] && path=/v1/orders
      # shellcheck disable=SC2086
      read -r rps _ _ errs cpu _ < <(WRK_ARGS="-s $work/$req.lua" measure "$port" "$path" $procs)
      [ "$errs" = 0 ] || { echo "$name $req: $errs non-2xx responses" >&2; exit 1; }
      RPS[$name-$req]+="$rps "; CPU[$name-$req]+="$cpu "
      echo "round $r $req $name: $rps req/s, warden cpu ${cpu}us/request" >&2
    done
  done
done
args=()
for req in get post; do for name in direct off on; do args+=("${RPS[$name-$req]}" "${CPU[$name-$req]}"); done; done
python3 - "$(wc -c <"$work/order.json")" "$DUR" "$CONNS" "$ROUNDS" "${args[@]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
size, dur, conns, rounds = a[:4]
med = lambda s: st.median(float(x) for x in s.split())
vals = iter(a[4:])
res = {}
for req in ["get", "post"]:
    for name in ["direct", "off", "on"]:
        res[(name, req)] = (med(next(vals)), med(next(vals)))
print(f"wrk -t1 -c{conns} -d{dur}s, {rounds} interleaved rounds, medians; POST body {size} bytes of JSON\n")
print("| request | target | requests/s | Warden CPU µs/request |")
print("| --- | --- | ---: | ---: |")
for req in ["get", "post"]:
    for name in ["direct", "off", "on"]:
        rps, cpu = res[(name, req)]
        print(f"| {req.upper()} | {name} | {rps:.0f} | {'-' if name == 'direct' else f'{cpu:.2f}'} |")
print()
for req in ["get", "post"]:
    on, off = res[("on", req)], res[("off", req)]
    print(f"{req.upper()}: detection on / off: throughput {on[0]/off[0]:.2f}, CPU per request {on[1]/off[1]:.2f} "
          f"(+{on[1]-off[1]:.1f} µs per request)")
PY
