//! Running in CI: which provider ([`detect`], from the variables each provider sets), what
//! the run is about (event, refs, commit, pull request, the run's page, who started it, the
//! job's deployment environment where the provider says), and the [`Defaults`] pilum applies
//! there. `github` reports commit statuses and deployments to GitHub; `workflow` reads the
//! job's `environment:` from a GitHub Actions workflow file.
//!
//! Detection reads the environment through a lookup function, so tests give each provider's
//! variables as fixtures and nothing depends on where the tests run.

pub(crate) mod github;
pub(crate) mod workflow;

use serde::Serialize;

/// The CI systems pilum knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Provider {
    GithubActions,
    GitlabCi,
    Circleci,
    Buildkite,
    Jenkins,
    AzurePipelines,
    BitbucketPipelines,
    /// `CI` is set, but by none of the above.
    Unknown,
}

impl Provider {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Provider::GithubActions => "GitHub Actions",
            Provider::GitlabCi => "GitLab CI",
            Provider::Circleci => "CircleCI",
            Provider::Buildkite => "Buildkite",
            Provider::Jenkins => "Jenkins",
            Provider::AzurePipelines => "Azure Pipelines",
            Provider::BitbucketPipelines => "Bitbucket Pipelines",
            Provider::Unknown => "unknown CI",
        }
    }

    /// Whether its log viewer shows ANSI colours (Jenkins needs a plugin; an unknown CI may not).
    pub(crate) fn renders_colour(self) -> bool {
        !matches!(self, Provider::Jenkins | Provider::Unknown)
    }
}

/// What the CI run is about. Every field is what the provider's variables say, or `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Ci {
    pub provider: Provider,
    /// `push`, `pull_request`, `merge_request`, `tag`, `schedule`, `manual`, or the
    /// provider's own word.
    pub event: Option<String>,
    /// The branch or tag built.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit statuses are reported on (a pull request's head, not its merge commit).
    pub sha: Option<String>,
    /// A pull request's target branch.
    pub base_ref: Option<String>,
    /// A pull request's source branch.
    pub head_ref: Option<String>,
    pub pull_request: Option<String>,
    pub run_url: Option<String>,
    pub actor: Option<String>,
    /// `owner/name` (or the provider's project path).
    pub repository: Option<String>,
    /// The job's deployment environment, where the provider exposes it (GitLab, Azure,
    /// Bitbucket); GitHub Actions does not (see `workflow`).
    pub environment: Option<String>,
}

