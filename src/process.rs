//! The one way pilum runs a child process (see the layers in `src/README.md`).
//!
//! Every child gets an argv (never a shell string unless the caller builds `sh -c` itself), its
//! own process group (so a timeout or Ctrl-C reaches the whole tree, not just the leader), stdin
//! from `/dev/null`, and both output pipes always drained: lines are redacted, streamed to a
//! callback and captured, and the last lines are kept for error messages. A child that prints
//! megabytes never stalls.
//!
//! [`Command::run`] waits for the child, draining its pipes with `poll(2)` on the calling thread.
//! Timeouts and cancellation stop it politely: SIGINT to the group (Pulumi releases its lock on
//! SIGINT), then SIGKILL after [`GRACE`]. When a command exits, whatever it left running in its group (`cmd &`) is killed: no
//! child outlives the call that started it. A [`CancelToken`] can be triggered from any thread.
//!
//! The file reads top to bottom: cancellation, errors and results, [`Command`], the timeout
//! policy and line draining, [`Child`], Ctrl-C handling, `PATH` lookup, then the tests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::redact;
use crate::sync::LockExt;

/// Far enough to mean "never" for deadlines and sleeps, near enough for `Instant` arithmetic.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How many trailing lines of output are kept for error messages.
pub(crate) const TAIL_LINES: usize = 20;

/// Captured output beyond this many bytes per stream is dropped (still streamed).
const CAPTURE_LIMIT: usize = 64 << 20;

/// How long a stopped child group gets between SIGINT and SIGKILL: long enough for a well-behaved
/// tool (Pulumi releases its stack lock on SIGINT) to clean up, short enough for Ctrl-C to feel
/// immediate.
pub(crate) const GRACE: Duration = Duration::from_secs(3);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Receives every output line of a child, already redacted, without the trailing newline.
pub(crate) type LineFn = Arc<dyn Fn(Stream, &str) + Send + Sync>;

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

/// A cancellation flag shared between threads. `cancel()` marks it, wakes sleepers, and sends
/// SIGINT (then SIGKILL after [`GRACE`]) to every child process group currently registered, so
/// a script blocked on a command returns promptly. SIGINT first: it is what the terminal would
/// have sent had the children not been in their own groups.
#[derive(Clone, Default)]
pub(crate) struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    next_id: AtomicU64,
    groups: Mutex<HashMap<u64, i32>>,
    wake: Condvar,
    wake_lock: Mutex<()>,
    /// Tokens made with [`CancelToken::child`]: cancelled with this one.
    children: Mutex<Vec<std::sync::Weak<CancelInner>>>,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

