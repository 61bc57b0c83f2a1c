//! GitHub commit statuses and deployments for a run, through the REST API
//! (`GITHUB_API_URL`, `GITHUB_TOKEN`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version: 2022-11-28`).
//!
//! One commit status per service (`pilum/<service>`, or `pilum/<service>/<env>` with an
//! environment): `pending` when planned, then `success`, `failure` or `error`, linking to the
//! CI run. With deployments on, one deployment per service and environment (`ref` = the
//! commit, `auto_merge: false`, `required_contexts: []`, `transient_environment` for previews)
//! whose statuses go `in_progress` → `success` (with the `environment_url` the deploy step
//! returned) or `failure`.
//!
//! A [`Reporter`] sends from a thread of its own, in order, so the run never waits for GitHub.
//! Rate limits (`retry-after`, `x-ratelimit-reset`) and server errors are retried within a
//! bound; what still fails is a warning. Nothing here fails a deploy, and the token is
//! registered as a secret before the first request, so it is masked in every message.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::{Ci, Lookup};
use crate::backoff::Backoff;
use crate::http::{self, Request};
use crate::process::CancelToken;
use crate::sync::LockExt;

/// `github:` in `pilum-project.yaml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// One commit status per service.
    #[serde(default)]
    pub statuses: bool,
    /// One deployment per service and environment.
    #[serde(default)]
    pub deployments: bool,
    /// The deployment's environment name; `{env}` and `{service}` are replaced.
    pub environment: Option<String>,
    /// Environments (globs) whose deployments are transient (previews).
    #[serde(default)]
    pub transient: Vec<String>,
    /// Environments that are production (default: `production`).
    pub production: Option<Vec<String>>,
}

/// The deployment environment name when `github.environment` is not given.
pub(crate) const DEFAULT_ENVIRONMENT: &str = "{env}/{service}";
/// `{env}` when the run has no `--env`.
pub(crate) const NO_ENV: &str = "production";

/// What to report for one run.
#[derive(Debug, Clone)]
pub(crate) struct Mode {
    pub statuses: bool,
    pub deployments: bool,
    /// `--env`.
    pub environment: Option<String>,
    pub environment_template: String,
    pub transient: bool,
    pub production: bool,
    pub tag: String,
}

impl Mode {
    pub(crate) fn new(
        settings: &Settings,
        environment: Option<&str>,
        tag: &str,
        transient_flag: bool,
    ) -> Self {
        let env = environment.unwrap_or(NO_ENV);
        let transient = transient_flag
            || settings.transient.iter().any(|g| {
                globset::Glob::new(g).map(|g| g.compile_matcher().is_match(env)).unwrap_or(false)
            });
        let production = !transient
            && settings
                .production
                .as_deref()
                .map_or(env == "production", |p| p.iter().any(|x| x == env));
        Self {
            statuses: settings.statuses,
            deployments: settings.deployments,
            environment: environment.map(str::to_string),
            environment_template: settings
                .environment
                .clone()
                .unwrap_or_else(|| DEFAULT_ENVIRONMENT.into()),
            transient,
            production,
            tag: tag.to_string(),
        }
    }

    /// The commit status context of a service.
    pub(crate) fn context(&self, service: &str) -> String {
        match &self.environment {
            Some(e) => format!("pilum/{service}/{e}"),
            None => format!("pilum/{service}"),
        }
    }

    /// The deployment environment of a service.
    pub(crate) fn deployment_environment(&self, service: &str) -> String {
        self.environment_template
            .replace("{env}", self.environment.as_deref().unwrap_or(NO_ENV))
            .replace("{service}", service)
    }
}

/// Where to report: the API, the repository, the commit, the token.
#[derive(Clone)]
pub(crate) struct Target {
    pub api: String,
    pub repository: String,
    pub sha: String,
    pub token: String,
    pub run_url: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("api", &self.api)
            .field("repository", &self.repository)
            .field("sha", &self.sha)
            .field("token", &crate::redact::MASK)
            .finish()
    }
}