/// Reads one environment variable.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The CI run pilum is in, or `None` outside CI.
pub(crate) fn detect(env: Lookup<'_>) -> Option<Ci> {
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    let is = |k: &str, v: &str| get(k).is_some_and(|x| x.eq_ignore_ascii_case(v));
    let blank = |provider| Ci {
        provider,
        event: None,
        git_ref: None,
        sha: None,
        base_ref: None,
        head_ref: None,
        pull_request: None,
        run_url: None,
        actor: None,
        repository: None,
        environment: None,
    };
    if is("GITHUB_ACTIONS", "true") {
        return Some(github_actions(&get, blank(Provider::GithubActions)));
    }
    if is("GITLAB_CI", "true") {
        let mr = get("CI_MERGE_REQUEST_IID");
        let event = match get("CI_PIPELINE_SOURCE").as_deref() {
            Some("merge_request_event") => Some("merge_request".to_string()),
            _ if get("CI_COMMIT_TAG").is_some() => Some("tag".to_string()),
            Some("web") => Some("manual".to_string()),
            other => other.map(str::to_string),
        };
        return Some(Ci {
            event,
            git_ref: get("CI_COMMIT_TAG").or_else(|| get("CI_COMMIT_REF_NAME")),
            sha: get("CI_COMMIT_SHA"),
            base_ref: get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
            head_ref: get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"),
            pull_request: mr,
            run_url: get("CI_PIPELINE_URL").or_else(|| get("CI_JOB_URL")),
            actor: get("GITLAB_USER_LOGIN"),
            repository: get("CI_PROJECT_PATH"),
            environment: get("CI_ENVIRONMENT_NAME"),
            ..blank(Provider::GitlabCi)
        });
    }
    if is("CIRCLECI", "true") {
        let pr = get("CIRCLE_PULL_REQUEST").and_then(|u| u.rsplit('/').next().map(str::to_string));
        let event = if get("CIRCLE_TAG").is_some() {
            "tag"
        } else if pr.is_some() {
            "pull_request"
        } else {
            "push"
        };
        let repository = match (get("CIRCLE_PROJECT_USERNAME"), get("CIRCLE_PROJECT_REPONAME")) {
            (Some(o), Some(r)) => Some(format!("{o}/{r}")),
            _ => None,
        };
        return Some(Ci {
            event: Some(event.into()),
            git_ref: get("CIRCLE_TAG").or_else(|| get("CIRCLE_BRANCH")),
            sha: get("CIRCLE_SHA1"),
            head_ref: pr.as_ref().and(get("CIRCLE_BRANCH")),
            pull_request: pr,
            run_url: get("CIRCLE_BUILD_URL"),
            actor: get("CIRCLE_USERNAME"),
            repository,
            ..blank(Provider::Circleci)
        });
    }
    if is("BUILDKITE", "true") {
        let pr = get("BUILDKITE_PULL_REQUEST").filter(|p| p != "false");
        let event = if get("BUILDKITE_TAG").is_some() {
            Some("tag".to_string())
        } else if pr.is_some() {
            Some("pull_request".to_string())
        } else {
            match get("BUILDKITE_SOURCE").as_deref() {
                Some("webhook") => Some("push".to_string()),
                Some("ui") => Some("manual".to_string()),
                other => other.map(str::to_string),
            }
        };
        return Some(Ci {
            event,
            git_ref: get("BUILDKITE_TAG").or_else(|| get("BUILDKITE_BRANCH")),
            sha: get("BUILDKITE_COMMIT"),
            base_ref: pr.as_ref().and(get("BUILDKITE_PULL_REQUEST_BASE_BRANCH")),
            head_ref: pr.as_ref().and(get("BUILDKITE_BRANCH")),
            pull_request: pr,
            run_url: get("BUILDKITE_BUILD_URL"),
            actor: get("BUILDKITE_BUILD_CREATOR"),
            repository: get("BUILDKITE_PIPELINE_SLUG"),
            ..blank(Provider::Buildkite)
        });
    }
    if is("TF_BUILD", "true") {
        let pr = get("SYSTEM_PULLREQUEST_PULLREQUESTNUMBER")
            .or_else(|| get("SYSTEM_PULLREQUEST_PULLREQUESTID"));
        let event = get("BUILD_REASON").map(|r| match r.as_str() {
            "PullRequest" => "pull_request".to_string(),
            "IndividualCI" | "BatchedCI" => "push".to_string(),
            "Manual" => "manual".to_string(),
            "Schedule" => "schedule".to_string(),
            other => other.to_string(),
        });
        let strip = |b: String| b.strip_prefix("refs/heads/").map(str::to_string).unwrap_or(b);
        let run_url =
            match (get("SYSTEM_COLLECTIONURI"), get("SYSTEM_TEAMPROJECT"), get("BUILD_BUILDID")) {
                (Some(c), Some(p), Some(id)) => {
                    Some(format!("{}/{p}/_build/results?buildId={id}", c.trim_end_matches('/')))
                }
                _ => None,
            };
        return Some(Ci {
            event,
            git_ref: get("BUILD_SOURCEBRANCHNAME"),
            sha: get("BUILD_SOURCEVERSION"),
            base_ref: get("SYSTEM_PULLREQUEST_TARGETBRANCH").map(strip),
            head_ref: get("SYSTEM_PULLREQUEST_SOURCEBRANCH").map(strip),
            pull_request: pr,
            run_url,
            actor: get("BUILD_REQUESTEDFOR"),
            repository: get("BUILD_REPOSITORY_NAME"),
            environment: get("ENVIRONMENT_NAME"),
            ..blank(Provider::AzurePipelines)
        });
    }
    if get("BITBUCKET_BUILD_NUMBER").is_some() {
        let pr = get("BITBUCKET_PR_ID");
        let event = if get("BITBUCKET_TAG").is_some() {
            "tag"
        } else if pr.is_some() {
            "pull_request"
        } else {
            "push"
        };
        let run_url = get("BITBUCKET_GIT_HTTP_ORIGIN")
            .zip(get("BITBUCKET_BUILD_NUMBER"))
            .map(|(origin, n)| format!("{}/pipelines/results/{n}", origin.trim_end_matches('/')));
        return Some(Ci {
            event: Some(event.into()),
            git_ref: get("BITBUCKET_TAG").or_else(|| get("BITBUCKET_BRANCH")),
            sha: get("BITBUCKET_COMMIT"),
            base_ref: get("BITBUCKET_PR_DESTINATION_BRANCH"),
            head_ref: pr.as_ref().and(get("BITBUCKET_BRANCH")),
            pull_request: pr,
            run_url,
            actor: get("BITBUCKET_STEP_TRIGGERER_UUID"),
            repository: get("BITBUCKET_REPO_FULL_NAME"),
            environment: get("BITBUCKET_DEPLOYMENT_ENVIRONMENT"),
            ..blank(Provider::BitbucketPipelines)
        });
    }
    if get("JENKINS_URL").is_some() && (get("BUILD_ID").is_some() || get("BUILD_URL").is_some()) {
        let pr = get("CHANGE_ID");
        let event = if get("TAG_NAME").is_some() {
            "tag"
        } else if pr.is_some() {
            "pull_request"
        } else {
            "push"
        };
        let branch = get("BRANCH_NAME").or_else(|| {
            get("GIT_BRANCH").map(|b| b.strip_prefix("origin/").map(str::to_string).unwrap_or(b))
        });
        return Some(Ci {
            event: Some(event.into()),
            git_ref: get("TAG_NAME").or(branch),
            sha: get("GIT_COMMIT"),
            base_ref: get("CHANGE_TARGET"),
            head_ref: get("CHANGE_BRANCH"),
            pull_request: pr,
            run_url: get("BUILD_URL"),
            actor: get("CHANGE_AUTHOR").or_else(|| get("BUILD_USER_ID")),
            ..blank(Provider::Jenkins)
        });
    }
    if get("CI").is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0")) {
        return Some(blank(Provider::Unknown));
    }
    None
}

