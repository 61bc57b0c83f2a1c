//! The one outbound HTTP client: scripts' `http::` namespace, the notifiers and the GitHub
//! reporter all send through [`send`]. Every request has a time limit, a cap on the response
//! size, follows redirects only on the same host (and never from https to http), can be
//! cancelled from another thread, and never runs inside the caller's async runtime (it has a
//! thread and a current-thread runtime of its own, so a script evaluated anywhere can call it).
//!
//! What it says about a request is safe to print: [`display_url`] drops the user info and the
//! query, and every text goes through the secret registry (`crate::redact`).

use std::fmt;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::process::CancelToken;
use crate::redact::redact;

/// Redirects followed at most (each on the same host).
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Response bodies larger than this are refused unless a caller asks for more.
pub(crate) const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// The largest response body any caller may ask for.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// One request.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The whole exchange, connection to the last byte of the body.
    pub timeout: Duration,
    pub max_bytes: usize,
    /// Cancelled: the request is abandoned and [`HttpError::Cancelled`] returned.
    pub cancel: Option<CancelToken>,
    /// A wall-clock end that is not the request's own (a script's deadline, a flush bound).
    pub deadline: Option<Instant>,
}

impl Request {
    pub(crate) fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(30),
            max_bytes: DEFAULT_MAX_BYTES,
            cancel: None,
            deadline: None,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A JSON body with its `Content-Type`.
    pub(crate) fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(value.to_string().into_bytes());
        if !self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            self.headers.push(("Content-Type".into(), "application/json".into()));
        }
        self
    }

    /// `METHOD url` as it may be printed.
    pub(crate) fn what(&self) -> String {
        format!("{} {}", self.method, display_url(&self.url))
    }
}

/// A response: status, headers (names lowercased, repeated ones joined with `, `) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced), secrets masked.
    pub(crate) fn text(&self) -> String {
        redact(&String::from_utf8_lossy(&self.body)).into_owned()
    }

    /// Worth retrying: 408, 425, 429, any 5xx, and GitHub's rate-limit 403s.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self.status, 408 | 425 | 429 | 500..=599)
            || (self.status == 403 && self.rate_limited())
    }

    /// A 403/429 that says it is a rate limit (`retry-after`, or no requests remaining).
    pub(crate) fn rate_limited(&self) -> bool {
        self.header("retry-after").is_some() || self.header("x-ratelimit-remaining") == Some("0")
    }

    /// How long the server asks to wait: `Retry-After` (seconds or an HTTP date), else
    /// `x-ratelimit-reset` (epoch seconds) when no requests remain, else a JSON body's
    /// `retry_after` in seconds (Discord).
    pub(crate) fn retry_after(&self, now: SystemTime) -> Option<Duration> {
        if let Some(v) = self.header("retry-after") {
            let v = v.trim();
            if let Ok(secs) = v.parse::<f64>() {
                return crate::duration::from_secs_f64(secs.max(0.0)).ok();
            }
            if let Ok(at) = chrono::DateTime::parse_from_rfc2822(v) {
                let at: SystemTime = at.with_timezone(&chrono::Utc).into();
                return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
            }
        }
        if self.header("x-ratelimit-remaining") == Some("0")
            && let Some(reset) =
                self.header("x-ratelimit-reset").and_then(|r| r.parse::<u64>().ok())
        {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(reset);
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        let secs = json.get("retry_after")?.as_f64()?;
        crate::duration::from_secs_f64(secs.max(0.0)).ok()
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// Not an absolute `http://` or `https://` URL.
    BadUrl { url: String, why: String },
    /// No answer within the request's own time limit.
    TimedOut { what: String, after: Duration },
    /// The caller's deadline passed first.
    Deadline { what: String },
    /// The cancel token fired.
    Cancelled { what: String },
    /// The body is larger than `max_bytes`.
    TooLarge { what: String, limit: usize },
    /// Connection, TLS or protocol failure.
    Transport { what: String, message: String },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl { url, why } => write!(f, "invalid URL `{url}`: {why}"),
            HttpError::TimedOut { what, after } => {
                write!(f, "`{what}` timed out after {}", crate::process::secs(*after))
            }
            HttpError::Deadline { what } => write!(f, "`{what}` was stopped: out of time"),
            HttpError::Cancelled { what } => write!(f, "`{what}` was interrupted"),
            HttpError::TooLarge { what, limit } => {
                write!(f, "the response to `{what}` is larger than {limit} bytes")
            }
            HttpError::Transport { what, message } => write!(f, "`{what}` failed: {message}"),
        }
    }
}

