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
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "$@"
ENTRIES=${4:-1000000}
need wrk nginx python3
cargo run --release -q -p warden-store --example audit_bench -- "$ENTRIES"
echo
build_warden
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

compare_rounds direct off on
"$WARDEN" --data-dir "$work/d-on" audit verify >&2
