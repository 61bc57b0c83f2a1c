//! `http::` — HTTP requests for recipes (health checks after a deploy) and notifiers, through
//! the one client ([`crate::http`]): a time limit per request (never past the call's deadline),
//! a cap on the response size, redirects only on the same host, the call's cancel token.
//! Values of credential headers (`Authorization`, `Cookie`, `X-Api-Key`, and names with
//! `token`, `secret`, `key`, `auth` or `signature`) are registered as secrets, and the URL is
//! shown without user info or query, so nothing an `http::` call prints or returns reveals
//! them. Under `--dry-run` every request is recorded instead of sent and answers `200` with an
//! empty body. Strategies do not get this namespace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Map, Module, NativeCallContext};

use super::{Opts, RResult, check_live, func, rt, stop};
use crate::http::{self, HttpError, Request};
use crate::redact::{self, redact};
use crate::script::value::to_json;
use crate::script::{Event, Host, Stop};

const OPTS: &[&str] = &["headers", "json", "body", "timeout", "max_bytes", "check"];

/// The time limit of a request without `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `timeout` a script may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    func!(
        &mut m,
        "get",
        ["url: String", "Map"],
        r#"
Send a `GET` request and return `#{ status, ok, headers, body }`: the status code, whether it
is 2xx, the response headers (names in lower case) and the body as text. A non-2xx status is
returned, not raised (see `check`). Redirects are followed only on the same host; a redirect
elsewhere is returned as it is. The request gives up after 30 seconds.

```rhai
let url = ctx.fields.url;                     // e.g. "https://api.example.com"
let r = http::get(`${url}/healthz`);
if !r.ok { throw `health check failed: ${r.status}`; }
```"#,
        move |ctx: NativeCallContext, url: &str| request(&h, &ctx, "GET", url, Map::new())
    );
    let h = host.clone();
    func!(
        &mut m,
        "get",
        ["url: String", "options: Map", "Map"],
        r#"
`GET` with options: `headers` (map), `timeout` (seconds, at most 300; never past the step's
own timeout), `max_bytes` (the largest accepted body, default 1 MiB, at most 16 MiB), `check`
(raise an error unless the status is 2xx; default false).

```rhai
let r = http::get(`${url}/healthz`, #{ timeout: 5, check: true });
let info = json::parse(r.body);
```"#,
        move |ctx: NativeCallContext, url: &str, opts: Map| request(&h, &ctx, "GET", url, opts)
    );
    let h = host.clone();
    func!(
        &mut m,
        "post",
        ["url: String", "options: Map", "Map"],
        r#"
Send a `POST` request. The body is `json` (any value, sent as JSON with
`Content-Type: application/json`) or `body` (a string, sent as it is); the other options are
those of `http::get`. Returns `#{ status, ok, headers, body }`.

```rhai
let r = http::post(`${url}/deploys`, #{
    json: #{ service: ctx.service, tag: ctx.tag },
    headers: #{ Authorization: `Bearer ${env::secret("HOOK_TOKEN")}` },
});
```"#,
        move |ctx: NativeCallContext, url: &str, opts: Map| request(&h, &ctx, "POST", url, opts)
    );
    let h = host.clone();
    func!(
        &mut m,
        "request",
        ["method: String", "url: String", "options: Map", "Map"],
        r#"
Send a request with any method (`PUT`, `PATCH`, `DELETE`, `HEAD`, …) and the options of
`http::post`.

```rhai
let pr = 42;
http::request("DELETE", `${url}/previews/${pr}`, #{ check: true });
```"#,
        move |ctx: NativeCallContext, method: &str, url: &str, opts: Map| {
            request(&h, &ctx, method, url, opts)
        }
    );
    func!(
        &mut m,
        "hmac_sha256",
        ["key: String", "message: String", "String"],
        r#"
The HMAC-SHA256 of `message` under `key`, in lowercase hex: the signature of a webhook body
(`X-Hub-Signature-256: sha256=<hex>` in GitHub's convention). Sign exactly the text you send.

```rhai
let secret = env::secret("HOOK_SECRET");
let body = json::stringify(#{ service: ctx.service, tag: ctx.tag });
let headers = #{ "X-Signature-256": `sha256=${http::hmac_sha256(secret, body)}` };
http::post(url, #{ body: body, headers: headers });
```"#,
        |key: &str, message: &str| -> String {
            http::hmac_sha256_hex(key.as_bytes(), message.as_bytes())
        }
    );
    m
}

/// Header names whose values are credentials: registered as secrets before anything is sent.
fn is_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "key", "auth", "signature"].iter().any(|w| n.contains(w))
}

