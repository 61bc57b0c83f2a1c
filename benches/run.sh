#!/bin/sh
# Benchmarks for `pilum run` (release build). Every number is a ratio against a baseline measured
# in the same run on the same machine, so results are comparable across machines.
#
#   benches/run.sh            # prints a Markdown table for docs/performance.md
#
# 1. startup: median wall time of `pilum run trivial.rhai` vs `/bin/true` (goal: under 5 ms).
# 2. exec overhead: 1,000 `exec::run(["true"])` from one script vs 1,000 plain Rust
#    spawn-and-wait calls (goal: within 1.3x).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin pilum --example spawn_baseline
PILUM=target/release/pilum
BASE=target/release/examples/spawn_baseline
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
RUNS=${RUNS:-200}
CALLS=${CALLS:-1000}

echo 'let x = 1 + 1;' > "$TMP/trivial.rhai"
cat > "$TMP/exec.rhai" <<RHAI
let t0 = time::now_ms();
for i in 0..$CALLS { exec::run(["true"]); }
print(time::now_ms() - t0);
RHAI

true_ms=$($BASE wall "$RUNS" /bin/true)
run_ms=$($BASE wall "$RUNS" "$PILUM" -C "$TMP" run "$TMP/trivial.rhai")
spawn_ms=$($BASE spawn "$CALLS")
exec_ms=$("$PILUM" -C "$TMP" run "$TMP/exec.rhai")

awk -v t="$true_ms" -v r="$run_ms" -v s="$spawn_ms" -v e="$exec_ms" -v n="$CALLS" -v runs="$RUNS" 'BEGIN {
  printf "| benchmark | pilum | baseline | ratio |\n|---|---|---|---|\n"
  printf "| `pilum run` trivial script, median of %d | %.2f ms | `/bin/true` %.2f ms | %.2fx (+%.2f ms) |\n", runs, r, t, r / t, r - t
  printf "| %d x `exec::run([\"true\"])`, per call | %.3f ms | Rust spawn+wait %.3f ms | %.2fx |\n", n, e / n, s / n, e / s
}'
