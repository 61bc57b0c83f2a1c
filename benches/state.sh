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
#    with TURBO=0).
# 2. locks: `pilum deploy --no-cache` of N services with `true` steps, Redis backend vs file
#    backend (goal: <= 1.1x).
# 3. history: `pilum history --limit 20` over RECORDS records, file and Redis (goal: < 50 ms).
#
# Needs bash, python3, git, hyperfine, redis-server and redis-cli (npm for turbo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-1000}
RECORDS=${RECORDS:-100000}
ROUNDS=${ROUNDS:-5}
TURBO=${TURBO:-1}
for tool in git python3 hyperfine redis-server redis-cli; do
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

median() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}")' "$1" "$2"; }
ms() { python3 -c 'import sys; print(f"{float(sys.argv[1])*1000:.1f}")' "$1"; }
bench() { # name, command...
  local name=$1; shift
  hyperfine -N -w 1 -r "$ROUNDS" --export-json "$TMP/$name.json" "$@" >/dev/null 2>&1 \
    || hyperfine -w 1 -r "$ROUNDS" --export-json "$TMP/$name.json" "$*" >/dev/null
  median "$TMP/$name.json"
}

echo "| benchmark | measured | baseline | ratio | goal |"
echo "|---|---|---|---|---|"

# 1. A fully cached deploy vs plan.
tree "$TMP/cached"
cd "$TMP/cached"
"$PILUM" -q deploy -j 2 >/dev/null
cached=$(bench cached "$PILUM -q deploy -j 2")
plan=$(bench plan "$PILUM -q plan")
echo "| cached deploy of $N | $(ms "$cached") ms | plan $(ms "$plan") ms | $(ratio "$cached" "$plan") | <= 1.2 |"
if [ "$TURBO" = 1 ] && command -v npm >/dev/null; then
  TOOLS=$ROOT/target/bench-tools
  [ -x "$TOOLS/node_modules/.bin/turbo" ] || npm install --no-audit --no-fund --silent --prefix "$TOOLS" turbo@2 >/dev/null
  mkdir -p "$TMP/turbo" && cd "$TMP/turbo"
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
  git init -q && git add -A && git -c user.name=b -c user.email=b@e commit -qm b
  TURBO_BIN=$TOOLS/node_modules/.bin/turbo
  "$TURBO_BIN" run build --concurrency=2 >/dev/null 2>&1 || true
  turbo=$(bench turbo "$TURBO_BIN run build --concurrency=2 --output-logs=none")
  echo "| cached deploy of $N vs turbo replay | $(ms "$cached") ms | turbo $(ms "$turbo") ms | $(ratio "$cached" "$turbo") | <= 0.5 |"
fi

# 2. Locking N services: Redis vs file.
cd "$TMP/cached"
file=$(bench lockfile "$PILUM -q deploy -j 2 --no-cache --state file")
redis=$(bench lockredis "$PILUM -q deploy -j 2 --no-cache --state $URL")
echo "| deploy of $N, Redis locks | $(ms "$redis") ms | file $(ms "$file") ms | $(ratio "$redis" "$file") | <= 1.1 |"

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
hf=$(bench histfile "$PILUM -q history --limit 20 --state file")
hr=$(bench histredis "$PILUM -q history --limit 20 --state $URL")
echo "| history --limit 20 of $RECORDS, file | $(ms "$hf") ms | | | < 50 ms |"
echo "| history --limit 20 of $RECORDS, Redis | $(ms "$hr") ms | | | < 50 ms |"
