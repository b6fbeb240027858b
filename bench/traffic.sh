#!/usr/bin/env bash
# What rate limiting costs in the proxy, side by side in one run: wrk against
#   direct  - an nginx answering {"ok":true}
#   off     - Warden in front of it, no limits (the defaults otherwise)
#   local   - Warden with a per-IP rate and a per-IP daily quota counted in process
#   redis   - the same two limits counted in Redis (a private redis-server this script starts)
# The limits are set high enough never to refuse: this is the price every allowed call pays.
# Prints requests/s, Warden CPU per request and the ratios.
#
# Usage: bench/traffic.sh [DURATION_SECONDS=8] [CONNECTIONS=50] [ROUNDS=3]
# Needs: wrk, nginx, redis-server, python3. Per-decision costs: cargo bench -p warden-gateway --bench traffic.
cd "$(dirname "$0")/.."
DUR=${1:-8}
CONNS=${2:-50}
ROUNDS=${3:-3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need wrk nginx redis-server python3
cargo build --release -p warden >/dev/null
WARDEN=target/release/warden
UP=$(free_port); RP=$(free_port)
nginx_ok "$UP"
start_bg redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning

LIMITS='  limits:
    - {name: per-ip, key: [ip], rate: 1000000/s}
    - {name: daily, key: [ip], quota: 4000000000/day}'
declare -A PORT PID
for name in off local redis; do
  PORT[$name]=$(free_port); admin=$(free_port)
  case $name in
    off) extra="" ;;
    local) extra="traffic:
$LIMITS" ;;
    redis) extra="traffic:
  redis: {url: \"redis://127.0.0.1:$RP\"}
$LIMITS" ;;
  esac
  warden_config "${PORT[$name]}" "$admin" "$UP" "$extra" >"$work/$name.yaml"
  start_bg "$WARDEN" --data-dir "$work/d-$name" --log-level warn serve --config "$work/$name.yaml"
  PID[$name]=${pids[-1]}
done
for port in "$UP" "${PORT[off]}" "${PORT[local]}" "${PORT[redis]}"; do wait_http "$port"; done
for name in local redis; do
  curl -sfi "http://127.0.0.1:${PORT[$name]}/x" | grep -qi '^ratelimit-policy:' \
    || { echo "Warden ($name) sent no RateLimit headers: the limits are not on" >&2; exit 1; }
done

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for name in direct off local redis; do
    if [ "$name" = direct ]; then port=$UP; procs=""; else port=${PORT[$name]}; procs=${PID[$name]}; fi
    # shellcheck disable=SC2086
    read -r rps _ _ errs cpu _ < <(measure "$port" /v1/orders $procs)
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; CPU[$name]+="$cpu "
    echo "round $r $name: $rps req/s, warden cpu ${cpu}us/request" >&2
  done
done
args=()
for name in direct off local redis; do args+=("${RPS[$name]}" "${CPU[$name]}"); done
python3 - "$DUR" "$CONNS" "$ROUNDS" "${args[@]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
dur, conns, rounds = a[:3]
med = lambda s: st.median(float(x) for x in s.split())
vals = iter(a[3:])
names = ["direct", "off", "local", "redis"]
res = {n: (med(next(vals)), med(next(vals))) for n in names}
print(f"wrk -t1 -c{conns} -d{dur}s GET, {rounds} interleaved rounds, medians\n")
print("| target | requests/s | Warden CPU µs/request | throughput vs off |")
print("| --- | ---: | ---: | ---: |")
off_rps = res["off"][0]
for n in names:
    rps, cpu = res[n]
    cpu_s = "-" if n == "direct" else f"{cpu:.2f}"
    ratio = "-" if n == "direct" else f"{rps / off_rps:.2f}"
    print(f"| {n} | {rps:.0f} | {cpu_s} | {ratio} |")
print()
for n in ["local", "redis"]:
    print(f"{n} limits / off: throughput {res[n][0]/res['off'][0]:.2f}, "
          f"+{res[n][1]-res['off'][1]:.1f} µs Warden CPU per request")
PY
