//! One worker per pod UID. A worker owns its pod's state and is the only one that syncs it, so
//! two syncs of one pod never overlap; updates that arrive meanwhile are coalesced into the next
//! sync (only the latest spec matters). Runtime events and probe results wake it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::context::PodContext;
use super::probes::Probes;
use super::sandbox;
use super::sync::{self, PodState};

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
        let pod = Arc::new(pod);
        let mut map = self.lock();
        if let Some(h) = map.get(&uid) {
            h.tx.send_replace(Desired::Present(pod));
            return;
        }
        let (tx, rx) = watch::channel(Desired::Present(pod.clone()));
        let wake = Arc::new(Notify::new());
        map.insert(
            uid.clone(),
            Handle {
                tx,
                wake: wake.clone(),
            },
        );
        let span = info_span!("pod", pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default()), %uid);
        let this = self.clone();
        tokio::spawn(async move { this.run(uid, rx, wake).await }.instrument(span));
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

    /// UIDs with a worker.
    pub fn uids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    async fn run(self, uid: String, mut rx: watch::Receiver<Desired>, wake: Arc<Notify>) {
        let ctx = self.ctx.clone();
        let mut state = PodState::default();
        let mut probes = Probes::new(wake.clone());
        let mut first = true;
        let mut last_pod: Option<Arc<Pod>> = None;
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
                    if first {
                        first = false;
                        if adopted(&pod) {
                            state.timings.mark_reported();
                        }
                    }
                    probes.collect(&ctx, &pod, &mut state);
                    let result = sync::sync(&ctx, &mut state, &pod).await;
                    last_pod = Some(pod.clone());
                    match result {
                        Ok(outcome) => {
                            probes.reconcile(&ctx, &pod, &mut state);
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
                changed = rx.changed() => if changed.is_err() { return; },
                () = wake.notified() => {}
                () = sleep => {}
            }
        }
    }
}

/// A pod that already ran before this worker saw it (agent restart): its start is not ours to time.
fn adopted(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.container_id.is_some()))
}
