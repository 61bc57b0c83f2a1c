//! The HTTP routes. Every mutating route authenticates, rate-limits, parses and enqueues; the
//! queue is bounded and a full queue answers 503 with `Retry-After` instead of waiting. Handlers
//! never run Pulumi or a strategy themselves, except the synchronous `/scale/{pool}` route.

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

use crate::autoscale::audit::SignalRecord;
use crate::autoscale::pool::{Action, Pools};
use crate::autoscale::scaler::Scaler;
use crate::autoscale::signal::{Change, Kind, Signal, SourceKind};
use crate::server::adapters::{self, AlarmOutcome, Refused};
use crate::server::auth::{Denied, Tokens};
use crate::server::limits::{RateLimiter, Seen};
use crate::server::sns::{self, Reject, SnsVerifier};

/// Shared state of the routes.
pub struct App {
    pub scaler: Arc<Scaler>,
    pub tokens: Tokens,
    pub sns: SnsVerifier,
    /// `--no-sns-verify`: accept unsigned SNS messages (behind a trusted proxy only).
    pub sns_verify: bool,
    pub rate: RateLimiter,
    pub idempotency: Mutex<Seen>,
    pub request_timeout: Duration,
    pub max_body: usize,
    pub requests: AtomicU64,
}

type Shared = Arc<App>;

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

fn error(status: u16, message: impl Into<String>) -> Response {
    reply(status, json!({"error": message.into()}))
}