impl CancelToken {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Relaxed)
    }

    /// Cancel: idempotent, callable from any thread (e.g. a Ctrl-C handler thread).
    /// A token cancelled when this one is (Ctrl-C stops every task) that can also be cancelled
    /// on its own (one task's timeout stops only that task).
    #[cfg_attr(not(test), expect(dead_code, reason = "public API for the orchestrator"))]
    pub(crate) fn child(&self) -> CancelToken {
        let child = CancelToken::new();
        // Checked under the lock `cancel` takes to set the flag, so no child is ever missed.
        let mut children = self.inner.children.locked();
        if self.is_cancelled() {
            drop(children);
            child.cancel();
            return child;
        }
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&child.inner));
        child
    }

    pub(crate) fn cancel(&self) {
        Self::cancel_inner(&self.inner);
    }

    fn cancel_inner(inner: &Arc<CancelInner>) {
        let children: Vec<_> = {
            let mut children = inner.children.locked();
            if inner.cancelled.swap(true, Ordering::SeqCst) {
                return;
            }
            children.drain(..).collect()
        };
        for c in children.iter().filter_map(std::sync::Weak::upgrade) {
            Self::cancel_inner(&c);
        }
        CancelToken { inner: inner.clone() }.stop_children();
    }

    /// Wake sleepers and signal the registered process groups (the flag is already set).
    fn stop_children(&self) {
        {
            let _guard = self.inner.wake_lock.locked();
            self.inner.wake.notify_all();
        }
        let groups: Vec<i32> = self.groups();
        if groups.is_empty() {
            return;
        }
        for &pgid in &groups {
            signal_group(pgid, libc::SIGINT);
        }
        let inner = self.inner.clone();
        // Escalate for children that ignore SIGINT; the waiter returns once they are gone.
        std::thread::spawn(move || {
            std::thread::sleep(GRACE);
            let left: Vec<i32> = inner.groups.locked().values().copied().collect();
            for pgid in left {
                signal_group(pgid, libc::SIGKILL);
            }
        });
    }

    /// Sleep for `dur` unless cancelled first. Returns `false` when cancelled.
    pub(crate) fn sleep(&self, dur: Duration) -> bool {
        let end = Instant::now() + dur.min(FAR_FUTURE);
        let mut guard = self.inner.wake_lock.locked();
        loop {
            if self.is_cancelled() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            guard = self
                .inner
                .wake
                .wait_timeout(guard, end - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn groups(&self) -> Vec<i32> {
        self.inner.groups.locked().values().copied().collect()
    }

    fn register(&self, pgid: i32) -> u64 {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.groups.locked().insert(id, pgid);
        // Cancelled between the check and the spawn: the new group must not outlive it.
        if self.is_cancelled() {
            signal_group(pgid, libc::SIGKILL);
        }
        id
    }

    fn unregister(&self, id: u64) {
        self.inner.groups.locked().remove(&id);
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: killpg only sends a signal; a stale group id yields ESRCH, which is fine.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------------------------

/// Why running a child failed. Wording lives in `Display`.
#[derive(Debug)]
pub(crate) enum ProcessError {
    /// The argv was empty.
    Empty,
    /// The program is not on `PATH`.
    NotFound { program: String },
    /// The working directory does not exist.
    NoDir { program: String, dir: PathBuf },
    /// Spawning failed for another reason.
    Spawn { program: String, source: std::io::Error },
    /// The timeout (or the caller's deadline) passed; the group was killed.
    TimedOut { argv: Vec<String>, after: Duration, tail: Vec<String> },
    /// The cancel token fired; the group was killed.
    Cancelled { argv: Vec<String> },
    /// The child exited unsuccessfully (only from [`Finished::check`]).
    Failed { argv: Vec<String>, code: Option<i32>, signal: Option<i32>, tail: Vec<String> },
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Empty => f.write_str("empty command: the argv array has no program"),
            ProcessError::NotFound { program } => write!(
                f,
                "command `{program}` not found\nhelp: install `{program}` or add it to `PATH`"
            ),
            ProcessError::NoDir { program, dir } => write!(
                f,
                "cannot run `{program}` in `{}`: the directory does not exist",
                dir.display()
            ),
            ProcessError::Spawn { program, source } => {
                write!(f, "cannot start `{program}`: {source}")
            }
            ProcessError::TimedOut { argv, after, tail } => {
                write!(f, "command `{}` timed out after {}", display_argv(argv), secs(*after))?;
                write_tail(f, tail)
            }
            ProcessError::Cancelled { argv } => {
                write!(f, "command `{}` was cancelled", display_argv(argv))
            }
            ProcessError::Failed { argv, code, signal, tail } => {
                match (code, signal) {
                    (Some(c), _) => {
                        write!(f, "command `{}` failed with exit code {c}", display_argv(argv))?;
                    }
                    (None, Some(s)) => {
                        write!(f, "command `{}` was killed by signal {s}", display_argv(argv))?;
                    }
                    (None, None) => write!(f, "command `{}` failed", display_argv(argv))?,
                }
                write_tail(f, tail)
            }
        }
    }
}

impl std::error::Error for ProcessError {}

fn write_tail(f: &mut fmt::Formatter<'_>, tail: &[String]) -> fmt::Result {
    if tail.is_empty() {
        return Ok(());
    }
    f.write_str("\n  last output lines:")?;
    for l in tail {
        write!(f, "\n  | {l}")?;
    }
    Ok(())
}

/// Human form of a duration for messages: `3s`, `1.5s`, `250ms`.
pub(crate) fn secs(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// An argv joined for humans, quoting words that need it, secrets masked. A shell line that
/// is itself a `sh -c …` command is shown as written, not quoted inside a second `sh -c`.
pub(crate) fn display_argv(argv: &[String]) -> String {
    if let [sh, c, line] = argv
        && sh == "sh"
        && c == "-c"
        && line.trim_start().starts_with("sh -c ")
    {
        return redact::redact(line.trim()).into_owned();
    }
    let joined = argv
        .iter()
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
        .join(" ");
    redact::redact(&joined).into_owned()
}

/// A child that ran to completion (successfully or not).
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub argv: Vec<String>,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The last lines of stderr (or of stdout when stderr was empty), redacted.
    pub tail: Vec<String>,
    pub duration: Duration,
}

impl Finished {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `Ok` on exit code 0, otherwise [`ProcessError::Failed`] with the tail.
    pub(crate) fn check(self) -> Result<Finished, ProcessError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ProcessError::Failed {
                argv: self.argv,
                code: self.code,
                signal: self.signal,
                tail: self.tail,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Command
// ---------------------------------------------------------------------------------------------

/// A child to run. Build with [`Command::new`], then [`run`](Command::run).
#[derive(Clone)]
pub(crate) struct Command {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    timeout: Option<Duration>,
    deadline: Option<(Instant, Duration)>,
    cancel: Option<CancelToken>,
    on_line: Option<LineFn>,
    stdin: Option<Vec<u8>>,
    grace: Duration,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command").field("argv", &display_argv(&self.argv)).finish()
    }
}

impl Command {
    pub(crate) fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            dir: None,
            timeout: None,
            deadline: None,
            cancel: None,
            on_line: None,
            stdin: None,
            grace: GRACE,
        }
    }

    /// On timeout the group gets SIGINT, then SIGKILL after `grace` (default [`GRACE`]).
    #[cfg_attr(not(test), expect(dead_code, reason = "public API for the orchestrator"))]
    pub(crate) fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub(crate) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub(crate) fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(vars);
        self
    }

    pub(crate) fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Kill the group after this long (reported as "timed out after …").
    pub(crate) fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// An outer deadline (a task's or script's); `after` is the budget it stands for, used in
    /// the "timed out after …" message.
    pub(crate) fn deadline(mut self, at: Instant, after: Duration) -> Self {
        self.deadline = Some((at, after));
        self
    }

    pub(crate) fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    pub(crate) fn on_line(mut self, f: LineFn) -> Self {
        self.on_line = Some(f);
        self
    }

    pub(crate) fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// The earliest of the timeout and the deadline, with the budget it stands for.
    fn effective_deadline(&self, start: Instant) -> Option<(Instant, Duration)> {
        let t = self.timeout.map(|d| (start + d.min(FAR_FUTURE), d));
        match (t, self.deadline) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Run to completion. A non-zero exit is *not* an error here (see [`Finished::check`]);
    /// timeouts and cancellation are.
    pub(crate) fn run(self) -> Result<Finished, ProcessError> {
        let start = Instant::now();
        let deadline = self.effective_deadline(start);
        let cancel = self.cancel.clone();
        let grace = self.grace;
        let on_line = self.on_line.clone();
        let (child, out_r, err_r) = self.start()?;
        // Drain both pipes on this thread with poll(2), not on helper threads: two thread spawns
        // cost a sizeable fraction of spawning `true`, and this is the hot path of every recipe.
        let mut drains =
            [Drain::new(Stream::Stdout, on_line.clone()), Drain::new(Stream::Stderr, on_line)];
        let mut pipes = [Some(out_r), Some(err_r)];
        let mut buf = vec![0u8; 64 * 1024];
        let mut stopper = Stopper { deadline, grace, timed_out: None, kill_at: None };
        let mut leader_done = false;
        let mut idle = false;
        while pipes.iter().any(Option::is_some) {
            stopper.tick(&child);
            // Only after a quiet interval: a chatty command should not pay a waitid per chunk.
            if idle && !leader_done && child.has_exited() {
                // Whatever the command left in its group would hold the pipes open forever.
                leader_done = true;
                child.kill();
            }
            // Wake at least every 100 ms to notice a finished leader, the deadline or escalation.
            let wake = stopper.next_wake().unwrap_or(Duration::from_millis(100));
            idle =
                !poll_read(&mut pipes, &mut drains, &mut buf, wake.min(Duration::from_millis(100)));
        }
        // The pipes are closed, so the leader is exiting — unless it closed its output early and
        // kept running, which the deadline still covers.
        let status = loop {
            let until = stopper
                .next_wake()
                .map_or_else(|| Instant::now() + Duration::from_secs(3600), |d| Instant::now() + d);
            if let Some(status) = child.wait_until(until) {
                break status;
            }
            stopper.tick(&child);
        };
        let [o, e] = drains;
        let mut out = child.finish(Some((o.done(), e.done())));
        if let Some(after) = stopper.timed_out {
            return Err(ProcessError::TimedOut { argv: out.argv, after, tail: out.tail });
        }
        out.duration = start.elapsed();
        out.code = status.as_ref().ok().and_then(std::process::ExitStatus::code);
        out.signal = status.as_ref().ok().and_then(std::os::unix::process::ExitStatusExt::signal);
        if cancel.is_some_and(|c| c.is_cancelled()) && !out.success() {
            return Err(ProcessError::Cancelled { argv: out.argv });
        }
        Ok(out)
    }

    /// Spawn in a new process group with both output pipes handed back to the caller.
    fn start(self) -> Result<(Child, os_pipe::PipeReader, os_pipe::PipeReader), ProcessError> {
        let Some(program) = self.argv.first().cloned() else { return Err(ProcessError::Empty) };
        if let Some(dir) = &self.dir
            && !dir.is_dir()
        {
            return Err(ProcessError::NoDir { program, dir: dir.clone() });
        }
        // A secret handed to a child in a variable named like one (`API_TOKEN`) is masked in
        // whatever the child prints, even when no script read it through `env::`.
        for (k, v) in &self.env {
            redact::register_if_secret(k, v);
        }
        let (out_r, out_w) = os_pipe::pipe()
            .map_err(|source| ProcessError::Spawn { program: program.clone(), source })?;
        let (err_r, err_w) = os_pipe::pipe()
            .map_err(|source| ProcessError::Spawn { program: program.clone(), source })?;
        // Resolve the program on PATH here: duct passes the whole environment explicitly, which
        // makes std fall back from posix_spawn to a full fork for bare program names — twice
        // the cost of spawning `true` in a process of pilum's size.
        // A relative path (`./deploy.sh`) names a file in the command's directory, as a shell
        // started there would find it (duct resolves it against pilum's own directory).
        let exe = if program.contains('/') {
            match &self.dir {
                Some(dir) if Path::new(&program).is_relative() => dir.join(&program),
                _ => PathBuf::from(&program),
            }
        } else {
            let path = self.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
            which_in(&program, path)
                .ok_or_else(|| ProcessError::NotFound { program: program.clone() })?
        };
        let mut expr = duct::cmd(&exe, &self.argv[1..])
            .stdout_file(out_w)
            .stderr_file(err_w)
            .unchecked()
            .before_spawn(|cmd| {
                // Own process group: signals reach the whole tree and a terminal Ctrl-C reaches
                // only pilum, which then decides how to stop its children.
                cmd.process_group(0);
                Ok(())
            });
        expr = match &self.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None => expr.stdin_null(),
        };
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        let started = expr.start();
        // The expression owns the parent's copies of the pipe write ends; dropping it lets the
        // reader threads see EOF when the child (and its descendants) exit.
        drop(expr);
        let handle = started.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ProcessError::NotFound { program: program.clone() }
            } else {
                ProcessError::Spawn { program: program.clone(), source }
            }
        })?;
        let pgid = handle.pids().first().map(|&p| p as i32).unwrap_or(0);
        let reg = self.cancel.as_ref().map(|c| (c.clone(), c.register(pgid)));
        let child = Child { argv: self.argv, handle, pgid, reg, readers: Mutex::new(None) };
        Ok((child, out_r, err_r))
    }
}

