//! The run report of a real run: one bar per task with its outcome's class, the barriers in
//! phase order, tooltips, the critical path, masked secrets; the saved run drawn again by
//! `pilum report`; the GitHub step summary; refusals before anything runs.

use super::{
    SECRET, deploy, expected_outcome, find, has_class, monorepo, parse, plan_labels, tooltip,
};
use crate::common::Test;

fn read(t: &Test, rel: &str) -> String {
    std::fs::read_to_string(t.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn saved_runs(t: &Test) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(t.path().join(".pilum/runs")) else { return Vec::new() };
    let mut v: Vec<String> =
        dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn one_bar_per_task_coloured_by_outcome() {
    let (t, labels) = plan_labels(monorepo());
    let t = deploy(t);
    let html = read(&t, "run.html");
    let doc = parse(&html);
    let bars = find(&doc, "g", "bar");
    assert_eq!(bars.len(), labels.len(), "one bar per task of the plan");
    for (id, label) in labels.iter().enumerate() {
        let bar = bars
            .iter()
            .find(|b| b.attribute("data-task") == Some(id.to_string().as_str()))
            .unwrap_or_else(|| panic!("no bar for task {id} ({label})"));
        let want = expected_outcome(label);
        assert!(has_class(*bar, want), "{label}: class {:?}, want {want}", bar.attribute("class"));
        assert_eq!(bar.attribute("data-outcome"), Some(want), "{label}");
        let phase = bar.attribute("data-phase").expect("data-phase");
        let index =
            ["build", "push", "deploy"].iter().position(|p| *p == phase).expect("a known phase");
        assert!(has_class(*bar, &format!("phase-{index}")), "{label}: colour of phase {phase}");
        let tip = tooltip(*bar);
        assert!(tip.starts_with(&format!("{label} — ")), "{label}: tooltip {tip:?}");
        // What ran has a duration and a hatched first attempt when it was retried.
        let attempts = bar.children().filter(|c| has_class(*c, "attempt")).count();
        let failed = bar.children().filter(|c| has_class(*c, "failed-attempt")).count();
        match want {
            "retried" => assert_eq!((attempts, failed), (2, 1), "{label}"),
            "skipped" => {
                assert_eq!(attempts, 0, "{label}");
                assert!(tip.contains("skipped: "), "{label}: {tip}");
            }
            _ => assert_eq!((attempts, failed), (1, 0), "{label}"),
        }
    }
    let tip = |label: &str| {
        let id = labels.iter().position(|l| l == label).unwrap().to_string();
        tooltip(*bars.iter().find(|b| b.attribute("data-task") == Some(id.as_str())).unwrap())
    };
    let broken = tip("broken/build");
    assert!(broken.contains("command: echo about to fail; exit 3"), "{broken}");
    assert!(broken.contains("exit code 3"), "{broken}");
    assert!(broken.contains("about to fail"), "the tail of its output: {broken}");
    assert!(broken.contains("services/broken/pilum.yaml:"), "where the step is: {broken}");
    let flaky = tip("flaky/build");
    assert!(flaky.contains("2 attempts") && flaky.contains("exit code 0"), "{flaky}");
    assert!(flaky.contains("recovered"), "{flaky}");
    assert!(tip("db/build").contains("command: echo building db"));
    // Barriers: one per phase, in phase order, left to right.
    let barriers = find(&doc, "line", "barrier");
    let phases: Vec<&str> = barriers.iter().map(|b| b.attribute("data-phase").unwrap()).collect();
    assert_eq!(phases, ["build", "push", "deploy"]);
    let xs: Vec<f64> =
        barriers.iter().map(|b| b.attribute("x1").unwrap().parse().unwrap()).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "barriers left to right: {xs:?}");
    // Every bar of a phase starts at or after its barrier.
    for bar in &bars {
        let phase = bar.attribute("data-phase").unwrap();
        let bx = xs[phases.iter().position(|p| *p == phase).unwrap()];
        for r in bar.children().filter(|c| c.tag_name().name() == "rect") {
            let x: f64 = r.attribute("x").unwrap().parse().unwrap();
            assert!(x + 0.11 >= bx, "a {phase} bar at {x} before its barrier at {bx}");
        }
    }
    // The critical path: at least the last task to end, outlined and joined.
    let critical: Vec<_> = bars.iter().filter(|b| has_class(**b, "critical")).collect();
    assert!(!critical.is_empty());
    assert!(critical.iter().all(|b| !has_class(**b, "skipped")));
    let summary = doc.descendants().find(|n| n.attribute("id") == Some("status")).unwrap();
    assert_eq!(summary.text(), Some("failed"));
    assert!(html.contains("critical path</th>"), "the summary names the critical path");
    assert!(html.contains("<h2>problems</h2>"));
    // No secret, no asset, no script.
    assert!(!html.contains(SECRET), "the secret leaked into the report");
    assert!(html.contains("api uses ***"), "the masked command is shown");
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    assert!(html.contains("default-src 'none'"), "the page forbids loading anything");
}

#[test]
fn a_saved_run_is_drawn_again_the_same() {
    let t = deploy(monorepo());
    let saved = saved_runs(&t);
    assert_eq!(saved.len(), 1, "{saved:?}");
    let id = saved[0].trim_end_matches(".json").to_string();
    assert!(id.ends_with("-deploy"), "{id}");
    let json = read(&t, &format!(".pilum/runs/{id}.json"));
    assert!(!json.contains(SECRET), "the secret leaked into the saved run");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], 1);
    assert!(v["events"].as_array().unwrap().iter().all(|e| e["us"].is_u64()));

    let t = t.args(["report", "--list"]);
    let r = t.run().success();
    assert!(r.stdout.starts_with("RUN "), "{}", r.stdout);
    assert!(r.stdout.contains(&id) && r.stdout.contains("failed"), "{}", r.stdout);
    let t = t.clear_args().args(["report", "--list", "--json"]);
    let r = t.run().success();
    let line: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(line["id"], id.as_str());
    assert_eq!(line["tasks"], 13);

    let first = read(&t, "run.html");
    let t = t.clear_args().args(["report", id.as_str(), "-o", "again.html"]);
    t.run().success();
    assert_eq!(read(&t, "again.html"), first, "the saved run draws the same page");
    let t = t.clear_args().arg("report");
    let r = t.run().success();
    assert_eq!(r.stdout, first, "the latest run, on stdout");
}

