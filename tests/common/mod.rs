//! The `Test` builder shared by every integration module: a temporary project, files, fake
//! executables that record their argv, and a run of the real `pilum` binary.

#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Environment variables removed from every test run so a developer's real credentials or CI
/// settings never leak into a test.
const SCRUBBED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "AZURE_CLIENT_SECRET",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "PULUMI_ACCESS_TOKEN",
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_EVENT_PATH",
    "GITHUB_EVENT_NAME",
    "GITHUB_BASE_REF",
    "GITLAB_CI",
    "CI_COMMIT_BEFORE_SHA",
    "CI_MERGE_REQUEST_DIFF_BASE_SHA",
    "PILUM_SINCE",
    "CI",
    "NO_COLOR",
];

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// The result of running pilum.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(
            self.status, 0,
            "pilum failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.status, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("pilum-test").tempdir().expect("create temp dir");
        fs::create_dir_all(dir.path().join(".bin")).expect("create fake bin dir");
        Self { dir, args: Vec::new(), env: Vec::new(), cwd: None, stdin: None }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file relative to the project root, creating parent directories.
    pub fn file(self, rel: &str, contents: &str) -> Self {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("file has a parent")).expect("create parent dirs");
        fs::write(&p, contents).expect("write file");
        self
    }

    /// Install a fake executable `name` first on PATH. It appends one line to
    /// `.calls/<name>.log` per call: a timestamp (ns since epoch) then its argv, tab-separated,
    /// then runs `body` (a POSIX sh snippet) to produce canned output.
    pub fn fake(self, name: &str, body: &str) -> Self {
        let calls = self.path().join(".calls");
        fs::create_dir_all(&calls).expect("create calls dir");
        let script = format!(
            "#!/bin/sh\n{{ printf '%s' \"$(date +%s%N)\"; for a in \"$@\"; do printf '\\t%s' \"$a\"; done; printf '\\n'; }} >> '{log}'\n{body}\n",
            log = calls.join(format!("{name}.log")).display(),
        );
        let p = self.path().join(".bin").join(name);
        fs::write(&p, script).expect("write fake");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod fake");
        self
    }

    /// The recorded calls of a fake: one `Vec` of argv per call (timestamps dropped).
    pub fn calls(&self, name: &str) -> Vec<Vec<String>> {
        self.timed_calls(name).into_iter().map(|(_, argv)| argv).collect()
    }

    /// The recorded calls of a fake with their start timestamps in nanoseconds.
    pub fn timed_calls(&self, name: &str) -> Vec<(u128, Vec<String>)> {
        let log = self.path().join(".calls").join(format!("{name}.log"));
        let Ok(text) = fs::read_to_string(log) else { return Vec::new() };
        text.lines()
            .map(|l| {
                let mut parts = l.split('\t');
                let ts = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
                (ts, parts.map(str::to_string).collect())
            })
            .collect()
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Forget the arguments given so far (to run another command in the same project).
    pub fn clear_args(mut self) -> Self {
        self.args.clear();
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run from this directory (relative to the project root) instead of the root.
    pub fn cwd(mut self, rel: &str) -> Self {
        self.cwd = Some(self.path().join(rel));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// A `Command` for pilum with the test's environment, for tests that need to manage the
    /// child themselves (servers, signals).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pilum"));
        cmd.args(&self.args);
        cmd.current_dir(self.cwd.clone().unwrap_or_else(|| self.path().to_path_buf()));
        for k in SCRUBBED {
            cmd.env_remove(k);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.path().join(".bin")];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).expect("join PATH"));
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self) -> Run {
        let mut cmd = self.command();
        cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pilum");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            child.stdin.take().expect("stdin piped").write_all(input).expect("write stdin");
        }
        let Output { status, stdout, stderr } = child.wait_with_output().expect("wait for pilum");
        Run {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Run `git` for real in the project (tests use real git histories).
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "pilum")
            .env("GIT_AUTHOR_EMAIL", "pilum@example.com")
            .env("GIT_COMMITTER_NAME", "pilum")
            .env("GIT_COMMITTER_EMAIL", "pilum@example.com")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
