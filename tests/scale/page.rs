//! The status page, loaded in headless Chromium against a running server: the DOM shows each
//! pool's values, and a screenshot is saved as a test artefact.

use super::*;

/// Run headless Chromium with `args` then `url`; fails naming the tool when it is missing.
fn chromium(profile: &Path, args: &[String], url: &str) -> std::process::Output {
    let out = crate::common::chromium(profile).args(args).arg(url).output().expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn two_pools() -> Test {
    let extra = format!(
        "  web:\n    project: infra\n    stack: prod\n    key: infra:web\n    targets: [\"{URN}\"]\n    min: 2\n    max: 8\n"
    );
    let t = project("", 3);
    let yaml = std::fs::read_to_string(t.path().join("pilum-scale.yaml")).expect("pools");
    t.file("pilum-scale.yaml", &format!("{yaml}{extra}"))
        .file("infra/Pulumi.prod.yaml", "config:\n  infra:count: \"3\"\n  infra:web: \"2\"\n")
}

#[test]
fn the_status_page_shows_every_pool_in_a_real_browser() {
    let t = two_pools();
    let server = serve(&t, &[]);
    assert_eq!(server.post("/webhook/workers/delta", r#"{"delta": 2}"#).status, 202);
    server.wait_pool("applied 5", |p| p["applied"] == 5);
    let r = server.post("/pools/web/pause", r#"{"reason": "maintenance window"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    // Without a token: the login form, not the data.
    let r = server.request("GET", "/", &[], "");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("action=\"/login\"") && !r.body.contains("data-pool"), "{}", r.body);
    let url = format!("http://{}/?token={TOKEN}", server.addr);
    let profile = tempfile::tempdir().expect("profile dir");
    let dom = String::from_utf8(chromium(profile.path(), &["--dump-dom".into()], &url).stdout)
        .expect("utf-8 DOM");
    for (pool, desired) in [("workers", "5"), ("web", "2")] {
        let start =
            dom.find(&format!("data-pool=\"{pool}\"")).unwrap_or_else(|| panic!("{pool}: {dom}"));
        let section = &dom[start..];
        let section = &section[..section.find("</section>").unwrap_or(section.len())];
        assert!(
            section.contains(&format!("<td class=\"num desired\">{desired}</td>")),
            "{pool}: {section}"
        );
        assert!(
            section.contains(&format!("<td class=\"num applied\">{desired}</td>")),
            "{pool}: {section}"
        );
    }
    assert!(dom.contains("maintenance window"), "the pause shows: {dom}");
    assert!(dom.contains("requested delta"), "the last decision's reason shows: {dom}");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&shots).expect("artefact dir");
    let png = shots.join("status-page.png");
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1100,900".into(),
            "--hide-scrollbars".into(),
        ],
        &url,
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    println!("status page screenshot: {}", png.display());
}

#[test]
fn the_login_form_sets_a_cookie_and_a_public_page_needs_none() {
    let t = project("", 3);
    let server = serve(&t, &[]);
    let r = server.request(
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "token=nope",
    );
    assert_eq!(r.status, 403);
    let r = server.request(
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.headers.contains("set-cookie: pilum_scale_token="), "{}", r.headers);
    assert!(
        r.headers.contains("httponly") && r.headers.contains("samesite=strict"),
        "{}",
        r.headers
    );
    let r = server.request("GET", "/", &[("Cookie", &format!("pilum_scale_token={TOKEN}"))], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data-pool=\"workers\""), "{}", r.body);
    drop(server);
    let server = serve(&t, &["--status-page-public"]);
    let r = server.request("GET", "/", &[], "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("data-pool=\"workers\""), "{}", r.body);
    // The API stays protected.
    assert_eq!(
        server.request("POST", "/webhook/workers/delta", &[], r#"{"delta": 1}"#).status,
        401
    );
}
