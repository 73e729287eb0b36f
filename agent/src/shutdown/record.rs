//! The record of the last graceful shutdown, kubelet's: `ROOT/graceful_node_shutdown_state`
//! (`{"startTime": ..., "endTime": ...}`, RFC 3339 times, Go's zero time for one not reached)
//! and the gauges kubelet_graceful_shutdown_start_time_seconds / _end_time_seconds, which are
//! set again from the file when the agent starts. kubelet 1.35 writes the end time into the
//! start gauge when a shutdown ends (a slip in its deferred function); here each gauge keeps
//! its own time.

use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The file's name under the root directory.
pub const STATE_FILE: &str = "graceful_node_shutdown_state";

/// Go's `time.Time{}` as JSON.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateJson {
    start_time: String,
    end_time: String,
}

/// When the last shutdown started and ended (None: not reached).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownRecord {
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
}

fn text(t: Option<Timestamp>) -> String {
    t.map_or_else(|| GO_ZERO_TIME.to_string(), |t| t.to_string())
}

fn time(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>()
        .ok()
        .filter(|t| t.as_second() > Timestamp::UNIX_EPOCH.as_second())
}

/// Whole seconds since the epoch, as kubelet's timestamp(); 0 for none.
fn seconds(t: Option<Timestamp>) -> i64 {
    t.map_or(0, Timestamp::as_second)
}

impl ShutdownRecord {
    /// Sets the two gauges from this record.
    pub fn publish(&self) {
        // Epoch seconds fit an f64 exactly.
        #[allow(clippy::cast_precision_loss)]
        crate::metrics::set_graceful_shutdown(seconds(self.start) as f64, seconds(self.end) as f64);
    }
}

/// Where the record lives.
#[derive(Debug, Clone)]
pub struct StateFile {
    pub path: PathBuf,
}

impl StateFile {
    pub fn under(root_dir: &Path) -> StateFile {
        StateFile {
            path: root_dir.join(STATE_FILE),
        }
    }

    /// The record, or None when there is none (or it cannot be read: logged).
    pub fn load(&self) -> Option<ShutdownRecord> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "Failed to load graceful shutdown state");
                return None;
            }
        };
        match serde_json::from_slice::<StateJson>(&bytes) {
            Ok(s) => Some(ShutdownRecord {
                start: time(&s.start_time),
                end: time(&s.end_time),
            }),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "Failed to load graceful shutdown state");
                None
            }
        }
    }

    /// Replaces the record atomically (0644, as kubelet).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn store(&self, record: &ShutdownRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec(&StateJson {
            start_time: text(record.start),
            end_time: text(record.end),
        })
        .map_err(std::io::Error::other)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        super::files::replace(dir, STATE_FILE, &json, 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_gos_zero_time_for_a_missing_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::under(dir.path());
        assert_eq!(file.load(), None);
        let start: Timestamp = "2026-12-07T10:00:00.5Z".parse().unwrap();
        let rec = ShutdownRecord {
            start: Some(start),
            end: None,
        };
        file.store(&rec).unwrap();
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert_eq!(
            text,
            r#"{"startTime":"2026-12-07T10:00:00.5Z","endTime":"0001-01-01T00:00:00Z"}"#
        );
        assert_eq!(file.load(), Some(rec));
        assert_eq!(seconds(rec.start), 1_796_637_600);
        assert_eq!(seconds(rec.end), 0);
    }

    #[test]
    fn reads_kubelets_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::under(dir.path());
        std::fs::write(
            &file.path,
            r#"{"startTime":"2026-12-07T10:00:00.123456789+01:00","endTime":"2026-12-07T10:00:30Z"}"#,
        )
        .unwrap();
        let rec = file.load().unwrap();
        assert_eq!(seconds(rec.start), 1_796_634_000);
        assert_eq!(seconds(rec.end), 1_796_637_630);
        std::fs::write(&file.path, "not json").unwrap();
        assert_eq!(file.load(), None);
    }
}
