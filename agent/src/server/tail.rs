//! /containerLogs?tailLines=N: the last N logical lines of a CRI log file, found by reading
//! backwards from the end in chunks, so that memory follows what is returned rather than the
//! file's size. A logical line ends at an F (full) entry and takes the P (partial) entries
//! before it. Blocking I/O: callers run it on a blocking thread.

use std::borrow::Cow;
use std::io::{self, Read, Seek, SeekFrom};

use super::cri_log;

/// How much is read per step backwards.
pub const CHUNK: usize = 64 << 10;
/// Enough of a line's start to hold its timestamp, stream and tag (RFC 3339 with nanoseconds
/// and an offset is 35 bytes).
const PREFIX: usize = 128;

/// Where the wanted lines are in the file: `[start, end)`, where `end` is just past the last
/// newline (a trailing fragment is still being written; the follower picks it up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

/// The complete lines of `r`'s first `len` bytes that hold its last `lines` logical lines, and
/// the offset just past them; nothing before `floor` is read (a line cut by it is dropped).
pub fn last_lines<R: Read + Seek>(
    r: &mut R,
    len: u64,
    lines: usize,
    floor: u64,
    chunk: usize,
) -> io::Result<(Vec<u8>, u64)> {
    let span = find(r, len, lines, floor, chunk)?;
    Ok((read_span(r, span)?, span.end))
}

/// Finds the span of [`last_lines`] without keeping more than a chunk in memory.
pub fn find<R: Read + Seek>(
    r: &mut R,
    len: u64,
    lines: usize,
    floor: u64,
    chunk: usize,
) -> io::Result<Span> {
    let floor = floor.min(len);
    let mut buf = vec![0u8; chunk.max(1)];
    let mut scan = Scan::new(lines);
    let mut pos = len;
    while pos > floor {
        let k = usize::try_from(pos - floor).map_or(buf.len(), |left| left.min(buf.len()));
        let at = pos - k as u64;
        r.seek(SeekFrom::Start(at))?;
        r.read_exact(&mut buf[..k])?;
        if let Some(start) = scan.chunk(at, &buf[..k]) {
            return Ok(scan.span(start));
        }
        pos = at;
    }
    Ok(scan.finish(floor))
}

fn read_span<R: Read + Seek>(r: &mut R, span: Span) -> io::Result<Vec<u8>> {
    let size = usize::try_from(span.end - span.start)
        .map_err(|_| io::Error::other("log span too large"))?;
    let mut out = vec![0u8; size];
    r.seek(SeekFrom::Start(span.start))?;
    r.read_exact(&mut out)?;
    Ok(out)
}

/// The backwards scan's state between chunks.
struct Scan {
    wanted: usize,
    /// F entries seen so far, from the end.
    full: usize,
    /// Just past the file's last newline, once found.
    end: Option<u64>,
    /// Start of the earliest line classified so far (the end of the one before it).
    later: u64,
    /// The first bytes from the current scan position on: the start of the line that begins
    /// in the previous (later) chunk.
    next: Vec<u8>,
}

impl Scan {
    fn new(wanted: usize) -> Scan {
        Scan {
            wanted,
            full: 0,
            end: None,
            later: 0,
            next: Vec::new(),
        }
    }

    fn span(&self, start: u64) -> Span {
        let end = self.end.unwrap_or(start);
        Span { start, end }
    }

    /// Scans `bytes`, which sit at `at`, from their end; Some(start of the span) once found.
    fn chunk(&mut self, at: u64, bytes: &[u8]) -> Option<u64> {
        for i in newlines_backwards(bytes) {
            let newline = at + i as u64;
            if self.end.is_none() {
                self.end = Some(newline + 1);
                self.later = newline + 1;
                continue;
            }
            let prefix = self.prefix(bytes, i + 1);
            if let Some(start) = self.line(newline + 1, &prefix) {
                return Some(start);
            }
        }
        let mut next = bytes[..bytes.len().min(PREFIX)].to_vec();
        next.extend_from_slice(&self.next[..self.next.len().min(PREFIX - next.len())]);
        self.next = next;
        None
    }

    /// The start of the line beginning at `from` in `bytes`, continued from the later chunk.
    fn prefix<'b>(&self, bytes: &'b [u8], from: usize) -> Cow<'b, [u8]> {
        let here = &bytes[from..bytes.len().min(from + PREFIX)];
        if here.len() == PREFIX || here.contains(&b'\n') {
            return Cow::Borrowed(here);
        }
        let mut joined = here.to_vec();
        joined.extend_from_slice(&self.next[..self.next.len().min(PREFIX - here.len())]);
        Cow::Owned(joined)
    }

    /// Classifies the complete line at `start`; Some(span start) when it is the F entry just
    /// before the wanted lines.
    fn line(&mut self, start: u64, prefix: &[u8]) -> Option<u64> {
        if is_full_entry(prefix) {
            self.full += 1;
            if self.full > self.wanted {
                return Some(self.later);
            }
        }
        self.later = start;
        None
    }

    /// The span once the scan reached `floor` without finding its start.
    fn finish(mut self, floor: u64) -> Span {
        if self.end.is_none() {
            return Span {
                start: floor,
                end: floor,
            };
        }
        // At the file's start the first line is whole; at a floor inside the file it is cut.
        if floor == 0 {
            let next = std::mem::take(&mut self.next);
            let start = self.line(0, &next).unwrap_or(0);
            return self.span(start);
        }
        self.span(self.later)
    }
}

/// Offsets of the newlines in `bytes`, last first.
fn newlines_backwards(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
}