/// A URL as it may be printed: no user info, the query replaced by `?…`, secrets masked.
pub(crate) fn display_url(url: &str) -> String {
    let shown = match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    };
    redact(&shown).into_owned()
}

/// Check that `url` is an absolute http(s) URL with a host.
pub(crate) fn check_url(url: &str) -> Result<reqwest::Url, HttpError> {
    let bad = |why: &str| HttpError::BadUrl { url: display_url(url), why: why.to_string() };
    let u = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("only `http://` and `https://` URLs are allowed"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(u)
}

/// Whether a redirect from `from` to `to` may be followed: the same host, and the same scheme
/// and port or an upgrade from http to https.
fn same_origin(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    if from.host_str() != to.host_str() {
        return false;
    }
    match (from.scheme(), to.scheme()) {
        (a, b) if a == b => from.port_or_known_default() == to.port_or_known_default(),
        ("http", "https") => true,
        _ => false,
    }
}

/// Send `req` and wait for the whole response, or for its timeout, deadline or cancellation.
/// A non-2xx status is a response, not an error.
pub(crate) fn send(req: &Request) -> Result<Response, HttpError> {
    let url = check_url(&req.url)?;
    let what = req.what();
    let method =
        reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| HttpError::BadUrl {
            url: display_url(&req.url),
            why: format!("bad method `{}`", req.method),
        })?;
    let timeout = req.timeout.max(Duration::from_millis(1));
    let (tx, rx) = mpsc::channel();
    let job = req.clone();
    let thread_what = what.clone();
    let spawned = std::thread::Builder::new().name("pilum-http".into()).spawn(move || {
        let _ = tx.send(exchange(&job, url, method, timeout, &thread_what));
    });
    if let Err(e) = spawned {
        return Err(HttpError::Transport { what, message: format!("cannot start a thread: {e}") });
    }
    let started = Instant::now();
    loop {
        if req.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Err(HttpError::Cancelled { what });
        }
        if req.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(HttpError::Deadline { what });
        }
        // The exchange's own client times out too; this is the backstop.
        if started.elapsed() > timeout + Duration::from_secs(1) {
            return Err(HttpError::TimedOut { what, after: timeout });
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(HttpError::Transport {
                    what,
                    message: "the request thread ended without an answer (this is a bug in pilum; please report it)".into(),
                });
            }
        }
    }
}

/// The request itself, on its own thread with its own runtime.
fn exchange(
    req: &Request,
    url: reqwest::Url,
    method: reqwest::Method,
    timeout: Duration,
    what: &str,
) -> Result<Response, HttpError> {
    let transport = |e: &dyn fmt::Display| HttpError::Transport {
        what: what.to_string(),
        message: redact(&e.to_string()).into_owned(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| transport(&e))?;
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().cloned();
        match first {
            _ if attempt.previous().len() > MAX_REDIRECTS => attempt.stop(),
            Some(first) if same_origin(&first, attempt.url()) => attempt.follow(),
            _ => attempt.stop(),
        }
    });
    let client = reqwest::Client::builder()
        .user_agent(concat!("pilum/", env!("CARGO_PKG_VERSION")))
        .redirect(policy)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .map_err(|e| transport(&e))?;
    let mut builder = client.request(method, url);
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let max = req.max_bytes.min(MAX_BYTES);
    rt.block_on(async move {
        let mut resp = builder.send().await.map_err(|e| classify(e, what, timeout))?;
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, String)> = Vec::new();
        for (k, v) in resp.headers() {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            match headers.iter_mut().find(|(n, _)| n == k.as_str()) {
                Some((_, old)) => {
                    old.push_str(", ");
                    old.push_str(&v);
                }
                None => headers.push((k.as_str().to_string(), v)),
            }
        }
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(HttpError::TooLarge { what: what.to_string(), limit: max });
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(e, what, timeout))? {
            if body.len() + chunk.len() > max {
                return Err(HttpError::TooLarge { what: what.to_string(), limit: max });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    })
}

