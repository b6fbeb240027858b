#!/usr/bin/env bash
# What response protection costs, side by side in one run: wrk against
#   direct     - an nginx serving a ~2 KB JSON answer that carries personal data (a customer with
#                identity and card numbers, an email, a phone, a password hash)
#   plain      - Warden in front of it, response protections off
#   protected  - Warden with the defaults: personal data masked, security headers, error scrubbing
# Prints requests/s, MB/s of response bodies, Warden's CPU per request, and the ratios.
#
# Usage: bench/protect.sh [DURATION_SECONDS=8] [CONNECTIONS=50] [ROUNDS=3]
# Needs: wrk, nginx, python3.
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
wrk_settings "$@"
need wrk nginx python3
build_warden
UP=$(free_port); P1=$(free_port); P2=$(free_port); A1=$(free_port); A2=$(free_port)

python3 - >"$work/answer.json" <<'PY'
import json
items = [{"sku": f"SKU-{i:04d}-{i*7:04d}", "name": f"item {i}", "price": f"{i*3}.99",
          "qty": i, "created_at": f"2026-11-0{i % 9 + 1}T10:00:00Z",
          "uuid": f"550e8400-e29b-41d4-a716-44665544{i:04d}"} for i in range(9)]
print(json.dumps({"order_id": 8812734, "status": "shipped", "total": "1234.50",
    "customer": {"name": "Li Lei", "email": "li@example.com", "phone": "+8613812345678",
                 "id_card": "11010519491231002X", "card": "4111111111111111",
                 "password_hash": "$2b$12$abcdefghijklmnopqrstuv"},
    "items": items, "note": "leave at the door"}))
PY
nginx_static "$UP" "$work/answer.json"
warden_config "$P1" "$A1" "$UP" "$(printf 'data_protection: {enabled: false}\nsecurity_headers: {enabled: false}\nerror_scrubbing: {mode: off}')" >"$work/plain.yaml"
warden_config "$P2" "$A2" "$UP" "" >"$work/protected.yaml"
start_bg "$WARDEN" --data-dir "$work/d1" --log-level warn serve --config "$work/plain.yaml"
PLAIN=${pids[-1]}
start_bg "$WARDEN" --data-dir "$work/d2" --log-level warn serve --config "$work/protected.yaml"
PROT=${pids[-1]}
for port in "$UP" "$P1" "$P2"; do wait_http "$port"; done
curl -s "http://127.0.0.1:$P2/" | grep -q '\*\*\*\*1111' || { echo "protected Warden did not mask" >&2; exit 1; }

declare -A RPS CPU MBS
for r in $(seq "$ROUNDS"); do
  for name in direct plain protected; do
    case $name in
      direct) port=$UP; procs="" ;;
      plain) port=$P1; procs=$PLAIN ;;
      protected) port=$P2; procs=$PROT ;;
    esac
    # shellcheck disable=SC2086
    read -r rps _ _ errs cpu mbs < <(measure "$port" / $procs)
    [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
    RPS[$name]+="$rps "; CPU[$name]+="$cpu "; MBS[$name]+="$mbs "
    echo "round $r $name: $rps req/s, $mbs MB/s, warden cpu ${cpu}us/request" >&2
  done
done
python3 - "$(wc -c <"$work/answer.json")" "$DUR" "$CONNS" "$ROUNDS" "${RPS[direct]}" "${RPS[plain]}" "${RPS[protected]}" "${MBS[direct]}" "${MBS[plain]}" "${MBS[protected]}" "${CPU[plain]}" "${CPU[protected]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
size, dur, conns, rounds = a[:4]
med = lambda s: st.median(float(x) for x in s.split())
rps = dict(zip(["direct", "plain", "protected"], map(med, a[4:7])))
mbs = dict(zip(["direct", "plain", "protected"], map(med, a[7:10])))
cpu = {"plain": med(a[10]), "protected": med(a[11])}
print(f"{size}-byte JSON answer; wrk -t1 -c{conns} -d{dur}s, {rounds} interleaved rounds, medians\n")
print("| target | requests/s | MB/s | Warden CPU µs/request |")
print("| --- | ---: | ---: | ---: |")
for n in ["direct", "plain", "protected"]:
    print(f"| {n} | {rps[n]:.0f} | {mbs[n]:.1f} | {cpu.get(n, '-') if n == 'direct' else f'{cpu[n]:.2f}'} |")
print()
print(f"protected / plain: throughput {rps['protected']/rps['plain']:.2f}, CPU per request {cpu['protected']/cpu['plain']:.2f} "
      f"(+{cpu['protected']-cpu['plain']:.1f} µs for parsing, masking and re-serialising {size} bytes)")
PY
