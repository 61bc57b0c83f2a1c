//! The HTTP routes. Every mutating route authenticates, rate-limits, parses, bounds its numbers
//! and enqueues; a 2xx is sent only once the signal is durable in the journal. The queue is
//! bounded and a full queue answers 503 with `Retry-After` instead of waiting. Handlers never
//! run Pulumi or a strategy themselves, except the synchronous `/scale/{pool}` route. Refusals
//! are [`Rejection`]s, returned with `?`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::autoscale::adapters::{self, AlarmOutcome, Refused};
use crate::autoscale::audit::{Refusal, SignalRecord};
use crate::autoscale::cadence::Trigger;
use crate::autoscale::pool::{Action, Pools};
use crate::autoscale::scaler::{Scaler, lock};
use crate::autoscale::signal::{Change, Kind, Signal, SourceKind};
use crate::autoscale::strategy::Input;
use crate::server::auth::{Denied, Tokens};
use crate::server::limits::{Begin, Idempotency, RateLimiter, fingerprint};
use crate::server::sns::{self, Reject, SnsVerifier};

/// Shared state of the routes.
pub(crate) struct App {
    pub scaler: Arc<Scaler>,
    pub tokens: Tokens,
    pub sns: SnsVerifier,
    /// `--no-sns-verify`: accept unsigned SNS messages (behind a trusted proxy only).
    pub sns_verify: bool,
    pub rate: RateLimiter,
    pub idempotency: Mutex<Idempotency>,
    pub request_timeout: Duration,
    pub max_body: usize,
    /// Generated idempotency keys: `req-<boot>-<n>`, unique across restarts.
    pub requests: AtomicU64,
    pub boot: String,
    /// `--status-page-public`: the status page needs no token.
    pub status_page_public: bool,
}

type Shared = Arc<App>;

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// A refused request: the status, the message (answered as `{"error": …}`) and, for answers a
/// client should retry, `Retry-After`. Handlers return it with `?`.
#[derive(Debug)]
pub(crate) struct Rejection {
    status: u16,
    message: String,
    retry_after: Option<u64>,
    bearer_challenge: bool,
}

impl Rejection {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None, bearer_challenge: false }
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let mut r = reply(self.status, json!({"error": self.message}));
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.bearer_challenge {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

type Answer = Result<Response, Rejection>;

/// Build the router.
pub(crate) fn router(app: Shared) -> Router {
    let max_body = app.max_body;
    // Every route runs under the request timeout, which also bounds how long a client may take
    // to send its body; the header and idle timeouts are on the connection (see `mod.rs`).
    Router::new()
        .route("/webhook/{pool}/cloudwatch", post(cloudwatch))
        .route("/scale/{pool}", post(scale))
        .route("/webhook/{pool}/prometheus", post(prometheus))
        .route("/webhook/{pool}/delta", post(delta))
        .route("/webhook/{pool}/count", post(count))
        .route("/", get(status_page))
        .route("/login", post(login))
        .route("/pools", get(pools))
        .route("/pools/{pool}", get(pool_status))
        .route("/pools/{pool}/pause", post(pause))
        .route("/pools/{pool}/resume", post(resume))
        .route("/healthz", get(|| async { reply(200, json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), timeout))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(app.clone(), json_errors))
        .with_state(app)
}

/// Every error is JSON, including the ones axum's extractors answer in plain text (a body over
/// `--max-body` is 413 `{"error": …}`, like every other refusal).
async fn json_errors(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|c| c.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return r;
    }
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is larger than the limit of {} bytes (`--max-body`)", app.max_body)
    } else {
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        }
    };
    let mut out = reply(status.as_u16(), json!({"error": message}));
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

async fn timeout(State(app): State<Shared>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Rejection::new(503, "request timed out").retry_after(1).into_response(),
    }
}

impl App {
    /// Count a refusal and build its answer.
    fn refuse(
        &self,
        pool: &str,
        source: SourceKind,
        result: &'static str,
        r: Rejection,
    ) -> Rejection {
        self.scaler.metrics.intent(self.pool_label(pool), source.as_str(), result);
        r
    }

