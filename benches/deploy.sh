#!/usr/bin/env bash
# Benchmarks of the deploy pipeline (release build). Every result is a ratio against a baseline
# measured in the same run on the same machine (see docs/performance.md for the method).
#
#   benches/deploy.sh            # prints a Markdown table for docs/performance.md
#   ROUNDS=9 benches/deploy.sh   # more rounds per measurement
#
# Needs bash, python3, git, make and fd (`fd` or `fdfind`); generates its trees with
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
ROUNDS=${ROUNDS:-5}
FD=$(command -v fd || command -v fdfind || true)
for tool in make git python3; do
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
cat > "$TMP/gitonly.sh" <<SH
cd "$TMP/big"
git rev-parse --show-prefix --is-shallow-repository >/dev/null
git diff --name-only --no-renames -z bench-base...HEAD -- >/dev/null
git diff --name-only --no-renames -z HEAD -- >/dev/null
git ls-files --others --exclude-standard --full-name -z :/ >/dev/null
git ls-files -z --cached -- ':(glob)**/pilum.yaml' >/dev/null
SH

# Correctness first: the affected set must match the generator's oracle.
got=$("$PILUM" plan --only-changed --since bench-base --json -C "$TMP/big" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["plan"]["services"]))')
want=$(wc -l < "$TMP/big/.bench/affected.txt")
[ "$got" = "$want" ] || { echo "affected: pilum selected $got services, the oracle says $want" >&2; exit 1; }

# Every comparison runs pilum and its baseline alternately, round after round, so background
# load hits both alike; medians are reported.
python3 - "$PILUM" "$TMP" "$ROUNDS" "$want" <<'PY'
import os, statistics, sys, time
pilum, tmp, rounds, want = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
null = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]

def once(argv):
    t = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=null)
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter() - t
    if status != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}")
    return dt * 1000

def interleaved(cmds, n, warmup=1):
    for c in cmds:
        for _ in range(warmup):
            once(c)
    times = [[] for _ in cmds]
    for _ in range(n):
        for i, c in enumerate(cmds):
            times[i].append(once(c))
    return [statistics.median(t) for t in times]

P = lambda *a: [pilum, *a]
m1k, p1k = interleaved([["make", "-s", "-C", f"{tmp}/m1000", "-j2"], P("deploy", "-q", "-j", "2", "-C", f"{tmp}/m1000")], rounds)
m100, p100 = interleaved([["make", "-s", "-C", f"{tmp}/m100", "-j2"], P("deploy", "-q", "-j", "2", "-C", f"{tmp}/m100")], rounds * 3)
tru, one = interleaved([["/bin/true"], P("deploy", "-q", "-C", f"{tmp}/m1")], rounds * 10, 3)
lfd, lgit, lp = interleaved([["sh", f"{tmp}/fd.sh"], ["sh", f"{tmp}/lsfiles.sh"], P("list", "-q", "--json", "-C", f"{tmp}/big")], rounds * 2, 2)
ag, ap = interleaved([["sh", f"{tmp}/gitonly.sh"], P("plan", "--only-changed", "--since", "bench-base", "--json", "-C", f"{tmp}/big")], rounds * 2, 2)

per1k, per100 = p1k / 3000, p100 / 300
mper1k, mper100 = m1k / 3000, m100 / 300
print(f"Medians of interleaved rounds ({rounds} for the 1,000-service runs).\n")
print("| benchmark | pilum | baseline | ratio | goal |")
print("|---|---|---|---|---|")
print(f"| 1,000 services x 3 `true` steps, barriers, 2 workers | {p1k:.0f} ms | `make -j2` {m1k:.0f} ms | {p1k / m1k:.2f}x | <= 1.15x |")
print(f"| 100 services x 3 `true` steps, barriers, 2 workers | {p100:.0f} ms | `make -j2` {m100:.0f} ms | {p100 / m100:.2f}x | |")
print(f"| per-task cost at 1,000 vs at 100 services | {per1k:.3f} ms | {per100:.3f} ms | {per1k / per100:.2f}x | <= 1.1x |")
print(f"| (context) `make -j2` per task, 1,000 vs 100 | {mper1k:.3f} ms | {mper100:.3f} ms | {mper1k / mper100:.2f}x | |")
print(f"| `pilum deploy`, 1 service x 3 `true` steps | {one:.1f} ms | `/bin/true` {tru:.1f} ms | +{one - tru:.1f} ms | < 25 ms |")
print(f"| `pilum list`, 1,000 services among 100,000 files | {lp:.1f} ms | `fd` + `cat` {lfd:.1f} ms | {lp / lfd:.2f}x | <= 1.5x |")
print(f"| same, against the git index | {lp:.1f} ms | `git ls-files` + `cat` {lgit:.1f} ms | {lp / lgit:.2f}x | about 1x |")
print(f"| `plan --only-changed --json`, 20 changed, {want} affected of 1,000 | {ap:.1f} ms | the git commands alone {ag:.1f} ms | {ap / ag:.2f}x | <= 1.2x |")
PY
