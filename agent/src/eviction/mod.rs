//! The eviction manager: the node protects itself, as kubelet's does. Thresholds on the node's
//! memory, disk, inodes and process ids ([`crate::config::eviction`]) raise the pressure
//! conditions that the Node reports and admission obeys ([`crate::pressure`]); when one acts,
//! node-level resources are reclaimed first and then pods are evicted one at a time in
//! kubelet's order; a pod over a local storage limit is evicted at once. One module per idea:
//!
//! - [`observation`]: the figures each signal is judged on (memory without reclaimable cache);
//! - [`tracker`]: which thresholds hold, since when, which conditions to report (pure);
//! - [`local_storage`]: emptyDir sizeLimit and ephemeral-storage limits;
//! - [`rank`]: the order pods are evicted in for a starved resource;
//! - [`message`]: kubelet's eviction messages, per-container lines included;
//! - [`image_gc`]: unused images removed between the image GC thresholds (and all of them
//!   when the eviction manager reclaims disk);
//! - [`host`]: the OS and runtime boundary ([`Host`]), [`LiveHost`] on the agent's host;
//! - [`manager`]: one pass and the loop ([`Manager`], [`run`]), through [`PodEvictor`] (the
//!   pod workers).

pub mod host;
pub mod image_gc;
pub mod local_storage;
pub mod manager;
pub mod message;
pub mod observation;
pub mod rank;
#[cfg(test)]
mod scenarios;
pub mod tracker;

pub use host::{Host, LiveHost};
pub use manager::{Manager, PodEvictor, run};
