//! The pod's quality-of-service class, as kubelet and the API server compute it.
//!
//! Only cpu and memory count. Each container (init containers and sidecars included) is judged
//! on its own: no cpu/memory at all is best effort; for both resources a request equal to a
//! non-zero limit is guaranteed; anything else is burstable. The pod is guaranteed or best
//! effort only when every container is, and burstable otherwise. When the pod sets resources
//! at pod level (`spec.resources`), those alone decide. A request that is not written defaults
//! to the limit, as the API server defaults it.

use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};

use crate::pod_resources::{self, CPU, MEMORY};

/// A pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name the API uses in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// Parses the API name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Guaranteed" => Some(QosClass::Guaranteed),
            "Burstable" => Some(QosClass::Burstable),
            "BestEffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod's QoS class: `status.qosClass` when the API server has set it (it never changes for
/// the life of the pod), computed from the spec otherwise.
pub fn qos_class(pod: &Pod) -> QosClass {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .and_then(QosClass::parse)
        .unwrap_or_else(|| compute_qos_class(pod))
}

/// The pod's QoS class computed from its spec alone.
pub fn compute_qos_class(pod: &Pod) -> QosClass {
    if let Some(r) = pod_resources::pod_resources(pod) {
        return resources_class(Some(r));
    }
    let mut pod_class = None;
    let all = pod_resources::init_containers(pod)
        .iter()
        .chain(pod_resources::containers(pod));
    for c in all {
        let class = resources_class(c.resources.as_ref());
        match pod_class {
            _ if class == QosClass::Burstable => return QosClass::Burstable,
            None => pod_class = Some(class),
            Some(seen) if seen != class => return QosClass::Burstable,
            Some(_) => {}
        }
    }
    pod_class.unwrap_or(QosClass::BestEffort)
}

/// The class of one set of requirements (a container's, or the pod-level ones).
fn resources_class(r: Option<&ResourceRequirements>) -> QosClass {
    let mut class = None;
    for name in [CPU, MEMORY] {
        let nanos = |q: Option<_>| q.and_then(pod_resources::nanos).unwrap_or(0);
        let req = nanos(pod_resources::request(r, name));
        let lim = nanos(pod_resources::limit(r, name));
        if req != lim {
            return QosClass::Burstable;
        }
        let this = if lim == 0 {
            QosClass::BestEffort
        } else {
            QosClass::Guaranteed
        };
        match class {
            None => class = Some(this),
            Some(seen) if seen != this => return QosClass::Burstable,
            Some(_) => {}
        }
    }
    class.unwrap_or(QosClass::BestEffort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod;
    use serde_json::{Value, json};

    fn res(requests: &Value, limits: &Value) -> Value {
        json!({"requests": requests, "limits": limits})
    }

    fn with_containers(containers: &Value) -> Pod {
        pod(json!({"containers": containers}))
    }

    #[test]
    fn no_resources_is_best_effort() {
        let p = with_containers(&json!([{"name": "a"}, {"name": "b", "resources": {}}]));
        assert_eq!(compute_qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn equal_cpu_and_memory_in_every_container_is_guaranteed() {
        let r = res(
            &json!({"cpu": "1", "memory": "1Gi"}),
            &json!({"cpu": "1000m", "memory": "1073741824"}),
        );
        let p =
            with_containers(&json!([{"name": "a", "resources": r}, {"name": "b", "resources": r}]));
        assert_eq!(
            compute_qos_class(&p),
            QosClass::Guaranteed,
            "quantities compare by value"
        );
    }

    #[test]
    fn limits_alone_default_the_requests_and_are_guaranteed() {
        let p = with_containers(
            &json!([{"name": "a", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]),
        );
        assert_eq!(compute_qos_class(&p), QosClass::Guaranteed);
    }

    #[test]
    fn request_below_limit_is_burstable() {
        let r = res(
            &json!({"cpu": "500m", "memory": "1Gi"}),
            &json!({"cpu": "1", "memory": "1Gi"}),
        );
        let p = with_containers(&json!([{"name": "a", "resources": r}]));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn only_cpu_set_is_burstable() {
        let p = with_containers(&json!([{"name": "a", "resources": {"limits": {"cpu": "1"}}}]));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn requests_only_is_burstable() {
        let p =
            with_containers(&json!([{"name": "a", "resources": {"requests": {"memory": "10Mi"}}}]));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn guaranteed_and_best_effort_containers_make_a_burstable_pod() {
        let g = res(
            &json!({"cpu": "1", "memory": "1Gi"}),
            &json!({"cpu": "1", "memory": "1Gi"}),
        );
        let p = with_containers(&json!([{"name": "a", "resources": g}, {"name": "b"}]));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn other_resources_do_not_count() {
        let p = with_containers(&json!([{"name": "a", "resources": {
            "requests": {"ephemeral-storage": "1Gi"},
            "limits": {"ephemeral-storage": "2Gi", "hugepages-2Mi": "2Mi"}
        }}]));
        assert_eq!(compute_qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn zero_quantities_count_as_unset() {
        let p = with_containers(
            &json!([{"name": "a", "resources": res(&json!({"cpu": "0"}), &json!({"memory": "0"}))}]),
        );
        assert_eq!(compute_qos_class(&p), QosClass::BestEffort);
    }

    #[test]
    fn init_containers_count() {
        let g = res(
            &json!({"cpu": "1", "memory": "1Gi"}),
            &json!({"cpu": "1", "memory": "1Gi"}),
        );
        let p = pod(json!({
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "100m"}}}],
            "containers": [{"name": "a", "resources": g}]
        }));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);

        let p = pod(json!({
            "initContainers": [{"name": "init", "resources": g}],
            "containers": [{"name": "a", "resources": g}]
        }));
        assert_eq!(compute_qos_class(&p), QosClass::Guaranteed);

        let p = pod(
            json!({"initContainers": [{"name": "init"}], "containers": [{"name": "a", "resources": g}]}),
        );
        assert_eq!(
            compute_qos_class(&p),
            QosClass::Burstable,
            "a best-effort init container"
        );
    }

    #[test]
    fn pod_level_resources_decide_alone() {
        let p = pod(json!({
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            "containers": [{"name": "a"}]
        }));
        assert_eq!(compute_qos_class(&p), QosClass::Guaranteed);

        let p = pod(json!({
            "resources": {"requests": {"cpu": "1"}},
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]
        }));
        assert_eq!(compute_qos_class(&p), QosClass::Burstable);
    }

    #[test]
    fn status_qos_class_wins_when_set() {
        let mut p = with_containers(&json!([{"name": "a"}]));
        p.status = Some(serde_json::from_value(json!({"qosClass": "Guaranteed"})).unwrap());
        assert_eq!(qos_class(&p), QosClass::Guaranteed);
        p.status = Some(serde_json::from_value(json!({"qosClass": "Weird"})).unwrap());
        assert_eq!(
            qos_class(&p),
            QosClass::BestEffort,
            "unknown values are recomputed"
        );
    }

    #[test]
    fn names_round_trip() {
        for c in [
            QosClass::Guaranteed,
            QosClass::Burstable,
            QosClass::BestEffort,
        ] {
            assert_eq!(QosClass::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
    }
}
