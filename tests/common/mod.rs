//! The `Test` builder shared by every integration module: a temporary project, files, fake
//! executables that record their argv, and a run of the real `pilum` binary.

pub(crate) mod receiver;
pub(crate) mod redis;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    "GITHUB_WORKSPACE",
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

pub(crate) struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// The result of running pilum.
pub(crate) struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn success(self) -> Self {
        assert_eq!(
            self.status, 0,
            "pilum failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn code(self, code: i32) -> Self {
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
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("pilum-test").tempdir().expect("create temp dir");
        fs::create_dir_all(dir.path().join(".bin")).expect("create fake bin dir");
        Self { dir, args: Vec::new(), env: Vec::new(), cwd: None, stdin: None }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file relative to the project root, creating parent directories.
    pub(crate) fn file(self, rel: &str, contents: &str) -> Self {
        self.write(rel, contents);
        self
    }

    /// [`Test::file`] on a borrowed test: change a file between two runs.
    pub(crate) fn write(&self, rel: &str, contents: &str) {
        let p = self.path().join(rel);
        fs::create_dir_all(p.parent().expect("file has a parent")).expect("create parent dirs");
        fs::write(&p, contents).expect("write file");
    }

    /// Install a fake executable `name` first on PATH. Each call records itself, then runs
    /// `body` (a POSIX sh snippet) to produce canned output.
    ///
    /// A call's record is its own file, `.calls/<name>.<ns>-<pid>.call`: the start timestamp
    /// (ns since epoch) then each argument, each ended by a NUL byte, so any argument (tabs,
    /// newlines, empty) reads back as it was. It is written under a hidden temporary name and
    /// renamed into place, so calls running in parallel never mix their records and a reader
    /// only ever sees complete ones (see [`Test::timed_calls`]).
    pub(crate) fn fake(self, name: &str, body: &str) -> Self {
        let calls = self.path().join(".calls");
        fs::create_dir_all(&calls).expect("create calls dir");
        let dir = calls.display();
        let script = format!(
            r#"#!/bin/sh
pilum_call="$(date +%s%N)-$$"
printf '%s\0' "${{pilum_call%-*}}" "$@" > '{dir}/.{name}.'"$pilum_call"'.tmp' \
  && mv -f '{dir}/.{name}.'"$pilum_call"'.tmp' '{dir}/{name}.'"$pilum_call"'.call'
unset pilum_call
{body}
"#,
        );
        let p = self.path().join(".bin").join(name);
        fs::write(&p, script).expect("write fake");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod fake");
        self
    }

    /// The recorded calls of a fake: one `Vec` of argv per call (timestamps dropped).
    pub(crate) fn calls(&self, name: &str) -> Vec<Vec<String>> {
        self.timed_calls(name).into_iter().map(|(_, argv)| argv).collect()
    }

    /// Forget what the fake `name` recorded so far (other files in `.calls/` stay).
    pub(crate) fn forget_calls(&self, name: &str) {
        for (_, _, file) in self.call_files(name) {
            let _ = fs::remove_file(file);
        }
    }

    /// The recorded calls of a fake with their start timestamps in nanoseconds, in the order
    /// they started. Only complete records are read: one still being written has its
    /// temporary name.
    pub(crate) fn timed_calls(&self, name: &str) -> Vec<(u128, Vec<String>)> {
        self.call_files(name)
            .into_iter()
            .map(|(ts, _, file)| {
                let bytes = fs::read(&file).expect("read a complete call record");
                let mut fields: Vec<String> = bytes
                    .split(|b| *b == 0)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                assert_eq!(
                    fields.pop().as_deref(),
                    Some(""),
                    "the record {} ends with a NUL",
                    file.display()
                );
                assert_eq!(
                    fields.first().map(String::as_str),
                    Some(ts.to_string().as_str()),
                    "the record {} starts with its timestamp",
                    file.display()
                );
                (ts, fields.split_off(1))
            })
            .collect()
    }

    /// The complete record files of the fake `name`, as (timestamp, pid, path), sorted.
    fn call_files(&self, name: &str) -> Vec<(u128, u32, PathBuf)> {
        let Ok(dir) = fs::read_dir(self.path().join(".calls")) else { return Vec::new() };
        let prefix = format!("{name}.");
        let mut files: Vec<_> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let file = e.file_name();
                let id = file.to_str()?.strip_prefix(&prefix)?.strip_suffix(".call")?;
                let (ts, pid) = id.split_once('-')?;
                Some((ts.parse().ok()?, pid.parse().ok()?, e.path()))
            })
            .collect();
        files.sort();
        files
    }

    pub(crate) fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Forget the arguments given so far (to run another command in the same project).
    pub(crate) fn clear_args(mut self) -> Self {
        self.args.clear();
        self
    }

    pub(crate) fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run from this directory (relative to the project root) instead of the root.
    pub(crate) fn cwd(mut self, rel: &str) -> Self {
        self.cwd = Some(self.path().join(rel));
        self
    }

    #[expect(dead_code, reason = "part of the builder; no test pipes stdin today")]
    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// A `Command` for pilum with the test's environment, for tests that need to manage the
    /// child themselves (servers, signals).
    pub(crate) fn command(&self) -> Command {
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

    /// Run `shell` (a POSIX sh command line) under a pseudo-terminal, with `$PILUM` naming the
    /// pilum binary, the test's environment, `TERM=xterm` and no `NO_COLOR`: what a user at a
    /// terminal gets. The terminal's output (whatever the command did not redirect) is `stdout`.
    /// Needs `script` from util-linux.
    pub(crate) fn in_terminal(&self, shell: &str) -> Run {
        let mut cmd = self.script(shell);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("cannot run `script` (util-linux), needed for terminal tests: {e}")
        });
        Run {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `script` (util-linux) running `shell` in a pseudo-terminal with the test's environment,
    /// `$PILUM`, `TERM=xterm` and no `NO_COLOR`; its exit status is the shell's.
    fn script(&self, shell: &str) -> Command {
        let mut cmd = Command::new("script");
        cmd.args(["-qefc", shell, "/dev/null"]);
        let pilum = self.command();
        cmd.current_dir(pilum.get_current_dir().expect("pilum runs in a directory"));
        for (k, v) in pilum.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env_remove("NO_COLOR").env("TERM", "xterm").env("PILUM", env!("CARGO_BIN_EXE_pilum"));
        cmd
    }

    /// Start `shell` like [`Test::in_terminal`], in a pseudo-terminal of 100 × 40 characters
    /// whose keyboard is [`Pty::send`]: bytes go to the terminal as typed (`\x03` is Ctrl-C).
    /// Needs `script` from util-linux.
    pub(crate) fn pty(&self, shell: &str) -> Pty {
        let mut cmd = self.script(&format!("stty cols 100 rows 40; {shell}"));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run `script` (util-linux), needed for terminal tests: {e}")
        });
        let stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = child.stdout.take().expect("stdout piped");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("pty output lock").extend_from_slice(&buf[..n]);
            }
        });
        Pty { child, stdin: Some(stdin), seen, reader: Some(reader) }
    }

    pub(crate) fn run(&self) -> Run {
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
    pub(crate) fn git(&self, args: &[&str]) -> String {
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

/// Wait until `cond` holds, checking every 10 ms; fail the test, naming `what`, if it does
/// not within `within`.
#[track_caller]
pub(crate) fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The path of `name` on `PATH`. A test that needs a real tool fails without it, naming the
/// Debian package (`.ci/test` installs it); it never passes without doing its check.
#[track_caller]
pub(crate) fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: this test needs it (Debian package: {package}; `.ci/test` installs it)"
        )
    })
}