    /// A payload refused by an adapter.
    fn refused(&self, pool: &str, source: SourceKind, Refused(code, msg): Refused) -> Rejection {
        self.refuse(pool, source, "rejected", Rejection::new(code, msg))
    }

    /// Metric label for a pool name from a URL: only configured names, so labels stay bounded.
    fn pool_label<'a>(&self, pool: &'a str) -> &'a str {
        if self.scaler.states.contains_key(pool) { pool } else { "unknown" }
    }

    /// The bearer token check: the refusal (401 with a challenge, or 403) and its metric label.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), (Rejection, &'static str)> {
        match self.tokens.check(headers) {
            Ok(()) => Ok(()),
            Err(Denied::Missing) => {
                let mut r =
                    Rejection::new(401, "missing bearer token (`Authorization: Bearer <token>`)");
                r.bearer_challenge = true;
                Err((r, "unauthorized"))
            }
            Err(Denied::Wrong) => Err((Rejection::new(403, "invalid token"), "forbidden")),
        }
    }

    /// The checks every mutating route shares: draining, auth, pool, its decision loop, rate
    /// limit.
    fn admit(&self, headers: &HeaderMap, pool: &str, source: SourceKind) -> Result<(), Rejection> {
        if self.scaler.draining.load(Ordering::SeqCst) {
            let r = Rejection::new(503, "shutting down; retry later").retry_after(5);
            return Err(self.refuse(pool, source, "draining", r));
        }
        if let Err((r, result)) = self.authenticate(headers) {
            return Err(self.refuse(pool, source, result, r));
        }
        // The set of pools is fixed for the server's lifetime (reload cannot add or remove
        // pools), so this check needs no lock.
        if !self.scaler.states.contains_key(pool) {
            let names: Vec<String> = self.scaler.pools().names().map(str::to_string).collect();
            let hint = crate::diagnostic::closest(pool, names.iter().map(String::as_str))
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            let r = Rejection::new(404, format!("unknown pool `{pool}`{hint}"));
            return Err(self.refuse(pool, source, "unknown_pool", r));
        }
        if let Some(why) = self.scaler.unavailable(pool) {
            // Never a 202 for a signal nobody will decide on: the sender retries later.
            let r = Rejection::new(503, format!("pool `{pool}` cannot decide right now: {why}"))
                .retry_after(5);
            return Err(self.refuse(pool, source, "unavailable", r));
        }
        if let Err(wait) = self.rate.check(pool) {
            let r = Rejection::new(429, "rate limit exceeded").retry_after(wait);
            return Err(self.refuse(pool, source, "throttled", r));
        }
        Ok(())
    }

    /// Accept a change: journal it durably and audit it (the bounded queue: full → 503); the
    /// journal writer applies it to the pool's signals, which wakes the decision loop. Returns
    /// once the change is on disk.
    async fn enqueue(
        &self,
        pool: &str,
        source: SourceKind,
        key: String,
        change: Change,
    ) -> Result<u64, Rejection> {
        let mut record = SignalRecord::of_change(pool, source, key, &change);
        if let Some(ha) = &self.scaler.ha {
            // `--ha`: durable once in Redis; every replica's tail applies it.
            let json = serde_json::to_value(&record).unwrap_or_default();
            return match ha.publish(pool, &change, &json).await {
                Ok(seq) => {
                    record.seq = seq;
                    let _ = self.scaler.audit.record(record);
                    self.scaler.metrics.intent(pool, source.as_str(), "accepted");
                    Ok(seq)
                }
                Err(e) => {
                    let r = Rejection::new(
                        503,
                        format!("cannot write the signal to Redis ({e}); retry later"),
                    )
                    .retry_after(1);
                    Err(self.refuse(pool, source, "overloaded", r))
                }
            };
        }
        match self.scaler.audit.accept(pool, change, record).await {
            Ok(seq) => {
                self.scaler.metrics.intent(pool, source.as_str(), "accepted");
                Ok(seq)
            }
            Err(Refusal::Full) => {
                let r = Rejection::new(503, "queue full; retry later").retry_after(1);
                Err(self.refuse(pool, source, "overloaded", r))
            }
            Err(Refusal::NotDurable(e)) => {
                let r =
                    Rejection::new(503, format!("cannot persist the signal ({e}); retry later"))
                        .retry_after(5);
                Err(self.refuse(pool, source, "overloaded", r))
            }
        }
    }

    /// The request's `Idempotency-Key`, or a generated one, unique across restarts.
    fn idempotency_key(&self, headers: &HeaderMap) -> Result<(String, bool), Rejection> {
        match headers.get("idempotency-key").map(|v| v.to_str()) {
            Some(Ok(k)) if !k.is_empty() && k.len() <= 200 => Ok((k.to_string(), true)),
            Some(_) => Err(Rejection::new(
                400,
                "`Idempotency-Key` must be 1 to 200 visible ASCII characters",
            )),
            None => {
                let n = self.requests.fetch_add(1, Ordering::Relaxed);
                Ok((format!("req-{}-{n}", self.boot), false))
            }
        }
    }
}

