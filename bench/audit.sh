#!/usr/bin/env bash
# What the audit trail costs, in one run:
#   1. sustained appends per second (chaining, group commit, SQLite WAL) and verification speed,
#      in process (crates/warden-store/examples/audit_bench.rs);
#   2. the proxy side by side: wrk against nginx direct, Warden with `audit: {enabled: false}`,
#      and Warden with the default (every call recorded), then the ratio.
#
# Usage: bench/audit.sh [DURATION_SECONDS=8] [CONNECTIONS=50] [ROUNDS=3] [ENTRIES=1000000]
# Needs: wrk, nginx, python3.
cd "$(dirname "$0")/.."
DUR=${1:-8}
CONNS=${2:-50}
ROUNDS=${3:-3}
ENTRIES=${4:-1000000}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need wrk nginx python3
cargo run --release -q -p warden-store --example audit_bench -- "$ENTRIES"
echo
cargo build --release -p warden >/dev/null
WARDEN=target/release/warden
UP=$(free_port)
nginx_ok "$UP"
declare -A PORT PID
for name in off on; do
  PORT[$name]=$(free_port); admin=$(free_port)
  extra=""; [ "$name" = off ] && extra="audit: {enabled: false}"
  warden_config "${PORT[$name]}" "$admin" "$UP" "$extra" >"$work/$name.yaml"
  start_bg "$WARDEN" --data-dir "$work/d-$name" --log-level warn serve --config "$work/$name.yaml"
  PID[$name]=${pids[-1]}
done
for port in "$UP" "${PORT[off]}" "${PORT[on]}"; do wait_http "$port"; done

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for name in direct off on; do
    if [ "$name" = direct ]; then port=$UP; procs=""; else port=${PORT[$name]}; procs=${PID[$name]}; fi
    # shellcheck disable=SC2086
    read -r rps _ _ errs cpu _ < <(measure "$port" /v1/orders $procs)
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; CPU[$name]+="$cpu "
    echo "round $r $name: $rps req/s, warden cpu ${cpu}us/request" >&2
  done
done
"$WARDEN" --data-dir "$work/d-on" audit verify >&2
args=()
for name in direct off on; do args+=("${RPS[$name]}" "${CPU[$name]}"); done
python3 - "$DUR" "$CONNS" "$ROUNDS" "${args[@]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
dur, conns, rounds = a[:3]
med = lambda s: st.median(float(x) for x in s.split())
vals = iter(a[3:])
names = ["direct", "off", "on"]
res = {n: (med(next(vals)), med(next(vals))) for n in names}
print(f"wrk -t1 -c{conns} -d{dur}s GET, {rounds} interleaved rounds, medians\n")
print("| target | requests/s | Warden CPU µs/request |")
print("| --- | ---: | ---: |")
for n in names:
    rps, cpu = res[n]
    cpu_s = "-" if n == "direct" else f"{cpu:.2f}"
    print(f"| {n} | {rps:.0f} | {cpu_s} |")
on, off = res["on"], res["off"]
print(f"\naudit on / off: throughput {on[0]/off[0]:.2f}, +{on[1]-off[1]:.1f} µs Warden CPU per request")
PY
