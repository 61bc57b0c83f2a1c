//! The notifier runner: events in, Rhai notifier scripts out, never in the way of the run.
//!
//! A notifier is a script with `fn notify(event, config)` (the built-ins are `stdlib/notify/`,
//! a project adds `notifiers/<name>.rhai`), run on an engine of the notifier profile: the pure
//! API plus `http::`, nothing that touches processes, files or the environment. Each
//! configured target has a worker thread and a bounded queue: [`Dispatcher::send`] only
//! enqueues, so no task ever waits for a receiver. A delivery that fails (an error, or a
//! returned response with status 408, 425, 429 or 5xx) is retried with [`crate::backoff`],
//! honouring `Retry-After`; other 4xx answers are final. [`Dispatcher::finish`] gives the
//! queues a bound (10 s by default) to drain, then cancels what is left; what was not
//! delivered becomes a warning, never an error. Texts are masked by `crate::redact`.

pub(crate) mod config;
pub(crate) mod event;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rhai::{AST, CallFnOptions, Dynamic, Engine, Map, Scope};

use crate::backoff::Backoff;
use crate::process::CancelToken;
use crate::script::engine::{self, Limits, Profile};
use crate::script::{CallCtx, Deadline, Host, LogLevel, Stop, with_call};
use crate::sync::LockExt;
pub(crate) use config::Target;
pub(crate) use event::{Kind, Notification};

/// How long the end of a run waits for notifications by default.
pub(crate) const DEFAULT_FLUSH: Duration = Duration::from_secs(10);

/// Attempts per notification.
const ATTEMPTS: u32 = 5;
/// Events waiting per target; more are dropped (and counted) rather than ever blocking.
const QUEUE: usize = 256;
/// One attempt's time limit (a notifier's own `http` timeout may be shorter).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Where the runner's own messages go (the app layer prints them).
pub(crate) trait Report: Send + Sync {
    fn warn(&self, message: &str);
    /// A request recorded under `--dry-run`.
    fn dry_run(&self, message: &str);
}

/// The built-in notifiers and the project's `notifiers/*.rhai`, by name (the project's win).
pub(crate) fn catalogue(root: &Path) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = crate::embedded::NOTIFIERS
        .iter()
        .map(|(n, t)| (n.to_string(), format!("<built-in>/notify/{n}.rhai"), t.to_string()))
        .collect();
    let dir = root.join("notifiers");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let Some(name) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|_| p.extension().is_some_and(|x| x == "rhai"))
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(&p) else { continue };
            let source = format!("notifiers/{name}.rhai");
            out.retain(|(n, _, _)| n != name);
            out.push((name.to_string(), source, text));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The names `notifier:` may take.
pub(crate) fn known(root: &Path) -> Vec<String> {
    catalogue(root).into_iter().map(|(n, _, _)| n).collect()
}

/// Compile the notifier `name`: its AST, or the rendered error.
fn compile(engine: &Engine, root: &Path, name: &str) -> Result<AST, String> {
    let (_, source, text) = catalogue(root)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .ok_or_else(|| format!("unknown notifier `{name}`"))?;
    let mut ast =
        engine.compile(&text).map_err(|e| crate::script::error::render_parse(&e, &source))?;
    if !ast.iter_functions().any(|f| f.name == "notify" && f.params.len() == 2) {
        return Err(format!(
            "notifier `{source}` has no `fn notify(event, config)`\nhelp: a notifier defines `fn notify(event, config)` and returns the response of its `http::post`"
        ));
    }
    ast.set_source(source.as_str());
    Ok(ast)
}

/// Check that every notifier compiles and has `notify(event, config)` (for `pilum check`).
pub(crate) fn check_scripts(root: &Path, names: &[&str]) -> Vec<String> {
    let engine = engine_for(root, false, Arc::new(crate::script::NullSink));
    names.iter().filter_map(|n| compile(&engine, root, n).err()).collect()
}

fn engine_for(root: &Path, dry_run: bool, sink: Arc<dyn crate::script::Sink>) -> Engine {
    let mut host = Host::new(root, sink);
    host.dry_run = dry_run;
    engine::build(&Arc::new(host), Profile::Notifier(Limits::strategy()))
}

