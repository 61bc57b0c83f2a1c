//! What pilum prints: secrets are masked in every mode (text, `-v`, `--json`, dry runs),
//! colour is decided for stdout and stderr separately, and the terminal view (read back from a
//! real pseudo-terminal) shows phases, progress and the queue, and clears itself on Ctrl-C.

use std::time::Duration;

use super::{project, shell_service};
use crate::common::{screen, wait_until};

const SECRET: &str = "sekrit-token-4711";

#[test]
fn listed_secrets_are_masked_in_every_output_mode() {
    let body = "name: a\nrecipe: shell\nsecrets: [API_TOKEN]\nshell:\n  build: echo token ${API_TOKEN}; step a build ${API_TOKEN}\n";
    let mut t = project(0).file("a/pilum.yaml", body).env("API_TOKEN", SECRET);
    let modes: &[(&[&str], bool)] = &[
        // (arguments, whether the masked value must show up as `***`)
        (&["--json", "plan"], true),
        (&["--json", "deploy"], true),
        (&["--json", "deploy", "--dry-run"], true),
        (&["--json", "-v", "deploy"], true),
        (&["deploy", "--dry-run"], true),
        (&["-v", "deploy"], true),
        (&["plan"], false),
        (&["deploy"], false),
        (&["check"], false),
        (&["list", "--json"], false),
    ];
    for (args, shown) in modes {
        t = t.clear_args().args(*args);
        let r = t.run().success();
        for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !text.contains(SECRET),
                "`pilum {}` printed the secret on {name}:\n{text}",
                args.join(" ")
            );
        }
        if *shown {
            assert!(
                r.stdout.contains("***") || r.stderr.contains("***"),
                "`pilum {}` did not print the masked value\n--- stdout\n{}\n--- stderr\n{}",
                args.join(" "),
                r.stdout,
                r.stderr
            );
        }
    }
    // The secret reached the step unmasked: only output is masked.
    assert!(t.calls("step").iter().all(|c| c == &["a", "build", SECRET]), "{:?}", t.calls("step"));
}

#[test]
fn colour_is_decided_for_each_stream() {
    // Naming a service without its dependency makes a warning on stderr; the table header on
    // stdout is bold.
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shell\ndepends_on: [b]\nshell:\n  build: 'true'\n")
        .file("b/pilum.yaml", "name: b\nrecipe: shell\nshell:\n  build: 'true'\n");
    let esc = '\u{1b}';

    // One stream to a file, the other on the terminal: (redirect, file, what the file holds,
    // what the terminal shows).
    for (redirect, file, in_file, on_terminal) in [
        ("> out.txt", "out.txt", "SERVICE", "warning"),
        ("2> err.txt", "err.txt", "warning", "SERVICE"),
    ] {
        let r = t.in_terminal(&format!("\"$PILUM\" list a {redirect}"));
        assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
        let text = std::fs::read_to_string(t.path().join(file)).expect("redirected output");
        assert!(text.contains(in_file) && !text.contains(esc), "escape codes in {file}: {text:?}");
        assert!(
            r.stdout.contains(on_terminal) && r.stdout.contains(esc),
            "no colour on the terminal with `{redirect}`: {:?}",
            r.stdout
        );
    }

    // `--color never` and `NO_COLOR` win over the terminal.
    let r = t.in_terminal("\"$PILUM\" --color never list");
    assert!(r.stdout.contains("SERVICE") && !r.stdout.contains(esc), "{:?}", r.stdout);
    let r = t.in_terminal("NO_COLOR=1 \"$PILUM\" list");
    assert!(r.stdout.contains("SERVICE") && !r.stdout.contains(esc), "{:?}", r.stdout);
}

/// What a terminal shows while a deploy runs and after Ctrl-C, from a real pseudo-terminal:
/// the phase header, the overall row (phase, N of M, running and queued tasks by name), one row
/// per running task; after Ctrl-C no row is left and the interrupted task says so.
#[test]
fn the_terminal_shows_phases_progress_and_the_queue_and_clears_on_ctrl_c() {
    let t = project(0)
        .file(
            "a/pilum.yaml",
            "name: a\nrecipe: shell\nshell:\n  build: echo $$ > pid; exec sleep 1000\n  push: step a push\n",
        )
        .file("b/pilum.yaml", &shell_service("b", &[]))
        .file("c/pilum.yaml", &shell_service("c", &[]));
    let mut term = t.pty("exec \"$PILUM\" deploy -j 1");
    let pid_file = t.path().join("a/pid");
    let pid_written = || std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'));
    wait_until("a/build to start", Duration::from_secs(20), pid_written);
    let shows = |s: &str| screen(&term.output(), 100).contains(s);
    wait_until("the queue on the screen", Duration::from_secs(20), || shows("2 queued"));
    let live = screen(&term.output(), 100);
    for part in [
        "==> build (3 tasks)",
        "phase 1/3 build",
        "0/8 tasks",
        "1 running · 2 queued: b/build, c/build",
    ] {
        assert!(live.contains(part), "`{part}` is not on the screen:\n{live}");
    }
    // The running task's row: spinner, time, label.
    assert!(live.lines().any(|l| l.starts_with("  ") && l.ends_with("s a/build")), "{live}");

    term.send(b"\x03");
    let r = term.wait(Duration::from_secs(30));
    let end = screen(&r.stdout, 100);
    assert_eq!(r.status, 130, "{end}");
    assert!(
        !end.contains("running") && !end.contains("queued"),
        "a live row stayed on the screen:\n{end}"
    );
    assert!(end.contains("a/build interrupted"), "{end}");
    assert!(!end.contains("a/build failed") && !end.contains("failures:"), "{end}");
    assert!(end.contains("deploy: interrupted") && end.contains("1 interrupted"), "{end}");
    let pid = std::fs::read_to_string(pid_file).expect("pid");
    assert!(crate::common::gone(&pid), "the step survived Ctrl-C");
}
