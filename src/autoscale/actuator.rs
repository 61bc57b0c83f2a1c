//! The actuator: how a decision reaches infrastructure. Writes the pool's Pulumi config key and
//! runs a targeted `pulumi up`; previews with a temporary `--config-file` for dry runs.
//!
//! Children run in their own process group, registered on the actuator's [`CancelToken`], so
//! shutdown interrupts the whole `pulumi` tree with SIGINT (and SIGKILL only after the process
//! layer's grace: a killed `pulumi` leaves a lock and pending operations). The command lines
//! and JSON parsing come from [`crate::pulumi`], running them from [`crate::process`]; this
//! file adds what the scaler needs on top (lock retries, previews off the async workers).
//! Swapping in another actuator means replacing this file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backoff::{Backoff, Jitter};
use crate::process::{CancelToken, Finished, ProcessError};
use crate::pulumi::{self, Opts};

pub(crate) use crate::pulumi::is_lock_conflict;

/// Pending operations left by an interrupted update: acting blindly would make things worse.
pub(crate) fn is_pending_operations(stderr: &str) -> bool {
    stderr.contains("pending operations") || stderr.contains("pending_operations")
}

/// A failed Pulumi command: the command and the tail of its output.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub command: String,
    pub code: Option<i32>,
    pub tail: String,
    pub lock: bool,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(c) => write!(f, "`{}` exited with {c}", self.command)?,
            None => write!(f, "`{}` did not finish", self.command)?,
        }
        if !self.tail.is_empty() {
            write!(f, ": {}", self.tail)?;
        }
        Ok(())
    }
}

/// Where a stack lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StackRef {
    pub dir: PathBuf,
    pub stack: String,
}

impl StackRef {
    fn opts(&self) -> Opts {
        Opts { cwd: Some(self.dir.clone()), stack: Some(self.stack.clone()), ..Opts::default() }
    }
}

/// The Pulumi actuator. Every command it runs is registered on `cancel`, so shutdown can
/// interrupt an update it no longer wants to wait for.
#[derive(Debug, Default)]
pub(crate) struct Pulumi {
    cancel: CancelToken,
}

/// The short name of a command for messages: `pulumi up`, `pulumi config set-all`.
fn shown(argv: &[String]) -> String {
    argv.iter().take_while(|a| !a.starts_with('-')).take(3).cloned().collect::<Vec<_>>().join(" ")
}

fn failure(argv: &[String], out: &Finished) -> Failure {
    let both = format!("{}\n{}", out.stdout, out.stderr);
    Failure {
        command: shown(argv),
        code: out.code,
        tail: out.tail.iter().rev().take(5).rev().cloned().collect::<Vec<_>>().join("\n"),
        lock: is_lock_conflict(&both),
    }
}

impl Pulumi {
    /// Run an argv built by [`crate::pulumi`] through the process layer (own process group,
    /// drained output, cancellation) on a blocking thread; `Ok` carries stdout.
    async fn run(&self, argv: Vec<String>) -> Result<String, Failure> {
        let cancel = self.cancel.clone();
        let cmd_name = shown(&argv);
        let joined = tokio::task::spawn_blocking(move || {
            let out = pulumi::command(argv.clone()).cancel(cancel).run().map_err(|e| {
                let tail = match &e {
                    ProcessError::NotFound { .. } => {
                        format!("{e} (is the Pulumi CLI installed and on PATH?)")
                    }
                    _ => e.to_string(),
                };
                Failure { command: shown(&argv), code: None, tail, lock: false }
            })?;
            if out.success() { Ok(out.stdout) } else { Err(failure(&argv, &out)) }
        })
        .await;
        joined.unwrap_or_else(|e| {
            Err(Failure { command: cmd_name, code: None, tail: e.to_string(), lock: false })
        })
    }

    /// Interrupt every running `pulumi`: SIGINT to its process group (the polite stop: Pulumi
    /// releases its lock), SIGKILL after the process layer's grace if it ignores that. Commands
    /// started afterwards are stopped at once.
    pub(crate) fn interrupt_all(&self) {
        self.cancel.cancel();
    }

