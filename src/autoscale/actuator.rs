//! The actuator: how a decision reaches infrastructure. Writes the pool's Pulumi config key and
//! runs a targeted `pulumi up`; previews with a temporary `--config-file` for dry runs.
//!
//! Children run in their own process group so shutdown can interrupt the whole `pulumi` tree
//! with SIGINT (never SIGKILL first: a killed `pulumi` leaves a lock and pending operations).
//! This is the only file that knows Pulumi's command line for the scaler; swapping in another
//! actuator means replacing this file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Pulumi's texts for "another update holds the stack" (REFERENCE.md): the only failures that
/// are retried immediately.
pub fn is_lock_conflict(stderr: &str) -> bool {
    stderr.contains("[409] Conflict: Another update is currently in progress.")
        || regex::Regex::new(r"the stack is currently locked by \d+ lock\(s\)")
            .expect("static regex")
            .is_match(stderr)
}

/// Pending operations left by an interrupted update: acting blindly would make things worse.
pub fn is_pending_operations(stderr: &str) -> bool {
    stderr.contains("pending operations") || stderr.contains("pending_operations")
}

/// A failed Pulumi command: the command and the tail of its output.
#[derive(Debug, Clone)]
pub struct Failure {
    pub command: String,
    pub code: Option<i32>,
    pub tail: String,
    pub lock: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "`{}` exited with {c}", self.command)?,
            None => write!(f, "`{}` was interrupted", self.command)?,
        }
        if !self.tail.is_empty() {
            write!(f, ": {}", self.tail)?;
        }
        Ok(())
    }
}

/// Where a stack lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackRef {
    pub dir: PathBuf,
    pub stack: String,
}

impl StackRef {
    /// The committed stack config file, `Pulumi.<stack>.yaml`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join(format!("Pulumi.{}.yaml", self.stack))
    }
}

/// The Pulumi actuator. `running` holds the process-group id of an in-flight command so
/// shutdown can interrupt it.
#[derive(Debug)]
pub struct Pulumi {
    pub bin: String,
    pub running: Mutex<Vec<u32>>,
}

impl Default for Pulumi {
    fn default() -> Self {
        Self {
            bin: std::env::var("PILUM_PULUMI").unwrap_or_else(|_| "pulumi".into()),
            running: Mutex::new(Vec::new()),
        }
    }
}

