//! GitHub commit statuses and deployments against a loopback API: method, path, the documented
//! headers and the JSON bodies of docs.github.com/rest (commit statuses, deployments,
//! deployment statuses), rate limits retried, failures only warnings, the token never printed.

use std::time::{SystemTime, UNIX_EPOCH};

use super::project;
use crate::common::receiver::{Receiver, Reply, Request};

const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
const TOKEN: &str = "ghs_loopbacktoken0123456789";

/// Deployments get ids 100, 101, … by creation order; everything else is 201 `{}`.
fn api() -> Receiver {
    let next = std::sync::atomic::AtomicU64::new(100);
    Receiver::start(move |q, _| {
        if q.path.ends_with("/deployments") {
            let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Reply::json(201, serde_json::json!({"id": id, "environment": q.json()["environment"]}))
        } else {
            Reply::json(201, serde_json::json!({}))
        }
    })
}

fn in_actions(t: crate::common::Test, api: &str) -> crate::common::Test {
    t.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_API_URL", api)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_EVENT_NAME", "push")
}

fn check_headers(q: &Request) {
    assert_eq!(q.method, "POST", "{}", q.path);
    assert_eq!(q.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(q.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(q.header("x-github-api-version"), Some("2022-11-28"));
    assert_eq!(q.header("content-type"), Some("application/json"));
    assert!(
        q.header("user-agent").is_some_and(|u| u.starts_with("pilum/")),
        "GitHub requires a User-Agent"
    );
}

#[test]
fn statuses_and_deployments_follow_each_service() {
    let gh = api();
    let t = in_actions(project("github:\n  statuses: true\n", Some("quota exceeded")), &gh.url);
    let r = t.args(["deploy", "--env", "staging", "--github-deployments"]).run().code(1);
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN), "the token is never printed");
    let reqs = gh.requests();
    for q in &reqs {
        check_headers(q);
    }
    let run_url = "https://github.com/acme/shop/actions/runs/4242";
    let statuses: Vec<serde_json::Value> = reqs
        .iter()
        .filter(|q| q.path == format!("/repos/acme/shop/statuses/{SHA}"))
        .map(Request::json)
        .collect();
    let of = |ctx: &str| -> Vec<String> {
        statuses
            .iter()
            .filter(|s| s["context"] == ctx)
            .map(|s| s["state"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    assert_eq!(of("pilum/api/staging"), ["pending", "success"], "{statuses:#?}");
    assert_eq!(of("pilum/web/staging"), ["pending", "failure"], "{statuses:#?}");
    for s in &statuses {
        assert_eq!(s["target_url"], run_url);
        assert!(
            s["description"].as_str().is_some_and(|d| !d.is_empty() && d.chars().count() <= 140),
            "{s}"
        );
    }
    let failure = statuses.iter().find(|s| s["state"] == "failure").expect("failure");
    assert!(
        failure["description"].as_str().expect("description").contains("quota exceeded"),
        "{failure}"
    );

    let created: Vec<serde_json::Value> = reqs
        .iter()
        .filter(|q| q.path == "/repos/acme/shop/deployments")
        .map(Request::json)
        .collect();
    assert_eq!(created.len(), 2);
    for d in &created {
        assert_eq!(d["ref"], SHA);
        assert_eq!(d["auto_merge"], false);
        assert_eq!(d["required_contexts"], serde_json::json!([]));
        assert_eq!(d["transient_environment"], false);
        assert_eq!(d["production_environment"], false);
        assert_eq!(d["task"], "deploy");
    }
    let envs: Vec<&str> = created.iter().map(|d| d["environment"].as_str().expect("env")).collect();
    assert!(envs.contains(&"staging/api") && envs.contains(&"staging/web"), "{envs:?}");
    // The id GitHub gave each deployment is used for its statuses.
    let id_of = |env: &str| 100 + envs.iter().position(|e| *e == env).expect("created") as u64;
    let dstatus = |id: u64| -> Vec<serde_json::Value> {
        reqs.iter()
            .filter(|q| q.path == format!("/repos/acme/shop/deployments/{id}/statuses"))
            .map(Request::json)
            .collect()
    };
    let api_st = dstatus(id_of("staging/api"));
    assert_eq!(
        api_st.iter().map(|s| s["state"].as_str().unwrap_or("?")).collect::<Vec<_>>(),
        ["in_progress", "success"]
    );
    assert_eq!(
        api_st[1]["environment_url"], "https://api.example.test",
        "the URL the deploy step returned"
    );
    assert_eq!(api_st[1]["log_url"], run_url);
    let web_st = dstatus(id_of("staging/web"));
    assert_eq!(
        web_st.iter().map(|s| s["state"].as_str().unwrap_or("?")).collect::<Vec<_>>(),
        ["in_progress", "failure"]
    );
    assert!(web_st[1].get("environment_url").is_none());
}

#[test]
fn previews_are_transient_and_statuses_need_no_environment() {
    let gh = api();
    let t =
        in_actions(project("github:\n  deployments: true\n  transient: ['pr-*']\n", None), &gh.url);
    t.args(["deploy", "--github-statuses"]).run().success();
    let reqs = gh.requests();
    let st: Vec<serde_json::Value> =
        reqs.iter().filter(|q| q.path.contains("/statuses/")).map(Request::json).collect();
    assert_eq!(
        st.iter().map(|s| s["context"].as_str().unwrap_or("?")).collect::<Vec<_>>(),
        ["pilum/api", "pilum/api"]
    );
    let d = reqs.iter().find(|q| q.path.ends_with("/deployments")).expect("deployment").json();
    assert_eq!(d["environment"], "production/api");
    assert_eq!(d["production_environment"], true);

    let gh = api();
    let t =
        in_actions(project("github:\n  deployments: true\n  transient: ['pr-*']\n", None), &gh.url)
            .file("api/pilum.yaml", "name: api\nrecipe: site\nenvironments:\n  pr-42: {}\n");
    t.args(["deploy", "--env", "pr-42"]).run().success();
    let d =
        gh.requests().iter().find(|q| q.path.ends_with("/deployments")).expect("deployment").json();
    assert_eq!(
        (d["environment"].as_str(), d["transient_environment"].as_bool()),
        (Some("pr-42/api"), Some(true))
    );
    assert_eq!(d["production_environment"], false);
}

#[test]
fn rate_limits_are_waited_out_and_failures_are_warnings() {
    let reset = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 1;
    let gh = Receiver::start(move |_, n| match n {
        0 => Reply::With(
            403,
            vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset.to_string())],
            r#"{"message":"API rate limit exceeded"}"#.into(),
        ),
        1 => Reply::With(429, vec![("retry-after", "1".into())], "{}".into()),
        _ => Reply::json(201, serde_json::json!({})),
    });
    let t = in_actions(project("github:\n  statuses: true\n", None), &gh.url);
    let r = t.args(["deploy"]).run().success();
    let reqs = gh.requests();
    assert_eq!(reqs.len(), 4, "pending tried 3 times, then success");
    assert_eq!(reqs[0].body, reqs[2].body, "the same status, retried");
    assert!(!r.stderr.contains("GitHub"), "{}", r.stderr);

    let gh = Receiver::start(|_, _| {
        Reply::json(422, serde_json::json!({"message": "Validation Failed"}))
    });
    let t = in_actions(project("github:\n  statuses: true\n", None), &gh.url);
    let r = t.args(["deploy"]).run().success();
    assert_eq!(gh.requests().len(), 2, "a 422 is not retried");
    assert!(
        r.stderr
            .contains("GitHub: cannot set the `pending` status of `api`: 422 Validation Failed"),
        "{}",
        r.stderr
    );
}

#[test]
fn without_a_token_statuses_are_skipped_with_a_warning() {
    let t = project("github:\n  statuses: true\n", None).env("GITHUB_ACTIONS", "true");
    let r = t.args(["deploy"]).run().success();
    assert!(
        r.stderr.contains("GitHub statuses and deployments are on, but `GITHUB_TOKEN` is not set"),
        "{}",
        r.stderr
    );
}
