//! Container log rotation, as kubelet's container log manager (serving logs is
//! `server/logs.rs`). The runtime writes each container's output to its CRI log path
//! (`/var/log/pods/NS_NAME_UID/CONTAINER/RESTART.log`).
//! Every [`PERIOD`], each running container of this node whose log file has grown to
//! `max_size_bytes` or more is rotated: the oldest rotated files are deleted so that at most
//! `max_files - 2` remain, the file is renamed to `RESTART.log.YYYYMMDD-HHMMSS` and the runtime
//! is asked (CRI ReopenContainerLog) to write a fresh file; a container thus keeps at most
//! `max_files` files. When the runtime cannot reopen the log the rename is undone, so the next
//! round tries again (kubelet does the same).
//!
//! Not done: kubelet gzips every rotated file but the newest; there is no gzip crate in this
//! build, so rotated files stay plain text. `.gz` files (from a kubelet) and compression
//! leftovers are still counted, cleaned up and deleted as kubelet would.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cri_client::CriError;
use cri_client::api::{ContainerFilter, ContainerState, ContainerStateValue, PodSandboxFilter};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::runtime::PodRuntime;

/// How often container logs are checked (kubelet's containerLogMonitorInterval default).
pub const PERIOD: Duration = Duration::from_secs(10);

const COMPRESS_SUFFIX: &str = ".gz";
const TMP_SUFFIX: &str = ".tmp";

/// kubelet's `--container-log-max-size` and `--container-log-max-files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// A log file this large or larger is rotated.
    pub max_size_bytes: u64,
    /// Files kept per container, the current one included (at least 2).
    pub max_files: usize,
}

impl LogRotation {
    /// kubelet's defaults: 10Mi and 5 files.
    pub const DEFAULT: LogRotation = LogRotation {
        max_size_bytes: 10 * 1024 * 1024,
        max_files: 5,
    };

    /// kubelet's checks: a positive size and at least 2 files.
    ///
    /// # Errors
    /// (the flag at fault, what is wrong with it).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_size_bytes == 0 {
            return Err((
                "--container-log-max-size",
                "must be greater than 0".to_string(),
            ));
        }
        if self.max_files < 2 {
            return Err((
                "--container-log-max-files",
                format!("must be at least 2, got {}", self.max_files),
            ));
        }
        Ok(())
    }
}

impl Default for LogRotation {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RotateReport {
    /// Running containers of this node whose log file was looked at.
    pub checked: usize,
    /// The rotated files made this round (`PATH.TIMESTAMP`).
    pub rotated: Vec<PathBuf>,
    /// Files deleted this round (excess rotated files and leftovers).
    pub removed: Vec<PathBuf>,
    /// One line per container that could not be handled.
    pub errors: Vec<String>,
}

/// kubelet's rotation timestamp (Go layout "20060102-150405"), in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The name a log file is rotated to: `PATH.YYYYMMDD-HHMMSS`.
pub fn rotated_path(log: &Path, now: SystemTime) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".");
    s.push(timestamp(now));
    PathBuf::from(s)
}

/// The files next to `log` named `LOGNAME.*` (kubelet's glob `PATH.*`), sorted by name, which
/// is oldest first since the suffixes are timestamps.
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let mut prefix = name.to_owned();
    prefix.push(".");
    let prefix = prefix.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Splits rotated files into those holding logs and leftovers, as kubelet's filterUnusedLogs:
/// compression temp files (`.tmp`) and plain files whose `.gz` already exists are leftovers.
pub fn split_unused(logs: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let names: HashSet<&std::ffi::OsStr> = logs.iter().map(|p| p.as_os_str()).collect();
    let mut in_use = Vec::new();
    let mut unused = Vec::new();
    for l in logs {
        let s = l.to_string_lossy();
        let compressed = {
            let mut c = l.as_os_str().to_owned();
            c.push(COMPRESS_SUFFIX);
            c
        };
        let leftover = s.ends_with(TMP_SUFFIX)
            || (!s.ends_with(COMPRESS_SUFFIX) && names.contains(compressed.as_os_str()));
        if leftover {
            unused.push(l.clone());
        } else {
            in_use.push(l.clone());
        }
    }
    (in_use, unused)
}