/// The timeout policy of [`Command::run`]: at the deadline SIGINT to the group, after the grace
/// period SIGKILL.
struct Stopper {
    deadline: Option<(Instant, Duration)>,
    grace: Duration,
    timed_out: Option<Duration>,
    kill_at: Option<Instant>,
}

impl Stopper {
    fn tick(&mut self, child: &Child) {
        let now = Instant::now();
        if self.timed_out.is_none()
            && let Some((at, after)) = self.deadline
            && now >= at
        {
            child.interrupt();
            self.timed_out = Some(after);
            self.kill_at = Some(now + self.grace);
        }
        if self.kill_at.is_some_and(|k| now >= k) {
            child.kill();
            self.kill_at = None;
        }
    }

    /// Time until the next thing this policy must do, if anything.
    fn next_wake(&self) -> Option<Duration> {
        let now = Instant::now();
        match (self.timed_out, self.deadline, self.kill_at) {
            (_, _, Some(k)) => Some(k.saturating_duration_since(now)),
            (None, Some((at, _)), _) => Some(at.saturating_duration_since(now)),
            _ => None,
        }
    }
}

/// What one stream produced: the captured bytes and the last lines (redacted).
struct Captured {
    text: Vec<u8>,
    tail: VecDeque<String>,
}

/// Splits a stream into lines as bytes arrive: captures, keeps the tail, redacts and streams.
struct Drain {
    stream: Stream,
    on_line: Option<LineFn>,
    cap: Captured,
    partial: Vec<u8>,
}

