//! The front door for YAML that users write (`pilum.yaml`, pools files), in two parts:
//!
//! - [`check_depth`]: a linear pre-scan that refuses nesting deeper than [`MAX_DEPTH`] before
//!   `serde_yaml` sees the text, because the parser's cost grows quadratically with depth (a
//!   60 KB file nested 30,000 levels took seconds). Depth counts block levels (each deeper
//!   indentation, each `- ` sequence marker) plus open flow collections (`[`, `{`) outside
//!   quotes and comments. Block scalar bodies (`|`, `>`) are text and do not count.
//! - Positions: [`position`] (the one way to find where a key or item is, for every located
//!   error about a YAML file), [`Outline`] (the same index, parsed once, for many lookups) and
//!   [`syntax_error`] (libyaml's report with the construct left open, so an unclosed `[` at the
//!   end of a file points at the `[`, not at a line past the end).

use std::fmt;

/// The deepest nesting accepted in a user's YAML file.
pub(crate) const MAX_DEPTH: usize = 64;

/// Where the nesting limit was passed (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooDeep {
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
pub(crate) fn check_depth(text: &str) -> Result<(), TooDeep> {
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

// -- Positions -------------------------------------------------------------------------------
//
// Where things are in a YAML text, from libyaml's own event stream (the parser `serde_yaml`
// runs), so a position always agrees with what was parsed: block and flow style, sequences,
// quoted keys, comments. Errors are rare, so nothing here runs on the happy path.

/// A 1-based line and column (in characters) in a YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub line: usize,
    pub col: usize,
}

/// One step of a path into a YAML document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(k: &'a str) -> Self {
        Seg::Key(k)
    }
}

impl<'a> From<&'a String> for Seg<'a> {
    fn from(k: &'a String) -> Self {
        Seg::Key(k)
    }
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// An owned [`Seg`], for paths kept after parsing (where an expanded value came from).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum SegBuf {
    Key(String),
    Index(usize),
}

impl SegBuf {
    pub(crate) fn as_seg(&self) -> Seg<'_> {
        match self {
            SegBuf::Key(k) => Seg::Key(k),
            SegBuf::Index(i) => Seg::Index(*i),
        }
    }
}

impl From<Seg<'_>> for SegBuf {
    fn from(s: Seg<'_>) -> Self {
        match s {
            Seg::Key(k) => SegBuf::Key(k.to_string()),
            Seg::Index(i) => SegBuf::Index(i),
        }
    }
}

/// Borrow an owned path.
pub(crate) fn segs(path: &[SegBuf]) -> Vec<Seg<'_>> {
    path.iter().map(SegBuf::as_seg).collect()
}

/// A YAML syntax error as libyaml reports it: the problem, where it was noticed, and the
/// construct being read (`while parsing a flow sequence`) with where that construct starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub problem: String,
    pub mark: Mark,
    pub context: Option<(String, Mark)>,
    /// Whether `mark` is past the last line (the text ended inside a construct).
    pub at_end: bool,
}

