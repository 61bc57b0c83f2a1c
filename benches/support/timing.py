"""Timing helpers shared by the bench drivers (interleave.py, pair.py): run commands
alternately, round after round (posix_spawn + wait4, output to /dev/null), so background load hits
every side of a comparison alike; report medians, the median of the per-round ratios, their
spread (minimum to maximum) and whether the whole spread meets the goal.
"""

import os
import statistics
import sys
import time

null = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]


def once(argv, cwd=None):
    """(wall ms, CPU ms = user + sys of the process and every child it waited for)."""
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        t = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=null)
        _, status, ru = os.wait4(pid, 0)
        dt = time.perf_counter() - t
    finally:
        os.chdir(old)
    if status != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}")
    return dt * 1000, (ru.ru_utime + ru.ru_stime) * 1000


def interleaved(cmds, n, warmup=1):
    """Per command, the list of (wall, cpu) of each round."""
    for c in cmds:
        for _ in range(warmup):
            once(*c)
    rows = [[] for _ in cmds]
    for _ in range(n):
        for i, c in enumerate(cmds):
            rows[i].append(once(*c))
    return rows


def wall(rows):
    return [w for w, _ in rows]


def cpu(rows):
    return [c for _, c in rows]


def med(xs):
    return statistics.median(xs)


def verdict(ratios, goal):
    lo, hi = min(ratios), max(ratios)
    if goal is None:
        return ""
    if hi <= goal:
        return "met in every round"
    if lo > goal:
        return "not met in any round"
    return f"spread crosses the goal ({sum(r <= goal for r in ratios)}/{len(ratios)} rounds met)"


table = []


def row(name, a, b, bname, goal=None, unit="ms", digits=0):
    """A ratio row: `a` and `b` are per-round values of the same rounds."""
    ratios = [x / y for x, y in zip(a, b)]
    g = f"<= {goal:.2f}x" if goal is not None else ""
    table.append(
        f"| {name} | {med(a):.{digits}f} {unit} | {bname} {med(b):.{digits}f} {unit} "
        f"| {med(ratios):.2f}x | {min(ratios):.2f}–{max(ratios):.2f}x | {g} | {verdict(ratios, goal)} |")


def plain(name, a, b, bname, note=""):
    table.append(f"| {name} | {a} | {bname} {b} | | | | {note} |")