/// The start every webhook shares: admit the request, find the pool's configuration and parse
/// the body as `T` (`what` names it in the error). The returned `Pools` holds the pool.
fn webhook<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    pool: &str,
    src: SourceKind,
    body: &Bytes,
    what: &str,
) -> Result<(Arc<Pools>, T), Rejection> {
    app.admit(headers, pool, src)?;
    let pools = app.scaler.pools();
    if pools.get(pool).is_none() {
        return Err(Rejection::new(404, format!("unknown pool `{pool}`")));
    }
    let t = serde_json::from_slice(body)
        .map_err(|e| app.refused(pool, src, Refused(400, format!("body is not {what}: {e}"))))?;
    Ok((pools, t))
}

/// `POST /webhook/{pool}/cloudwatch`: SNS carrying CloudWatch alarm state changes.
async fn cloudwatch(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let src = SourceKind::Cloudwatch;
    let refuse = |code: u16, m: String| app.refused(&pool, src, Refused(code, m));
    let (pools, msg) =
        webhook::<sns::Message>(&app, &headers, &pool, src, &body, "an SNS message")?;
    let p = pools.get(&pool).expect("`webhook` found the pool");
    if let (Some(h), Some(t)) =
        (headers.get("x-amz-sns-message-type").and_then(|v| v.to_str().ok()), &msg.kind)
        && h != t
    {
        return Err(refuse(400, format!("header says `{h}` but the message is `{t}`")));
    }
    let directive = adapters::query_directive(&q).map_err(|r| app.refused(&pool, src, r))?;
    verify(&app, &pool, &msg).await?;
    let topic = msg.topic_arn.clone().unwrap_or_default();
    if !p.topics.iter().any(|t| t == &topic) {
        return Err(refuse(
            403,
            format!(
                "topic `{topic}` is not allowed for pool `{pool}` (add it to `sns_topics` or the pool's `topics`)"
            ),
        ));
    }
    let id = msg.message_id.clone().unwrap_or_default();
    if id.is_empty() {
        return Err(refuse(400, "missing `MessageId`".into()));
    }
    if !first_sns_delivery(&app, &pool, &id).await? {
        app.scaler.metrics.intent(&pool, src.as_str(), "duplicate");
        return Ok(reply(200, json!({"duplicate": true, "messageId": id})));
    }
    let delivery = Delivery { app: &app, pool: p, id: &id, topic: &topic };
    let answer = match msg.kind.as_deref() {
        Some("SubscriptionConfirmation") => delivery.confirm_subscription(&msg).await,
        Some("UnsubscribeConfirmation") => Ok(delivery.unsubscribed()),
        _ => delivery.alarm(&msg, directive).await,
    };
    // Not accepted after all: SNS's retry with the same `MessageId` must be processed.
    answer.inspect_err(|_| {
        app.sns.forget(&id);
        if let Some(ha) = app.scaler.ha.clone() {
            let id = id.clone();
            tokio::spawn(async move { ha.forget("sns", &id).await });
        }
    })
}

/// Whether SNS message `id` is delivered for the first time (with `--ha`, to any replica).
async fn first_sns_delivery(app: &App, pool: &str, id: &str) -> Result<bool, Rejection> {
    if !app.sns.first_delivery(id) {
        return Ok(false);
    }
    let Some(ha) = &app.scaler.ha else { return Ok(true) };
    match ha.first("sns", id, "1").await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(_)) => Ok(false),
        Err(e) => {
            app.sns.forget(id);
            let why = Refused(503, format!("cannot reach Redis ({e}); retry later"));
            Err(app.refused(pool, SourceKind::Cloudwatch, why))
        }
    }
}

