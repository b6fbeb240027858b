# Shared pieces of the wrk benchmarks: sourced by bench/*.sh, not run on its own.
# Provides: wrk_settings [DURATION] [CONNECTIONS] [ROUNDS] (sets DUR, CONNS, ROUNDS; defaults 8 s, 50, 3),
# build_warden (a release build, its path in $WARDEN, unless WARDEN is set), $work (a temp folder removed on exit), start_bg CMD... (killed on exit), free_port,
# wait_http PORT [PATH], cpu_ticks PID..., measure PORT PATH PID..., nginx_serve PORT LOCATION,
# nginx_static PORT FILE, nginx_ok PORT, warden_config PORT ADMIN_PORT UPSTREAM_PORT [EXTRA_YAML] and
# compare_rounds NAME... (interleaved wrk rounds against nginx and Warden targets, as a table).

set -euo pipefail
work=$(mktemp -d)
# nginx workers run as an unprivileged user when started by root: let them read what we serve.
chmod 755 "$work"
pids=()
# Stop everything, and let it finish shutting down (a gateway writes its last audit checkpoint)
# before its data folder goes.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wrk_settings() { DUR=${1:-8}; CONNS=${2:-50}; ROUNDS=${3:-3}; }

# WARDEN=PATH in the environment measures that binary instead (an older build, say).
build_warden() {
  if [ -n "${WARDEN:-}" ]; then return; fi
  cargo build --release -p warden >/dev/null
  WARDEN=target/release/warden
}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install wrk nginx-light)" >&2; exit 1; }
  done
}

start_bg() { "$@" & pids+=($!); }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {
  local port=$1 path=${2:-/}
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port$path" >/dev/null && return 0; sleep 0.1; done
  echo "nothing answers on port $port" >&2; exit 1
}

# CPU time (user+system, in clock ticks) used so far by the given processes' threads.
cpu_ticks() {
  local total=0 p t
  for p in "$@"; do
    for t in /proc/"$p"/task/*/stat; do
      total=$((total + $(sed 's/.*) //' "$t" | awk '{print $12 + $13}')))
    done
  done
  echo "$total"
}

# measure PORT PATH [PID...]: one wrk run (wrk -t1, $CONNS connections, $DUR seconds; extra wrk
# options, such as a request script, in $WRK_ARGS).
# Prints: req/s p50_ms p99_ms non2xx cpu_us_per_request MB_per_s (cpu of the given PIDs; 0 if none).
measure() {
  local port=$1 path=$2; shift 2
  local before after out
  before=$(cpu_ticks "$@")
  # shellcheck disable=SC2086
  out=$(wrk ${WRK_ARGS:-} -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port$path")
  after=$(cpu_ticks "$@")
  python3 - "$out" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
o, before, after, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))
reqs = int(re.search(r"(\d+) requests in", o).group(1))
tr = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", o)
mbs = float(tr.group(1)) * {"B": 1e-6, "KB": 1e-3, "MB": 1, "GB": 1e3}[tr.group(2)]
def ms(p):
    v, u = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", o).groups()
    return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
cpu_us = (after - before) / hz * 1e6 / reqs
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f} {errs.group(1) if errs else 0} {cpu_us:.2f} {mbs:.1f}")
PY
}

# nginx_serve PORT LOCATION: an nginx (1 worker, no access log) whose `location /` does LOCATION.
nginx_serve() {
  local port=$1 conf="$work/nginx-$1.conf"
  cat >"$conf" <<NGINX
worker_processes 1;
pid $work/nginx-$port.pid;
error_log $work/nginx-$port-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; $2 }
  }
}
NGINX
  start_bg nginx -c "$conf" -p "$work" -g 'daemon off;'
}

# nginx_static PORT FILE: answers every request with FILE as JSON.
nginx_static() {
  nginx_serve "$1" "root $(dirname "$2"); try_files /$(basename "$2") =404;"
}

# nginx_ok PORT: answers every request, whatever its method and body, with a small JSON document.
nginx_ok() {
  nginx_serve "$1" "return 200 '{\"ok\":true}';"
}

# warden_config PORT ADMIN_PORT UPSTREAM_PORT [EXTRA_YAML]: a Warden config with one plain listener,
# one route to one upstream, and the given extra top-level YAML (what the benchmark turns off).
warden_config() {
  cat <<YAML
listeners: [{address: "127.0.0.1:$1", plain_http: true}]
admin: {address: "127.0.0.1:$2"}
upstreams: {bench: {targets: ["http://127.0.0.1:$3"]}}
routes: [{path_prefix: /, upstream: bench}]
${4:-}
YAML
}

# compare_rounds NAME...: $ROUNDS interleaved rounds of `measure` (GET /v1/orders) against each
# target: `direct` is the nginx on $UP, any other name a Warden on ${PORT[name]} whose process is
# ${PID[name]} (associative arrays the caller declares). Prints medians as a markdown table, with
# throughput and CPU per request relative to the second name (the baseline, e.g. `off`).
compare_rounds() {
  local -A rps_of cpu_of
  local r name port procs rps errs cpu
  for r in $(seq "$ROUNDS"); do
    for name in "$@"; do
      if [ "$name" = direct ]; then port=$UP; procs=""; else port=${PORT[$name]}; procs=${PID[$name]}; fi
      # shellcheck disable=SC2086
      read -r rps _ _ errs cpu _ < <(measure "$port" /v1/orders $procs)
      [ "$errs" = 0 ] || { echo "$name: $errs non-2xx responses" >&2; exit 1; }
      rps_of[$name]+="$rps "; cpu_of[$name]+="$cpu "
      echo "round $r $name: $rps req/s, warden cpu ${cpu}us/request" >&2
    done
  done
  local args=()
  for name in "$@"; do args+=("$name" "${rps_of[$name]}" "${cpu_of[$name]}"); done
  python3 - "$DUR" "$CONNS" "$ROUNDS" "${args[@]}" <<'PY'
import statistics as st, sys
a = sys.argv[1:]
dur, conns, rounds, rest = a[0], a[1], a[2], a[3:]
med = lambda s: st.median(float(x) for x in s.split())
names = rest[0::3]
res = {n: (med(r), med(c)) for n, r, c in zip(names, rest[1::3], rest[2::3])}
base = names[1]
print(f"wrk -t1 -c{conns} -d{dur}s GET, {rounds} interleaved rounds, medians\n")
print(f"| target | requests/s | Warden CPU µs/request | throughput vs {base} |")
print("| --- | ---: | ---: | ---: |")
for n in names:
    rps, cpu = res[n]
    warden = n != "direct"
    print(f"| {n} | {rps:.0f} | {f'{cpu:.2f}' if warden else '-'} | {f'{rps / res[base][0]:.2f}' if warden else '-'} |")
print()
for n in names[2:]:
    print(f"{n} / {base}: throughput {res[n][0] / res[base][0]:.2f}, "
          f"+{res[n][1] - res[base][1]:.1f} µs Warden CPU per request")
PY
}
