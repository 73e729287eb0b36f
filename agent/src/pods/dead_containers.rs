//! kubelet's node-wide container garbage collection limit (`--maximum-dead-containers`):
//! every minute (kubelet's ContainerGCPeriod), the dead instances of this node's pods, in
//! kubelet's evict units (pod and container name, older than `MinAge`, each already cut to
//! `MaxPerPodContainer` by its pod's sync), are brought down to the limit: each unit keeps an
//! equal share (at least one), then the oldest of the rest go, with their logs. Only pods with
//! a worker here are looked at: another node agent's containers on a shared runtime are never
//! touched. Off with the default -1.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::context::PodContext;
use super::observe::{ObservedPod, observe};
use super::sync::container_gc::{beyond_node_limit, epoch_nanos, evictable, remove_container};
use super::worker::Workers;

/// kubelet's ContainerGCPeriod.
const PERIOD: Duration = Duration::from_secs(60);

/// One pass: observes the pods `uids` and removes what is beyond `max`.
pub async fn pass(ctx: &PodContext, uids: &[String], max: usize) {
    let mut observed: Vec<ObservedPod> = Vec::new();
    for uid in uids {
        match observe(ctx.cri.as_ref(), uid).await {
            Ok(o) => observed.push(o),
            Err(e) => debug!(uid, error = %e, "container GC cannot observe a pod"),
        }
    }
    let now = epoch_nanos(ctx.clock.now());
    let units = observed
        .iter()
        .flat_map(|o| {
            evictable(o, &ctx.container_gc, now).into_iter().map(|u| {
                // The pod's own sync keeps at most MaxPerPodContainer; a pass between two syncs
                // must not count more.
                match ctx.container_gc.max_per_container {
                    Some(keep) => u.into_iter().take(keep).collect(),
                    None => u,
                }
            })
        })
        .collect();
    let removed = beyond_node_limit(units, max);
    if !removed.is_empty() {
        info!(
            count = removed.len(),
            max, "removing dead containers beyond the node's limit"
        );
    }
    for c in removed {
        remove_container(ctx, c).await;
    }
}

/// Runs passes every minute until `cancel` fires, when a node-wide limit is set.
pub async fn run(ctx: Arc<PodContext>, workers: Workers, cancel: CancellationToken) {
    let Some(max) = ctx.container_gc.max_containers else {
        return;
    };
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => pass(&ctx, &workers.uids(), max).await,
        }
    }
}