impl Drain {
    fn new(stream: Stream, on_line: Option<LineFn>) -> Self {
        Self {
            stream,
            on_line,
            cap: Captured { text: Vec::new(), tail: VecDeque::new() },
            partial: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if self.cap.text.len() + bytes.len() <= CAPTURE_LIMIT {
            self.cap.text.extend_from_slice(bytes);
        }
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line(&rest[..i]);
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line);
            }
            rest = &rest[i + 1..];
        }
        // A newline-free flood is emitted in 1 MiB pieces rather than buffered without bound.
        self.partial.extend_from_slice(rest);
        if self.partial.len() >= 1 << 20 {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_end_matches('\r');
        let shown = redact::redact(text);
        if self.cap.tail.len() == TAIL_LINES {
            self.cap.tail.pop_front();
        }
        self.cap.tail.push_back(shown.to_string());
        if let Some(f) = &self.on_line {
            f(self.stream, &shown);
        }
    }

    fn done(mut self) -> Captured {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
        self.cap
    }
}

/// Wait up to `wake` for output on the open pipes and feed what arrives; a pipe at EOF (or in
/// error) is closed and set to `None`. Returns whether anything happened before `wake`.
fn poll_read(
    pipes: &mut [Option<os_pipe::PipeReader>; 2],
    drains: &mut [Drain; 2],
    buf: &mut [u8],
    wake: Duration,
) -> bool {
    let mut fds = [libc::pollfd { fd: -1, events: libc::POLLIN, revents: 0 }; 2];
    for (pfd, p) in fds.iter_mut().zip(pipes.iter()) {
        // A negative fd is ignored by poll(2).
        pfd.fd = p.as_ref().map_or(-1, std::os::fd::AsRawFd::as_raw_fd);
    }
    let ms = i32::try_from(wake.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return false; // timeout or EINTR: the caller re-checks its clocks
    }
    for (i, pfd) in fds.iter().enumerate() {
        if pfd.revents == 0 {
            continue;
        }
        let Some(pipe) = pipes[i].as_mut() else { continue };
        match pipe.read(buf) {
            Ok(0) => pipes[i] = None,
            Ok(n) => drains[i].feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => pipes[i] = None,
        }
    }
    true
}

