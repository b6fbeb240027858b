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
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "$@"
need wrk nginx redis-server python3
build_warden
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

compare_rounds direct off local redis
