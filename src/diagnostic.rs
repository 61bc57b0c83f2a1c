//! Pointing at problems in files: [`Diagnostic`] (one problem in a project file — `pilum.yaml`,
//! a recipe — with path, line, column, `help:`, "did you mean" and the source line with a caret),
//! plus the pieces other error types share with it: [`snippet`] (the numbered source line with a
//! caret), [`closest`] (the "did you mean" candidate) and the position finders. Loading and
//! checking collect every diagnostic before failing, so `pilum check` reports all problems at once.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, relative to the project root when it is inside it.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no single line (e.g. a cycle across files).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    pub message: String,
    pub help: Option<String>,
    pub did_you_mean: Option<String>,
    /// The offending source line, shown with a caret under `col`.
    pub source: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
            help: None,
            did_you_mean: None,
            source: None,
        }
    }

    /// Point at `line`/`col` in `text` (the file's contents), keeping the source line.
    pub fn at(mut self, text: &str, line: usize, col: usize) -> Self {
        self.line = line;
        self.col = col.max(1);
        if line > 0 {
            self.source = text.lines().nth(line - 1).map(str::to_string);
        }
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn suggest(mut self, candidate: Option<&str>) -> Self {
        self.did_you_mean = candidate.map(|c| format!("did you mean `{c}`?"));
        self
    }

    /// `file:line:col` (or just the file when there is no line).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.display().to_string()
        } else {
            format!("{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file.display().to_string(),
            "line": self.line,
            "col": self.col,
            "message": self.message,
            "help": self.help,
            "did_you_mean": self.did_you_mean,
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.file.as_os_str().is_empty() {
            write!(f, "\n  --> {}", self.location())?;
        }
        if let Some(src) = &self.source {
            // Indented one column more than a script error's, under the `  --> ` line.
            write!(f, "\n{}", caret_block(self.line, src, self.col, " "))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        if let Some(d) = &self.did_you_mean {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// Several diagnostics rendered one after another, separated by blank lines.
pub fn render_all(diags: &[Diagnostic]) -> String {
    let mut s = String::new();
    for (i, d) in diags.iter().enumerate() {
        if i > 0 {
            s.push_str("\nerror: ");
        }
        s.push_str(&d.to_string());
        s.push('\n');
    }
    if diags.len() > 1 {
        s.push_str(&format!("\n{} problems found", diags.len()));
    }
    s.trim_end().to_string()
}

/// The closest candidate to `name`, if it is close enough to be a likely typo: at most one edit
/// per three characters of the longer word, and always one (so `dri` finds `dir`).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= (len.max(c.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// adjacent characters each count one, since a swap (`lcoal`, `dokcer`) is the commonest typo.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Line `line` of `source` under a numbered gutter with a caret under `column` (both 1-based):
///
/// ```text
///   |
/// 2 |     let x = ;
///   |             ^
/// ```
///
/// `None` when the text has no such line.
pub fn snippet(source: &str, line: usize, column: usize) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    Some(caret_block(line, text, column, ""))
}

/// The three lines of [`snippet`] for the line `text` numbered `line`, each after `indent`.
fn caret_block(line: usize, text: &str, column: usize, indent: &str) -> String {
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    // Tabs stay tabs so the caret lines up under the same glyphs; past the end, spaces.
    let mut chars = text.chars();
    let lead: String =
        (1..column).map(|_| if chars.next() == Some('\t') { '\t' } else { ' ' }).collect();
    format!("{indent}{pad} |\n{indent}{num} | {text}\n{indent}{pad} | {lead}^")
}

/// The 1-based line and column of the key at `path` (e.g. `["cloud_run", "region"]`) in a YAML
/// text, found by indentation. Falls back to the parent key's line, then line 1.
pub fn key_position(text: &str, path: &[&str]) -> (usize, usize) {
    let mut found = (1, 1);
    let mut start = 0;
    let mut min_indent: Option<usize> = None;
    let lines: Vec<&str> = text.lines().collect();
    'outer: for key in path {
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if let Some(min) = min_indent {
                if indent <= min && i > start {
                    break;
                }
            }
            let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            let body_indent = indent + (trimmed.len() - body.len());
            if let Some(rest) = body.strip_prefix(key) {
                if rest.trim_start().starts_with(':') {
                    found = (i + 1, body_indent + 1);
                    start = i + 1;
                    min_indent = Some(indent);
                    continue 'outer;
                }
            }
        }
        break;
    }
    found
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub fn find_position(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_position_follows_nesting() {
        let text = "name: api\nregion: x\ncloud_run:\n  region: y\n  memory: 1\n";
        assert_eq!(key_position(text, &["region"]), (2, 1));
        assert_eq!(key_position(text, &["cloud_run", "region"]), (4, 3));
        assert_eq!(key_position(text, &["cloud_run", "memory"]), (5, 3));
        assert_eq!(key_position(text, &["cloud_run", "nope"]), (3, 1));
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("lcoal", ["local", "shell"]), Some("local"));
        assert_eq!(closest("kubernetes", ["local", "shell"]), None);
        assert_eq!(closest("dokcer", ["docker", "retry"]), Some("docker"));
        assert_eq!(closest("zzz", ["docker", "retry"]), None);
        assert_eq!(closest("dri", ["env", "dir"]), Some("dir"));
        // Two edits in a short word is a different word, not a typo.
        assert_eq!(closest("db", ["ui"]), None);
        assert_eq!(closest("cooldwon_up", ["cooldown_down", "cooldown_up"]), Some("cooldown_up"));
    }

    #[test]
    fn snippet_numbers_the_line_and_points_at_the_column() {
        let text = "a: 1\n\tb: x\n";
        assert_eq!(snippet(text, 1, 4).as_deref(), Some("  |\n1 | a: 1\n  |    ^"));
        // The tab before the column is kept, so the caret lines up in a terminal.
        assert_eq!(snippet(text, 2, 5).as_deref(), Some("  |\n2 | \tb: x\n  | \t   ^"));
        assert_eq!(snippet("x", 1, 4).as_deref(), Some("  |\n1 | x\n  |    ^"));
        assert_eq!(snippet(text, 3, 1), None);
        assert_eq!(snippet(text, 0, 1), None);
    }

    #[test]
    fn renders_snippet_with_caret() {
        let d = Diagnostic::new("a/pilum.yaml", "field `name` is required")
            .at("nam: x\n", 1, 1)
            .help("add `name: <service>`");
        let s = d.to_string();
        assert!(s.contains("--> a/pilum.yaml:1:1"), "{s}");
        assert!(s.contains("1 | nam: x"), "{s}");
        assert!(s.contains("help: add"), "{s}");
        assert!(s.ends_with(" 1 | nam: x\n   | ^\nhelp: add `name: <service>`"), "{s}");
    }
}
