//! The terminal view of a run, when stdout is a terminal: finished lines scroll above, live rows
//! stay below (indicatif's `MultiProgress`). One spinner row per running task, then the overall
//! row: the phase (`phase 2/3 push`), a bar of ended tasks out of all (`5/12 tasks`), the time,
//! and what runs and waits (`2 running · 3 queued: api/push, web/push +1 more`). Phase headers
//! and each task's result are printed above the rows.
//!
//! On the first interrupted task every row is cleared at once and the view stops drawing; what
//! is left to say (the interrupted tasks, the summary) is printed as plain lines, so no stale
//! row stays on the screen after Ctrl-C. Rows end two columns short of the terminal's width,
//! with a line break between them instead of indicatif's padding to the last column
//! ([`Narrow`]): with the cursor in the last column, the terminal's own echo of Ctrl-C (`^C`)
//! wraps onto a new line and the next redraw clears the wrong rows, leaving one behind.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use crate::sync::LockExt;
use console::Term;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// How many queued tasks the overall row names.
const NAMED: usize = 3;

/// Redraws per second at most (indicatif's default for stdout).
const REFRESH_HZ: u8 = 20;

/// Columns left free at the right edge, for the terminal's echo of `^C`.
const SPARE: u16 = 2;

/// The terminal as indicatif's draw target, [`SPARE`] columns narrower than it is. indicatif
/// writes every row as two strings, the text and spaces up to the width (which leave the cursor
/// in the last column, so the next row starts on a new line by wrapping); here the spaces
/// become a line break, written only when another row follows, so after a redraw the cursor
/// stays on the last row, short of the edge.
#[derive(Debug)]
struct Narrow {
    term: Term,
    /// Strings written since the redraw began (even: a row's text, odd: its padding), and
    /// whether a line break is owed before the next row.
    state: Mutex<(usize, bool)>,
}

impl Narrow {
    fn new(term: Term) -> Self {
        Self { term, state: Mutex::new((0, false)) }
    }

    /// A redraw moves or clears: the owed break is dropped and counting starts again.
    fn reset(&self) {
        *self.state.locked() = (0, false);
    }
}

impl TermLike for Narrow {
    fn width(&self) -> u16 {
        self.term.size().1.saturating_sub(SPARE).max(1)
    }
    fn height(&self) -> u16 {
        self.term.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.reset();
        self.term.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.reset();
        self.term.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.term.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.term.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.reset();
        self.term.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let mut st = self.state.locked();
        let padding = st.0 % 2 == 1;
        st.0 += 1;
        if std::mem::replace(&mut st.1, padding) {
            self.term.write_str("\r\n")?;
        }
        if padding { Ok(()) } else { self.term.write_str(s) }
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.reset();
        self.term.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.reset();
        self.term.flush()
    }
}

pub(crate) struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per task id: its label and the index of its phase.
    labels: Vec<String>,
    phase_of: Vec<usize>,
    phases: Vec<String>,
    /// The phase running now.
    phase: Option<usize>,
    started: HashSet<usize>,
    ended: HashSet<usize>,
    rows: HashMap<usize, ProgressBar>,
    /// Everything was cleared (interrupt, or the end): nothing is drawn any more.
    cleared: bool,
}

impl Progress {
    pub(crate) fn new() -> Self {
        let target = ProgressDrawTarget::term_like_with_hz(
            Box::new(Narrow::new(Term::buffered_stdout())),
            REFRESH_HZ,
        );
        let multi = MultiProgress::with_draw_target(target);
        // Added to the screen once the plan is known.
        let overall = ProgressBar::hidden();
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:24.cyan/blue}] {pos}/{len} tasks · {elapsed} {wide_msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Self { multi, overall, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.locked()
    }

    /// The plan (the `plan` event's JSON): every task's label and phase.
    pub(crate) fn plan(&self, plan: &serde_json::Value) {
        let mut st = self.lock();
        st.phases = plan["phases"]
            .as_array()
            .map(|p| p.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for t in plan["tasks"].as_array().into_iter().flatten() {
            let text = |k: &str| t[k].as_str().unwrap_or_default().to_string();
            let label = match t["region"].as_str() {
                Some(r) => format!("{}/{}@{r}", text("service"), text("step")),
                None => format!("{}/{}", text("service"), text("step")),
            };
            let phase = st.phases.iter().position(|p| *p == text("phase")).unwrap_or(0);
            st.labels.push(label);
            st.phase_of.push(phase);
        }
        self.overall.set_length(st.labels.len() as u64);
        self.refresh(&st);
        if !st.labels.is_empty() {
            self.multi.add(self.overall.clone());
            self.overall.enable_steady_tick(Duration::from_millis(200));
        }
    }

    pub(crate) fn phase(&self, name: &str) {
        let mut st = self.lock();
        st.phase = st.phases.iter().position(|p| p == name);
        self.refresh(&st);
    }

    /// A task's attempt started: its spinner row (kept across retries).
    pub(crate) fn started(&self, id: usize, label: &str, attempt: u32) {
        let mut st = self.lock();
        if st.cleared {
            return;
        }
        st.started.insert(id);
        let row = st.rows.entry(id).or_insert_with(|| {
            let b = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
            b.set_style(
                // Truncated to the width: a row must never wrap.
                ProgressStyle::with_template("  {spinner} {elapsed:>4.dim} {wide_msg}")
                    .expect("valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        row.set_message(if attempt > 1 {
            format!("{label} (attempt {attempt})")
        } else {
            label.to_string()
        });
        self.refresh(&st);
    }

    /// A task finished or was skipped.
    pub(crate) fn ended(&self, id: usize) {
        let mut st = self.lock();
        if let Some(row) = st.rows.remove(&id) {
            row.finish_and_clear();
            self.multi.remove(&row);
        }
        st.ended.insert(id);
        self.overall.set_position(st.ended.len() as u64);
        self.refresh(&st);
    }

    /// Print the lines of `block` above the rows; false once the view is cleared (print it
    /// plainly then).
    pub(crate) fn println(&self, block: &str) -> bool {
        let st = self.lock();
        if st.cleared {
            return false;
        }
        for line in block.lines() {
            let _ = self.multi.println(line);
        }
        true
    }

    /// Remove every row from the screen and stop drawing.
    pub(crate) fn clear(&self) {
        let mut st = self.lock();
        if std::mem::replace(&mut st.cleared, true) {
            return;
        }
        for (_, row) in st.rows.drain() {
            row.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
    }

    /// The overall row: phase, counts, and the first queued tasks by name.
    fn refresh(&self, st: &State) {
        if st.cleared {
            return;
        }
        let Some(p) = st.phase else { return };
        self.overall.set_prefix(format!(
            "phase {}/{} {}",
            p + 1,
            st.phases.len(),
            st.phases.get(p).map_or("", String::as_str)
        ));
        let queued: Vec<&str> = (0..st.labels.len())
            .filter(|t| st.phase_of[*t] == p && !st.started.contains(t) && !st.ended.contains(t))
            .map(|t| st.labels[t].as_str())
            .collect();
        let mut msg = format!("· {} running · {} queued", st.rows.len(), queued.len());
        if !queued.is_empty() {
            msg.push_str(&format!(": {}", queued[..queued.len().min(NAMED)].join(", ")));
            if queued.len() > NAMED {
                msg.push_str(&format!(" +{} more", queued.len() - NAMED));
            }
        }
        self.overall.set_message(msg);
    }
}
