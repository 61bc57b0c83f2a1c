//! Each picture opened in headless Chromium (Debian package `chromium`): the DOM it builds has
//! what the file says (one bar per task, every node and edge), the console stays silent (no
//! error, no refused load), and a PNG screenshot is written under
//! `target/test-artifacts/report/` for a person to look at. Without Chromium these tests fail.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{deploy, monorepo};

/// How long one Chromium run may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(90);

/// What Chromium printed and produced for one file.
struct Opened {
    dom: String,
    console: Vec<String>,
}

/// Run headless Chromium on `file` with `extra` flags; kill it (its process group) at the
/// deadline. Returns stdout and the console lines of stderr.
fn open(file: &Path, extra: &[&str]) -> Opened {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = profile.path().join("stdout");
    let err = profile.path().join("stderr");
    let mut cmd = crate::common::chromium(&profile.path().join("profile"));
    cmd.args(["--hide-scrollbars", "--enable-logging=stderr", "--v=0"])
        .args(extra)
        .arg(format!("file://{}", file.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start chromium: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for chromium") {
            break s;
        }
        if started.elapsed() > DEADLINE {
            let _ =
                Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.wait();
            panic!("chromium did not finish with {} within {DEADLINE:?}", file.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(status.success(), "chromium failed on {}: {status}\n{stderr}", file.display());
    let console = stderr
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Uncaught")
                || l.contains("Content Security Policy")
        })
        .map(str::to_string)
        .collect();
    Opened { dom: std::fs::read_to_string(&out).unwrap_or_default(), console }
}

/// Open `file`: check the console is silent, return its DOM, and write its screenshot.
fn look(file: &Path, name: &str, size: &str) -> String {
    let opened = open(file, &["--dump-dom"]);
    assert!(opened.console.is_empty(), "console output for {name}:\n{}", opened.console.join("\n"));
    assert!(!opened.dom.is_empty(), "no DOM for {name}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts/report");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let shot =
        open(file, &[&format!("--screenshot={}", png.display()), &format!("--window-size={size}")]);
    assert!(shot.console.is_empty(), "console output for {name}:\n{}", shot.console.join("\n"));
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot of {name}: {e}"));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 2000,
        "{name}: not a PNG of a page"
    );
    println!("screenshot of {name}: {}", png.display());
    opened.dom
}

#[test]
fn the_run_report_opens_in_chromium() {
    let t = deploy(monorepo());
    let dom = look(&t.path().join("run.html"), "run-report", "1300,900");
    assert_eq!(dom.matches("<g class=\"bar ").count(), 13, "one bar per task in the DOM");
    assert_eq!(dom.matches("class=\"barrier\"").count(), 3);
    assert!(dom.contains("id=\"status\">failed<"));
}

#[test]
fn the_graph_opens_in_chromium() {
    let t = super::graph::project().args([
        "graph",
        "--format",
        "html",
        "--only-changed",
        "--since",
        "HEAD",
    ]);
    let html = t.run().success().stdout;
    std::fs::write(t.path().join("graph.html"), &html).unwrap();
    let dom = look(&t.path().join("graph.html"), "graph-html", "1100,700");
    assert_eq!(dom.matches("<g class=\"node ").count(), 7);
    assert_eq!(dom.matches("<path class=\"edge").count(), 5);
    let t = t.clear_args().args(["graph", "--format", "svg", "--only-changed", "--since", "HEAD"]);
    let svg = t.run().success().stdout;
    std::fs::write(t.path().join("graph.svg"), &svg).unwrap();
    let dom = look(&t.path().join("graph.svg"), "graph-svg", "1100,500");
    assert_eq!(dom.matches("class=\"node ").count(), 7, "{dom}");
}
