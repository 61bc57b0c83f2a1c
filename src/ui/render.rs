//! Renderers of orchestrator events. One [`Renderer`] picks its form from the output settings:
//! NDJSON on stdout (`--json`, nothing else there), the terminal view on a TTY
//! ([`super::progress`]), one plain line per phase, start and finish otherwise (CI), GitHub
//! Actions groups, annotations and step summary ([`super::github`]) on top of plain lines, and
//! with `-q` only failures and the one-line summary. The summary always prints. A dry run's
//! lines say what would run; none of them claims that anything was done.
//!
//! A task's result is one block written with one call, so results of tasks finishing at once
//! never interleave. Under GitHub Actions a task's output is not streamed: it is kept and
//! written, whole and once, as the task's group when it ends, followed by its result and, for a
//! failure, an `::error` annotation at the step in the service's `pilum.yaml`; everything then
//! goes to stdout, so the log keeps the order it was written in.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use console::{Style, Term};

use super::github;
use super::progress::Progress;
use crate::orchestrator::event::{Counts, Event, Location, Sink, Summary, TaskStatus};
use crate::output::Output;
use crate::sync::LockExt;

/// The most lines of output a task's GitHub group keeps: the last ones.
const GROUP_LINES: usize = 50_000;

/// A task's output kept for its GitHub group.
#[derive(Default)]
struct Captured {
    lines: std::collections::VecDeque<String>,
    /// Earlier lines dropped beyond [`GROUP_LINES`].
    dropped: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Tty,
    Plain,
    Quiet,
}

pub(crate) struct Renderer {
    out: Output,
    mode: Mode,
    verbose: bool,
    /// Under GitHub Actions: groups (in plain mode) and annotations.
    github: bool,
    /// What the run is called in the summary (`deploy`, `build`, …).
    verb: String,
    /// Set from the plan: the run is a dry run.
    dry_run: AtomicBool,
    /// The project root, for annotation paths.
    root: Option<PathBuf>,
    progress: Option<Progress>,
    /// Output lines per task, kept for its GitHub group.
    captured: Mutex<HashMap<usize, Captured>>,
}

impl Renderer {
    pub(crate) fn new(out: &Output, verb: &str) -> Self {
        let github = github::active();
        let ci = github || std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        let mode = if out.json {
            Mode::Json
        } else if out.quiet {
            Mode::Quiet
        } else if !ci && Term::stdout().is_term() && out.verbose == 0 {
            Mode::Tty
        } else {
            Mode::Plain
        };
        Self {
            out: out.clone(),
            mode,
            verbose: out.verbose > 0,
            github,
            verb: verb.to_string(),
            dry_run: AtomicBool::new(false),
            root: None,
            progress: (mode == Mode::Tty).then(Progress::new),
            captured: Mutex::new(HashMap::new()),
        }
    }

    /// The project root: annotations give file paths from the workspace, not from the root.
    pub(crate) fn with_root(mut self, root: PathBuf) -> Self {
        self.root = Some(root);
        self
    }

    fn dry(&self) -> bool {
        self.dry_run.load(Ordering::Relaxed)
    }

    /// Groups are written in plain mode under GitHub Actions.
    fn grouped(&self) -> bool {
        self.github && self.mode == Mode::Plain
    }

    /// A style for text written to stderr (`stderr`) or stdout; on a terminal and in GitHub
    /// groups every line goes to stdout.
    fn style(&self, stderr: bool) -> Style {
        if stderr && self.mode != Mode::Tty && !self.grouped() {
            Output::err_style()
        } else {
            Output::style()
        }
    }

    /// Write a block of lines with one call, secrets masked: above the live rows on a terminal,
    /// on stdout under GitHub Actions, else on stderr when `stderr`.
    fn write(&self, block: &str, stderr: bool) {
        if let Some(p) = &self.progress {
            if !p.println(&Output::clean(block)) {
                self.out.stdout_line(block);
            }
        } else if stderr && !self.grouped() {
            self.out.stderr_line(block);
        } else {
            self.out.stdout_line(block);
        }
    }

    /// Keep a task's line for its GitHub group.
    fn capture(&self, task: usize, line: String) {
        let mut captured = self.captured.locked();
        let c = captured.entry(task).or_default();
        if c.lines.len() == GROUP_LINES {
            c.lines.pop_front();
            c.dropped += 1;
        }
        c.lines.push_back(line);
    }

