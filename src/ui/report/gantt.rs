//! The run report: one self-contained HTML page with a summary table on top (status, counts,
//! the critical path, a row per phase, the problems) and a Gantt timeline in inline SVG — one
//! row per service (more lanes when its tasks overlap, e.g. regions), one bar per task coloured
//! by phase, dashed barrier lines where each phase opened, failed attempts hatched, skips as
//! hollow markers, the critical path outlined and joined, and a tooltip per bar (`<title>`:
//! command, duration, exit, error, the last lines of output). No script, no external asset.
//!
//! Class names are the contract with the tests and with anyone styling the page: every task is
//! one `g.bar` with `data-task`, `data-phase`, `data-outcome`, a `phase-N` class and its outcome
//! class (`ok`, `retried`, `failed`, `timed-out`, `cancelled`, `skipped`, `cache-hit`,
//! `not-run`, see [`Outcome`]); a lock wait is a `rect.lock-wait` before the first attempt;
//! barriers are `line.barrier` with `data-phase`, in phase order. The run must be
//! [`Run::check`]ed (recorded runs are).

use std::fmt::Write;

use super::markup::{BASE_STYLE, cut, esc, num, page};
use super::record::Run;
use super::timeline::{self, Outcome, Span, Timeline, human_us};

const LABEL_W: f64 = 210.0;
const PLOT_W: f64 = 980.0;
const RIGHT: f64 = 24.0;
const AXIS_H: f64 = 40.0;
const LANE_H: f64 = 14.0;
const BAR_H: f64 = 10.0;
const MIN_W: f64 = 1.5;
const MARK_W: f64 = 7.0;
/// Characters of a service name shown in its row label.
const NAME_CHARS: usize = 28;
/// Rows of the problems table (failures, retries, skips) before "and N more".
const PROBLEMS: usize = 40;
/// Tasks named on the critical path before "…".
const PATH_NAMES: usize = 12;
/// Distinct phase colours before they repeat.
pub(crate) const PHASE_COLOURS: usize = 8;