/// The rotated files to delete before a rotation, oldest first: all but the newest
/// `max_files - 2`, leaving room for the file about to be rotated and the runtime's new one.
pub fn excess(rotated: &[PathBuf], max_files: usize) -> Vec<PathBuf> {
    let mut sorted = rotated.to_vec();
    sorted.sort();
    let keep = max_files.saturating_sub(2);
    let n = sorted.len().saturating_sub(keep);
    sorted.truncate(n);
    sorted
}

fn size_of(path: &Path) -> io::Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Rotates one container's log file if it is too big. `reopen` asks the runtime to reopen the
/// container's log. Returns the rotated file's path when a rotation happened. Files deleted on
/// the way are pushed to `removed`.
///
/// # Errors
/// A message saying which step failed; a failed reopen has been undone by then.
pub async fn rotate_file<F, Fut>(
    log: &Path,
    rotation: &LogRotation,
    now: SystemTime,
    reopen: F,
    removed: &mut Vec<PathBuf>,
) -> Result<Option<PathBuf>, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let shown = log.display();
    let size = if let Some(size) = size_of(log).map_err(|e| format!("stat {shown}: {e}"))? {
        size
    } else {
        // The runtime should always have the file open; a missing one (say, rotated by us
        // just before a restart of the agent) gets reopened, as kubelet does.
        reopen()
            .await
            .map_err(|e| format!("reopen missing log {shown}: {e}"))?;
        size_of(log)
            .map_err(|e| format!("stat {shown}: {e}"))?
            .ok_or_else(|| format!("log {shown} still missing after reopening it"))?
    };
    if size < rotation.max_size_bytes {
        return Ok(None);
    }
    let rotated = rotated_path(log, now);
    if rotated.exists() {
        // Rotated already within this second: wait for the next round rather than overwrite.
        return Ok(None);
    }
    let files = rotated_files(log).map_err(|e| format!("list rotated logs of {shown}: {e}"))?;
    let (in_use, unused) = split_unused(&files);
    for f in unused
        .iter()
        .chain(excess(&in_use, rotation.max_files).iter())
    {
        match std::fs::remove_file(f) {
            Ok(()) => removed.push(f.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove {}: {e}", f.display())),
        }
    }
    std::fs::rename(log, &rotated)
        .map_err(|e| format!("rename {shown} to {}: {e}", rotated.display()))?;
    if let Err(e) = reopen().await {
        // Put the file back so the next round can try again (the runtime still writes to it).
        let back = match std::fs::rename(&rotated, log) {
            Ok(()) => String::new(),
            Err(re) => format!("; renaming it back failed too: {re}"),
        };
        return Err(format!("reopen log {shown} after rotating it: {e}{back}"));
    }
    Ok(Some(rotated))
}

