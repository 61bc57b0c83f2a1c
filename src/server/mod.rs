//! The scaler HTTP server: routes, webhook adapters, auth, limits, health, graceful shutdown, and
//! the `pilum scale` commands (`cli.rs`), which wire pools, the scaler and HTTP together.
//!
//! [`serve`] owns the connection loop and the shutdown sequence. Connections: at most
//! `--max-connections` at once (more are closed at once), request headers must arrive within
//! `--header-timeout` (which also closes an idle keep-alive connection after that long), and a
//! whole request, body included, within `--request-timeout`. Shutdown: SIGTERM → `/readyz`
//! fails and webhooks get 503 → the in-flight `pulumi up` may finish until the end of
//! `--shutdown-grace` less the process layer's grace, then gets SIGINT (and SIGKILL after that
//! grace) → pending signals are persisted → exit, always within `--shutdown-grace`.

pub(crate) mod auth;
pub(crate) mod limits;
pub(crate) mod page;
pub(crate) mod routes;
pub(crate) mod sns;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use crate::autoscale::log::Log;
use crate::autoscale::pool::Pools;
use crate::autoscale::scaler::{Scaler, Settings};
use crate::error::{Error, exit};

/// Everything `pilum scale serve` needs, resolved from flags.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub listen: SocketAddr,
    pub settings: Settings,
    pub tokens: Vec<String>,
    pub no_auth: bool,
    pub sns_verify: bool,
    pub sns_trust_loopback: bool,
    pub sns_max_age: Duration,
    pub max_body: usize,
    pub rate: f64,
    pub burst: f64,
    pub request_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub ready_file: Option<PathBuf>,
    pub watch: bool,
    /// `--status-page-public`: `GET /` without a token.
    pub status_page_public: bool,
    /// ChatOps: `--notify-coalesce`, `--notify-interval`.
    pub notify_pace: (Duration, Duration),
    pub log: Log,
}

/// Run the server until SIGTERM/SIGINT. Returns the exit code.
pub(crate) fn serve(pools: Pools, opts: ServeOptions) -> Result<i32, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pilum-scale")
        .build()
        .map_err(|e| Error::failure(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(pools, opts))
}

