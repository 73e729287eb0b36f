//! A terminated container's message, as kubelet reads it: the file bound at
//! terminationMessagePath (at most 4 KiB), or with FallbackToLogsOnError and an empty file and a
//! failed exit, the tail of its log (80 lines, 2 KiB).

use std::io::Read;

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
        let text = std::fs::read_to_string(&l.log_path).unwrap_or_default();
        msg = tail(&log_contents(&text), FALLBACK_LINES, FALLBACK_BYTES);
    }
    (!msg.is_empty()).then_some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines_are_unwrapped_and_joined() {
        let text = "2026-01-01T00:00:00Z stdout F hello\n2026-01-01T00:00:01Z stderr P par\n2026-01-01T00:00:01Z stderr F tial\n";
        assert_eq!(log_contents(text), "hello\npartial\n");
    }

    #[test]
    fn tail_keeps_the_last_lines_and_bytes() {
        let text: String = (0..100).map(|i| format!("line{i}\n")).collect();
        let t = tail(&text, 80, 2048);
        assert!(t.starts_with("line20\n") && t.ends_with("line99"));
        let t = tail(&text, 80, 10);
        assert_eq!(t, "e98\nline99");
    }
}
