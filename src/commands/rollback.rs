//! `pilum rollback SERVICE…`: call each target's `fn rollback(ctx)` with `ctx.to`, the revision
//! to put back live. Where that comes from is [`rollback_to`]: `--to`, else the previous
//! successful deploy in history (when [`run_with`] is given history), else `()`, which the
//! recipe reads as "the provider's previous revision". `--dry-run` runs nothing and prints the
//! commands, as deploy dry runs do. A hook returns `#{ revision, url }`, what is live now. A
//! rollback holds each target's deploy lock (service × environment × target) in the state
//! backend, as a deploy does, and is recorded there as a deploy record with command
//! `rollback`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::live::{self, History, LiveError, Printer, Show, TargetKey};
use crate::cli::RollbackArgs;
use crate::error::{Error, exit};
use crate::output::Output;
use crate::recipe::hooks::{Hook, HookRunner, Rolled, Target};
use crate::state::lock::{self, Holder, LockKey, Locks, Status};
use crate::state::record::{self, Origin, Outcome as RecordOutcome, Record};
use crate::state::{Backend, Batch};

/// What a rollback goes back to, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RollbackTo {
    /// `--to`.
    Given(String),
    /// The previous successful deploy in history.
    Recorded(String),
    /// The provider's previous revision (the recipe finds it): `ctx.to` is `()`.
    ProviderPrevious,
}

impl RollbackTo {
    /// `ctx.to`.
    pub(crate) fn revision(&self) -> Option<&str> {
        match self {
            RollbackTo::Given(r) | RollbackTo::Recorded(r) => Some(r),
            RollbackTo::ProviderPrevious => None,
        }
    }

    /// Where the revision came from, for `--json` (`flag`, `history`, `provider`).
    pub(crate) fn source(&self) -> &'static str {
        match self {
            RollbackTo::Given(_) => "flag",
            RollbackTo::Recorded(_) => "history",
            RollbackTo::ProviderPrevious => "provider",
        }
    }
}

/// The rollback decision: `--to` wins; else the revision of the previous successful deploy
/// history recorded (one without a revision does not count); else the provider's previous.
pub(crate) fn rollback_to(
    given: Option<&str>,
    recorded_previous: Option<&live::LastDeploy>,
) -> RollbackTo {
    if let Some(to) = given {
        return RollbackTo::Given(to.to_string());
    }
    match recorded_previous.and_then(|d| d.revision.clone()) {
        Some(r) => RollbackTo::Recorded(r),
        None => RollbackTo::ProviderPrevious,
    }
}

/// One target's rollback.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub service: String,
    pub recipe: String,
    pub region: Option<String>,
    pub environment: Option<String>,
    pub label: String,
    pub to: RollbackTo,
    pub result: Result<Rolled, String>,
    /// The version tag it went back to, when history knows it (else `--to`'s value).
    pub version: Option<String>,
}

/// `pilum rollback` without history.
pub(crate) fn run(dir: Option<PathBuf>, args: &RollbackArgs, out: &Output) -> Result<(), Error> {
    run_with(dir, args, out, None)
}

