//! Running one recipe end to end: a fixture project, fake CLIs that record their argv and
//! check it against the real tool's contract (`tests/fakes/contracts/`), a
//! `pilum dry-run --json` that must run nothing, then the real command; the merged, time-ordered
//! argv transcript of every fake (temp paths filtered) is what gets pinned.

use std::path::{Path, PathBuf};

use crate::common::{Run, Test};

/// The version every recipe test releases.
pub(crate) const TAG: &str = "v1.2.3";

/// One recipe scenario.
pub(crate) struct Case {
    pub name: &'static str,
    pub files: Vec<(&'static str, String)>,
    pub fakes: Vec<(&'static str, String)>,
    /// Recording wrappers around real tools on this machine (`git`, `dpkg-deb`, `rpmbuild`).
    pub reals: Vec<&'static str>,
    pub env: Vec<(&'static str, &'static str)>,
    /// `deploy` or `publish`.
    pub command: &'static str,
    /// Secret values that must not appear in pilum's output nor in any fake's argv.
    pub secrets: Vec<&'static str>,
    /// Secret values that must not appear in pilum's output, but that a tool only accepts as
    /// an argument (expanded by a shell, so pilum never shows them); `[SECRET]` in snapshots.
    pub argv_secrets: Vec<&'static str>,
    /// Bare git repositories created under `remote/<name>.git` (taps, buckets).
    pub repos: Vec<&'static str>,
}

impl Case {
    pub(crate) fn new(name: &'static str, pilum_yaml: &str) -> Self {
        Self {
            name,
            files: vec![("svc/pilum.yaml", pilum_yaml.to_string())],
            fakes: Vec::new(),
            reals: Vec::new(),
            env: Vec::new(),
            command: "deploy",
            secrets: Vec::new(),
            argv_secrets: Vec::new(),
            repos: Vec::new(),
        }
    }

    pub(crate) fn file(mut self, rel: &'static str, text: impl Into<String>) -> Self {
        self.files.push((rel, text.into()));
        self
    }

    /// A fake that records its argv, refuses it as the real tool would (its contract), and
    /// then runs `body`.
    pub(crate) fn fake(mut self, name: &'static str, body: impl Into<String>) -> Self {
        self.fakes.push((name, body.into()));
        self
    }

    /// A recording wrapper around the real tool of that name (found on `PATH` without the
    /// fakes); the real tool checks its own arguments.
    pub(crate) fn real(mut self, name: &'static str) -> Self {
        self.reals.push(name);
        self
    }

    pub(crate) fn env(mut self, k: &'static str, v: &'static str) -> Self {
        self.env.push((k, v));
        self
    }

    pub(crate) fn secret(mut self, k: &'static str, v: &'static str) -> Self {
        self.secrets.push(v);
        self.env(k, v)
    }

    /// A secret the tool can only take in its argv (see `argv_secrets`).
    pub(crate) fn argv_secret(mut self, k: &'static str, v: &'static str) -> Self {
        self.argv_secrets.push(v);
        self.env(k, v)
    }

    /// A bare repository `remote/<name>.git`, with one commit on `main`.
    pub(crate) fn repo(mut self, name: &'static str) -> Self {
        self.repos.push(name);
        self
    }

    pub(crate) fn command(mut self, c: &'static str) -> Self {
        self.command = c;
        self
    }

    /// The test project with files and fakes, not yet run.
    pub(crate) fn project(&self) -> Test {
        let mut t = Test::new();
        for (rel, text) in &self.files {
            let text = text.replace("[ROOT]", &t.path().display().to_string());
            t = t.file(rel, &text);
        }
        for (name, body) in &self.fakes {
            let body = body.replace("[ROOT]", &t.path().display().to_string());
            t = t.fake(name, &strict(name, &body));
        }
        for name in &self.reals {
            let body = real(name).replace("[ROOT]", &t.path().display().to_string());
            t = t.fake(name, &body);
        }
        for (k, v) in &self.env {
            t = t.env(*k, *v);
        }
        for name in &self.repos {
            bare_repo(&t, name);
        }
        t
    }

    /// Dry-run, then run the case; returns the project (for artefact checks), the run, and the
    /// pinned text: the deploy transcript followed by the dry-run's commands.
    pub(crate) fn run(&self) -> (Test, Run, String) {
        let t = self.project();

        let dry = run_with(&t, &["dry-run", "--json", "--tag", TAG, "-j", "1"]);
        assert_eq!(
            dry.status, 0,
            "dry-run of `{}` failed\n{}\n{}",
            self.name, dry.stdout, dry.stderr
        );
        let calls = t.path().join(".calls");
        let ran: Vec<String> = std::fs::read_dir(&calls)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(ran.is_empty(), "dry-run of `{}` ran {ran:?}", self.name);
        let dry_lines = dry_run_commands(&dry.stdout, t.path());
        assert!(
            !dry_lines.is_empty(),
            "dry-run of `{}` showed no commands:\n{}",
            self.name,
            dry.stdout
        );

        // `-v` streams every command's output too: secrets must not show up there either.
        let r = run_with(&t, &[self.command, "-v", "--tag", TAG, "-j", "1"]);
        assert_eq!(
            r.status, 0,
            "`pilum {}` of `{}` failed\n{}\n{}",
            self.command, self.name, r.stdout, r.stderr
        );
        let fakes: Vec<&str> =
            self.fakes.iter().map(|(n, _)| *n).chain(self.reals.iter().copied()).collect();
        let mut transcript = transcript(&t, &fakes);
        for s in self.secrets.iter().chain(&self.argv_secrets) {
            assert!(
                !r.stdout.contains(s) && !r.stderr.contains(s),
                "secret leaked into pilum's output:\n{}\n{}",
                r.stdout,
                r.stderr
            );
            assert!(
                !dry.stdout.contains(s) && !dry.stderr.contains(s),
                "secret leaked into the dry run:\n{}",
                dry.stdout
            );
        }
        for s in &self.secrets {
            assert!(!transcript.contains(s), "secret `{s}` reached a command line:\n{transcript}");
        }
        for s in &self.argv_secrets {
            transcript = transcript.replace(s, "[SECRET]");
        }

        // The dry run shows what the deploy runs: each command of a faked program it lists
        // (without placeholders for values only a real run can know) ran, in this order.
        let mut rest = transcript.lines();
        for line in &dry_lines {
            let Some(cmd) = line.split_once(": exec::run ").map(|(_, c)| c) else { continue };
            let program = cmd.split(' ').next().unwrap_or_default();
            if !fakes.contains(&program) || cmd.contains('<') {
                continue;
            }
            assert!(
                rest.any(|l| l == cmd),
                "`{}`: the dry run shows `{cmd}`, which the deploy did not run (in this order)\n--- transcript\n{transcript}",
                self.name
            );
        }

        let pinned = format!(
            "--- pilum {} --tag {TAG}\n{transcript}\n--- pilum dry-run\n{}\n",
            self.command,
            dry_lines.join("\n")
        );
        (t, r, pinned)
    }
}

/// The strict fake (`tests/fakes/strict.rs`), built next to the test binary as the example
/// `strict_fake` by `cargo test` and `cargo nextest`.
pub(crate) fn strict_fake() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("examples").join("strict_fake"))
        .expect("the test binary lives in <target>/<profile>/deps");
    assert!(
        bin.exists(),
        "the strict fake CLI `{}` is not built: `cargo test` and `cargo nextest run` build it; \
         alone, run `cargo build --example strict_fake`",
        bin.display()
    );
    bin
}

