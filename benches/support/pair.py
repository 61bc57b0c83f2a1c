"""One interleaved comparison, as a Markdown table row (benches/state.sh, benches/report.sh):

    python3 pair.py ROUNDS GOAL NAME BASELINE_NAME -- COMMAND… [-- BASELINE…]

With a baseline: COMMAND and BASELINE alternate round after round and the row shows both
medians, the median per-round ratio, its spread and the verdict against GOAL (a ratio; `-` for
none). Without one: the row shows COMMAND's median and spread (min–max) against GOAL in ms.
Each command runs in the current directory; timing is timing.py's.
"""

import sys

from timing import interleaved, med, row, table, wall

rounds, goal, name, bname = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
rest = sys.argv[5:]
if not rest or rest[0] != "--":
    sys.exit(__doc__)
cmds = [[]]
for a in rest[1:]:
    if a == "--":
        cmds.append([])
    else:
        cmds[-1].append(a)
goal = None if goal == "-" else float(goal)
if len(cmds) == 2:
    a, b = interleaved([(cmds[0],), (cmds[1],)], rounds)
    row(name, wall(a), wall(b), bname, goal, digits=1)
    print(table[-1])
else:
    (a,) = interleaved([(cmds[0],)], rounds)
    w = wall(a)
    met = "" if goal is None else ("met in every round" if max(w) < goal else
                                   "not met in any round" if min(w) >= goal else
                                   f"spread crosses the goal ({sum(x < goal for x in w)}/{len(w)} rounds met)")
    g = "" if goal is None else f"< {goal:.0f} ms"
    print(f"| {name} | {med(w):.1f} ms | | | {min(w):.1f}–{max(w):.1f} ms | {g} | {met} |")