/// `pilum rollback`; with `history`, the default target is the previous recorded deploy.
pub(crate) fn run_with(
    dir: Option<PathBuf>,
    args: &RollbackArgs,
    out: &Output,
    history: Option<&dyn History>,
) -> Result<(), Error> {
    let cancel = live::interruptible(out);
    let outcomes = rollback(dir, args, out, history, &cancel)?;
    if cancel.is_cancelled() {
        return Err(Error::silent(exit::INTERRUPTED));
    }
    for o in &outcomes {
        if out.json {
            let r = o.result.as_ref().ok();
            out.json_line(&serde_json::json!({
                "event": "rollback",
                "service": o.service,
                "target": o.recipe,
                "region": o.region,
                "environment": o.environment,
                "dry_run": args.dry_run,
                "to": o.to.revision(),
                "to_source": o.to.source(),
                "ok": o.result.is_ok(),
                "revision": r.and_then(|r| r.revision.clone()),
                "url": r.and_then(|r| r.url.clone()),
                "error": o.result.as_ref().err(),
            }));
            continue;
        }
        match &o.result {
            Ok(_) if args.dry_run => out.info(&format!(
                "dry run: rolling back `{}` to {} would run the commands above",
                o.label,
                o.to.revision().map_or("its previous revision".to_string(), |r| format!("`{r}`"))
            )),
            Ok(r) => {
                // What is live now: a provider may make a new revision of the old one.
                let live =
                    r.revision.as_deref().map(|r| format!(", live: `{r}`")).unwrap_or_default();
                let url = r.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
                out.stdout_line(&format!("rolled back `{}`{live}{url}", o.label));
            }
            Err(e) => out.error(&format!("rollback of `{}` failed: {e}", o.label)),
        }
    }
    if outcomes.iter().any(|o| o.result.is_err()) {
        Err(Error::silent(exit::FAILURE))
    } else {
        Ok(())
    }
}

/// Select, decide each target's revision, and call the hooks (at most four at once). The
/// outcomes are in target order; a configuration problem is an error before anything runs.
pub(crate) fn rollback(
    dir: Option<PathBuf>,
    args: &RollbackArgs,
    out: &Output,
    history: Option<&dyn History>,
    cancel: &crate::script::CancelToken,
) -> Result<Vec<Outcome>, Error> {
    if args.target.services.is_empty() {
        return Err(Error::usage(
            "name the service to roll back\nhelp: `pilum rollback api`, or `pilum rollback api --to <revision>`",
        ));
    }
    let mut cfg = live::config(dir, &args.target);
    cfg.state = args.state.clone();
    let live =
        live::load(&cfg, Hook::Rollback, args.target.region.as_deref(), args.dry_run, true, out)?;
    if args.to.is_some() && live.targets.len() > 1 {
        let labels = live.targets.iter().map(|t| t.label.clone()).collect();
        return Err(Error::usage(LiveError::ToNeedsOneTarget { labels }));
    }
    let recorded = match history {
        Some(_) => None,
        None => Some(live::Recorded::new(super::pipeline::open_state(&cfg, &live.root)?, out)),
    };
    let history = history.or(recorded.as_ref().map(|r| r as &dyn History));
    // A rollback changes what is live as a deploy does: it holds the same locks (dry runs do
    // not need them) and is recorded.
    let held = match (&recorded, args.dry_run) {
        (Some(r), false) => Some(Held::take(r.backend().clone(), &live, args, out, cancel)?),
        _ => None,
    };
    let printer = Printer::new(out, Show::Verbose, &live.targets);
    let runner = HookRunner::new(&live.root, args.dry_run, out.verbose, printer);
    let started = record::now();
    let outcomes = live::each(&live.targets, 4, |t: &Target| {
        let previous = history.and_then(|h| h.previous_deploy(&TargetKey::of(t)));
        let to = rollback_to(args.to.as_deref(), previous.as_ref());
        let result = match held.as_ref().map_or(Ok(()), |h| h.check(t)) {
            Ok(()) => runner
                .rollback(t, to.revision(), cancel, Some(args.timeout))
                .map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        // The tag gone back to: history's when the revision came from it, else `--to`'s value.
        let version = match &to {
            RollbackTo::Recorded(_) => previous.and_then(|p| p.tag),
            _ => None,
        }
        .or_else(|| to.revision().map(str::to_string));
        Outcome {
            service: t.service.clone(),
            recipe: t.recipe.decl.name.clone(),
            region: t.region.clone(),
            environment: t.environment.clone(),
            label: t.label.clone(),
            to,
            result,
            version,
        }
    });
    if let Some(h) = held {
        h.record(&live, &outcomes, &started, out);
        let told: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let r = o.result.as_ref().map(|r| r.url.clone()).map_err(String::clone);
                (o.label.clone(), r)
            })
            .collect();
        super::report::notify_rollbacks(&live.root, args.target.environment.as_deref(), &told, out);
    }
    Ok(outcomes)
}

