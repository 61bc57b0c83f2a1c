//! The status page (`GET /`): one server-rendered HTML page, no external assets, refreshing
//! itself every few seconds (a meta refresh, so it works without JavaScript). It shows every
//! pool from the same data as `GET /pools`.
//!
//! Access: like the API, it needs a token — a browser cannot send a bearer header on a plain
//! navigation, so the page also takes the `pilum_scale_token` cookie that `POST /login` sets
//! from a form (HttpOnly, SameSite=Strict), or `?token=` (handy for a kiosk or a test, but the
//! token then sits in the browser history and in proxy logs). `--status-page-public` serves the
//! page without a token: it only reads, and the API stays protected.

use serde_json::Value;

/// How often the page reloads itself, in seconds.
pub(crate) const REFRESH_SECS: u64 = 5;

/// HTML-escape text for element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as page text: `-` for null.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#f7f8fa}\
h1{font-size:1.3em;margin:0 0 .2em}.meta{color:#5b6475;margin-bottom:1em}\
.pool{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:.8em 1em;margin:0 0 1em}\
.pool h2{font-size:1.1em;margin:0 0 .5em}.tag{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;margin-left:.4em}\
.ok{background:#dff3e4;color:#17622f}.warn{background:#fdf0d5;color:#7a5200}.bad{background:#fbe1e1;color:#8a1c1c}\
table{border-collapse:collapse;margin:.3em 0 .6em}td,th{padding:.15em .7em .15em 0;text-align:left;vertical-align:top}\
th{color:#5b6475;font-weight:500}.num{font-variant-numeric:tabular-nums;font-weight:600}\
.empty{color:#8a93a3}";

/// The page for `pools` (the `GET /pools` entries); `leader` describes the deciding replica.
pub(crate) fn render(pools: &[Value], leader: &str, now: &str) -> String {
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>pilum scale</title><style>{STYLE}</style></head><body>\
<h1>pilum scale</h1><div class=\"meta\">{} pool(s) &middot; leader: <span id=\"leader\">{}</span> &middot; {} &middot; refreshes every {REFRESH_SECS} s</div>\n",
        pools.len(),
        esc(leader),
        esc(now)
    );
    for p in pools {
        html.push_str(&pool(p));
    }
    html.push_str("</body></html>\n");
    html
}

fn pool(p: &Value) -> String {
    let name = esc(&text(&p["pool"]));
    let mut tags = String::new();
    let behind = p["generation"] != p["appliedGeneration"];
    if let Some(why) = p["unknown"].as_str() {
        tags.push_str(&format!(
            "<span class=\"tag bad\" title=\"{}\">current value unknown</span>",
            esc(why)
        ));
    } else if p["down"].is_string() {
        tags.push_str("<span class=\"tag bad\">decision loop down</span>");
    } else if behind {
        tags.push_str("<span class=\"tag warn\">applying</span>");
    } else {
        tags.push_str("<span class=\"tag ok\">in sync</span>");
    }
    if p["paused"].is_object() {
        tags.push_str("<span class=\"tag warn\">paused</span>");
    }
    if p["fallback"]["active"] == true {
        tags.push_str("<span class=\"tag warn\">fallback</span>");
    }
    if p["lastResult"]["ok"] == false {
        tags.push_str("<span class=\"tag bad\">last apply failed</span>");
    }
    let strategy = esc(&text(&p["strategy"]["name"]));
    let mut out = format!(
        "<section class=\"pool\" data-pool=\"{name}\"><h2>{name}{tags}</h2>\
<table><tr><th>desired</th><th>applied</th><th>generation</th><th>applied gen</th><th>bounds</th><th>cooldown up</th><th>cooldown down</th><th>strategy</th></tr>\
<tr><td class=\"num desired\">{}</td><td class=\"num applied\">{}</td><td class=\"num generation\">{}</td><td class=\"num applied-generation\">{}</td>\
<td>{}&ndash;{}</td><td class=\"cooldown-up\">{} s</td><td class=\"cooldown-down\">{} s</td><td>{strategy}</td></tr></table>",
        text(&p["desired"]),
        text(&p["applied"]),
        text(&p["generation"]),
        text(&p["appliedGeneration"]),
        text(&p["min"]),
        text(&p["max"]),
        text(&p["cooldowns"]["up"]),
        text(&p["cooldowns"]["down"]),
    );
    if let Some(pause) = p["paused"].as_object() {
        out.push_str(&format!(
            "<p class=\"paused\">paused since {}: {}{}</p>",
            esc(&text(&pause["since"])),
            esc(&text(&pause["reason"])),
            pause.get("until").map(|u| format!(" (until {})", esc(&text(u)))).unwrap_or_default()
        ));
    }
    let signals = p["signals"].as_array().cloned().unwrap_or_default();
    out.push_str("<table class=\"signals\"><tr><th>active signal</th><th>source</th><th>asks</th><th>metric</th></tr>");
    if signals.is_empty() {
        out.push_str("<tr><td class=\"empty\" colspan=\"4\">none</td></tr>");
    }
    for s in &signals {
        let asks = match s["action"].as_str() {
            Some("set") => format!("set {}", text(&s["value"])),
            Some(a) => format!("{a} {}", text(&s["step"])),
            None => "-".into(),
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(&s["name"])),
            esc(&text(&s["source"])),
            esc(&asks),
            esc(&text(&s["metric"]))
        ));
    }
    out.push_str(&format!("</table><p>pending intents: {}</p>", text(&p["pendingIntents"])));
    let history = p["history"].as_array().cloned().unwrap_or_default();
    out.push_str(
        "<table class=\"decisions\"><tr><th>last decisions</th><th>change</th><th>reason</th></tr>",
    );
    if history.is_empty() {
        out.push_str("<tr><td class=\"empty\" colspan=\"3\">none yet</td></tr>");
    }
    for h in history.iter().rev().take(5) {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{} &rarr; {}</td><td class=\"reason\">{}</td></tr>",
            esc(&text(&h["at"])),
            text(&h["from"]),
            text(&h["to"]),
            esc(&text(&h["reason"]))
        ));
    }
    out.push_str("</table>");
    if let Some(r) = p["lastResult"].as_object() {
        out.push_str(&format!(
            "<p class=\"last-result\">last apply (generation {}): {}</p>",
            text(&r.get("generation").cloned().unwrap_or(Value::Null)),
            esc(&text(&r.get("message").cloned().unwrap_or(Value::Null)))
        ));
    }
    if let Some(d) = p.get("drift").filter(|d| d.is_object()) {
        let found = if d["drifted"] == true { "drifted" } else { "in line" };
        out.push_str(&format!(
            "<p class=\"drift\">drift ({}, checked {}): {found}; {}</p>",
            esc(&text(&d["policy"])),
            esc(&text(&d["checked_at"])),
            esc(&text(&d["action"]))
        ));
    }
    out.push_str("</section>\n");
    out
}

/// The page a browser without a token gets: a login form posting to `/login`.
pub(crate) fn login(message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pilum scale: sign in</title><style>{STYLE}</style></head>\
<body><h1>pilum scale</h1><p>{}</p><form method=\"post\" action=\"/login\">\
<label>token <input type=\"password\" name=\"token\" autocomplete=\"current-password\"></label> <button>sign in</button></form></body></html>\n",
        esc(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_every_pool_has_a_section() {
        let pools = vec![
            serde_json::json!({"pool": "web", "desired": 4, "applied": 4, "generation": 2, "appliedGeneration": 2,
                "signals": [{"name": "<script>", "source": "prometheus", "action": "up", "step": 1}]}),
            serde_json::json!({"pool": "db", "desired": null, "unknown": "key not set"}),
        ];
        let html = render(&pools, "this server", "now");
        assert!(html.contains("data-pool=\"web\"") && html.contains("data-pool=\"db\""));
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("current value unknown"));
        assert!(html.contains("http-equiv=\"refresh\""));
    }
}
