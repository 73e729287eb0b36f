//! Pods bound to this node: watch -> per-pod worker -> runtime backends -> status writer.
//!
//! - [`source`]: the pod watch (fieldSelector spec.nodeName);
//! - [`worker`]: one worker per pod UID, the only place a pod is synced;
//! - [`sync`]: one sync (sandbox, init containers, containers, restarts, termination);
//! - [`relist`]: runtime observation that wakes workers, and orphan cleanup;
//! - [`sandbox`], [`container`], [`images`], [`start`], [`kill`], [`probe`], [`hook_handler`]: the
//!   steps; [`lifecycle_hooks`]: when postStart and preStop run;
//! - [`status`], [`status_writer`], [`timing`]: what the pod reports (events: [`crate::events`]);
//! - [`log_rotation`]: container log rotation (the /containerLogs endpoint is
//!   [`crate::server::logs`]).

pub mod admission;
pub mod container;
pub mod context;
pub mod etc_hosts;
pub mod grace;
pub mod hook_handler;
pub mod image_ref;
pub mod images;
pub mod kill;
mod lifecycle_hooks;
pub mod log_rotation;
pub mod observe;
pub mod probe;
mod probes;
pub mod relist;
pub mod restart_backoff;
pub mod runtime_class;
mod runtime_exec;
pub mod sandbox;
#[cfg(test)]
mod scenarios;
pub mod source;
pub mod start;
pub mod status;
pub mod status_writer;
mod supervise;
pub mod sync;
pub mod sysctls;
pub mod termination_message;
pub mod timing;
pub mod worker;

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use crate::runtime::NODE_LABEL;
pub use container::labels;
pub use context::PodContext;

/// Runs the pod side until cancelled.
pub async fn run(ctx: Arc<PodContext>, cancel: CancellationToken) {
    let workers = worker::Workers::new(ctx.clone(), cancel.clone());
    let (synced_tx, synced_rx) = watch::channel(false);
    let orphans = tokio::spawn(clean_orphaned_volumes(
        ctx.clone(),
        workers.clone(),
        synced_rx.clone(),
    ));
    let relist = tokio::spawn(relist::run(
        ctx.clone(),
        workers.clone(),
        synced_rx,
        cancel.clone(),
    ));
    let log_rotation = tokio::spawn(log_rotation::run(
        ctx.cri.clone(),
        ctx.node.node_name.clone(),
        ctx.log_rotation,
        cancel.clone(),
    ));
    source::run(
        ctx.client.clone(),
        ctx.node.node_name.clone(),
        workers,
        synced_tx,
        cancel,
    )
    .await;
    let _ = relist.await;
    let _ = log_rotation.await;
    orphans.abort();
}

/// Once the pod list is known, tears down the directories (and mounts) of pods this node no
/// longer has: deleted while the agent was down.
async fn clean_orphaned_volumes(
    ctx: Arc<PodContext>,
    workers: worker::Workers,
    mut synced: watch::Receiver<bool>,
) {
    if synced.wait_for(|s| *s).await.is_err() {
        return;
    }
    crate::volumes::reconstruct::clean_orphans(&ctx.volumes, |uid| workers.contains(uid)).await;
}