/// The running containers of `node_name`'s sandboxes: (container id, log path).
async fn running_containers(
    cri: &dyn PodRuntime,
    node_name: &str,
) -> Result<Vec<(String, String)>, CriError> {
    let sandboxes: HashSet<String> = cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: HashMap::from([(
                crate::runtime::NODE_LABEL.to_string(),
                node_name.to_string(),
            )]),
            ..PodSandboxFilter::default()
        }))
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    if sandboxes.is_empty() {
        return Ok(Vec::new());
    }
    let containers = cri
        .list_containers(Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning.into(),
            }),
            ..ContainerFilter::default()
        }))
        .await?;
    let mut out = Vec::new();
    for c in containers {
        if !sandboxes.contains(&c.pod_sandbox_id) {
            continue;
        }
        match cri.container_status(&c.id, false).await {
            Ok(s) => {
                let path = s.status.map(|s| s.log_path).unwrap_or_default();
                if !path.is_empty() {
                    out.push((c.id, path));
                }
            }
            // Gone since the list: nothing to rotate.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One round over the running containers of `node_name`.
///
/// # Errors
/// Listing the runtime failed; per-container failures are in the report instead.
pub async fn rotate_once(
    cri: &dyn PodRuntime,
    node_name: &str,
    rotation: &LogRotation,
) -> Result<RotateReport, CriError> {
    let mut report = RotateReport::default();
    for (id, path) in running_containers(cri, node_name).await? {
        report.checked += 1;
        let id = id.as_str();
        let reopen = || async move {
            cri.reopen_container_log(id)
                .await
                .map_err(|e| e.to_string())
        };
        match rotate_file(
            Path::new(&path),
            rotation,
            SystemTime::now(),
            reopen,
            &mut report.removed,
        )
        .await
        {
            Ok(Some(rotated)) => {
                debug!(container = %id, rotated = %rotated.display(), "container log rotated");
                report.rotated.push(rotated);
            }
            Ok(None) => {}
            Err(e) => report.errors.push(format!("container {id}: {e}")),
        }
    }
    Ok(report)
}

/// Rotates the logs of this node's containers every [`PERIOD`] until cancelled.
pub async fn run(
    cri: Arc<dyn PodRuntime>,
    node_name: String,
    rotation: LogRotation,
    cancel: CancellationToken,
) {
    info!(
        max_size_bytes = rotation.max_size_bytes,
        max_files = rotation.max_files,
        "container log rotation"
    );
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match rotate_once(cri.as_ref(), &node_name, &rotation).await {
            Ok(report) => {
                for e in &report.errors {
                    warn!(error = %e, "container log rotation failed");
                }
            }
            Err(e) => warn!(error = %e, "container log rotation: cannot list the runtime"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn timestamps_use_kubelets_layout() {
        assert_eq!(timestamp(at(0)), "19700101-000000");
        // 2026-01-01T15:04:05Z
        assert_eq!(timestamp(at(1_767_279_845)), "20260101-150405");
        // 2024-02-29T23:59:59Z (a leap day)
        assert_eq!(timestamp(at(1_709_251_199)), "20240229-235959");
        assert_eq!(
            rotated_path(Path::new("/var/log/pods/ns_p_u/c/0.log"), at(1_767_279_845)),
            PathBuf::from("/var/log/pods/ns_p_u/c/0.log.20260101-150405")
        );
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names
            .iter()
            .map(|n| PathBuf::from(format!("/d/{n}")))
            .collect()
    }

    #[test]
    fn excess_keeps_the_newest_max_files_minus_two() {
        let rotated = paths(&[
            "0.log.20260101-150407",
            "0.log.20260101-150405.gz",
            "0.log.20260101-150406.gz",
        ]);
        assert_eq!(excess(&rotated, 5), Vec::<PathBuf>::new());
        assert_eq!(excess(&rotated, 4), paths(&["0.log.20260101-150405.gz"]));
        assert_eq!(
            excess(&rotated, 3),
            paths(&["0.log.20260101-150405.gz", "0.log.20260101-150406.gz"])
        );
        assert_eq!(excess(&rotated, 2).len(), 3);
        assert_eq!(excess(&rotated, 0).len(), 3);
        assert!(excess(&[], 2).is_empty());
    }

    #[test]
    fn leftovers_of_compression_are_unused() {
        let logs = paths(&[
            "0.log.20260101-150405",
            "0.log.20260101-150405.gz",
            "0.log.20260101-150406.tmp",
            "0.log.20260101-150407",
        ]);
        let (in_use, unused) = split_unused(&logs);
        assert_eq!(
            in_use,
            paths(&["0.log.20260101-150405.gz", "0.log.20260101-150407"])
        );
        assert_eq!(
            unused,
            paths(&["0.log.20260101-150405", "0.log.20260101-150406.tmp"])
        );
    }

    #[test]
    fn rotated_files_are_only_this_logs() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "0.log",
            "0.log.20260101-150405",
            "1.log",
            "10.log.20260101-150405",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let got = rotated_files(&dir.path().join("0.log")).unwrap();
        assert_eq!(got, vec![dir.path().join("0.log.20260101-150405")]);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn rotation_renames_reopens_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let rotation = LogRotation {
            max_size_bytes: 10,
            max_files: 3,
        };
        let reopened = AtomicUsize::new(0);
        let (count, path) = (&reopened, log.as_path());
        let reopen = || async move {
            count.fetch_add(1, Ordering::SeqCst);
            std::fs::write(path, b"").map_err(|e| e.to_string())
        };
        let mut removed = Vec::new();

        // Small: nothing happens.
        std::fs::write(&log, b"short").unwrap();
        let r = rotate_file(&log, &rotation, at(100), &reopen, &mut removed).await;
        assert_eq!(r, Ok(None));
        assert_eq!(names(dir.path()), ["0.log"]);

        for (i, secs) in [
            1_767_279_845u64,
            1_767_279_846,
            1_767_279_847,
            1_767_279_848,
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&log, format!("line {i} is long enough\n")).unwrap();
            let r = rotate_file(&log, &rotation, at(secs), &reopen, &mut removed).await;
            assert_eq!(r, Ok(Some(rotated_path(&log, at(secs)))));
        }
        assert_eq!(reopened.load(Ordering::SeqCst), 4);
        // The current file plus max_files - 1 rotated ones, the newest kept.
        assert_eq!(
            names(dir.path()),
            ["0.log", "0.log.20260101-150407", "0.log.20260101-150408"]
        );
        assert_eq!(removed.len(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("0.log.20260101-150408")).unwrap(),
            "line 3 is long enough\n"
        );

        // Twice within one second: the second waits for the next round.
        std::fs::write(&log, b"long enough again").unwrap();
        let r = rotate_file(&log, &rotation, at(1_767_279_848), &reopen, &mut removed).await;
        assert_eq!(r, Ok(None));
    }

    #[tokio::test]
    async fn a_failed_reopen_renames_the_log_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, b"0123456789abcdef").unwrap();
        let rotation = LogRotation {
            max_size_bytes: 10,
            max_files: 5,
        };
        let mut removed = Vec::new();
        let r = rotate_file(
            &log,
            &rotation,
            at(1_767_279_845),
            || async { Err("runtime says no".to_string()) },
            &mut removed,
        )
        .await;
        let e = r.unwrap_err();
        assert!(e.contains("runtime says no"), "{e}");
        assert_eq!(names(dir.path()), ["0.log"]);
        assert_eq!(std::fs::read(&log).unwrap(), b"0123456789abcdef");
    }

    #[tokio::test]
    async fn a_missing_log_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let rotation = LogRotation::DEFAULT;
        let mut removed = Vec::new();
        let r = rotate_file(
            &log,
            &rotation,
            at(1),
            || async { std::fs::write(&log, b"x").map_err(|e| e.to_string()) },
            &mut removed,
        )
        .await;
        assert_eq!(r, Ok(None));
        assert!(log.exists());
    }

    #[test]
    fn kubelets_limits_are_checked() {
        assert!(LogRotation::DEFAULT.validate().is_ok());
        let mut r = LogRotation::DEFAULT;
        r.max_files = 1;
        let (flag, message) = r.validate().unwrap_err();
        assert_eq!(flag, "--container-log-max-files");
        assert!(message.contains("at least 2"), "{message}");
        r = LogRotation::DEFAULT;
        r.max_size_bytes = 0;
        assert!(r.validate().is_err());
    }
}