impl Target {
    /// From the environment and the detected run; the reason when something is missing. The
    /// token is registered for masking.
    pub(crate) fn from_env(env: Lookup<'_>, ci: Option<&Ci>) -> Result<Self, String> {
        let token = env("GITHUB_TOKEN").filter(|t| !t.is_empty()).ok_or_else(|| {
            "`GITHUB_TOKEN` is not set (in a workflow: `env: GITHUB_TOKEN: ${{ github.token }}`)".to_string()
        })?;
        crate::redact::register(&token);
        let repository = env("GITHUB_REPOSITORY")
            .or_else(|| ci.and_then(|c| c.repository.clone()))
            .filter(|r| r.split('/').count() == 2 && !r.starts_with('/') && !r.ends_with('/'))
            .ok_or("`GITHUB_REPOSITORY` (`owner/name`) is not set")?;
        let sha = ci
            .and_then(|c| c.sha.clone())
            .or_else(|| env("GITHUB_SHA"))
            .filter(|s| s.len() >= 7 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or("the commit is unknown (`GITHUB_SHA` is not set)")?;
        let api = env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
        http::check_url(&api).map_err(|e| format!("`GITHUB_API_URL` is refused: {e}"))?;
        Ok(Self {
            api: api.trim_end_matches('/').to_string(),
            repository,
            sha,
            token,
            run_url: ci.and_then(|c| c.run_url.clone()),
        })
    }
}

/// One thing to report about a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Update {
    /// Planned: the `pending` status, and the deployment is created.
    Planned { service: String },
    /// Its first task started: the deployment goes `in_progress`.
    Started { service: String },
    /// Deployed; `url` is what its deploy step returned.
    Succeeded { service: String, url: Option<String> },
    /// A task failed.
    Failed { service: String, description: String },
    /// Skipped (a dependency failed) or interrupted.
    Errored { service: String, description: String },
}

/// Messages go through this (the app layer prints warnings).
pub(crate) type Warn = Arc<dyn Fn(&str) + Send + Sync>;

/// Attempts per request.
const ATTEMPTS: u32 = 5;
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A rate limit that resets later than this is not waited for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// GitHub cuts commit status descriptions at 140 characters.
const DESCRIPTION: usize = 140;

/// The REST client of one target.
struct Client {
    target: Target,
    cancel: CancelToken,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Client {
    fn end(&self) -> Option<Instant> {
        *self.deadline.locked()
    }

    /// POST `body` to `path`; the response JSON, or why not (after retries).
    fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), String> {
        let url = format!("{}{path}", self.target.api);
        let backoff = Backoff::new(Duration::from_millis(500)).cap(Duration::from_secs(10));
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut req = Request::new("POST", &url)
                .header("Authorization", &format!("Bearer {}", self.target.token))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json(body);
            req.timeout = REQUEST_TIMEOUT;
            req.cancel = Some(self.cancel.clone());
            req.deadline = self.end();
            let wait = match http::send(&req) {
                Ok(resp) if resp.ok() => {
                    let json =
                        serde_json::from_slice(&resp.body).unwrap_or(serde_json::Value::Null);
                    return Ok((resp.status, json));
                }
                Ok(resp) if resp.retryable() => {
                    last = describe(&resp);
                    match resp.retry_after(SystemTime::now()) {
                        Some(w) if w > MAX_WAIT => {
                            return Err(format!(
                                "{last}; the limit resets in {}",
                                crate::duration::format(w)
                            ));
                        }
                        Some(w) => w,
                        None => backoff.delay(attempt),
                    }
                }
                Ok(resp) => return Err(describe(&resp)),
                Err(http::HttpError::Cancelled { .. } | http::HttpError::Deadline { .. }) => {
                    return Err("out of time".into());
                }
                Err(e) => {
                    last = e.to_string();
                    backoff.delay(attempt)
                }
            };
            if attempt == ATTEMPTS {
                break;
            }
            if self.end().is_some_and(|d| Instant::now() + wait > d) {
                return Err(format!("{last}; out of time for another attempt"));
            }
            if !self.cancel.sleep(wait) {
                return Err("out of time".into());
            }
        }
        Err(format!("{last} (after {ATTEMPTS} attempts)"))
    }
}

