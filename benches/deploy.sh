#!/usr/bin/env bash
# Benchmarks of the deploy pipeline (release build). Every result is a ratio against a baseline
# measured in the same run on the same machine (see docs/performance.md for the method).
#
#   benches/deploy.sh            # prints a Markdown table for docs/performance.md
#   RUNS=10 benches/deploy.sh    # more runs per measurement
#
# Needs bash, python3, git, make, hyperfine and fd (`fd` or `fdfind`); generates its trees with
# ../shared/bench/gen-monorepo.sh (override with GEN=...).
#
# 1. exec 1000: 1,000 services x 3 `true` steps, barriers, 2 workers: `pilum deploy -j 2` vs
#    `make -j2` on the generated Makefile (goal: within 1.15x).
# 2. per task: the per-task cost at 1,000 services vs at 100 (goal: within 1.1x).
# 3. one service: `pilum deploy` of one service with three `true` steps, median (goal: < 25 ms).
# 4. list: `pilum list` on 1,000 services among 100,000 files vs fd finding and reading the same
#    files (goal: within 1.5x), and vs `git ls-files` doing the same inside the repository.
# 5. affected: `pilum plan --only-changed --json`, 20 changed of 1,000, vs the git commands it
#    needs run by themselves (goal: within 1.2x).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GEN=${GEN:-$ROOT/../shared/bench/gen-monorepo.sh}
[ -x "$GEN" ] || GEN=/work/shared/bench/gen-monorepo.sh
RUNS=${RUNS:-5}
FD=$(command -v fd || command -v fdfind || true)
for tool in hyperfine make git python3; do
  command -v "$tool" >/dev/null || { echo "benches/deploy.sh needs $tool" >&2; exit 2; }
done
[ -n "$FD" ] || { echo "benches/deploy.sh needs fd (or fdfind)" >&2; exit 2; }

cargo build --release --quiet --bin pilum
PILUM=$ROOT/target/release/pilum
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Generate a tree, then give every service real `shell` steps in BOTH commits (rewriting the
# history keeps `bench-base...HEAD` touching only the CHANGED services).
gen() {
  local dir=$1; shift
  "$GEN" -L "$@" "$dir" >/dev/null
  (
    cd "$dir"
    export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
    export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
    git checkout -q bench-base
    while IFS= read -r d; do
      sed -i '/^# steps/d' "$d/pilum.yaml"
      printf 'shell:\n  build: "true"\n  push: "true"\n  deploy: "true"\n' >> "$d/pilum.yaml"
    done < .bench/services.txt
    git commit -q -am "bench: shell steps"
    git tag -f bench-base >/dev/null
    git cherry-pick main >/dev/null
    git branch -q -f main HEAD
    git checkout -q main
    echo ".pilum/" >> .git/info/exclude
  )
}

median_ms() { # hyperfine JSON -> median ms
  python3 -c 'import json,sys; print("%.3f" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$1"
}

measure() { # name runs warmup cmd...
  local name=$1 runs=$2 warm=$3; shift 3
  hyperfine -N --style none --runs "$runs" --warmup "$warm" --export-json "$TMP/$name.json" "$@" >/dev/null 2>&1 \
    || hyperfine --style none --runs "$runs" --warmup "$warm" --export-json "$TMP/$name.json" "$@" >/dev/null
  median_ms "$TMP/$name.json"
}

gen "$TMP/m1000" -n 1000 -d 3 -k 20
gen "$TMP/m100" -n 100 -d 3 -k 10
gen "$TMP/m1" -n 1 -d 1 -k 1 -p 0
gen "$TMP/big" -n 1000 -d 3 -x 100000 -k 20

# 1 + 2: execution with barriers, 2 workers.
make_1000=$(measure make1000 "$RUNS" 1 "make -s -C $TMP/m1000 -j2")
pilum_1000=$(measure pilum1000 "$RUNS" 1 "$PILUM deploy -q -j 2 -C $TMP/m1000")
make_100=$(measure make100 "$((RUNS * 4))" 2 "make -s -C $TMP/m100 -j2")
pilum_100=$(measure pilum100 "$((RUNS * 4))" 2 "$PILUM deploy -q -j 2 -C $TMP/m100")

# 3: one service, three steps.
one=$(measure one 50 5 "$PILUM deploy -q -C $TMP/m1")
true_ms=$(measure true 50 5 "/bin/true")

# 4: discovery among 100,000 files (half of them git-ignored).
list_pilum=$(measure list "$((RUNS * 2))" 2 "$PILUM list -q --json -C $TMP/big")
cat > "$TMP/fd.sh" <<SH
cd "$TMP/big" && "$FD" -u -t f --exclude .git --exclude node_modules -g pilum.yaml -0 . | xargs -0 cat >/dev/null
SH
cat > "$TMP/fdi.sh" <<SH
cd "$TMP/big" && "$FD" -t f -g pilum.yaml -0 . | xargs -0 cat >/dev/null
SH
cat > "$TMP/lsfiles.sh" <<SH
cd "$TMP/big" && git ls-files -z --cached --others --exclude-standard -- ':(glob)**/pilum.yaml' | xargs -0 cat >/dev/null
SH
list_fd=$(measure fd "$((RUNS * 2))" 2 "sh $TMP/fdi.sh")
list_git=$(measure lsfiles "$((RUNS * 2))" 2 "sh $TMP/lsfiles.sh")

# 5: affected services, 20 changed of 1,000, in the 100,000-file tree.
cat > "$TMP/gitonly.sh" <<SH
cd "$TMP/big"
git rev-parse --show-prefix --is-shallow-repository >/dev/null
git diff --name-only --no-renames -z bench-base...HEAD -- >/dev/null
git diff --name-only --no-renames -z HEAD -- >/dev/null
git ls-files --others --exclude-standard --full-name -z :/ >/dev/null
SH
affected_git=$(measure gitonly "$((RUNS * 2))" 2 "sh $TMP/gitonly.sh")
affected_pilum=$(measure affected "$((RUNS * 2))" 2 "$PILUM plan --only-changed --since bench-base --json -C $TMP/big")
got=$("$PILUM" plan --only-changed --since bench-base --json -C "$TMP/big" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["plan"]["services"]))')
want=$(wc -l < "$TMP/big/.bench/affected.txt")
[ "$got" = "$want" ] || { echo "affected: pilum selected $got services, the oracle says $want" >&2; exit 1; }