/// A first delivery of an SNS message from an allowed topic to a pool.
struct Delivery<'a> {
    app: &'a App,
    pool: &'a crate::autoscale::pool::Pool,
    id: &'a str,
    topic: &'a str,
}

impl Delivery<'_> {
    fn refused(&self, r: Refused) -> Rejection {
        self.app.refused(&self.pool.name, SourceKind::Cloudwatch, r)
    }

    fn intent(&self, outcome: &'static str) {
        self.app.scaler.metrics.intent(&self.pool.name, SourceKind::Cloudwatch.as_str(), outcome);
    }

    /// `SubscriptionConfirmation`: visit its `SubscribeURL`.
    async fn confirm_subscription(&self, msg: &sns::Message) -> Answer {
        let (pool, topic, id) = (&self.pool.name, self.topic, self.id);
        let url = msg.subscribe_url.clone().unwrap_or_default();
        self.app.sns.confirm(&url).await.map_err(
            |(Reject::Forbidden(m) | Reject::Malformed(m))| self.refused(Refused(403, m)),
        )?;
        self.app.scaler.log.info("sns subscription confirmed", &[("pool", pool), ("topic", topic)]);
        self.app
            .scaler
            .audit
            .write("subscription", json!({"pool": pool, "topic": topic, "messageId": id}));
        self.intent("subscription");
        Ok(reply(200, json!({"confirmed": true})))
    }

    /// `UnsubscribeConfirmation`: audited, nothing else.
    fn unsubscribed(&self) -> Response {
        let (pool, topic, id) = (&self.pool.name, self.topic, self.id);
        self.app
            .scaler
            .audit
            .write("unsubscribe", json!({"pool": pool, "topic": topic, "messageId": id}));
        self.intent("ignored");
        reply(200, json!({"ignored": "unsubscribe confirmation"}))
    }

    /// A notification: a CloudWatch alarm's state change, recorded or queued as a change.
    async fn alarm(
        &self,
        msg: &sns::Message,
        directive: Option<crate::autoscale::pool::Directive>,
    ) -> Answer {
        let (p, pool, id) = (self.pool, &self.pool.name, self.id);
        let text = msg.message.clone().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            let m = "SNS `Message` is not JSON (expected a CloudWatch alarm)";
            self.refused(Refused(400, m.into()))
        })?;
        if value.get("AlarmName").is_none() || value.get("NewStateValue").is_none() {
            self.intent("ignored");
            self.app.scaler.audit.write(
                "ignored",
                json!({"pool": pool, "messageId": id, "why": "not a CloudWatch alarm"}),
            );
            return Ok(reply(200, json!({"ignored": "not a CloudWatch alarm"})));
        }
        let alarm: adapters::Alarm = serde_json::from_value(value)
            .map_err(|e| self.refused(Refused(400, format!("malformed CloudWatch alarm: {e}"))))?;
        match adapters::cloudwatch(&alarm, directive, p).map_err(|r| self.refused(r))? {
            AlarmOutcome::RecordOnly(what) => {
                self.intent("recorded");
                self.app.scaler.audit.write(
                    "signal",
                    json!({"pool": pool, "source": "cloudwatch", "key": id, "alarm": alarm.alarm_name, "state": what}),
                );
                Ok(reply(200, json!({"recorded": what})))
            }
            AlarmOutcome::Change(change) => {
                adapters::check_input(p, Input::Alarms).map_err(|r| self.refused(r))?;
                let src = SourceKind::Cloudwatch;
                self.app.enqueue(pool, src, id.to_string(), change).await?;
                Ok(reply(
                    202,
                    json!({"accepted": true, "messageId": id, "state": alarm.new_state_value}),
                ))
            }
        }
    }
}

