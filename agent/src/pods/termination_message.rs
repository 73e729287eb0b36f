//! A terminated container's message, as kubelet reads it: the file bound at
//! terminationMessagePath (at most 4 KiB), or with FallbackToLogsOnError and an empty file and a
//! failed exit, the tail of its log (80 lines, 2 KiB).

use std::io::Read;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::context::PodContext;
use super::observe::ContainerView;

const MAX_MESSAGE: u64 = 4096;
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

/// The content of CRI log lines ("TIMESTAMP STREAM TAG CONTENT"), newline-joined.
pub fn log_contents(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_ts, _stream, tag, content) = (parts.next(), parts.next(), parts.next(), parts.next());
        out.push_str(content.unwrap_or_default());
        if tag != Some("P") {
            out.push('\n');
        }
    }
    out
}

/// The last `lines` lines and at most `bytes` bytes of `text`.
pub fn tail(text: &str, lines: usize, bytes: usize) -> String {
    let kept: Vec<&str> = text.lines().rev().take(lines).collect();
    let joined = kept.into_iter().rev().collect::<Vec<_>>().join("\n");
    if joined.len() <= bytes {
        return joined;
    }
    let mut start = joined.len() - bytes;
    while !joined.is_char_boundary(start) {
        start += 1;
    }
    joined[start..].to_string()
}

/// Reads the message of the exited container `l`.
/// How much of the end of a log the fallback reads: far more than 80 lines of 2048 bytes need,
/// far less than a whole log.
const FALLBACK_READ: u64 = 256 * 1024;

/// The last `at_most` bytes of `path` (from a line start when it had to cut).
fn read_end(path: &Path, at_most: u64) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(at_most);
    f.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    f.take(at_most).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(match (start > 0, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_string(),
        _ => text.into_owned(),
    })
}

pub fn read(ctx: &PodContext, pod: &Pod, c: &Container, l: &ContainerView) -> Option<String> {
    let uid = pod.metadata.uid.as_deref()?;
    let file = ctx
        .pod_dir(uid)
        .join("containers")
        .join(&c.name)
        .join(format!("termination-{}", l.restart_count));
    let mut msg = String::new();
    if let Ok(f) = std::fs::File::open(&file) {
        let _ = f.take(MAX_MESSAGE).read_to_string(&mut msg);
    }
    let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if msg.is_empty() && fallback && l.exit_code != 0 && !l.log_path.is_empty() {
        let text = read_end(Path::new(&l.log_path), FALLBACK_READ).unwrap_or_default();
        msg = tail(&log_contents(&text), FALLBACK_LINES, FALLBACK_BYTES);
    }
    (!msg.is_empty()).then_some(msg)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn only_the_end_of_a_long_log_is_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        let line = "2026-01-01T00:00:00Z stdout F xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
        std::fs::write(
            &p,
            line.repeat(10_000) + "2026-01-01T00:00:01Z stderr F last\n",
        )
        .unwrap();
        let end = read_end(&p, 1024).unwrap();
        assert!(end.len() <= 1024);
        assert!(end.starts_with("2026-"), "cut at a line start: {end:?}");
        assert!(end.ends_with("stderr F last\n"));
        std::fs::write(&p, "short\n").unwrap();
        assert_eq!(read_end(&p, 1024).unwrap(), "short\n");
    }

    #[test]
    fn cri_log_lines_are_unwrapped_and_joined() {
        let text = "2026-01-01T00:00:00Z stdout F hello\n2026-01-01T00:00:01Z stderr P par\n2026-01-01T00:00:01Z stderr F tial\n";
        assert_eq!(log_contents(text), "hello\npartial\n");
    }

    #[test]
    fn tail_keeps_the_last_lines_and_bytes() {
        let text = (0..100).fold(String::new(), |mut text, i| {
            writeln!(text, "line{i}").unwrap();
            text
        });
        let t = tail(&text, 80, 2048);
        assert!(t.starts_with("line20\n") && t.ends_with("line99"));
        let t = tail(&text, 80, 10);
        assert_eq!(t, "e98\nline99");
    }
}
