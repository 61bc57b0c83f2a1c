#!/usr/bin/env bash
# Benchmarks of the state backend (docs/state.md). Every result is a ratio against a baseline
# measured in the same run on the same machine (method: docs/performance.md).
#
#   benches/state.sh                     # release build, N=1000 services, 100,000 records
#   N=50 RECORDS=2000 ROUNDS=3 PILUM=target/debug/pilum benches/state.sh   # a smoke run
#
# 1. cached deploy: a fully cached `pilum deploy` of N services vs `pilum plan` of the same tree
#    (goal: <= 1.2x), and vs Turborepo's full-cache replay of N packages (`turbo run build`,
#    second run; goal: <= 0.5x; turbo is installed from npm into target/bench-tools, skipped
#    with TURBO=0). Its tree is kept there too (turbo-tree-N) and warmed once: the first fill
#    runs 1,000 npm scripts, about 25 minutes on 2 cores.
# 2. locks: `pilum deploy --no-cache` of N services with `true` steps, Redis backend vs file
#    backend (goal: <= 1.1x).
# 3. history: `pilum history --limit 20` over RECORDS records, file and Redis (goal: < 50 ms).
#
# Needs bash, python3, git, redis-server and redis-cli (npm for turbo). Timing: benches/support/pair.py.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-1000}
RECORDS=${RECORDS:-100000}
ROUNDS=${ROUNDS:-5}
TURBO=${TURBO:-1}
for tool in git python3 redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "benches/state.sh needs $tool" >&2; exit 2; }
done
if [ -z "${PILUM:-}" ]; then
  cargo build --release --quiet --bin pilum
  PILUM=$ROOT/target/release/pilum
fi
PILUM=$(realpath "$PILUM")
TMP=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null; wait $REDIS_PID 2>/dev/null; rm -rf "$TMP"' EXIT
URL=redis://127.0.0.1:$PORT/0
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

# A git tree of N shell services with `true` steps.
tree() {
  local dir=$1
  mkdir -p "$dir"
  (
    cd "$dir"
    git init -q
    printf '.pilum/\n' > .gitignore
    for i in $(seq -w 1 "$N"); do
      mkdir -p "svc$i"
      printf 'name: svc%s\nrecipe: shell\nshell:\n  build: "true"\n  push: "true"\n  deploy: "true"\n' "$i" > "svc$i/pilum.yaml"
      printf 'x%s\n' "$i" > "svc$i/main.txt"
    done
    git add -A
    git -c user.name=bench -c user.email=bench@example.invalid commit -qm bench
  )
}

# `pair NAME GOAL BASELINE_NAME -- COMMAND… [-- BASELINE…]`: one interleaved row
# (benches/support/pair.py: medians, per-round ratio, spread, verdict).
pair() { python3 "$ROOT/benches/support/pair.py" "$ROUNDS" "$2" "$1" "$3" "${@:4}"; }

echo "Interleaved rounds: $ROUNDS. Ratio = median of the per-round ratios; spread = their minimum and maximum."
echo
echo "| benchmark | measured | baseline | ratio | spread | goal | verdict |"
echo "|---|---|---|---|---|---|---|"

# 1. A fully cached deploy vs plan.
tree "$TMP/cached"
cd "$TMP/cached"
"$PILUM" -q deploy -j 2 >/dev/null
pair "fully cached \`pilum deploy\` of $N services" 1.2 "\`pilum plan\`" -- "$PILUM" -q deploy -j 2 -- "$PILUM" -q plan
if [ "$TURBO" = 1 ] && command -v npm >/dev/null; then
  TOOLS=$ROOT/target/bench-tools
  [ -x "$TOOLS/node_modules/.bin/turbo" ] || npm install --no-audit --no-fund --silent --prefix "$TOOLS" "turbo@${TURBO_VERSION:-2.11.11}" >/dev/null
  # The Turborepo tree is kept next to the install, warmed once: filling its cache runs each
  # package's script through npm, which takes about a second each with 1,000 workspaces.
  TT=$TOOLS/turbo-tree-$N
  if [ ! -d "$TT/.git" ]; then
    rm -rf "$TT" && mkdir -p "$TT" && cd "$TT"
    python3 - "$N" <<'PY'
