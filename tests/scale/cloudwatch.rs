//! CloudWatch alarms over SNS, signed in the test with its own key and certificate.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use serde_json::Value;

use super::*;

/// A loopback HTTP server standing in for SNS: serves the signing certificate at `/cert.pem`
/// and counts GETs of `/confirm`.
struct FakeSns {
    addr: String,
    confirms: Arc<AtomicUsize>,
}

fn fake_sns(cert_pem: String) -> FakeSns {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake SNS");
    let addr = listener.local_addr().expect("addr").to_string();
    let confirms = Arc::new(AtomicUsize::new(0));
    let c = confirms.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(s.try_clone().expect("clone stream"));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let body = if line.contains("/cert.pem") {
                cert_pem.clone()
            } else if line.contains("/confirm") {
                c.fetch_add(1, Ordering::SeqCst);
                "<ConfirmSubscriptionResponse/>".to_string()
            } else {
                String::new()
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    FakeSns { addr, confirms }
}

/// A key and self-signed certificate made with `openssl` (present on Debian images; CI
/// installs it).
fn keypair(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("sns-key.pem");
    let cert = dir.join("sns-cert.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sns.test",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed to run the SNS tests");
    assert!(out.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
    (key, std::fs::read_to_string(&cert).expect("cert"))
}

/// Build the string to sign exactly as SNS does and sign it with SHA-256 (v2) or SHA-1 (v1).
fn sign(msg: &mut Value, key: &Path, dir: &Path) {
    let kind = msg["Type"].as_str().expect("Type").to_string();
    let fields: &[&str] = if kind == "Notification" {
        &["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    } else {
        &["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    };
    let mut text = String::new();
    for f in fields {
        if let Some(v) = msg.get(*f).and_then(Value::as_str) {
            text.push_str(&format!("{f}\n{v}\n"));
        }
    }
    let data = dir.join("to-sign.txt");
    std::fs::write(&data, text).expect("write sign text");
    let digest = if msg["SignatureVersion"] == "1" { "-sha1" } else { "-sha256" };
    let out = Command::new("openssl")
        .args(["dgst", digest, "-sign"])
        .arg(key)
        .arg(&data)
        .output()
        .expect("openssl dgst");
    assert!(out.status.success(), "openssl dgst failed: {}", String::from_utf8_lossy(&out.stderr));
    msg["Signature"] = base64::engine::general_purpose::STANDARD.encode(out.stdout).into();
}

struct Sns {
    fake: FakeSns,
    key: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Sns {
    fn new(t: &Test) -> Self {
        let (key, cert) = keypair(t.path());
        Self { fake: fake_sns(cert), key, dir: t.path().to_path_buf() }
    }

    /// A signed message from a fixture, with a fresh timestamp and our certificate URL.
    fn message(&self, fixture: &str, edit: impl FnOnce(&mut Value)) -> Value {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let mut msg: Value = serde_json::from_str(&text).expect("fixture JSON");
        msg["Timestamp"] = chrono_now().into();
        msg["SigningCertURL"] = format!("http://{}/cert.pem", self.fake.addr).into();
        if msg.get("SubscribeURL").is_some() {
            msg["SubscribeURL"] = format!("http://{}/confirm?Token=abc", self.fake.addr).into();
        }
        edit(&mut msg);
        sign(&mut msg, &self.key, &self.dir);
        msg
    }
}

fn chrono_now() -> String {
    // RFC 3339 UTC without a date library in the tests: ask `date`.
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%S.000Z"]).output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn deliver(server: &Server, query: &str, msg: &Value) -> Response {
    server.request(
        "POST",
        &format!("/webhook/workers/cloudwatch{query}"),
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Type", "text/plain; charset=UTF-8"),
            ("x-amz-sns-message-type", msg["Type"].as_str().unwrap_or("")),
        ],
        &msg.to_string(),
    )
}

#[test]
fn signed_alarm_scales_down_once_and_ok_clears_without_change() {
    let t = project("", 5);
    let sns = Sns::new(&t);
    let server = serve(&t, &["--sns-test-trust-loopback"]);

    // ALARM with ?action=down&step=2 lowers the value by 2.
    let alarm = sns.message("sns-notification-cloudwatch-alarm.json", |_| {});
    let r = deliver(&server, "?action=down&step=2", &alarm);
    assert_eq!(r.status, 202, "{}\n{}", r.body, server.logs());
    let p = server.wait_pool("applied 3", |p| p["applied"] == 3);
    assert_eq!(p["desired"], 3);
    assert_eq!(count_in(&t.path().join("infra/Pulumi.prod.yaml")).as_deref(), Some("3"));

    // The same MessageId again (an SNS retry) changes nothing.
    let r = deliver(&server, "?action=down&step=2", &alarm);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["duplicate"], true);
    // A duplicate is never enqueued: nothing can follow from it.
    assert_eq!(server.pool()["desired"], 3);
    assert_eq!(ups(&t), 1);

    // OK without `on_ok` clears the alarm and changes nothing.
    let ok = sns.message("sns-notification-cloudwatch-ok.json", |_| {});
    let r = deliver(&server, "", &ok);
    assert_eq!(r.status, 202, "{}", r.body);
    // A 202 means the clear is applied; with no signal left nothing can change.
    let p = server.pool();
    assert_eq!(p["desired"], 3);
    assert_eq!(p["signals"].as_array().map(Vec::len), Some(0), "{p:#}");
    assert_eq!(ups(&t), 1);

    // The up message names the pool, the change and the reason.
    let up = t.calls("pulumi").into_iter().find(|c| c[0] == "up").expect("an up call");
    let msg =
        up.iter().position(|a| a == "--message").map(|i| up[i + 1].clone()).expect("--message");
    assert!(msg.starts_with("pilum: workers 5→3 (HighCPU"), "{msg}");
    assert!(up.windows(2).any(|w| w[0] == "--target" && w[1] == URN), "{up:?}");
    assert!(up.contains(&"--skip-preview".to_string()) && up.contains(&"--yes".to_string()));
    let decisions = audit(&t, "decision");
    assert!(
        decisions.iter().any(|d| d["changed"] == true && d["old"] == 5 && d["clamped"] == 3),
        "{decisions:?}"
    );
}

#[test]
fn forged_unjson_and_subscription_messages_never_scale() {
    let t = project("", 5);
    let sns = Sns::new(&t);
    let server = serve(&t, &["--sns-test-trust-loopback"]);

    // A tampered message (signed, then edited) is refused.
    let mut tampered = sns.message("sns-notification-cloudwatch-alarm.json", |_| {});
    tampered["Message"] =
        tampered["Message"].as_str().expect("msg").replace("step=2", "step=9").into();
    let r = deliver(&server, "", &tampered);
    assert_eq!(r.status, 403, "{}", r.body);

    // Version 1 (SHA-1) signatures verify too; a non-JSON alarm message is a 400.
    let not_json = sns.message("sns-notification-cloudwatch-alarm.json", |m| {
        m["Message"] = "ALARM: HighCPU is high".into();
        m["MessageId"] = "not-json-1".into();
        m["SignatureVersion"] = "1".into();
    });
    let r = deliver(&server, "", &not_json);
    assert_eq!(r.status, 400, "{}", r.body);

    // A subscription confirmation is verified, then confirmed with one GET, and scales nothing.
    let confirm = sns.message("sns-subscription-confirmation.json", |_| {});
    let r = deliver(&server, "", &confirm);
    assert_eq!(r.status, 200, "{}\n{}", r.body, server.logs());
    assert_eq!(sns.fake.confirms.load(Ordering::SeqCst), 1);
    let r = deliver(&server, "", &confirm);
    assert_eq!(r.status, 200);
    assert_eq!(
        sns.fake.confirms.load(Ordering::SeqCst),
        1,
        "a retried confirmation is not fetched twice"
    );

    // A confirmation whose SubscribeURL points elsewhere is refused before any fetch.
    let evil = sns.message("sns-subscription-confirmation.json", |m| {
        m["MessageId"] = "evil-1".into();
        m["SubscribeURL"] = "https://attacker.example/confirm".into();
    });
    assert_eq!(deliver(&server, "", &evil).status, 403);

    // An unknown topic is refused.
    let other = sns.message("sns-notification-cloudwatch-alarm.json", |m| {
        m["MessageId"] = "other-topic".into();
        m["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:other".into();
    });
    assert_eq!(deliver(&server, "", &other).status, 403);

    // An ALARM without any direction is 422, never a default +1.
    let nodir = sns.message("sns-notification-cloudwatch-alarm.json", |m| {
        m["MessageId"] = "no-direction".into();
        m["Message"] = m["Message"]
            .as_str()
            .expect("msg")
            .replace("pilum: action=up step=2", "CPU high")
            .into();
    });
    assert_eq!(deliver(&server, "", &nodir).status, 422);

    // A stale message (replay) is refused.
    let stale = sns.message("sns-notification-cloudwatch-alarm.json", |m| {
        m["MessageId"] = "stale".into();
        m["Timestamp"] = "2020-01-01T00:00:00.000Z".into();
    });
    assert_eq!(deliver(&server, "", &stale).status, 403);

    // Every one of them was refused synchronously: nothing was enqueued.
    assert_eq!(server.pool()["desired"], 5);
    assert_eq!(ups(&t), 0);
    assert_eq!(count_in(&t.path().join("infra/Pulumi.prod.yaml")).as_deref(), Some("5"));
}

#[test]
fn unsigned_sns_is_refused_without_the_trust_override() {
    let t = project("", 5);
    let sns = Sns::new(&t);
    let server = serve(&t, &[]);
    let alarm = sns.message("sns-notification-cloudwatch-alarm.json", |_| {});
    let r = deliver(&server, "", &alarm);
    assert_eq!(r.status, 403, "loopback certificate URLs must be refused by default: {}", r.body);
}

#[test]
fn with_ha_an_sns_retry_to_another_replica_is_a_duplicate() {
    let redis = crate::common::redis::RedisServer::start();
    let t = project("", 5);
    let sns = Sns::new(&t);
    let a = super::ha::replica(&t, &redis, 0, &["--sns-test-trust-loopback"]);
    let b = super::ha::replica(&t, &redis, 1, &["--sns-test-trust-loopback"]);
    let alarm = sns.message("sns-notification-cloudwatch-alarm.json", |_| {});
    let r = deliver(&a, "?action=down&step=2", &alarm);
    assert_eq!(r.status, 202, "{}\n{}", r.body, a.logs());
    // SNS retried the same `MessageId` at the other replica.
    let r = deliver(&b, "?action=down&step=2", &alarm);
    assert_eq!((r.status, r.json()["duplicate"].clone()), (200, true.into()), "{}", r.body);
    let leads = |s: &Server| s.get_json("/pools")["ha"]["role"] == "leader";
    wait_for("a leader", 20, || leads(&a) || leads(&b));
    let leader = if leads(&a) { &a } else { &b };
    leader.wait_pool("applied 3, once", |p| p["applied"] == 3);
    assert_eq!(ups(&t), 1);
}
