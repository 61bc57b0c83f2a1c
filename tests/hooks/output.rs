//! How `pilum status` shows its table: colour at a terminal unless `NO_COLOR`, `-q` for the
//! table alone.

use super::errors::with_deb;

#[test]
fn status_colours_health_at_a_terminal_unless_no_color() {
    let t = with_deb();
    let r = t.in_terminal("\"$PILUM\" status api");
    assert_eq!(r.status, 0, "{}", r.stdout);
    assert!(r.stdout.contains("\u{1b}[32mhealthy"), "healthy in green:\n{}", r.stdout);
    let r = t.in_terminal("NO_COLOR=1 \"$PILUM\" status api");
    assert_eq!(r.status, 0, "{}", r.stdout);
    assert!(r.stdout.contains("healthy"), "{}", r.stdout);
    assert!(!r.stdout.contains('\u{1b}'), "NO_COLOR: no escapes:\n{}", r.stdout);
}

#[test]
fn quiet_status_prints_the_table_alone() {
    let t = with_deb();
    let r = crate::catalogue::harness::run_with(&t, &["-q", "status"]).success();
    assert!(r.stderr.trim().is_empty(), "nothing but the table: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "a header and one row per region:\n{}", r.stdout);
}

/// The hooks example of `docs/recipes.md` ("Hooks"), in a recipe of its own, against a fake
/// `mycloud`.
#[test]
fn the_hooks_example_in_the_guide_runs() {
    let guide = include_str!("../../docs/recipes.md");
    let start =
        guide.find("```rhai\nimport \"pkg\" as pkg;\n\nfn status(ctx)").expect("the example");
    let body = &guide[start + "```rhai\n".len()..];
    let body = &body[..body.find("```").expect("its end")];
    let recipe = format!(
        "{body}\nfn recipe() {{\n    #{{ name: \"mycloud\", description: \"example\", fields: [],\n       steps: [#{{ name: \"deploy\", tags: [\"deploy\"], run: \"deploy\" }}] }}\n}}\nfn deploy(ctx) {{}}\n"
    );
    let mycloud = r#"case "$1" in
  describe) printf '{"revision":"web-3","image_tag":"v3","url":"https://web.example","ready":false,"message":"2 of 3 instances crashing"}' ;;
  revisions) printf '[{"name":"web-3"},{"name":"web-2"}]' ;;
  logs) echo "GET / 200" ;;
esac"#;
    let t = crate::common::Test::new()
        .file("recipes/mycloud.rhai", &recipe)
        .file("web/pilum.yaml", "name: web\nrecipe: mycloud\n")
        .fake("mycloud", mycloud);
    let run = crate::catalogue::harness::run_with;
    let r = run(&t, &["status", "--json"]).success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    assert_eq!(v[0]["revision"], "web-3", "{v}");
    assert_eq!(v[0]["health"], "unhealthy", "{v}");
    assert_eq!(v[0]["detail"], "2 of 3 instances crashing", "{v}");
    let r = run(&t, &["logs", "web", "--since", "90m"]).success();
    assert_eq!(r.stdout.trim(), "GET / 200");
    let r = run(&t, &["rollback", "web"]).success();
    assert!(r.stdout.contains("rolled back `web`, live: `web-2`"), "{}", r.stdout);
    let calls = t.calls("mycloud");
    assert!(
        calls.contains(&vec!["logs".into(), "web".into(), "--since".into(), "90m".into()]),
        "{calls:?}"
    );
    assert_eq!(
        calls.last(),
        Some(&vec!["traffic".into(), "web".into(), "--to".into(), "web-2".into()])
    );
}

/// `--json`: each log line is an NDJSON `log` event naming its service and region; a rollback
/// is one `rollback` event per target saying where its revision came from.
#[test]
fn logs_and_rollback_as_ndjson() {
    let t = crate::catalogue::containers::cloud_run().project();
    let run = crate::catalogue::harness::run_with;
    let r = run(&t, &["--json", "logs", "api", "--region", "europe-west1"]).success();
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not NDJSON ({e}): {l}")))
        .collect();
    assert_eq!(events.len(), 2, "{}", r.stdout);
    assert_eq!(
        events[0],
        serde_json::json!({"event": "log", "service": "api", "region": "europe-west1",
                           "stream": "stdout", "line": "2025-05-02 10:00:01 INFO started"})
    );
    let r = run(&t, &["--json", "rollback", "api", "--region", "us-central1"]).success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one event");
    assert_eq!(v["event"], "rollback");
    assert_eq!(v["to_source"], "provider", "no history: the provider's previous revision");
    assert_eq!(v["revision"], "api-00001-abc");
    assert_eq!(v["ok"], true);
    let r =
        run(&t, &["--json", "rollback", "api", "--region", "us-central1", "--to", "api-00002-xyz"])
            .success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one event");
    assert_eq!((v["to"].as_str(), v["to_source"].as_str()), (Some("api-00002-xyz"), Some("flag")));
}