#[test]
fn github_actions_get_the_summary_and_an_artifact_hint() {
    let t = monorepo();
    let summary = t.path().join("summary.md");
    let t = t.env("GITHUB_ACTIONS", "true").env("GITHUB_STEP_SUMMARY", &summary);
    let t = deploy(t);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("#### pilum deploy: where the time went"), "{md}");
    assert!(md.contains("| `build` | 5 |"), "{md}");
    assert!(md.contains("**Critical path**"), "{md}");
    assert!(md.contains("`flaky/build` (2 attempts, ok after retries)"), "{md}");
    assert!(md.contains("actions/upload-artifact") && md.contains("path: run.html"), "{md}");
    assert!(!md.contains(SECRET));
    assert!(t.path().join("run.html").exists());
}

#[test]
fn dry_runs_are_drawn_but_not_saved() {
    let t = monorepo().args(["dry-run", "--report", "dry.html"]);
    t.run().success();
    let html = read(&t, "dry.html");
    assert!(html.contains("pilum deploy (dry run)"), "{}", &html[..600]);
    assert_eq!(find(&parse(&html), "g", "bar").len(), 13);
    assert!(saved_runs(&t).is_empty(), "a dry run is not saved");
}

#[test]
fn bad_report_requests_are_refused_before_anything_runs() {
    let mut t = monorepo();
    std::fs::create_dir_all(t.path().join("out.html")).unwrap();
    for (args, says) in [
        (vec!["deploy", "--report", "run.txt"], "an HTML page (`.html`) or the outcome as JSON"),
        (vec!["deploy", "--report", "a.html", "--report", "b.htm"], "the same kind of report"),
        (vec!["deploy", "--report", "no/such/dir/run.html"], "does not exist"),
        (vec!["build", "--report", "out.html"], "is a directory"),
        (vec!["plan", "--report", "run.html"], "`pilum plan` runs nothing"),
        (vec!["report"], "there is no saved run"),
        (vec!["report", "../../etc/passwd"], "run id"),
    ] {
        t = t.clear_args().args(&args);
        let r = t.run().code(2);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    assert!(!t.path().join("services/flaky/.tried").exists(), "nothing ran");
    assert!(saved_runs(&t).is_empty(), "nothing ran");
    let t = t.clear_args();
    // A damaged saved run, and a name that is not there.
    let t = deploy(t);
    let id = saved_runs(&t)[0].trim_end_matches(".json").to_string();
    let t = t.args(["report", &id[..id.len() - 1]]);
    let r = t.run().code(2);
    assert!(
        r.stderr.contains("there is no saved run")
            && r.stderr.contains(&format!("did you mean `{id}`?")),
        "{}",
        r.stderr
    );
    std::fs::write(t.path().join(format!(".pilum/runs/{id}.json")), "{\"format\": 1, \"tasks\": [")
        .unwrap();
    let t = t.clear_args().args(["report", id.as_str()]);
    let r = t.run().code(2);
    assert!(r.stderr.contains("cannot be drawn") && r.stderr.contains("help: "), "{}", r.stderr);
    let r = t.clear_args().args(["report", "--list"]).run().success();
    assert!(r.stdout.contains("unreadable"), "{}", r.stdout);
}
