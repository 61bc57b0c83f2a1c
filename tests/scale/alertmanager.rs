//! A real Alertmanager (Debian `prometheus-alertmanager`) sending its webhooks to a real
//! `pilum scale serve`, configured with the files of docs/scaling.md ("Wiring Prometheus and
//! Alertmanager") as they are written there: the rule passes `promtool check rules`, the
//! Alertmanager file passes `amtool check-config`, and an alert with the rule's labels and
//! annotations scales the pool once, then its resolution clears the level.

use std::net::TcpListener;
use std::process::{Child, Command};

use super::*;
use crate::common::tool;

/// The fenced YAML block of docs/scaling.md whose first line is `first`.
fn doc_block(first: &str) -> String {
    let doc = std::fs::read_to_string(format!("{}/docs/scaling.md", env!("CARGO_MANIFEST_DIR")))
        .expect("docs/scaling.md");
    let start = doc
        .find(&format!("```yaml\n{first}\n"))
        .unwrap_or_else(|| panic!("docs/scaling.md has no ```yaml block starting with `{first}`"));
    let body = &doc[start + "```yaml\n".len()..];
    body[..body.find("```").expect("closed block")].to_string()
}

/// Runs `tool args…` and fails the test with its output unless it succeeds.
fn check(tool_path: &Path, args: &[&str]) {
    let out = Command::new(tool_path).args(args).output().expect("run checker");
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        tool_path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running Alertmanager, stopped by pid when dropped.
struct Alertmanager {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    fn start(t: &Test, config: &Path) -> Self {
        let bin = tool("prometheus-alertmanager", "prometheus-alertmanager");
        // A free loopback port: bound, read and released just before Alertmanager binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = t.path().join("alertmanager.log");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", t.path().join("am-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            // No gossip: one instance, and nothing listening beyond the web port.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("alertmanager log"))
            .spawn()
            .expect("start prometheus-alertmanager");
        let mut am = Self { child, addr, log };
        let started = Instant::now();
        loop {
            if TcpStream::connect(&am.addr).is_ok() && am.get("/-/ready").status == 200 {
                return am;
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("alertmanager exited with {status}:\n{}", am.logs());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "alertmanager did not become ready:\n{}",
                am.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Response {
        http(&self.addr, "GET", path, &[], "")
    }

    /// Posts alerts through the v2 API, as Prometheus does.
    fn post_alerts(&self, alerts: &Value) {
        let r = http(
            &self.addr,
            "POST",
            "/api/v2/alerts",
            &[("Content-Type", "application/json")],
            &alerts.to_string(),
        );
        assert_eq!(r.status, 200, "{}\n{}", r.body, self.logs());
    }
}

#[test]
fn alertmanager_configured_as_documented_scales_once_and_resolves() {
    let promtool = tool("promtool", "prometheus");
    let amtool = tool("amtool", "prometheus-alertmanager");
    let t = project("", 3);
    let server = serve(&t, &[]);

    // The documented rule, checked by promtool; the alert below carries its labels and
    // annotations, as Prometheus would send them.
    let rules = doc_block("# rules/pilum.yml");
    t.write("rules.yml", &rules);
    check(&promtool, &["check", "rules", &t.path().join("rules.yml").to_string_lossy()]);
    let rule: Value = serde_yaml::from_str(&rules).expect("rule YAML");
    let rule = &rule["groups"][0]["rules"][0];
    let mut labels = rule["labels"].clone();
    labels["alertname"] = rule["alert"].clone();
    labels["queue"] = "emails".into();
    let annotations = rule["annotations"].clone();

    // The documented Alertmanager file, pointed at this server, with short group timings so
    // the test does not wait minutes.
    t.write("pilum-token", TOKEN);
    let config = doc_block("# alertmanager.yml")
        .replace("http://pilum.internal:8080", &format!("http://{}", server.addr))
        .replace("/etc/alertmanager/pilum-token", &t.path().join("pilum-token").to_string_lossy())
        .replace("group_wait: 10s", "group_wait: 100ms")
        .replace("group_interval: 1m", "group_interval: 1s");
    t.write("alertmanager.yml", &config);
    let config_path = t.path().join("alertmanager.yml");
    check(&amtool, &["check-config", &config_path.to_string_lossy()]);
    let am = Alertmanager::start(&t, &config_path);

    let firing = serde_json::json!([{"labels": labels, "annotations": annotations}]);
    am.post_alerts(&firing);
    let p = server.wait_pool("applied 5 (3 + pilum_step 2)", |p| p["applied"] == 5);
    assert_eq!(p["signals"].as_array().map(Vec::len), Some(1), "{p:#}");
    // Prometheus re-sends a firing alert on every evaluation: the same level, no new step.
    am.post_alerts(&firing);
    assert_eq!(ups(&t), 1, "{}", server.logs());

    // Resolved: Alertmanager sends it (send_resolved) and the level is cleared, nothing applied.
    let ended = (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    am.post_alerts(&serde_json::json!([{
        "labels": labels, "annotations": annotations, "endsAt": ended
    }]));
    let p = server.wait_pool("the resolved alert to clear its level", |p| {
        p["signals"].as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!((p["desired"].clone(), ups(&t)), (5.into(), 1), "{p:#}\n{}", am.logs());
    assert!(!server.logs().contains(TOKEN), "the token reached the server log");
}
