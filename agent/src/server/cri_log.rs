//! The CRI container log format: one line per write, `TIMESTAMP STREAM TAG CONTENT`, where TAG
//! is F for a full line and P for a partial one (continued by the next entry).

/// One parsed log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// RFC 3339 with nanoseconds, as the runtime wrote it.
    pub timestamp: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a str,
}

/// Parses one line (without its newline); None for a line that is not in the CRI format.
pub fn parse(line: &str) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, ' ');
    let timestamp = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or("");
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let partial = tag.split(':').any(|t| t == "P");
    Some(Entry {
        timestamp,
        stream,
        partial,
        content,
    })
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp, None if malformed.
pub fn epoch_nanos(timestamp: &str) -> Option<i128> {
    timestamp
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(k8s_openapi::jiff::Timestamp::as_nanosecond)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_partial_lines() {
        let e = parse("2024-01-01T00:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!(e.stream, "stdout");
        assert!(!e.partial);
        assert_eq!(e.content, "hello world");
        let p = parse("2024-01-01T00:00:00Z stderr P part").unwrap();
        assert!(p.partial);
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("2024-01-01T00:00:00Z stdout F").unwrap().content, "");
    }

    #[test]
    fn timestamps_order() {
        let a = epoch_nanos("2024-01-01T00:00:00.5Z").unwrap();
        let b = epoch_nanos("2024-01-01T00:00:01Z").unwrap();
        assert!(a < b);
        assert_eq!(epoch_nanos("nope"), None);
    }
}
