//! The scaler, end to end: a real `pilum scale serve` on 127.0.0.1 with a random port, a fake
//! `pulumi` first on PATH emulating the CLI's file-backed config, and webhooks sent over real
//! sockets. SNS messages are signed in the test with a key and certificate made by `openssl`,
//! served on loopback through the documented test-only trust override.

mod alertmanager;
mod chatops;
mod check;
mod cloudwatch;
mod composite;
mod drift;
mod ha;
mod hardening;
mod lifecycle;
mod limits;
mod page;
mod pause;
mod production;
mod prometheus;
mod schedule;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Test;

pub(crate) const TOKEN: &str = "s3cret-token";
pub(crate) const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:scaling-alarms";
pub(crate) const URN: &str = "urn:pulumi:prod::infra::aws:autoscaling/group:Group::workers";

/// The fake `pulumi`: `config get/set-all` against `Pulumi.<stack>.yaml` (or `--config-file`),
/// `up` that can sleep (`$PILUM_FAKE_DIR/up-sleep`), fail with the exact lock text N times
/// (`up-lock` holds N) or fail otherwise (`up-fail`), `preview --json`, and the drift knob:
/// while `$PILUM_FAKE_DIR/drift` exists (holding the live value), `refresh --preview-only
/// --json` reports the target drifted with `desiredCapacity` = that value; `refresh --yes`
/// clears it.
pub(crate) const FAKE_PULUMI: &str = r#"
dir=.; stack=; cfg=; pos=; preview_only=
while [ $# -gt 0 ]; do
  case "$1" in
    --cwd) dir="$2"; shift 2;;
    --stack) stack="$2"; shift 2;;
    --config-file) cfg="$2"; shift 2;;
    --color|--message|--target) shift 2;;
    --plaintext) pos="$pos $2"; shift 2;;
    --preview-only) preview_only=1; shift;;
    --*) shift;;
    *) pos="$pos $1"; shift;;
  esac
done
[ -z "$cfg" ] && cfg="$dir/Pulumi.$stack.yaml"
F="$PILUM_FAKE_DIR"
set -- $pos
case "$1" in
  config)
    case "$2" in
      get)
        v=$(sed -n "s/^  $3: *\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$cfg" 2>/dev/null)
        if [ -z "$v" ]; then echo "error: configuration key '$3' not found for stack '$stack'" >&2; exit 255; fi
        printf '{"value": "%s", "secret": false}\n' "$v";;
      set-all)
        shift 2
        [ -f "$cfg" ] || printf 'config:\n' > "$cfg"
        for kv in "$@"; do
          k=${kv%%=*}; v=${kv#*=}
          if grep -q "^  $k:" "$cfg"; then sed -i "s/^  $k:.*/  $k: \"$v\"/" "$cfg"; else printf '  %s: "%s"\n' "$k" "$v" >> "$cfg"; fi
        done;;
      refresh) ;;
      *) echo "fake pulumi: unsupported config $2" >&2; exit 2;;
    esac;;
  up)
    [ -f "$F/up-sleep" ] && sleep "$(cat "$F/up-sleep")"
    n=$(cat "$F/up-lock" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ]; then
      echo $((n-1)) > "$F/up-lock"
      echo "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with \`pulumi cancel\`." >&2
      exit 255
    fi
    if [ -f "$F/up-fail" ]; then echo "error: update failed: provider returned 500" >&2; exit 255; fi
    cp "$cfg" "$F/applied.yaml"
    echo "Update succeeded";;
  refresh)
    urn="urn:pulumi:prod::infra::aws:autoscaling/group:Group::workers"
    if [ -n "$preview_only" ]; then
      if [ -f "$F/drift" ]; then
        printf '{"steps":[{"op":"update","urn":"%s","newState":{"outputs":{"desiredCapacity":%s}}}],"changeSummary":{"update":1}}\n' "$urn" "$(cat "$F/drift")"
      else
        printf '{"steps":[{"op":"same","urn":"%s"}],"changeSummary":{"same":1}}\n' "$urn"
      fi
    else
      rm -f "$F/drift"; touch "$F/refreshed"
    fi;;
  preview)
    [ -f "$F/preview-running" ] && touch "$F/preview-overlap"
    touch "$F/preview-running"
    [ -f "$F/preview-sleep" ] && sleep "$(cat "$F/preview-sleep")"
    rm -f "$F/preview-running"
    cp "$cfg" "$F/previewed.yaml"
    printf '{"steps":[{"op":"update","urn":"%s","diffReasons":["desiredCapacity"]}],"changeSummary":{"update":1,"same":4}}\n' "urn:pulumi:prod::infra::aws:autoscaling/group:Group::workers";;
  *) echo "fake pulumi: unsupported $1" >&2; exit 2;;
esac
"#;

/// A pools file with one pool `workers` on `infra`/`prod`; `extra` is appended to the pool.
pub(crate) fn pools_yaml(extra: &str) -> String {
    format!(
        "sns_topics: [\"{TOPIC}\"]\npools:\n  workers:\n    project: infra\n    stack: prod\n    key: infra:count\n    targets: [\"{URN}\"]\n    min: 1\n    max: 10\n    cooldown_up: 1h\n    cooldown_down: 1h\n{extra}"
    )
}