fn request(
    host: &Arc<Host>,
    ctx: &NativeCallContext,
    method: &str,
    url: &str,
    opts: Map,
) -> RResult<Map> {
    let name =
        format!("http::{}", if matches!(method, "GET" | "POST") { method } else { "request" })
            .to_ascii_lowercase();
    let call = check_live(ctx)?;
    // `json` takes any value and `max_bytes` an integer: read from the map itself.
    let json_value = opts.get("json").cloned();
    let max_bytes = opts.get("max_bytes").cloned();
    let opts = Opts::new(ctx, &name, opts, OPTS)?;
    http::check_url(url).map_err(|e| rt(ctx, e.to_string()))?;
    let mut req = Request::new(method, url);
    for (k, v) in opts.string_map(ctx, "headers")? {
        if is_credential(&k) {
            redact::register(&v);
            // `Bearer <token>`: the token alone too, should it be echoed back on its own.
            if let Some((_, token)) = v.split_once(' ') {
                redact::register(token);
            }
        }
        req.headers.push((k, v));
    }
    let json = match json_value {
        Some(v) => {
            Some(to_json(&v).map_err(|e| rt(ctx, format!("option `json` of `{name}`: {e}")))?)
        }
        None => None,
    };
    match (json, opts.str(ctx, "body")?) {
        (Some(_), Some(_)) => {
            return Err(rt(ctx, format!("`{name}` takes `json` or `body`, not both")));
        }
        (Some(j), None) => req = req.json(&j),
        (None, Some(b)) => req.body = Some(b.into_bytes()),
        (None, None) => {}
    }
    let timeout = opts.secs(ctx, "timeout")?.unwrap_or(DEFAULT_TIMEOUT);
    if timeout > MAX_TIMEOUT {
        return Err(rt(ctx, format!("option `timeout` of `{name}` is at most 300 seconds")));
    }
    req.timeout = timeout;
    if let Some(v) = max_bytes.filter(|v| !v.is_unit()) {
        let n = v.as_int().unwrap_or(0);
        if n <= 0 || n as usize > http::MAX_BYTES {
            return Err(rt(
                ctx,
                format!("option `max_bytes` of `{name}` must be between 1 and {}", http::MAX_BYTES),
            ));
        }
        req.max_bytes = n as usize;
    }
    let check = opts.bool(ctx, "check")?.unwrap_or(false);
    if host.dry_run {
        let size = req.body.as_ref().map(|b| format!(" ({} bytes)", b.len())).unwrap_or_default();
        host.emit(Event::DryRun { call: &name, detail: &format!("{}{size}", req.what()) });
        return Ok(response_map(200, &[], String::new()));
    }
    req.cancel = Some(call.cancel.clone());
    req.deadline = call.deadline.map(|d| d.at);
    let started = Instant::now();
    let resp = match http::send(&req) {
        Ok(r) => r,
        Err(HttpError::Cancelled { .. }) => return Err(stop(ctx, Stop::Cancelled)),
        Err(HttpError::Deadline { .. }) => {
            let after = call.deadline.map_or(started.elapsed(), |d| d.after);
            return Err(stop(ctx, Stop::TimedOut(after)));
        }
        Err(e) => return Err(rt(ctx, e.to_string())),
    };
    if check && !resp.ok() {
        let mut text = resp.text();
        if text.len() > 500 {
            let cut = (0..=500).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        return Err(rt(
            ctx,
            format!(
                "`{}` answered {}{}",
                req.what(),
                resp.status,
                if text.is_empty() { String::new() } else { format!(": {}", text.trim()) }
            ),
        ));
    }
    Ok(response_map(resp.status, &resp.headers, resp.text()))
}

fn response_map(status: u16, headers: &[(String, String)], body: String) -> Map {
    let mut h = Map::new();
    for (k, v) in headers {
        h.insert(k.as_str().into(), redact(v).into_owned().into());
    }
    let mut m = Map::new();
    m.insert("status".into(), Dynamic::from(rhai::INT::from(status)));
    m.insert("ok".into(), (200..300).contains(&status).into());
    m.insert("headers".into(), h.into());
    m.insert("body".into(), body.into());
    m
}

#[cfg(test)]
mod tests {
    use crate::sync::LockExt;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use rhai::{Dynamic, EvalAltResult};

    use super::*;
    use crate::script::engine::{Limits, Profile, build};
    use crate::script::{CallCtx, Deadline, Sink, with_call};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl Sink for Recorder {
        fn event(&self, _label: &str, event: Event<'_>) {
            if let Event::DryRun { call, detail } = event {
                self.0.locked().push(format!("{call}: {detail}"));
            }
        }
    }

    /// Answers each connection with the next reply; returns the base URL and the requests.
    fn serve(replies: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", l.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for reply in replies {
                let Ok((mut s, _)) = l.accept() else { return };
                s2.locked().push(read_request(&mut s));
                let _ = s.write_all(reply.as_bytes());
            }
        });
        (base, seen)
    }

    /// The head and the `content-length` bytes of body of one request.
    fn read_request(s: &mut std::net::TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0usize);
                if data.len() >= end + 4 + len {
                    return text;
                }
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&data).into_owned(),
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn engine(profile: Profile, dry_run: bool) -> (rhai::Engine, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let mut host = Host::new(std::env::temp_dir(), rec.clone());
        host.dry_run = dry_run;
        (build(&Arc::new(host), profile), rec)
    }

    #[test]
    fn post_sends_json_and_returns_the_response() {
        let (base, seen) = serve(vec![
            "HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok",
        ]);
        let (e, _) = engine(Profile::Full(Limits::full()), false);
        let r: Map = e
            .eval(&format!(
                r#"http::post("{base}/hook", #{{ json: #{{ a: 1 }}, headers: #{{ "X-Api-Key": "k-123456" }} }})"#
            ))
            .expect("post");
        assert_eq!(r["status"].as_int().expect("int"), 201);
        assert!(r["ok"].as_bool().expect("bool"));
        assert_eq!(r["body"].clone().into_string().expect("body"), "ok");
        let req = seen.locked()[0].clone();
        assert!(req.starts_with("POST /hook HTTP/1.1"), "{req}");
        assert!(req.to_ascii_lowercase().contains("content-type: application/json"), "{req}");
        assert!(req.ends_with(r#"{"a":1}"#), "{req}");
        // The credential header's value is masked from now on.
        assert_eq!(redact("key k-123456"), "key ***");
    }

    #[test]
    fn check_raises_on_a_failure_status() {
        let (base, _) =
            serve(vec!["HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\ndown"]);
        let (e, _) = engine(Profile::Full(Limits::full()), false);
        let err = e
            .eval::<Dynamic>(&format!(r#"http::get("{base}/h?token=abc", #{{ check: true }})"#))
            .expect_err("503");
        let msg = err.to_string();
        assert!(msg.contains("answered 503: down"), "{msg}");
        assert!(!msg.contains("abc"), "the query is not shown: {msg}");
    }

    #[test]
    fn dry_run_records_instead_of_sending() {
        let (e, rec) = engine(Profile::Full(Limits::full()), true);
        let r: Map = e
            .eval(r#"http::post("https://user:pw@hooks.invalid/x?sig=1", #{ body: "hello" })"#)
            .expect("dry run");
        assert_eq!(r["status"].as_int().expect("int"), 200);
        assert_eq!(
            rec.0.locked().as_slice(),
            ["http::post: POST https://hooks.invalid/x?… (5 bytes)"]
        );
    }

    #[test]
    fn options_and_urls_are_checked() {
        let (e, _) = engine(Profile::Full(Limits::full()), true);
        for (src, want) in [
            (r#"http::get("file:///etc/passwd")"#, "only `http://` and `https://`"),
            (r#"http::get("https://x.invalid", #{ timout: 3 })"#, "did you mean `timeout`"),
            (r#"http::post("https://x.invalid", #{ json: 1, body: "x" })"#, "not both"),
            (r#"http::get("https://x.invalid", #{ timeout: 9999 })"#, "at most 300"),
            (r#"http::get("https://x.invalid", #{ max_bytes: 0 })"#, "between 1 and"),
        ] {
            let err = e.eval::<Dynamic>(src).expect_err(src).to_string();
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn the_call_deadline_stops_a_hanging_request() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", l.local_addr().expect("addr"));
        let (e, _) = engine(Profile::Full(Limits::full()), false);
        let ctx = CallCtx {
            deadline: Some(Deadline::after(Duration::from_millis(300))),
            ..CallCtx::default()
        };
        let err = with_call(ctx, || e.eval::<Dynamic>(&format!(r#"http::get("{url}")"#)))
            .expect_err("deadline");
        assert!(matches!(crate::script::engine::stop_of(&err), Some(Stop::TimedOut(_))), "{err}");
        drop(l);
    }

    #[test]
    fn strategies_have_no_http_and_notifiers_have_nothing_else() {
        let (e, _) = engine(Profile::Strategy(Limits::strategy()), false);
        let err = e.eval::<Dynamic>(r#"http::get("https://x.invalid")"#).expect_err("strategy");
        assert!(
            matches!(
                *err,
                EvalAltResult::ErrorParsing(..) | EvalAltResult::ErrorFunctionNotFound(..)
            ),
            "{err}"
        );
        let (e, _) = engine(Profile::Notifier(Limits::strategy()), true);
        e.eval::<Map>(r#"http::get("https://x.invalid")"#).expect("notifiers have http");
        for src in [r#"exec::run(["true"])"#, r#"fs::read("x")"#, r#"env::get("HOME")"#] {
            assert!(e.eval::<Dynamic>(src).is_err(), "{src} in a notifier");
        }
        assert_eq!(
            e.eval::<String>(r#"http::hmac_sha256("Jefe", "what do ya want for nothing?")"#)
                .expect("hmac"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
