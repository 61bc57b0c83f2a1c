#!/usr/bin/env bash
# Benchmarks of the pictures at 1,000 services (release build). Every timing is a ratio against
# a baseline measured in the same run on the same machine (docs/performance.md, "Run report").
#
#   benches/report.sh                         # prints a Markdown table for docs/performance.md
#   ROUNDS=15 benches/report.sh               # more rounds per measurement
#   BEFORE=/path/to/old/pilum benches/report.sh
#                                             # also compare with a build without the report
#   PILUM=/path/to/pilum benches/report.sh    # measure a build made before instead of building
#
# Needs bash, python3, git and chromium; generates its tree with benches/support/gen-monorepo.sh
# (override with GEN=...).
#
# 1. cost: `pilum deploy -q -j 2` of 1,000 services x 3 `true` steps with `--report run.html`
#    vs the same without, alternating round after round (both record and save the run; the
#    difference is drawing and writing the page). Goal: <= 1.05x. With BEFORE, the same run
#    with `--report` vs the old build without it: recording and saving included.
# 2. size: the report's HTML (goal: < 2 MB), the saved run, `pilum graph --format html`.
# 3. load: each page opened in headless Chromium inside an iframe of a small page that times
#    the iframe's load event and a forced layout, and counts the bars (or graph nodes) it
#    finds; vs an empty page. Goal: a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GEN=${GEN:-$ROOT/benches/support/gen-monorepo.sh}
ROUNDS=${ROUNDS:-9}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
for tool in git python3; do
  command -v "$tool" >/dev/null || { echo "benches/report.sh needs $tool" >&2; exit 2; }
done
[ -n "$CHROMIUM" ] || { echo "benches/report.sh needs chromium (Debian package: chromium)" >&2; exit 2; }

if [ -z "${PILUM:-}" ]; then
  cargo build --release --quiet --bin pilum
fi
PILUM=${PILUM:-$ROOT/target/release/pilum}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1,000 services, each with `shell` steps build, push and deploy = `true`.
"$GEN" -L -n 1000 -d 3 -k 20 "$TMP/m1000" >/dev/null
(
  cd "$TMP/m1000"
  while IFS= read -r d; do
    sed -i '/^# steps/d' "$d/pilum.yaml"
    printf 'shell:\n  build: "true"\n  push: "true"\n  deploy: "true"\n' >> "$d/pilum.yaml"
  done < .bench/services.txt
  git -c user.name=bench -c user.email=bench@example.invalid commit -q -am "bench: shell steps"
  echo ".pilum/" >> .git/info/exclude
)

# Correctness first: one bar per task, under 2 MB.
"$PILUM" deploy -q -j 2 -C "$TMP/m1000" --report "$TMP/run.html" 2>/dev/null
bars=$(grep -o '<g class="bar ' "$TMP/run.html" | wc -l)
[ "$bars" = 3000 ] || { echo "the report has $bars bars, not 3000" >&2; exit 1; }
"$PILUM" graph --format html -C "$TMP/m1000" > "$TMP/graph.html"
nodes=$(grep -o '<g class="node ' "$TMP/graph.html" | wc -l)
[ "$nodes" = 1000 ] || { echo "the graph has $nodes nodes, not 1000" >&2; exit 1; }
run_json=$(ls -S "$TMP/m1000/.pilum/runs/"*.json | head -1)

cat > "$TMP/blank.html" <<'HTML'
<!DOCTYPE html><html><head><title>blank</title></head><body></body></html>
HTML
# Loads the page named after `#` in an iframe; writes "load-ms layout-ms elements" on <body>.
cat > "$TMP/probe.html" <<'HTML'
<!DOCTYPE html><html><head><title>probe</title></head><body><script>
const t0 = performance.now();
const f = document.createElement('iframe');
f.style.width = '1400px'; f.style.height = '1000px';
f.onload = () => {
  const loaded = performance.now() - t0;
  const d = f.contentDocument;
  const n = d.querySelectorAll('g.bar, g.node').length;
  void d.documentElement.getBoundingClientRect();
  void d.documentElement.scrollHeight;
  document.body.setAttribute('data-result', loaded.toFixed(1) + ' ' + (performance.now() - t0).toFixed(1) + ' ' + n);
};
f.src = location.hash.slice(1);
document.body.appendChild(f);
</script></body></html>
HTML

