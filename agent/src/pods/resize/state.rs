//! What one pod's worker remembers of its resizes between syncs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Pod, PodCondition};

use super::actuated::Actuated;
use super::allocation::Allocation;
use super::conditions::{InProgress, Pending, PendingReason, conditions};

/// A pod's resize state.
#[derive(Debug, Default)]
pub struct Resize {
    /// What the node allocated (restored on the worker's first sync).
    pub allocation: Option<Allocation>,
    /// What each container's cgroup holds, by container name (its running instance).
    pub actuated: HashMap<String, Actuated>,
    pub pending: Option<Pending>,
    pub in_progress: Option<InProgress>,
    /// When the resize in progress was accepted.
    pub accepted_at: Option<Instant>,
    /// The last generation whose requested changes were counted.
    pub counted_generation: Option<i64>,
    /// What made the worker sync this time, in kubelet's words for what retries a deferred
    /// resize: pod_updated, pods_removed, pod_resized, periodic_retry.
    pub woke_by: &'static str,
}

impl Resize {
    /// On the worker's first sync: the allocation the pod's status records (the spec's for a
    /// new pod), and what its running containers were given as the status reports it.
    pub fn restore(&mut self, pod: &Pod) {
        if self.allocation.is_some() {
            return;
        }
        self.allocation = Some(Allocation::restore(pod));
        for s in super::allocation::statuses(pod) {
            let running = s.state.as_ref().is_some_and(|st| st.running.is_some());
            if let (true, Some(r)) = (running, s.resources.as_ref()) {
                self.actuated.insert(s.name.clone(), Actuated::of(Some(r)));
            }
        }
    }

    /// `pod` with the allocated resources in place of its spec's.
    pub fn apply<'a>(&self, pod: &'a Pod) -> Cow<'a, Pod> {
        match &self.allocation {
            Some(a) => a.apply(pod),
            None => Cow::Borrowed(pod),
        }
    }

    /// A deferred resize waits for room.
    pub fn deferred(&self) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.reason == PendingReason::Deferred)
    }

    /// What the resize gauges count of this pod: its pending reason, lowercased as kubelet's
    /// label, and whether a resize is in progress.
    pub fn gauged(&self) -> (Option<&'static str>, bool) {
        let pending = self.pending.as_ref().map(|p| match p.reason {
            PendingReason::Deferred => "deferred",
            PendingReason::Infeasible => "infeasible",
        });
        (pending, self.in_progress.is_some())
    }

    /// The pod's resize conditions.
    pub fn conditions(&self) -> Vec<PodCondition> {
        conditions(self.pending.as_ref(), self.in_progress.as_ref())
    }
}
