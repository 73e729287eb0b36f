//! Whether the node is shutting down, as the shutdown manager ([`crate::shutdown`]) heard it
//! from logind: the Node's Ready condition says "node is shutting down" meanwhile and
//! admission refuses every pod (kubelet's NodeShutdown).

use tokio::sync::watch;

/// Where the latest word is read: true from PrepareForShutdown(true) until a cancellation.
pub type ShutdownWatch = watch::Receiver<bool>;

/// kubelet's `ShutdownStatus` error, the Ready condition's message while shutting down.
pub const SHUTTING_DOWN: &str = "node is shutting down";

/// A watch that always says the node is not shutting down (no shutdown manager runs).
pub fn never() -> ShutdownWatch {
    watch::channel(false).1
}