async fn run(pools: Pools, opts: ServeOptions) -> Result<i32, Error> {
    let log = opts.log;
    log.install();
    if opts.tokens.is_empty() && !opts.no_auth {
        return Err(Error::usage(
            "no bearer token configured\nhelp: pass `--token <secret>` (or `PILUM_SCALE_TOKENS`), \
             or `--insecure-no-auth` for a local experiment",
        ));
    }
    let metrics = Arc::new(crate::autoscale::metrics::Metrics::new());
    let scaler =
        Scaler::start(pools, opts.settings.clone(), metrics, log).await.map_err(Error::usage)?;
    let notifiers = crate::autoscale::chatops::targets(&scaler.pools().notify, log);
    if !notifiers.is_empty() {
        let root =
            scaler.pools().file.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        let report = std::sync::Arc::new(crate::autoscale::chatops::Report(log));
        let dispatcher = crate::notify::Dispatcher::start(
            &root,
            notifiers,
            false,
            crate::notify::DEFAULT_FLUSH,
            report,
        )
        .map_err(Error::usage)?;
        let project =
            root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (coalesce, interval) = opts.notify_pace;
        let chat =
            crate::autoscale::chatops::Chat::start(dispatcher, project, log, coalesce, interval);
        let _ = scaler.chat.set(chat);
    }
    let mut tasks = scaler.spawn();
    let _watcher = if opts.watch {
        match crate::autoscale::reload::spawn(scaler.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                log.warn("hot reload disabled", &[("error", &e)]);
                None
            }
        }
    } else {
        None
    };
    let boot = chrono::Utc::now().timestamp_millis();
    let app = Arc::new(routes::App {
        scaler: scaler.clone(),
        tokens: auth::Tokens::new(&opts.tokens, opts.no_auth),
        sns: sns::SnsVerifier::new(opts.sns_trust_loopback, opts.sns_max_age),
        sns_verify: opts.sns_verify,
        rate: limits::RateLimiter::new(opts.rate, opts.burst),
        idempotency: Mutex::new(limits::Idempotency::new(100_000)),
        request_timeout: opts.request_timeout,
        max_body: opts.max_body,
        requests: AtomicU64::new(0),
        boot: format!("{boot:x}"),
        status_page_public: opts.status_page_public,
    });
    if opts.sns_trust_loopback {
        log.warn("test-only SNS loopback trust is enabled; never use it in production", &[]);
    }
    if !opts.sns_verify {
        log.warn("SNS signature verification is disabled", &[]);
    }
    let listener = tokio::net::TcpListener::bind(opts.listen).await.map_err(|e| {
        Error::usage(format!(
            "cannot listen on `{}`: {e}\nhelp: pick another `--listen` address",
            opts.listen
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::failure(format!("cannot read the bound address: {e}")))?;
    if let Some(f) = &opts.ready_file {
        std::fs::write(f, addr.to_string())
            .map_err(|e| Error::failure(format!("cannot write `{}`: {e}", f.display())))?;
    }
    log.info(
        "listening",
        &[("address", &format!("http://{addr}")), ("pools", &scaler.states.len().to_string())],
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let conns = Connections {
        router: routes::router(app),
        header_timeout: opts.header_timeout,
        slots: Arc::new(tokio::sync::Semaphore::new(opts.max_connections.max(1))),
        stop: stop_rx,
    };
    let server = tokio::spawn(conns.accept_loop(listener));
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::failure(format!("cannot install SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::failure(format!("cannot install SIGINT handler: {e}")))?;
    let code = tokio::select! {
        _ = term.recv() => exit::OK,
        _ = int.recv() => exit::INTERRUPTED,
    };
    let deadline = Instant::now() + opts.shutdown_grace;
    drain(&scaler, &mut tasks, deadline, opts.shutdown_grace).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(500), server).await;
    Ok(code)
}

/// The connection side of the server: the cap, the header timeout, graceful close on stop.
struct Connections {
    router: axum::Router,
    header_timeout: Duration,
    slots: Arc<tokio::sync::Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Connections {
    async fn accept_loop(self, listener: tokio::net::TcpListener) {
        let mut stop = self.stop.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors and the like: give the system a moment.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            // Over the cap the connection is closed at once rather than left waiting.
            let Ok(slot) = self.slots.clone().try_acquire_owned() else { continue };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let header_timeout = self.header_timeout;
            let mut stop = self.stop.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper_util::service::TowerToHyperService::new(router);
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_millis(500), conn).await;
                    }
                }
            });
        }
    }
}

/// The shutdown sequence after the signal, ending by `deadline`: stop the decision loops, let
/// the lanes finish their update until the process layer's grace before the deadline, then
/// interrupt `pulumi`, then persist.
async fn drain(
    scaler: &Arc<Scaler>,
    tasks: &mut tokio::task::JoinSet<()>,
    deadline: Instant,
    grace: Duration,
) {
    let log = scaler.log;
    scaler.begin_drain();
    log.info("shutting down", &[("grace", &crate::duration::format(grace))]);
    // Leave time for SIGINT, the process layer's SIGKILL after its grace, and the state files.
    let margin = crate::process::GRACE + Duration::from_millis(500);
    let interrupt_at = deadline.checked_sub(margin).unwrap_or(deadline).max(Instant::now());
    if !join_until(tasks, interrupt_at).await {
        log.warn("grace period over; interrupting pulumi with SIGINT", &[]);
        scaler.pulumi.interrupt_all();
        let last = deadline.checked_sub(Duration::from_millis(300)).unwrap_or(deadline);
        if !join_until(tasks, last.max(Instant::now())).await {
            log.error("tasks still running at the end of the grace period; exiting anyway", &[]);
            tasks.abort_all();
        }
    }
    scaler.persist_signals();
    scaler.audit.flush();
    log.info("stopped", &[]);
}

/// Await every task until `at`; whether they all ended.
async fn join_until(tasks: &mut tokio::task::JoinSet<()>, at: Instant) -> bool {
    tokio::time::timeout_at(at, async { while tasks.join_next().await.is_some() {} }).await.is_ok()
}
