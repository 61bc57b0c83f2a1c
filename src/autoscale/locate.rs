//! Where a value is in a YAML text, by its path (`pools` → `workers` → `schedules` → 1 →
//! `timezone`): the position [`crate::diagnostic::Diagnostic`]s of the pools file point at.
//!
//! `serde_yaml` values carry no positions, so the loader walks the parsed value and asks here
//! for the line and column of each path it reports on. The scan follows block indentation and
//! `- ` sequence items, and inside one-line flow collections (`{ name: x, value: 3 }`, `[a, b]`)
//! it follows keys and indices too. When a segment is not found the position of the deepest
//! segment that was is returned, so an error always points somewhere near its cause.

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Where the search is: a block of lines (children indented deeper than `parent`; on line
/// `lo` the content starts at `first_col` when the block begins after a `- `), or the inside of
/// a flow collection opening at `(line, col)`.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    Block { lo: usize, hi: usize, parent: isize, first_col: Option<usize> },
    Flow { line: usize, col: usize },
    Scalar,
}

/// The 1-based line and column of `path` in `text`, or of its deepest found prefix; `None`
/// when not even the first segment is found.
pub(crate) fn position(text: &str, path: &[Seg<'_>]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cursor = Cursor::Block { lo: 0, hi: lines.len(), parent: -1, first_col: None };
    let mut found = None;
    for seg in path {
        let step = match cursor {
            Cursor::Block { lo, hi, parent, first_col } => {
                block_step(&lines, lo, hi, parent, first_col, *seg)
            }
            Cursor::Flow { line, col } => flow_step(&lines, line, col, *seg),
            Cursor::Scalar => None,
        };
        let Some((pos, next)) = step else { break };
        found = Some((pos.0 + 1, pos.1 + 1));
        cursor = next;
    }
    found
}

/// A line's indentation and content (0-based column), honouring `first_col` on the first line.
fn split(line: &str, first_col: Option<usize>) -> (usize, &str) {
    match first_col {
        Some(c) if c <= line.len() => (c, &line[c..]),
        _ => {
            let content = line.trim_start_matches(' ');
            (line.len() - content.len(), content)
        }
    }
}

fn blank(content: &str) -> bool {
    let t = content.trim();
    t.is_empty() || t.starts_with('#')
}

/// `- x` or a lone `-`: a sequence item marker.
fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// The rest of `content` after `key:` (the key bare or quoted), if `content` starts with it.
fn after_key<'a>(content: &'a str, key: &str) -> Option<&'a str> {
    let rest = [("", ""), ("\"", "\""), ("'", "'")].iter().find_map(|(open, close)| {
        content.strip_prefix(open)?.strip_prefix(key)?.strip_prefix(close)
    })?;
    let rest = rest.trim_start_matches(' ');
    let value = rest.strip_prefix(':')?;
    (value.is_empty() || value.starts_with([' ', '\t'])).then_some(value)
}

/// The cursor for a value starting at `(line, col)` with text `value` (after the `:` or `- `).
fn value_cursor(lines: &[&str], line: usize, col: usize, value: &str, indent: usize) -> Cursor {
    let trimmed = value.trim_start();
    let at = col + (value.len() - trimmed.len());
    if trimmed.starts_with(['{', '[']) {
        return Cursor::Flow { line, col: at };
    }
    if !blank(trimmed) {
        return Cursor::Scalar;
    }
    // A block value: the following lines indented deeper, or `- ` items at the same indent.
    let mut parent = indent as isize;
    let mut hi = lines.len();
    let mut first = true;
    for (j, l) in lines.iter().enumerate().skip(line + 1) {
        let (ind, content) = split(l, None);
        if blank(content) {
            continue;
        }
        if first && ind == indent && is_item(content) {
            parent = indent as isize - 1;
        }
        first = false;
        if (ind as isize) <= parent {
            hi = j;
            break;
        }
    }
    Cursor::Block { lo: line + 1, hi, parent, first_col: None }
}

