//! kubelet's in-place resize metrics: requested changes per container, infeasible resizes by
//! reason, how long applying one took, resizes accepted after being deferred (by what made
//! them try again), and two gauges over the pods' resize conditions, which kubelet's status
//! manager computes from every pod's conditions: `kubelet_pod_pending_resizes{reason}` (the
//! PodResizePending reason, lowercased) and `kubelet_pod_in_progress_resizes`. Each pod's
//! worker reports its pod's conditions after a sync ([`record_resize`]) and forgets the pod
//! when it goes ([`forget_resize`]).

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::global;

/// The families, and the pods' conditions the gauges are computed from.
pub struct Resizes {
    requested: IntCounterVec,
    infeasible: IntCounterVec,
    duration: HistogramVec,
    deferred_accepted: IntCounterVec,
    pending: IntGaugeVec,
    in_progress: IntGauge,
    /// By pod UID: the pending reason (lowercased), and whether a resize is in progress.
    pods: Mutex<HashMap<String, (Option<&'static str>, bool)>>,
}

impl Resizes {
    pub(super) fn new() -> Result<Resizes, prometheus::Error> {
        Ok(Resizes {
            requested: IntCounterVec::new(
                Opts::new(
                    "kubelet_container_requested_resizes_total",
                    "Number of requested resizes, counted at the container level",
                ),
                &["resource", "requirement", "operation"],
            )?,
            infeasible: IntCounterVec::new(
                Opts::new(
                    "kubelet_pod_infeasible_resizes_total",
                    "Number of infeasible resizes for pods, by reason",
                ),
                &["reason_detail"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "kubelet_pod_resize_duration_milliseconds",
                    "Duration in milliseconds to actuate a pod resize",
                )
                .buckets(vec![
                    10.0, 50.0, 100.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0,
                    30_000.0, 60_000.0, 120_000.0, 300_000.0, 600_000.0,
                ]),
                &["success"],
            )?,
            deferred_accepted: IntCounterVec::new(
                Opts::new(
                    "kubelet_pod_deferred_accepted_resizes_total",
                    "Cumulative number of resizes that were accepted after being deferred.",
                ),
                &["retry_trigger"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "kubelet_pod_pending_resizes",
                    "Number of pending resizes for pods.",
                ),
                &["reason"],
            )?,
            in_progress: IntGauge::new(
                "kubelet_pod_in_progress_resizes",
                "Number of in-progress resizes for pods.",
            )?,
            pods: Mutex::default(),
        })
    }

    pub(super) fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.requested.clone()))?;
        registry.register(Box::new(self.infeasible.clone()))?;
        registry.register(Box::new(self.duration.clone()))?;
        registry.register(Box::new(self.deferred_accepted.clone()))?;
        registry.register(Box::new(self.pending.clone()))?;
        registry.register(Box::new(self.in_progress.clone()))
    }

    /// Sets `uid`'s entry (None: the pod is gone) and recomputes both gauges, as kubelet does
    /// on every change of a pod's resize conditions.
    fn set(&self, uid: &str, entry: Option<(Option<&'static str>, bool)>) {
        let mut pods = self
            .pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = match entry {
            Some(e) if e != (None, false) => pods.insert(uid.to_string(), e) != Some(e),
            _ => pods.remove(uid).is_some(),
        };
        if !changed {
            return;
        }
        let mut pending: HashMap<&str, i64> = HashMap::new();
        let mut in_progress = 0;
        for (reason, progressing) in pods.values() {
            if let Some(r) = reason {
                *pending.entry(r).or_default() += 1;
            }
            in_progress += i64::from(*progressing);
        }
        self.pending.reset();
        for (reason, n) in pending {
            self.pending.with_label_values(&[reason]).set(n);
        }
        self.in_progress.set(in_progress);
    }
}

/// A container's `requirement` (requests, limits) of `resource` changed by a resize
/// (`operation`: add, remove, increase, decrease).
pub fn count_requested_resize(resource: &str, requirement: &str, operation: &str) {
    if let Some(m) = global() {
        m.families
            .resizes
            .requested
            .with_label_values(&[resource, requirement, operation])
            .inc();
    }
}

/// A resize judged infeasible, for `reason_detail`.
pub fn count_infeasible_resize(reason_detail: &str) {
    if let Some(m) = global() {
        m.families
            .resizes
            .infeasible
            .with_label_values(&[reason_detail])
            .inc();
    }
}

/// A deferred resize was accepted on a retry that `trigger` caused (kubelet's labels:
/// pod_resized, pods_removed, pod_updated, periodic_retry).
pub fn count_deferred_accepted_resize(trigger: &str) {
    if let Some(m) = global() {
        m.families
            .resizes
            .deferred_accepted
            .with_label_values(&[trigger])
            .inc();
    }
}

/// Applying a resize took `took`.
pub fn observe_resize(took: std::time::Duration, ok: bool) {
    if let Some(m) = global() {
        m.families
            .resizes
            .duration
            .with_label_values(&[if ok { "true" } else { "false" }])
            .observe(took.as_secs_f64() * 1000.0);
    }
}

/// The pod's resize conditions now: the PodResizePending reason (lowercased: "deferred",
/// "infeasible"), and whether PodResizeInProgress is set.
pub fn record_resize(uid: &str, pending: Option<&'static str>, in_progress: bool) {
    if let Some(m) = global() {
        m.families.resizes.set(uid, Some((pending, in_progress)));
    }
}

/// The pod is gone: it counts in neither gauge.
pub fn forget_resize(uid: &str) {
    if let Some(m) = global() {
        m.families.resizes.set(uid, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges(r: &Resizes) -> (i64, i64, i64) {
        (
            r.pending.with_label_values(&["deferred"]).get(),
            r.pending.with_label_values(&["infeasible"]).get(),
            r.in_progress.get(),
        )
    }

    #[test]
    fn the_gauges_count_the_pods_conditions_and_forget_pods_that_went() {
        let r = Resizes::new().unwrap();
        r.set("a", Some((Some("deferred"), false)));
        r.set("b", Some((Some("deferred"), true)));
        r.set("c", Some((Some("infeasible"), false)));
        assert_eq!(gauges(&r), (2, 1, 1));
        r.set("a", Some((None, true)));
        assert_eq!(gauges(&r), (1, 1, 2));
        r.set("b", None);
        r.set("c", Some((None, false)));
        assert_eq!(gauges(&r), (0, 0, 1));
        assert_eq!(
            r.pods.lock().unwrap().len(),
            1,
            "nothing kept for idle pods"
        );
    }
}
