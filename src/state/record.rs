//! Deploy records: one per service × target × environment × region per run, written when the
//! service's last task ends (before its lock is released, so the next holder sees it), read
//! newest first. A record says what was deployed (version tag, commit, dirty flag, input
//! hash), what the provider answered (the deploy step's `revision` and `url`), how it ended,
//! and who ran it from where (actor, CI run URL, host, pilum version, command line).
//!
//! The id is sortable: 48 bits of milliseconds then 80 random bits, in Crockford base 32
//! (a ULID), increasing within a process, so "newest first" is "largest id first" in both
//! backends. Every text field is redacted when the record is made.

use std::sync::Mutex;

use crate::sync::LockExt;
use serde::{Deserialize, Serialize};

/// How a service's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Interrupted,
    /// Nothing of it ran: a dependency failed, or an earlier phase did.
    Skipped,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One deploy record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Sortable and unique (a ULID).
    pub id: String,
    /// The run's id: every record of one run has it.
    pub run: String,
    /// `deploy`, `publish`, `build`, `push`; `rollback` for rollbacks.
    pub command: String,
    pub service: String,
    /// What the service deploys to: its recipe's name (`gcp-cloud-run`, `shell`, …).
    pub target: String,
    pub environment: Option<String>,
    pub region: Option<String>,
    /// The recipe's file (`<built-in>/…` or the project's `recipes/…`).
    pub recipe: String,
    /// The version tag.
    pub version: String,
    pub commit: Option<String>,
    pub dirty: bool,
    /// The build cache's input hash of the service (`docs/state.md`).
    pub input_hash: Option<String>,
    /// From the deploy step's returned map.
    pub revision: Option<String>,
    pub url: Option<String>,
    /// RFC 3339, milliseconds, UTC.
    pub started: String,
    pub ended: String,
    pub outcome: Outcome,
    /// The first line of the first failure.
    pub error: Option<String>,
    /// `build`: the build and push steps were not run; their recorded artefact was reused.
    #[serde(default)]
    pub cached: Option<String>,
    /// The deploy lock's key and the fencing token of the lease it was held under.
    #[serde(default)]
    pub lock: Option<String>,
    #[serde(default)]
    pub fence: Option<u64>,
    pub actor: Option<String>,
    pub ci_run: Option<String>,
    pub host: String,
    /// pilum's version.
    pub pilum: String,
    /// The command line, secrets masked.
    pub argv: String,
}

impl Record {
    /// A new record of `command` on `service` (deployed to `target`) in run `run`, stamped
    /// with where it ran (`origin`); everything else empty, for the caller to fill in with
    /// `Record { field, ..Record::new(…) }`.
    pub(crate) fn new(
        origin: &Origin,
        run: &str,
        command: &str,
        service: &str,
        target: &str,
        outcome: Outcome,
    ) -> Record {
        Record {
            id: new_id(),
            run: run.to_string(),
            command: command.to_string(),
            service: service.to_string(),
            target: target.to_string(),
            environment: None,
            region: None,
            recipe: String::new(),
            version: String::new(),
            commit: None,
            dirty: false,
            input_hash: None,
            revision: None,
            url: None,
            started: String::new(),
            ended: String::new(),
            outcome,
            error: None,
            cached: None,
            lock: None,
            fence: None,
            actor: origin.actor.clone(),
            ci_run: origin.ci_run.clone(),
            host: origin.host.clone(),
            pilum: origin.pilum.clone(),
            argv: origin.argv.clone(),
        }
    }

    /// Whether this record deployed something that was then live: a successful `deploy` or
    /// `rollback`.
    pub(crate) fn went_live(&self) -> bool {
        self.outcome == Outcome::Ok && (self.command == "deploy" || self.command == "rollback")
    }
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Service names or globs (`api-*`); empty: every service.
    pub services: Vec<String>,
    /// `None`: any; `Some(None)`: records without an environment; `Some(Some(e))`: `e`.
    pub environment: Option<Option<String>>,
    pub target: Option<String>,
    /// `None`: any; `Some(None)`: records without a region.
    pub region: Option<Option<String>>,
    /// Only records that went live ([`Record::went_live`]).
    pub live_only: bool,
    /// At most this many (0: no limit).
    pub limit: usize,
}

impl Filter {
    /// The records of one service × target × environment × region that went live, newest
    /// first: what `status` and `rollback` compare with.
    #[allow(dead_code, reason = "the query `status` and `rollback` use")]
    pub(crate) fn live(
        service: &str,
        target: &str,
        env: Option<&str>,
        region: Option<&str>,
    ) -> Self {
        Filter {
            services: vec![service.to_string()],
            environment: Some(env.map(str::to_string)),
            target: Some(target.to_string()),
            region: Some(region.map(str::to_string)),
            live_only: true,
            limit: 0,
        }
    }

    /// Whether `r` passes. Globs that do not compile match by equality.
    pub(crate) fn matches(&self, r: &Record) -> bool {
        (self.services.is_empty() || self.services.iter().any(|p| name_matches(p, &r.service)))
            && self.environment.as_ref().is_none_or(|e| *e == r.environment)
            && self.target.as_ref().is_none_or(|t| *t == r.target)
            && self.region.as_ref().is_none_or(|g| *g == r.region)
            && (!self.live_only || r.went_live())
    }

    /// The one service every match has, when the filter names exactly one without a glob (the
    /// Redis backend then reads that service's own stream).
    pub(crate) fn single_service(&self) -> Option<&str> {
        match self.services.as_slice() {
            [one] if !one.contains(['*', '?', '[']) => Some(one),
            _ => None,
        }
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == name;
    }
    globset::Glob::new(pattern).map_or(pattern == name, |g| g.compile_matcher().is_match(name))
}

