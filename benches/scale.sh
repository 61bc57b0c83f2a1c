#!/usr/bin/env bash
# Benchmark of `pilum scale serve` against a bare axum handler, measured in the same run.
#
#   benches/scale.sh                 # 10 s per wrk run, 2 threads, 50 connections
#   DURATION=30s ROUNDS=5 benches/scale.sh
#   BEFORE=/path/to/older/pilum benches/scale.sh   # also measure another build, same run
#   PILUM=/path/to/pilum BARE=/path/to/bare_axum benches/scale.sh   # use these builds as they are
#   HA=1 benches/scale.sh            # also a `--ha` server on a local redis-server, same run
#
# Measures, for POST /webhook/{pool}/delta {"delta": 1} with a bearer token:
#   - accepted webhooks per second (2xx only; auth, parse, dedupe, enqueue and audit included)
#     and p99 latency, for pilum and for benches/baseline/bare_axum.rs, and their ratios;
#   - pilum's resident memory when idle, at peak during a 1,000-webhook burst, and at peak
#     during the sustained wrk run;
#   - with BEFORE, the same for that build, and pilum's ratios to it (e.g. the cost of the
#     durable accept: every 2xx waits for the journal's fdatasync, shared by a batch);
#   - with HA=1, the same for a `--ha` server (every accept is a Lua script on Redis), and its
#     ratios to the single node (targets: >= 50 % of its rate, p99 <= 3x).
# Needs `wrk` (Debian: apt-get install wrk). Pulumi is faked (instant `up`), so only the
# server is measured. Results go to stdout as a Markdown table for docs/performance.md.
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
ROUNDS=${ROUNDS:-3}

command -v wrk >/dev/null || { echo "error: \`wrk\` is required (apt-get install wrk)" >&2; exit 2; }
if [ -z "${PILUM:-}" ] || [ -z "${BARE:-}" ]; then
  cargo build --quiet --release --bin pilum --example bare_axum
fi
PILUM=${PILUM:-$PWD/target/release/pilum}
BARE=${BARE:-$PWD/target/release/examples/bare_axum}

work=$(mktemp -d)
pids=()
# Stop every server by its own pid (each is started with `exec`, so `$!` is the server, not a
# subshell, which `started` checks), then make sure nothing started here is left: no recorded pid
# alive, and no process whose command line or working directory is under "$work" (a server's
# children, e.g. the fake pulumi). Anything left is reported, stopped by its pid, and fails the
# benchmark.
leftovers() {
  local p seen
  # `if`, not `&&`: under `set -e -o pipefail` a loop whose last test is false would fail the
  # function, and with it the cleanup before it reports anything or removes "$work".
  for p in "${pids[@]}"; do if kill -0 "$p" 2>/dev/null; then echo "$p"; fi; done
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    seen="$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null || true) $(readlink "/proc/$p/cwd" 2>/dev/null || true)"
    if [[ $seen == *"$work"* ]]; then echo "$p"; fi
  done | sort -u
}
cleanup() {
  local status=$? left
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  left=$(leftovers || true)
  if [ -n "$left" ]; then
    echo "error: processes left running after the benchmark:" >&2
    for p in $left; do
      echo "  $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) (in $(readlink "/proc/$p/cwd" 2>/dev/null))" >&2
    done
    for p in $left; do kill -9 "$p" 2>/dev/null || true; done
    status=1
  fi
  rm -rf "$work"
  exit "$status"
}
# `started PID NAME`: PID must be the program itself (its /proc exe), not a shell around it.
started() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null || true)
  case "$exe" in
    */bash|*/sh|*/dash) echo "error: pid $1 is a shell ($exe), not $2" >&2; exit 1;;
  esac
}
trap cleanup EXIT

# A fake pulumi: config get/set-all on a file, instant up.
mkdir -p "$work/bin" "$work/infra"
cat > "$work/bin/pulumi" <<'SH'
#!/bin/sh
case "$1 $2" in
  "config get") printf '{"value": "3", "secret": false}\n';;
  *) ;;