fn block_step(
    lines: &[&str],
    lo: usize,
    hi: usize,
    parent: isize,
    first_col: Option<usize>,
    seg: Seg<'_>,
) -> Option<((usize, usize), Cursor)> {
    let mut child: Option<usize> = None;
    let mut index = 0;
    for i in lo..hi.min(lines.len()) {
        let (ind, content) = split(lines[i], if i == lo { first_col } else { None });
        if blank(content) || (ind as isize) <= parent {
            continue;
        }
        let child_ind = *child.get_or_insert(ind);
        if ind != child_ind {
            continue;
        }
        match seg {
            Seg::Key(k) => {
                if let Some(value) = after_key(content, k) {
                    let col = ind + (content.len() - value.len());
                    return Some(((i, ind), value_cursor(lines, i, col, value, ind)));
                }
            }
            Seg::Index(n) => {
                if !is_item(content) {
                    continue;
                }
                if index == n {
                    let rest = content[1..].trim_start_matches(' ');
                    let col = ind + (content.len() - rest.len());
                    let next = if rest.starts_with(['{', '[']) {
                        Cursor::Flow { line: i, col }
                    } else if blank(rest) {
                        value_cursor(lines, i, col, "", ind)
                    } else {
                        let end = (i + 1..hi.min(lines.len()))
                            .find(|&j| {
                                let (jind, c) = split(lines[j], None);
                                !blank(c) && jind <= ind
                            })
                            .unwrap_or(hi);
                        Cursor::Block { lo: i, hi: end, parent: ind as isize, first_col: Some(col) }
                    };
                    return Some(((i, col), next));
                }
                index += 1;
            }
        }
    }
    None
}

/// Inside the flow collection opening at `(line, col)`: the position of key `k` or element
/// `n` at the top level of that collection (one line only).
fn flow_step(
    lines: &[&str],
    line: usize,
    col: usize,
    seg: Seg<'_>,
) -> Option<((usize, usize), Cursor)> {
    let text = lines.get(line)?;
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut element = 0usize;
    let mut i = col;
    let mut entry_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if depth == 1 && entry_start && !matches!(b, b' ' | b'\t' | b',') {
            entry_start = false;
            match seg {
                Seg::Key(k) => {
                    if let Some(value) = after_key(&text[i..], k) {
                        let vcol = text.len() - value.len();
                        let trimmed = value.trim_start();
                        let at = vcol + (value.len() - trimmed.len());
                        let next = if trimmed.starts_with(['{', '[']) {
                            Cursor::Flow { line, col: at }
                        } else {
                            Cursor::Scalar
                        };
                        return Some(((line, i), next));
                    }
                }
                Seg::Index(n) if element == n => {
                    let next = if matches!(b, b'{' | b'[') {
                        Cursor::Flow { line, col: i }
                    } else {
                        Cursor::Scalar
                    };
                    return Some(((line, i), next));
                }
                Seg::Index(_) => {}
            }
        }
        match b {
            b'"' | b'\'' => {
                let q = b;
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' && q == b'"' { 2 } else { 1 };
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return None;
                }
            }
            b',' if depth == 1 => {
                element += 1;
                entry_start = true;
            }
            b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
            _ => {}
        }
        if depth == 1 && matches!(b, b'{' | b'[') && i == col {
            entry_start = true;
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Seg::{Index, Key};
    use super::*;

    const TEXT: &str = "sns_topics: [a, b]\npools:\n  workers:\n    min: 1\n    alarms:\n      High: { action: up, step: 2 }\n    schedules:\n      - name: office\n        value: 5\n      - { name: night, timezone: Europe/Pari, value: 2 }\n    targets:\n    - urn:a\n    - urn:b\n  other:\n    min: 3\n";

    #[test]
    fn block_keys_and_items() {
        assert_eq!(position(TEXT, &[Key("pools"), Key("workers"), Key("min")]), Some((4, 5)));
        assert_eq!(position(TEXT, &[Key("pools"), Key("other"), Key("min")]), Some((15, 5)));
        let sched = |i, k| [Key("pools"), Key("workers"), Key("schedules"), Index(i), Key(k)];
        assert_eq!(position(TEXT, &sched(0, "value")), Some((9, 9)));
        assert_eq!(position(TEXT, &sched(0, "name")), Some((8, 9)));
        assert_eq!(position(TEXT, &sched(1, "timezone")), Some((10, 24)));
        let t = [Key("pools"), Key("workers"), Key("targets"), Index(1)];
        assert_eq!(position(TEXT, &t), Some((13, 7)));
    }

    #[test]
    fn flow_maps_and_fallbacks() {
        let step = [Key("pools"), Key("workers"), Key("alarms"), Key("High"), Key("step")];
        assert_eq!(position(TEXT, &step), Some((6, 27)));
        assert_eq!(position(TEXT, &[Key("sns_topics"), Index(1)]), Some((1, 17)));
        // A missing key points at its parent.
        let missing = [Key("pools"), Key("workers"), Key("nope")];
        assert_eq!(position(TEXT, &missing), Some((3, 3)));
        assert_eq!(position(TEXT, &[Key("nope")]), None);
    }
}
