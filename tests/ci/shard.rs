//! Matrix shards: `plan --shard I/N` splits the services into whole `depends_on` components,
//! deterministically and balanced; `plan --matrix github` prints the `include` list; `deploy
//! --shard I/N` runs only its shard.

use std::collections::BTreeSet;

use crate::common::Test;
use crate::deploy::{project, shell_service};

/// a ← b (b depends on a), c, d ← e ← f, g, h.
fn monorepo() -> Test {
    let mut t = project(0);
    for (s, deps) in [
        ("a", vec![]),
        ("b", vec!["a"]),
        ("c", vec![]),
        ("d", vec![]),
        ("e", vec!["d"]),
        ("f", vec!["e"]),
        ("g", vec![]),
        ("h", vec![]),
    ] {
        t = t.file(&format!("{s}/pilum.yaml"), &shell_service(s, &deps));
    }
    t
}

/// The same project with other arguments.
fn with(t: Test, args: &[&str]) -> Test {
    t.clear_args().args(args)
}

/// The services of the plan `args` print as JSON.
fn planned(t: Test, args: &[&str]) -> (Test, Vec<String>) {
    let t = with(t, args);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("plan JSON");
    let names = v["plan"]["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect();
    (t, names)
}

#[test]
fn shards_are_whole_components_balanced_and_stable() {
    let (mut t, all) = planned(monorepo(), &["plan", "--json"]);
    let all: BTreeSet<String> = all.into_iter().collect();
    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let (t1, names) = planned(t, &["plan", "--json", "--shard", &shard]);
        let (t2, again) = planned(t1, &["plan", "--json", "--shard", &shard]);
        t = t2;
        assert_eq!(names, again, "deterministic");
        for n in &names {
            assert!(seen.insert(n.clone()), "`{n}` is in two shards");
        }
        let has = |s: &str| names.iter().any(|n| n == s);
        assert_eq!(has("a"), has("b"), "a and b stay together: {names:?}");
        assert_eq!(has("d"), has("e"), "d, e, f stay together: {names:?}");
        assert_eq!(has("e"), has("f"), "d, e, f stay together: {names:?}");
        sizes.push(names.len());
    }
    assert_eq!(seen, all, "every service is in one shard");
    // 3 tasks per service: components of 9, 6, 3, 3, 3 tasks over three shards: 9 / 6+3 / 3+3.
    sizes.sort_unstable();
    assert_eq!(sizes, vec![2, 3, 3]);

    let r = with(t, &["plan", "--shard", "4/3"]).run().code(2);
    assert!(r.stderr.contains("`--shard`: `4/3` is not a shard"), "{}", r.stderr);
}

#[test]
fn the_github_matrix_lists_each_shard() {
    let t = with(monorepo(), &["plan", "--matrix", "github", "--shards", "3"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("matrix JSON");
    let include = v["include"].as_array().expect("include").clone();
    assert_eq!(include.len(), 3);
    let mut t = t;
    for (i, e) in include.iter().enumerate() {
        assert_eq!(e["shard"], format!("{}/3", i + 1));
        assert_eq!((e["index"].as_u64(), e["total"].as_u64()), (Some(i as u64 + 1), Some(3)));
        let services: Vec<String> =
            e["services"].as_str().expect("services").split(' ').map(str::to_string).collect();
        let (t2, names) =
            planned(t, &["plan", "--json", "--shard", e["shard"].as_str().expect("shard")]);
        t = t2;
        assert_eq!(services, names);
        assert_eq!(e["tasks"].as_u64(), Some(3 * services.len() as u64));
    }
    // Without `--shards`: one per component, at most 8; here 5 components.
    let t = with(t, &["plan", "--matrix", "github"]);
    let r = t.run().success();
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("matrix JSON");
    assert_eq!(v["include"].as_array().expect("include").len(), 5);
    let r = with(t, &["deploy", "--matrix", "github"]).run().code(2);
    assert!(r.stderr.contains("`--matrix` is an option of `pilum plan`"), "{}", r.stderr);
}

#[test]
fn deploy_runs_only_its_shard() {
    let (t, names) = planned(monorepo(), &["plan", "--json", "--shard", "2/3"]);
    let t = with(t, &["deploy", "--shard", "2/3"]);
    t.run().success();
    let ran: BTreeSet<String> = t.calls("step").into_iter().map(|argv| argv[0].clone()).collect();
    assert_eq!(ran, names.into_iter().collect::<BTreeSet<_>>());
}
