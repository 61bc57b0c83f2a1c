//! The deploy lock: `.pilum/deploy.lock`, held with `flock(2)` for the whole run so two
//! `pilum deploy` runs in one checkout cannot interleave their steps. The kernel releases it
//! when the process ends, however it ends; the file keeps the holder's pid for the message.
//! The path is checked by [`guard::pilum_path`] before it is opened.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::guard::{self, Escape};

/// Held until dropped.
#[derive(Debug)]
pub struct DeployLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    Busy {
        pid: Option<u32>,
    },
    Io(std::io::Error),
    /// `.pilum/deploy.lock` resolves outside `.pilum/` (a symlink).
    Outside(Escape),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy { pid } => write!(
                f,
                "another pilum run is deploying this project{}\nhelp: wait for it to finish; `pilum plan` and `--dry-run` do not need the lock",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ),
            LockError::Io(e) => write!(f, "cannot take the deploy lock `.pilum/deploy.lock`: {e}"),
            LockError::Outside(e) => write!(f, "cannot take the deploy lock: {e}"),
        }
    }
}

impl DeployLock {
    /// Take the lock without waiting.
    pub fn acquire(root: &Path) -> Result<Self, LockError> {
        let path = guard::pilum_path(root, "deploy.lock").map_err(LockError::Outside)?;
        std::fs::create_dir_all(root.join(".pilum")).map_err(LockError::Io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LockError::Io)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Busy { pid: text.trim().parse().ok() });
            }
            return Err(LockError::Io(err));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_drops() {
        let t = tempfile::tempdir().unwrap();
        let first = DeployLock::acquire(t.path()).unwrap();
        match DeployLock::acquire(t.path()) {
            Err(LockError::Busy { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected busy, got {other:?}"),
        }
        drop(first);
        DeployLock::acquire(t.path()).unwrap();
    }

    #[test]
    fn a_lock_file_pointing_outside_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        std::fs::create_dir_all(t.path().join("p/.pilum")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("p/.pilum/deploy.lock")).unwrap();
        assert!(matches!(DeployLock::acquire(&t.path().join("p")), Err(LockError::Outside(_))));
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    }
}