    fn summary(&self, s: &Summary) {
        if self.mode == Mode::Json {
            return;
        }
        let style = match s.status() {
            "ok" => Style::new().green(),
            "interrupted" => Style::new().yellow(),
            _ => Style::new().red(),
        };
        let line = summary_line(&self.verb, style.bold().apply_to(s.status()), s);
        if let Some(p) = &self.progress {
            p.clear();
        }
        let mut block = Vec::new();
        if self.mode != Mode::Quiet && !s.failures.is_empty() {
            block.push("\nfailures:".to_string());
            for f in &s.failures {
                let at =
                    f.at.as_ref().map(|a| format!(" ({}:{})", a.file, a.line)).unwrap_or_default();
                block.push(format!(
                    "  {} {}{at}: {}",
                    Style::new().red().apply_to("✗"),
                    f.task,
                    first_line(&f.error)
                ));
            }
        }
        block.push(line);
        self.out.stdout_line(&block.join("\n"));
        if self.github {
            github::step_summary(&self.verb, s);
        }
    }

    /// The lines of a finished task: its GitHub group, its result, and for a failure the
    /// message, the last output lines not already shown, and its annotation.
    #[allow(clippy::too_many_arguments, reason = "the fields of one `TaskFinished` event")]
    fn finished(
        &self,
        task: &crate::orchestrator::event::TaskRef,
        status: TaskStatus,
        took: &str,
        attempts: u32,
        error: Option<&str>,
        at: Option<&Location>,
        tail: &[String],
    ) -> (Vec<String>, bool) {
        let tries = if attempts > 1 { format!(", {attempts} attempts") } else { String::new() };
        let what = match status {
            TaskStatus::Ok => "ok",
            TaskStatus::TimedOut => "timed out",
            TaskStatus::Cancelled => "interrupted",
            TaskStatus::Failed => "failed",
        };
        let mut lines = Vec::new();
        if self.grouped() {
            let c = self.captured.locked().remove(&task.id).unwrap_or_default();
            let mut output = Vec::with_capacity(c.lines.len() + 1);
            if c.dropped > 0 {
                output.push(format!("(the first {} lines are left out)", c.dropped));
            }
            output.extend(c.lines);
            lines.push(github::group(&format!("{} ({what})", task.label), &output));
        }
        if status == TaskStatus::Ok {
            if self.mode != Mode::Quiet {
                let dry = if self.dry() { "dry run, " } else { "" };
                lines.push(format!(
                    "  {} {} ({dry}{took}{tries})",
                    Style::new().green().apply_to("✓"),
                    task.label
                ));
            }
            return (lines, false);
        }
        let st = self.style(true);
        if status == TaskStatus::Cancelled {
            lines.push(format!(
                "  {} {} interrupted ({took})",
                st.yellow().apply_to("✗"),
                task.label
            ));
            return (lines, true);
        }
        let msg = error.unwrap_or_default();
        // In a group the output is already there, once.
        let msg = if self.grouped() { without_output(msg) } else { msg.to_string() };
        lines.push(format!(
            "  {} {} {what} ({took}{tries}): {}",
            st.clone().red().apply_to("✗"),
            task.label,
            first_line(&msg)
        ));
        lines.extend(msg.lines().skip(1).map(|l| format!("      {l}")));
        if !tail.is_empty() && !self.verbose && !self.grouped() {
            for l in tail.iter().filter(|l| !msg.contains(l.as_str())) {
                lines.push(format!("      {} {l}", st.clone().dim().apply_to("│")));
            }
        }
        if self.github {
            let file = at.map(|a| {
                let f = PathBuf::from(&a.file);
                (self.root.as_ref().map_or(f.clone(), |r| r.join(&f)), a.line, a.col)
            });
            lines.push(github::error(
                &format!("pilum {}", task.label),
                file.as_ref().map(|(f, l, c)| (f.as_path(), *l, *c)),
                &format!("{what}: {}", error.unwrap_or_default()),
            ));
        }
        (lines, true)
    }
}