/// The deploy locks of a rollback's targets, held until it is recorded.
struct Held {
    backend: Arc<dyn Backend>,
    locks: Locks,
    keys: Vec<LockKey>,
    origin: Origin,
    run: String,
}

impl Held {
    /// Take every target's lock at once (or wait for them in arrival order with
    /// `--lock-wait`); a lock held elsewhere without `--lock-wait` is a usage error naming
    /// the holder, before anything runs.
    fn take(
        backend: Arc<dyn Backend>,
        live: &live::Live,
        args: &RollbackArgs,
        out: &Output,
        cancel: &crate::script::CancelToken,
    ) -> Result<Held, Error> {
        let mut keys: Vec<LockKey> = live.targets.iter().map(key_of).collect();
        keys.dedup();
        let origin = Origin::current(&live.root);
        let run = record::new_id();
        let me = Holder::new(&origin, &run, "rollback");
        let opts = lock::Options {
            ttl: args.lock.lock_ttl.unwrap_or(lock::DEFAULT_TTL),
            wait: args.lock.lock_wait,
        };
        let locks =
            Locks::acquire(backend.clone(), me, keys.clone(), opts, Arc::new(Told(out.clone())))
                .map_err(|e| Error::usage(e.to_string()))?;
        // Bounded: the lock thread gives up a wait at `--lock-wait`.
        for i in 0..keys.len() {
            while locks.status(i) == Status::Waiting {
                if cancel.is_cancelled() {
                    return Err(Error::silent(exit::INTERRUPTED));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Status::GaveUp(why) | Status::Lost(why) = locks.status(i) {
                return Err(Error::usage(why));
            }
        }
        Ok(Held { backend, locks, keys, origin, run })
    }

    /// Before a target's rollback: its lease is still ours.
    fn check(&self, t: &Target) -> Result<(), String> {
        let key = key_of(t);
        let i = self.keys.iter().position(|k| *k == key).expect("every target's key was taken");
        self.locks.check(i).map(|_| ())
    }

    /// One deploy record per target (command `rollback`), written before the locks go.
    fn record(self, live: &live::Live, outcomes: &[Outcome], started: &str, out: &Output) {
        let ended = record::now();
        let records = outcomes
            .iter()
            .map(|o| {
                let key = LockKey {
                    service: o.service.clone(),
                    environment: o.environment.clone(),
                    target: o.recipe.clone(),
                };
                let i = self.keys.iter().position(|k| *k == key);
                let fence = i.and_then(|i| match self.locks.status(i) {
                    Status::Held { fence } => Some(fence),
                    _ => None,
                });
                let rolled = o.result.as_ref().ok();
                let recipe = live
                    .targets
                    .iter()
                    .find(|t| t.label == o.label)
                    .map_or_else(|| o.recipe.clone(), |t| t.recipe.file.display().to_string());
                let outcome =
                    if rolled.is_some() { RecordOutcome::Ok } else { RecordOutcome::Failed };
                Record {
                    environment: o.environment.clone(),
                    region: o.region.clone(),
                    recipe,
                    version: o.version.clone().unwrap_or_else(|| "previous".into()),
                    revision: rolled.and_then(|r| r.revision.clone()),
                    url: rolled.and_then(|r| r.url.clone()),
                    started: started.to_string(),
                    ended: ended.clone(),
                    error: o.result.as_ref().err().map(|e| record::first_line(e)),
                    lock: Some(key.to_string()),
                    fence,
                    ..Record::new(
                        &self.origin,
                        &self.run,
                        "rollback",
                        &o.service,
                        &o.recipe,
                        outcome,
                    )
                }
            })
            .collect();
        let batch = Batch { records, ..Batch::default() };
        if let Err(e) = self.backend.write(&batch) {
            out.warn(&format!("the rollback is not recorded in the deploy history: {e}"));
        }
        self.locks.close();
    }
}

/// A target's deploy lock: the same key a deploy of it takes.
fn key_of(t: &Target) -> LockKey {
    LockKey {
        service: t.service.clone(),
        environment: t.environment.clone(),
        target: t.recipe.decl.name.clone(),
    }
}

/// Lock waits, told on stderr.
struct Told(Output);

impl lock::Observer for Told {
    fn waiting(&self, key: &LockKey, holder: Option<&Holder>, ahead: usize, waited: Duration) {
        self.0.info(&lock::waiting_note(key, holder, ahead, waited));
    }

    fn granted(&self, key: &LockKey, waited: Duration) {
        self.0.info(&lock::granted_note(key, waited));
    }

    fn warn(&self, message: &str) {
        self.0.warn(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::live::LastDeploy;

    fn record(revision: Option<&str>) -> LastDeploy {
        LastDeploy { revision: revision.map(str::to_string), tag: None, finished: String::new() }
    }

    fn args(services: &[&str], to: Option<&str>, dry_run: bool) -> RollbackArgs {
        RollbackArgs {
            target: crate::cli::TargetArgs {
                services: services.iter().map(std::string::ToString::to_string).collect(),
                ..Default::default()
            },
            to: to.map(str::to_string),
            dry_run,
            timeout: std::time::Duration::from_secs(60),
            state: None,
            lock: crate::cli::LockArgs::default(),
        }
    }

    /// Through the `History` seam: `api` goes back to its previous recorded deploy, `web` (one
    /// record only) to the provider's previous revision; `--to` wins over both.
    #[test]
    fn rollback_goes_to_the_previous_recorded_deploy_first() {
        use crate::commands::live::fixture::{Memo, project, quiet};
        let dir = project();
        let root = Some(dir.path().to_path_buf());
        let memo = Memo(vec![("api", vec!["r1", "r2", "r3"]), ("web", vec!["r3"])]);
        let cancel = crate::script::CancelToken::new();
        let outcomes = rollback(
            root.clone(),
            &args(&["api", "web"], None, false),
            &quiet(),
            Some(&memo),
            &cancel,
        )
        .expect("rolls back");
        let by =
            |o: &[Outcome], name: &str| o.iter().find(|o| o.service == name).cloned().expect("one");
        let api = by(&outcomes, "api");
        assert_eq!(api.to, RollbackTo::Recorded("r2".into()));
        assert_eq!(api.result.expect("ok").revision.as_deref(), Some("r2"));
        let web = by(&outcomes, "web");
        assert_eq!(web.to, RollbackTo::ProviderPrevious);
        assert_eq!(web.result.expect("ok").revision.as_deref(), Some("provider-previous"));

        let given = rollback(
            root.clone(),
            &args(&["api"], Some("r1"), false),
            &quiet(),
            Some(&memo),
            &cancel,
        )
        .expect("rolls back");
        assert_eq!(given[0].to, RollbackTo::Given("r1".into()));
        assert_eq!(given[0].result.clone().expect("ok").revision.as_deref(), Some("r1"));

        let without = rollback(root, &args(&["api"], None, false), &quiet(), None, &cancel)
            .expect("rolls back");
        assert_eq!(without[0].to, RollbackTo::ProviderPrevious, "no history: the provider's");
    }

    #[test]
    fn to_wins_then_history_then_the_provider() {
        let prev = record(Some("api-00001-abc"));
        assert_eq!(
            rollback_to(Some("api-00003-x"), Some(&prev)),
            RollbackTo::Given("api-00003-x".into())
        );
        assert_eq!(rollback_to(None, Some(&prev)), RollbackTo::Recorded("api-00001-abc".into()));
        assert_eq!(rollback_to(None, Some(&record(None))), RollbackTo::ProviderPrevious);
        assert_eq!(rollback_to(None, None), RollbackTo::ProviderPrevious);
        assert_eq!(RollbackTo::ProviderPrevious.revision(), None);
        assert_eq!(RollbackTo::Recorded("7".into()).source(), "history");
    }
}
