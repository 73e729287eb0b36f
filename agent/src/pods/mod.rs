//! Pods bound to this node: watch -> per-pod worker -> runtime backends -> status writer.
//! This file only declares the modules and re-exports what the rest of the agent uses.
//!
//! - [`controller`]: starts and runs everything below until cancelled ([`run`]);
//! - [`source`]: the pod watch (fieldSelector spec.nodeName); [`static_pods`]: pods from
//!   manifest files, their mirror pods, and the writer that keeps their status;
//!   [`config_source`]: the annotations that say where a pod came from (static, mirror);
//! - [`worker`]: one worker per pod UID, the only place a pod is synced (its header is the
//!   lifecycle's specification);
//! - [`lifecycle`]: where a pod is on kubelet's timeline (admitting, syncing, terminating,
//!   terminated, cleaned up);
//! - [`sync`]: one sync, one file per phase;
//! - [`pod_probes`]: which probe workers one pod runs, and the [`pod_probes::ProbeResults`] a
//!   sync reads ([`probe`] is how one probe runs);
//! - [`relist`]: runtime observation that wakes workers, and orphan cleanup;
//! - [`dead_containers`]: the node-wide limit on dead container instances (the per-pod one
//!   is the sync's);
//! - [`admission`] (with [`sysctls`]): whether a pod may run here at all;
//! - [`resize`]: in-place resize: what the node allocated, its judgement, what was applied;
//! - [`sandbox`], [`pod_cgroup`], [`container`], [`images`], [`start`], [`kill`], [`probe`], [`hook_handler`]: the
//!   steps; `lifecycle_hooks`: when postStart and preStop run; [`grace`]: grace periods and
//!   deadlines; [`restart_backoff`]: crash-loop backoff;
//! - [`status`], [`status_writer`], [`timing`], [`termination_message`]: what the pod reports
//!   (its events go through [`crate::events`]);
//! - [`log_rotation`]: container log rotation (the /containerLogs endpoint is
//!   [`crate::server::logs`]);
//! - [`context`]: what every worker shares; [`service_lister`]: the Service cache container
//!   environments read.

pub mod admission;
pub mod config_source;
pub mod container;
pub mod context;
pub mod controller;
pub mod dead_containers;
pub mod ephemeral;
pub mod etc_hosts;
pub mod grace;
pub mod hook_handler;
pub mod image_ref;
pub mod image_volumes;
pub mod images;
pub mod kill;
pub mod lifecycle;
mod lifecycle_hooks;
pub mod log_rotation;
pub mod observe;
pub mod pod_cgroup;
pub mod pod_probes;
pub mod probe;
pub mod pull;
pub mod relist;
pub mod resize;
pub mod restart_backoff;
pub mod runtime_class;
mod runtime_exec;
pub mod sandbox;
#[cfg(test)]
mod scenarios;
pub mod service_lister;
pub mod source;
pub mod start;
pub mod static_pods;
pub mod status;
pub mod status_writer;
mod supervise;
pub mod sync;
pub mod sysctls;
pub mod termination_message;
pub mod timing;
pub mod worker;

pub use crate::runtime::NODE_LABEL;
pub use container::labels;
pub use context::PodContext;
pub use controller::run;
