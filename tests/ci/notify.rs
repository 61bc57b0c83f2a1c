//! Notifications end to end: real deploys, loopback receivers checking each notifier's
//! documented payload (`docs/notifications.md`), the webhook signature, retries on 429 and 5xx
//! with `Retry-After`, final 4xx answers, and that a receiver that hangs does not hold the run
//! past the flush bound.

use std::time::{Duration, Instant};

use hmac::Mac;

use super::project;
use crate::common::receiver::{Receiver, Reply};

const SECRET: &str = "whsec-0123456789abcdef";

fn settings(notifiers: &str, timeout: &str) -> String {
    format!("notify_timeout: {timeout}\nnotify:\n{notifiers}")
}

fn sign(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[test]
fn webhook_sends_every_event_signed() {
    let rx = Receiver::ok();
    let t = project(
        &settings(
            &format!(
                "  - notifier: webhook\n    url: {}/hook\n    secret_env: HOOK_SECRET\n    events: ['*']\n",
                rx.url
            ),
            "10s",
        ),
        Some("the registry said no"),
    );
    let r = t.env("HOOK_SECRET", SECRET).args(["deploy", "--env", "staging"]).run().code(1);
    let reqs = rx.requests();
    let events: Vec<String> =
        reqs.iter().map(|q| q.json()["event"].as_str().unwrap_or("?").to_string()).collect();
    // run_started first, run_failed last; the services' events in between, in any order.
    assert_eq!(events.first().map(String::as_str), Some("run_started"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("run_failed"), "{events:?}");
    assert!(events.contains(&"service_deployed".to_string()), "{events:?}");
    assert!(events.contains(&"service_failed".to_string()), "{events:?}");
    assert_eq!(reqs.len(), 4, "{events:?}");
    for q in &reqs {
        assert_eq!((q.method.as_str(), q.path.as_str()), ("POST", "/hook"));
        assert_eq!(q.header("content-type"), Some("application/json"));
        assert_eq!(
            q.header("x-pilum-signature-256"),
            Some(sign(&q.body).as_str()),
            "signature of {}",
            q.text()
        );
        let v = q.json();
        assert_eq!(q.header("x-pilum-event"), v["event"].as_str());
        for key in ["event", "status", "title", "time", "run"] {
            assert!(v.get(key).is_some(), "`{key}` missing in {v}");
        }
        let run = &v["run"];
        assert_eq!(run["command"], "deploy");
        assert_eq!(run["environment"], "staging");
        assert_eq!(run["services"], serde_json::json!(["api", "web"]));
        assert_eq!(run["id"], reqs[0].json()["run"]["id"], "one run id for every event");
    }
    let by = |e: &str| {
        reqs.iter()
            .map(super::super::common::receiver::Request::json)
            .find(|v| v["event"] == e)
            .expect(e)
    };
    let deployed = by("service_deployed");
    assert_eq!(deployed["service"]["name"], "api");
    assert_eq!(deployed["service"]["url"], "https://api.example.test", "the deploy step's url");
    assert_eq!(deployed["status"], "ok");
    let failed = by("service_failed");
    assert_eq!(failed["service"]["name"], "web");
    assert!(
        failed["service"]["error"].as_str().unwrap_or_default().contains("the registry said no"),
        "{failed}"
    );
    assert_eq!(failed["service"]["task"], "web/deploy");
    let end = by("run_failed");
    assert_eq!(
        end["summary"]["services"],
        serde_json::json!({"total": 2, "ok": 1, "failed": 1, "skipped": 0, "interrupted": 0})
    );
    assert_eq!(end["title"], "deploy of 2 services to `staging` failed (1 service failed)");
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
}

#[test]
fn chat_notifiers_send_their_documented_shapes() {
    let rx = Receiver::start(|q, _| match q.path.as_str() {
        "/discord" => Reply::status(204),
        "/teams" => Reply::status(202),
        _ => Reply::With(200, Vec::new(), "ok".into()),
    });
    let long = "x".repeat(5000);
    let notifiers = format!(
        "  - notifier: slack\n    url_env: SLACK_URL\n    events: [service_failed, run_failed]\n  - notifier: discord\n    url: {u}/discord\n    events: [service_failed]\n    options: {{ username: pilum-bot }}\n  - notifier: teams\n    url: {u}/teams\n    events: [service_failed]\n",
        u = rx.url
    );
    let t = project(&settings(&notifiers, "10s"), Some(&format!("@everyone {long}")));
    let slack_url = format!("{}/slack/T000/B000/not-a-real-secret", rx.url);
    let r = t
        .env("SLACK_URL", &slack_url)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_RUN_ID", "77")
        .args(["deploy"])
        .run()
        .code(1);
    assert!(
        !r.stderr.contains("not-a-real-secret") && !r.stdout.contains("not-a-real-secret"),
        "{}",
        r.stderr
    );
    let reqs = rx.requests();
    let of = |prefix: &str| -> Vec<serde_json::Value> {
        reqs.iter()
            .filter(|q| q.path.starts_with(prefix))
            .map(super::super::common::receiver::Request::json)
            .collect()
    };
    let run_url = "https://github.com/acme/shop/actions/runs/77";

    let slack = of("/slack");
    assert_eq!(slack.len(), 2, "{slack:?}");
    for m in &slack {
        assert!(m["text"].as_str().is_some_and(|t| !t.is_empty() && t.chars().count() <= 3000));
        let blocks = m["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "section");
        assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
        assert!(blocks[0]["text"]["text"].as_str().expect("text").chars().count() <= 3000);
        assert_eq!(blocks[1]["type"], "context");
        assert!(
            blocks[1]["elements"][0]["text"]
                .as_str()
                .expect("context")
                .contains(&format!("<{run_url}|CI run>"))
        );
    }
    assert!(
        slack[0]["blocks"][0]["text"]["text"]
            .as_str()
            .expect("text")
            .contains(":x: *deploy of `web` failed*")
    );

    let discord = of("/discord");
    assert_eq!(discord.len(), 1);
    let d = &discord[0];
    assert!(d["content"].as_str().expect("content").chars().count() <= 2000);
    assert_eq!(d["username"], "pilum-bot");
    assert_eq!(d["allowed_mentions"], serde_json::json!({"parse": []}), "no pings");
    let embeds = d["embeds"].as_array().expect("embeds");
    assert!(embeds.len() == 1);
    let e = &embeds[0];
    assert!(e["title"].as_str().expect("title").chars().count() <= 256);
    let desc = e["description"].as_str().expect("description");
    assert!(
        desc.chars().count() <= 4096 && desc.ends_with("…\n```"),
        "clipped: {} chars",
        desc.chars().count()
    );
    assert_eq!(e["url"], run_url);
    assert!(e["color"].is_i64());
    assert!(e["fields"].as_array().expect("fields").len() <= 25);

    let teams = of("/teams");
    assert_eq!(teams.len(), 1);
    let m = &teams[0];
    assert_eq!(m["type"], "message");
    let att = &m["attachments"][0];
    assert_eq!(att["contentType"], "application/vnd.microsoft.card.adaptive");
    let card = &att["content"];
    assert_eq!(
        (card["type"].as_str(), card["version"].as_str()),
        (Some("AdaptiveCard"), Some("1.4"))
    );
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][1]["type"], "FactSet");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], run_url);
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    // 429 with Retry-After, then a 503, then accepted: three tries of the same body.
    let rx = Receiver::start(|_, n| match n {
        0 => Reply::With(429, vec![("retry-after", "1".into())], "slow down".into()),
        1 => Reply::status(503),
        _ => Reply::With(200, Vec::new(), "ok".into()),
    });
    let t =
        project(&settings(&format!("  - notifier: webhook\n    url: {}/h\n", rx.url), "20s"), None);
    let r = t.args(["deploy"]).run().success();
    let reqs = rx.requests();
    assert_eq!(
        reqs.len(),
        3,
        "{:?}",
        reqs.iter().map(super::super::common::receiver::Request::text).collect::<Vec<_>>()
    );
    assert!(reqs.iter().all(|q| q.body == reqs[0].body), "every retry sends the same body");
    assert_eq!(reqs[0].json()["event"], "run_finished");
    assert!(!r.stderr.contains("notifier"), "delivered in the end, no warning: {}", r.stderr);
}

