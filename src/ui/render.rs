//! Renderers of orchestrator events. One [`Renderer`] picks its form from the output settings:
//! NDJSON on stdout (`--json`, nothing else there), spinners on a TTY, one plain line per start
//! and finish otherwise (CI), GitHub Actions groups/annotations/step summary on top of plain
//! lines, and with `-q` only failures and the one-line summary. The summary always prints.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use console::{Style, Term};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::orchestrator::event::{Event, Sink, Summary, TaskStatus};
use crate::output::Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Tty,
    Plain,
    Quiet,
}

pub struct Renderer {
    out: Output,
    mode: Mode,
    verbose: bool,
    github: bool,
    /// What the run is called in the summary (`deploy`, `build`, …).
    verb: String,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    multi: MultiProgress,
    /// Output lines per task, kept for GitHub groups.
    captured: Mutex<HashMap<usize, Vec<String>>>,
}

impl Renderer {
    pub fn new(out: &Output, verb: &str) -> Self {
        let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
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
        let multi = MultiProgress::with_draw_target(if mode == Mode::Tty {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            out: out.clone(),
            mode,
            verbose: out.verbose > 0,
            github,
            verb: verb.to_string(),
            bars: Mutex::new(HashMap::new()),
            multi,
            captured: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, s: &str) {
        self.print(s, false);
    }

    fn err_line(&self, s: &str) {
        self.print(s, true);
    }

    /// Keep a task's line for the GitHub step summary (only under GitHub Actions).
    fn capture(&self, task: usize, line: &str) {
        if self.github {
            let mut captured = self.captured.lock().expect("capture lock");
            captured.entry(task).or_default().push(line.to_string());
        }
    }

    /// A style for a line going to stdout, or to stderr when `stderr` (on a terminal every
    /// line goes above the progress bars, on stdout).
    fn style(&self, stderr: bool) -> Style {
        if stderr && self.mode != Mode::Tty { Output::err_style() } else { Output::style() }
    }

    /// One line, secrets masked; on a terminal it goes above the progress bars so they stay
    /// intact.
    fn print(&self, s: &str, stderr: bool) {
        if self.mode == Mode::Tty {
            let _ = self.multi.println(Output::clean(s));
        } else if stderr {
            self.out.stderr_line(s);
        } else {
            self.out.stdout_line(s);
        }
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
        if self.mode == Mode::Tty {
            let _ = self.multi.clear();
        }
        if self.mode != Mode::Quiet && !s.failures.is_empty() {
            self.out.stdout_line("\nfailures:");
            for f in &s.failures {
                self.out.stdout_line(&format!(
                    "  {} {}: {}",
                    Style::new().red().apply_to("✗"),
                    f.task,
                    first_line(&f.error)
                ));
            }
        }
        self.out.stdout_line(&line);
        if self.github {
            self.step_summary(s);
        }
    }

    /// Append a markdown table to `$GITHUB_STEP_SUMMARY`.
    fn step_summary(&self, s: &Summary) {
        let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return };
        let mut md = format!(
            "### pilum {}: {}\n\n{} services ({} ok, {} failed, {} skipped), {} tasks ({} ok, {} failed, {} skipped) in {}\n\n| service | status |\n|---|---|\n",
            self.verb,
            s.status(),
            s.services.total,
            s.services.ok,
            s.services.failed,
            s.services.skipped,
            s.tasks.total,
            s.tasks.ok,
            s.tasks.failed,
            s.tasks.skipped,
            human(Duration::from_millis(s.wall_ms))
        );
        for (name, st) in &s.service_status {
            let icon = match st.as_str() {
                "ok" => "✅",
                "failed" => "❌",
                _ => "⏭️",
            };
            md.push_str(&format!("| `{name}` | {icon} {st} |\n"));
        }
        for f in &s.failures {
            md.push_str(&format!("\n**`{}`**: {}\n", f.task, first_line(&f.error)));
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(Output::clean(&md).as_bytes());
        }
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
        match e {
            Event::Plan { .. } => {}
            Event::PhaseStarted { phase, tasks } => {
                if self.mode == Mode::Plain {
                    self.line(&format!(
                        "{} {phase} ({})",
                        Style::new().bold().apply_to("==>"),
                        count(*tasks, "task")
                    ));
                }
            }
            Event::TaskStarted { task, attempt } => match self.mode {
                Mode::Tty => {
                    let mut bars = self.bars.lock().expect("bars lock");
                    let bar = bars.entry(task.id).or_insert_with(|| {
                        let b = self.multi.add(ProgressBar::new_spinner());
                        b.set_style(
                            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                                .expect("valid template"),
                        );
                        b.enable_steady_tick(Duration::from_millis(100));
                        b
                    });
                    bar.set_message(if *attempt > 1 {
                        format!("{} (attempt {attempt})", task.label)
                    } else {
                        task.label.clone()
                    });
                }
                Mode::Plain => self.line(&format!(
                    "  {} started{}",
                    task.label,
                    if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() }
                )),
                _ => {}
            },
            Event::TaskOutput { task, line, .. } => {
                self.capture(task.id, line);
                if self.verbose && self.mode != Mode::Quiet {
                    self.line(&format!(
                        "{} {line}",
                        Style::new().dim().apply_to(format!("{} |", task.label))
                    ));
                }
            }
            Event::TaskLog { task, level, message } => {
                self.capture(task.id, message);
                let shown = match level.as_str() {
                    "warn" | "error" => true,
                    "debug" => self.verbose,
                    _ => self.mode != Mode::Quiet,
                };
                if shown && (self.mode != Mode::Quiet || level == "error") {
                    let tag = match level.as_str() {
                        "warn" => format!("{} ", Style::new().yellow().apply_to("warning:")),
                        "error" => format!("{} ", Style::new().red().apply_to("error:")),
                        "debug" => "debug: ".to_string(),
                        _ => String::new(),
                    };
                    self.line(&format!(
                        "{} {tag}{message}",
                        Style::new().dim().apply_to(format!("{} |", task.label))
                    ));
                }
            }
            Event::TaskDryRun { task, call, detail } => {
                if self.mode != Mode::Quiet {
                    self.line(&format!(
                        "  {} {}: {call} {detail}",
                        Style::new().cyan().apply_to("would run"),
                        task.label
                    ));
                }
            }
            Event::TaskRetried { task, attempt, delay_ms, error } => {
                if self.mode != Mode::Quiet {
                    self.err_line(&format!(
                        "  {} {} attempt {attempt} failed: {}; retrying in {}",
                        self.style(true).yellow().apply_to("↻"),
                        task.label,
                        first_line(error),
                        human(Duration::from_millis(*delay_ms))
                    ));
                }
            }
            Event::TaskFinished { task, status, duration_ms, error, tail, attempts } => {
                if let Some(b) = self.bars.lock().expect("bars lock").remove(&task.id) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
                let d = human(Duration::from_millis(*duration_ms));
                let tries =
                    if *attempts > 1 { format!(", {attempts} attempts") } else { String::new() };
                let ok = *status == TaskStatus::Ok;
                if self.github {
                    let lines = self
                        .captured
                        .lock()
                        .expect("capture lock")
                        .remove(&task.id)
                        .unwrap_or_default();
                    self.line(&format!(
                        "::group::{} ({})",
                        task.label,
                        if ok { "ok" } else { "failed" }
                    ));
                    for l in lines.iter().chain(if ok { [].iter() } else { tail.iter() }) {
                        self.line(l);
                    }
                    self.line("::endgroup::");
                }
                if ok {
                    if self.mode != Mode::Quiet {
                        self.line(&format!(
                            "  {} {} ({d}{tries})",
                            Style::new().green().apply_to("✓"),
                            task.label
                        ));
                    }
                } else {
                    let what = match status {
                        TaskStatus::TimedOut => "timed out",
                        TaskStatus::Cancelled => "interrupted",
                        _ => "failed",
                    };
                    let msg = error.clone().unwrap_or_default();
                    self.err_line(&format!(
                        "  {} {} {what} ({d}{tries}): {}",
                        self.style(true).red().apply_to("✗"),
                        task.label,
                        first_line(&msg)
                    ));
                    for l in msg.lines().skip(1) {
                        self.err_line(&format!("      {l}"));
                    }
                    if !tail.is_empty() && !self.verbose {
                        for l in tail.iter().filter(|l| !msg.contains(l.as_str())) {
                            self.err_line(&format!(
                                "      {} {l}",
                                self.style(true).dim().apply_to("│")
                            ));
                        }
                    }
                    if self.github {
                        let text = format!("{what}: {}", msg)
                            .replace('%', "%25")
                            .replace('\r', "%0D")
                            .replace('\n', "%0A");
                        self.line(&format!("::error title=pilum {}::{text}", task.label));
                    }
                }
            }
            Event::TaskSkipped { task, reason } => {
                if matches!(self.mode, Mode::Plain | Mode::Tty) {
                    self.line(&format!(
                        "  {} {} skipped: {reason}",
                        Style::new().dim().apply_to("-"),
                        task.label
                    ));
                }
            }
            Event::Summary(s) => self.summary(s),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The one-line end of a run, the same for the terminal and for `pilum run` scripts; `status`
/// is passed in so the terminal can colour it.
/// `1 task`, `3 tasks`: a count with its noun, for human lines.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

pub fn summary_line(verb: &str, status: impl std::fmt::Display, s: &Summary) -> String {
    format!(
        "{verb}: {status} · services: {} ok, {} failed, {} skipped · tasks: {} ok, {} failed, {} skipped of {} · {}",
        s.services.ok,
        s.services.failed,
        s.services.skipped,
        s.tasks.ok,
        s.tasks.failed,
        s.tasks.skipped,
        s.tasks.total,
        human(Duration::from_millis(s.wall_ms))
    )
}

/// `850ms`, `2.3s`, `1m05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