    /// `pulumi config get <key> --json` → the value, or None when the key is not set.
    pub(crate) async fn config_get(
        &self,
        stack: &StackRef,
        key: &str,
    ) -> Result<Option<String>, Failure> {
        match self.run(pulumi::config_get_argv(key, &stack.opts())).await {
            Ok(out) => pulumi::parse_config_get(&out).map(|v| Some(v.value)).map_err(|e| Failure {
                command: "pulumi config get".into(),
                code: Some(0),
                tail: e.to_string(),
                lock: false,
            }),
            Err(f) if pulumi::is_missing_key(&f.tail) => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// `pulumi config set-all --plaintext k=v …` (one command for several keys).
    pub(crate) async fn config_set_all(
        &self,
        stack: &StackRef,
        pairs: &[(String, i64)],
        config_file: Option<&Path>,
    ) -> Result<(), Failure> {
        let values: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let o = Opts { config_file: config_file.map(Path::to_path_buf), ..stack.opts() };
        self.run(pulumi::config_set_all_argv(&values, &o)).await.map(|_| ())
    }

    /// `pulumi up --yes --skip-preview --target … --message …`.
    pub(crate) async fn up(
        &self,
        stack: &StackRef,
        targets: &[String],
        message: &str,
    ) -> Result<(), Failure> {
        let o =
            Opts { targets: targets.to_vec(), message: Some(message.to_string()), ..stack.opts() };
        self.run(pulumi::up_argv(&o)).await.map(|_| ())
    }

    /// `up`, retried only on Pulumi's lock texts with jittered backoff until `deadline`;
    /// `on_lock` hears about each conflict (readiness reports it while retrying). Returns the
    /// number of lock retries alongside the result.
    pub(crate) async fn up_with_lock_retry(
        &self,
        stack: &StackRef,
        targets: &[String],
        message: &str,
        deadline: Duration,
        initial: Duration,
        on_lock: impl Fn(&Failure),
    ) -> (Result<(), Failure>, u32) {
        let started = Instant::now();
        let backoff = Backoff::new(initial)
            .cap(Duration::from_secs(30))
            .jitter(Jitter::Up(0.5))
            .deadline(started + deadline);
        let mut retries = 0;
        loop {
            match self.up(stack, targets, message).await {
                Err(f) if f.lock => match backoff.next(retries + 1) {
                    Some(delay) => {
                        on_lock(&f);
                        retries += 1;
                        tokio::time::sleep(delay).await;
                    }
                    None => return (Err(f), retries),
                },
                other => return (other, retries),
            }
        }
    }

    /// A dry run through [`pulumi::preview_with_config`]: the new values go into a temporary
    /// copy of the stack file (`--config-file`); the committed stack file is never written.
    pub(crate) async fn preview_with(
        &self,
        stack: &StackRef,
        pairs: &[(String, i64)],
        targets: &[String],
    ) -> Result<Value, Failure> {
        let values: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let o = Opts { targets: targets.to_vec(), ..stack.opts() };
        let dir = stack.dir.clone();
        let cancel = self.cancel.clone();
        let joined = tokio::task::spawn_blocking(move || {
            pulumi::preview_with_config(&values, &o, &dir, |argv| {
                pulumi::command(argv).cancel(cancel.clone())
            })
        })
        .await;
        let fail = |tail: String, lock: bool| Failure {
            command: "pulumi preview".into(),
            code: None,
            tail,
            lock,
        };
        match joined {
            Ok(Ok(p)) => {
                Ok(serde_json::json!({"steps": p.steps, "changeSummary": p.change_summary}))
            }
            Ok(Err(pulumi::PulumiError::Failed { argv, code, tail, lock_conflict })) => {
                Err(Failure {
                    command: shown(&argv),
                    code,
                    tail: tail.join("\n"),
                    lock: lock_conflict,
                })
            }
            Ok(Err(e)) => Err(fail(e.to_string(), false)),
            Err(e) => Err(fail(e.to_string(), false)),
        }
    }

    /// `pulumi refresh --preview-only --json --target …`: what drifted, without writing state.
    pub(crate) async fn refresh_preview(
        &self,
        stack: &StackRef,
        targets: &[String],
    ) -> Result<Value, Failure> {
        let o = Opts { targets: targets.to_vec(), ..stack.opts() };
        let out = self.run(pulumi::refresh_preview_argv(&o)).await?;
        serde_json::from_str(out.trim()).map_err(|e| Failure {
            command: "pulumi refresh --preview-only".into(),
            code: Some(0),
            tail: format!("output is not JSON ({e})"),
            lock: false,
        })
    }

    /// `pulumi refresh --yes --skip-preview --target …`.
    pub(crate) async fn refresh(
        &self,
        stack: &StackRef,
        targets: &[String],
    ) -> Result<(), Failure> {
        let o = Opts { targets: targets.to_vec(), ..stack.opts() };
        self.run(pulumi::refresh_argv(&o)).await.map(|_| ())
    }

    /// `pulumi config refresh`: rebuild the local stack file from the last deployment.
    pub(crate) async fn config_refresh(&self, stack: &StackRef) -> Result<(), Failure> {
        self.run(pulumi::config_refresh_argv(false, &stack.opts())).await.map(|_| ())
    }

    /// `pulumi stack output <name> --json`.
    pub(crate) async fn stack_output(
        &self,
        stack: &StackRef,
        name: &str,
    ) -> Result<Value, Failure> {
        let out = self.run(pulumi::outputs_argv(Some(name), &stack.opts())).await?;
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