/// SNS signature checks (or, with `--no-sns-verify`, only that the message is well formed).
async fn verify(app: &App, pool: &str, msg: &sns::Message) -> Result<(), Rejection> {
    let src = SourceKind::Cloudwatch;
    if !app.sns_verify {
        return match sns::string_to_sign(msg) {
            Err(Reject::Malformed(m)) => Err(app.refused(pool, src, Refused(400, m))),
            _ => Ok(()),
        };
    }
    app.sns.verify(msg).await.map_err(|rej| {
        let (code, m) = match rej {
            Reject::Malformed(m) => (400, m),
            Reject::Forbidden(m) => (403, m),
        };
        app.scaler.log.warn("sns message refused", &[("pool", pool), ("reason", &m)]);
        app.refused(pool, src, Refused(code, m))
    })
}

/// `POST /webhook/{pool}/prometheus`: Alertmanager webhook (v4).
async fn prometheus(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let src = SourceKind::Prometheus;
    let (pools, n) = webhook::<adapters::Notification>(
        &app,
        &headers,
        &pool,
        src,
        &body,
        "an Alertmanager notification",
    )?;
    let p = pools.get(&pool).expect("`webhook` found the pool");
    let directive = adapters::query_directive(&q).map_err(|r| app.refused(&pool, src, r))?;
    let changes =
        adapters::alertmanager(&n, directive, p).map_err(|r| app.refused(&pool, src, r))?;
    if !changes.is_empty() {
        adapters::check_input(p, Input::Alarms).map_err(|r| app.refused(&pool, src, r))?;
    }
    let count = changes.len();
    for change in changes {
        let key = format!("{}:{}", n.group_key, change.key());
        app.enqueue(&pool, src, key, change).await?;
    }
    Ok(reply(202, json!({"accepted": count})))
}

fn intent(source: SourceKind, key: &str, action: Action, step: i64, value: Option<i64>) -> Signal {
    let name = source.as_str();
    Signal::new(
        Kind::Intent,
        source,
        name,
        key.to_string(),
        action,
        step,
        value,
        chrono::Utc::now(),
    )
}

/// A `{"delta": n}` / `{"value": n}` body, bounded (422 with the limit named).
#[derive(serde::Deserialize)]
struct DirectBody {
    delta: Option<i64>,
    value: Option<i64>,
}

impl DirectBody {
    /// The intent a body asks for (`None` when it names neither field), bounds checked, and
    /// refused (422) when the pool's strategy ignores its kind.
    fn intent(
        &self,
        pool: &crate::autoscale::pool::Pool,
        src: SourceKind,
        key: &str,
    ) -> Result<Option<Signal>, Rejection> {
        let refused = |Refused(code, m)| Rejection::new(code, m);
        let signal = adapters::direct(src, key, self.delta, self.value).map_err(refused)?;
        if let Some(s) = &signal {
            adapters::check_input(pool, adapters::input_of(s)).map_err(refused)?;
        }
        Ok(signal)
    }
}

