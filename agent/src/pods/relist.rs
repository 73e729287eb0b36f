//! Runtime observation. Where the runtime streams CRI container events (GetContainerEvents,
//! containerd 1.7+), each event wakes its pod's worker at once and a relist every 10 s is only a
//! safety net; otherwise (containerd 1.6 answers Unimplemented) the runtime is relisted every
//! second, as kubelet's generic PLEG does, and the worker of every pod whose sandboxes or
//! containers changed is woken. Sandboxes of this node whose pod the API no longer has are
//! removed once the pod list is known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use cri_client::api::{ContainerFilter, PodSandboxFilter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::context::PodContext;
use super::labels;
use super::sync;
use super::worker::Workers;

/// How often the runtime is relisted without an event stream.
pub const PERIOD: Duration = Duration::from_secs(1);
/// How often the runtime is relisted while its event stream is up.
pub const PERIOD_WITH_EVENTS: Duration = Duration::from_secs(10);
/// How long an orphan cleanup waits before being tried again.
const ORPHAN_RETRY: Duration = Duration::from_secs(30);

type Fingerprint = Vec<(String, i32)>;

/// Lists the runtime and returns a fingerprint per pod UID of this node.
async fn snapshot(ctx: &PodContext) -> Result<BTreeMap<String, Fingerprint>, cri_client::CriError> {
    let sandboxes = ctx
        .cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: HashMap::from([(
                crate::runtime::NODE_LABEL.to_string(),
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

/// The pod UID an event is about.
pub fn event_pod_uid(ev: &cri_client::api::ContainerEventResponse) -> Option<&str> {
    ev.pod_sandbox_status
        .as_ref()?
        .metadata
        .as_ref()
        .map(|m| m.uid.as_str())
        .filter(|uid| !uid.is_empty())
}

/// Opens the runtime's event stream and feeds it to the workers; `alive` says whether it runs.
async fn follow_events(
    ctx: Arc<PodContext>,
    workers: Workers,
    alive: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    let mut stream = match ctx.cri.get_container_events().await {
        Ok(s) => s,
        Err(e) if e.code() == Some(cri_client::Code::Unimplemented) => {
            info!("the runtime has no container events; relisting every {PERIOD:?}");
            return;
        }
        Err(e) => {
            warn!(error = %e, "cannot open the runtime's event stream; relisting every {PERIOD:?}");
            return;
        }
    };
    info!("following the runtime's container events");
    alive.store(true, Ordering::Relaxed);
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(ev)) => {
                if let Some(uid) = event_pod_uid(&ev) {
                    workers.wake(uid);
                }
            }
            Some(Err(e)) => {
                warn!(error = %e, "runtime event stream failed; relisting every {PERIOD:?}");
                break;
            }
            None => break,
        }
    }
    alive.store(false, Ordering::Relaxed);
}

/// Relists until cancelled.
pub async fn run(
    ctx: Arc<PodContext>,
    workers: Workers,
    synced: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let events_alive = Arc::new(AtomicBool::new(false));
    tokio::spawn(follow_events(
        ctx.clone(),
        workers.clone(),
        events_alive.clone(),
        cancel.clone(),
    ));
    let mut last_relist: Option<Instant> = None;
    let mut previous: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let mut orphans_tried: HashMap<String, Instant> = HashMap::new();
    let mut cgroups_swept: Option<Instant> = None;
    let mut ticker = tokio::time::interval(PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let period = if events_alive.load(Ordering::Relaxed) {
            PERIOD_WITH_EVENTS
        } else {
            PERIOD
        };
        if last_relist.is_some_and(|t| t.elapsed() < period) {
            continue;
        }
        last_relist = Some(Instant::now());
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
            if cgroups_swept.is_none_or(|t| t.elapsed() >= ORPHAN_RETRY) {
                cgroups_swept = Some(Instant::now());
                super::pod_cgroup::remove_orphans(&ctx, |uid| {
                    workers.contains(uid) || current.contains_key(uid)
                })
                .await;
            }
        }
        previous = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_client::api::{ContainerEventResponse, PodSandboxMetadata, PodSandboxStatus};

    #[test]
    fn events_name_their_pod() {
        let ev = ContainerEventResponse {
            pod_sandbox_status: Some(PodSandboxStatus {
                metadata: Some(PodSandboxMetadata {
                    uid: "u-1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(event_pod_uid(&ev), Some("u-1"));
        assert_eq!(event_pod_uid(&ContainerEventResponse::default()), None);
    }
}
