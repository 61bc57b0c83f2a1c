//! What a recorded [`Run`] says about time: each task's attempts and outcome, when each phase's
//! barrier opened, the critical path, and the figures of the summary table. The HTML report
//! and the GitHub step summary both read this, so they always agree.
//!
//! The critical path is followed backwards from the task that ended last: each step goes to
//! whatever that task waited for that ended last — one of its dependencies, or the barrier,
//! i.e. the last task to end in an earlier phase. Time spent waiting for a free worker is not
//! a dependency and does not appear on it.

use super::record::{Mark, Run, Status};

/// How a task ended, as the pictures colour it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    /// Succeeded after failed attempts.
    Retried,
    Failed,
    TimedOut,
    /// Stopped by Ctrl-C.
    Cancelled,
    Skipped,
    /// Not run because its result was cached (recorded by the build cache).
    CacheHit,
    /// Never started nor skipped (the run stopped first).
    NotRun,
}

impl Outcome {
    /// The CSS class, also the word in tooltips and tables.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
            Outcome::CacheHit => "cache-hit",
            Outcome::NotRun => "not-run",
        }
    }

    pub(crate) fn words(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retried => "ok after retries",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed out",
            Outcome::Cancelled => "interrupted",
            Outcome::Skipped => "skipped",
            Outcome::CacheHit => "cache hit",
            Outcome::NotRun => "not run",
        }
    }

    /// Every outcome, in legend order.
    pub(crate) const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Retried,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Cancelled,
        Outcome::Skipped,
        Outcome::CacheHit,
        Outcome::NotRun,
    ];
}

/// One attempt of a task: `[start, end]` in microseconds, and whether it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub start: u64,
    pub end: u64,
    pub failed: bool,
}

/// A task on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    pub attempts: Vec<Attempt>,
    /// Waiting for a lock before the first attempt (recorded by the state backend).
    pub lock_wait: Option<(u64, u64)>,
    pub outcome: Outcome,
    /// When it was skipped.
    pub skipped_at: Option<u64>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub at: Option<String>,
    pub duration_ms: Option<u64>,
    pub critical: bool,
}

impl Span {
    pub(crate) fn start(&self) -> Option<u64> {
        self.attempts.first().map(|a| a.start).or(self.skipped_at)
    }

    pub(crate) fn end(&self) -> Option<u64> {
        self.attempts.last().map(|a| a.end).or(self.skipped_at)
    }

    /// Whether it ran (and so took time).
    pub(crate) fn ran(&self) -> bool {
        !self.attempts.is_empty()
    }
}

/// The run read as a timeline.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// One per task, by task id.
    pub spans: Vec<Span>,
    /// When each phase's barrier opened (`None`: the phase never started).
    pub barriers: Vec<Option<u64>>,
    /// The critical path, first task first.
    pub critical: Vec<usize>,
    /// The last moment recorded, in microseconds (at least 1).
    pub total_us: u64,
}

impl Timeline {
    pub(crate) fn of(run: &Run) -> Self {
        let n = run.tasks.len();
        let blank = Span {
            attempts: Vec::new(),
            lock_wait: None,
            outcome: Outcome::NotRun,
            skipped_at: None,
            reason: None,
            error: None,
            at: None,
            duration_ms: None,
            critical: false,
        };
        let mut spans = vec![blank; n];
        let mut barriers = vec![None; run.phases.len()];
        let mut open: Vec<Option<u64>> = vec![None; n];
        let mut total_us = 1;
        for e in &run.events {
            total_us = total_us.max(e.us());
            match e {
                Mark::Phase { us, phase } => {
                    if let Some(b) = barriers.get_mut(*phase) {
                        b.get_or_insert(*us);
                    }
                }
                Mark::Started { us, task, .. } if *task < n => open[*task] = Some(*us),
                Mark::Retried { us, task, error, .. } if *task < n => {
                    let start = open[*task].take().unwrap_or(*us);
                    spans[*task].attempts.push(Attempt { start, end: *us, failed: true });
                    spans[*task].error.get_or_insert_with(|| error.clone());
                }
                Mark::Finished { us, task, status, attempts, duration_ms, error, at }
                    if *task < n =>
                {
                    let s = &mut spans[*task];
                    let start = open[*task].take().unwrap_or(*us);
                    s.attempts.push(Attempt { start, end: *us, failed: *status != Status::Ok });
                    s.outcome = match status {
                        Status::Ok if *attempts > 1 => Outcome::Retried,
                        Status::Ok => Outcome::Ok,
                        Status::Failed => Outcome::Failed,
                        Status::TimedOut => Outcome::TimedOut,
                        Status::Cancelled => Outcome::Cancelled,
                    };
                    if error.is_some() {
                        s.error = error.clone();
                    }
                    s.at = at.clone();
                    s.duration_ms = Some(*duration_ms);
                }
                Mark::Skipped { us, task, reason } if *task < n => {
                    let s = &mut spans[*task];
                    s.outcome = Outcome::Skipped;
                    s.skipped_at = Some(*us);
                    s.reason = Some(reason.clone());
                }
                _ => {}
            }
        }
        // An attempt still open when the recording stopped ends there.
        for (id, o) in open.iter().enumerate() {
            if let Some(start) = o {
                spans[id].attempts.push(Attempt { start: *start, end: total_us, failed: true });
            }
            if spans[id].ran() && spans[id].outcome == Outcome::NotRun {
                spans[id].outcome = Outcome::Cancelled;
            }
        }
        // Tasks are skipped as their phase opens, just before its barrier is announced.
        for t in &run.tasks {
            let (Some(s), Some(Some(b))) = (spans.get_mut(t.id), barriers.get(t.phase)) else {
                continue;
            };
            if let Some(at) = &mut s.skipped_at {
                *at = (*at).max(*b);
            }
        }
        let critical = critical_path(run, &spans);
        for &id in &critical {
            spans[id].critical = true;
        }
        Timeline { spans, barriers, critical, total_us }
    }

