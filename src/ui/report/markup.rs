//! Markup shared by the pictures: escaping for XML text and attributes, numbers written short,
//! and the page shell. Pages are XHTML-compatible HTML (every element closed, attributes
//! quoted, no named entities) so that an XML parser reads them as well as a browser, and carry
//! a content security policy that forbids loading anything: no external assets, no network.

use std::borrow::Cow;
use std::fmt::Write;

/// Escape text for XML content or a quoted attribute: `&`, `<`, `>`, `"`, `'`; characters XML
/// 1.0 does not allow (control characters but tab and newline) become U+FFFD.
pub(crate) fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'') || bad(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if bad(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn bad(c: char) -> bool {
    (c < ' ' && c != '\t' && c != '\n') || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// A coordinate with at most one decimal, without a trailing `.0` (pictures of thousands of
/// elements stay small).
pub(crate) fn num(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 { format!("{}", r as i64) } else { format!("{r:.1}") }
}

/// At most `max` characters of `s`, with `…` when cut.
pub(crate) fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if s.chars().count() <= max {
        return Cow::Borrowed(s);
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    Cow::Owned(out)
}

/// A whole HTML page: `title`, the inline `style`, the `body` markup. Scripts are not allowed
/// unless `script` is given (inline, run after the body).
pub(crate) fn page(title: &str, style: &str, body: &str, script: Option<&str>) -> String {
    let script_src = if script.is_some() { "'unsafe-inline'" } else { "'none'" };
    let mut out = String::with_capacity(body.len() + style.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src {script_src}\"/>\n<meta name=\"generator\" content=\"pilum {}\"/>\n<title>{}</title>\n<style>/*<![CDATA[*/\n{style}\n/*]]>*/</style>\n</head>\n<body>\n{body}\n",
        env!("PILUM_VERSION"),
        esc(title),
    );
    if let Some(js) = script {
        let _ = write!(out, "<script>//<![CDATA[\n{js}\n//]]></script>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The style every page starts with.
pub(crate) const BASE_STYLE: &str = "\
:root { color-scheme: light; }
body { font: 13px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1f2328; margin: 16px 20px; background: #fff; }
h1 { font-size: 18px; margin: 0 0 10px; }
h2 { font-size: 14px; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 4px 0 10px; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; border-bottom: 1px solid #eaeef2; }
th { font-weight: 600; color: #57606a; }
code, .mono { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 12px; }
.muted { color: #57606a; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0 10px; align-items: center; }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
svg text { font-family: ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 11px; fill: #1f2328; }
.status-ok { color: #1a7f37; font-weight: 600; }
.status-failed { color: #cf222e; font-weight: 600; }
.status-interrupted { color: #9a6700; font-weight: 600; }";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_refuses_control_characters() {
        assert_eq!(esc("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
        assert_eq!(esc("bell\u{7} tab\tnl\n"), "bell\u{FFFD} tab\tnl\n");
        assert!(matches!(esc("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.04), "12");
        assert_eq!(num(12.25), "12.3");
        assert_eq!(num(-0.04), "0");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