/// Headless Chromium (Debian package `chromium`) with the flags every test opens a page with
/// and a profile of its own in `profile`: no GPU, no sandbox, no background network, no
/// first run. Fails naming the package when it is not installed.
pub(crate) fn chromium(profile: &Path) -> Command {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(|name| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
        })
        .unwrap_or_else(|| tool("chromium", "chromium"));
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Whether process `pid` is running (a zombie counts as ended).
pub(crate) fn alive(pid: &str) -> bool {
    let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    stat.is_ok_and(|s| !s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

/// Whether process `pid` ends within a few seconds. A SIGKILLed process exits
/// asynchronously, so this polls.
#[track_caller]
pub(crate) fn gone(pid: &str) -> bool {
    let pid = pid.trim();
    assert!(!pid.is_empty(), "no pid recorded");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Copy the tree `from` into `to`, leaving out entries named in `skip` at any depth.
pub(crate) fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &dest, skip);
        } else {
            fs::copy(entry.path(), dest).expect("copy file");
        }
    }
}

/// argv as pilum displays it (`process::display_argv`): words with only safe characters as
/// they are, anything else single-quoted.
pub(crate) fn display_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A program running in a pseudo-terminal ([`Test::pty`]).
pub(crate) struct Pty {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    /// Type `bytes` on the terminal's keyboard.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("the terminal is open");
        stdin.write_all(bytes).expect("type on the terminal");
        stdin.flush().expect("type on the terminal");
    }

    /// Everything written to the terminal so far, escape codes included.
    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("pty output lock")).into_owned()
    }

    /// Wait for the program to end (failing the test after `within`, once it is stopped) and
    /// return its exit status and everything it wrote to the terminal (`stdout`).
    #[track_caller]
    pub(crate) fn wait(mut self, within: Duration) -> Run {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for the terminal") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "gave up after {within:?} waiting for the terminal:\n{}",
                    strip_ansi(&self.output())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        drop(self.stdin.take());
        if let Some(r) = self.reader.take() {
            r.join().expect("pty reader");
        }
        Run { status: status.code().unwrap_or(-1), stdout: self.output(), stderr: String::new() }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `text` without ANSI escape sequences (colours, cursor movement): every character that was
/// ever drawn, in order.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next_if_eq(&'[').is_some() {
            // Parameters, then one final byte in `@`..=`~`.
            for p in chars.by_ref() {
                if ('@'..='~').contains(&p) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

/// What a terminal `width` columns wide shows after `text` was written to it: the lines left on
/// the screen (scrolled-off lines included), trailing spaces trimmed. Understands what console
/// and indicatif write: printable text with automatic wrapping at the last column, `\r`, `\n`,
/// backspace, cursor up/down/left/right/column, erase in line and below, colours (ignored).
pub(crate) fn screen(text: &str, width: usize) -> String {
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col, mut wrap) = (0usize, 0usize, false);
    let mut chars = text.chars().peekable();
    let ensure = |rows: &mut Vec<Vec<char>>, row: usize| {
        while rows.len() <= row {
            rows.push(Vec::new());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\r' => (col, wrap) = (0, false),
            '\n' => {
                row += 1;
                wrap = false;
                ensure(&mut rows, row);
            }
            '\u{8}' => (col, wrap) = (col.saturating_sub(1), false),
            '\u{1b}' => {
                if chars.next_if_eq(&'[').is_none() {
                    chars.next();
                    continue;
                }
                let mut params = String::new();
                let mut fin = ' ';
                for p in chars.by_ref() {
                    if ('@'..='~').contains(&p) {
                        fin = p;
                        break;
                    }
                    params.push(p);
                }
                let n = params.trim_start_matches('?').parse::<usize>().ok();
                match fin {
                    'A' => row = row.saturating_sub(n.unwrap_or(1)),
                    'B' => {
                        row += n.unwrap_or(1);
                        ensure(&mut rows, row);
                    }
                    'C' => col = (col + n.unwrap_or(1)).min(width - 1),
                    'D' => col = col.saturating_sub(n.unwrap_or(1)),
                    'G' => col = n.unwrap_or(1).saturating_sub(1),
                    'K' => match n.unwrap_or(0) {
                        0 => rows[row].truncate(col),
                        1 => rows[row].iter_mut().take(col + 1).for_each(|x| *x = ' '),
                        _ => rows[row].clear(),
                    },
                    'J' => {
                        rows[row].truncate(col);
                        rows.truncate(row + 1);
                    }
                    _ => {}
                }
                if matches!(fin, 'A' | 'B' | 'C' | 'D' | 'G') {
                    wrap = false;
                }
            }
            c if c.is_control() => {}
            c => {
                if wrap {
                    row += 1;
                    col = 0;
                    wrap = false;
                    ensure(&mut rows, row);
                }
                let line = &mut rows[row];
                while line.len() < col {
                    line.push(' ');
                }
                if line.len() == col {
                    line.push(c);
                } else {
                    line[col] = c;
                }
                if col + 1 == width {
                    wrap = true;
                } else {
                    col += 1;
                }
            }
        }
    }
    let mut lines: Vec<String> =
        rows.iter().map(|r| r.iter().collect::<String>().trim_end().to_string()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::Test;
    use std::process::{Command, Stdio};

    /// The argv of concurrent call `i`: many arguments (so the writes of racing calls have
    /// room to interleave) and the separators a line-based record would split on.
    fn argv(i: usize) -> Vec<String> {
        let mut argv = vec!["run".to_string(), "deploy".to_string(), format!("call-{i}")];
        argv.extend((0..24).map(|k| format!("--flag-{k}=value-{i}-{k}")));
        argv.extend(["two words".into(), "a\ttab".into(), "a\nnewline".into(), String::new()]);
        argv
    }

    /// Many fake calls at once: every one is read back whole, exactly once, with its argv
    /// byte for byte.
    #[test]
    fn concurrent_fake_calls_are_each_recorded_whole() {
        let t = Test::new().fake("rec", ":");
        let bin = t.path().join(".bin/rec");
        let n = 48;
        let mut children: Vec<_> = (0..n)
            .map(|i| {
                Command::new(&bin)
                    .args(argv(i))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start the fake")
            })
            .collect();
        for c in &mut children {
            assert!(c.wait().expect("wait for the fake").success(), "the fake failed");
        }
        let mut calls = t.calls("rec");
        assert_eq!(calls.len(), n, "one record per call: {calls:#?}");
        calls.sort_by_key(|a| a.get(2).cloned());
        let mut want: Vec<_> = (0..n).map(argv).collect();
        want.sort_by_key(|a| a.get(2).cloned());
        assert_eq!(calls, want);
    }

    /// A record still being written is not read back; [`Test::forget_calls`] empties the
    /// record of one fake only.
    #[test]
    fn calls_read_only_complete_records_and_forget_one_fake() {
        let t = Test::new().fake("a", ":").fake("ab", ":");
        for (bin, arg) in [("a", "one"), ("ab", "two")] {
            let ok = Command::new(t.path().join(".bin").join(bin)).arg(arg).status();
            assert!(ok.expect("run the fake").success());
        }
        std::fs::write(t.path().join(".calls/.a.1-1.tmp"), "1\0half").expect("write");
        assert_eq!(t.calls("a"), vec![vec!["one".to_string()]]);
        assert_eq!(t.calls("ab"), vec![vec!["two".to_string()]]);
        t.forget_calls("a");
        assert!(t.calls("a").is_empty());
        assert_eq!(t.calls("ab"), vec![vec!["two".to_string()]]);
    }
}
