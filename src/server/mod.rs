//! The scaler HTTP server: routes, webhook adapters, auth, limits, metrics, health and graceful
//! shutdown. [`serve`] wires the scaler runtime to axum and owns the shutdown sequence:
//! SIGTERM → `/readyz` fails and webhooks get 503 → the in-flight `pulumi up` finishes (SIGINT
//! after `--shutdown-grace`, never SIGKILL first) → pending signals are persisted → exit.

pub mod adapters;
pub mod auth;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod routes;
pub mod sns;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};

use crate::autoscale::pool::Pools;
use crate::autoscale::scaler::{Scaler, Settings};
use crate::error::{Error, exit};
use crate::server::log::Log;

/// Everything `pilum scale serve` needs, resolved from flags.
#[derive(Debug, Clone)]
pub struct ServeOptions {
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
    pub shutdown_grace: Duration,
    pub ready_file: Option<PathBuf>,
    pub watch: bool,
    pub log: Log,
}

/// Run the server until SIGTERM/SIGINT. Returns the exit code.
pub fn serve(pools: Pools, opts: ServeOptions) -> Result<i32, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pilum-scale")
        .build()
        .map_err(|e| Error::failure(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(pools, opts))
}

async fn run(pools: Pools, opts: ServeOptions) -> Result<i32, Error> {
    let log = opts.log;
    if opts.tokens.is_empty() && !opts.no_auth {
        return Err(Error::usage(
            "no bearer token configured\nhelp: pass `--token <secret>` (or `PILUM_SCALE_TOKENS`), \
             or `--insecure-no-auth` for a local experiment",
        ));
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let scaler =
        Scaler::start(pools, opts.settings.clone(), metrics, log).await.map_err(Error::usage)?;
    let _tasks = scaler.spawn();
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
    let app = Arc::new(routes::App {
        scaler: scaler.clone(),
        tokens: auth::Tokens::new(&opts.tokens, opts.no_auth),
        sns: sns::SnsVerifier::new(opts.sns_trust_loopback, opts.sns_max_age),
        sns_verify: opts.sns_verify,
        rate: limits::RateLimiter::new(opts.rate, opts.burst),
        idempotency: Mutex::new(limits::Seen::new(100_000)),
        request_timeout: opts.request_timeout,
        max_body: opts.max_body,
        requests: AtomicU64::new(0),
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
    let stop = Arc::new(tokio::sync::Notify::new());
    let server = {
        let stop = stop.clone();
        let router = routes::router(app);
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await
        })
    };
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::failure(format!("cannot install SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::failure(format!("cannot install SIGINT handler: {e}")))?;
    let code = tokio::select! {
        _ = term.recv() => exit::OK,
        _ = int.recv() => exit::INTERRUPTED,
    };
    drain(&scaler, opts.shutdown_grace).await;
    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(code)
}

/// The shutdown sequence after the signal.
async fn drain(scaler: &Arc<Scaler>, grace: Duration) {
    let log = scaler.log;
    scaler.begin_drain();
    log.info("shutting down", &[("grace_seconds", &grace.as_secs().to_string())]);
    let started = Instant::now();
    while scaler.busy() && started.elapsed() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if scaler.busy() {
        let n = scaler.pulumi.interrupt_all();
        log.warn(
            "grace period over; interrupting pulumi with SIGINT",
            &[("processes", &n.to_string())],
        );
        let interrupted = Instant::now();
        while scaler.busy() && interrupted.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if scaler.busy() {
            log.error("pulumi ignored SIGINT for 30s; killing it (the stack may stay locked)", &[]);
            scaler.pulumi.kill_all();
        }
    }
    scaler.persist_signals();
    scaler.audit.flush();
    log.info("stopped", &[]);
}