impl SyntaxError {
    /// The position to show: where the problem was noticed, unless that is past the end of the
    /// text; then the start of the construct left open (an unclosed `[`, a quote).
    pub(crate) fn position(&self) -> Mark {
        match (&self.context, self.at_end) {
            (Some((_, open)), true) => *open,
            _ => self.mark,
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.problem)?;
        if let Some((context, open)) = &self.context {
            // libyaml says `while parsing a flow sequence`; the construct is what matters.
            let what = context
                .strip_prefix("while parsing ")
                .or_else(|| context.strip_prefix("while scanning "))
                .unwrap_or(context);
            if self.at_end {
                write!(f, ": the file ends inside {what} opened at {}:{}", open.line, open.col)?;
            } else {
                write!(f, " in {what} that starts at {}:{}", open.line, open.col)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SyntaxError {}

/// Every node of a YAML document with its position: the index [`position`] answers from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outline {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Node {
    mark: Mark,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A scalar (its text) or an alias (`None`).
    Leaf,
    Seq(Vec<usize>),
    /// Entries: the key's text (`None` for a non-scalar key), the key's mark, the value node.
    Map(Vec<(Option<String>, Mark, usize)>),
}

/// A mapping key read from the event stream: its text (`None` for a non-scalar key) and mark.
type Key = (Option<String>, Mark);

/// What [`Outline::locate`] found: how many segments of the path exist, the mark of the last
/// one found (its key, or the sequence item), and that node's value mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    pub matched: usize,
    pub key: Mark,
    pub value: Mark,
}

impl Outline {
    /// Parse `text` (its first document). Run [`check_depth`] first on untrusted text.
    pub(crate) fn parse(text: &str) -> Result<Self, SyntaxError> {
        let mut parser = libyaml::Parser::new(text.as_bytes());
        let mut nodes: Vec<Node> = Vec::new();
        // Open collections: node index and, for a mapping, the key read before its value.
        let mut stack: Vec<(usize, Option<Key>)> = Vec::new();
        loop {
            let (event, mark) = match parser.next() {
                Ok(e) => e,
                Err(e) => return Err(e.into_syntax_error(text)),
            };
            let (kind, key_text) = match event {
                libyaml::Event::Scalar(s) => (Kind::Leaf, Some(s)),
                libyaml::Event::Alias => (Kind::Leaf, None),
                libyaml::Event::SequenceStart => (Kind::Seq(Vec::new()), None),
                libyaml::Event::MappingStart => (Kind::Map(Vec::new()), None),
                libyaml::Event::End => {
                    stack.pop();
                    if stack.is_empty() && !nodes.is_empty() {
                        break;
                    }
                    continue;
                }
                libyaml::Event::DocumentEnd | libyaml::Event::StreamEnd => break,
                libyaml::Event::Other => continue,
            };
            let opens = matches!(kind, Kind::Seq(_) | Kind::Map(_));
            let id = nodes.len();
            nodes.push(Node { mark, kind });
            if let Some((parent, pending)) = stack.last_mut() {
                let parent = *parent;
                match &mut nodes[parent].kind {
                    Kind::Seq(items) => items.push(id),
                    Kind::Map(entries) => match pending.take() {
                        None => *pending = Some((key_text, mark)),
                        Some((k, kmark)) => entries.push((k, kmark, id)),
                    },
                    Kind::Leaf => {}
                }
            }
            if opens {
                stack.push((id, None));
            } else if stack.is_empty() {
                break;
            }
        }
        Ok(Self { nodes })
    }

    /// Follow `path` from the root as far as it exists.
    pub(crate) fn locate(&self, path: &[Seg]) -> Located {
        let start = Mark { line: 1, col: 1 };
        let Some(root) = self.nodes.first() else {
            return Located { matched: 0, key: start, value: start };
        };
        let mut node = 0;
        let mut found = Located { matched: 0, key: start, value: root.mark };
        for seg in path {
            let next = match (&self.nodes[node].kind, seg) {
                (Kind::Map(entries), Seg::Key(k)) => entries
                    .iter()
                    .find(|(key, _, _)| key.as_deref() == Some(*k))
                    .map(|(_, m, v)| (*m, *v)),
                (Kind::Seq(items), Seg::Index(i)) => {
                    items.get(*i).map(|&v| (self.nodes[v].mark, v))
                }
                _ => None,
            };
            let Some((key, value)) = next else { break };
            node = value;
            found = Located { matched: found.matched + 1, key, value: self.nodes[value].mark };
        }
        found
    }
}

/// THE position helper for user YAML (`pilum.yaml`, pools files): the 1-based line and column
/// of the key at `path` (or of the sequence item, for an index), falling back to the closest
/// parent that exists, then to `1:1`. `path` mixes keys and indices:
/// `&["pools".into(), name.into(), "schedules".into(), 2.into(), "value".into()]`.
pub(crate) fn position(text: &str, path: &[Seg]) -> (usize, usize) {
    let m = Outline::parse(text).map_or(Mark { line: 1, col: 1 }, |o| o.locate(path).key);
    (m.line, m.col)
}

/// Like [`position`], but the value's position (`name: "../x"` points at the quote), or the
/// closest parent's value.
pub(crate) fn value_position(text: &str, path: &[Seg]) -> (usize, usize) {
    let m = Outline::parse(text).map_or(Mark { line: 1, col: 1 }, |o| o.locate(path).value);
    (m.line, m.col)
}

/// The syntax error in `text`, if it has one (libyaml's report, with the open construct).
pub(crate) fn syntax_error(text: &str) -> Option<SyntaxError> {
    Outline::parse(text).err()
}

/// The thin safe wrapper over libyaml's event parser (`unsafe-libyaml`, the parser `serde_yaml`
/// itself runs). It only reads: marks, scalar text, collection starts and ends, errors.
mod libyaml {
    use std::ffi::CStr;
    use std::marker::PhantomData;
    use std::mem::MaybeUninit;

    use unsafe_libyaml as unsafe_sys;

    use super::{Mark, SyntaxError};

    pub(super) enum Event {
        Scalar(String),
        Alias,
        SequenceStart,
        MappingStart,
        /// The end of a sequence or mapping.
        End,
        DocumentEnd,
        StreamEnd,
        Other,
    }

    pub(super) struct Error {
        problem: String,
        mark: Mark,
        /// A byte offset, for reader errors that carry no mark.
        offset: Option<u64>,
        context: Option<(String, Mark)>,
    }

    fn mark(m: unsafe_sys::yaml_mark_t) -> Mark {
        Mark { line: m.line as usize + 1, col: m.column as usize + 1 }
    }

    impl Error {
        pub(super) fn into_syntax_error(self, text: &str) -> SyntaxError {
            let lines = text.lines().count().max(1);
            let mut at = self.mark;
            if let Some(offset) = self.offset {
                // Reader errors (a control character) carry a byte offset instead of a mark.
                let offset = (offset as usize).min(text.len());
                let mut end = offset;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let before = &text[..end];
                at = Mark {
                    line: before.matches('\n').count() + 1,
                    col: before.rsplit('\n').next().unwrap_or("").chars().count() + 1,
                };
            }
            // A mark past the last line (the end of the text) becomes the end of the last line.
            let last = text.lines().last().unwrap_or("");
            let end = Mark { line: lines, col: last.chars().count() + 1 };
            let clamp = |m: Mark| if m.line > lines { end } else { m };
            let at_end = at.line > lines;
            if at_end && self.context.is_none() {
                at = end;
            }
            SyntaxError {
                problem: self.problem,
                mark: clamp(at),
                context: self.context.map(|(c, m)| (c, clamp(m))),
                at_end,
            }
        }
    }

    pub(super) struct Parser<'input> {
        // Boxed: libyaml keeps a pointer to the parser itself, so it must never move.
        raw: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
        ready: bool,
        _input: PhantomData<&'input [u8]>,
    }

    impl<'input> Parser<'input> {
        pub(super) fn new(input: &'input [u8]) -> Self {
            let mut raw = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
            let p = raw.as_mut_ptr();
            // SAFETY: `yaml_parser_initialize` writes every field of the boxed parser before it
            // is read; the box keeps its address fixed for the self-pointer libyaml stores; the
            // input outlives the parser (`'input`).
            let ready = unsafe {
                let ok = unsafe_sys::yaml_parser_initialize(p).ok;
                if ok {
                    unsafe_sys::yaml_parser_set_encoding(p, unsafe_sys::YAML_UTF8_ENCODING);
                    unsafe_sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as u64);
                }
                ok
            };
            Self { raw, ready, _input: PhantomData }
        }

        pub(super) fn next(&mut self) -> Result<(Event, Mark), Error> {
            if !self.ready {
                return Err(Error {
                    problem: "out of memory while reading YAML".into(),
                    mark: Mark { line: 1, col: 1 },
                    offset: None,
                    context: None,
                });
            }
            let p = self.raw.as_mut_ptr();
            let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
            // SAFETY: the parser is initialised (`ready`); `yaml_parser_parse` fills `event`
            // when it succeeds, and the event is deleted after its data is copied out. On
            // failure the error fields of the parser are set and no event is produced.
            unsafe {
                let failed = {
                    let parser: &unsafe_sys::yaml_parser_t = &*p;
                    parser.error != unsafe_sys::YAML_NO_ERROR
                } || unsafe_sys::yaml_parser_parse(p, event.as_mut_ptr()).fail;
                if failed {
                    let parser: &unsafe_sys::yaml_parser_t = &*p;
                    let text = |ptr: *const libc::c_char| {
                        (!ptr.is_null()).then(|| CStr::from_ptr(ptr).to_string_lossy().into_owned())
                    };
                    let context = text(parser.context).map(|c| (c, mark(parser.context_mark)));
                    let raw = parser.problem_mark;
                    let unmarked = raw.line == 0 && raw.column == 0 && parser.problem_offset > 0;
                    return Err(Error {
                        problem: text(parser.problem).unwrap_or_else(|| "invalid YAML".into()),
                        mark: mark(raw),
                        offset: unmarked.then_some(parser.problem_offset),
                        context,
                    });
                }
                let e = event.as_mut_ptr();
                let at = mark((*e).start_mark);
                let out = match (*e).type_ {
                    unsafe_sys::YAML_SCALAR_EVENT => {
                        let s = (*e).data.scalar;
                        let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                        Event::Scalar(String::from_utf8_lossy(bytes).into_owned())
                    }
                    unsafe_sys::YAML_ALIAS_EVENT => Event::Alias,
                    unsafe_sys::YAML_SEQUENCE_START_EVENT => Event::SequenceStart,
                    unsafe_sys::YAML_MAPPING_START_EVENT => Event::MappingStart,
                    unsafe_sys::YAML_SEQUENCE_END_EVENT | unsafe_sys::YAML_MAPPING_END_EVENT => {
                        Event::End
                    }
                    unsafe_sys::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
                    unsafe_sys::YAML_STREAM_END_EVENT => Event::StreamEnd,
                    _ => Event::Other,
                };
                unsafe_sys::yaml_event_delete(e);
                Ok((out, at))
            }
        }
    }