/// `422 Validation Failed: …` from GitHub's error JSON.
fn describe(resp: &http::Response) -> String {
    let json: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let message = json["message"].as_str().map(str::to_string).unwrap_or_else(|| {
        resp.text().lines().next().unwrap_or_default().chars().take(200).collect()
    });
    crate::redact::redact(format!("{} {message}", resp.status).trim()).into_owned()
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The first line of an error, for a description.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// Sends a run's updates to GitHub from its own thread.
pub(crate) struct Reporter {
    tx: Option<Sender<Update>>,
    done: Receiver<()>,
    deadline: Arc<Mutex<Option<Instant>>>,
    cancel: CancelToken,
    pending: Arc<Mutex<usize>>,
    warn: Warn,
}

impl Reporter {
    pub(crate) fn start(target: Target, mode: Mode, warn: Warn) -> Self {
        let (tx, rx) = mpsc::channel::<Update>();
        let (done_tx, done) = mpsc::channel();
        let deadline = Arc::new(Mutex::new(None));
        let cancel = CancelToken::new();
        let pending = Arc::new(Mutex::new(0usize));
        let client = Client { target, cancel: cancel.clone(), deadline: deadline.clone() };
        let w = warn.clone();
        let p = pending.clone();
        let spawned = std::thread::Builder::new().name("pilum-github".into()).spawn(move || {
            let mut worker = Worker { client, mode, warn: w, deployments: HashMap::new() };
            // Bounded: the channel closes when the reporter is closed.
            while let Ok(update) = rx.recv() {
                if !worker.client.cancel.is_cancelled() {
                    worker.handle(update);
                }
                *p.locked() -= 1;
            }
            let _ = done_tx.send(());
        });
        if let Err(e) = spawned {
            warn(&format!("GitHub: cannot start the reporter: {e}"));
        }
        Self { tx: Some(tx), done, deadline, cancel, pending, warn }
    }

    /// Queue an update. Never blocks.
    pub(crate) fn send(&self, update: Update) {
        if let Some(tx) = &self.tx {
            *self.pending.locked() += 1;
            if tx.send(update).is_err() {
                *self.pending.locked() -= 1;
            }
        }
    }

    /// No more updates; what is queued has until `end`.
    pub(crate) fn close(&mut self, end: Instant) {
        *self.deadline.locked() = Some(end);
        self.tx = None;
    }

    /// Wait for the queue until the end given to `close`, then give up on the rest.
    pub(crate) fn wait(mut self) {
        if self.tx.is_some() {
            self.close(Instant::now() + Duration::from_secs(10));
        }
        let end = self.deadline.locked().unwrap_or_else(Instant::now);
        if self.done.recv_timeout(end.saturating_duration_since(Instant::now())).is_err() {
            self.cancel.cancel();
            let _ = self.done.recv_timeout(Duration::from_millis(500));
            let left = *self.pending.locked();
            if left > 0 {
                (self.warn)(&format!("GitHub: {left} status update(s) not sent in time; given up"));
            }
        }
        self.cancel.cancel();
    }
}

struct Worker {
    client: Client,
    mode: Mode,
    warn: Warn,
    /// Deployment ids by service.
    deployments: HashMap<String, u64>,
}

impl Worker {
    fn repo(&self) -> &str {
        &self.client.target.repository
    }

    fn status(&self, service: &str, state: &str, description: &str) {
        if !self.mode.statuses {
            return;
        }
        let mut body = serde_json::json!({
            "state": state,
            "description": clip(description, DESCRIPTION),
            "context": self.mode.context(service),
        });
        if let Some(url) = &self.client.target.run_url {
            body["target_url"] = url.clone().into();
        }
        let path = format!("/repos/{}/statuses/{}", self.repo(), self.client.target.sha);
        if let Err(e) = self.client.post(&path, &body) {
            (self.warn)(&format!("GitHub: cannot set the `{state}` status of `{service}`: {e}"));
        }
    }

    fn create_deployment(&mut self, service: &str) {
        if !self.mode.deployments {
            return;
        }
        let env = self.mode.deployment_environment(service);
        let body = serde_json::json!({
            "ref": self.client.target.sha,
            "task": "deploy",
            "environment": env,
            "auto_merge": false,
            "required_contexts": [],
            "transient_environment": self.mode.transient,
            "production_environment": self.mode.production,
            "description": clip(&format!("pilum deploy of {service} ({})", self.mode.tag), DESCRIPTION),
            "payload": {"service": service, "tag": self.mode.tag},
        });
        let path = format!("/repos/{}/deployments", self.repo());
        match self.client.post(&path, &body) {
            Ok((201, json)) => match json["id"].as_u64() {
                Some(id) => {
                    self.deployments.insert(service.to_string(), id);
                }
                None => (self.warn)(&format!(
                    "GitHub: the deployment of `{service}` came back without an id"
                )),
            },
            Ok((status, json)) => (self.warn)(&format!(
                "GitHub: no deployment of `{service}` to `{env}` ({status}: {})",
                json["message"].as_str().unwrap_or("not created")
            )),
            Err(e) => (self.warn)(&format!(
                "GitHub: cannot create the deployment of `{service}` to `{env}`: {e}"
            )),
        }
    }

    fn deployment_status(&self, service: &str, state: &str, description: &str, url: Option<&str>) {
        let Some(id) = self.deployments.get(service) else { return };
        let mut body = serde_json::json!({
            "state": state,
            "description": clip(description, DESCRIPTION),
        });
        if let Some(run) = &self.client.target.run_url {
            body["log_url"] = run.clone().into();
        }
        if let Some(u) = url {
            body["environment_url"] = u.into();
        }
        if state == "success" {
            body["auto_inactive"] = true.into();
        }
        let path = format!("/repos/{}/deployments/{id}/statuses", self.repo());
        if let Err(e) = self.client.post(&path, &body) {
            (self.warn)(&format!(
                "GitHub: cannot set deployment status `{state}` of `{service}`: {e}"
            ));
        }
    }

    fn handle(&mut self, update: Update) {
        match update {
            Update::Planned { service } => {
                self.status(&service, "pending", &format!("{} queued", self.mode.tag));
                self.create_deployment(&service);
            }
            Update::Started { service } => {
                self.deployment_status(&service, "in_progress", "deploying", None);
            }
            Update::Succeeded { service, url } => {
                self.status(&service, "success", &format!("deployed {}", self.mode.tag));
                self.deployment_status(&service, "success", "deployed", url.as_deref());
            }
            Update::Failed { service, description } => {
                self.status(&service, "failure", first_line(&description));
                self.deployment_status(&service, "failure", first_line(&description), None);
            }
            Update::Errored { service, description } => {
                self.status(&service, "error", &description);
                self.deployment_status(&service, "error", &description, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_and_environments() {
        let s = Settings {
            statuses: true,
            deployments: true,
            transient: vec!["pr-*".into()],
            ..Settings::default()
        };
        let m = Mode::new(&s, Some("pr-42"), "abc", false);
        assert_eq!(m.context("api"), "pilum/api/pr-42");
        assert_eq!(m.deployment_environment("api"), "pr-42/api");
        assert!(m.transient && !m.production);
        let m = Mode::new(&s, None, "abc", false);
        assert_eq!(m.context("api"), "pilum/api");
        assert_eq!(m.deployment_environment("api"), "production/api");
        assert!(m.production && !m.transient);
        let s = Settings {
            environment: Some("{env}".into()),
            production: Some(vec!["live".into()]),
            ..s
        };
        let m = Mode::new(&s, Some("live"), "abc", false);
        assert_eq!(m.deployment_environment("api"), "live");
        assert!(m.production);
    }

    #[test]
    fn the_target_needs_a_token_a_repository_and_a_commit() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let err = Target::from_env(&env(&[]), None).expect_err("no token");
        assert!(err.contains("GITHUB_TOKEN"), "{err}");
        let t = Target::from_env(
            &env(&[
                ("GITHUB_TOKEN", "ghs_tokenvalue123"),
                ("GITHUB_REPOSITORY", "acme/shop"),
                ("GITHUB_SHA", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
            ]),
            None,
        )
        .expect("target");
        assert_eq!(t.api, "https://api.github.com");
        assert!(!format!("{t:?}").contains("ghs_tokenvalue123"));
        assert_eq!(crate::redact::redact("ghs_tokenvalue123"), crate::redact::MASK);
        assert!(
            Target::from_env(
                &env(&[
                    ("GITHUB_TOKEN", "t0k3n"),
                    ("GITHUB_REPOSITORY", "bad"),
                    ("GITHUB_SHA", "abcdef1")
                ]),
                None
            )
            .is_err()
        );
    }
}
