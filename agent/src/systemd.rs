//! Telling systemd where the agent is, for a `Type=notify` unit (sd_notify(3)): `READY=1` once
//! the node is registered and its Ready condition written True, a `STATUS=` line at each step
//! and each Ready flip, `WATCHDOG=1` at half of `WatchdogSec` for as long as the node heartbeat
//! is fresh (a stuck agent is restarted by systemd), and `STOPPING=1` on shutdown. Not started
//! by systemd (no `NOTIFY_SOCKET`), every call is a no-op.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket systemd names; it is written
//! here rather than taken from a crate because the crates read the environment at every call,
//! which tests cannot vary without `unsafe` (the workspace forbids it): [`Notifier`] reads it
//! once and can be pointed at a socket a test holds.

use std::ffi::OsString;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::node::status::Heartbeat;

/// Where systemd listens, read once at start.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<OsString>,
    /// Half of WatchdogSec, when systemd asked for watchdog pings.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, as systemd sets them.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|pid| pid == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(|u| Duration::from_micros(u) / 2);
        Notifier { socket, watchdog }
    }

    /// True when systemd listens.
    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `lines` (each `KEY=VALUE`) in one datagram.
    fn send(&self, lines: &[String]) {
        let Some(path) = &self.socket else {
            return;
        };
        let mut message = lines.join("\n");
        message.push('\n');
        if let Err(e) = send_to(path, message.as_bytes()) {
            warn!(socket = ?path, error = %e, "cannot notify systemd");
        } else {
            debug!(message = %message.trim_end(), "notified systemd");
        }
    }

    /// `STATUS=`: one line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&[status_line(status)]);
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&["READY=1".to_string(), status_line(status)]);
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&["STOPPING=1".to_string(), status_line(status)]);
    }

    fn watchdog_ping(&self) {
        self.send(&["WATCHDOG=1".to_string()]);
    }
}

/// A `STATUS=` line; a newline in the text would end the line early, so none is kept.
fn status_line(status: &str) -> String {
    format!("STATUS={}", status.replace(['\n', '\r'], " "))
}

/// One datagram to a path or, with a leading `@`, to an abstract socket.
fn send_to(path: &OsString, message: &[u8]) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let sent = socket.send_to_addr(message, &addr)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "the notification was cut short",
        ))
    }
}

/// Follows the node: READY=1 at the first Ready=True written, STATUS= at each flip, watchdog
/// pings while the heartbeat is younger than `stall_after`. Ends with `cancel`.
pub async fn follow_node(
    notifier: Notifier,
    node: String,
    mut ready: watch::Receiver<Option<bool>>,
    heartbeat: Heartbeat,
    stall_after: Duration,
    cancel: CancellationToken,
) {
    if !notifier.enabled() {
        return;
    }
    notifier.status(&format!("Registering node {node}"));
    let period = notifier.watchdog.unwrap_or(Duration::from_secs(3600));
    let mut ping = tokio::time::interval(period);
    let mut announced = false;
    let mut last: Option<bool> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = ready.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *ready.borrow_and_update();
                if now == last {
                    continue;
                }
                last = now;
                match now {
                    Some(true) if !announced => {
                        announced = true;
                        notifier.ready(&format!("Node {node} is Ready"));
                    }
                    Some(true) => notifier.status(&format!("Node {node} is Ready")),
                    Some(false) => notifier.status(&format!("Node {node} is NotReady")),
                    None => {}
                }
            }
            _ = ping.tick(), if notifier.watchdog.is_some() => {
                // A heartbeat that stopped means a stuck agent: no ping, and systemd restarts it.
                let fresh = heartbeat.age().is_none_or(|age| {
                    u64::try_from(age).is_ok_and(|a| Duration::from_secs(a) < stall_after)
                });
                if fresh {
                    notifier.watchdog_ping();
                }
            }
        }
    }
}

