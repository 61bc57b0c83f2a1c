//! What a notifier is told: one [`Notification`] per event, the same JSON for every notifier
//! (the `webhook` notifier sends it as it is; `docs/notifications.md` documents the shape).
//! The events are built here from plain data (and the orchestrator's run summary), so the
//! deploy pipeline and the scaler can both send them.

use serde::Serialize;

/// The end of a run, as the orchestrator reports it (`ok`, counts, failures, per-service status).
pub(crate) use crate::orchestrator::event::Summary;

/// The events a notifier can subscribe to (`events:` in `pilum-project.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// The plan is ready and tasks are about to run.
    RunStarted,
    /// Every task ended and none failed.
    RunFinished,
    /// The run ended with a failed task, or was interrupted.
    RunFailed,
    /// Every task of one service succeeded.
    ServiceDeployed,
    /// A task of one service failed (sent at its first failure).
    ServiceFailed,
    /// A service was rolled back to its previous release.
    ServiceRolledBack,
    /// The run has been waiting for the deploy lock longer than the notifier's `lock_wait`.
    LockWait,
    /// The scaler applied a change (`pilum scale serve`'s `notify:`).
    ScaleSucceeded,
    /// The scaler's `pulumi up` failed.
    ScaleFailed,
    /// A guardrail held back a change the strategy asked for.
    ScaleSkipped,
    /// A drift check found the stack out of line with the cloud.
    DriftDetected,
    /// An update gave up on Pulumi's stack lock after `--lock-deadline`.
    LockRetriesExhausted,
    /// The deciding replica changed (with `--ha`).
    LeaderChanged,
    PoolPaused,
    PoolResumed,
}

impl Kind {
    pub(crate) const ALL: [Kind; 15] = [
        Kind::RunStarted,
        Kind::RunFinished,
        Kind::RunFailed,
        Kind::ServiceDeployed,
        Kind::ServiceFailed,
        Kind::ServiceRolledBack,
        Kind::LockWait,
        Kind::ScaleSucceeded,
        Kind::ScaleFailed,
        Kind::ScaleSkipped,
        Kind::DriftDetected,
        Kind::LockRetriesExhausted,
        Kind::LeaderChanged,
        Kind::PoolPaused,
        Kind::PoolResumed,
    ];

    /// The scaler's events (what a pools file's `notify:` gets by default, and for `*`): the
    /// last eight of `ALL`.
    pub(crate) const SCALE: &'static [Kind] = Kind::ALL.split_at(7).1;

    /// The events a notifier gets when its `events:` is not given.
    pub(crate) const DEFAULT: [Kind; 2] = [Kind::RunFinished, Kind::RunFailed];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::RunStarted => "run_started",
            Kind::RunFinished => "run_finished",
            Kind::RunFailed => "run_failed",
            Kind::ServiceDeployed => "service_deployed",
            Kind::ServiceFailed => "service_failed",
            Kind::ServiceRolledBack => "service_rolled_back",
            Kind::LockWait => "lock_wait",
            Kind::ScaleSucceeded => "scale_succeeded",
            Kind::ScaleFailed => "scale_failed",
            Kind::ScaleSkipped => "scale_skipped",
            Kind::DriftDetected => "drift_detected",
            Kind::LockRetriesExhausted => "lock_retries_exhausted",
            Kind::LeaderChanged => "leader_changed",
            Kind::PoolPaused => "pool_paused",
            Kind::PoolResumed => "pool_resumed",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `status` word of the payload.
    fn status(self) -> &'static str {
        match self {
            Kind::RunStarted => "started",
            Kind::RunFinished | Kind::ServiceDeployed => "ok",
            Kind::RunFailed | Kind::ServiceFailed => "failed",
            Kind::ServiceRolledBack => "rolled_back",
            Kind::LockWait => "waiting",
            Kind::ScaleSucceeded | Kind::PoolResumed => "ok",
            Kind::ScaleFailed | Kind::LockRetriesExhausted => "failed",
            Kind::ScaleSkipped | Kind::DriftDetected | Kind::LeaderChanged | Kind::PoolPaused => {
                "waiting"
            }
        }
    }
}

/// The run an event belongs to.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Run {
    /// Unique per run: the same in every event of the run.
    pub id: String,
    /// `deploy`, `build`, `publish`, `push`.
    pub command: String,
    /// The project root's directory name.
    pub project: String,
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The planned services, in plan order.
    pub services: Vec<String>,
    pub dry_run: bool,
    /// The CI provider's name and the run's page, when run in CI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// One service's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Service {
    pub name: String,
    /// What the deploy step returned as its `url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failed task (`api/deploy@us-east1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// A wait for the deploy lock.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Lock {
    /// Who holds it, as the lock records it.
    pub holder: String,
    pub waited_ms: u64,
}