/// The contracts of the fake CLIs.
pub(crate) const CONTRACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fakes/contracts");

/// A fake's script body: check the argv against `name`'s contract (exit as the real tool
/// would when it refuses), then run `body` for the canned output.
pub(crate) fn strict(name: &str, body: &str) -> String {
    let contract = Path::new(CONTRACTS).join(format!("{name}.yaml"));
    assert!(
        contract.exists(),
        "the fake `{name}` has no contract: write {} from the tool's reference",
        contract.display()
    );
    format!("'{}' '{CONTRACTS}' {name} \"$@\" || exit $?\n{body}", strict_fake().display())
}

/// A recording wrapper around the real tool of the same name (found on `PATH` without the
/// fakes).
pub(crate) fn real(tool: &str) -> String {
    format!(r#"PATH="$(printf '%s' "$PATH" | sed 's|[ROOT]/.bin:||')" exec {tool} "$@""#)
}

pub(crate) fn run_with(t: &Test, args: &[&str]) -> Run {
    let out =
        t.command().args(args).stdin(std::process::Stdio::null()).output().expect("run pilum");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every fake's calls merged in time order, one `argv` per line, quoted like pilum shows
/// commands, with the project path replaced by `[ROOT]`.
pub(crate) fn transcript(t: &Test, fakes: &[&str]) -> String {
    let mut calls: Vec<(u128, String)> = Vec::new();
    for name in fakes {
        for (ts, argv) in t.timed_calls(name) {
            let mut full = vec![(*name).to_string()];
            full.extend(argv);
            calls.push((ts, show(&full)));
        }
    }
    calls.sort_by_key(|(ts, _)| *ts);
    let text = calls.into_iter().map(|(_, l)| l).collect::<Vec<_>>().join("\n");
    filter_root(&text, t.path())
}

/// The `task_dry_run` events of a `--json` run: `<task>: <call> <detail>`.
pub(crate) fn dry_run_commands(ndjson: &str, root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for line in ndjson.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not NDJSON ({e}): {line}"));
        if v["event"] != "task_dry_run" {
            continue;
        }
        let label = v["task"]["label"].as_str().unwrap_or_default();
        let call = v["call"].as_str().unwrap_or_default();
        let detail = v["detail"].as_str().unwrap_or_default();
        // `  (in <dir>)` is where the command would run; the transcript cannot show it.
        let detail = detail.split("  (in ").next().unwrap_or(detail);
        out.push(filter_root(&format!("{label}: {call} {detail}"), root));
    }
    out
}

pub(crate) fn filter_root(text: &str, root: &Path) -> String {
    let mut s = text.to_string();
    if let Ok(canon) = root.canonicalize() {
        s = s.replace(&canon.display().to_string(), "[ROOT]");
    }
    s.replace(&root.display().to_string(), "[ROOT]")
}

/// argv as pilum displays it.
pub(crate) use crate::common::display_argv as show;

/// SHA-256 of a file, by the system's `sha256sum` (an independent implementation).
pub(crate) fn sha256sum(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string()
}

/// A bare git repository with one commit on `main`, standing in for a tap or bucket; returns
/// its `file://` URL.
pub(crate) fn bare_repo(t: &Test, name: &str) -> String {
    let bare = t.path().join(format!("remote/{name}.git"));
    let seed = t.path().join(format!("remote/{name}-seed"));
    std::fs::create_dir_all(&seed).expect("create seed");
    std::fs::write(seed.join("README.md"), "tap\n").expect("write seed");
    let git = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    git(
        t.path(),
        &["clone", "-q", "--bare", seed.to_str().expect("utf-8"), bare.to_str().expect("utf-8")],
    );
    format!("file://{}", bare.display())
}

/// `git show <rev>:<path>` in a repository.
pub(crate) fn git_show(repo: &Path, spec: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["show", spec])
        .current_dir(repo)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git show {spec}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
