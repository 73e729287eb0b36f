//! Stopping and removing: containers with the remaining grace period (preStop first), sandboxes,
//! and what the pod left on the node (its directory, logs, cgroups).

use std::path::Path;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::context::PodContext;
use super::observe::ObservedPod;
use crate::cgroups::{PodCgroups, QosTier};

/// Stops every running container of the pod in parallel, each within `deadline`, emitting
/// kubelet's Killing event. `pre_stop` runs before each stop (it gets the time left).
pub async fn stop_containers<F, Fut>(
    ctx: &PodContext,
    pod: &Pod,
    runtime: &ObservedPod,
    deadline: Instant,
    message: impl Fn(&str) -> String,
    pre_stop: F,
) where
    F: Fn(String, String, Duration) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stops = runtime.containers.iter().filter(|c| c.running()).map(|c| {
        ctx.events
            .normal(pod, Some(&c.name), "Killing", message(&c.name));
        let pre = pre_stop(
            c.name.clone(),
            c.id.clone(),
            deadline.saturating_duration_since(Instant::now()),
        );
        async move {
            pre.await;
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = ctx.cri.stop_container(&c.id, left).await
                && !e.is_not_found()
            {
                warn!(container = %c.name, error = %e, "failed to stop container");
            }
        }
    });
    join_all(stops).await;
}

/// Stops one container (liveness failure, changed spec, failed postStart).
pub async fn stop_container(ctx: &PodContext, id: &str, grace: Duration) {
    if let Err(e) = ctx.cri.stop_container(id, grace).await
        && !e.is_not_found()
    {
        warn!(%id, error = %e, "failed to stop container");
    }
}

/// Stops every sandbox of the pod (the runtime tears its network down).
pub async fn stop_sandboxes(ctx: &PodContext, runtime: &ObservedPod) {
    for s in runtime.sandboxes.iter().filter(|s| s.ready) {
        if let Err(e) = ctx.cri.stop_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            warn!(sandbox = %s.id, error = %e, "failed to stop sandbox");
        }
    }
}

/// Removes containers and sandboxes (stopping what still runs) and the pod's files and
/// cgroups. Idempotent.
pub async fn remove_all(
    ctx: &PodContext,
    uid: &str,
    runtime: &ObservedPod,
    log_dir: Option<&Path>,
) {
    for c in &runtime.containers {
        if c.running() {
            stop_container(ctx, &c.id, Duration::ZERO).await;
        }
        if let Err(e) = ctx.cri.remove_container(&c.id).await
            && !e.is_not_found()
        {
            warn!(container = %c.id, error = %e, "failed to remove container");
        }
    }
    for s in &runtime.sandboxes {
        if s.ready
            && let Err(e) = ctx.cri.stop_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            warn!(sandbox = %s.id, error = %e, "failed to stop sandbox");
        }
        if let Err(e) = ctx.cri.remove_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            warn!(sandbox = %s.id, error = %e, "failed to remove sandbox");
        }
    }
    // Volumes unmounted first; the directory is removed only when nothing stays mounted in it.
    if let Err(e) = ctx.volumes.teardown(uid).await {
        warn!(%uid, error = %e, "volumes not torn down; pod directory kept");
    } else {
        // Its user namespace file went with the directory: the range is free again.
        ctx.userns.release(uid);
    }
    // A pod's logs can be large: remove them (and its cgroups) off the async runtime's threads.
    let log_dir = log_dir.map(Path::to_path_buf);
    let cgroups = pod_cgroup_paths(&ctx.cgroups, uid);
    let cgroup_fs = ctx.cgroup_fs.clone();
    let qos_cgroups = ctx.qos_cgroups.clone();
    let gone_uid = uid.to_string();
    let removed = tokio::task::spawn_blocking(move || {
        if let Some(dir) = log_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        for path in &cgroups {
            cgroup_fs.remove(path);
        }
        if let Err(e) = qos_cgroups.pod_gone(&gone_uid) {
            warn!(uid = %gone_uid, error = %e, "the Burstable cgroup's shares were not updated");
        }
    })
    .await;
    if let Err(e) = removed {
        warn!(%uid, error = %e, "removing the pod's logs and cgroups failed");
    }
    debug!(%uid, "pod removed from the node");
}

/// The pod's cgroup under each QoS class (the class is not known once the pod object is
/// gone; only the one the pod had exists), in the driver's form: what the runtime left, empty.
fn pod_cgroup_paths(cgroups: &PodCgroups, uid: &str) -> Vec<String> {
    [QosTier::Guaranteed, QosTier::Burstable, QosTier::BestEffort]
        .into_iter()
        .filter_map(|tier| cgroups.pod(tier, uid))
        .map(|name| cgroups.form(&name))
        .collect()
}
