//! The pod controller: starts the pod watch, one worker per pod, the runtime relist, container
//! log rotation and the cleanup of orphaned pod directories, and runs them until cancelled.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::context::PodContext;
use super::{log_rotation, relist, source, worker};

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