/// Turns the notifier scripts' own output into the runner's messages.
struct ScriptSink(Arc<dyn Report>);

impl crate::script::Sink for ScriptSink {
    fn event(&self, label: &str, event: crate::script::Event<'_>) {
        use crate::script::Event as E;
        match event {
            E::DryRun { detail, .. } => {
                self.0.dry_run(&format!("notifier `{label}` would send {detail}"));
            }
            E::Log { level: LogLevel::Warn | LogLevel::Error, message } => {
                self.0.warn(&format!("notifier `{label}`: {message}"));
            }
            _ => {}
        }
    }
}

/// What happened to one target's notifications.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Stats {
    pub delivered: usize,
    /// Given up on after the receiver refused them or every attempt failed.
    pub failed: usize,
    /// Still queued or in flight when the bound passed.
    pub undelivered: usize,
    /// Not queued: the queue was full.
    pub dropped: usize,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

struct Worker {
    target: Target,
    tx: Option<SyncSender<Arc<serde_json::Value>>>,
    queued: Arc<AtomicUsize>,
    dropped: AtomicUsize,
    done: Receiver<Stats>,
    /// `lock_wait` was sent (once per run).
    lock_wait_sent: std::sync::atomic::AtomicBool,
}

/// The running notifiers of one run.
pub(crate) struct Dispatcher {
    workers: Vec<Worker>,
    flush: Duration,
    /// When the flush bound ends (set by `finish`); retries do not wait past it.
    deadline: Arc<Mutex<Option<Instant>>>,
    cancel: CancelToken,
    report: Arc<dyn Report>,
}

impl Dispatcher {
    /// Compile the targets' notifiers and start one worker per target. A notifier that does not
    /// compile is an error (a configuration problem, found before anything runs).
    pub(crate) fn start(
        root: &Path,
        targets: Vec<Target>,
        dry_run: bool,
        flush: Duration,
        report: Arc<dyn Report>,
    ) -> Result<Self, String> {
        let engine = Arc::new(engine_for(root, dry_run, Arc::new(ScriptSink(report.clone()))));
        let deadline = Arc::new(Mutex::new(None));
        let cancel = CancelToken::new();
        let mut workers = Vec::new();
        for target in targets {
            let ast = Arc::new(compile(&engine, root, &target.notifier)?);
            let (tx, rx) = mpsc::sync_channel::<Arc<serde_json::Value>>(QUEUE);
            let (done_tx, done) = mpsc::channel();
            let queued = Arc::new(AtomicUsize::new(0));
            let job = Job {
                engine: engine.clone(),
                ast,
                config: target_config(&target),
                name: target.name.clone(),
                deadline: deadline.clone(),
                cancel: cancel.clone(),
                queued: queued.clone(),
            };
            std::thread::Builder::new()
                .name(format!("pilum-notify-{}", target.name))
                .spawn(move || {
                    let stats = job.run(rx);
                    let _ = done_tx.send(stats);
                })
                .map_err(|e| format!("cannot start notifier `{}`: {e}", target.name))?;
            workers.push(Worker {
                target,
                tx: Some(tx),
                queued,
                dropped: AtomicUsize::new(0),
                done,
                lock_wait_sent: std::sync::atomic::AtomicBool::new(false),
            });
        }
        Ok(Self { workers, flush, deadline, cancel, report })
    }

