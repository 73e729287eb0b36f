//! What a /containerLogs reader sees of CRI log text: the validated options, then partial
//! entries joined into logical lines, entries before sinceTime dropped, timestamps prepended
//! on request, the last tailLines kept and limitBytes applied. Pure functions, below the
//! endpoint ([`super::logs`]) and the backwards reader ([`super::tail`]), whose tests compare
//! against [`render`].

use super::cri_log;

/// The options of one request, validated ([`super::logs::LogQuery::options`]).
#[derive(Debug, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    /// Only entries at or after this instant (ns since the epoch).
    pub since_nanos: Option<i128>,
    pub timestamps: bool,
    pub previous: bool,
    pub limit_bytes: Option<u64>,
}

/// Renders complete CRI log text into the user's view; returns the rendered lines (each one
/// logical line, partial entries joined) so that the caller can tail them. Partial entries
/// after the last full one are left out: their line is still being written (a follower sends
/// it once it ends).
pub fn render(text: &str, opts: &LogOptions) -> Vec<String> {
    let (lines, _) = logical_lines(text, opts);
    tail(lines, opts)
}

/// [`render`] for a container that has exited, whose log has its last word: partial entries
/// after the last full one are its last line, sent without a newline (kubelet sends a partial
/// entry's content as it is).
pub fn render_ended(text: &str, opts: &LogOptions) -> Vec<String> {
    let (mut lines, unfinished) = logical_lines(text, opts);
    lines.extend(unfinished);
    tail(lines, opts)
}

/// The logical lines of `text` and the unfinished one after them, if any.
fn logical_lines(text: &str, opts: &LogOptions) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    let mut pending = String::new();
    let mut pending_ts: Option<String> = None;
    let line = |ts: Option<String>, content: &str| {
        let mut line = match (opts.timestamps, ts) {
            (true, Some(ts)) => format!("{ts} "),
            _ => String::new(),
        };
        line.push_str(content);
        line
    };
    for raw in text.lines() {
        let Some(e) = cri_log::parse(raw) else {
            continue;
        };
        if let Some(since) = opts.since_nanos
            && cri_log::epoch_nanos(e.timestamp).is_some_and(|t| t < since)
        {
            continue;
        }
        if pending_ts.is_none() {
            pending_ts = Some(e.timestamp.to_string());
        }
        pending.push_str(e.content);
        if !e.partial {
            let mut full = line(pending_ts.take(), &pending);
            full.push('\n');
            lines.push(full);
            pending.clear();
        }
    }
    let unfinished = pending_ts.map(|ts| line(Some(ts), &pending));
    (lines, unfinished)
}

/// The last tailLines of `lines`, or all of them.
fn tail(mut lines: Vec<String>, opts: &LogOptions) -> Vec<String> {
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

/// Cuts `lines` to `limit` bytes in total (the last line may be cut mid-way, as kubelet does).
pub fn limit(lines: Vec<String>, limit: Option<u64>) -> (Vec<String>, Option<u64>) {
    let Some(mut left) = limit else {
        return (lines, None);
    };
    let mut out = Vec::new();
    for mut l in lines {
        if left == 0 {
            break;
        }
        let len = l.len() as u64;
        if len > left {
            let mut cut = usize::try_from(left).unwrap_or(0);
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
            left = 0;
        } else {
            left -= len;
        }
        out.push(l);
    }
    (out, Some(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2024-01-01T00:00:01Z stdout F one\n\
2024-01-01T00:00:02Z stderr P tw\n\
2024-01-01T00:00:02.5Z stderr F o\n\
2024-01-01T00:00:03Z stdout F three\n";

    #[test]
    fn an_exited_containers_last_partial_entries_are_its_last_line() {
        let log = format!(
            "{LOG}2024-01-01T00:00:04Z stdout P no-new\n2024-01-01T00:00:05Z stdout P line"
        );
        let log = format!("{log}\n");
        assert_eq!(
            render(&log, &LogOptions::default()),
            ["one\n", "two\n", "three\n"]
        );
        assert_eq!(
            render_ended(&log, &LogOptions::default()),
            ["one\n", "two\n", "three\n", "no-newline"]
        );
        let tailed = render_ended(
            &log,
            &LogOptions {
                tail_lines: Some(2),
                timestamps: true,
                ..LogOptions::default()
            },
        );
        assert_eq!(
            tailed,
            [
                "2024-01-01T00:00:03Z three\n",
                "2024-01-01T00:00:04Z no-newline"
            ]
        );
    }

    #[test]
    fn partial_entries_are_joined_and_tail_counts_logical_lines() {
        let all = render(LOG, &LogOptions::default());
        assert_eq!(all, ["one\n", "two\n", "three\n"]);
        let tail = render(
            LOG,
            &LogOptions {
                tail_lines: Some(2),
                timestamps: true,
                ..LogOptions::default()
            },
        );
        assert_eq!(
            tail,
            ["2024-01-01T00:00:02Z two\n", "2024-01-01T00:00:03Z three\n"]
        );
    }

    #[test]
    fn since_and_limit() {
        let since = cri_log::epoch_nanos("2024-01-01T00:00:02.6Z").unwrap();
        let lines = render(
            LOG,
            &LogOptions {
                since_nanos: Some(since),
                ..LogOptions::default()
            },
        );
        assert_eq!(lines, ["three\n"]);
        let (cut, left) = limit(vec!["one\n".into(), "two\n".into()], Some(6));
        assert_eq!(cut, ["one\n", "tw"]);
        assert_eq!(left, Some(0));
    }
}