    impl Drop for Parser<'_> {
        fn drop(&mut self) {
            if self.ready {
                // SAFETY: initialised in `new` and deleted exactly once, here.
                unsafe { unsafe_sys::yaml_parser_delete(self.raw.as_mut_ptr()) }
            }
        }
    }
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

    #[test]
    fn positions_follow_block_and_flow_style() {
        let text = "name: api\nregion: x\ncloud_run:\n  region: y\n  memory: 1\ndepends_on: [db, \"cache\"]\ntargets:\n  - recipe: local\n  - {recipe: shell, shell: {build: make}}\n";
        assert_eq!(position(text, &["region".into()]), (2, 1));
        assert_eq!(position(text, &["cloud_run".into(), "memory".into()]), (5, 3));
        assert_eq!(position(text, &["cloud_run".into(), "nope".into()]), (3, 1));
        assert_eq!(position(text, &["depends_on".into(), 1.into()]), (6, 18));
        assert_eq!(
            position(text, &["targets".into(), 1.into(), "shell".into(), "build".into()]),
            (9, 29)
        );
        assert_eq!(value_position(text, &["name".into()]), (1, 7));
        assert_eq!(position(text, &["nothing".into()]), (1, 1));
        let o = Outline::parse(text).unwrap();
        assert_eq!(o.locate(&["targets".into(), 5.into()]).matched, 1);
    }

    #[test]
    fn an_unclosed_bracket_at_the_end_points_at_the_bracket() {
        let text = "name: c\nrecipe: shell\nshell:\n  build: [true\n";
        let e = syntax_error(text).unwrap();
        assert!(e.at_end, "{e:?}");
        assert_eq!(e.position(), Mark { line: 4, col: 10 });
        assert!(
            e.to_string().contains("the file ends inside a flow sequence opened at 4:10"),
            "{e}"
        );
        // Noticed inside the file: the problem's own position, with the open construct named.
        let e = syntax_error("a: [x, y\nb: 1\n").unwrap();
        assert!(!e.at_end && e.position().line == 2, "{e:?}");
        assert!(e.to_string().contains("flow sequence that starts at 1:4"), "{e}");
        let e = syntax_error("a: \"open\n").unwrap();
        assert_eq!(e.position(), Mark { line: 1, col: 4 });
        assert_eq!(syntax_error("a: 1\n"), None);
    }
}