fn github_actions(get: &dyn Fn(&str) -> Option<String>, blank: Ci) -> Ci {
    // The event payload has what the variables do not: a pull request's head commit and number.
    let payload: Option<serde_json::Value> = get("GITHUB_EVENT_PATH")
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let pr = payload.as_ref().and_then(|p| p.get("pull_request"));
    let head_sha = pr.and_then(|p| p["head"]["sha"].as_str()).map(str::to_string);
    let number = pr.and_then(|p| p["number"].as_u64()).map(|n| n.to_string());
    let run_url = match (get("GITHUB_SERVER_URL"), get("GITHUB_REPOSITORY"), get("GITHUB_RUN_ID")) {
        (Some(server), Some(repo), Some(id)) => {
            let mut url = format!("{}/{repo}/actions/runs/{id}", server.trim_end_matches('/'));
            if let Some(attempt) = get("GITHUB_RUN_ATTEMPT").filter(|a| a != "1") {
                url.push_str(&format!("/attempts/{attempt}"));
            }
            Some(url)
        }
        _ => None,
    };
    let event = get("GITHUB_EVENT_NAME").map(|e| match e.as_str() {
        "pull_request" | "pull_request_target" => "pull_request".to_string(),
        "push" if get("GITHUB_REF_TYPE").as_deref() == Some("tag") => "tag".to_string(),
        "workflow_dispatch" => "manual".to_string(),
        other => other.to_string(),
    });
    Ci {
        event,
        git_ref: get("GITHUB_HEAD_REF").or_else(|| get("GITHUB_REF_NAME")),
        sha: head_sha.or_else(|| get("GITHUB_SHA")),
        base_ref: get("GITHUB_BASE_REF"),
        head_ref: get("GITHUB_HEAD_REF"),
        pull_request: number,
        run_url,
        actor: get("GITHUB_TRIGGERING_ACTOR").or_else(|| get("GITHUB_ACTOR")),
        repository: get("GITHUB_REPOSITORY"),
        environment: None,
        ..blank
    }
}

/// What pilum does differently in CI. Flags win over every one of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Defaults {
    /// `github` (plain lines, log groups, annotations, step summary), `plain` (one line per
    /// task start and end) or `terminal` (spinners, outside CI on a terminal).
    pub renderer: &'static str,
    /// Colour on streams that are not redirected to a file, where the log viewer shows it.
    pub colour: bool,
    /// Tasks at once when `--max-workers` is not given.
    pub workers: usize,
}

/// In CI, at least this many workers: tasks mostly wait on registries and cloud APIs, and CI
/// runners have 2 to 4 CPUs.
pub(crate) const MIN_CI_WORKERS: usize = 4;

pub(crate) fn defaults(ci: Option<&Ci>, cpus: usize, terminal: bool) -> Defaults {
    match ci {
        None => Defaults {
            renderer: if terminal { "terminal" } else { "plain" },
            colour: terminal,
            workers: cpus.max(1),
        },
        Some(ci) => Defaults {
            renderer: if ci.provider == Provider::GithubActions { "github" } else { "plain" },
            colour: ci.provider.renders_colour(),
            workers: cpus.max(MIN_CI_WORKERS),
        },
    }
}

/// The number of CPUs this process may use.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn nothing_outside_ci() {
        assert_eq!(detect(&env(&[])), None);
        assert_eq!(detect(&env(&[("CI", "false")])), None);
        assert_eq!(detect(&env(&[("CI", "true")])).map(|c| c.provider), Some(Provider::Unknown));
    }

    #[test]
    fn defaults_follow_the_provider() {
        let gh = detect(&env(&[("GITHUB_ACTIONS", "true")]));
        let d = defaults(gh.as_ref(), 2, false);
        assert_eq!(d, Defaults { renderer: "github", colour: true, workers: 4 });
        let jenkins = detect(&env(&[("JENKINS_URL", "https://ci.invalid/"), ("BUILD_ID", "7")]));
        assert_eq!(
            defaults(jenkins.as_ref(), 8, false),
            Defaults { renderer: "plain", colour: false, workers: 8 }
        );
        assert_eq!(
            defaults(None, 8, true),
            Defaults { renderer: "terminal", colour: true, workers: 8 }
        );
    }
}
