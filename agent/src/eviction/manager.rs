//! The eviction manager's loop, kubelet's: every 10 seconds one pass, and after a pass that
//! evicted, a wait (up to 30 s) until the evicted pods stopped. One pass:
//!
//! 1. read the node and judge the thresholds ([`Tracker`]); publish the pressure conditions;
//! 2. evict, at once (grace 1 s), every pod over a local storage limit ([`violation`]); if any
//!    was, the pass ends there;
//! 3. if a threshold acts: the Warning event EvictionThresholdMet ("Attempting to reclaim
//!    memory"); for disk, first free what the node holds (unused images) and stop if that was
//!    enough; then rank the pods for the starved resource ([`rank`]) and evict the first one
//!    that can be: grace 1 s for a hard threshold, for a soft one the pod's own grace capped
//!    by evictionMaxPodGracePeriod; its status says kubelet's message and carries the
//!    DisruptionTarget condition. Critical pods are never evicted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::host::Host;
use super::local_storage::{has_limits, violation};
use super::message::{Blame, blame, pressure_message};
use super::observation::observe;
use super::rank::{Candidate, rank};
use super::tracker::{Tracker, holds};
use crate::config::eviction::{Condition, EvictionSettings, Resource, Threshold};
use crate::events::Events;
use crate::pods::config_source::is_critical;
use crate::pods::lifecycle::Eviction;
use crate::pressure::Pressure;

/// kubelet's eviction monitoring period.
pub const MONITORING_INTERVAL: Duration = Duration::from_secs(10);
/// How long kubelet waits for evicted pods to stop before the next pass.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The grace an immediate eviction gives (kubelet's immediateEvictionGracePeriodSeconds).
pub const IMMEDIATE_GRACE: Duration = Duration::from_secs(1);

/// The pods an eviction can end: the pod workers.
pub trait PodEvictor: Send + Sync {
    /// The pods that may be running and are not being ended yet.
    fn active_pods(&self) -> Vec<Arc<Pod>>;
    /// Every pod something of which may still run, those being deleted or evicted included.
    fn running_pods(&self) -> Vec<Arc<Pod>>;
    /// Asks the pod's worker to end it as `eviction` says; false when it cannot (no worker,
    /// asked already with no longer a grace).
    fn evict(&self, uid: &str, eviction: Eviction) -> bool;
    /// True once nothing of the pod runs.
    fn stopped(&self, uid: &str) -> bool;
}

impl PodEvictor for crate::pods::worker::Workers {
    fn active_pods(&self) -> Vec<Arc<Pod>> {
        crate::pods::worker::Workers::active_pods(self)
    }

    fn running_pods(&self) -> Vec<Arc<Pod>> {
        crate::pods::worker::Workers::running_pods(self)
    }

    fn evict(&self, uid: &str, eviction: Eviction) -> bool {
        crate::pods::worker::Workers::evict(self, uid, eviction)
    }

    fn stopped(&self, uid: &str) -> bool {
        crate::pods::worker::Workers::stopped(self, uid)
    }
}

/// The manager and what it acts through.
pub struct Manager<H, P> {
    pub settings: EvictionSettings,
    pub host: H,
    pub pods: P,
    pub events: Events,
    pub node_name: String,
    pub pressure: watch::Sender<Pressure>,
    tracker: Tracker,
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

impl<H: Host, P: PodEvictor> Manager<H, P> {
    pub fn new(
        settings: EvictionSettings,
        host: H,
        pods: P,
        events: Events,
        node_name: String,
        pressure: watch::Sender<Pressure>,
    ) -> Self {
        Manager {
            settings,
            host,
            pods,
            events,
            node_name,
            pressure,
            tracker: Tracker::default(),
        }
    }