/// Whether the line starting with `prefix` is a full (F) CRI entry, as the renderer reads it.
fn is_full_entry(prefix: &[u8]) -> bool {
    let line = prefix.split(|b| *b == b'\n').next().unwrap_or(prefix);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    cri_log::parse(&String::from_utf8_lossy(line)).is_some_and(|e| !e.partial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::log_view::{LogOptions, render};
    use std::io::Write;

    /// What the whole-file reader returns: every complete line rendered, then tailed.
    fn reference(text: &[u8], n: usize) -> (Vec<String>, u64) {
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let opts = LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        };
        (
            render(&String::from_utf8_lossy(&text[..complete]), &opts),
            complete as u64,
        )
    }

    fn tailed(text: &[u8], n: usize, chunk: usize) -> (Vec<String>, u64) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(text).unwrap();
        let (bytes, end) = last_lines(&mut file, text.len() as u64, n, 0, chunk).unwrap();
        let opts = LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        };
        (render(&String::from_utf8_lossy(&bytes), &opts), end)
    }

    fn entry(i: usize, tag: &str, content: &str) -> String {
        format!(
            "2024-01-01T00:00:{:02}.{i:09}Z stdout {tag} {content}\n",
            i % 60
        )
    }

    /// Full lines, partial runs (some crossing chunk borders), a garbage line, an empty
    /// content line and multi-byte text.
    fn mixed_log() -> String {
        let mut s = String::new();
        for i in 0..40 {
            match i % 7 {
                0 => {
                    s += &entry(i, "P", "part-one-");
                    s += &entry(i, "P", "part-two-");
                    s += &entry(i, "F", &format!("end{i}"));
                }
                3 => s += "not a cri line at all\n",
                4 => s += &entry(i, "F", ""),
                5 => s += &entry(i, "F", &format!("héllo wörld {i}")),
                _ => s += &entry(i, "F", &format!("line {i}")),
            }
        }
        s
    }

    #[test]
    fn matches_the_whole_file_reader_for_every_chunk_size_and_count() {
        let log = mixed_log();
        for chunk in [1, 2, 3, 7, 50, 64, 127, 1000, CHUNK] {
            for n in [0, 1, 2, 3, 5, 10, 39, 100] {
                assert_eq!(
                    tailed(log.as_bytes(), n, chunk),
                    reference(log.as_bytes(), n),
                    "chunk {chunk} n {n}"
                );
            }
        }
    }

    #[test]
    fn partial_entries_join_their_full_entry() {
        let log = format!(
            "{}{}{}{}",
            entry(1, "F", "one"),
            entry(2, "P", "t"),
            entry(3, "P", "w"),
            entry(4, "F", "o")
        );
        assert_eq!(tailed(log.as_bytes(), 1, 5).0, ["two\n"]);
        assert_eq!(tailed(log.as_bytes(), 2, 5).0, ["one\n", "two\n"]);
    }

    #[test]
    fn an_empty_file_has_no_lines() {
        assert_eq!(tailed(b"", 10, 4), (Vec::new(), 0));
    }

    #[test]
    fn a_trailing_fragment_is_left_for_the_follower() {
        let whole = entry(1, "F", "one") + &entry(2, "F", "two");
        let log = whole.clone() + "2024-01-01T00:00:03Z stdout F thr";
        let (lines, end) = tailed(log.as_bytes(), 5, 8);
        assert_eq!(lines, ["one\n", "two\n"]);
        assert_eq!(end, whole.len() as u64);
        // No newline at all: nothing yet, and following starts at the beginning.
        assert_eq!(
            tailed(b"2024-01-01T00:00:03Z stdout F x", 5, 4),
            (Vec::new(), 0)
        );
    }

    #[test]
    fn trailing_partial_entries_do_not_count_as_a_line() {
        let log = entry(1, "F", "one") + &entry(2, "F", "two") + &entry(3, "P", "thr");
        assert_eq!(tailed(log.as_bytes(), 1, 6), reference(log.as_bytes(), 1));
        assert_eq!(tailed(log.as_bytes(), 1, 6).0, ["two\n"]);
    }

    #[test]
    fn more_lines_asked_than_the_file_has_returns_them_all() {
        let log = entry(1, "F", "one") + &entry(2, "F", "two");
        assert_eq!(tailed(log.as_bytes(), 1000, 3).0, ["one\n", "two\n"]);
    }

    #[test]
    fn a_file_many_chunks_long_reads_only_its_end() {
        let mut log = String::new();
        for i in 0..20_000 {
            log += &entry(i, "F", &format!("line {i}"));
        }
        assert!(log.len() > 10 * CHUNK);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(log.as_bytes()).unwrap();
        let len = log.len() as u64;
        let span = find(&mut file, len, 3, 0, CHUNK).unwrap();
        assert!(
            len - span.start < CHUNK as u64,
            "read back to {}",
            span.start
        );
        let (lines, end) = tailed(log.as_bytes(), 3, CHUNK);
        assert_eq!(lines, ["line 19997\n", "line 19998\n", "line 19999\n"]);
        assert_eq!(end, len);
    }

    #[test]
    fn nothing_before_the_floor_is_read_and_a_cut_line_is_dropped() {
        let log = entry(1, "F", "one") + &entry(2, "F", "two") + &entry(3, "F", "three");
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(log.as_bytes()).unwrap();
        let floor = entry(1, "F", "one").len() as u64 + 5;
        let (bytes, _) = last_lines(&mut file, log.len() as u64, 10, floor, 4).unwrap();
        assert_eq!(String::from_utf8(bytes).unwrap(), entry(3, "F", "three"));
    }
}