/// The last few lines of output, for errors.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Pulumi {
    fn global(stack: &StackRef) -> Vec<String> {
        vec![
            "--cwd".into(),
            stack.dir.display().to_string(),
            "--stack".into(),
            stack.stack.clone(),
            "--non-interactive".into(),
            "--color".into(),
            "never".into(),
        ]
    }

    /// Run `pulumi <args>`, returning stdout on success.
    async fn run(&self, args: Vec<String>) -> Result<String, Failure> {
        let shown =
            format!("pulumi {}", args.iter().take(3).cloned().collect::<Vec<_>>().join(" "));
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.process_group(0);
        let child = cmd.spawn().map_err(|e| Failure {
            command: shown.clone(),
            code: None,
            tail: format!(
                "cannot start `{}`: {e} (is the Pulumi CLI installed and on PATH?)",
                self.bin
            ),
            lock: false,
        })?;
        let pid = child.id();
        if let Some(pid) = pid {
            self.running.lock().expect("running list lock").push(pid);
        }
        let out = child.wait_with_output().await;
        if let Some(pid) = pid {
            self.running.lock().expect("running list lock").retain(|p| *p != pid);
        }
        let out = out.map_err(|e| Failure {
            command: shown.clone(),
            code: None,
            tail: e.to_string(),
            lock: false,
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            let both = format!("{stdout}\n{stderr}");
            Err(Failure {
                command: shown,
                code: out.status.code(),
                tail: tail(&both, 5),
                lock: is_lock_conflict(&both),
            })
        }
    }

    /// Send SIGINT to every running `pulumi` process group (graceful interrupt).
    pub fn interrupt_all(&self) -> usize {
        let pids = self.running.lock().expect("running list lock").clone();
        for pid in &pids {
            // SAFETY: killpg only sends a signal; the group was created for this child.
            unsafe {
                libc::killpg(*pid as libc::pid_t, libc::SIGINT);
            }
        }
        pids.len()
    }

    /// Last resort after an interrupt was ignored.
    pub fn kill_all(&self) {
        let pids = self.running.lock().expect("running list lock").clone();
        for pid in pids {
            // SAFETY: as above.
            unsafe {
                libc::killpg(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// `pulumi config get <key> --json` → the value, or None when the key is not set.
    pub async fn config_get(&self, stack: &StackRef, key: &str) -> Result<Option<String>, Failure> {
        let mut args = vec!["config".into(), "get".into(), key.into(), "--json".into()];
        args.extend(Self::global(stack));
        match self.run(args).await {
            Ok(out) => {
                let v: Value = serde_json::from_str(out.trim()).map_err(|e| Failure {
                    command: "pulumi config get".into(),
                    code: Some(0),
                    tail: format!("unexpected output ({e}): {}", tail(&out, 3)),
                    lock: false,
                })?;
                Ok(v.get("value").and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                }))
            }
            Err(f) if f.tail.contains("not found") => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// `pulumi config set-all --plaintext k=v …` (one command for several keys).
    pub async fn config_set_all(
        &self,
        stack: &StackRef,
        pairs: &[(String, i64)],
        config_file: Option<&Path>,
    ) -> Result<(), Failure> {
        let mut args = vec!["config".to_string(), "set-all".to_string()];
        for (k, v) in pairs {
            args.push("--plaintext".into());
            args.push(format!("{k}={v}"));
        }
        if let Some(f) = config_file {
            args.push("--config-file".into());
            args.push(f.display().to_string());
        }
        args.extend(Self::global(stack));
        self.run(args).await.map(|_| ())
    }

    /// `pulumi up --yes --skip-preview --target … --message …`.
    pub async fn up(
        &self,
        stack: &StackRef,
        targets: &[String],
        message: &str,
    ) -> Result<(), Failure> {
        let mut args = vec!["up".to_string(), "--yes".into(), "--skip-preview".into()];
        for t in targets {
            args.push("--target".into());
            args.push(t.clone());
        }
        args.push("--message".into());
        args.push(message.into());
        args.extend(Self::global(stack));
        self.run(args).await.map(|_| ())
    }

    /// `up`, retried only on Pulumi's lock texts with jittered backoff until `deadline`.
    /// Returns the number of lock retries alongside the result.
    pub async fn up_with_lock_retry(
        &self,
        stack: &StackRef,
        targets: &[String],
        message: &str,
        deadline: Duration,
        initial: Duration,
    ) -> (Result<(), Failure>, u32) {
        let started = Instant::now();
        let mut retries = 0;
        let mut delay = initial;
        loop {
            match self.up(stack, targets, message).await {
                Err(f) if f.lock && started.elapsed() + delay < deadline => {
                    retries += 1;
                    let jitter = delay.mul_f64(fastrand::f64() * 0.5);
                    tokio::time::sleep(delay + jitter).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                other => return (other, retries),
            }
        }
    }

    /// A dry run: copy the stack file to a temporary file, set the key there, and preview with
    /// `--config-file`. The committed stack file is never written.
    pub async fn preview_with(
        &self,
        stack: &StackRef,
        pairs: &[(String, i64)],
        targets: &[String],
        tmp_dir: &Path,
    ) -> Result<Value, Failure> {
        let io = |e: std::io::Error| Failure {
            command: "preview".into(),
            code: None,
            tail: e.to_string(),
            lock: false,
        };
        let tmp = tempfile::Builder::new()
            .prefix(&format!("Pulumi.{}.", stack.stack))
            .suffix(".yaml")
            .tempfile_in(tmp_dir)
            .map_err(io)?;
        match std::fs::read(stack.config_file()) {
            Ok(bytes) => std::fs::write(tmp.path(), bytes).map_err(io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.config_set_all(stack, pairs, Some(tmp.path())).await?;
        let mut args = vec!["preview".to_string(), "--json".into()];
        for t in targets {
            args.push("--target".into());
            args.push(t.clone());
        }
        args.push("--config-file".into());
        args.push(tmp.path().display().to_string());
        args.extend(Self::global(stack));
        let out = self.run(args).await?;
        serde_json::from_str(out.trim()).map_err(|e| Failure {
            command: "pulumi preview --json".into(),
            code: Some(0),
            tail: format!("output is not JSON ({e}): {}", tail(&out, 3)),
            lock: false,
        })
    }

    /// `pulumi config refresh`: rebuild the local stack file from the last deployment.
    pub async fn config_refresh(&self, stack: &StackRef) -> Result<(), Failure> {
        let mut args = vec!["config".to_string(), "refresh".into()];
        args.extend(Self::global(stack));
        self.run(args).await.map(|_| ())
    }

    /// `pulumi stack output <name> --json`.
    pub async fn stack_output(&self, stack: &StackRef, name: &str) -> Result<Value, Failure> {
        let mut args = vec!["stack".to_string(), "output".into(), name.into(), "--json".into()];
        args.extend(Self::global(stack));
        let out = self.run(args).await?;
        serde_json::from_str(out.trim()).map_err(|e| Failure {
            command: "pulumi stack output".into(),
            code: Some(0),
            tail: format!("output is not JSON ({e})"),
            lock: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_texts_are_exact() {
        assert!(is_lock_conflict(
            "error: [409] Conflict: Another update is currently in progress."
        ));
        assert!(is_lock_conflict("error: the stack is currently locked by 1 lock(s). Either wait"));
        assert!(!is_lock_conflict("error: update failed"));
        assert!(!is_lock_conflict("the stack is locked"));
    }
}
