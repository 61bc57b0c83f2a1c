#!/usr/bin/env bash
# Benchmarks of the deploy pipeline (release build). Every result is a ratio against a baseline
# measured in the same run on the same machine, round by round (see docs/performance.md for the
# method): each row shows the median ratio and its spread, the minimum and maximum of the
# per-round ratios, and says when that spread crosses the goal.
#
#   benches/deploy.sh            # prints a Markdown table for docs/performance.md
#   ROUNDS=9 benches/deploy.sh   # more rounds per measurement
#
# Needs bash, python3, git, make, npm (for Turborepo) and fd (`fd` or `fdfind`); generates its
# trees with benches/support/gen-monorepo.sh (override with GEN=...). Turborepo is installed
# from npm, pinned (TURBO_VERSION), under a scratch prefix that is removed afterwards
# (TURBO=<binary> to use another one).
#
# Every `pilum deploy` runs with `--no-cache`: the build cache would skip every step of a second
# run of an unchanged tree (benches/state.sh measures that).
#
# 1. exec 1000: 1,000 services x 3 `true` steps, barriers, 2 workers: `pilum deploy -j 2` vs
#    the ideal executor (benches/support/spawn_baseline.rs `ideal`: 2 threads, `sh -c true` per
#    task, output captured) and `make -j2` on the generated Makefile, all three in one
#    interleaved batch (goals: <= 1.10x the ideal, <= 1.0x make); CPU time (user + sys) per
#    task for pilum and the ideal.
# 2. exec 100: the same at 100 services (goal: <= 1.15x the ideal).
# 3. one service: `pilum deploy` of one service with three `true` steps (goal: < 25 ms).
# 4. list: `pilum list` on 1,000 services among 100,000 files vs fd finding and reading the same
#    files (goal: within 1.5x), and vs `git ls-files` doing the same inside the repository.
# 5. affected: `pilum plan --only-changed --json --no-cache` (change detection alone), 20
#    changed of 1,000 among 100,000 files, vs `turbo run build --filter=...[bench-base...HEAD]
#    --dry=json` (goal: <= 0.75x), both checked against the generator's oracle first, and vs the
#    git commands alone (context); then the default `plan`, which also hashes the selected
#    services' inputs for the build cache, vs turbo (context).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GEN=${GEN:-$ROOT/benches/support/gen-monorepo.sh}
ROUNDS=${ROUNDS:-5}
TURBO_VERSION=${TURBO_VERSION:-2.11.11}
FD=$(command -v fd || command -v fdfind || true)
for tool in make git python3; do
  command -v "$tool" >/dev/null || { echo "benches/deploy.sh needs $tool" >&2; exit 2; }
done
[ -n "$FD" ] || { echo "benches/deploy.sh needs fd (or fdfind)" >&2; exit 2; }
[ -x "$GEN" ] || { echo "benches/deploy.sh: no generator at $GEN" >&2; exit 2; }

# PILUM= and IDEAL= measure other builds (e.g. one already built) instead of building these.
if [ -z "${PILUM:-}" ] || [ -z "${IDEAL:-}" ]; then
  cargo build --release --quiet --bin pilum --example spawn_baseline
fi
PILUM=${PILUM:-$ROOT/target/release/pilum}
IDEAL=${IDEAL:-$ROOT/target/release/examples/spawn_baseline}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Turborepo, pinned, from npm under the scratch prefix (the native binary, not the Node shim).
if [ -z "${TURBO:-}" ]; then
  command -v npm >/dev/null || { echo "benches/deploy.sh needs npm (for Turborepo) or TURBO=<binary>" >&2; exit 2; }
  npm install --prefix "$TMP/turbo" --no-audit --no-fund --loglevel=error "turbo@$TURBO_VERSION" >&2
  TURBO=$(find "$TMP/turbo/node_modules/@turbo" -path '*/bin/turbo' -type f | head -n 1)
  [ -x "$TURBO" ] || { echo "benches/deploy.sh: no native turbo binary under $TMP/turbo" >&2; exit 2; }
fi
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1

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

gen "$TMP/m1000" -n 1000 -d 3 -k 20
gen "$TMP/m100" -n 100 -d 3 -k 10
gen "$TMP/m1" -n 1 -d 1 -k 1 -p 0
gen "$TMP/big" -n 1000 -d 3 -x 100000 -k 20

cat > "$TMP/fd.sh" <<SH
cd "$TMP/big" && "$FD" -t f -g pilum.yaml -0 . | xargs -0 cat >/dev/null
SH
cat > "$TMP/lsfiles.sh" <<SH
cd "$TMP/big" && git ls-files -z --cached --others --exclude-standard -- ':(glob)**/pilum.yaml' | xargs -0 cat >/dev/null
SH
# The git commands `plan --only-changed` runs, one after the other.
cat > "$TMP/gitonly.sh" <<SH
cd "$TMP/big"
git rev-parse --show-prefix --is-shallow-repository --verify HEAD >/dev/null
git merge-base bench-base HEAD >/dev/null
git diff --name-only --no-renames -z bench-base HEAD -- >/dev/null
git status --porcelain=v1 -z --untracked-files=all --no-renames >/dev/null
git ls-files -z --cached -- ':(glob)**/pilum.yaml' >/dev/null
SH

# Correctness first: pilum's and Turborepo's affected sets must match the generator's oracle.
names=$(sort "$TMP/big/.bench/affected.txt")
pilum_names=$("$PILUM" plan --only-changed --since bench-base --json -C "$TMP/big" |
  python3 -c 'import json,sys; print("\n".join(sorted(s["name"] for s in json.load(sys.stdin)["plan"]["services"])))')
[ "$pilum_names" = "$names" ] || {
  echo "affected: pilum selected $(printf '%s\n' "$pilum_names" | wc -l) services, not the oracle's $(printf '%s\n' "$names" | wc -l)" >&2
  exit 1
}
turbo_names=$(cd "$TMP/big" && "$TURBO" run build --filter='...[bench-base...HEAD]' --dry=json |
  python3 -c 'import json,sys; print("\n".join(sorted(p for p in json.load(sys.stdin)["packages"] if p != "//")))')
[ "$turbo_names" = "$names" ] || {
  echo "affected: turbo selected $(printf '%s\n' "$turbo_names" | wc -l) packages, not the oracle's $(printf '%s\n' "$names" | wc -l)" >&2
  exit 1
}
count=$(printf '%s\n' "$names" | wc -l)

python3 "$ROOT/benches/support/interleave.py" "$PILUM" "$IDEAL" "$TURBO" "$TMP" "$ROUNDS" "$count"
