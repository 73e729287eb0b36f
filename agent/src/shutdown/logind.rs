//! The boundary to systemd-logind, the part kubelet's shutdown manager uses: the longest delay
//! an inhibitor may hold a shutdown back (`InhibitDelayMaxUSec`), a delay inhibitor taken and
//! released, the `PrepareForShutdown` signal, and raising the delay with a logind.conf drop-in.
//! [`super::dbus`] speaks it on the system bus; the scenarios use a recording double.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use thiserror::Error;

/// What kubelet tells logind when it takes its inhibitor.
pub const INHIBIT_WHAT: &str = "shutdown";
pub const INHIBIT_WHO: &str = "kubelet";
pub const INHIBIT_WHY: &str = "Kubelet needs time to handle node shutdown";
pub const INHIBIT_MODE: &str = "delay";

/// Where kubelet raises logind's InhibitDelayMaxSec.
pub const DROPIN_DIR: &str = "/etc/systemd/logind.conf.d";
pub const DROPIN_NAME: &str = "99-kubelet.conf";

/// Why talking to logind failed.
#[derive(Debug, Error)]
pub enum LogindError {
    #[error("cannot connect to the system bus: {0}")]
    Connect(String),
    #[error("failed reading InhibitDelayMaxUSec property from logind: {0}")]
    Delay(String),
    #[error("failed creating systemd inhibitor: {0}")]
    Inhibit(String),
    #[error("unable to reload logind conf: {0}")]
    Reload(String),
    #[error("failed to monitor shutdown: {0}")]
    Monitor(String),
    #[error("failed writing logind shutdown inhibit override file {path}: {source}")]
    Override {
        path: String,
        source: std::io::Error,
    },
}

/// A delay inhibitor: logind holds a shutdown back while this descriptor is open. Dropping it
/// releases the inhibitor.
#[derive(Debug)]
pub struct InhibitLock(pub OwnedFd);

/// Whether an inhibitor was let go, read as logind reads it: `read_end` is the other end of
/// the descriptor handed out, and hangs up once no process holds the inhibitor any more. For
/// stand-ins of logind (the scenarios' double, the integration test's bus service).
pub fn released(read_end: std::os::fd::BorrowedFd<'_>) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&read_end, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().contains(PollFlags::HUP),
        Err(_) => true,
    }
}

/// `PrepareForShutdown`'s argument as it arrives: true, a shutdown begins; false, it was
/// cancelled. The stream ends when the bus connection does.
pub type ShutdownEvents = BoxStream<'static, bool>;

/// One connection to logind.
pub trait Logind: Send + Sync {
    /// logind's InhibitDelayMaxUSec.
    fn inhibit_delay_max(&self) -> impl Future<Output = Result<Duration, LogindError>> + Send;
    /// Takes a delay inhibitor for shutdown.
    fn inhibit(&self) -> impl Future<Output = Result<InhibitLock, LogindError>> + Send;
    /// Asks systemd to make logind reload its configuration (SIGHUP).
    fn reload(&self) -> impl Future<Output = Result<(), LogindError>> + Send;
    /// Subscribes to PrepareForShutdown.
    fn shutdown_events(&self) -> impl Future<Output = Result<ShutdownEvents, LogindError>> + Send;
}

/// Opens connections to logind, and raises its delay (a file, not a bus call).
pub trait Connector: Send + Sync {
    type Bus: Logind;
    fn connect(&self) -> impl Future<Output = Result<Self::Bus, LogindError>> + Send;
    /// Writes the drop-in that raises InhibitDelayMaxSec to `delay`.
    ///
    /// # Errors
    /// The drop-in cannot be written.
    fn override_inhibit_delay(&self, delay: Duration) -> Result<(), LogindError>;
}

/// The drop-in's text: InhibitDelayMaxSec in whole seconds (rounded, as kubelet's `%.0f`).
pub fn dropin_text(delay: Duration) -> String {
    let secs = delay.as_secs() + u64::from(delay.subsec_millis() >= 500);
    format!("# Kubelet logind override\n[Login]\nInhibitDelayMaxSec={secs}\n")
}

/// Writes the drop-in into `dir` (created 0755 if missing), replacing it atomically.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_dropin(dir: &Path, delay: Duration) -> Result<(), LogindError> {
    use std::os::unix::fs::DirBuilderExt;
    let failed = |source| LogindError::Override {
        path: dir.join(DROPIN_NAME).display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(failed)?;
    super::files::replace(dir, DROPIN_NAME, dropin_text(delay).as_bytes(), 0o644).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropin_is_kubelets() {
        assert_eq!(
            dropin_text(Duration::from_secs(30)),
            "# Kubelet logind override\n[Login]\nInhibitDelayMaxSec=30\n"
        );
        assert!(dropin_text(Duration::from_millis(1500)).ends_with("=2\n"));
    }

    #[test]
    fn the_dropin_is_written_whole_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("logind.conf.d");
        write_dropin(&conf, Duration::from_secs(10)).unwrap();
        write_dropin(&conf, Duration::from_secs(45)).unwrap();
        let text = std::fs::read_to_string(conf.join(DROPIN_NAME)).unwrap();
        assert!(text.ends_with("InhibitDelayMaxSec=45\n"), "{text}");
        let names: Vec<_> = std::fs::read_dir(&conf).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }
}