/// One event, as every notifier receives it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Notification {
    pub event: Kind,
    /// `started`, `ok`, `failed`, `rolled_back` or `waiting`.
    pub status: &'static str,
    /// One line for humans: "deploy of `api` to `production` failed".
    pub title: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub run: Run,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<Lock>,
    /// The scaler's events: pool, values, reason (see docs/scaling.md, ChatOps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<serde_json::Value>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// " to `production`" when there is an environment.
fn to_env(run: &Run) -> String {
    run.environment.as_ref().map(|e| format!(" to `{e}`")).unwrap_or_default()
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

impl Notification {
    fn new(event: Kind, title: String, run: &Run) -> Self {
        Self {
            event,
            status: event.status(),
            title,
            time: now(),
            run: run.clone(),
            service: None,
            summary: None,
            lock: None,
            scale: None,
        }
    }

    /// An event of the scaler (`run.command` is `scale`, `run.services` the pool).
    pub(crate) fn scale(event: Kind, title: String, run: &Run, details: serde_json::Value) -> Self {
        Self { scale: Some(details), ..Self::new(event, title, run) }
    }

    pub(crate) fn run_started(run: &Run) -> Self {
        let title = format!(
            "{} of {}{} started",
            run.command,
            plural(run.services.len(), "service"),
            to_env(run)
        );
        Self::new(Kind::RunStarted, title, run)
    }

    /// `run_finished` when the run is ok, else `run_failed`.
    pub(crate) fn run_ended(run: &Run, summary: Summary) -> Self {
        let (kind, how) = if summary.ok {
            (Kind::RunFinished, "succeeded".to_string())
        } else if summary.interrupted {
            (Kind::RunFailed, "was interrupted".to_string())
        } else {
            (
                Kind::RunFailed,
                format!("failed ({} failed)", plural(summary.services.failed, "service")),
            )
        };
        let title = format!(
            "{} of {}{} {how}",
            run.command,
            plural(summary.services.total, "service"),
            to_env(run)
        );
        let mut n = Self::new(kind, title, run);
        n.summary = Some(summary);
        n
    }

    pub(crate) fn service_deployed(run: &Run, service: Service) -> Self {
        let title = format!("{} of `{}`{} succeeded", run.command, service.name, to_env(run));
        let mut n = Self::new(Kind::ServiceDeployed, title, run);
        n.service = Some(service);
        n
    }

    pub(crate) fn service_failed(run: &Run, service: Service) -> Self {
        let title = format!("{} of `{}`{} failed", run.command, service.name, to_env(run));
        let mut n = Self::new(Kind::ServiceFailed, title, run);
        n.service = Some(service);
        n
    }

    pub(crate) fn service_rolled_back(run: &Run, service: Service) -> Self {
        let title = format!("`{}`{} was rolled back", service.name, to_env(run));
        let mut n = Self::new(Kind::ServiceRolledBack, title, run);
        n.service = Some(service);
        n
    }

    pub(crate) fn lock_wait(run: &Run, lock: Lock) -> Self {
        let title = format!(
            "{}{} is waiting for the deploy lock held by {} ({})",
            run.command,
            to_env(run),
            lock.holder,
            crate::duration::format(std::time::Duration::from_millis(lock.waited_ms))
        );
        let mut n = Self::new(Kind::LockWait, title, run);
        n.lock = Some(lock);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
            assert_eq!(serde_json::to_value(k).expect("json"), k.name());
        }
        assert_eq!(Kind::parse("run_start"), None);
    }

    #[test]
    fn titles_read_as_sentences() {
        let run = Run {
            command: "deploy".into(),
            environment: Some("production".into()),
            services: vec!["api".into(), "web".into()],
            ..Run::default()
        };
        assert_eq!(
            Notification::run_started(&run).title,
            "deploy of 2 services to `production` started"
        );
        let s = Summary {
            ok: false,
            services: crate::orchestrator::event::Counts {
                total: 2,
                ok: 1,
                failed: 1,
                ..Default::default()
            },
            ..Summary::default()
        };
        let n = Notification::run_ended(&run, s);
        assert_eq!(n.event, Kind::RunFailed);
        assert_eq!(n.title, "deploy of 2 services to `production` failed (1 service failed)");
        let v = serde_json::to_value(&n).expect("json");
        assert_eq!(v["status"], "failed");
        assert!(v.get("service").is_none());
        assert_eq!(v["run"]["environment"], "production");
    }
}
