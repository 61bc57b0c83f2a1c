//! JSONL journals under `.pilum/` (the run history, the deploy records): appended safely and
//! read from either end.
//!
//! Appending first terminates a torn last line (one a crash left without its newline), so the
//! new lines start on a line of their own; the lines go out in one `write` and are flushed to
//! disk before the call returns. Readers skip lines that are not JSON objects and report them.
//! [`Reverse`] reads from the end in blocks, so the newest N records of a journal of 100,000
//! cost the same as those of a journal of 100.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The block size of reading backwards.
const BLOCK: usize = 64 * 1024;

/// The longest line a reader accepts; a longer one is reported as unreadable, not kept whole
/// in memory.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// Append `lines` (each without its newline) to the journal at `file`, creating it, first
/// ending a torn last line, in one write, then flush it to disk.
pub(crate) fn append(file: &Path, lines: &[String]) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).read(true).append(true).open(file)?;
    let len = f.metadata()?.len();
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
    if len > 0 {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            out.push(b'\n');
        }
    }
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    f.write_all(&out)?;
    f.sync_data()
}

/// A line of a journal: a JSON object, or not (torn by a crash, edited by hand).
pub(crate) fn parse(line: &[u8]) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.is_object().then_some(v)
}

/// The journal's lines from the last to the first, read in blocks from the end. A missing file
/// has no lines. Empty lines are left out; a line longer than [`MAX_LINE`] comes back empty
/// (unreadable) rather than whole.
pub(crate) struct Reverse {
    file: Option<File>,
    /// Bytes before `pos` are unread.
    pos: u64,
    /// Read bytes not yet returned (the start of the file's partial line comes first).
    buf: Vec<u8>,
    /// The line being assembled when it spans blocks is longer than `MAX_LINE`.
    overlong: bool,
}

impl Reverse {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = match crate::state::guard::open_regular(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { file: None, pos: 0, buf: Vec::new(), overlong: false });
            }
            Err(e) => return Err(e),
        };
        let pos = file.metadata()?.len();
        Ok(Self { file: Some(file), pos, buf: Vec::new(), overlong: false })
    }

    /// The next line towards the start, without its newline.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            // A complete line is the text after the last newline in the buffer, once the
            // buffer reaches back to a newline before it or to the start of the file.
            if let Some(nl) = self.buf.iter().rposition(|&b| b == b'\n') {
                let line = self.buf.split_off(nl + 1);
                self.buf.truncate(nl);
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(self.finish(line)));
            }
            if self.pos == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(self.finish(line)));
            }
            let Some(f) = self.file.as_mut() else { return Ok(None) };
            let n = (self.pos as usize).min(BLOCK);
            self.pos -= n as u64;
            f.seek(SeekFrom::Start(self.pos))?;
            let mut block = vec![0u8; n];
            f.read_exact(&mut block)?;
            if self.buf.len() > MAX_LINE {
                // Only the tail of an overlong line is kept; it is reported, not parsed.
                self.buf.truncate(0);
                self.overlong = true;
            }
            block.extend_from_slice(&self.buf);
            self.buf = block;
        }
    }

    fn finish(&mut self, line: Vec<u8>) -> Vec<u8> {
        if std::mem::take(&mut self.overlong) { Vec::new() } else { line }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_ended_before_appending() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("j.jsonl");
        std::fs::write(&file, "{\"a\":1}\n{\"b\":").unwrap();
        append(&file, &["{\"c\":3}".into(), "{\"d\":4}".into()]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "{\"a\":1}\n{\"b\":\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn reverse_reads_lines_across_blocks() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("j.jsonl");
        let lines: Vec<String> = (0..20_000).map(|i| format!("{{\"n\":{i}}}")).collect();
        append(&file, &lines).unwrap();
        // A torn tail and an empty line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        f.write_all(b"\n{\"torn").unwrap();
        let mut r = Reverse::open(&file).unwrap();
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"torn");
        let mut seen = 0;
        while let Some(l) = r.next_line().unwrap() {
            let v = parse(&l).unwrap();
            assert_eq!(v["n"], 19_999 - seen);
            seen += 1;
        }
        assert_eq!(seen, 20_000);
        assert!(Reverse::open(&t.path().join("none")).unwrap().next_line().unwrap().is_none());
    }

    #[test]
    fn an_overlong_line_comes_back_empty() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("j.jsonl");
        let long = "x".repeat(MAX_LINE + 3 * BLOCK);
        append(&file, &["{\"a\":1}".into(), long, "{\"b\":2}".into()]).unwrap();
        let mut r = Reverse::open(&file).unwrap();
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"b\":2}");
        assert!(r.next_line().unwrap().unwrap().is_empty());
        assert_eq!(r.next_line().unwrap().unwrap(), b"{\"a\":1}");
        assert!(r.next_line().unwrap().is_none());
    }
}