    /// How long the critical path took, from its first start to its last end.
    pub(crate) fn critical_us(&self) -> u64 {
        match (self.critical.first(), self.critical.last()) {
            (Some(&a), Some(&b)) => {
                let s = self.spans[a].start().unwrap_or(0);
                self.spans[b].end().unwrap_or(s).saturating_sub(s)
            }
            _ => 0,
        }
    }
}

/// See the module documentation.
fn critical_path(run: &Run, spans: &[Span]) -> Vec<usize> {
    let ran = |id: usize| spans[id].ran();
    let end = |id: usize| spans[id].end().unwrap_or(0);
    // The task that ended last in each phase.
    let mut last_of_phase: Vec<Option<usize>> = vec![None; run.phases.len()];
    for t in &run.tasks {
        if t.id < spans.len() && ran(t.id) && t.phase < last_of_phase.len() {
            let slot = &mut last_of_phase[t.phase];
            if slot.is_none_or(|o| end(t.id) > end(o)) {
                *slot = Some(t.id);
            }
        }
    }
    let Some(mut cur) = last_of_phase.iter().flatten().copied().max_by_key(|&id| (end(id), id))
    else {
        return Vec::new();
    };
    let mut path = vec![cur];
    // Ends strictly decrease along the path, so this ends; the bound is for safety.
    for _ in 0..spans.len() {
        let t = &run.tasks[cur];
        let start = spans[cur].start().unwrap_or(0);
        let barrier = last_of_phase[..t.phase.min(last_of_phase.len())].iter().flatten().copied();
        let waited = t
            .after
            .iter()
            .copied()
            .filter(|&d| d < spans.len() && ran(d))
            .chain(barrier)
            .filter(|&d| end(d) <= start && d != cur)
            .max_by_key(|&d| (end(d), d));
        match waited {
            Some(d) => {
                path.push(d);
                cur = d;
            }
            None => break,
        }
    }
    path.reverse();
    path
}

/// One phase's row in the summary.
#[derive(Debug, Clone)]
pub(crate) struct PhaseRow {
    pub name: String,
    pub tasks: usize,
    /// When its barrier opened.
    pub start: Option<u64>,
    /// From its barrier to the end of its last task.
    pub took: Option<u64>,
    /// Its longest task.
    pub slowest: Option<usize>,
}

/// Per phase: tasks, start, duration, slowest task.
pub(crate) fn phases(run: &Run, tl: &Timeline) -> Vec<PhaseRow> {
    run.phases
        .iter()
        .enumerate()
        .map(|(p, name)| {
            let ids: Vec<usize> = run
                .tasks
                .iter()
                .filter(|t| t.phase == p && t.id < tl.spans.len())
                .map(|t| t.id)
                .collect();
            let last = ids.iter().filter_map(|&i| tl.spans[i].attempts.last().map(|a| a.end)).max();
            let start = tl.barriers[p];
            PhaseRow {
                name: name.clone(),
                tasks: ids.len(),
                start,
                took: start.zip(last).map(|(s, e)| e.saturating_sub(s)),
                slowest: ids
                    .iter()
                    .copied()
                    .filter(|&i| tl.spans[i].ran())
                    .max_by_key(|&i| busy(&tl.spans[i])),
            }
        })
        .collect()
}