impl Sink for Renderer {
    fn event(&self, e: &Event) {
        if self.mode == Mode::Json {
            if !matches!(e, Event::TaskOutput { .. }) || self.verbose {
                self.out.json_line(e);
            }
            return;
        }
        let quiet = self.mode == Mode::Quiet;
        let label = |task: &crate::orchestrator::event::TaskRef| {
            Style::new().dim().apply_to(format!("{} |", task.label)).to_string()
        };
        match e {
            Event::Plan { plan } => {
                self.dry_run.store(plan["dry_run"] == true, Ordering::Relaxed);
                if let Some(p) = &self.progress {
                    p.plan(plan);
                }
            }
            Event::PhaseStarted { phase, tasks } => {
                if let Some(p) = &self.progress {
                    p.phase(phase);
                }
                if !quiet {
                    self.write(
                        &format!(
                            "{} {phase} ({})",
                            Style::new().bold().apply_to("==>"),
                            count(*tasks, "task")
                        ),
                        false,
                    );
                }
            }
            Event::TaskStarted { task, attempt } => {
                if let Some(p) = &self.progress {
                    p.started(task.id, &task.label, *attempt);
                } else if self.mode == Mode::Plain {
                    let again =
                        if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                    self.write(&format!("  {} started{again}", task.label), false);
                }
            }
            Event::TaskOutput { task, line, .. } => {
                if self.grouped() {
                    self.capture(task.id, line.clone());
                } else if self.verbose && !quiet {
                    self.write(&format!("{} {line}", label(task)), false);
                }
            }
            Event::TaskLog { task, level, message } => {
                let shown = match level.as_str() {
                    "error" => true,
                    "warn" => !quiet,
                    "debug" => self.verbose && !quiet,
                    _ => !quiet,
                };
                let tag = match level.as_str() {
                    "warn" => format!("{} ", Style::new().yellow().apply_to("warning:")),
                    "error" => format!("{} ", Style::new().red().apply_to("error:")),
                    "debug" => "debug: ".to_string(),
                    _ => String::new(),
                };
                if self.grouped() {
                    self.capture(task.id, format!("{tag}{message}"));
                } else if shown {
                    self.write(&format!("{} {tag}{message}", label(task)), false);
                }
            }
            Event::TaskDryRun { task, call, detail } => {
                if !quiet {
                    self.write(
                        &format!(
                            "  {} {}: {call} {detail}",
                            Style::new().cyan().apply_to("would run"),
                            task.label
                        ),
                        false,
                    );
                }
            }
            Event::TaskRetried { task, attempt, delay_ms, error } => {
                if !quiet {
                    self.write(
                        &format!(
                            "  {} {} attempt {attempt} failed: {}; retrying in {}",
                            self.style(true).yellow().apply_to("↻"),
                            task.label,
                            first_line(error),
                            human(Duration::from_millis(*delay_ms))
                        ),
                        true,
                    );
                }
            }
            Event::TaskFinished { task, status, duration_ms, error, at, tail, attempts } => {
                if *status == TaskStatus::Cancelled {
                    // Ctrl-C: the live rows go at once.
                    if let Some(p) = &self.progress {
                        p.clear();
                    }
                }
                if let Some(p) = &self.progress {
                    p.ended(task.id);
                }
                let took = human(Duration::from_millis(*duration_ms));
                let (lines, stderr) = self.finished(
                    task,
                    *status,
                    &took,
                    *attempts,
                    error.as_deref(),
                    at.as_ref(),
                    tail,
                );
                if !lines.is_empty() {
                    self.write(&lines.join("\n"), stderr);
                }
            }
            Event::TaskSkipped { task, reason } => {
                if let Some(p) = &self.progress {
                    p.ended(task.id);
                }
                if !quiet {
                    self.write(
                        &format!(
                            "  {} {} skipped: {reason}",
                            Style::new().dim().apply_to("-"),
                            task.label
                        ),
                        false,
                    );
                }
            }
            Event::Summary(s) => self.summary(s),
        }
    }
}

/// A failure message without the command's `last output lines:` section (a GitHub group
/// already holds all of the output).
fn without_output(msg: &str) -> String {
    let mut in_output = false;
    msg.lines()
        .filter(|l| {
            in_output = *l == "  last output lines:" || (in_output && l.starts_with("  | "));
            !in_output
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// `1 task`, `3 tasks`: a count with its noun, for human lines.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// The one-line end of a run, the same for the terminal and for `pilum run` scripts; `status`
/// is passed in so the terminal can colour it. A dry run says what would have run, and that
/// nothing was changed.
pub(crate) fn summary_line(verb: &str, status: impl std::fmt::Display, s: &Summary) -> String {
    let time = human(Duration::from_millis(s.wall_ms));
    if s.dry_run && s.ok {
        return format!(
            "{verb} (dry run): {status} · would run {} for {} · nothing was changed · {time}",
            count(s.tasks.total, "task"),
            count(s.services.total, "service")
        );
    }
    let counts = |c: &Counts| {
        let mut parts = vec![format!("{} ok", c.ok), format!("{} failed", c.failed)];
        if c.interrupted > 0 {
            parts.push(format!("{} interrupted", c.interrupted));
        }
        parts.push(format!("{} skipped", c.skipped));
        parts.join(", ")
    };
    let (dry, unchanged) =
        if s.dry_run { (" (dry run)", " · nothing was changed") } else { ("", "") };
    format!(
        "{verb}{dry}: {status} · services: {} · tasks: {} of {}{unchanged} · {time}",
        counts(&s.services),
        counts(&s.tasks),
        s.tasks.total
    )
}

/// `850ms`, `2.3s`, `1m05s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
