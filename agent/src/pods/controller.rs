//! The pod controller: starts the pod sources (the API watch when there is an API server, the
//! static pod manifests when --pod-manifest-path is set) and the mirror task, one worker per
//! pod, the runtime relist, container log rotation and the cleanup of orphaned pod
//! directories, and runs them until cancelled. What acts on pods this node no longer has (the
//! relist's orphan cleanup, orphaned volumes) waits until every source has listed its pods once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::context::PodContext;
use super::static_pods::{StaticPods, mirrors, source as file_source};
use super::{log_rotation, relist, source, worker};

/// Where static pods come from.
#[derive(Debug, Clone)]
pub struct StaticPodSettings {
    /// --pod-manifest-path / `staticPodPath`; None: no static pods.
    pub path: Option<PathBuf>,
    /// --file-check-frequency / `fileCheckFrequency` (kubelet: 20 s).
    pub file_check_frequency: Duration,
}

/// Runs the pod side until cancelled, with `workers` (made on `ctx` and `cancel`, and shared
/// with the eviction manager). `files_listed` turns true once the manifest directory has been
/// looked at (at once without one).
pub async fn run(
    ctx: Arc<PodContext>,
    workers: worker::Workers,
    statics: StaticPods,
    static_pods: StaticPodSettings,
    files_listed: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let node = ctx.node.node_name.clone();
    let (api_tx, api_rx) = watch::channel(false);
    let files_rx = files_listed.subscribe();
    let (synced_tx, synced_rx) = watch::channel(false);
    let synced = tokio::spawn(all_listed(api_rx.clone(), files_rx.clone(), synced_tx));
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
    let dead_containers = tokio::spawn(super::dead_containers::run(
        ctx.clone(),
        workers.clone(),
        cancel.clone(),
    ));
    let log_rotation = tokio::spawn(log_rotation::run(
        ctx.cri.clone(),
        node.clone(),
        ctx.log_rotation,
        cancel.clone(),
    ));
    let files = if let Some(dir) = static_pods.path {
        Some(tokio::spawn(file_source::run(
            dir,
            static_pods.file_check_frequency,
            node.clone(),
            workers.clone(),
            statics.clone(),
            files_listed,
            cancel.clone(),
        )))
    } else {
        files_listed.send_replace(true);
        None
    };
    if let Some(client) = ctx.api.connected() {
        let mirrors = tokio::spawn(mirrors::run(
            client.clone(),
            node.clone(),
            statics.clone(),
            files_rx,
            api_rx,
            cancel.clone(),
        ));
        source::run(
            client.clone(),
            node,
            workers,
            statics.clone(),
            api_tx,
            cancel,
        )
        .await;
        let _ = mirrors.await;
    } else {
        // Standalone: no API pods; the API's part of the listing is done at once.
        api_tx.send_replace(true);
        cancel.cancelled().await;
    }
    if let Some(files) = files {
        let _ = files.await;
    }
    let _ = relist.await;
    let _ = log_rotation.await;
    let _ = dead_containers.await;
    orphans.abort();
    synced.abort();
}

/// Turns `synced` true once both sources have listed their pods.
async fn all_listed(
    mut api: watch::Receiver<bool>,
    mut files: watch::Receiver<bool>,
    synced: watch::Sender<bool>,
) {
    if api.wait_for(|l| *l).await.is_ok() && files.wait_for(|l| *l).await.is_ok() {
        synced.send_replace(true);
    }
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
    ctx.userns.release_orphans(|uid| workers.contains(uid));
}
