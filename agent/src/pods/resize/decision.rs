//! Whether the node takes a resize (kubelet's allocation manager, `canResizePod`): never for a
//! static pod or beyond what the node could ever give pods (Infeasible), not now while the
//! node's pressure or the other pods' allocations leave no room (Deferred), else accepted and
//! counted against the node at once.

use k8s_openapi::api::core::v1::Pod;

use crate::node_facts::NodeFacts;
use crate::pods::admission::{Admission, pod_requests};
use crate::pods::config_source;

/// The node's word on a resize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Never on this node; `detail` is kubelet's `reason_detail` metric label.
    Infeasible {
        message: String,
        detail: &'static str,
    },
    /// Not now.
    Deferred {
        message: String,
    },
}

fn infeasible(message: String, detail: &'static str) -> Verdict {
    Verdict::Infeasible { message, detail }
}

/// Judges the resize of admitted `pod` to the resources its spec asks for; an accepted one is
/// recorded in `admission`.
pub fn judge(pod: &Pod, admission: &Admission, node: &NodeFacts) -> Verdict {
    if config_source::is_static(pod) {
        return infeasible(
            "In-place resize of static-pods is not supported".to_string(),
            "static_pod",
        );
    }
    let want = match pod_requests(pod) {
        Ok(w) => w,
        Err(message) => return infeasible(message, "invalid_quantity"),
    };
    let capacity = |name: &str, requested: u64, capacity: u64| {
        (capacity > 0 && requested > capacity).then(|| {
            infeasible(
                format!(
                    "Node didn't have enough capacity: {name}, requested: {requested}, capacity: {capacity}"
                ),
                "insufficient_node_allocatable",
            )
        })
    };
    if let Some(v) = capacity(
        "memory",
        want.memory_bytes,
        node.absolute_allocatable_memory_bytes,
    )
    .or_else(|| capacity("cpu", want.cpu_millis, node.absolute_allocatable_cpu_millis))
    {
        return v;
    }
    match admission.resize(pod, want, node) {
        Ok(()) => Verdict::Accepted,
        Err(refusal) => Verdict::Deferred {
            message: refusal.message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod_with;
    use serde_json::json;

    fn node() -> NodeFacts {
        NodeFacts {
            allocatable_cpu_millis: 1000,
            allocatable_memory_bytes: 1 << 30,
            absolute_allocatable_cpu_millis: 1200,
            absolute_allocatable_memory_bytes: 2 << 30,
            max_pods: 10,
            ..NodeFacts::default()
        }
    }

    fn asking(uid: &str, cpu: &str) -> Pod {
        pod_with(
            json!({"name": uid, "uid": uid}),
            json!({"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}),
        )
    }

    #[test]
    fn beyond_the_node_is_infeasible_beyond_the_room_left_deferred() {
        let a = Admission::default();
        let n = node();
        a.admit(&asking("a", "400m"), &n).unwrap();
        a.admit(&asking("b", "400m"), &n).unwrap();
        assert_eq!(
            judge(&asking("a", "2"), &a, &n),
            Verdict::Infeasible {
                message: "Node didn't have enough capacity: cpu, requested: 2000, capacity: 1200"
                    .into(),
                detail: "insufficient_node_allocatable"
            }
        );
        assert_eq!(
            judge(&asking("a", "700m"), &a, &n),
            Verdict::Deferred {
                message: "Node didn't have enough resource: cpu, requested: 700, used: 400, capacity: 1000".into()
            }
        );
        assert_eq!(judge(&asking("a", "600m"), &a, &n), Verdict::Accepted);
        // The accepted resize counts now: b cannot grow into the room a took.
        assert!(matches!(
            judge(&asking("b", "500m"), &a, &n),
            Verdict::Deferred { .. }
        ));
    }

    #[test]
    fn a_shrink_makes_room_once_it_is_applied() {
        let a = Admission::default();
        let n = node();
        a.admit(&asking("a", "600m"), &n).unwrap();
        a.admit(&asking("b", "400m"), &n).unwrap();
        let room = a.room();
        assert_eq!(judge(&asking("a", "200m"), &a, &n), Verdict::Accepted);
        assert!(
            matches!(
                judge(&asking("b", "700m"), &a, &n),
                Verdict::Deferred { .. }
            ),
            "a's cgroups still hold 600m"
        );
        assert!(!room.has_changed().unwrap());
        a.settle(
            "a",
            crate::pods::admission::pod_requests(&asking("a", "200m")).unwrap(),
        );
        assert!(room.has_changed().unwrap(), "deferred resizes try again");
        assert_eq!(judge(&asking("b", "700m"), &a, &n), Verdict::Accepted);
    }

    #[test]
    fn freed_room_goes_to_the_higher_priority_resize_whichever_is_judged_first() {
        let a = Admission::default();
        let n = node();
        let high = |cpu: &str| {
            pod_with(
                json!({"name": "high", "uid": "high"}),
                json!({"priority": 100, "containers": [{"name": "c", "image": "i",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}),
            )
        };
        a.admit(&asking("big", "400m"), &n).unwrap();
        a.admit(&asking("low", "200m"), &n).unwrap();
        a.admit(&high("200m"), &n).unwrap();
        // 200m free: both wait.
        let deferred = |v: Verdict| matches!(v, Verdict::Deferred { .. });
        assert!(deferred(judge(&asking("low", "500m"), &a, &n)));
        assert!(deferred(judge(&high("500m"), &a, &n)));
        // 500m free: enough for one of them. The low-priority pod's worker wakes first and
        // still waits; the high-priority one gets it.
        a.settle("big", pod_requests(&asking("big", "100m")).unwrap());
        let low = judge(&asking("low", "500m"), &a, &n);
        assert!(deferred(low.clone()), "{low:?}");
        assert_eq!(judge(&high("500m"), &a, &n), Verdict::Accepted);
        assert!(deferred(judge(&asking("low", "500m"), &a, &n)));
        assert_eq!(judge(&asking("low", "300m"), &a, &n), Verdict::Accepted);
    }

    #[test]
    fn static_pods_never_resize() {
        let p = pod_with(
            json!({"name": "s", "uid": "s", "annotations": {"kubernetes.io/config.source": "file"}}),
            json!({"containers": [{"name": "c", "image": "i"}]}),
        );
        assert!(matches!(
            judge(&p, &Admission::default(), &node()),
            Verdict::Infeasible {
                detail: "static_pod",
                ..
            }
        ));
    }
}