async fn direct(
    app: Shared,
    pool: String,
    headers: HeaderMap,
    body: Bytes,
    src: SourceKind,
) -> Answer {
    app.admit(&headers, &pool, src)?;
    let field = if src == SourceKind::Delta { "delta" } else { "value" };
    // Typed, not a `Value`: this is the hot path of a burst.
    let parsed: DirectBody = serde_json::from_slice(&body).map_err(|e| {
        let m = format!("expected `{{\"{field}\": <integer>}}`: {e}");
        app.refused(&pool, src, Refused(400, m))
    })?;
    let wrong_field = match src {
        SourceKind::Delta => parsed.delta.is_none(),
        _ => parsed.value.is_none(),
    };
    if wrong_field {
        let m = format!("expected `{{\"{field}\": <integer>}}`");
        return Err(app.refused(&pool, src, Refused(400, m)));
    }
    let (key, given) = app.idempotency_key(&headers)?;
    let pools = app.scaler.pools();
    let p =
        pools.get(&pool).ok_or_else(|| Rejection::new(404, format!("unknown pool `{pool}`")))?;
    let signal = parsed
        .intent(p, src, &key)
        .map_err(|r| app.refuse(&pool, src, "rejected", r))?
        .expect("the body names its field (checked above)");
    let route = src.as_str();
    if given {
        let begin = lock(&app.idempotency).begin(&pool, &key, route, fingerprint(&body));
        match begin {
            Begin::New => {}
            Begin::Duplicate => {
                app.scaler.metrics.intent(&pool, src.as_str(), "duplicate");
                return Ok(reply(200, json!({"duplicate": true, "idempotencyKey": key})));
            }
            Begin::OtherBody => {
                let m = format!("`Idempotency-Key` `{key}` was already used with another body");
                return Err(app.refuse(&pool, src, "rejected", Rejection::new(422, m)));
            }
            Begin::OtherRoute(first) => {
                let m = format!(
                    "`Idempotency-Key` `{key}` was already used on `/webhook/{pool}/{first}`"
                );
                return Err(app.refuse(&pool, src, "rejected", Rejection::new(422, m)));
            }
            Begin::InFlight => {
                let m = format!("a request with `Idempotency-Key` `{key}` is still being accepted");
                return Err(app.refuse(
                    &pool,
                    src,
                    "duplicate",
                    Rejection::new(409, m).retry_after(1),
                ));
            }
        }
    }
    let shared = format!("{pool}:{key}");
    if given && let Some(ha) = &app.scaler.ha {
        // `--ha`: the key is shared by every replica.
        let mine = format!("{route} {}", fingerprint(&body));
        let first = match ha.first("idempotency", &shared, &mine).await {
            Ok(f) => f,
            Err(e) => {
                lock(&app.idempotency).finish(&pool, &key, false);
                let r = Rejection::new(503, format!("cannot reach Redis ({e}); retry later"))
                    .retry_after(1);
                return Err(app.refuse(&pool, src, "overloaded", r));
            }
        };
        if let Err(old) = first {
            lock(&app.idempotency).finish(&pool, &key, false);
            let (old_route, _) = old.split_once(' ').unwrap_or((old.as_str(), ""));
            if old == mine {
                app.scaler.metrics.intent(&pool, src.as_str(), "duplicate");
                return Ok(reply(200, json!({"duplicate": true, "idempotencyKey": key})));
            }
            let m = if old_route == route {
                format!("`Idempotency-Key` `{key}` was already used with another body")
            } else {
                format!(
                    "`Idempotency-Key` `{key}` was already used on `/webhook/{pool}/{old_route}`"
                )
            };
            return Err(app.refuse(&pool, src, "rejected", Rejection::new(422, m)));
        }
    }
    let accepted = app.enqueue(&pool, src, key.clone(), Change::Intent(signal)).await;
    if given {
        lock(&app.idempotency).finish(&pool, &key, accepted.is_ok());
        if accepted.is_err()
            && let Some(ha) = &app.scaler.ha
        {
            ha.forget("idempotency", &shared).await;
        }
    }
    accepted?;
    // The hot path: the answer is written directly instead of through a `Value` map.
    let body = format!(
        r#"{{"accepted":true,"idempotencyKey":{}}}"#,
        serde_json::to_string(&key).unwrap_or_else(|_| "null".into())
    );
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /webhook/{pool}/delta` `{"delta": n}`.
async fn delta(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    direct(app, pool, headers, body, SourceKind::Delta).await
}

/// `POST /webhook/{pool}/count` `{"value": n}`.
async fn count(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    direct(app, pool, headers, body, SourceKind::Count).await
}

/// A `POST /pools/{pool}/pause` body.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    #[serde(default)]
    reason: Option<String>,
    /// An RFC 3339 time, or a duration from now (`30m`).
    #[serde(default)]
    until: Option<String>,
}

/// The checks of the control routes (pause, resume): auth and a known pool.
fn control(app: &App, headers: &HeaderMap, pool: &str) -> Result<(), Rejection> {
    app.authenticate(headers).map_err(|(r, _)| r)?;
    if !app.scaler.states.contains_key(pool) {
        return Err(Rejection::new(404, format!("unknown pool `{pool}`")));
    }
    Ok(())
}

/// `POST /pools/{pool}/pause` `{"reason": "…", "until": "30m" | "<RFC 3339>"}`: signals are
/// still recorded; nothing is decided or applied until `/resume` (or `until`).
async fn pause(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    control(&app, &headers, &pool)?;
    leader_only(&app)?;
    let b: PauseBody = if body.is_empty() {
        PauseBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Rejection::new(
                400,
                format!("expected `{{\"reason\": \"…\", \"until\": \"30m\"}}`: {e}"),
            )
        })?
    };
    let reason: String = b.reason.unwrap_or_else(|| "paused".into()).chars().take(500).collect();
    let now = chrono::Utc::now();
    let until = match b.until.as_deref() {
        None => None,
        Some(u) => {
            let at = chrono::DateTime::parse_from_rfc3339(u)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok()
                .or_else(|| {
                    crate::duration::parse_positive(u)
                        .ok()
                        .and_then(|d| chrono::Duration::from_std(d).ok())
                        .and_then(|d| now.checked_add_signed(d))
                });
            match at {
                Some(t) if t > now => Some(t),
                _ => {
                    return Err(Rejection::new(
                        422,
                        format!(
                            "`until` must be a future RFC 3339 time or a duration such as `30m`, got `{u}`"
                        ),
                    ));
                }
            }
        }
    };
    app.scaler.pause(&pool, reason, until).await;
    Ok(reply(200, app.scaler.status(&pool).unwrap_or(Value::Null)))
}

