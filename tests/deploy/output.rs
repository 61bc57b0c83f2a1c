//! What pilum prints: secrets are masked in every mode (text, `-v`, `--json`, dry runs), and
//! colour is decided for stdout and stderr separately.

use super::project;

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
    // An unknown key makes a warning on stderr; the table header on stdout is bold.
    let t = project(0)
        .file("a/pilum.yaml", "name: a\nrecipe: shell\nshel: {}\nshell:\n  build: 'true'\n");
    let esc = '\u{1b}';

    // One stream to a file, the other on the terminal: (redirect, file, what the file holds,
    // what the terminal shows).
    for (redirect, file, in_file, on_terminal) in [
        ("> out.txt", "out.txt", "SERVICE", "warning"),
        ("2> err.txt", "err.txt", "warning", "SERVICE"),
    ] {
        let r = t.in_terminal(&format!("\"$PILUM\" list {redirect}"));
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
