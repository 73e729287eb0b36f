//! One worker per pod UID: the pod's lifecycle on this node, run as kubelet's pod workers run
//! it. This header is the specification; [`super::lifecycle::Lifecycle`] is its state and
//! [`super::sync`] has one file per phase.
//!
//! The timeline of one pod UID:
//!
//! 1. **Admitting.** The first sync admits the pod (node capacity, OS, sysctls, AppArmor). A
//!    refused pod is terminated at once with kubelet's reason; it never starts. A pod the API
//!    already shows Succeeded or Failed (it ended while the agent was down) goes straight to
//!    terminated and its recorded status is never rewritten.
//! 2. **Syncing.** Each sync drives the runtime towards the spec: volumes, sandbox, init
//!    containers one at a time (sidecars keep running), containers, restarts under crash-loop
//!    backoff, probe-driven restarts. It ends when the pod is deleted, when
//!    activeDeadlineSeconds passes, when the eviction manager evicts it ([`Workers::evict`]:
//!    Failed, reason Evicted, within the eviction's grace), or when the containers ended it for
//!    good (restartPolicy).
//! 3. **Terminating.** Every container is stopped within the grace period, counted once from
//!    when termination began: a deletion with a shorter grace (or the object's removal) cuts a
//!    running termination short and the next sync resumes it with the shorter deadline; a longer
//!    one never extends it. preStop hooks run for deletions.
//! 4. **Terminated.** Nothing runs. The sandbox is stopped, volumes unmounted, the node's
//!    resources released, the final status written.
//! 5. **Cleaned up.** A deleted pod is removed from the node (containers, sandboxes, directory,
//!    logs, cgroups) and its object deleted (grace 0, UID precondition); when the object is gone
//!    from the API, the worker removes what is left and exits.
//!
//! The rules that hold throughout:
//! - A pod never moves backwards: once terminating it is never started again under this UID. A
//!   pod with the same name and a new UID is a new pod with its own worker.
//! - The worker is the only one that syncs its pod, so two syncs of one pod never overlap;
//!   updates that arrive meanwhile are coalesced into the next sync (only the latest spec
//!   matters), and status-only updates (the agent's own writes) do not wake it.
//! - A pod gone from the API (force deletion, or deleted while the agent was down) skips
//!   straight to removal: nothing is left on the node and the object is not deleted again.
//! - Runtime changes (relist) and probe results wake the worker; the probes' word reaches a
//!   sync as a snapshot ([`super::pod_probes::ProbeResults`]), never by writing the worker's state.
//! - A worker that panics is restarted by [`super::supervise`] from the latest desired state,
//!   never left dead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::context::PodContext;
pub use super::lifecycle::Eviction;
use super::pod_probes::PodProbes;
use super::sandbox;
use super::sync::{self, PodState};
use super::timing::Timings;

/// The latest word from the API about a pod.
#[derive(Clone)]
enum Desired {
    Present(Arc<Pod>),
    /// The pod object is gone from the API.
    Gone,
}

struct Handle {
    tx: watch::Sender<Desired>,
    wake: Arc<Notify>,
    eviction: Arc<EvictionSlot>,
}

/// Where an eviction request waits for the worker, and what the worker says back.
#[derive(Default)]
struct EvictionSlot {
    pending: Mutex<Option<Eviction>>,
    /// The grace of the tightest request so far (kubelet's grace only ever shrinks); Some
    /// once the pod was asked to end.
    tightest: Mutex<Option<Duration>>,
    /// Rings when a request arrives: a termination under way starts again with its grace.
    arrived: Notify,
    /// Nothing of the pod runs any more (terminated or later).
    stopped: AtomicBool,
}

impl Handle {
    /// Its pod, while something of it may run: present, not ended by its phase as the API
    /// has it, not stopped by the worker.
    fn running(&self) -> Option<Arc<Pod>> {
        if self.eviction.stopped.load(Ordering::SeqCst) {
            return None;
        }
        match &*self.tx.borrow() {
            Desired::Present(p) => {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                (!matches!(phase, Some("Succeeded" | "Failed"))).then(|| p.clone())
            }
            Desired::Gone => None,
        }
    }
}

