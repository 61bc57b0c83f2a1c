//! `examples/custom-recipe`: a provider pilum does not ship (Render), added as a project-local
//! recipe and deployed with fake `docker` and `curl`, no recompiling.

use std::path::Path;

use super::harness::{TAG, run_with, strict, transcript};
use crate::common::Test;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/custom-recipe");

/// A fake Render API: checks the key arrived on stdin, then answers the deploy and two status
/// polls (`update_in_progress`, then `final`).
fn curl(final_status: &str) -> String {
    format!(
        r#"grep -q 'header = "Authorization: Bearer rnd_SECRET_key"' || {{ echo 'no key on stdin' >&2; exit 22; }}
n=$(cat [ROOT]/.calls/polls 2>/dev/null || echo 0)
case "$*" in
  *"--request POST"*) printf '{{"id":"dep-42","status":"created"}}' ;;
  *) n=$((n+1)); echo $n > [ROOT]/.calls/polls
     if [ $n -lt 2 ]; then printf '{{"id":"dep-42","status":"update_in_progress"}}'; else printf '{{"id":"dep-42","status":"{final_status}"}}'; fi ;;
esac"#
    )
}

fn project(final_status: &str) -> Test {
    let t = Test::new();
    crate::common::copy_dir(Path::new(EXAMPLE), t.path(), &[]);
    let root = t.path().display().to_string();
    let yaml = t.path().join("services/web/pilum.yaml");
    let text = std::fs::read_to_string(&yaml).expect("pilum.yaml");
    std::fs::write(
        &yaml,
        text.replace("  registry_user: acme\n", "  registry_user: acme\n  poll_interval: 0\n"),
    )
    .expect("write");
    t.fake("docker", &strict("docker", r#"[ "$1" = login ] && cat > /dev/null; :"#))
        .fake("curl", &strict("curl", &curl(final_status).replace("[ROOT]", &root)))
        .env("DOCKERHUB_TOKEN", "dckr_pat_SECRET")
        .env("RENDER_API_KEY", "rnd_SECRET_key")
}

#[test]
fn the_project_recipe_is_listed_and_checked() {
    let t = project("live");
    let r = run_with(&t, &["list", "--recipes"]);
    assert_eq!(r.status, 0, "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("render"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("recipes/render.rhai"), "{line}");
    run_with(&t, &["check"]).success();
}

#[test]
fn the_custom_recipe_deploys_to_render() {
    let t = project("live");
    let r = run_with(&t, &["deploy", "-v", "--tag", TAG]);
    assert_eq!(r.status, 0, "{}\n{}", r.stdout, r.stderr);
    let calls = transcript(&t, &["docker", "curl"]);
    assert_eq!(
        calls,
        "docker buildx build --file Dockerfile --tag acme/web:v1.2.3 --platform linux/amd64 --load .\n\
         docker login --username acme --password-stdin docker.io\n\
         docker tag acme/web:v1.2.3 docker.io/acme/web:v1.2.3\n\
         docker push docker.io/acme/web:v1.2.3\n\
         curl --silent --show-error --fail-with-body --config - --request POST --header 'Accept: application/json' --header 'Content-Type: application/json' --data '{\"imageUrl\":\"docker.io/acme/web:v1.2.3\"}' https://api.render.com/v1/services/srv-d0abc123example/deploys\n\
         curl --silent --show-error --fail-with-body --config - --request GET --header 'Accept: application/json' https://api.render.com/v1/services/srv-d0abc123example/deploys/dep-42\n\
         curl --silent --show-error --fail-with-body --config - --request GET --header 'Accept: application/json' https://api.render.com/v1/services/srv-d0abc123example/deploys/dep-42"
    );
    for secret in ["rnd_SECRET_key", "dckr_pat_SECRET"] {
        assert!(!calls.contains(secret));
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{}{}",
            r.stdout,
            r.stderr
        );
    }
}

#[test]
fn a_failed_render_deploy_fails_with_its_status() {
    let t = project("update_failed");
    let r = run_with(&t, &["deploy", "--tag", TAG]);
    assert_eq!(r.status, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(
            "Render deploy `dep-42` of service `srv-d0abc123example` ended as `update_failed`"
        ),
        "{all}"
    );
}

#[test]
fn pilum_docs_documents_the_project_recipe_too() {
    let t = project("live");
    run_with(&t, &["docs", "--out", "pages"]).success();
    let page = std::fs::read_to_string(t.path().join("pages/render.md")).expect("render page");
    assert!(page.starts_with("# `render`\n"), "{page}");
    assert!(page.contains("| `service_id` | `string`, **required** |"), "{page}");
    assert!(
        page.contains("The API key travels on curl's stdin"),
        "the header comment is the prose: {page}"
    );
    let index = std::fs::read_to_string(t.path().join("pages/README.md")).expect("index");
    assert!(
        index.contains("[`render`](render.md)") && index.contains("[`fly`](fly.md)"),
        "{index}"
    );
}