esac
SH
chmod +x "$work/bin/pulumi"
printf 'config:\n  infra:count: "3"\n' > "$work/infra/Pulumi.prod.yaml"
cat > "$work/pilum-scale.yaml" <<'YAML'
pools:
  workers:
    project: infra
    stack: prod
    key: infra:count
    targets: ["urn:pulumi:prod::infra::aws:autoscaling/group:Group::workers"]
    min: 1
    max: 100
    cooldown_up: 1h
    cooldown_down: 1h
YAML

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"delta": 1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
LUA
# The burst: each of the 2 threads stops after 500 responses (1,000 in all).
cat > "$work/burst.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"delta": 1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= 500 then wrk.thread:stop() end
end
LUA

wait_ready() {
  for _ in $(seq 1 200); do [ -s "$1" ] && { cat "$1"; return; }; sleep 0.05; done
  echo "error: server did not start" >&2; exit 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# Sample the peak RSS of $1 until the file $2 exists.
peak_rss() {
  local pid=$1 stop=$2 peak=0 r
  while [ ! -e "$stop" ]; do
    r=$(rss_kb "$pid" || echo 0); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.02
  done
  echo "$peak"
}
# wrk → "accepted_per_sec p99_ms"
run_wrk() {
  local url=$1 out
  out=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --latency -s "$work/post.lua" "$url")
  echo "$out" >&2
  echo "$out" | awk -v d="$DURATION" '
    /requests in/ { total=$1; for (i=1;i<=NF;i++) if ($i ~ /s,$/) { secs=$i; sub(/s,/, "", secs) } }
    /Non-2xx or 3xx responses/ { bad=$NF }
    /^ +99%/ { p=$2; if (p ~ /us$/) { sub(/us/,"",p); p=p/1000 } else if (p ~ /ms$/) { sub(/ms/,"",p) } else if (p ~ /s$/) { sub(/s/,"",p); p=p*1000 } }
    END { printf "%.0f %.3f\n", (total-bad)/secs, p }'
}

# Both servers run for the whole benchmark; rounds alternate between them so machine noise
# hits both alike, and the medians are reported.
"$BARE" "$work/bare.addr" & pids+=($!)
bare_addr=$(wait_ready "$work/bare.addr")
started "$!" bare_axum

# `start_pilum NAME BINARY [FLAGS…]`: a server on its own state dir; sets NAME_addr and NAME_pid.
start_pilum() {
  local name=$1 bin=$2
  shift 2
  (cd "$work" && PATH="$work/bin:$PATH" exec "$bin" -q scale serve --listen 127.0.0.1:0 \
    --ready-file "$work/$name.addr" --state-dir "$work/state-$name" --token bench-token \
    --rate-limit 0 --tick 1h "$@" 2>"$work/$name.log") &
  pids+=($!)
  printf -v "${name}_pid" '%s' "$!"
  printf -v "${name}_addr" '%s' "$(wait_ready "$work/$name.addr")"
  started "$!" "$bin"
}
start_pilum pilum "$PILUM"
[ -n "${BEFORE:-}" ] && start_pilum before "$BEFORE"
if [ -n "${HA:-}" ]; then
  command -v redis-server >/dev/null || { echo "error: \`redis-server\` is required for HA=1" >&2; exit 2; }
  redis_port=$((20000 + RANDOM % 20000))
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    --logfile "$work/redis.log" & pids+=($!)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
    sleep 0.05
  done
  start_pilum ha "$PILUM" --ha "redis://127.0.0.1:$redis_port/0"
fi
sleep 1
idle_kb=$(rss_kb "$pilum_pid")

peak_rss "$pilum_pid" "$work/burst.done" > "$work/burst.peak" & sampler=$!
wrk -t 2 -c "$CONNECTIONS" -d 10s -s "$work/burst.lua" "http://$pilum_addr/webhook/workers/delta" >&2
touch "$work/burst.done"; wait "$sampler" 2>/dev/null || true
burst_kb=$(cat "$work/burst.peak")

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
peak_rss "$pilum_pid" "$work/load.done" > "$work/load.peak" & sampler=$!
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS: bare axum" >&2
  run_wrk "http://$bare_addr/webhook/workers/delta" >> "$work/bare.results"
  if [ -n "${BEFORE:-}" ]; then
    echo "round $round/$ROUNDS: pilum before" >&2
    run_wrk "http://$before_addr/webhook/workers/delta" >> "$work/before.results"
  fi
  echo "round $round/$ROUNDS: pilum" >&2
  run_wrk "http://$pilum_addr/webhook/workers/delta" >> "$work/pilum.results"
  if [ -n "${HA:-}" ]; then
    echo "round $round/$ROUNDS: pilum --ha" >&2
    run_wrk "http://$ha_addr/webhook/workers/delta" >> "$work/ha.results"
  fi