impl EvictionSlot {
    /// Whether the pod was asked to end (evicted, or ended by a node shutdown).
    fn asked(&self) -> bool {
        self.tightest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    fn take(&self) -> Option<Eviction> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The set of pod workers.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Mutex<HashMap<String, Handle>>>,
    ctx: Arc<PodContext>,
    cancel: CancellationToken,
}

/// Sync retry delay after a runtime error (the runtime may be restarting).
const ERROR_RETRY: Duration = Duration::from_secs(2);

impl Workers {
    pub fn new(ctx: Arc<PodContext>, cancel: CancellationToken) -> Self {
        Workers {
            inner: Arc::default(),
            ctx,
            cancel,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pod's latest spec: starts its worker on first sight.
    pub fn update(&self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if !acceptable_uid(&uid) {
            // The UID names the pod's directory, log directory and cgroup: one that is no
            // plain name (the API server's are UUIDs, static pods' hex) is never used as one.
            warn!(%uid, pod = ?pod.metadata.name, "pod refused: its UID is not a plain name");
            return;
        }
        let pod = Arc::new(pod);
        let mut map = self.lock();
        if let Some(h) = map.get(&uid) {
            // Keep the latest object, but wake the worker only for changes that need a sync:
            // the status the agent itself just wrote comes back through the watch too.
            h.tx.send_if_modified(|current| {
                let wake = match current {
                    Desired::Present(old) => needs_sync(old, &pod),
                    Desired::Gone => false,
                };
                if !matches!(current, Desired::Gone) {
                    *current = Desired::Present(pod);
                }
                wake
            });
            return;
        }
        // The pod's start is timed from here: its watch event (or static pod file) just came.
        let seen = std::time::Instant::now();
        let (tx, rx) = watch::channel(Desired::Present(pod.clone()));
        let wake = Arc::new(Notify::new());
        let eviction = Arc::new(EvictionSlot::default());
        map.insert(
            uid.clone(),
            Handle {
                tx,
                wake: wake.clone(),
                eviction: eviction.clone(),
            },
        );
        let span = info_span!("pod", pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()), %uid);
        let this = self.clone();
        let cancel = self.cancel.clone();
        let mut first_rx = Some(rx);
        let start = move || {
            // The first run takes the channel made above; a restart after a panic subscribes
            // anew, so it starts from the latest desired state.
            let rx = first_rx
                .take()
                .or_else(|| this.lock().get(&uid).map(|h| h.tx.subscribe()))?;
            Some(
                this.clone()
                    .run(uid.clone(), rx, wake.clone(), eviction.clone(), seen),
            )
        };
        tokio::spawn(super::supervise::supervise(cancel, start).instrument(span));
    }

    /// The pod object is gone from the API.
    pub fn gone(&self, uid: &str) {
        if let Some(h) = self.lock().get(uid) {
            h.tx.send_replace(Desired::Gone);
        }
    }

    /// Something about the pod changed in the runtime.
    pub fn wake(&self, uid: &str) {
        if let Some(h) = self.lock().get(uid) {
            h.wake.notify_one();
        }
    }

    /// Ends the pod as the eviction says (kubelet's killPodNow); false when it has no worker,
    /// or was asked already with no longer a grace. A request with a shorter grace than every
    /// earlier one shortens a termination under way.
    pub fn evict(&self, uid: &str, eviction: Eviction) -> bool {
        let map = self.lock();
        let Some(h) = map.get(uid) else {
            return false;
        };
        let slot = &h.eviction;
        {
            let mut tightest = slot
                .tightest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tightest.is_some_and(|g| g <= eviction.grace) {
                return false;
            }
            *tightest = Some(eviction.grace);
        }
        *slot
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(eviction);
        slot.arrived.notify_one();
        h.wake.notify_one();
        true
    }

    /// The pods something of which may still run: [`Self::active_pods`] and those already
    /// being deleted or evicted (a node shutdown shortens their grace), not ended by their
    /// phase, not stopped by their worker.
    pub fn running_pods(&self) -> Vec<Arc<Pod>> {
        self.lock().values().filter_map(Handle::running).collect()
    }

    /// The pods that may still be running: not deleted, not ended by their phase as the API
    /// has it, not being evicted, not stopped by their worker.
    pub fn active_pods(&self) -> Vec<Arc<Pod>> {
        self.lock()
            .values()
            .filter(|h| !h.eviction.asked())
            .filter_map(Handle::running)
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    /// True once nothing of the pod runs: its worker stopped it, or it has no worker.
    pub fn stopped(&self, uid: &str) -> bool {
        self.lock()
            .get(uid)
            .is_none_or(|h| h.eviction.stopped.load(Ordering::SeqCst))
    }

    /// UIDs with a worker.
    pub fn uids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    async fn run(
        self,
        uid: String,
        mut rx: watch::Receiver<Desired>,
        wake: Arc<Notify>,
        eviction: Arc<EvictionSlot>,
        seen: std::time::Instant,
    ) {
        let ctx = self.ctx.clone();
        let mut state = PodState {
            timings: Timings::since(seen),
            ..PodState::default()
        };
        let mut probes = PodProbes::new(wake.clone());
        let mut first = true;
        let mut last_pod: Option<Arc<Pod>> = None;
        // Changes when another pod's share of the node shrinks or goes: a deferred resize
        // tries again then.
        let mut room = ctx.admission.room();
        loop {
            let desired = rx.borrow_and_update().clone();
            let requeue = match desired {
                Desired::Gone => {
                    probes.stop_all();
                    let log_dir = last_pod
                        .as_ref()
                        .map(|p| sandbox::log_directory(&ctx.log_root, p));
                    match sync::remove_gone(&ctx, &uid, log_dir.as_deref()).await {
                        Ok(()) => {
                            info!("pod removed");
                            crate::metrics::forget_resize(&uid);
                            self.lock().remove(&uid);
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, "cleanup of a removed pod failed; retrying");
                            Some(ERROR_RETRY)
                        }
                    }
                }
                Desired::Present(pod) => {
                    let operation = if first { "create" } else { "sync" };
                    if first {
                        first = false;
                        if adopted(&pod) {
                            state.timings.mark_reported();
                        }
                    }
                    if let Some(e) = eviction.take() {
                        state.eviction = Some(e);
                    }
                    let probe_results = probes.collect(&ctx, &pod);
                    let began = std::time::Instant::now();
                    let synced = if pod.metadata.deletion_timestamp.is_some()
                        || state.lifecycle.is_ending()
                        || state.eviction.is_some()
                    {
                        // A termination waits as long as its grace period, which a pod may set
                        // to years: a shorter grace (a deletion's, a force deletion, an
                        // eviction's or a node shutdown's) must not wait for it.
                        tokio::select! {
                            biased;
                            r = sync::sync(&ctx, &mut state, &pod, &probe_results) => Some(r),
                            () = shorter_grace(&mut rx, &pod) => None,
                            () = eviction.arrived.notified() => None,
                        }
                    } else {
                        Some(sync::sync(&ctx, &mut state, &pod, &probe_results).await)
                    };
                    crate::metrics::observe_pod_worker(operation, began.elapsed());
                    let (pending, progressing) = state.resize.gauged();
                    crate::metrics::record_resize(&uid, pending, progressing);
                    if state.lifecycle.nothing_runs() {
                        eviction.stopped.store(true, Ordering::SeqCst);
                    }
                    last_pod = Some(pod.clone());
                    let Some(result) = synced else {
                        debug!("termination cut short by a shorter grace period");
                        continue;
                    };
                    match result {
                        Ok(outcome) => {
                            probes.reconcile(
                                &ctx,
                                &pod,
                                state.last_written.as_ref(),
                                state.pod_ip(),
                            );
                            outcome.requeue_after
                        }
                        Err(e) => {
                            warn!(error = %e, "pod sync failed; retrying");
                            Some(ERROR_RETRY)
                        }
                    }
                }
            };
            let sleep = tokio::time::sleep(requeue.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                () = self.cancel.cancelled() => { probes.stop_all(); return; }
                changed = rx.changed() => {
                    if changed.is_err() { return; }
                    state.resize.woke_by = "pod_updated";
                }
                () = wake.notified() => state.resize.woke_by = "periodic_retry",
                Ok(()) = room.changed(), if state.resize.deferred() => {
                    state.resize.woke_by = room.borrow_and_update().1;
                }
                () = sleep => state.resize.woke_by = "periodic_retry",
            }
        }
    }
}

/// Resolves when the desired state turns into one that ends `pod` sooner: the object is gone,
/// or its deletion grace period became shorter.
async fn shorter_grace(rx: &mut watch::Receiver<Desired>, pod: &Pod) {
    let grace = |p: &Pod| p.metadata.deletion_grace_period_seconds.unwrap_or(i64::MAX);
    loop {
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
        let sooner = match &*rx.borrow() {
            Desired::Gone => true,
            Desired::Present(p) => grace(p) < grace(pod),
        };
        if sooner {
            return;
        }
    }
}

/// True when `new` differs from `old` in what a sync acts on: spec, deletion, labels,
/// annotations, or conditions: readiness gates are others' to set, and the agent's own ones
/// may have been changed by another writer, which the sync then puts back (a change the agent
/// made itself costs one sync that writes nothing).
fn needs_sync(old: &Pod, new: &Pod) -> bool {
    let (a, b) = (&old.metadata, &new.metadata);
    let conditions = |p: &Pod| p.status.as_ref().and_then(|s| s.conditions.clone());
    old.spec != new.spec
        || a.deletion_timestamp != b.deletion_timestamp
        || a.deletion_grace_period_seconds != b.deletion_grace_period_seconds
        || a.labels != b.labels
        || a.annotations != b.annotations
        || conditions(old) != conditions(new)
}

/// A UID fit to name directories and cgroups: 1 to 128 ASCII letters, digits and dashes.
fn acceptable_uid(uid: &str) -> bool {
    (1..=128).contains(&uid.len()) && uid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A pod that already ran before this worker saw it (agent restart): its start is not ours to time.
fn adopted(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.container_id.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_plain_uids_are_accepted() {
        assert!(acceptable_uid("5f0e1c2a-0b1d-4c6e-9a7b-3d2f1e0c9b8a"));
        assert!(acceptable_uid("371a179877675bd5fd272e8028bf003d"));
        for bad in ["", "../x", "a/b", "a_b", "a b", &"a".repeat(129)] {
            assert!(!acceptable_uid(bad), "{bad:?}");
        }
    }

    #[test]
    fn status_only_updates_do_not_need_a_sync() {
        let a = pod(json!({"metadata": {"name": "p", "resourceVersion": "1"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}));
        let mut b = a.clone();
        b.metadata.resource_version = Some("2".into());
        b.status = Some(serde_json::from_value(json!({"phase": "Running"})).unwrap());
        assert!(!needs_sync(&a, &b));
        let mut c = b.clone();
        c.metadata.deletion_timestamp = b.metadata.creation_timestamp.clone().or(Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
        ));
        assert!(needs_sync(&b, &c));
        let gated = pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "readinessGates": [{"conditionType": "x/ok"}]}}));
        let mut opened = gated.clone();
        opened.status = Some(
            serde_json::from_value(json!({"conditions": [{"type": "x/ok", "status": "True"}]}))
                .unwrap(),
        );
        assert!(
            needs_sync(&gated, &opened),
            "readiness gates are set by others"
        );
        let mut marked = b.clone();
        marked.status = Some(
            serde_json::from_value(json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}]}))
            .unwrap(),
        );
        assert!(
            needs_sync(&b, &marked),
            "the node lifecycle controller's mark is put back by a sync"
        );
    }
}
