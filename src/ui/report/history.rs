//! The history timeline: per service and environment, the deploys over time — a marker per
//! deploy coloured by outcome, its version beside it when there is room, rollbacks drawn as
//! diamonds, and each row's durations as a small trend line — with filters by service and
//! environment (two `<select>`s and a few lines of inline script, also read from the address:
//! `history.html#service=api&env=prod`). One HTML page, nothing loaded.
//!
//! It draws whatever deploy records it is given as [`Deploy`]s; `pilum history --html` feeds it
//! the deploy records of the state backend. Each deploy is one `g.deploy` with its
//! outcome's class (`ok`, `failed`, `interrupted`) and `rollback` when it is one; each row a
//! `div.history-row` with `data-service` and `data-env`.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::markup::{BASE_STYLE, cut, esc, num, page};
use super::timeline::human_us;

/// One deploy of one service to one environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deploy {
    pub service: String,
    pub environment: Option<String>,
    pub started: DateTime<Utc>,
    pub duration_ms: u64,
    pub version: String,
    pub outcome: Outcome,
    /// It deployed an earlier version again.
    pub rollback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Failed,
    Interrupted,
}

impl Outcome {
    fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What a deploy without an environment is filed under.
const NO_ENV: &str = "(none)";
const LABEL_W: f64 = 230.0;
const PLOT_W: f64 = 900.0;
const TREND_W: f64 = 150.0;
const ROW_H: f64 = 30.0;
const VERSION_PX: f64 = 6.2;

const STYLE: &str = "\
.filters { margin: 8px 0 12px; display: flex; gap: 16px; }
.history-row svg, .history-axis svg { display: block; }
.history-row:nth-child(even) { background: #f6f8fa; }
.history text { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 11px; fill: #1f2328; }
.history .version { font-size: 10px; fill: #57606a; }
.history .tick { stroke: #d0d7de; }
.history .tick-label { fill: #57606a; font-size: 10px; }
.history .lane { stroke: #d0d7de; stroke-width: 1; }
.deploy .mark { stroke: #fff; stroke-width: 1; }
.deploy.ok .mark { fill: #1a7f37; }
.deploy.failed .mark { fill: #d1242f; }
.deploy.interrupted .mark { fill: #bf8700; }
.deploy.rollback .mark { stroke: #1f2328; stroke-width: 1.5; }
.trend { fill: none; stroke: #0969da; stroke-width: 1.2; }
.trend-label { fill: #57606a; font-size: 10px; }";

const SCRIPT: &str = "\
const service = document.getElementById('filter-service');
const env = document.getElementById('filter-env');
function apply() {
  for (const row of document.querySelectorAll('.history-row')) {
    row.hidden = (service.value !== '' && row.dataset.service !== service.value) || (env.value !== '' && row.dataset.env !== env.value);
  }
}
service.onchange = apply;
env.onchange = apply;
const asked = new URLSearchParams(location.hash.slice(1));
if (asked.has('service')) service.value = asked.get('service');
if (asked.has('env')) env.value = asked.get('env');
apply();";

/// The history page of `deploys` (in any order).
pub(crate) fn html(deploys: &[Deploy]) -> String {
    let mut rows: BTreeMap<(&str, &str), Vec<&Deploy>> = BTreeMap::new();
    for d in deploys {
        rows.entry((d.service.as_str(), d.environment.as_deref().unwrap_or(NO_ENV)))
            .or_default()
            .push(d);
    }
    for r in rows.values_mut() {
        r.sort_by_key(|d| d.started);
    }
    let first = deploys.iter().map(|d| d.started.timestamp_millis()).min().unwrap_or(0);
    let last = deploys
        .iter()
        .map(|d| d.started.timestamp_millis() + d.duration_ms as i64)
        .max()
        .unwrap_or(first)
        .max(first + 60_000);
    let span = (last - first) as f64;
    let x = |ms: i64| LABEL_W + 8.0 + (ms - first) as f64 / span * (PLOT_W - 16.0);
    let width = LABEL_W + PLOT_W + TREND_W;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>pilum history</h1>\n<p class=\"muted\">{} deploys of {} services, {} to {} (UTC)</p>",
        deploys.len(),
        rows.keys().map(|k| k.0).collect::<std::collections::BTreeSet<_>>().len(),
        stamp(first),
        stamp(last)
    );
    filters(&mut b, &rows);
    b.push_str("<div class=\"history\">\n");
    axis(&mut b, first, last, &x, width);
    for ((service, env), ds) in &rows {
        let _ = writeln!(
            b,
            "<div class=\"history-row\" data-service=\"{}\" data-env=\"{}\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\"><text x=\"6\" y=\"19\">{} <tspan class=\"version\">{}</tspan></text><line class=\"lane\" x1=\"{}\" y1=\"15\" x2=\"{}\" y2=\"15\"/>",
            esc(service),
            esc(env),
            num(width),
            num(ROW_H),
            num(width),
            num(ROW_H),
            esc(&cut(service, 22)),
            esc(&cut(env, 10)),
            num(LABEL_W),
            num(LABEL_W + PLOT_W)
        );
        // Where the last version label drawn ends, so that none overlaps another.
        let mut drawn_to = LABEL_W;
        for (k, d) in ds.iter().enumerate() {
            let cx = x(d.started.timestamp_millis());
            let mark = if d.rollback {
                format!(
                    "<path class=\"mark\" d=\"M{},9 L{},15 L{},21 L{},15 z\"/>",
                    num(cx),
                    num(cx + 6.0),
                    num(cx),
                    num(cx - 6.0)
                )
            } else {
                format!("<circle class=\"mark\" cx=\"{}\" cy=\"15\" r=\"5\"/>", num(cx))
            };
            let label = if d.rollback { format!("↶ {}", d.version) } else { d.version.clone() };
            // Beside the marker when it fits before the next one; the last one may look back.
            let need = 12.0 + label.chars().count() as f64 * VERSION_PX;
            let right = ds
                .get(k + 1)
                .map_or(LABEL_W + PLOT_W - cx, |n| x(n.started.timestamp_millis()) - cx);
            let text = if right > need && cx > drawn_to {
                drawn_to = cx + need;
                format!(
                    "<text class=\"version\" x=\"{}\" y=\"11\">{}</text>",
                    num(cx + 7.0),
                    esc(&label)
                )
            } else if k + 1 == ds.len() && cx - need > drawn_to {
                format!(
                    "<text class=\"version\" x=\"{}\" y=\"11\" text-anchor=\"end\">{}</text>",
                    num(cx - 7.0),
                    esc(&label)
                )
            } else {
                String::new()
            };
            let rollback = if d.rollback { " rollback" } else { "" };
            let _ = writeln!(
                b,
                "<g class=\"deploy {}{rollback}\" data-version=\"{}\"><title>{}</title>{mark}{text}</g>",
                d.outcome.class(),
                esc(&d.version),
                esc(&tooltip(d))
            );
        }
        trend(&mut b, ds);
        b.push_str("</svg></div>\n");
    }
    b.push_str("</div>\n");
    let style = format!("{BASE_STYLE}\n{STYLE}");
    crate::redact::redact(&page("pilum history", &style, &b, Some(SCRIPT))).into_owned()
}

fn stamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M").to_string())
}

fn tooltip(d: &Deploy) -> String {
    let env = d.environment.as_deref().map(|e| format!(" to {e}")).unwrap_or_default();
    let what = if d.rollback { "rollback to" } else { "deploy of" };
    format!(
        "{} {what} {}{env} — {}\n{} · took {}",
        d.service,
        d.version,
        d.outcome.class(),
        d.started.format("%Y-%m-%d %H:%M:%S UTC"),
        human_us(d.duration_ms * 1000)
    )
}

/// The service and environment `<select>`s.
fn filters(b: &mut String, rows: &BTreeMap<(&str, &str), Vec<&Deploy>>) {
    let services: std::collections::BTreeSet<&str> = rows.keys().map(|k| k.0).collect();
    let envs: std::collections::BTreeSet<&str> = rows.keys().map(|k| k.1).collect();
    let options = |set: &std::collections::BTreeSet<&str>| {
        set.iter()
            .map(|v| format!("<option value=\"{}\">{}</option>", esc(v), esc(v)))
            .collect::<String>()
    };
    let _ = writeln!(
        b,
        "<form class=\"filters\"><label>service <select id=\"filter-service\"><option value=\"\">all</option>{}</select></label><label>environment <select id=\"filter-env\"><option value=\"\">all</option>{}</select></label></form>",
        options(&services),
        options(&envs)
    );
}

/// Ticks at a round interval (minutes to months), labelled in UTC.
fn axis(b: &mut String, first: i64, last: i64, x: &dyn Fn(i64) -> f64, width: f64) {
    const MIN: i64 = 60_000;
    let steps = [
        MIN,
        5 * MIN,
        15 * MIN,
        60 * MIN,
        180 * MIN,
        360 * MIN,
        720 * MIN,
        1440 * MIN,
        2 * 1440 * MIN,
        7 * 1440 * MIN,
        30 * 1440 * MIN,
    ];
    let step = steps.iter().copied().find(|s| (last - first) / s <= 8).unwrap_or(90 * 1440 * MIN);
    let fmt = if step >= 1440 * MIN { "%Y-%m-%d" } else { "%m-%d %H:%M" };
    let _ = write!(
        b,
        "<div class=\"history-axis\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"22\" viewBox=\"0 0 {} 22\">",
        num(width),
        num(width)
    );
    let mut t = first + (step - first.rem_euclid(step)) % step;
    let mut n = 0;
    while t <= last && n < 40 {
        let tx = x(t);
        let label = DateTime::<Utc>::from_timestamp_millis(t)
            .map_or_else(String::new, |d| d.format(fmt).to_string());
        let _ = write!(
            b,
            "<line class=\"tick\" x1=\"{}\" y1=\"14\" x2=\"{}\" y2=\"22\"/><text class=\"tick-label\" x=\"{}\" y=\"11\">{}</text>",
            num(tx),
            num(tx),
            num(tx - 20.0),
            label
        );
        t += step;
        n += 1;
    }
    b.push_str("</svg></div>\n");
}

/// The row's durations, oldest to newest, scaled to the row's longest, and the latest.
fn trend(b: &mut String, ds: &[&Deploy]) {
    let left = LABEL_W + PLOT_W + 10.0;
    let w = TREND_W - 70.0;
    let longest = ds.iter().map(|d| d.duration_ms).max().unwrap_or(1).max(1) as f64;
    let step = if ds.len() > 1 { w / (ds.len() - 1) as f64 } else { 0.0 };
    let points: Vec<String> = ds
        .iter()
        .enumerate()
        .map(|(k, d)| {
            format!(
                "{},{}",
                num(left + k as f64 * step),
                num(25.0 - d.duration_ms as f64 / longest * 18.0)
            )
        })
        .collect();
    let _ = write!(
        b,
        "<polyline class=\"trend\" points=\"{}\"><title>durations, oldest first</title></polyline><text class=\"trend-label\" x=\"{}\" y=\"19\">{}</text>",
        points.join(" "),
        num(left + w + 6.0),
        ds.last().map_or(String::new(), |d| human_us(d.duration_ms * 1000))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(
        service: &str,
        env: Option<&str>,
        minute: i64,
        version: &str,
        outcome: Outcome,
        rollback: bool,
    ) -> Deploy {
        Deploy {
            service: service.into(),
            environment: env.map(str::to_string),
            started: DateTime::<Utc>::from_timestamp(1_764_000_000 + minute * 60, 0).unwrap(),
            duration_ms: 1000 + minute as u64 * 100,
            version: version.into(),
            outcome,
            rollback,
        }
    }

    /// api to prod and staging, web to prod: six deploys, a failure, a rollback.
    fn records() -> Vec<Deploy> {
        vec![
            deploy("api", Some("prod"), 0, "v1", Outcome::Ok, false),
            deploy("api", Some("prod"), 90, "v2", Outcome::Failed, false),
            deploy("api", Some("prod"), 95, "v1", Outcome::Ok, true),
            deploy("api", Some("staging"), 60, "v2", Outcome::Ok, false),
            deploy("web", Some("prod"), 30, "v7", Outcome::Interrupted, false),
            deploy("web", None, 40, "v8<&>", Outcome::Ok, false),
        ]
    }

    fn parse(html: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
        roxmltree::Document::parse_with_options(html, opts).expect("well-formed")
    }

    fn class(n: &roxmltree::Node<'_, '_>, c: &str) -> bool {
        n.attribute("class").is_some_and(|v| v.split_whitespace().any(|x| x == c))
    }

    #[test]
    fn a_row_per_service_and_environment_a_marker_per_deploy() {
        let html = html(&records());
        let doc = parse(&html);
        let rows: Vec<_> = doc.descendants().filter(|n| class(n, "history-row")).collect();
        let keys: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.attribute("data-service").unwrap(), r.attribute("data-env").unwrap()))
            .collect();
        assert_eq!(keys, [("api", "prod"), ("api", "staging"), ("web", "(none)"), ("web", "prod")]);
        let marks: Vec<_> = doc.descendants().filter(|n| class(n, "deploy")).collect();
        assert_eq!(marks.len(), 6);
        let api_prod: Vec<(&str, bool, bool)> = rows[0]
            .descendants()
            .filter(|n| class(n, "deploy"))
            .map(|n| {
                (n.attribute("data-version").unwrap(), class(&n, "failed"), class(&n, "rollback"))
            })
            .collect();
        assert_eq!(
            api_prod,
            [("v1", false, false), ("v2", true, false), ("v1", false, true)],
            "in time order"
        );
        assert_eq!(marks.iter().filter(|n| class(n, "interrupted")).count(), 1);
        assert!(html.contains("↶ v1") || html.contains("rollback to v1"));
        assert_eq!(doc.descendants().filter(|n| class(n, "trend")).count(), 4, "a trend per row");
        let options = doc.descendants().filter(|n| n.tag_name().name() == "option").count();
        assert_eq!(options, 2 + 2 + 3, "all + services, all + environments");
        assert!(html.contains("v8&lt;&amp;&gt;"));
    }

    #[test]
    fn markers_follow_time_and_labels_need_room() {
        let ds = vec![
            deploy("api", None, 60, "v3", Outcome::Ok, false),
            deploy("api", None, 0, "a-very-long-version", Outcome::Ok, false),
            deploy("api", None, 1, "v2", Outcome::Ok, false),
        ];
        let html = html(&ds);
        let doc = parse(&html);
        let xs: Vec<f64> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "circle")
            .map(|n| n.attribute("cx").unwrap().parse().unwrap())
            .collect();
        assert_eq!(xs.len(), 3);
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "in time order: {xs:?}");
        assert!(!html.contains(">a-very-long-version</text>"), "no room before the next deploy");
        assert!(html.contains("deploy of a-very-long-version"), "still in its tooltip");
        assert!(html.contains(">v2</text>") && html.contains(">v3</text>"));
    }

    /// The page in headless Chromium (Debian package `chromium`): the console stays silent and
    /// the filters asked for in the address hide the other rows.
    #[test]
    fn filters_work_in_chromium() {
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("history.html");
        std::fs::write(&page, html(&records())).unwrap();
        let out = std::process::Command::new("timeout")
            .arg("90")
            .arg("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ])
            .args(["--disable-component-update", "--disable-sync", "--no-first-run"])
            .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg(format!("file://{}#service=web&env=prod", page.display()))
            .output()
            .expect("run timeout(1)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "chromium (Debian package: chromium) failed or is missing: {}\n{stderr}",
            out.status
        );
        let console: Vec<&str> =
            stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
        assert!(console.is_empty(), "{console:?}");
        let dom = String::from_utf8_lossy(&out.stdout);
        let shown: Vec<&str> = dom
            .split("<div class=\"history-row\" ")
            .skip(1)
            .filter(|row| !row.split('>').next().unwrap_or_default().contains("hidden"))
            .map(|row| row.split('>').next().unwrap_or_default())
            .collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(shown[0].contains("data-service=\"web\" data-env=\"prod\""), "{shown:?}");
    }

    #[test]
    fn no_deploys_is_an_empty_page_not_a_panic() {
        let html = html(&[]);
        assert!(parse(&html).descendants().all(|n| !class(&n, "deploy")));
    }
}