fn classify(e: reqwest::Error, what: &str, timeout: Duration) -> HttpError {
    if e.is_timeout() {
        return HttpError::TimedOut { what: what.to_string(), after: timeout };
    }
    // reqwest's message names the URL; say it once, in the safe form, with the causes.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    HttpError::Transport { what: what.to_string(), message: redact(&message).into_owned() }
}

/// HMAC-SHA256 of `message` under `key`, lowercase hex (the `sha256=` value GitHub puts in
/// `X-Hub-Signature-256`).
pub(crate) fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    crate::hex::encode(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-shot server: answers each connection with the next canned reply.
    fn serve(replies: Vec<String>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            for reply in replies {
                let Ok((mut s, _)) = l.accept() else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(reply.as_bytes());
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn hmac_matches_the_rfc_4231_vector() {
        // RFC 4231, test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_printed_without_credentials_or_query() {
        assert_eq!(
            display_url("https://user:pw@hooks.example.com/a/b?token=x#f"),
            "https://hooks.example.com/a/b?…"
        );
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn redirects_stay_on_the_host() {
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(same_origin(&u("https://a.example/x"), &u("https://a.example/y")));
        assert!(same_origin(&u("http://a.example/x"), &u("https://a.example/y")));
        assert!(!same_origin(&u("https://a.example/x"), &u("http://a.example/y")));
        assert!(!same_origin(&u("https://a.example/x"), &u("https://b.example/y")));
        assert!(!same_origin(&u("http://a.example:1/x"), &u("http://a.example:2/y")));
    }

    #[test]
    fn a_cross_host_redirect_is_returned_not_followed() {
        let base = serve(vec![
            "HTTP/1.1 302 Found\r\nLocation: http://other.invalid/x\r\ncontent-length: 0\r\n\r\n"
                .into(),
        ]);
        let r = send(&Request::new("GET", &format!("{base}/start"))).expect("response");
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("http://other.invalid/x"));
    }

    #[test]
    fn a_large_body_is_refused() {
        let body = "x".repeat(2000);
        let base =
            serve(vec![format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())]);
        let mut req = Request::new("GET", &base);
        req.max_bytes = 1000;
        let err = send(&req).expect_err("too large");
        assert!(matches!(err, HttpError::TooLarge { limit: 1000, .. }), "{err}");
    }

    #[test]
    fn a_silent_server_times_out_and_a_cancel_stops_the_wait() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let mut req = Request::new("GET", &url);
        req.timeout = Duration::from_millis(300);
        let err = send(&req).expect_err("silent");
        assert!(matches!(err, HttpError::TimedOut { .. }), "{err}");
        let cancel = CancelToken::new();
        cancel.cancel();
        req.cancel = Some(cancel);
        req.timeout = Duration::from_secs(60);
        assert!(matches!(send(&req), Err(HttpError::Cancelled { .. })));
        drop(l);
    }

    #[test]
    fn retry_after_reads_every_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let r = |headers: &[(&str, &str)], body: &str| Response {
            status: 429,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(r(&[("retry-after", "3")], "").retry_after(now), Some(Duration::from_secs(3)));
        let date = chrono::DateTime::<chrono::Utc>::from(now + Duration::from_secs(7)).to_rfc2822();
        assert_eq!(r(&[("retry-after", &date)], "").retry_after(now), Some(Duration::from_secs(7)));
        assert_eq!(
            r(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1000010")], "")
                .retry_after(now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            r(&[], r#"{"retry_after": 1.5}"#).retry_after(now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(r(&[], "").retry_after(now), None);
        let mut forbidden = r(&[("x-ratelimit-remaining", "0")], "");
        forbidden.status = 403;
        assert!(forbidden.retryable());
        forbidden.headers.clear();
        assert!(!forbidden.retryable());
    }
}