const STYLE: &str = "\
.phase-0 { --phase: #4c78a8; } .phase-1 { --phase: #b279a2; } .phase-2 { --phase: #54a24b; }
.phase-3 { --phase: #f58518; } .phase-4 { --phase: #72b7b2; } .phase-5 { --phase: #9d755d; }
.phase-6 { --phase: #e0b92f; } .phase-7 { --phase: #ff9da6; }
.gantt .stripe { fill: #f6f8fa; }
.gantt .row-label { fill: #1f2328; }
.gantt .tick { stroke: #d0d7de; stroke-width: 1; }
.gantt .tick-label { fill: #57606a; font-size: 10px; }
.gantt .barrier { stroke: #57606a; stroke-width: 1; stroke-dasharray: 4 3; }
.gantt .barrier-label { fill: #24292f; font-weight: 600; }
.attempt, .swatch { fill: var(--phase, #8c959f); }
.bar .attempt.failed-attempt, .swatch.failed-attempt { fill: url(#hatch-failed); }
.bar.failed .attempt, .bar.timed-out .attempt, .swatch.failed, .swatch.timed-out { fill: #d1242f; }
.bar.timed-out .attempt, .swatch.timed-out { stroke: #82071e; stroke-width: 1; stroke-dasharray: 2 1; }
.bar.cancelled .attempt, .swatch.cancelled { fill: #bf8700; }
.bar.failed .attempt.failed-attempt { fill: url(#hatch-failed); }
.bar .delay { stroke: #d1242f; stroke-width: 1; stroke-dasharray: 1 1; }
.bar .marker, .swatch.skipped, .swatch.not-run { fill: #fff; stroke: #8c959f; stroke-width: 1; stroke-dasharray: 2 1; }
.bar.not-run .marker, .swatch.not-run { stroke-dasharray: none; stroke: #d0d7de; }
.bar.cache-hit .attempt, .swatch.cache-hit { fill: url(#stripes-cache); stroke: var(--phase, #8c959f); stroke-width: 1; }
.lock-wait, .swatch.lock-wait { fill: url(#hatch-wait); }
.bar.critical .attempt:last-of-type, .swatch.critical { stroke: #111; stroke-width: 1.5; }
.critical-path { fill: none; stroke: #111; stroke-width: 1; stroke-dasharray: 3 2; opacity: .7; }
.bar:hover .attempt { filter: brightness(1.15); }
.problems td:first-child { white-space: nowrap; }
.gantt-box { overflow-x: auto; }";

/// The whole report page for a recorded run.
pub(crate) fn html(run: &Run) -> String {
    let tl = Timeline::of(run);
    let mut body = String::with_capacity(256 * run.tasks.len() + 8192);
    header(&mut body, run, &tl);
    body.push_str("<h2>timeline</h2>\n");
    legend(&mut body, run);
    body.push_str("<div class=\"gantt-box\">\n");
    svg(&mut body, run, &tl);
    body.push_str("</div>\n");
    let title = format!("pilum {} — {}", run.command, status(run));
    let style = format!("{BASE_STYLE}\n{STYLE}");
    crate::redact::redact(&page(&title, &style, &body, None)).into_owned()
}

fn status(run: &Run) -> &str {
    run.summary.as_ref().map_or("incomplete", |s| s.status.as_str())
}

/// The summary table, the phases, the problems.
fn header(b: &mut String, run: &Run, tl: &Timeline) {
    let st = status(run);
    let dry = if run.dry_run { " (dry run)" } else { "" };
    let _ = writeln!(
        b,
        "<h1>pilum {}{dry} — <span class=\"status-{st}\" id=\"status\">{st}</span></h1>",
        esc(&run.command)
    );
    b.push_str("<table class=\"summary\">\n");
    let mut what = format!("tag <code>{}</code>", esc(&run.tag));
    if let Some(c) = &run.commit {
        let dirty = if run.dirty { " (with uncommitted changes)" } else { "" };
        let _ =
            write!(what, " · commit <code>{}</code>{dirty}", esc(cut(c, 12).trim_end_matches('…')));
    }
    if let Some(e) = &run.environment {
        let _ = write!(what, " · environment <code>{}</code>", esc(e));
    }
    let _ = write!(what, " · started {}", esc(&run.started));
    row(b, "run", &what);
    let wall = run.summary.as_ref().map_or(tl.total_us, |s| s.wall_ms * 1000);
    row(b, "wall time", &human_us(wall));
    let services = match &run.summary {
        Some(s) => tally(
            s.services.total,
            &[
                ("ok", s.services.ok),
                ("failed", s.services.failed),
                ("interrupted", s.services.interrupted),
                ("skipped", s.services.skipped),
            ],
        ),
        None => run.services.len().to_string(),
    };
    row(b, "services", &services);
    let counts: Vec<(&str, usize)> =
        timeline::outcomes(tl).into_iter().map(|(o, n)| (o.words(), n)).collect();
    row(b, "tasks", &tally(run.tasks.len(), &counts));
    if !tl.critical.is_empty() {
        let names: Vec<String> = tl
            .critical
            .iter()
            .take(PATH_NAMES)
            .map(|&i| format!("<code>{}</code>", esc(&run.tasks[i].label)))
            .collect();
        let more = if tl.critical.len() > PATH_NAMES { " → …" } else { "" };
        row(
            b,
            "critical path",
            &format!(
                "{} over {}: {}{more}",
                human_us(tl.critical_us()),
                crate::ui::render::count(tl.critical.len(), "task"),
                names.join(" → ")
            ),
        );
    }
    b.push_str("</table>\n<h2>phases</h2>\n<table class=\"phases\">\n<tr><th>phase</th><th>tasks</th><th>barrier at</th><th>took</th><th>slowest task</th></tr>\n");
    for (p, r) in timeline::phases(run, tl).iter().enumerate() {
        let slowest = r.slowest.map_or(String::new(), |i| {
            format!(
                "<code>{}</code> {}",
                esc(&run.tasks[i].label),
                human_us(timeline::busy(&tl.spans[i]))
            )
        });
        let _ = writeln!(
            b,
            "<tr class=\"phase-{}\"><td><svg width=\"10\" height=\"10\"><rect class=\"swatch\" width=\"10\" height=\"10\"/></svg> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{slowest}</td></tr>",
            p % PHASE_COLOURS,
            esc(&r.name),
            r.tasks,
            r.start.map_or("not started".into(), |s| format!("+{}", human_us(s))),
            r.took.map_or(String::new(), human_us),
        );
    }
    b.push_str("</table>\n");
    problems(b, run, tl);
}

fn row(b: &mut String, th: &str, td: &str) {
    let _ = writeln!(b, "<tr><th>{th}</th><td>{td}</td></tr>");
}

/// `5: 3 ok, 1 failed` (zero counts left out).
fn tally(total: usize, parts: &[(&str, usize)]) -> String {
    let shown: Vec<String> =
        parts.iter().filter(|(_, n)| *n > 0).map(|(w, n)| format!("{n} {w}")).collect();
    if shown.is_empty() { total.to_string() } else { format!("{total}: {}", shown.join(", ")) }
}

/// Failures, retries and skips, bounded.
fn problems(b: &mut String, run: &Run, tl: &Timeline) {
    let ids: Vec<usize> = (0..tl.spans.len())
        .filter(|&i| !matches!(tl.spans[i].outcome, Outcome::Ok | Outcome::CacheHit))
        .collect();
    if ids.is_empty() {
        return;
    }
    b.push_str("<h2>problems</h2>\n<table class=\"problems\">\n<tr><th>task</th><th>outcome</th><th>why</th></tr>\n");
    for &i in ids.iter().take(PROBLEMS) {
        let s = &tl.spans[i];
        let first = s.error.as_deref().or(s.reason.as_deref()).and_then(|e| e.lines().next());
        let first = esc(first.unwrap_or_default());
        let why = match &s.at {
            Some(at) => format!("{first} (<code>{}</code>)", esc(at)),
            None => first.into_owned(),
        };
        let tries = if s.attempts.len() > 1 {
            format!(", {} attempts", s.attempts.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            b,
            "<tr class=\"{}\" data-task=\"{i}\"><td><code>{}</code></td><td>{}{tries}</td><td>{why}</td></tr>",
            s.outcome.class(),
            esc(&run.tasks[i].label),
            s.outcome.words()
        );
    }
    if ids.len() > PROBLEMS {
        let _ = writeln!(
            b,
            "<tr><td colspan=\"3\" class=\"muted\">and {} more</td></tr>",
            ids.len() - PROBLEMS
        );
    }
    b.push_str("</table>\n");
}

/// Phase colours, outcome marks, lock waits, the critical path.
fn legend(b: &mut String, run: &Run) {
    b.push_str("<div class=\"legend\">");
    let swatch = |class: &str, label: &str| {
        format!(
            "<span><svg width=\"16\" height=\"10\"><rect class=\"swatch {class}\" x=\"0.5\" y=\"0.5\" width=\"15\" height=\"9\"/></svg>{}</span>",
            esc(label)
        )
    };
    for (p, name) in run.phases.iter().enumerate() {
        let _ = write!(
            b,
            "<span class=\"phase-{}\"><svg width=\"16\" height=\"10\"><rect class=\"swatch\" x=\"0.5\" y=\"0.5\" width=\"15\" height=\"9\"/></svg>{}</span>",
            p % PHASE_COLOURS,
            esc(name)
        );
    }
    for (class, label) in [
        ("failed-attempt", "failed attempt (retried)"),
        ("failed", "failed"),
        ("timed-out", "timed out"),
        ("cancelled", "interrupted"),
        ("skipped", "skipped"),
        ("cache-hit", "cache hit"),
        ("lock-wait", "waiting for a lock"),
        ("critical", "critical path"),
    ] {
        b.push_str(&swatch(class, label));
    }
    b.push_str(
        "<span class=\"muted\">barriers: dashed lines · hover a bar for its details</span></div>\n",
    );
}

/// Where each task is drawn: its row's lane and x range.
struct Placed {
    lane: usize,
    x0: f64,
    x1: f64,
}

fn svg(b: &mut String, run: &Run, tl: &Timeline) {
    let scale = PLOT_W / tl.total_us as f64;
    let x = |us: u64| LABEL_W + us as f64 * scale;
    // Place every task: a bar from its first start to its last end, a marker for the others.
    let mut by_service: Vec<Vec<usize>> = vec![Vec::new(); run.services.len()];
    let mut placed: Vec<Placed> = Vec::with_capacity(run.tasks.len());
    for t in &run.tasks {
        let s = &tl.spans[t.id];
        let (x0, x1) = match (s.ran(), s.start(), s.end()) {
            (true, Some(a), Some(e)) => (x(a), x(e).max(x(a) + MIN_W)),
            (_, Some(a), _) => (x(a), x(a) + MARK_W),
            _ => {
                let at = tl.barriers.get(t.phase).copied().flatten().unwrap_or(tl.total_us);
                (x(at), x(at) + MARK_W)
            }
        };
        placed.push(Placed { lane: 0, x0, x1 });
        by_service[t.service].push(t.id);
    }
    // Lanes: a task goes to the first lane of its row that is free at its start.
    let mut row_y = Vec::with_capacity(by_service.len());
    let mut y = AXIS_H;
    for ids in &mut by_service {
        ids.sort_by(|&a, &b| placed[a].x0.total_cmp(&placed[b].x0).then(a.cmp(&b)));
        let mut ends: Vec<f64> = Vec::new();
        for &k in ids.iter() {
            let p = &mut placed[k];
            let lane = ends.iter().position(|&e| e <= p.x0).unwrap_or(ends.len());
            if lane == ends.len() {
                ends.push(p.x1);
            } else {
                ends[lane] = p.x1;
            }
            p.lane = lane;
        }
        row_y.push(y);
        y += LANE_H * ends.len().max(1) as f64;
    }
    let height = y + 8.0;
    let width = LABEL_W + PLOT_W + RIGHT;
    let _ = writeln!(
        b,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"gantt\" id=\"timeline\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"timeline of {} tasks\">",
        num(width),
        num(height),
        num(width),
        num(height),
        run.tasks.len()
    );
    b.push_str("<defs><pattern id=\"hatch-failed\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"4\" height=\"4\" fill=\"#ffd8d3\"/><rect width=\"2\" height=\"4\" fill=\"#d1242f\"/></pattern><pattern id=\"hatch-wait\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(-45)\"><rect width=\"4\" height=\"4\" fill=\"#eaeef2\"/><rect width=\"1.5\" height=\"4\" fill=\"#8c959f\"/></pattern><pattern id=\"stripes-cache\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fff\"/><rect width=\"3\" height=\"6\" fill=\"#d0d7de\"/></pattern></defs>\n");
    // Rows: stripes and labels.
    b.push_str("<g class=\"rows\">\n");
    for (i, s) in run.services.iter().enumerate() {
        let top = row_y[i];
        let bottom = row_y.get(i + 1).copied().unwrap_or(y);
        if i % 2 == 1 {
            let _ = writeln!(
                b,
                "<rect class=\"stripe\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                num(top),
                num(width),
                num(bottom - top)
            );
        }
        let _ = writeln!(
            b,
            "<text class=\"row-label\" x=\"6\" y=\"{}\" data-service=\"{}\">{}</text>",
            num(top + LANE_H - 3.5),
            esc(&s.name),
            esc(&cut(&s.name, NAME_CHARS))
        );
    }
    b.push_str("</g>\n");
    axis(b, tl.total_us, y);
    // Barriers, in phase order.
    b.push_str("<g class=\"barriers\">\n");
    for (p, at) in tl.barriers.iter().enumerate() {
        let Some(at) = at else { continue };
        let bx = x(*at);
        let _ = writeln!(
            b,
            "<line class=\"barrier\" data-phase=\"{}\" x1=\"{}\" y1=\"14\" x2=\"{}\" y2=\"{}\"/><text class=\"barrier-label\" x=\"{}\" y=\"11\">{}</text>",
            esc(&run.phases[p]),
            num(bx),
            num(bx),
            num(y),
            num(bx + 3.0),
            esc(&run.phases[p])
        );
    }
    b.push_str("</g>\n");
    // The critical path, joined end to start, under the bars.
    if tl.critical.len() > 1 {
        let mut points = Vec::new();
        for &id in &tl.critical {
            let t = &run.tasks[id];
            let p = &placed[id];
            let mid = row_y[t.service] + p.lane as f64 * LANE_H + LANE_H / 2.0;
            points.push(format!("{},{}", num(p.x0), num(mid)));
            points.push(format!("{},{}", num(p.x1), num(mid)));
        }
        let _ = writeln!(b, "<polyline class=\"critical-path\" points=\"{}\"/>", points.join(" "));
    }
    b.push_str("<g class=\"bars\">\n");
    for t in &run.tasks {
        let p = &placed[t.id];
        let top = row_y[t.service] + p.lane as f64 * LANE_H + (LANE_H - BAR_H) / 2.0;
        bar(b, run, t, &tl.spans[t.id], p, top, &x);
    }
    b.push_str("</g>\n</svg>\n");
}

/// The time axis: a tick at round intervals, labelled.
fn axis(b: &mut String, total_us: u64, bottom: f64) {
    let step = nice_step(total_us);
    b.push_str("<g class=\"axis\">\n");
    let mut t = 0;
    let mut n = 0;
    while t <= total_us && n < 50 {
        let tx = LABEL_W + t as f64 * PLOT_W / total_us as f64;
        let _ = writeln!(
            b,
            "<line class=\"tick\" x1=\"{}\" y1=\"28\" x2=\"{}\" y2=\"{}\"/><text class=\"tick-label\" x=\"{}\" y=\"25\">{}</text>",
            num(tx),
            num(tx),
            num(bottom),
            num(tx + 2.0),
            if t == 0 { "0".into() } else { human_us(t) }
        );
        t += step;
        n += 1;
    }
    b.push_str("</g>\n");
}

/// A round tick interval (1, 2 or 5 times a power of ten, in microseconds) giving 5–12 ticks.
fn nice_step(total_us: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if total_us / s <= 10 {
                return s.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn bar(
    b: &mut String,
    run: &Run,
    t: &super::record::Task,
    s: &Span,
    p: &Placed,
    top: f64,
    x: &dyn Fn(u64) -> f64,
) {
    let critical = if s.critical { " critical" } else { "" };
    let _ = write!(
        b,
        "<g class=\"bar phase-{} {}{critical}\" data-task=\"{}\" data-phase=\"{}\" data-outcome=\"{}\"><title>{}</title>",
        t.phase % PHASE_COLOURS,
        s.outcome.class(),
        t.id,
        esc(run.phases.get(t.phase).map_or("", String::as_str)),
        s.outcome.class(),
        esc(&tooltip(run, t, s))
    );
    if let Some((w0, w1)) = s.lock_wait {
        let _ = write!(
            b,
            "<rect class=\"lock-wait\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            num(x(w0)),
            num(top),
            num((x(w1) - x(w0)).max(MIN_W)),
            num(BAR_H)
        );
    }
    if s.ran() {
        for (i, a) in s.attempts.iter().enumerate() {
            if i > 0 {
                let prev = s.attempts[i - 1].end;
                let _ = write!(
                    b,
                    "<line class=\"delay\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
                    num(x(prev)),
                    num(top + BAR_H / 2.0),
                    num(x(a.start)),
                    num(top + BAR_H / 2.0)
                );
            }
            // Failed attempts that were retried are hatched; the last keeps the outcome colour.
            let class = if a.failed && i + 1 < s.attempts.len() {
                "attempt failed-attempt"
            } else {
                "attempt"
            };
            let _ = write!(
                b,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                num(x(a.start)),
                num(top),
                num((x(a.end) - x(a.start)).max(MIN_W)),
                num(BAR_H)
            );
        }
    } else {
        let _ = write!(
            b,
            "<rect class=\"marker\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            num(p.x0),
            num(top + 0.5),
            num(MARK_W - 1.0),
            num(BAR_H - 1.0)
        );
    }
    b.push_str("</g>\n");
}

/// A bar's tooltip: what it is, how long, what it ran, how it ended, its last output.
fn tooltip(run: &Run, t: &super::record::Task, s: &Span) -> String {
    let mut lines = vec![format!("{} — {}", t.label, s.outcome.words())];
    let phase = run.phases.get(t.phase).map_or("", String::as_str);
    let mut facts = vec![format!("phase {phase}")];
    if s.ran() {
        let took =
            s.duration_ms.map_or_else(|| human_us(timeline::busy(s)), |ms| human_us(ms * 1000));
        facts.push(took);
        if let Some(a) = s.start() {
            facts.push(format!("at +{}", human_us(a)));
        }
    }
    if s.attempts.len() > 1 {
        facts.push(format!("{} attempts", s.attempts.len()));
    }
    if s.critical {
        facts.push("on the critical path".into());
    }
    lines.push(facts.join(" · "));
    if let Some(c) = &t.command {
        lines.push(format!("command: {c}"));
    }
    match s.outcome {
        Outcome::Ok | Outcome::Retried => lines.push("exit code 0".into()),
        Outcome::Failed => lines.push(exit_of(s.error.as_deref())),
        Outcome::TimedOut => lines.push("exit: timed out".into()),
        Outcome::Cancelled => lines.push("exit: interrupted".into()),
        _ => {}
    }
    if let Some(at) = &s.at {
        lines.push(format!("at {at}"));
    }
    if let Some(r) = &s.reason {
        lines.push(format!("skipped: {r}"));
    }
    if let Some(e) = &s.error {
        let first: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).take(3).collect();
        let label = if s.outcome == Outcome::Retried { "failed first" } else { "error" };
        lines.push(format!("{label}: {}", first.join("\n  ")));
    }
    if !t.output.is_empty() {
        lines.push("output:".into());
        lines.extend(t.output.iter().map(|l| format!("  {l}")));
    }
    lines.join("\n")
}

/// `exit code N` from a failed command's message, else `exit: error`.
fn exit_of(error: Option<&str>) -> String {
    error
        .and_then(|e| {
            let i = e.find("exit code ")?;
            let code: String =
                e[i + 10..].chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
            (!code.is_empty()).then(|| format!("exit code {code}"))
        })
        .unwrap_or_else(|| "exit: error".into())
}

/// The summary for `$GITHUB_STEP_SUMMARY`: the phases, the critical path, the slowest tasks and
/// the retries, then where the full report is and how to keep it.
pub(crate) fn markdown(run: &Run, file: &str) -> String {
    let tl = Timeline::of(run);
    let code = |s: &str| format!("`{}`", s.replace('`', "'"));
    let mut md = format!(
        "#### pilum {}: where the time went\n\n| phase | tasks | took | slowest task |\n|---|---|---|---|\n",
        run.command
    );
    for r in timeline::phases(run, &tl) {
        let slowest = r.slowest.map_or(String::new(), |i| {
            format!("{} {}", code(&run.tasks[i].label), human_us(timeline::busy(&tl.spans[i])))
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {slowest} |",
            code(&r.name),
            r.tasks,
            r.took.map_or("not started".into(), human_us)
        );
    }
    if !tl.critical.is_empty() {
        let names: Vec<String> =
            tl.critical.iter().take(PATH_NAMES).map(|&i| code(&run.tasks[i].label)).collect();
        let more = if tl.critical.len() > PATH_NAMES { " → …" } else { "" };
        let _ = writeln!(
            md,
            "\n**Critical path**: {} over {}: {}{more}",
            human_us(tl.critical_us()),
            crate::ui::render::count(tl.critical.len(), "task"),
            names.join(" → ")
        );
    }
    let slow: Vec<String> = timeline::slowest(&tl, 5)
        .iter()
        .map(|&i| {
            format!("{} {}", code(&run.tasks[i].label), human_us(timeline::busy(&tl.spans[i])))
        })
        .collect();
    if !slow.is_empty() {
        let _ = writeln!(md, "\n**Slowest tasks**: {}", slow.join(", "));
    }
    let retried: Vec<String> = (0..tl.spans.len())
        .filter(|&i| tl.spans[i].attempts.len() > 1)
        .take(PROBLEMS)
        .map(|i| {
            format!(
                "{} ({} attempts, {})",
                code(&run.tasks[i].label),
                tl.spans[i].attempts.len(),
                tl.spans[i].outcome.words()
            )
        })
        .collect();
    if !retried.is_empty() {
        let _ = writeln!(md, "\n**Retried**: {}", retried.join(", "));
    }
    let _ = writeln!(
        md,
        "\nThe timeline of every task is in {} (`--report`). To look at it, upload it as an artifact:\n\n```yaml\n- uses: actions/upload-artifact@v4\n  if: always()\n  with:\n    name: pilum-report\n    path: {file}\n```",
        code(file),
    );
    crate::redact::redact(&md).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(1), 1);
        assert_eq!(nice_step(95), 10);
        assert_eq!(nice_step(1_000_000), 100_000);
        assert_eq!(nice_step(1_900_000), 200_000);
        assert_eq!(nice_step(u64::MAX), 2_000_000_000_000_000_000);
    }

    #[test]
    fn the_exit_code_comes_from_the_message() {
        assert_eq!(exit_of(Some("command `x` failed with exit code 3\n  last")), "exit code 3");
        assert_eq!(exit_of(Some("script error")), "exit: error");
        assert_eq!(exit_of(None), "exit: error");
    }
}