python3 - "$make_1000" "$pilum_1000" "$make_100" "$pilum_100" "$one" "$true_ms" "$list_pilum" "$list_fd" "$list_git" "$affected_git" "$affected_pilum" "$want" <<'PY'
import sys
m1k, p1k, m100, p100, one, tru, lp, lfd, lgit, ag, ap, want = map(float, sys.argv[1:])
per1k, per100 = p1k / 3000, p100 / 300
print("| benchmark | pilum | baseline | ratio | goal |")
print("|---|---|---|---|---|")
print(f"| 1,000 services x 3 `true` steps, barriers, `-j 2` | {p1k:.0f} ms | `make -j2` {m1k:.0f} ms | {p1k / m1k:.2f}x | <= 1.15x |")
print(f"| 100 services x 3 steps, `-j 2` | {p100:.0f} ms | `make -j2` {m100:.0f} ms | {p100 / m100:.2f}x | |")
print(f"| per-task cost, 1,000 vs 100 services | {per1k:.3f} ms | {per100:.3f} ms | {per1k / per100:.2f}x | <= 1.1x |")
print(f"| `pilum deploy`, 1 service x 3 steps (median) | {one:.1f} ms | `/bin/true` {tru:.1f} ms | +{one - tru:.1f} ms | < 25 ms |")
print(f"| `pilum list`, 1,000 services in 100,000 files | {lp:.1f} ms | fd + cat {lfd:.1f} ms | {lp / lfd:.2f}x | <= 1.5x |")
print(f"| same, vs the git index | {lp:.1f} ms | `git ls-files` + cat {lgit:.1f} ms | {lp / lgit:.2f}x | close to 1x |")
print(f"| `plan --only-changed --json`, {int(want)} affected of 1,000 | {ap:.1f} ms | its git commands {ag:.1f} ms | {ap / ag:.2f}x | <= 1.2x |")
PY