fn with_retry_after(mut r: Response, secs: u64) -> Response {
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// Build the router.
pub fn router(app: Shared) -> Router {
    let max_body = app.max_body;
    // Routes that wait on something (certificate fetches, subscription confirmation, a
    // preview) get the request timeout. The others never wait — they answer from memory and
    // enqueue — so they skip the per-request timer.
    let waiting = Router::new()
        .route("/webhook/{pool}/cloudwatch", post(cloudwatch))
        .route("/scale/{pool}", post(scale))
        .route_layer(middleware::from_fn_with_state(app.clone(), timeout));
    Router::new()
        .route("/webhook/{pool}/prometheus", post(prometheus))
        .route("/webhook/{pool}/delta", post(delta))
        .route("/webhook/{pool}/count", post(count))
        .route("/pools", get(pools))
        .route("/pools/{pool}", get(pool_status))
        .route("/healthz", get(|| async { reply(200, json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(waiting)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

async fn timeout(State(app): State<Shared>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(app.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => with_retry_after(error(503, "request timed out"), 1),
    }
}

/// The checks every mutating route shares: draining, auth, pool, rate limit.
// The error is the finished HTTP answer; it is built only when a request is refused.
#[allow(clippy::result_large_err)]
fn admit(app: &App, headers: &HeaderMap, pool: &str, source: SourceKind) -> Result<(), Response> {
    let m = &app.scaler.metrics;
    if app.scaler.draining.load(Ordering::SeqCst) {
        m.intent(pool_label(app, pool), source.as_str(), "draining");
        return Err(with_retry_after(error(503, "shutting down; retry later"), 5));
    }
    match app.tokens.check(headers) {
        Ok(()) => {}
        Err(Denied::Missing) => {
            m.intent(pool_label(app, pool), source.as_str(), "unauthorized");
            let mut r = error(401, "missing bearer token (`Authorization: Bearer <token>`)");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err(r);
        }
        Err(Denied::Wrong) => {
            m.intent(pool_label(app, pool), source.as_str(), "forbidden");
            return Err(error(403, "invalid token"));
        }
    }
    // The set of pools is fixed for the server's lifetime (reload cannot add or remove pools),
    // so this check needs no lock.
    if !app.scaler.states.contains_key(pool) {
        m.intent("unknown", source.as_str(), "unknown_pool");
        let names: Vec<String> = app.scaler.pools().names().map(str::to_string).collect();
        let hint = crate::diagnostic::closest(pool, names.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(error(404, format!("unknown pool `{pool}`{hint}")));
    }
    if let Err(wait) = app.rate.check(pool) {
        m.intent(pool, source.as_str(), "throttled");
        return Err(with_retry_after(error(429, "rate limit exceeded"), wait));
    }
    Ok(())
}

/// Metric label for a pool name from a URL: only configured names, so labels stay bounded.
fn pool_label<'a>(app: &App, pool: &'a str) -> &'a str {
    if app.scaler.states.contains_key(pool) { pool } else { "unknown" }
}

/// Accept a change: queue its audit record (the bounded queue: full → 503), then apply it to
/// the pool's signals, which wakes the pool's decision loop.
#[allow(clippy::result_large_err)]
fn enqueue(
    app: &App,
    pool: &str,
    source: SourceKind,
    key: String,
    change: Change,
) -> Result<(), Response> {
    let record = SignalRecord::of_change(pool, source, key, &change);
    if app.scaler.audit.try_signal(record).is_err() {
        app.scaler.metrics.intent(pool, source.as_str(), "overloaded");
        return Err(with_retry_after(error(503, "queue full; retry later"), 1));
    }
    app.scaler.ingest(pool, change);
    app.scaler.metrics.intent(pool, source.as_str(), "accepted");
    Ok(())
}

fn refused(app: &App, pool: &str, source: SourceKind, Refused(code, msg): Refused) -> Response {
    app.scaler.metrics.intent(pool, source.as_str(), "rejected");
    error(code, msg)
}

fn idempotency_key(app: &App, headers: &HeaderMap) -> (String, bool) {
    match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() => (k.chars().take(200).collect(), true),
        _ => (format!("req-{}", app.requests.fetch_add(1, Ordering::Relaxed)), false),
    }
}

/// The start every webhook shares: admit the request, find the pool's configuration and parse
/// the body as `T` (`what` names it in the error). The returned `Pools` holds the pool.
#[allow(clippy::result_large_err)]
fn webhook<T: serde::de::DeserializeOwned>(
    app: &App,
    headers: &HeaderMap,
    pool: &str,
    src: SourceKind,
    body: &Bytes,
    what: &str,
) -> Result<(Arc<Pools>, T), Response> {
    admit(app, headers, pool, src)?;
    let pools = app.scaler.pools();
    if pools.get(pool).is_none() {
        return Err(error(404, format!("unknown pool `{pool}`")));
    }
    match serde_json::from_slice(body) {
        Ok(t) => Ok((pools, t)),
        Err(e) => Err(refused(app, pool, src, Refused(400, format!("body is not {what}: {e}")))),
    }
}

/// `POST /webhook/{pool}/cloudwatch`: SNS carrying CloudWatch alarm state changes.
async fn cloudwatch(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let src = SourceKind::Cloudwatch;
    let (pools, msg) =
        match webhook::<sns::Message>(&app, &headers, &pool, src, &body, "an SNS message") {
            Ok(w) => w,
            Err(r) => return r,
        };
    let p = pools.get(&pool).expect("`webhook` found the pool");
    if let (Some(h), Some(t)) =
        (headers.get("x-amz-sns-message-type").and_then(|v| v.to_str().ok()), &msg.kind)
        && h != t
    {
        return refused(
            &app,
            &pool,
            src,
            Refused(400, format!("header says `{h}` but the message is `{t}`")),
        );
    }
    let directive = match adapters::query_directive(&q) {
        Ok(d) => d,
        Err(r) => return refused(&app, &pool, src, r),
    };
    if app.sns_verify {
        if let Err(rej) = app.sns.verify(&msg).await {
            let (code, m) = match rej {
                Reject::Malformed(m) => (400, m),
                Reject::Forbidden(m) => (403, m),
            };
            app.scaler.log.warn("sns message refused", &[("pool", &pool), ("reason", &m)]);
            return refused(&app, &pool, src, Refused(code, m));
        }
    } else if let Err(Reject::Malformed(m)) = sns::string_to_sign(&msg) {
        return refused(&app, &pool, src, Refused(400, m));
    }
    let topic = msg.topic_arn.clone().unwrap_or_default();
    if !p.topics.iter().any(|t| t == &topic) {
        return refused(
            &app,
            &pool,
            src,
            Refused(
                403,
                format!(
                    "topic `{topic}` is not allowed for pool `{pool}` (add it to `sns_topics` or the pool's `topics`)"
                ),
            ),
        );
    }
    let id = msg.message_id.clone().unwrap_or_default();
    if id.is_empty() {
        return refused(&app, &pool, src, Refused(400, "missing `MessageId`".into()));
    }
    if !app.sns.first_delivery(&id) {
        app.scaler.metrics.intent(&pool, src.as_str(), "duplicate");
        return reply(200, json!({"duplicate": true, "messageId": id}));
    }
    match msg.kind.as_deref() {
        Some("SubscriptionConfirmation") => {
            let url = msg.subscribe_url.clone().unwrap_or_default();
            match app.sns.confirm(&url).await {
                Ok(()) => {
                    app.scaler
                        .log
                        .info("sns subscription confirmed", &[("pool", &pool), ("topic", &topic)]);
                    app.scaler.audit.write(
                        "subscription",
                        json!({"pool": pool, "topic": topic, "messageId": id}),
                    );
                    app.scaler.metrics.intent(&pool, src.as_str(), "subscription");
                    reply(200, json!({"confirmed": true}))
                }
                Err(Reject::Forbidden(m) | Reject::Malformed(m)) => {
                    app.sns.forget(&id);
                    refused(&app, &pool, src, Refused(403, m))
                }
            }
        }
        Some("UnsubscribeConfirmation") => {
            app.scaler
                .audit
                .write("unsubscribe", json!({"pool": pool, "topic": topic, "messageId": id}));
            app.scaler.metrics.intent(&pool, src.as_str(), "ignored");
            reply(200, json!({"ignored": "unsubscribe confirmation"}))
        }
        _ => {
            let text = msg.message.clone().unwrap_or_default();
            let value: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) => {
                    return refused(
                        &app,
                        &pool,
                        src,
                        Refused(
                            400,
                            "SNS `Message` is not JSON (expected a CloudWatch alarm)".into(),
                        ),
                    );
                }
            };
            if value.get("AlarmName").is_none() || value.get("NewStateValue").is_none() {
                app.scaler.metrics.intent(&pool, src.as_str(), "ignored");
                app.scaler.audit.write(
                    "ignored",
                    json!({"pool": pool, "messageId": id, "why": "not a CloudWatch alarm"}),
                );
                return reply(200, json!({"ignored": "not a CloudWatch alarm"}));
            }
            let alarm: adapters::Alarm = match serde_json::from_value(value) {
                Ok(a) => a,
                Err(e) => {
                    return refused(
                        &app,
                        &pool,
                        src,
                        Refused(400, format!("malformed CloudWatch alarm: {e}")),
                    );
                }
            };
            match adapters::cloudwatch(&alarm, directive, p) {
                Err(r) => refused(&app, &pool, src, r),
                Ok(AlarmOutcome::RecordOnly(what)) => {
                    app.scaler.metrics.intent(&pool, src.as_str(), "recorded");
                    app.scaler.audit.write(
                        "signal",
                        json!({"pool": pool, "source": "cloudwatch", "key": id, "alarm": alarm.alarm_name, "state": what}),
                    );
                    reply(200, json!({"recorded": what}))
                }
                Ok(AlarmOutcome::Change(change)) => {
                    match enqueue(&app, &pool, src, id.clone(), change) {
                        Ok(()) => reply(
                            202,
                            json!({"accepted": true, "messageId": id, "state": alarm.new_state_value}),
                        ),
                        Err(r) => {
                            app.sns.forget(&id);
                            r
                        }
                    }
                }
            }
        }
    }
}

/// `POST /webhook/{pool}/prometheus`: Alertmanager webhook (v4).
async fn prometheus(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let src = SourceKind::Prometheus;
    let (pools, n) = match webhook::<adapters::Notification>(
        &app,
        &headers,
        &pool,
        src,
        &body,
        "an Alertmanager notification",
    ) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let p = pools.get(&pool).expect("`webhook` found the pool");
    let directive = match adapters::query_directive(&q) {
        Ok(d) => d,
        Err(r) => return refused(&app, &pool, src, r),
    };
    let changes = match adapters::alertmanager(&n, directive, p) {
        Ok(c) => c,
        Err(r) => return refused(&app, &pool, src, r),
    };
    let count = changes.len();
    for change in changes {
        let key = match &change {
            Change::Raise(s) => s.key.clone(),
            Change::Clear { key, .. } => key.clone(),
            Change::Intent(s) => s.key.clone(),
        };
        if let Err(r) = enqueue(&app, &pool, src, format!("{}:{key}", n.group_key), change) {
            return r;
        }
    }
    reply(202, json!({"accepted": count}))
}

fn parse_body(body: &Bytes) -> Result<Value, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused(400, format!("body is not JSON: {e}")))
}

