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
/// logical line, partial entries joined) so that the caller can tail them.
pub fn render(text: &str, opts: &LogOptions) -> Vec<String> {
    let mut lines = Vec::new();
    let mut pending = String::new();
    let mut pending_ts: Option<String> = None;
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
            let ts = pending_ts.take().unwrap_or_default();
            let mut line = if opts.timestamps {
                format!("{ts} ")
            } else {
                String::new()
            };
            line.push_str(&pending);
            line.push('\n');
            lines.push(line);
            pending.clear();
        }
    }
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