/// Records read newest first, and how many unreadable entries were skipped on the way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Page {
    pub records: Vec<Record>,
    pub unreadable: usize,
}

impl Page {
    /// Keep `v` when it is a record `filter` matches (true: one more kept); count it unreadable
    /// when it is no record. What both backends' readers hand each entry to.
    pub(crate) fn take(&mut self, filter: &Filter, v: serde_json::Value) -> bool {
        match serde_json::from_value::<Record>(v) {
            Ok(r) if filter.matches(&r) => {
                self.records.push(r);
                true
            }
            Ok(_) => false,
            Err(_) => {
                self.unreadable += 1;
                false
            }
        }
    }
}

/// Crockford's base 32.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new sortable id, larger than every id this process made before.
pub(crate) fn new_id() -> String {
    static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));
    let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let mut last = LAST.locked();
    let random = if ms <= last.0 {
        // The same millisecond (or a clock step back): the next value after the last one.
        last.1.wrapping_add(1) & ((1u128 << 80) - 1)
    } else {
        (u128::from(fastrand::u64(..)) << 16 | u128::from(fastrand::u16(..))) >> 1
    };
    let ms = ms.max(last.0);
    *last = (ms, random);
    let value: u128 = (u128::from(ms) << 80) | random;
    (0..26).rev().map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char).collect()
}

/// Who runs pilum, from where: the same for every record of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Origin {
    /// The CI actor, else `git config user.email`.
    pub actor: Option<String>,
    pub ci_run: Option<String>,
    pub host: String,
    pub pid: u32,
    pub pilum: String,
    pub argv: String,
}

impl Origin {
    /// The current process's (`root` is where `git config` is asked).
    pub(crate) fn current(root: &std::path::Path) -> Origin {
        let ci = crate::ci::detect(&crate::ci::process_env);
        let actor = ci.as_ref().and_then(|c| c.actor.clone()).or_else(|| git_email(root));
        let argv: Vec<String> = std::env::args().collect();
        Origin {
            actor: actor.map(|a| redacted(&a)),
            ci_run: ci.and_then(|c| c.run_url).map(|u| redacted(&u)),
            host: hostname(),
            pid: std::process::id(),
            pilum: env!("PILUM_VERSION").to_string(),
            argv: redacted(&shell_words(&argv)),
        }
    }
}

/// Now, as records write times: RFC 3339, milliseconds, UTC.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `text` with every registered secret masked.
pub(crate) fn redacted(text: &str) -> String {
    crate::redact::redact(text).into_owned()
}

/// The first line of `text`, masked.
pub(crate) fn first_line(text: &str) -> String {
    redacted(text.lines().next().unwrap_or_default())
}

/// This machine's name.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `git config user.email`, asked only inside a git work tree.
fn git_email(root: &std::path::Path) -> Option<String> {
    if !crate::service::discover::in_git(root) {
        return None;
    }
    let out = super::inputs::git(root, &["config", "user.email"])?;
    let email = String::from_utf8_lossy(&out).trim().to_string();
    (!email.is_empty()).then_some(email)
}

/// argv as one line, words with spaces or quotes quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                std::path::Path::new(a)
                    .file_name()
                    .map_or(a.clone(), |n| n.to_string_lossy().into())
            } else {
                a.clone()
            };
            if a.is_empty() || a.contains([' ', '\'', '"', '\t', '\n']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
pub(crate) fn sample(service: &str, env: Option<&str>, outcome: Outcome) -> Record {
    Record {
        id: new_id(),
        run: "run".into(),
        command: "deploy".into(),
        service: service.into(),
        target: "shell".into(),
        environment: env.map(str::to_string),
        region: None,
        recipe: "<built-in>/shell.rhai".into(),
        version: "v1".into(),
        commit: Some("c0ffee".into()),
        dirty: false,
        input_hash: Some("h".into()),
        revision: Some(format!("{service}-rev")),
        url: None,
        started: "2025-01-01T00:00:00.000Z".into(),
        ended: "2025-01-01T00:00:01.000Z".into(),
        outcome,
        error: None,
        cached: None,
        lock: None,
        fence: None,
        actor: None,
        ci_run: None,
        host: "h".into(),
        pilum: "0".into(),
        argv: "pilum deploy".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_increase_within_a_process() {
        let ids: Vec<String> = (0..2000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|i| i.len() == 26));
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }

    #[test]
    fn filters_match_names_globs_and_live_records() {
        let ok = sample("api-users", Some("prod"), Outcome::Ok);
        let failed = sample("api-users", Some("prod"), Outcome::Failed);
        let f = Filter { services: vec!["api-*".into()], ..Filter::default() };
        assert!(f.matches(&ok) && f.matches(&failed));
        let live = Filter::live("api-users", "shell", Some("prod"), None);
        assert!(live.matches(&ok) && !live.matches(&failed));
        assert!(!Filter::live("api-users", "shell", None, None).matches(&ok));
        assert_eq!(live.single_service(), Some("api-users"));
        assert_eq!(f.single_service(), None);
    }

    #[test]
    fn the_command_line_is_quoted_and_masked() {
        crate::redact::register("pw-9f8e7d");
        let line = redacted(&shell_words(&[
            "/usr/bin/pilum".into(),
            "deploy".into(),
            "--state".into(),
            "redis://:pw-9f8e7d@h/0".into(),
            "a b".into(),
        ]));
        assert_eq!(line, "pilum deploy --state redis://:***@h/0 'a b'");
    }
}
