"""The timing driver of benches/deploy.sh: runs pilum and its baselines alternately, round after
round (posix_spawn + wait4, output to /dev/null), so background load hits every side of a
comparison alike. Each row reports medians, the median of the per-round ratios and their spread
(minimum to maximum), and whether the whole spread meets the goal.

    python3 interleave.py PILUM IDEAL TURBO TMP ROUNDS AFFECTED
"""

import sys

from timing import cpu, interleaved, med, plain, row, table, wall

pilum, ideal, turbo, tmp, rounds, affected = sys.argv[1:7]
rounds, affected = int(rounds), int(affected)

P = lambda *a: ([pilum, *a],)
make = lambda d: (["make", "-s", "-C", f"{tmp}/{d}", "-j2"],)
ide = lambda d: ([ideal, "ideal", f"{tmp}/{d}", "2", "3"],)

for size, n, goal_ideal, goal_make in (("1000", rounds, 1.10, 1.0), ("100", rounds * 3, 1.15, None)):
    d = f"m{size}"
    m, i, p = interleaved([make(d), ide(d), P("deploy", "-q", "-j", "2", "--no-cache", "-C", f"{tmp}/{d}")], n)
    tasks = int(size) * 3
    label = f"{int(size):,} services x 3 `true` steps, barriers, 2 workers"
    row(label, wall(p), wall(i), "ideal", goal_ideal)
    row(f"same, against make", wall(p), wall(m), "`make -j2`", goal_make)
    pc, ic, mc = (med(cpu(x)) / tasks for x in (p, i, m))
    plain(f"CPU (user + sys) per task, {size} services", f"{pc:.3f} ms",
          f"{ic:.3f} ms", "ideal", f"make {mc:.3f} ms; wall per task: pilum "
          f"{med(wall(p)) / tasks:.3f} ms, ideal {med(wall(i)) / tasks:.3f} ms")

t, one = interleaved([(["/bin/true"],), P("deploy", "-q", "--no-cache", "-C", f"{tmp}/m1")], rounds * 10, 3)
plain("`pilum deploy`, 1 service x 3 `true` steps", f"{med(wall(one)):.1f} ms",
      f"{med(wall(t)):.1f} ms", "`/bin/true`",
      f"goal < 25 ms; spread {min(wall(one)):.1f}–{max(wall(one)):.1f} ms")

lfd, lgit, lp = interleaved([(["sh", f"{tmp}/fd.sh"],), (["sh", f"{tmp}/lsfiles.sh"],),
                             P("list", "-q", "--json", "-C", f"{tmp}/big")], rounds * 2, 2)
row("`pilum list`, 1,000 services among 100,000 files", wall(lp), wall(lfd), "`fd` + `cat`", 1.5,
    digits=1)
row("same, against the git index", wall(lp), wall(lgit), "`git ls-files` + `cat`", None, digits=1)

# Change detection alone (`--no-cache`: no input hashes), and the plan a user sees by default,
# which also hashes every selected service's inputs to say what the build cache would skip.
plan = ("plan", "--only-changed", "--since", "bench-base", "--json", "-C", f"{tmp}/big")
tb, ag, ap, ah = interleaved([
    ([turbo, "run", "build", "--filter=...[bench-base...HEAD]", "--dry=json"], f"{tmp}/big"),
    (["sh", f"{tmp}/gitonly.sh"],),
    P(*plan, "--no-cache"),
    P(*plan),
], rounds * 2, 2)
label = f"`plan --only-changed --json --no-cache`, 20 changed, {affected} affected of 1,000, 100,000 files"
row(label, wall(ap), wall(tb), "turbo", 0.75, digits=1)
row("same, against the git commands alone", wall(ap), wall(ag), "git", None, digits=1)
plain("CPU (user + sys) of the same", f"{med(cpu(ap)):.1f} ms", f"{med(cpu(tb)):.1f} ms", "turbo",
      f"git alone {med(cpu(ag)):.1f} ms")
row("same with the build-cache lookup (the default: input hashes)", wall(ah), wall(tb), "turbo",
    None, digits=1)

print(f"Interleaved rounds: {rounds} for 1,000 services, {rounds * 3} for 100, "
      f"{rounds * 2} for the 100,000-file tree. Ratio = median of the per-round ratios; "
      f"spread = their minimum and maximum.\n")
print("| benchmark | pilum | baseline | ratio | spread | goal | verdict |")
print("|---|---|---|---|---|---|---|")
print("\n".join(table))