#[test]
fn a_refusal_is_final_and_only_a_warning() {
    let rx = Receiver::start(|_, _| Reply::With(404, Vec::new(), "no_service".into()));
    let t =
        project(&settings(&format!("  - notifier: slack\n    url: {}/s\n", rx.url), "10s"), None);
    let r = t.args(["deploy"]).run().success();
    assert_eq!(rx.requests().len(), 1, "a 404 is not retried");
    assert!(
        r.stderr.contains("notifier `slack`: 1 notification not delivered (last error: the receiver answered 404: no_service)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_hanging_receiver_does_not_hold_the_run_past_the_bound() {
    let rx = Receiver::start(|_, _| Reply::Hang);
    let t = project(
        &settings(
            &format!("  - notifier: webhook\n    url: {}/h\n    events: ['*']\n", rx.url),
            "1s",
        ),
        None,
    );
    let t = t.args(["deploy"]);
    let mut child = t
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pilum");
    // The deploy itself takes well under a second; the bound is 1 s. Waiting 60 s for the
    // exit only fails when the bound is not kept at all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pilum still running 60 s after a deploy with a 1 s notification bound");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("notifier `webhook`:")
            && stderr.contains("still pending after 1s; given up"),
        "{stderr}"
    );
    assert!(!rx.requests().is_empty(), "the receiver got the first request");
}

#[test]
fn a_missing_secret_skips_the_notifier_and_config_errors_are_located() {
    let t = project(&settings("  - notifier: slack\n    url_env: SLACK_URL\n", "1s"), None);
    let r = t.args(["deploy"]).run().success();
    assert!(
        r.stderr
            .contains("notifier `slack`: `SLACK_URL` is not set; its notifications are skipped"),
        "{}",
        r.stderr
    );

    let t = project(
        "notify:\n  - notifier: slakc\n    url: https://hooks.invalid/x\n    events: [run_faild]\n",
        None,
    );
    let r = t.args(["deploy"]).run().code(2);
    assert!(r.stderr.contains("pilum-project.yaml:2:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("unknown notifier `slakc`") && r.stderr.contains("did you mean `slack`?"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("unknown event `run_faild`")
            && r.stderr.contains("did you mean `run_failed`?"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_project_notifier_is_one_file_and_dry_runs_record() {
    let rx = Receiver::ok();
    let notifier = r#"
// A Mattermost-style notifier.
fn notify(event, config) {
    http::post(config.url, #{ json: #{ text: `${config.options.prefix} ${event.title}` } })
}
"#;
    let t = project(
        &settings(
            &format!(
                "  - notifier: chat\n    url: {}/mm\n    options: {{ prefix: '[ci]' }}\n",
                rx.url
            ),
            "10s",
        ),
        None,
    )
    .file("notifiers/chat.rhai", notifier);
    let t = t.args(["deploy", "--dry-run"]);
    let r = t.run().success();
    assert!(rx.requests().is_empty(), "a dry run sends nothing");
    assert!(
        r.stderr.contains(&format!("notifier `chat` would send POST {}/mm", rx.url)),
        "{}",
        r.stderr
    );
    t.clear_args().args(["deploy"]).run().success();
    let reqs = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(reqs[0].json()["text"], "[ci] deploy of 1 service succeeded");
}

#[test]
fn every_builtin_notifier_is_documented_and_exercised() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/notifications.md")).expect("docs");
    let tests = std::fs::read_to_string(root.join("tests/ci/notify.rs")).expect("tests");
    let mut names: Vec<String> = std::fs::read_dir(root.join("stdlib/notify"))
        .expect("stdlib/notify")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".rhai").map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(names, ["discord", "slack", "teams", "webhook"]);
    for n in &names {
        let text = std::fs::read_to_string(root.join(format!("stdlib/notify/{n}.rhai")))
            .expect("notifier");
        assert!(
            text.starts_with(&format!("// The `{n}` notifier")),
            "`stdlib/notify/{n}.rhai` starts without its header"
        );
        assert!(
            docs.contains(&format!("**`{n}`**")),
            "docs/notifications.md does not describe `{n}`"
        );
        assert!(tests.contains(&format!("notifier: {n}")), "no test here sends through `{n}`");
    }
}