python3 - "$PILUM" "$TMP" "$ROUNDS" "$CHROMIUM" "$run_json" "${BEFORE:-}" <<'PY'
import os, re, statistics, subprocess, sys, tempfile, time
pilum, tmp, rounds, chromium, run_json, before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def once(argv):
    """Wall time of one run in ms (a second-long run: the spawn cost does not matter)."""
    t = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(argv)}")
    return (time.perf_counter() - t) * 1000

def paired(a, b, n):
    """Alternate a and b (the first of each pair switching), n pairs after a warm-up each."""
    once(a); once(b)
    ta, tb = [], []
    for i in range(n):
        if i % 2 == 0:
            ta.append(once(a)); tb.append(once(b))
        else:
            tb.append(once(b)); ta.append(once(a))
    ratios = sorted(y / x for x, y in zip(ta, tb))
    q = lambda p: ratios[min(len(ratios) - 1, int(p * len(ratios)))]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios), q(0.25), q(0.75), ratios[0], ratios[-1]

deploy = [pilum, "deploy", "-q", "-j", "2", "--no-cache", "-C", f"{tmp}/m1000"]
without, with_, ratio, q1, q3, lo, hi = paired(deploy, deploy + ["--report", f"{tmp}/run.html"], rounds)
rows = [("1,000 x 3 `true` steps, 2 workers: `--report` vs without", f"{with_:.0f} ms", f"{without:.0f} ms",
         f"{ratio:.3f}x (quartiles {q1:.3f}–{q3:.3f}, range {lo:.3f}–{hi:.3f})", "<= 1.05x")]
if before:
    old = [before, "deploy", "-q", "-j", "2", "-C", f"{tmp}/m1000"]
    b_old, b_new, ratio, q1, q3, lo, hi = paired(old, deploy + ["--report", f"{tmp}/run.html"], rounds)
    rows.append(("same, `--report` vs the build before the report (BEFORE)", f"{b_new:.0f} ms", f"{b_old:.0f} ms",
                 f"{ratio:.3f}x (quartiles {q1:.3f}–{q3:.3f}, range {lo:.3f}–{hi:.3f})", "<= 1.05x"))

size = lambda p: os.path.getsize(p) / 1e6
rows.append(("run report HTML, 1,000 x 3", f"{size(f'{tmp}/run.html'):.2f} MB", "", "", "< 2 MB"))
rows.append(("saved run (`.pilum/runs/*.json`)", f"{size(run_json):.2f} MB", "", "", ""))
rows.append(("`pilum graph --format html`, 1,000 services", f"{size(f'{tmp}/graph.html'):.2f} MB", "", "", ""))

def chrome(page):
    with tempfile.TemporaryDirectory() as profile:
        argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files",
                f"--user-data-dir={profile}", "--dump-dom", f"file://{tmp}/probe.html#{page}"]
        t = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
        wall = (time.perf_counter() - t) * 1000
    m = re.search(r'data-result="([\d.]+) ([\d.]+) (\d+)"', out)
    if not m:
        sys.exit(f"chromium did not load {page}")
    return float(m.group(1)), float(m.group(2)), int(m.group(3)), wall

chrome("blank.html")
loads = {p: [] for p in ("blank.html", "run.html", "graph.html")}
for _ in range(max(3, rounds // 2)):
    for p in loads:
        loads[p].append(chrome(p))
for page, what, want in (("run.html", "run report", 3000), ("graph.html", "graph page", 1000)):
    found = {r[2] for r in loads[page]}
    if found != {want}:
        sys.exit(f"{page}: Chromium found {found} elements, not {want}")
    laid = statistics.median(r[1] for r in loads[page])
    blank = statistics.median(r[1] for r in loads["blank.html"])
    wall = statistics.median(r[3] for r in loads[page])
    bwall = statistics.median(r[3] for r in loads["blank.html"])
    rows.append((f"Chromium: {what} loaded and laid out ({want} elements found)", f"{laid:.0f} ms", f"empty page {blank:.0f} ms", f"+{laid - blank:.0f} ms", "a few seconds"))
    rows.append((f"Chromium: whole headless run, {what}", f"{wall:.0f} ms", f"empty page {bwall:.0f} ms", f"+{wall - bwall:.0f} ms", ""))

print(f"Medians of {rounds} alternating rounds (Chromium: {len(loads['blank.html'])} rounds).\n")
print("| measure | pilum | baseline | ratio | goal |\n|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
