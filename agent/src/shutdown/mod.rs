//! Graceful node shutdown, kubelet's node shutdown manager: with systemd-logind on the system
//! bus, the agent holds a delay inhibitor, and when logind announces a shutdown it ends the
//! node's pods in priority bands before letting the shutdown go on. Off unless the
//! KubeletConfiguration sets `shutdownGracePeriod` or `shutdownGracePeriodByPodPriority`
//! ([`crate::config::shutdown`]). One module per idea:
//!
//! - [`logind`]: the boundary ([`Logind`], [`Connector`]) and the logind.conf drop-in;
//! - [`dbus`]: that boundary on the system bus;
//! - [`bands`]: which band each pod is ended in (pure);
//! - [`record`]: the state file and the gauges of the last shutdown;
//! - `files`: those two files replaced whole;
//! - [`manager`]: the inhibitor, the signal and the pods ended through the workers
//!   ([`crate::eviction::PodEvictor`]), and the loop ([`Manager`], [`run`]).

pub mod bands;
pub mod dbus;
mod files;
pub mod logind;
pub mod manager;
pub mod record;
#[cfg(test)]
mod recording;
#[cfg(test)]
mod scenarios;

pub use dbus::SystemBus;
pub use logind::{Connector, Logind};
pub use manager::{Manager, run};
