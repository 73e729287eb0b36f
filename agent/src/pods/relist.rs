//! Runtime observation: containerd 1.6 has no CRI container events, so the runtime is relisted
//! every second (as kubelet's generic PLEG does) and the worker of every pod whose sandboxes or
//! containers changed is woken. Sandboxes of this node whose pod the API no longer has are
//! removed once the pod list is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cri_client::api::{ContainerFilter, PodSandboxFilter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::PodContext;
use super::labels;
use super::sync;
use super::worker::Workers;

/// How often the runtime is relisted.
pub const PERIOD: Duration = Duration::from_secs(1);
/// How long an orphan cleanup waits before being tried again.
const ORPHAN_RETRY: Duration = Duration::from_secs(30);

type Fingerprint = Vec<(String, i32)>;

/// Lists the runtime and returns a fingerprint per pod UID of this node.
async fn snapshot(ctx: &PodContext) -> Result<BTreeMap<String, Fingerprint>, cri_client::CriError> {
    let sandboxes = ctx
        .cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: HashMap::from([(
                super::NODE_LABEL.to_string(),
                ctx.node.node_name.clone(),
            )]),
            ..PodSandboxFilter::default()
        }))
        .await?;
    let mut by_uid: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let mut sandbox_uid: HashMap<String, String> = HashMap::new();
    for s in sandboxes {
        let uid = s.labels.get(labels::POD_UID).cloned().unwrap_or_default();
        by_uid
            .entry(uid.clone())
            .or_default()
            .push((s.id.clone(), s.state));
        sandbox_uid.insert(s.id, uid);
    }
    let containers = ctx
        .cri
        .list_containers(Some(ContainerFilter::default()))
        .await?;
    for c in containers {
        if let Some(uid) = sandbox_uid.get(&c.pod_sandbox_id) {
            by_uid.entry(uid.clone()).or_default().push((c.id, c.state));
        }
    }
    for fp in by_uid.values_mut() {
        fp.sort();
    }
    Ok(by_uid)
}

/// Relists until cancelled.
pub async fn run(
    ctx: Arc<PodContext>,
    workers: Workers,
    synced: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let mut previous: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let mut orphans_tried: HashMap<String, Instant> = HashMap::new();
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let current = match snapshot(&ctx).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "runtime relist failed");
                continue;
            }
        };
        let uids: HashSet<&String> = current.keys().chain(previous.keys()).collect();
        for uid in uids {
            if current.get(uid) != previous.get(uid) {
                workers.wake(uid);
            }
        }
        if *synced.borrow() {
            for uid in current.keys() {
                if workers.contains(uid) {
                    continue;
                }
                let due = orphans_tried
                    .get(uid)
                    .is_none_or(|t| t.elapsed() >= ORPHAN_RETRY);
                if due {
                    orphans_tried.insert(uid.clone(), Instant::now());
                    info!(%uid, "removing sandboxes of a pod the API no longer has");
                    if let Err(e) = sync::remove_gone(&ctx, uid, None).await {
                        warn!(%uid, error = %e, "orphan cleanup failed");
                    }
                }
            }
            orphans_tried.retain(|uid, _| current.contains_key(uid));
        }
        previous = current;
    }
}