fn intent(source: SourceKind, key: &str, action: Action, step: i64, value: Option<i64>) -> Signal {
    Signal {
        kind: Kind::Intent,
        source,
        name: source.as_str().to_string(),
        key: key.to_string(),
        action,
        step,
        value,
        metric: None,
        since: chrono::Utc::now(),
        merged: 1,
        threshold: None,
    }
}

async fn direct(
    app: Shared,
    pool: String,
    headers: HeaderMap,
    body: Bytes,
    src: SourceKind,
) -> Response {
    if let Err(r) = admit(&app, &headers, &pool, src) {
        return r;
    }
    // Typed, not a `Value`: this is the hot path of a burst.
    #[derive(serde::Deserialize)]
    struct Body {
        delta: Option<i64>,
        value: Option<i64>,
    }
    let field = if src == SourceKind::Delta { "delta" } else { "value" };
    let parsed: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let m = format!("expected `{{\"{field}\": <integer>}}`: {e}");
            return refused(&app, &pool, src, Refused(400, m));
        }
    };
    let signal = match (src, parsed.delta, parsed.value) {
        (SourceKind::Delta, Some(0), _) => {
            return refused(&app, &pool, src, Refused(422, "`delta` must not be 0".into()));
        }
        (SourceKind::Delta, Some(d), _) => {
            intent(src, "", if d > 0 { Action::Up } else { Action::Down }, d.abs(), None)
        }
        (SourceKind::Count, _, Some(n)) => intent(src, "", Action::Set, 0, Some(n)),
        _ => {
            let m = format!("expected `{{\"{field}\": <integer>}}`");
            return refused(&app, &pool, src, Refused(400, m));
        }
    };
    let (key, given) = idempotency_key(&app, &headers);
    if given
        && !app.idempotency.lock().expect("idempotency lock").insert(&format!("{pool}\u{0}{key}"))
    {
        app.scaler.metrics.intent(&pool, src.as_str(), "duplicate");
        return reply(200, json!({"duplicate": true, "idempotencyKey": key}));
    }
    let signal = Signal { key: key.clone(), ..signal };
    // The hot path: the answer is written directly instead of through a `Value` map.
    let body = format!(
        r#"{{"accepted":true,"idempotencyKey":{}}}"#,
        serde_json::to_string(&key).unwrap_or_else(|_| "null".into())
    );
    let dedupe_key = given.then(|| format!("{pool}\u{0}{key}"));
    match enqueue(&app, &pool, src, key, Change::Intent(signal)) {
        Ok(()) => (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], body)
            .into_response(),
        Err(r) => {
            // Not accepted: the client's retry with the same key must go through.
            if let Some(k) = dedupe_key {
                app.idempotency.lock().expect("idempotency lock").forget(&k);
            }
            r
        }
    }
}

