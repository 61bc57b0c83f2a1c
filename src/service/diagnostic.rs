//! `Diagnostic`: one problem in a project file (`pilum.yaml`, a recipe), with the path, line and
//! column, a help line, a "did you mean" and the source line with a caret. Loading and checking
//! collect every diagnostic before failing, so `pilum check` reports all problems at once.

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
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            write!(f, "\n {pad} |\n {num} | {src}\n {pad} | {}^", " ".repeat(self.col - 1))?;
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

/// The closest candidate to `name` by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (name.len().max(c.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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
    }
}
