//! The order in which pods are evicted for a starved resource, kubelet's:
//!
//! - memory: pods using more than they request first, then lower priority first, then the
//!   largest use above the request first;
//! - ephemeral storage and inodes: the same with the pod's disk use (and its ephemeral-storage
//!   request; inodes have none);
//! - process ids: lower priority first, then the most processes first.
//!
//! A pod whose use could not be read goes first (nothing says it is small). Critical pods
//! (static, mirror, priority at or above system-cluster-critical's 2000000000) are never
//! candidates.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::config::eviction::Resource;
use crate::pod_resources::{self, EPHEMERAL_STORAGE, MEMORY};

/// What one pod uses; None where it could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodUsage {
    /// Memory of the pod's cgroup that cannot be reclaimed (usage minus file pages).
    pub memory: Option<u64>,
    /// Bytes of the pod's local ephemeral storage: its disk-backed emptyDirs, its containers'
    /// writable layers and logs.
    pub ephemeral_bytes: Option<u64>,
    /// Inodes the same storage holds.
    pub inodes: Option<u64>,
    /// Processes in the pod's cgroup.
    pub processes: Option<u64>,
    /// Each container's memory working set (the runtime's stats), by container name.
    pub container_memory: std::collections::BTreeMap<String, u64>,
    /// Each container's writable layer plus logs, by name (only when storage was measured).
    pub container_storage: std::collections::BTreeMap<String, u64>,
}

/// A pod that may be evicted, with what it uses.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub pod: Arc<Pod>,
    pub usage: PodUsage,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The pod's request of `name` (bytes), summed as the scheduler sums it.
pub fn request(pod: &Pod, name: &str) -> u64 {
    pod_resources::aggregate(pod, |c| {
        pod_resources::units(pod_resources::request(c.resources.as_ref(), name))
    })
}

/// Orders `candidates` for `resource`, the first to evict first.
pub fn rank(resource: Resource, candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| compare(resource, a, b));
}

fn compare(resource: Resource, a: &Candidate, b: &Candidate) -> Ordering {
    let by_priority = priority(&a.pod).cmp(&priority(&b.pod));
    match resource {
        Resource::Pids => by_priority.then_with(|| {
            let n = |c: &Candidate| c.usage.processes;
            unread_first(n(a), n(b)).then_with(|| n(b).cmp(&n(a)))
        }),
        Resource::Memory => by_use(a, b, |c| c.usage.memory, MEMORY, by_priority),
        Resource::EphemeralStorage => by_use(
            a,
            b,
            |c| c.usage.ephemeral_bytes,
            EPHEMERAL_STORAGE,
            by_priority,
        ),
        Resource::Inodes => by_use(a, b, |c| c.usage.inodes, "", by_priority),
    }
}

/// Unread use before read use.
fn unread_first(a: Option<u64>, b: Option<u64>) -> Ordering {
    a.is_some().cmp(&b.is_some())
}

/// Above-request first, then priority, then the largest use above the request first.
fn by_use(
    a: &Candidate,
    b: &Candidate,
    used: impl Fn(&Candidate) -> Option<u64>,
    request_name: &str,
    by_priority: Ordering,
) -> Ordering {
    let (ua, ub) = (used(a), used(b));
    let requested = |c: &Candidate| {
        if request_name.is_empty() {
            0
        } else {
            request(&c.pod, request_name)
        }
    };
    let above = |u: Option<u64>, c: &Candidate| u.map(|u| i128::from(u) - i128::from(requested(c)));
    let (xa, xb) = (above(ua, a), above(ub, b));
    unread_first(ua, ub)
        .then_with(|| {
            let exceeds = |x: Option<i128>| x.is_some_and(|x| x > 0);
            exceeds(xb).cmp(&exceeds(xa))
        })
        .then(by_priority)
        .then_with(|| xb.cmp(&xa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32, memory_request: &str) -> Arc<Pod> {
        let resources = if memory_request.is_empty() {
            json!({})
        } else {
            json!({"requests": {"memory": memory_request}})
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"priority": priority,
                    "containers": [{"name": "c", "image": "i", "resources": resources}]}
            }))
            .unwrap(),
        )
    }

    fn candidate(pod: Arc<Pod>, memory: Option<u64>, processes: Option<u64>) -> Candidate {
        Candidate {
            pod,
            usage: PodUsage {
                memory,
                processes,
                ..PodUsage::default()
            },
        }
    }

    fn names(c: &[Candidate]) -> Vec<String> {
        c.iter()
            .map(|c| c.pod.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn memory_evicts_over_request_then_low_priority_then_the_largest_excess() {
        let mut c = vec![
            candidate(pod("guaranteed", 0, "100"), Some(50), None),
            candidate(pod("hog", 0, "10"), Some(500), None),
            candidate(pod("besteffort", 0, ""), Some(20), None),
            candidate(pod("important", 1000, ""), Some(900), None),
            candidate(pod("unread", 0, "100"), None, None),
        ];
        rank(Resource::Memory, &mut c);
        assert_eq!(
            names(&c),
            ["unread", "hog", "besteffort", "important", "guaranteed"]
        );
    }

    #[test]
    fn pids_evict_low_priority_then_the_most_processes() {
        let mut c = vec![
            candidate(pod("few", 0, ""), None, Some(3)),
            candidate(pod("many", 0, ""), None, Some(300)),
            candidate(pod("high", 10, ""), None, Some(3000)),
        ];
        rank(Resource::Pids, &mut c);
        assert_eq!(names(&c), ["many", "few", "high"]);
    }
}