/// Standalone mode (no Node to follow): READY=1 once the static pods have been started (the
/// first look at the manifest directory is done), then watchdog pings while the agent runs.
pub async fn follow_standalone(
    notifier: Notifier,
    mut static_pods_listed: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    if !notifier.enabled() {
        return;
    }
    notifier.status("Starting static pods (standalone)");
    tokio::select! {
        () = cancel.cancelled() => return,
        listed = static_pods_listed.wait_for(|l| *l) => if listed.is_err() { return },
    }
    notifier.ready("Static pods started (standalone, no API server)");
    let Some(period) = notifier.watchdog else {
        return;
    };
    let mut ping = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ping.tick() => notifier.watchdog_ping(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn standalone_is_ready_once_the_static_pods_were_listed() {
        let (_dir, socket, notifier) = listening();
        let (tx, rx) = watch::channel(false);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow_standalone(notifier, rx, cancel.clone()));
        let socket = std::sync::Arc::new(socket);
        let next = || {
            let s = socket.clone();
            tokio::task::spawn_blocking(move || receive(&s))
        };
        assert_eq!(
            next().await.unwrap(),
            "STATUS=Starting static pods (standalone)\n"
        );
        tx.send_replace(true);
        let got = next().await.unwrap();
        assert!(
            got.starts_with("READY=1\nSTATUS=Static pods started"),
            "{got}"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    fn listening() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier {
            socket: Some(path.into_os_string()),
            watchdog: None,
        };
        (dir, socket, notifier)
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_are_key_value_lines_in_one_datagram() {
        let (_dir, socket, notifier) = listening();
        notifier.ready("Node n is Ready");
        assert_eq!(receive(&socket), "READY=1\nSTATUS=Node n is Ready\n");
        notifier.status("two\nlines");
        assert_eq!(receive(&socket), "STATUS=two lines\n");
        notifier.stopping("bye");
        assert_eq!(receive(&socket), "STOPPING=1\nSTATUS=bye\n");
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_fails() {
        let notifier = Notifier::default();
        assert!(!notifier.enabled());
        notifier.ready("x");
    }

    #[tokio::test]
    async fn ready_is_sent_once_at_the_first_ready_and_flips_become_status_lines() {
        let (_dir, socket, notifier) = listening();
        let (tx, rx) = watch::channel(None);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow_node(
            notifier,
            "n".into(),
            rx,
            Heartbeat::default(),
            Duration::from_secs(60),
            cancel.clone(),
        ));
        let socket = std::sync::Arc::new(socket);
        let next = || {
            let s = socket.clone();
            tokio::task::spawn_blocking(move || receive(&s))
        };
        assert_eq!(next().await.unwrap(), "STATUS=Registering node n\n");
        tx.send_replace(Some(false));
        assert_eq!(next().await.unwrap(), "STATUS=Node n is NotReady\n");
        tx.send_replace(Some(true));
        assert_eq!(next().await.unwrap(), "READY=1\nSTATUS=Node n is Ready\n");
        tx.send_replace(Some(false));
        assert_eq!(next().await.unwrap(), "STATUS=Node n is NotReady\n");
        tx.send_replace(Some(true));
        assert_eq!(
            next().await.unwrap(),
            "STATUS=Node n is Ready\n",
            "READY=1 only once"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_watchdog_is_pinged_while_the_heartbeat_is_fresh() {
        let (_dir, socket, mut notifier) = listening();
        notifier.watchdog = Some(Duration::from_millis(20));
        let (_tx, rx) = watch::channel(None);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow_node(
            notifier,
            "n".into(),
            rx,
            Heartbeat::default(),
            Duration::from_secs(60),
            cancel.clone(),
        ));
        let socket = std::sync::Arc::new(socket);
        let s = socket.clone();
        let got = tokio::task::spawn_blocking(move || {
            let first = receive(&s);
            let second = receive(&s);
            (first, second)
        })
        .await
        .unwrap();
        assert_eq!(got.0, "STATUS=Registering node n\n");
        assert_eq!(got.1, "WATCHDOG=1\n");
        cancel.cancel();
        task.await.unwrap();
    }
}