done
touch "$work/load.done"; wait "$sampler" 2>/dev/null || true
load_kb=$(cat "$work/load.peak")
bare_rps=$(cut -d' ' -f1 "$work/bare.results" | median)
bare_p99=$(cut -d' ' -f2 "$work/bare.results" | median)
pilum_rps=$(cut -d' ' -f1 "$work/pilum.results" | median)
pilum_p99=$(cut -d' ' -f2 "$work/pilum.results" | median)
echo "bare rounds: $(tr '\n' ';' < "$work/bare.results")" >&2
echo "pilum rounds: $(tr '\n' ';' < "$work/pilum.results")" >&2
before_rps=0 before_p99=0
if [ -n "${BEFORE:-}" ]; then
  before_rps=$(cut -d' ' -f1 "$work/before.results" | median)
  before_p99=$(cut -d' ' -f2 "$work/before.results" | median)
  echo "before rounds: $(tr '\n' ';' < "$work/before.results")" >&2
fi

ha_rps=0 ha_p99=0
if [ -n "${HA:-}" ]; then
  ha_rps=$(cut -d' ' -f1 "$work/ha.results" | median)
  ha_p99=$(cut -d' ' -f2 "$work/ha.results" | median)
  echo "ha rounds: $(tr '\n' ';' < "$work/ha.results")" >&2
fi

audit_lines=$(wc -l < "$work/state-pilum/audit.jsonl")

awk -v br="$bare_rps" -v bp="$bare_p99" -v pr="$pilum_rps" -v pp="$pilum_p99" \
    -v fr="$before_rps" -v fp="$before_p99" -v hr="$ha_rps" -v hp="$ha_p99" \
    -v idle="$idle_kb" -v burst="$burst_kb" -v load="$load_kb" -v audit="$audit_lines" \
    -v d="$DURATION" -v t="$THREADS" -v c="$CONNECTIONS" -v r="$ROUNDS" 'BEGIN {
  printf "wrk: %s threads, %s connections, %s per run, median of %s alternating rounds; audit records written: %s\n\n", t, c, d, r, audit
  printf "| measure | bare axum | pilum scale serve | ratio | target |\n|---|---|---|---|---|\n"
  printf "| accepted webhooks/s | %d | %d | %.0f %% | >= 75 %% |\n", br, pr, 100*pr/br
  printf "| p99 latency | %.2f ms | %.2f ms | %.2fx | <= 2x |\n", bp, pp, pp/bp
  printf "| RSS idle | | %.1f MB | | < 15 MB |\n", idle/1024
  printf "| RSS peak, 1,000-webhook burst | | %.1f MB | | < 50 MB |\n", burst/1024
  printf "| RSS peak, sustained wrk run | | %.1f MB | | |\n", load/1024
  if (fr > 0) {
    printf "\n| measure | pilum before | pilum now | now / before |\n|---|---|---|---|\n"
    printf "| accepted webhooks/s | %d | %d | %.0f %% |\n", fr, pr, 100*pr/fr
    printf "| p99 latency | %.2f ms | %.2f ms | %.2fx |\n", fp, pp, pp/fp
  }
  if (hr > 0) {
    printf "\n| measure | single node | --ha (local Redis) | ratio | target |\n|---|---|---|---|---|\n"
    printf "| accepted webhooks/s | %d | %d | %.0f %% | >= 50 %% |\n", pr, hr, 100*hr/pr
    printf "| p99 latency | %.2f ms | %.2f ms | %.2fx | <= 3x |\n", pp, hp, hp/pp
  }
}'