/// With `--ha`, what only the leader may do (pause, resume, synchronous decisions): a follower
/// answers 409 naming the leader.
fn leader_only(app: &App) -> Result<(), Rejection> {
    match &app.scaler.ha {
        Some(ha) if !ha.leading() => {
            let r = ha.role();
            let leader = r["leader"].as_str().unwrap_or("unknown");
            Err(Rejection::new(
                409,
                format!(
                    "this replica (`{}`) is a follower: send this to the leader `{leader}`",
                    ha.id
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// `POST /pools/{pool}/resume`: decide at once on what was recorded while paused.
async fn resume(State(app): State<Shared>, Path(pool): Path<String>, headers: HeaderMap) -> Answer {
    control(&app, &headers, &pool)?;
    leader_only(&app)?;
    app.scaler.resume(&pool).await;
    Ok(reply(200, app.scaler.status(&pool).unwrap_or(Value::Null)))
}

/// `POST /scale/{pool}[?dryRun=true]`: a synchronous decision. The body is `{"delta": n}`,
/// `{"value": n}` or empty (decide from the active signals); `?action=&step=&value=` works too.
async fn scale(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let src = SourceKind::Direct;
    app.admit(&headers, &pool, src)?;
    leader_only(&app)?;
    let dry = q.get("dryRun").or_else(|| q.get("dry_run")).is_some_and(|v| v == "true" || v == "1");
    let (key, _) = app.idempotency_key(&headers)?;
    let pools = app.scaler.pools();
    let p =
        pools.get(&pool).ok_or_else(|| Rejection::new(404, format!("unknown pool `{pool}`")))?;
    let mut extra = Vec::new();
    if !body.is_empty() {
        let parsed: DirectBody = serde_json::from_slice(&body).map_err(|e| {
            app.refused(
                &pool,
                src,
                Refused(400, format!("expected `{{\"delta\": n}}` or `{{\"value\": n}}`: {e}")),
            )
        })?;
        if let Some(s) =
            parsed.intent(p, src, &key).map_err(|r| app.refuse(&pool, src, "rejected", r))?
        {
            extra.push(s);
        }
    }
    if let Some(d) = adapters::query_directive(&q).map_err(|r| app.refused(&pool, src, r))? {
        let s = intent(src, &key, d.action, d.step.unwrap_or(0), d.value);
        adapters::check_input(p, adapters::input_of(&s)).map_err(|r| app.refused(&pool, src, r))?;
        extra.push(s);
    }
    if dry {
        app.scaler.metrics.intent(&pool, src.as_str(), "dry_run");
        return match app.scaler.dry_run(&pool, extra).await {
            Ok(v) => {
                app.scaler.audit.write("dry_run", json!({"pool": pool, "key": key, "result": v}));
                Ok(reply(200, v))
            }
            Err((429, m)) => Err(Rejection::new(429, m).retry_after(5)),
            Err((code, m)) => Err(Rejection::new(code, m)),
        };
    }
    app.scaler.metrics.intent(&pool, src.as_str(), "accepted");
    app.scaler.audit.write("signal", json!({"pool": pool, "source": "direct", "key": key}));
    match app.scaler.decide_once(&pool, Some(extra), Trigger::Tick, true).await {
        Ok(Some(d)) => Ok(reply(200, json!({"pool": pool, "decision": d}))),
        Ok(None) => Ok(reply(200, json!({"pool": pool, "decision": null}))),
        Err(e) => Err(Rejection::new(422, e)),
    }
}

/// The name of the cookie `POST /login` sets.
const COOKIE: &str = "pilum_scale_token";

/// Decode `application/x-www-form-urlencoded` text (`+` is a space, `%XX` a byte).
fn form_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (_, Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (c, None) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a browser request may see the status page: `--status-page-public`, a bearer
/// header, the login cookie, or `?token=`.
fn page_allowed(app: &App, headers: &HeaderMap, q: &HashMap<String, String>) -> bool {
    if app.status_page_public || app.tokens.check(headers).is_ok() {
        return true;
    }
    if q.get("token").is_some_and(|t| app.tokens.accepts(t)) {
        return true;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && app.tokens.accepts(&form_decode(v)))
}

fn html(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// `GET /`: the status page (see `page.rs`).
async fn status_page(
    State(app): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !page_allowed(&app, &headers, &q) {
        return html(401, crate::server::page::login("sign in with a token of this server"));
    }
    let list: Vec<Value> = app.scaler.states.keys().filter_map(|n| app.scaler.status(n)).collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let leader = match &app.scaler.ha {
        None => "this server (single node)".to_string(),
        Some(ha) => {
            let r = ha.role();
            let who = r["leader"].as_str().unwrap_or("none").to_string();
            let age =
                r["leaseAgeMs"].as_u64().map_or(String::new(), |a| format!(", lease age {a} ms"));
            format!(
                "{who} (this replica `{}` is the {}{age})",
                ha.id,
                r["role"].as_str().unwrap_or("follower")
            )
        }
    };
    html(200, crate::server::page::render(&list, &leader, &now))
}

/// `POST /login` (form `token=…`): sets the cookie the status page reads, then back to `/`.
async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let token = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| form_decode(v))
        .unwrap_or_default();
    if !app.tokens.accepts(&token) || token.is_empty() {
        return html(403, crate::server::page::login("that token is not valid here"));
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        token.replace(['%', ';', ' ', ','], "")
    );
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn pools(State(app): State<Shared>) -> Response {
    let list: Vec<Value> = app.scaler.states.keys().filter_map(|n| app.scaler.status(n)).collect();
    let ha = app.scaler.ha.as_ref().map(|ha| ha.role());
    reply(200, json!({"pools": list, "ha": ha}))
}

async fn pool_status(State(app): State<Shared>, Path(pool): Path<String>) -> Response {
    match app.scaler.status(&pool) {
        Some(v) => reply(200, v),
        None => Rejection::new(404, format!("unknown pool `{pool}`")).into_response(),
    }
}

async fn readyz(State(app): State<Shared>) -> Response {
    let mut reasons: Vec<String> = Vec::new();
    if app.scaler.draining.load(Ordering::SeqCst) {
        reasons.push("shutting down".into());
    }
    reasons.extend(lock(&app.scaler.blocked).values().cloned());
    reasons.extend(app.scaler.states.keys().filter_map(|p| app.scaler.unavailable(p)));
    let reload = lock(&app.scaler.reload_error).clone();
    let health = app.scaler.audit.health();
    let errors = health.errors.load(Ordering::Relaxed);
    let audit = json!({"writeErrors": errors, "lastError": *lock(&health.last_error)});
    let ha = app.scaler.ha.as_ref().map(|ha| ha.role());
    if let Some(e) = app.scaler.ha.as_ref().and_then(|ha| ha.error()) {
        reasons.push(format!("Redis is unreachable: {e}"));
    }
    let body = json!({"ready": reasons.is_empty(), "reasons": reasons, "reloadError": reload, "audit": audit, "ha": ha});
    reply(if reasons.is_empty() { 200 } else { 503 }, body)
}

async fn metrics(State(app): State<Shared>) -> Response {
    app.scaler.refresh_gauges();
    let text = app.scaler.metrics.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        .into_response()
}