/// `POST /webhook/{pool}/delta` `{"delta": n}`.
async fn delta(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    direct(app, pool, headers, body, SourceKind::Delta).await
}

/// `POST /webhook/{pool}/count` `{"value": n}`.
async fn count(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    direct(app, pool, headers, body, SourceKind::Count).await
}

/// `POST /scale/{pool}[?dryRun=true]`: a synchronous decision. The body is `{"delta": n}`,
/// `{"value": n}` or empty (decide from the active signals); `?action=&step=&value=` works too.
async fn scale(
    State(app): State<Shared>,
    Path(pool): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let src = SourceKind::Direct;
    if let Err(r) = admit(&app, &headers, &pool, src) {
        return r;
    }
    let dry = q.get("dryRun").or_else(|| q.get("dry_run")).is_some_and(|v| v == "true" || v == "1");
    let (key, _) = idempotency_key(&app, &headers);
    let mut extra = Vec::new();
    if !body.is_empty() {
        let v = match parse_body(&body) {
            Ok(v) => v,
            Err(r) => return refused(&app, &pool, src, r),
        };
        if let Some(d) = v.get("delta").and_then(Value::as_i64) {
            extra.push(intent(
                src,
                &key,
                if d >= 0 { Action::Up } else { Action::Down },
                d.abs(),
                None,
            ));
        } else if let Some(n) = v.get("value").and_then(Value::as_i64) {
            extra.push(intent(src, &key, Action::Set, 0, Some(n)));
        }
    }
    match adapters::query_directive(&q) {
        Ok(Some(d)) => extra.push(intent(src, &key, d.action, d.step.unwrap_or(0), d.value)),
        Ok(None) => {}
        Err(r) => return refused(&app, &pool, src, r),
    }
    if dry {
        app.scaler.metrics.intent(&pool, src.as_str(), "dry_run");
        return match app.scaler.dry_run(&pool, extra).await {
            Ok(v) => {
                app.scaler.audit.write("dry_run", json!({"pool": pool, "key": key, "result": v}));
                reply(200, v)
            }
            Err((code, m)) => error(code, m),
        };
    }
    app.scaler.metrics.intent(&pool, src.as_str(), "accepted");
    app.scaler.audit.write("signal", json!({"pool": pool, "source": "direct", "key": key}));
    match app.scaler.decide_once(&pool, Some(extra), true).await {
        Ok(Some(d)) => reply(200, json!({"pool": pool, "decision": d})),
        Ok(None) => reply(200, json!({"pool": pool, "decision": null})),
        Err(e) => error(422, e),
    }
}

async fn pools(State(app): State<Shared>) -> Response {
    let list: Vec<Value> = app.scaler.states.keys().filter_map(|n| app.scaler.status(n)).collect();
    reply(200, json!({"pools": list}))
}

async fn pool_status(State(app): State<Shared>, Path(pool): Path<String>) -> Response {
    match app.scaler.status(&pool) {
        Some(v) => reply(200, v),
        None => error(404, format!("unknown pool `{pool}`")),
    }
}

async fn readyz(State(app): State<Shared>) -> Response {
    let mut reasons: Vec<String> = Vec::new();
    if app.scaler.draining.load(Ordering::SeqCst) {
        reasons.push("shutting down".into());
    }
    reasons.extend(app.scaler.blocked.lock().expect("blocked lock").values().cloned());
    let reload = app.scaler.reload_error.lock().expect("reload lock").clone();
    let body = json!({"ready": reasons.is_empty(), "reasons": reasons, "reloadError": reload});
    reply(if reasons.is_empty() { 200 } else { 503 }, body)
}

async fn metrics(State(app): State<Shared>) -> Response {
    app.scaler.refresh_gauges();
    let text = app.scaler.metrics.render();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        .into_response()
}
