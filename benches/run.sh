#!/bin/sh
# Benchmarks for `pilum run` (release build). Every number is a ratio against a baseline measured
# in the same run on the same machine, interleaved round by round so background load hits both
# sides alike; the table reports medians over the rounds.
#
#   benches/run.sh                 # prints a Markdown table for docs/performance.md
#   ROUNDS=9 CALLS=1000 benches/run.sh
#   OLD=/tmp/pilum-old benches/run.sh   # also measure a previous build, round by round
#
# 1. startup: median wall time of `pilum run trivial.rhai` vs `/bin/true` (goal: under 5 ms).
# 2. exec overhead: CALLS x `exec::run(["true"])` from one script vs CALLS plain Rust
#    spawn-and-wait calls (goal: within 1.3x). Captured-output baselines are shown for context.
# 3. data: PUSHES x `a.push(i)`, map inserts and `s += "x"`, against the same loop doing nothing
#    (goal: linear — ten times the pushes cost ten times as much — and 100,000 pushes well under
#    0.1 s). Times are the script's own `time::now_ms()` differences.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin pilum --example spawn_baseline
PILUM=target/release/pilum
BASE=target/release/examples/spawn_baseline
OLD=${OLD:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
ROUNDS=${ROUNDS:-7}
RUNS=${RUNS:-50}
CALLS=${CALLS:-1000}
PUSHES=${PUSHES:-100000}

echo 'let x = 1 + 1;' > "$TMP/trivial.rhai"
cat > "$TMP/exec.rhai" <<RHAI
let t0 = time::now_ms();
for i in 0..$CALLS { exec::run(["true"]); }
print(time::now_ms() - t0);
RHAI
# ARGS: how many iterations, and what each does.
cat > "$TMP/data.rhai" <<'RHAI'
let n = ARGS[0].parse_int();
let what = ARGS[1];
let t0 = time::now_ms();
if what == "loop" { for i in 0..n { } }
if what == "push" { let a = []; for i in 0..n { a.push(i); } }
if what == "map" { let m = #{}; for i in 0..n { m[`k${i}`] = i; } }
if what == "string" { let s = ""; for i in 0..n { s += "x"; } }
print(time::now_ms() - t0);
RHAI

data() { "$1" -C "$TMP" run "$TMP/data.rhai" -- "$2" "$3"; }

: > "$TMP/rows"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
  t=$($BASE wall "$RUNS" /bin/true)
  r=$(cd "$TMP" && "$OLDPWD/$BASE" wall "$RUNS" "$OLDPWD/$PILUM" run trivial.rhai)
  s=$($BASE spawn "$CALLS")
  e=$("$PILUM" -C "$TMP" run "$TMP/exec.rhai")
  p=$($BASE spawn-piped "$CALLS")
  d=$($BASE duct "$CALLS")
  l=$(data "$PILUM" "$PUSHES" loop)
  u=$(data "$PILUM" "$PUSHES" push)
  u10=$(data "$PILUM" $((PUSHES * 10)) push)
  u01=$(data "$PILUM" $((PUSHES / 10)) push)
  m=$(data "$PILUM" "$PUSHES" map)
  g=$(data "$PILUM" "$PUSHES" string)
  if [ -n "$OLD" ]; then
    ro=$(cd "$TMP" && "$OLDPWD/$BASE" wall "$RUNS" "$OLD" run trivial.rhai)
    eo=$("$OLD" -C "$TMP" run "$TMP/exec.rhai")
    uo=$(data "$OLD" $((PUSHES / 10)) push)
  else
    ro=0 eo=0 uo=0
  fi
  echo "$t $r $s $e $p $d $l $u $u10 $m $g $ro $eo $uo $u01" >> "$TMP/rows"
  i=$((i + 1))
done

# Median of column $1 (or of the ratio of columns $1/$2).
median() {
  awk -v a="$1" -v b="${2:-0}" '{ print (b ? $a / $b : $a) }' "$TMP/rows" | sort -g |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

awk -v t="$(median 1)" -v r="$(median 2)" -v rr="$(median 2 1)" \
    -v s="$(median 3)" -v e="$(median 4)" -v er="$(median 4 3)" \
    -v p="$(median 5)" -v d="$(median 6)" -v n="$CALLS" -v runs="$RUNS" -v rounds="$ROUNDS" \
    -v l="$(median 7)" -v u="$(median 8)" -v u10="$(median 9)" -v lin="$(median 9 8)" \
    -v m="$(median 10)" -v g="$(median 11)" -v k="$PUSHES" \
    -v old="$OLD" -v ro="$(median 12)" -v eo="$(median 13)" -v uo="$(median 14)" -v u01="$(median 15)" 'BEGIN {
  printf "| benchmark (median of %d rounds) | pilum | baseline | ratio |\n|---|---|---|---|\n", rounds
  printf "| `pilum run` trivial script, median wall of %d runs | %.2f ms | `/bin/true` %.2f ms | %.2fx (+%.2f ms) |\n", runs, r, t, rr, r - t
  printf "| %d x `exec::run([\"true\"])`, per call | %.3f ms | Rust `status()` %.3f ms | %.2fx |\n", n, e / n, s / n, er
  printf "| (context) Rust `output()`, both streams captured | | %.3f ms | |\n", p / n
  printf "| (context) duct, both streams captured | | %.3f ms | |\n", d / n
  printf "| %d x `a.push(i)` | %d ms | empty loop %d ms | %.2fx |\n", k, u, l, u / (l ? l : 1)
  printf "| linearity: %d pushes vs %d | %d ms | %d ms | %.1fx (10x is linear) |\n", k * 10, k, u10, u, lin
  printf "| %d x `m[`k${i}`] = i` | %d ms | empty loop %d ms | %.2fx |\n", k, m, l, m / (l ? l : 1)
  printf "| %d x `s += \"x\"` | %d ms | empty loop %d ms | %.2fx |\n", k, g, l, g / (l ? l : 1)
  if (old != "") {
    printf "| previous build: `pilum run` trivial script | %.2f ms | previous %.2f ms | %.2fx |\n", r, ro, r / ro
    printf "| previous build: `exec::run`, per call | %.3f ms | previous %.3f ms | %.2fx |\n", e / n, eo / n, e / eo
    printf "| previous build: %d x `a.push(i)` | %d ms | previous %d ms | |\n", k / 10, u01, uo
  }
}'