/// A project with the fake pulumi, the pools file and a stack file holding `count`.
pub(crate) fn project(pool_extra: &str, count: i64) -> Test {
    Test::new()
        .fake("pulumi", FAKE_PULUMI)
        .file("pilum-scale.yaml", &pools_yaml(pool_extra))
        .file("infra/Pulumi.yaml", "name: infra\nruntime: yaml\n")
        .file("infra/Pulumi.prod.yaml", &format!("config:\n  infra:count: \"{count}\"\n"))
}

/// The Alertmanager fixture (two firing alerts) without its `pool` label, so it can be sent to
/// the pool `workers`.
pub(crate) fn alert_without_pool() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/alertmanager-v4-firing.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
    .replace("\"pool\": \"worker-pool\",", "")
}

/// `t` set up to run `pilum scale serve` in the foreground (for starts that must fail), with
/// the fake pulumi's directory.
pub(crate) fn serve_once(t: Test) -> Test {
    let dir = t.path().to_path_buf();
    t.env("PILUM_FAKE_DIR", dir).args(SERVE_ARGS)
}

/// `pilum scale serve` on the test project's pools file and `state` dir, on a free port.
pub(crate) const SERVE_ARGS: [&str; 10] = [
    "scale",
    "serve",
    "--config",
    "pilum-scale.yaml",
    "--listen",
    "127.0.0.1:0",
    "--state-dir",
    "state",
    "--token",
    TOKEN,
];

/// A running `pilum scale serve`. Killed on drop if still running.
pub(crate) struct Server {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the server for `t` with `extra` flags; waits until it listens.
pub(crate) fn serve(t: &Test, extra: &[&str]) -> Server {
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ready = t.path().join(format!("ready-{n}"));
    let log = t.path().join(format!("server-{n}.log"));
    let mut cmd = t.command();
    cmd.args(["scale", "serve", "--config", "pilum-scale.yaml", "--listen", "127.0.0.1:0"]);
    if !extra.contains(&"--state-dir") {
        cmd.args(["--state-dir", "state"]);
    }
    cmd.arg("--ready-file").arg(&ready);
    cmd.args(["--token", TOKEN]);
    // Test defaults, unless the test sets the flag itself.
    for (flag, value) in
        [("--debounce", "100ms"), ("--retry-backoff", "300ms"), ("--lock-deadline", "30s")]
    {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    cmd.args(extra);
    cmd.env("PILUM_FAKE_DIR", t.path());
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd.stderr(std::fs::File::create(&log).expect("server log"));
    let child = cmd.spawn().expect("spawn pilum scale serve");
    let mut server = Server { child, addr: String::new(), log };
    let started = Instant::now();
    loop {
        if let Ok(a) = std::fs::read_to_string(&ready)
            && !a.is_empty()
        {
            server.addr = a.trim().to_string();
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited with {status} before listening:\n{}", server.logs());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An HTTP request; returns (status, headers, body).
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        http(&self.addr, method, path, headers, body)
    }

    /// A POST with the bearer token.
    pub(crate) fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, &[("Authorization", &format!("Bearer {TOKEN}"))], body)
    }

    pub(crate) fn get_json(&self, path: &str) -> Value {
        let r = self.request("GET", path, &[], "");
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        serde_json::from_str(&r.body).expect("JSON body")
    }

    pub(crate) fn pool(&self) -> Value {
        self.get_json("/pools/workers")
    }

    /// Wait until `cond` holds for the pool status (up to 20 s).
    pub(crate) fn wait_pool(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let p = self.pool();
            if cond(&p) {
                return p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}: {p:#}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send SIGTERM.
    pub(crate) fn terminate(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
    }

    /// Wait for exit (up to `secs`), returning the exit code.
    pub(crate) fn wait_exit(&mut self, secs: u64) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(secs),
                "server did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 client (one request per connection) so tests need no HTTP library.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to server");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Response { status, headers: head.to_ascii_lowercase(), body: body.to_string() }
}

/// Wait until `cond` holds, checking every 20 ms; fail naming `what` after `secs` seconds.
#[track_caller]
pub(crate) fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `pilum scale status --state-dir <t's state>` with `flags` first (e.g. `--json`).
pub(crate) fn status_of(t: &Test, flags: &[&str]) -> crate::common::Run {
    Test::new()
        .args(flags)
        .args(["scale", "status", "--state-dir"])
        .arg(t.path().join("state"))
        .run()
        .success()
}

/// The number of `pulumi up` calls so far.
pub(crate) fn ups(t: &Test) -> usize {
    t.calls("pulumi").iter().filter(|c| c.first().is_some_and(|a| a == "up")).count()
}

/// The audit log records of one event kind.
pub(crate) fn audit(t: &Test, event: &str) -> Vec<Value> {
    std::fs::read_to_string(t.path().join("state/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

/// The `infra:count` value in a stack file.
pub(crate) fn count_in(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.trim().strip_prefix("infra:count:").map(|v| v.trim().trim_matches('"').to_string())
    })
}