    /// One pass at `now`; returns the UIDs of the pods it evicted.
    pub async fn pass(&mut self, now: Instant) -> Vec<String> {
        let obs = observe(&self.host.node().await);
        let verdict = self.tracker.pass(&self.settings, &obs, now);
        let judged = Pressure {
            memory: verdict.conditions.contains(&Condition::Memory),
            disk: verdict.conditions.contains(&Condition::Disk),
            pid: verdict.conditions.contains(&Condition::Pid),
        };
        self.pressure.send_if_modified(|p| {
            let changed = *p != judged;
            if changed {
                info!(pressure = ?judged.types(), "node pressure changed");
            }
            *p = judged;
            changed
        });
        let pods = self.pods.active_pods();
        let evicted = self.local_storage(&pods).await;
        if !evicted.is_empty() {
            return evicted;
        }
        let Some(threshold) = verdict.to_reclaim().cloned() else {
            return Vec::new();
        };
        let resource = threshold.signal.resource();
        info!(signal = %threshold.signal, resource = resource.name(), "eviction threshold met: attempting to reclaim");
        self.events.node_warning(
            &self.node_name,
            "EvictionThresholdMet",
            format!("Attempting to reclaim {}", resource.name()),
        );
        let disk = matches!(resource, Resource::EphemeralStorage | Resource::Inodes);
        if disk {
            self.host.reclaim(resource).await;
            let after = observe(&self.host.node().await);
            if !self
                .settings
                .thresholds
                .iter()
                .any(|t| holds(t, &after, true))
            {
                info!(
                    resource = resource.name(),
                    "reclaimed node-level resources: no pod evicted"
                );
                return Vec::new();
            }
        }
        let mut candidates = Vec::new();
        for pod in pods.iter().filter(|p| !is_critical(p)) {
            let (usage, _) = self.host.pod_usage(pod, disk).await;
            candidates.push(Candidate {
                pod: pod.clone(),
                usage,
            });
        }
        if candidates.is_empty() {
            warn!(
                resource = resource.name(),
                active = pods.len(),
                "eviction threshold met, but no pod can be evicted"
            );
            return Vec::new();
        }
        rank(resource, &mut candidates);
        let node_part = pressure_message(&threshold, &obs);
        for c in candidates {
            let grace = self.grace(&threshold, &c.pod);
            let Blame { lines, annotations } = blame(resource, &c.pod, &c.usage);
            let eviction = Eviction {
                reason: "Evicted",
                message: node_part.clone() + &lines,
                grace,
                disruption_target: true,
            };
            if self.evict(&c.pod, eviction, annotations, threshold.signal.name()) {
                return vec![uid(&c.pod).to_string()];
            }
        }
        Vec::new()
    }

    /// Step 2: every pod over a local storage limit, evicted at once.
    async fn local_storage(&self, pods: &[Arc<Pod>]) -> Vec<String> {
        let mut evicted = Vec::new();
        for pod in pods.iter().filter(|p| has_limits(p)) {
            let (_, Some(storage)) = self.host.pod_usage(pod, true).await else {
                continue;
            };
            if let Some(v) = violation(pod, &storage)
                && self.evict(
                    pod,
                    Eviction {
                        reason: "Evicted",
                        message: v.message,
                        grace: IMMEDIATE_GRACE,
                        disruption_target: false,
                    },
                    BTreeMap::new(),
                    v.signal,
                )
            {
                evicted.push(uid(pod).to_string());
            }
        }
        evicted
    }

    /// The grace an eviction for `t` gives `pod`.
    fn grace(&self, t: &Threshold, pod: &Pod) -> Duration {
        if t.is_hard() {
            return IMMEDIATE_GRACE;
        }
        let own = crate::pods::grace::grace_period(pod);
        match u64::try_from(self.settings.max_pod_grace_period_seconds) {
            Ok(max) if max > 0 => own.min(Duration::from_secs(max)),
            _ => own,
        }
    }

    /// Asks for `pod`'s eviction; on its way, the Evicted event (with `annotations`) and the
    /// metric. A critical pod is never evicted.
    fn evict(
        &self,
        pod: &Pod,
        eviction: Eviction,
        annotations: BTreeMap<String, String>,
        signal: &str,
    ) -> bool {
        if is_critical(pod) {
            warn!(pod = ?pod.metadata.name, "cannot evict a critical pod");
            return false;
        }
        let (reason, message) = (eviction.reason, eviction.message.clone());
        let asked = self.pods.evict(uid(pod), eviction);
        if asked {
            info!(pod = ?pod.metadata.name, uid = uid(pod), %message, "evicting pod");
            self.events
                .annotated_warning(pod, reason, message, annotations);
            crate::metrics::count_eviction(signal);
        }
        asked
    }
}

/// Runs passes until `cancel` fires.
pub async fn run<H: Host, P: PodEvictor>(mut m: Manager<H, P>, cancel: CancellationToken) {
    loop {
        let evicted = m.pass(Instant::now()).await;
        let wait = if evicted.is_empty() {
            MONITORING_INTERVAL
        } else {
            CLEANUP_TIMEOUT
        };
        let deadline = Instant::now() + wait;
        loop {
            if !evicted.is_empty() && evicted.iter().all(|u| m.pods.stopped(u)) {
                info!(pods = ?evicted, "evicted pods stopped");
                break;
            }
            let step = if evicted.is_empty() {
                wait
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(step) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    }
}
