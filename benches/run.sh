#!/bin/sh
# Benchmarks for `pilum run` (release build). Every number is a ratio against a baseline measured
# in the same run on the same machine, interleaved round by round so background load hits both
# sides alike; the table reports medians over the rounds.
#
#   benches/run.sh                 # prints a Markdown table for docs/performance.md
#   ROUNDS=9 CALLS=1000 benches/run.sh
#
# 1. startup: median wall time of `pilum run trivial.rhai` vs `/bin/true` (goal: under 5 ms).
# 2. exec overhead: CALLS x `exec::run(["true"])` from one script vs CALLS plain Rust
#    spawn-and-wait calls (goal: within 1.3x). Captured-output baselines are shown for context.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin pilum --example spawn_baseline
PILUM=target/release/pilum
BASE=target/release/examples/spawn_baseline
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ROUNDS=${ROUNDS:-7}
RUNS=${RUNS:-50}
CALLS=${CALLS:-1000}

echo 'let x = 1 + 1;' > "$TMP/trivial.rhai"
cat > "$TMP/exec.rhai" <<RHAI
let t0 = time::now_ms();
for i in 0..$CALLS { exec::run(["true"]); }
print(time::now_ms() - t0);
RHAI

: > "$TMP/rows"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
  t=$($BASE wall "$RUNS" /bin/true)
  r=$(cd "$TMP" && "$OLDPWD/$BASE" wall "$RUNS" "$OLDPWD/$PILUM" run trivial.rhai)
  s=$($BASE spawn "$CALLS")
  e=$("$PILUM" -C "$TMP" run "$TMP/exec.rhai")
  p=$($BASE spawn-piped "$CALLS")
  d=$($BASE duct "$CALLS")
  echo "$t $r $s $e $p $d" >> "$TMP/rows"
  i=$((i + 1))
done

# Median of column $1 (or of the ratio of columns $1/$2).
median() {
  awk -v a="$1" -v b="${2:-0}" '{ print (b ? $a / $b : $a) }' "$TMP/rows" | sort -g |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

awk -v t="$(median 1)" -v r="$(median 2)" -v rr="$(median 2 1)" \
    -v s="$(median 3)" -v e="$(median 4)" -v er="$(median 4 3)" \
    -v p="$(median 5)" -v d="$(median 6)" -v n="$CALLS" -v runs="$RUNS" -v rounds="$ROUNDS" 'BEGIN {
  printf "| benchmark (median of %d rounds) | pilum | baseline | ratio |\n|---|---|---|---|\n", rounds
  printf "| `pilum run` trivial script, median wall of %d runs | %.2f ms | `/bin/true` %.2f ms | %.2fx (+%.2f ms) |\n", runs, r, t, rr, r - t
  printf "| %d x `exec::run([\"true\"])`, per call | %.3f ms | Rust `status()` %.3f ms | %.2fx |\n", n, e / n, s / n, er
  printf "| (context) Rust `output()`, both streams captured | | %.3f ms | |\n", p / n
  printf "| (context) duct, both streams captured | | %.3f ms | |\n", d / n
}'