    /// Queue `n` for every target subscribed to its event. Never blocks.
    pub(crate) fn send(&self, n: &Notification) {
        let wanted: Vec<&Worker> =
            self.workers.iter().filter(|w| w.target.events.contains(&n.event)).collect();
        if wanted.is_empty() {
            return;
        }
        let value = match serde_json::to_value(n) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                self.report.warn(&format!(
                    "cannot encode a notification: {e} (this is a bug in pilum; please report it)"
                ));
                return;
            }
        };
        for w in wanted {
            let Some(tx) = &w.tx else { continue };
            w.queued.fetch_add(1, Ordering::SeqCst);
            match tx.try_send(value.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    w.queued.fetch_sub(1, Ordering::SeqCst);
                    w.dropped.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Send `lock_wait` to the targets whose `lock_wait` threshold `waited` has passed, once
    /// per target and run (it is called on every look at a busy lock).
    pub(crate) fn lock_waited(
        &self,
        run: impl FnOnce() -> event::Run,
        holder: &str,
        waited: Duration,
    ) {
        // Called on every look at a busy lock: nothing is built until a target is due.
        let due: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.target.events.contains(&Kind::LockWait) && waited >= w.target.lock_wait)
            .filter(|w| !w.lock_wait_sent.swap(true, Ordering::SeqCst))
            .collect();
        if due.is_empty() {
            return;
        }
        let n = Notification::lock_wait(
            &run(),
            event::Lock { holder: holder.to_string(), waited_ms: waited.as_millis() as u64 },
        );
        let value = Arc::new(serde_json::to_value(&n).unwrap_or_default());
        for w in due {
            let Some(tx) = &w.tx else { continue };
            w.queued.fetch_add(1, Ordering::SeqCst);
            if tx.try_send(value.clone()).is_err() {
                w.queued.fetch_sub(1, Ordering::SeqCst);
                w.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Let the queues drain for at most the flush bound, then stop; warn about what was not
    /// delivered. Returns each target's stats.
    pub(crate) fn finish(mut self) -> Vec<(String, Stats)> {
        let end = Instant::now() + self.flush;
        *self.deadline.locked() = Some(end);
        for w in &mut self.workers {
            w.tx = None;
        }
        let mut out = Vec::new();
        for w in &self.workers {
            let left = end.saturating_duration_since(Instant::now());
            let stats = match w.done.recv_timeout(left) {
                Ok(s) => s,
                Err(_) => {
                    // Out of time: stop every worker, then give this one a moment to report.
                    self.cancel.cancel();
                    w.done.recv_timeout(Duration::from_millis(500)).unwrap_or_else(|_| Stats {
                        undelivered: w.queued.load(Ordering::SeqCst),
                        ..Stats::default()
                    })
                }
            };
            let mut stats = stats;
            stats.dropped += w.dropped.load(Ordering::SeqCst);
            self.warn_about(&w.target.name, &stats);
            out.push((w.target.name.clone(), stats));
        }
        self.cancel.cancel();
        out
    }

    fn warn_about(&self, name: &str, s: &Stats) {
        let why =
            s.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
        if s.failed > 0 {
            self.report.warn(&format!("notifier `{name}`: {} not delivered{why}", count(s.failed)));
        }
        if s.undelivered > 0 {
            self.report.warn(&format!(
                "notifier `{name}`: {} still pending after {}; given up{}",
                count(s.undelivered),
                crate::duration::format(self.flush),
                if s.failed > 0 { String::new() } else { why }
            ));
        }
        if s.dropped > 0 {
            self.report
                .warn(&format!("notifier `{name}`: {} dropped (queue full)", count(s.dropped)));
        }
    }
}

fn count(n: usize) -> String {
    if n == 1 { "1 notification".into() } else { format!("{n} notifications") }
}

/// The `config` map a notifier gets.
fn target_config(t: &Target) -> Map {
    let mut m = Map::new();
    m.insert("name".into(), t.name.clone().into());
    m.insert("notifier".into(), t.notifier.clone().into());
    m.insert("url".into(), t.url.clone().into());
    m.insert("secret".into(), t.secret.clone().map_or(Dynamic::UNIT, Dynamic::from));
    let options = match &t.options {
        serde_json::Value::Null => Dynamic::from_map(Map::new()),
        v => crate::script::value::to_dynamic(v).unwrap_or_default(),
    };
    m.insert("options".into(), options);
    m
}

/// One target's worker.
struct Job {
    engine: Arc<Engine>,
    ast: Arc<AST>,
    config: Map,
    name: String,
    deadline: Arc<Mutex<Option<Instant>>>,
    cancel: CancelToken,
    queued: Arc<AtomicUsize>,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth another attempt, after the server's wait if it gave one.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refused it; retrying would not help.
    Final(String),
    Stopped,
}

impl Job {
    fn flush_deadline(&self) -> Option<Instant> {
        *self.deadline.locked()
    }

    fn run(self, rx: Receiver<Arc<serde_json::Value>>) -> Stats {
        let mut stats = Stats::default();
        // Bounded: the channel closes at `finish`, and `recv` returns then.
        while let Ok(event) = rx.recv() {
            if self.cancel.is_cancelled() {
                stats.undelivered += 1;
                self.queued.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            match self.deliver(&event) {
                Ok(()) => stats.delivered += 1,
                Err(None) => stats.undelivered += 1,
                Err(Some(e)) => {
                    stats.failed += 1;
                    stats.last_error = Some(e);
                }
            }
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
        stats
    }

    /// `Err(None)`: stopped by the bound; `Err(Some(why))`: given up.
    fn deliver(&self, event: &serde_json::Value) -> Result<(), Option<String>> {
        let backoff = Backoff::new(Duration::from_millis(500)).cap(Duration::from_secs(15));
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.attempt(event) {
                Attempt::Delivered => return Ok(()),
                Attempt::Stopped => return Err(None),
                Attempt::Final(e) => return Err(Some(e)),
                Attempt::Retry { error, after } => {
                    last = error;
                    if attempt == ATTEMPTS {
                        break;
                    }
                    let wait =
                        after.map_or_else(|| backoff.delay(attempt), |a| a.min(MAX_RETRY_AFTER));
                    if self.flush_deadline().is_some_and(|d| Instant::now() + wait > d) {
                        return Err(None);
                    }
                    if !self.cancel.sleep(wait) {
                        return Err(None);
                    }
                }
            }
        }
        Err(Some(format!("{last} (after {ATTEMPTS} attempts)")))
    }

    fn attempt(&self, event: &serde_json::Value) -> Attempt {
        let mut limit = Deadline::after(ATTEMPT_TIMEOUT);
        if let Some(end) = self.flush_deadline()
            && end < limit.at
        {
            limit = Deadline { at: end, after: end.saturating_duration_since(Instant::now()) };
        }
        let call = CallCtx {
            cancel: self.cancel.clone(),
            deadline: Some(limit),
            label: self.name.clone(),
            ..CallCtx::default()
        };
        let args = (
            crate::script::value::to_dynamic(event).unwrap_or_default(),
            Dynamic::from_map(self.config.clone()),
        );
        let opts = CallFnOptions::new().eval_ast(true).rewind_scope(true);
        let result = with_call(call, || {
            self.engine.call_fn_with_options::<Dynamic>(
                opts,
                &mut Scope::new(),
                &self.ast,
                "notify",
                args,
            )
        });
        match result {
            Ok(v) => judge(&v),
            Err(e) => match engine::stop_of(&e) {
                Some(Stop::Cancelled) => Attempt::Stopped,
                Some(Stop::Exit(0)) => Attempt::Delivered,
                Some(Stop::TimedOut(_))
                    if self.flush_deadline().is_some_and(|d| Instant::now() >= d) =>
                {
                    Attempt::Stopped
                }
                Some(Stop::TimedOut(d)) => Attempt::Retry {
                    error: format!("timed out after {}", crate::process::secs(d)),
                    after: None,
                },
                _ => Attempt::Retry {
                    error: first_line(&crate::script::error::render(
                        &e,
                        self.ast.source().unwrap_or_default(),
                    )),
                    after: None,
                },
            },
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// A notifier's return value: the response of its `http::` call (judged by its status), or
/// anything else (delivered).
fn judge(v: &Dynamic) -> Attempt {
    let Some(m) = v.read_lock::<Map>() else { return Attempt::Delivered };
    let Some(status) = m.get("status").and_then(|s| s.as_int().ok()) else {
        return Attempt::Delivered;
    };
    let headers: Vec<(String, String)> = m
        .get("headers")
        .and_then(|h| {
            h.read_lock::<Map>()
                .map(|h| h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        })
        .unwrap_or_default();
    let body = m.get("body").map(std::string::ToString::to_string).unwrap_or_default();
    let resp = crate::http::Response {
        status: u16::try_from(status).unwrap_or(0),
        headers,
        body: body.clone().into_bytes(),
    };
    if resp.ok() {
        return Attempt::Delivered;
    }
    let mut error = format!("the receiver answered {status}");
    let text = first_line(body.trim());
    if !text.is_empty() {
        error.push_str(&format!(": {}", text.chars().take(200).collect::<String>()));
    }
    let error = crate::redact::redact(&error).into_owned();
    if resp.retryable() {
        Attempt::Retry { error, after: resp.retry_after(SystemTime::now()) }
    } else {
        Attempt::Final(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl Report for Collect {
        fn warn(&self, m: &str) {
            self.0.locked().push(format!("warn: {m}"));
        }
        fn dry_run(&self, m: &str) {
            self.0.locked().push(format!("dry: {m}"));
        }
    }

    fn target(notifier: &str, url: &str) -> Target {
        Target {
            name: notifier.into(),
            notifier: notifier.into(),
            url: url.into(),
            secret: Some("s3cret-value".into()),
            events: Kind::ALL.to_vec(),
            lock_wait: Duration::from_secs(60),
            options: serde_json::Value::Null,
        }
    }

    fn run() -> event::Run {
        event::Run {
            command: "deploy".into(),
            services: vec!["api".into()],
            ..event::Run::default()
        }
    }

    #[test]
    fn every_builtin_compiles_and_has_notify() {
        let root = std::env::temp_dir();
        let names: Vec<String> =
            crate::embedded::NOTIFIERS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["discord", "slack", "teams", "webhook"]);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(check_scripts(&root, &refs), Vec::<String>::new());
    }

    #[test]
    fn a_project_notifier_overrides_and_is_checked() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("notifiers")).expect("mkdir");
        std::fs::write(dir.path().join("notifiers/pager.rhai"), "fn notify(e) { }").expect("write");
        std::fs::write(dir.path().join("notifiers/slack.rhai"), "fn notify(e, c) { () }")
            .expect("write");
        let known = known(dir.path());
        assert!(known.contains(&"pager".to_string()) && known.contains(&"webhook".to_string()));
        let errs = check_scripts(dir.path(), &["pager", "slack"]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("has no `fn notify(event, config)`"), "{errs:?}");
    }

    #[test]
    fn dry_runs_record_and_deliver() {
        let report = Arc::new(Collect::default());
        let d = Dispatcher::start(
            &std::env::temp_dir(),
            vec![target("webhook", "https://hooks.invalid/x")],
            true,
            Duration::from_secs(5),
            report.clone(),
        )
        .expect("start");
        d.send(&Notification::run_started(&run()));
        let stats = d.finish();
        assert_eq!(stats[0].1.delivered, 1, "{stats:?}");
        let lines = report.0.locked().clone();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("dry: notifier `webhook` would send POST https://hooks.invalid/x"),
            "{lines:?}"
        );
    }

    #[test]
    fn lock_wait_goes_only_past_the_threshold() {
        let report = Arc::new(Collect::default());
        let mut t = target("webhook", "https://hooks.invalid/x");
        t.lock_wait = Duration::from_secs(30);
        let d = Dispatcher::start(
            &std::env::temp_dir(),
            vec![t],
            true,
            Duration::from_secs(5),
            report.clone(),
        )
        .expect("start");
        d.lock_waited(run, "ci-runner-7", Duration::from_secs(10));
        d.lock_waited(run, "ci-runner-7", Duration::from_secs(45));
        d.lock_waited(run, "ci-runner-7", Duration::from_secs(46));
        assert_eq!(d.finish()[0].1.delivered, 1, "once past the threshold, once per run");
    }

    #[test]
    fn responses_are_judged_by_status() {
        let resp = |status: i64, headers: &[(&str, &str)]| {
            let mut m = Map::new();
            m.insert("status".into(), status.into());
            let h: Map =
                headers.iter().map(|(k, v)| ((*k).into(), Dynamic::from(v.to_string()))).collect();
            m.insert("headers".into(), h.into());
            m.insert("body".into(), "no_service".into());
            Dynamic::from_map(m)
        };
        assert!(matches!(judge(&resp(204, &[])), Attempt::Delivered));
        assert!(matches!(judge(&Dynamic::UNIT), Attempt::Delivered));
        assert!(
            matches!(judge(&resp(404, &[])), Attempt::Final(e) if e == "the receiver answered 404: no_service")
        );
        assert!(matches!(
            judge(&resp(429, &[("retry-after", "2")])),
            Attempt::Retry { after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        assert!(matches!(judge(&resp(502, &[])), Attempt::Retry { after: None, .. }));
    }
}
