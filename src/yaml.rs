//! The front door for YAML that users write (`pilum.yaml`, pools files): a linear pre-scan that
//! refuses nesting deeper than [`MAX_DEPTH`] before `serde_yaml` sees the text, because the
//! parser's cost grows quadratically with depth (a 60 KB file nested 30,000 levels took seconds).
//!
//! Depth counts block levels (each deeper indentation, each `- ` sequence marker) plus open flow
//! collections (`[`, `{`) outside quotes and comments. Block scalar bodies (`|`, `>`) are text and
//! do not count.

use std::fmt;

/// The deepest nesting accepted in a user's YAML file.
pub const MAX_DEPTH: usize = 64;

/// Where the nesting limit was passed (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nesting deeper than {MAX_DEPTH} levels")
    }
}

impl std::error::Error for TooDeep {}

/// Scan `text` and refuse it if it nests deeper than [`MAX_DEPTH`].
pub fn check_depth(text: &str) -> Result<(), TooDeep> {
    let mut block: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // Indentation of the line that opened a block scalar; its deeper lines are text.
    let mut scalar_parent: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - trimmed.len();
        if let Some(parent) = scalar_parent {
            if trimmed.is_empty() || indent > parent {
                continue;
            }
            scalar_parent = None;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let too_deep = |col: usize| TooDeep { line: n + 1, col: col + 1 };
        if flow == 0 {
            while block.last().is_some_and(|&top| top >= indent) {
                block.pop();
            }
            block.push(indent);
            // `- - - x`: each marker opens one more level on the same line.
            let mut rest = trimmed;
            let mut col = indent;
            while let Some(r) = rest.strip_prefix('-').filter(|r| r.starts_with([' ', '\t'])) {
                let r2 = r.trim_start_matches([' ', '\t']);
                col += rest.len() - r2.len();
                rest = r2;
                block.push(col);
                if block.len() > MAX_DEPTH {
                    return Err(too_deep(col));
                }
            }
            if block.len() > MAX_DEPTH {
                return Err(too_deep(indent));
            }
        }
        let (flow_after, opens_scalar) = scan_flow(line, indent, flow, block.len(), &too_deep)?;
        flow = flow_after;
        if opens_scalar {
            scalar_parent = Some(indent);
        }
    }
    Ok(())
}

/// Track `[`/`{` depth across one line outside quotes and comments. Returns the depth after the
/// line and whether the line ends by opening a block scalar (`key: |`, `- >-`).
fn scan_flow(
    line: &str,
    start: usize,
    mut flow: usize,
    block_depth: usize,
    too_deep: &dyn Fn(usize) -> TooDeep,
) -> Result<(usize, bool), TooDeep> {
    let bytes = line.as_bytes();
    let mut i = start;
    let mut last_token_end = start;
    while i < bytes.len() {
        match bytes[i] {
            b'#' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t') => break,
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'[' | b'{' | b',' | b':') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                flow += 1;
                if flow + block_depth > MAX_DEPTH {
                    return Err(too_deep(i));
                }
            }
            b']' | b'}' => flow = flow.saturating_sub(1),
            _ => {}
        }
        if !matches!(bytes.get(i), Some(b' ' | b'\t')) {
            last_token_end = i + 1;
        }
        i += 1;
    }
    let tail = line[..last_token_end.min(line.len())].trim_end();
    let opens_scalar = flow == 0 && {
        let word = tail.rsplit([' ', '\t']).next().unwrap_or("");
        let indicator = word.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
        (indicator == "|" || indicator == ">")
            && (tail.len() == word.len()
                || tail[..tail.len() - word.len()].trim_end().ends_with([':', '-']))
    };
    Ok((flow, opens_scalar))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_files_pass() {
        let text = "name: web\nbuild:\n  command: |\n    echo [unbalanced {\n      deeper\n  artifacts: [dist/*]\nsteps:\n  - name: a\n    run: 'it''s [fine'\n    env: {A: \"[x\"}  # [comment\n";
        assert_eq!(check_depth(text), Ok(()));
    }

    #[test]
    fn deep_flow_nesting_is_refused_with_a_position() {
        let text = format!("a: {}1{}\n", "[".repeat(30_000), "]".repeat(30_000));
        let e = check_depth(&text).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.col <= MAX_DEPTH + 4, "{e:?}");
        let ok = format!("a: {}1{}\n", "[".repeat(40), "]".repeat(40));
        assert_eq!(check_depth(&ok), Ok(()));
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let dashes = format!("{}x\n", "- ".repeat(30_000));
        assert!(check_depth(&dashes).is_err());
        let mut indented = String::new();
        for i in 0..100 {
            indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(check_depth(&indented).unwrap_err().line, MAX_DEPTH + 1);
    }
}