/// A running child in its own process group.
pub(crate) struct Child {
    argv: Vec<String>,
    handle: duct::Handle,
    pgid: i32,
    reg: Option<(CancelToken, u64)>,
    readers: Mutex<Option<(JoinHandle<Captured>, JoinHandle<Captured>)>>,
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child").field("pid", &self.pgid).finish()
    }
}

impl Child {
    /// SIGINT to the whole group: the polite stop (Pulumi releases its lock on SIGINT).
    pub(crate) fn interrupt(&self) {
        signal_group(self.pgid, libc::SIGINT);
    }

    /// SIGKILL to the whole group: the last resort.
    pub(crate) fn kill(&self) {
        signal_group(self.pgid, libc::SIGKILL);
    }

    /// Wait until `at`; `None` if still running then.
    fn wait_until(&self, at: Instant) -> Option<std::io::Result<std::process::ExitStatus>> {
        match self.handle.wait_deadline(at) {
            Ok(Some(o)) => Some(Ok(o.status)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Whether the child has exited (non-blocking).
    pub(crate) fn has_exited(&self) -> bool {
        matches!(self.handle.try_wait(), Ok(Some(_)) | Err(_))
    }

    /// Build the result once the child has exited: from `captured` (drained by the caller) or by
    /// joining the reader threads.
    ///
    /// Anything the command left running in its process group (`cmd &`) is killed first: it
    /// would otherwise outlive pilum and, holding the output pipes, block the readers forever.
    fn finish(&self, captured: Option<(Captured, Captured)>) -> Finished {
        signal_group(self.pgid, libc::SIGKILL);
        if let Some((c, id)) = &self.reg {
            c.unregister(*id);
        }
        let readers = self.readers.locked().take();
        let (out, err) = match (captured, readers) {
            (Some(c), _) => c,
            (None, Some((o, e))) => (
                o.join().unwrap_or(Captured { text: Vec::new(), tail: VecDeque::new() }),
                e.join().unwrap_or(Captured { text: Vec::new(), tail: VecDeque::new() }),
            ),
            (None, None) => (
                Captured { text: Vec::new(), tail: VecDeque::new() },
                Captured { text: Vec::new(), tail: VecDeque::new() },
            ),
        };
        let tail = if err.tail.is_empty() { out.tail } else { err.tail };
        Finished {
            argv: self.argv.clone(),
            code: None,
            signal: None,
            stdout: String::from_utf8_lossy(&out.text).into_owned(),
            stderr: String::from_utf8_lossy(&err.text).into_owned(),
            tail: tail.into_iter().collect(),
            duration: Duration::ZERO,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some((c, id)) = &self.reg {
            c.unregister(*id);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C
// ---------------------------------------------------------------------------------------------

static INT_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_sigint(_: libc::c_int) {
    let fd = INT_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: write(2) is async-signal-safe; the pipe outlives the process.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// Cancel `token` on the first SIGINT (children are in their own process groups, so the
/// terminal's Ctrl-C reaches only pilum); a second SIGINT exits at once with code 130.
/// Call once per process.
pub(crate) fn cancel_on_ctrl_c(token: CancelToken) -> std::io::Result<()> {
    let (mut r, w) = os_pipe::pipe()?;
    use std::os::fd::IntoRawFd;
    INT_PIPE.store(w.into_raw_fd(), Ordering::SeqCst);
    // SAFETY: installs a handler that only calls write(2).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let mut count = 0;
        while r.read(&mut b).map(|n| n > 0).unwrap_or(false) {
            count += 1;
            if count == 1 {
                token.cancel();
            } else {
                for pgid in token.groups() {
                    signal_group(pgid, libc::SIGKILL);
                }
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

/// Find `name` on `PATH` (or check it directly when it contains a `/`).
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    which_in(name, None)
}

/// [`which`] with an explicit `PATH` value (`None`: the process's own).
fn which_in(name: &str, path: Option<&str>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &std::path::Path| {
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    let path = match path {
        Some(p) => p.into(),
        None => std::env::var_os("PATH")?,
    };
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| is_exec(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Running and not a zombie (a killed orphan stays a zombie until something reaps it, which
    /// in a container without an init may be never).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[test]
    fn captures_exit_code_and_output() {
        let out = Command::new(["sh", "-c", "echo out; echo err >&2; exit 3"]).run().expect("runs");
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.tail, vec!["err".to_string()]);
        let err = out.check().expect_err("non-zero");
        assert!(
            err.to_string().starts_with(
                "command `sh -c 'echo out; echo err >&2; exit 3'` failed with exit code 3"
            ),
            "{err}"
        );
    }

    #[test]
    fn big_output_does_not_stall() {
        let out = Command::new(["sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' 'a'; echo"])
            .timeout(Some(Duration::from_secs(60)))
            .run()
            .expect("runs");
        assert_eq!(out.stdout.len(), 10_000_001);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let start = Instant::now();
        let err = Command::new(["sh", "-c", "sleep 1000 & echo $!; wait"])
            .timeout(Some(Duration::from_millis(300)))
            .run()
            .expect_err("times out");
        assert!(start.elapsed() < Duration::from_secs(10));
        let ProcessError::TimedOut { tail, after, .. } = &err else { panic!("{err}") };
        assert_eq!(*after, Duration::from_millis(300));
        let pid: i32 = tail[0].parse().expect("pid");
        // SIGKILL is delivered at once but the exit itself is asynchronous.
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(pid)
        });
        assert!(gone, "grandchild {pid} survived");
        assert!(err.to_string().contains("timed out after 300ms"), "{err}");
    }

    #[test]
    fn timeout_interrupts_first_then_kills() {
        // The first child stops on SIGINT and says so; the second ignores SIGINT and is killed
        // once the grace period is over.
        let err = Command::new([
            "sh",
            "-c",
            "trap 'echo got-int; exit 1' INT; while :; do sleep 0.05; done",
        ])
        .timeout(Some(Duration::from_millis(200)))
        .run()
        .expect_err("times out");
        let ProcessError::TimedOut { tail, .. } = &err else { panic!("{err}") };
        assert_eq!(tail, &vec!["got-int".to_string()]);

        let start = Instant::now();
        let err = Command::new(["sh", "-c", "trap '' INT; sleep 1000"])
            .timeout(Some(Duration::from_millis(200)))
            .grace(Duration::from_millis(300))
            .run()
            .expect_err("times out");
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn cancel_from_another_thread_kills_the_child() {
        let token = CancelToken::new();
        let t2 = token.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            t2.cancel();
        });
        let err = Command::new(["sleep", "1000"]).cancel(token).run().expect_err("cancelled");
        assert!(matches!(err, ProcessError::Cancelled { .. }), "{err}");
    }

    #[test]
    fn child_tokens_follow_their_parent_but_not_the_reverse() {
        let root = CancelToken::new();
        let a = root.child();
        let b = root.child();
        let grandchild = a.child();
        b.cancel();
        assert!(b.is_cancelled() && !root.is_cancelled() && !a.is_cancelled());
        root.cancel();
        assert!(a.is_cancelled() && grandchild.is_cancelled());
        assert!(root.child().is_cancelled());
    }

    #[test]
    fn a_background_child_holding_the_pipes_does_not_block_or_survive() {
        let start = Instant::now();
        let out = Command::new(["sh", "-c", "sleep 1000 & echo $!"]).run().expect("runs");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert_eq!(out.code, Some(0));
        let pid: i32 = out.stdout.trim().parse().expect("pid");
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(pid)
        });
        assert!(gone, "background child {pid} survived");
    }

    #[test]
    fn a_relative_program_is_found_in_the_command_directory() {
        let t = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(t.path().join("svc")).expect("mkdir");
        let script = t.path().join("svc/run.sh");
        std::fs::write(&script, "#!/bin/sh\npwd\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = Command::new(["./run.sh"]).dir(t.path().join("svc")).run().expect("runs");
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let dir = t.path().join("svc").canonicalize().expect("canonical");
        assert_eq!(Path::new(out.stdout.trim()).canonicalize().expect("canonical"), dir);
    }

    #[test]
    fn missing_program_is_named() {
        let err = Command::new(["pilum-no-such-program"]).run().expect_err("missing");
        assert!(err.to_string().contains("`pilum-no-such-program` not found"));
        let err = Command::new(["true"]).dir("/pilum/no/such/dir").run().expect_err("no dir");
        assert_eq!(
            err.to_string(),
            "cannot run `true` in `/pilum/no/such/dir`: the directory does not exist"
        );
    }

    #[test]
    fn interrupt_reaches_the_group() {
        // Cancelling sends SIGINT to the whole group first: the trap runs and its exit code and
        // output come back with the cancellation.
        let token = CancelToken::new();
        let canceller = token.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            canceller.cancel();
        });
        let r = Command::new([
            "sh",
            "-c",
            "trap 'echo got-int; exit 7' INT; while :; do sleep 0.05; done",
        ])
        .cancel(token)
        .run();
        t.join().expect("canceller");
        match r {
            Err(ProcessError::Cancelled { .. }) => {}
            other => panic!("expected a cancellation, got {other:?}"),
        }
    }
}