/// Time a task spent running, over all its attempts.
pub(crate) fn busy(s: &Span) -> u64 {
    s.attempts.iter().map(|a| a.end.saturating_sub(a.start)).sum()
}

/// The `n` tasks that ran longest, longest first.
pub(crate) fn slowest(tl: &Timeline, n: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..tl.spans.len()).filter(|&i| tl.spans[i].ran()).collect();
    ids.sort_by_key(|&i| (std::cmp::Reverse(busy(&tl.spans[i])), i));
    ids.truncate(n);
    ids
}

/// How many tasks had each outcome, in [`Outcome::ALL`] order.
pub(crate) fn outcomes(tl: &Timeline) -> Vec<(Outcome, usize)> {
    Outcome::ALL
        .iter()
        .map(|&o| (o, tl.spans.iter().filter(|s| s.outcome == o).count()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// `850ms`, `2.3s`, `1m05s` from microseconds (sub-millisecond: `0.4ms`).
pub(crate) fn human_us(us: u64) -> String {
    if us < 1000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        crate::ui::render::human(std::time::Duration::from_micros(us))
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::{Service, Task};
    use super::*;

    fn task(id: usize, service: usize, phase: usize, after: &[usize]) -> Task {
        Task {
            id,
            service,
            step: ["build", "deploy"][phase].into(),
            phase,
            label: format!("s{service}/{phase}"),
            after: after.to_vec(),
            ..Task::default()
        }
    }

    /// Two services, two phases: s0 build 0–10, s1 build (after s0) 10–30 with a failed first
    /// attempt, s0 deploy 31–35, s1 deploy 31–50; the path is s0 build, s1 build, s1 deploy.
    fn run() -> Run {
        let fin = |us, task, attempts| Mark::Finished {
            us,
            task,
            status: Status::Ok,
            attempts,
            duration_ms: 0,
            error: None,
            at: None,
        };
        Run {
            phases: vec!["build".into(), "deploy".into()],
            services: vec![Service::default(), Service::default()],
            tasks: vec![
                task(0, 0, 0, &[]),
                task(1, 1, 0, &[0]),
                task(2, 0, 1, &[]),
                task(3, 1, 1, &[]),
            ],
            events: vec![
                Mark::Phase { us: 0, phase: 0 },
                Mark::Started { us: 0, task: 0, attempt: 1 },
                fin(10, 0, 1),
                Mark::Started { us: 10, task: 1, attempt: 1 },
                Mark::Retried { us: 15, task: 1, attempt: 1, delay_ms: 1, error: "boom".into() },
                Mark::Started { us: 16, task: 1, attempt: 2 },
                fin(30, 1, 2),
                Mark::Phase { us: 31, phase: 1 },
                Mark::Started { us: 31, task: 2, attempt: 1 },
                Mark::Started { us: 31, task: 3, attempt: 1 },
                fin(35, 2, 1),
                fin(50, 3, 1),
                Mark::End { us: 51 },
            ],
            ..Run::default()
        }
    }

    #[test]
    fn attempts_outcomes_and_barriers() {
        let tl = Timeline::of(&run());
        assert_eq!(tl.spans[1].outcome, Outcome::Retried);
        assert_eq!(tl.spans[1].attempts.len(), 2);
        assert!(tl.spans[1].attempts[0].failed && !tl.spans[1].attempts[1].failed);
        assert_eq!(tl.barriers, vec![Some(0), Some(31)]);
        assert_eq!(tl.total_us, 51);
    }

    #[test]
    fn the_critical_path_follows_dependencies_and_barriers() {
        let tl = Timeline::of(&run());
        assert_eq!(tl.critical, vec![0, 1, 3]);
        assert_eq!(tl.critical_us(), 50);
        let rows = phases(&run(), &tl);
        assert_eq!(rows[1].took, Some(19));
        assert_eq!(rows[0].slowest, Some(1));
        assert_eq!(slowest(&tl, 2), vec![1, 3]);
    }

    #[test]
    fn a_run_that_stopped_early_still_draws() {
        let mut r = run();
        r.events.truncate(6);
        let tl = Timeline::of(&r);
        assert_eq!(tl.spans[1].outcome, Outcome::Cancelled);
        assert_eq!(tl.spans[3].outcome, Outcome::NotRun);
        assert_eq!(tl.critical, vec![0, 1]);
    }
}