import json, os, sys
n = int(sys.argv[1])
json.dump({"name": "bench", "private": True, "packageManager": "npm@10.0.0", "workspaces": ["packages/*"]}, open("package.json", "w"))
json.dump({"tasks": {"build": {"outputs": []}}}, open("turbo.json", "w"))
for i in range(n):
    d = f"packages/p{i:04}"
    os.makedirs(d, exist_ok=True)
    json.dump({"name": f"p{i:04}", "version": "1.0.0", "scripts": {"build": "true"}}, open(f"{d}/package.json", "w"))
PY
    # Every Turborepo repository ignores its `.turbo` directories: without this, the logs the
    # first run writes into each package are new inputs, and the second run misses every task.
    printf '.turbo\nnode_modules\n' >.gitignore
    git init -q && git add -A && git -c user.name=b -c user.email=b@e commit -qm b
  fi
  cd "$TT"
  TURBO_BIN=$TOOLS/node_modules/.bin/turbo
  # The warm-up (a replay once the tree is warm).
  "$TURBO_BIN" run build --concurrency=2 >/dev/null 2>&1
  # What is timed must be a replay: every task a cache hit.
  "$TURBO_BIN" run build --concurrency=2 --output-logs=none 2>&1 | grep -q "Cached:    $N cached, $N total" \
    || { echo "turbo's second run was not fully cached; not timing it" >&2; exit 1; }
  # Both from here: pilum's tree is given with -C.
  pair "same, against Turborepo's full-cache replay of $N packages" 0.5 "\`turbo run build\`" \
    -- "$PILUM" -q -C "$TMP/cached" deploy -j 2 -- "$TURBO_BIN" run build --concurrency=2 --output-logs=none
fi

# 2. Locking N services: Redis vs file.
cd "$TMP/cached"
pair "\`deploy --no-cache\` of $N services, Redis backend" 1.1 "file backend" \
  -- "$PILUM" -q deploy -j 2 --no-cache --state "$URL" -- "$PILUM" -q deploy -j 2 --no-cache --state file

# 3. history --limit 20 over RECORDS records.
mkdir -p "$TMP/hist/a" && cd "$TMP/hist"
printf 'name: a\nrecipe: shell\nshell:\n  build: "true"\n' > a/pilum.yaml
python3 - "$RECORDS" "$PORT" <<'PY'
import json, sys
n, port = int(sys.argv[1]), sys.argv[2]
import os
os.makedirs(".pilum", exist_ok=True)
base = {"run": "R", "command": "deploy", "target": "shell", "environment": "prod", "region": None,
        "recipe": "<built-in>/recipes/shell.rhai", "version": "v1", "commit": None, "dirty": False,
        "input_hash": None, "revision": "r", "url": None, "started": "2025-01-01T00:00:00.000Z",
        "ended": "2025-01-01T00:00:01.000Z", "outcome": "ok", "error": None, "actor": "bench",
        "ci_run": None, "host": "h", "pilum": "0", "argv": "pilum deploy"}
def resp(*args):
    out = f"*{len(args)}\r\n"
    for a in args:
        b = a.encode()
        out += f"${len(b)}\r\n{a}\r\n"
    return out
with open(".pilum/deploys.jsonl", "w") as f, open("redis.txt", "w", newline="") as r:
    for i in range(n):
        rec = dict(base, id=f"{i:026d}", service=f"svc{i % 1000:04}")
        line = json.dumps(rec)
        f.write(line + "\n")
        r.write(resp("XADD", "pilum:deploys", "*", "r", line))
PY
redis-cli -p "$PORT" --pipe < redis.txt >/dev/null
pair "\`history --limit 20\` of $RECORDS records, file" 50 "" -- "$PILUM" -q history --limit 20 --state file
pair "\`history --limit 20\` of $RECORDS records, Redis" 50 "" -- "$PILUM" -q history --limit 20 --state "$URL"
