//! Admission: a pod bound to this node runs only if its requests fit what is left of allocatable
//! and the node is below max-pods; otherwise it fails with kubelet's reasons (OutOfcpu,
//! OutOfmemory, OutOfpods).

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::context::NodeFacts;
use crate::quantity::{parse_millis, parse_units};

/// Requests that count against allocatable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

fn container_requests(c: &Container) -> Requests {
    let r = c.resources.as_ref();
    let get = |name: &str| {
        r.and_then(|r| r.requests.as_ref())
            .and_then(|m| m.get(name))
            .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)))
            .map(|q| q.0.clone())
    };
    Requests {
        cpu_millis: get("cpu").and_then(|q| parse_millis(&q).ok()).unwrap_or(0),
        memory_bytes: get("memory")
            .and_then(|q| parse_units(&q).ok())
            .unwrap_or(0),
    }
}

/// The pod's effective requests: the sum over containers (and sidecars), or the largest init
/// container, whichever is larger, per resource.
pub fn pod_requests(pod: &Pod) -> Requests {
    let Some(spec) = pod.spec.as_ref() else {
        return Requests::default();
    };
    let mut sum = Requests::default();
    for c in spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
    ) {
        let r = container_requests(c);
        sum.cpu_millis += r.cpu_millis;
        sum.memory_bytes += r.memory_bytes;
    }
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        sum.cpu_millis = sum.cpu_millis.max(r.cpu_millis);
        sum.memory_bytes = sum.memory_bytes.max(r.memory_bytes);
    }
    sum
}

/// A refusal: kubelet's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub message: String,
}

/// Pods admitted and not yet terminated, with their requests.
#[derive(Default)]
pub struct Admission {
    admitted: Mutex<HashMap<String, Requests>>,
}

impl Admission {
    /// Admits `pod` (idempotent per UID) or says why not.
    pub fn admit(&self, pod: &Pod, node: &NodeFacts) -> Result<(), Refusal> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut map = self
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.contains_key(&uid) {
            return Ok(());
        }
        let want = pod_requests(pod);
        let used = map.values().fold(Requests::default(), |a, r| Requests {
            cpu_millis: a.cpu_millis + r.cpu_millis,
            memory_bytes: a.memory_bytes + r.memory_bytes,
        });
        let refuse = |res: &str, requested: u64, used: u64, capacity: u64| Refusal {
            reason: format!("OutOf{res}"),
            message: format!(
                "Pod was rejected: Node didn't have enough resource: {res}, requested: {requested}, used: {used}, capacity: {capacity}"
            ),
        };
        if map.len() as u64 >= u64::from(node.max_pods) {
            return Err(refuse(
                "pods",
                1,
                map.len() as u64,
                u64::from(node.max_pods),
            ));
        }
        if used.cpu_millis + want.cpu_millis > node.allocatable_cpu_millis {
            return Err(refuse(
                "cpu",
                want.cpu_millis,
                used.cpu_millis,
                node.allocatable_cpu_millis,
            ));
        }
        if used.memory_bytes + want.memory_bytes > node.allocatable_memory_bytes {
            return Err(refuse(
                "memory",
                want.memory_bytes,
                used.memory_bytes,
                node.allocatable_memory_bytes,
            ));
        }
        map.insert(uid, want);
        Ok(())
    }

    /// Releases a pod's share (terminated or gone).
    pub fn release(&self, uid: &str) {
        self.admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "n".into(),
            host_ip: "127.0.0.1".into(),
            allocatable_cpu_millis: 1000,
            allocatable_memory_bytes: 1 << 30,
            memory_capacity_bytes: 2 << 30,
            max_pods: 2,
        }
    }

    fn pod(uid: &str, cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"uid": uid, "name": uid},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}))
        .unwrap()
    }

    #[test]
    fn refuses_with_kubelets_reasons() {
        let a = Admission::default();
        assert_eq!(a.admit(&pod("a", "600m", "100Mi"), &node()), Ok(()));
        let e = a.admit(&pod("b", "600m", "100Mi"), &node()).unwrap_err();
        assert_eq!(e.reason, "OutOfcpu");
        assert!(
            e.message
                .contains("requested: 600, used: 600, capacity: 1000"),
            "{}",
            e.message
        );
        let e = a.admit(&pod("b", "100m", "2Gi"), &node()).unwrap_err();
        assert_eq!(e.reason, "OutOfmemory");
        assert_eq!(a.admit(&pod("b", "100m", "100Mi"), &node()), Ok(()));
        assert_eq!(
            a.admit(&pod("c", "0", "0"), &node()).unwrap_err().reason,
            "OutOfpods"
        );
        a.release("a");
        assert_eq!(a.admit(&pod("c", "0", "0"), &node()), Ok(()));
        assert_eq!(
            a.admit(&pod("c", "0", "0"), &node()),
            Ok(()),
            "idempotent per UID"
        );
    }

    #[test]
    fn init_containers_count_as_their_maximum() {
        let p: Pod = serde_json::from_value(json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "500m"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]}}))
        .unwrap();
        let r = pod_requests(&p);
        assert_eq!(r.cpu_millis, 2000);
        assert_eq!(r.memory_bytes, 1 << 30);
    }
}
