//! A container's Linux resources (cgroup settings and OOM score), as kubelet computes them.
//!
//! - cpu shares from the cpu request (the limit when no request is written), and the CFS quota
//!   from the cpu limit over a 100ms period (the arithmetic is [`crate::cgroups`]'s);
//! - memory limit from the memory limit;
//! - without a container limit, the pod-level limit (`spec.resources`) is used when set;
//! - hugepage limits from `hugepages-<size>` limits;
//! - `oom_score_adj` from the pod's QoS class (kubelet's qos/policy.go).

use k8s_openapi::api::core::v1::{Container, Pod};

use cri_client::api;

use super::qos::{QosClass, qos_class};
use crate::cgroups::{CPU_PERIOD_US, milli_cpu_to_quota, milli_cpu_to_shares};
use crate::pod_resources::{self, CPU, HUGEPAGES_PREFIX, MEMORY};

/// The OOM score adjustment of guaranteed (and node-critical) containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// The OOM score adjustment of best-effort containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// The Linux resources of `container` in `pod` on a node with `node_memory_capacity_bytes`.
pub fn linux_resources(
    container: &Container,
    pod: &Pod,
    node_memory_capacity_bytes: u64,
) -> api::LinuxContainerResources {
    let r = container.resources.as_ref();
    let pod_level = pod_resources::pod_level_resources_set(pod);
    // A container limit of zero or none falls back to the pod-level limit when the pod has one.
    let limit_of = |name: &str| {
        let own = pod_resources::limit(r, name);
        let value = if name == CPU {
            pod_resources::millis(own)
        } else {
            pod_resources::units(own)
        };
        if value == 0 && pod_level {
            let pod_limit = pod_resources::limit(pod_resources::pod_resources(pod), name);
            if name == CPU {
                pod_resources::millis(pod_limit)
            } else {
                pod_resources::units(pod_limit)
            }
        } else {
            value
        }
    };
    let cpu_limit = limit_of(CPU);
    let memory_limit = limit_of(MEMORY);
    let written_cpu_request = r.and_then(|r| r.requests.as_ref()).and_then(|m| m.get(CPU));
    let cpu_for_shares = match written_cpu_request {
        Some(q) => pod_resources::millis(Some(q)),
        None => cpu_limit,
    };

    api::LinuxContainerResources {
        cpu_period: CPU_PERIOD_US,
        cpu_quota: milli_cpu_to_quota(cpu_limit, CPU_PERIOD_US),
        cpu_shares: milli_cpu_to_shares(cpu_for_shares),
        memory_limit_in_bytes: i64::try_from(memory_limit).unwrap_or(i64::MAX),
        oom_score_adj: oom_score_adj(pod, container, node_memory_capacity_bytes),
        hugepage_limits: hugepage_limits(container),
        ..Default::default()
    }
}

/// The OOM score adjustment kubelet gives `container`: -997 for guaranteed pods and
/// node-critical pods, 1000 for best effort, and for burstable containers
/// `1000 - 1000 * memoryRequest / capacity`, kept within 3..=999 so burstable containers die
/// after best-effort ones and before guaranteed ones. A sidecar scores no higher than the
/// smallest regular container; pod-level memory requests not claimed by containers are shared
/// out evenly.
pub fn oom_score_adj(pod: &Pod, container: &Container, node_memory_capacity_bytes: u64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = i128::from(node_memory_capacity_bytes);
    if capacity == 0 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    let mem_request = |c: &Container| {
        i128::from(pod_resources::units(pod_resources::request(
            c.resources.as_ref(),
            MEMORY,
        )))
    };
    let score = |request: i128| 1000 - 1000 * request / capacity;

    let extra = if pod_resources::pod_level_requests_set(pod) {
        remaining_pod_memory_per_container(pod)
    } else {
        0
    };
    let mut adj = score(mem_request(container) + extra);
    if pod_resources::is_sidecar(pod, container) {
        let smallest = pod_resources::containers(pod)
            .iter()
            .map(mem_request)
            .min()
            .unwrap_or(0);
        adj = adj.min(score(smallest + extra));
    }
    let floor = 1000 + i128::from(GUARANTEED_OOM_SCORE_ADJ);
    let adj = adj.clamp(floor, i128::from(BEST_EFFORT_OOM_SCORE_ADJ) - 1);
    i64::try_from(adj).unwrap_or(BEST_EFFORT_OOM_SCORE_ADJ - 1)
}

/// The pod-level memory request not claimed by any container, divided by the container count.
fn remaining_pod_memory_per_container(pod: &Pod) -> i128 {
    let pod_request = i128::from(pod_resources::units(pod_resources::request(
        pod_resources::pod_resources(pod),
        MEMORY,
    )));
    if pod_request == 0 {
        return 0;
    }
    let count = pod_resources::containers(pod).len() + pod_resources::init_containers(pod).len();
    let Ok(count) = i128::try_from(count) else {
        return 0;
    };
    if count == 0 {
        return 0;
    }
    (pod_request - i128::from(pod_resources::aggregate_memory_request(pod))) / count
}

/// Node-critical pods (static, mirror or system-critical priority, with the
/// `system-node-critical` priority class) are protected like guaranteed ones.
fn is_node_critical(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.priority_class_name.as_deref() != Some("system-node-critical") {
        return false;
    }
    let mirror = crate::pods::config_source::is_mirror(pod);
    crate::pods::config_source::is_static(pod)
        || mirror
        || spec
            .priority
            .is_some_and(|p| p >= crate::pods::config_source::SYSTEM_CRITICAL_PRIORITY)
}

/// Hugepage limits from `hugepages-<size>` limits, page sizes written as the runtime expects
/// them ("2MB", "1GB").
pub fn hugepage_limits(container: &Container) -> Vec<api::HugepageLimit> {
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let mut out = Vec::new();
    for (name, amount) in limits.into_iter().flatten() {
        let Some(size) = name.strip_prefix(HUGEPAGES_PREFIX) else {
            continue;
        };
        let Some(page_size) = crate::quantity::parse_units(size)
            .ok()
            .and_then(page_size_name)
        else {
            tracing::warn!(resource = %name, "unsupported hugepage size; limit ignored");
            continue;
        };
        out.push(api::HugepageLimit {
            page_size,
            limit: pod_resources::units(Some(amount)),
        });
    }
    out
}

/// 2097152 -> "2MB", 1073741824 -> "1GB"; `None` when not a whole number of one unit.
fn page_size_name(mut bytes: u64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    if bytes == 0 {
        return None;
    }
    let mut unit = 0;
    while bytes.is_multiple_of(1024) && unit < UNITS.len() - 1 {
        bytes /= 1024;
        unit += 1;
    }
    if bytes > 1024 && unit < UNITS.len() - 1 {
        return None;
    }
    Some(format!("{bytes}{}", UNITS[unit]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{first, pod, pod_of, pod_with};
    use serde_json::json;

    const GI: u64 = 1 << 30;

    fn resources_of(p: &Pod) -> api::LinuxContainerResources {
        linux_resources(first(p), p, 10 * GI)
    }

    #[test]
    fn requests_and_limits_become_cgroup_settings() {
        let p = pod_of(json!({"name": "c", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "1500m", "memory": "128Mi"}
        }}));
        let r = resources_of(&p);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.cpu_quota, 150_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
    }

    #[test]
    fn no_resources_gets_minimum_shares_and_no_limits() {
        let r = resources_of(&pod_of(json!({"name": "c"})));
        assert_eq!(r.cpu_shares, 2);
        assert_eq!(r.cpu_quota, 0);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 0);
        assert_eq!(r.oom_score_adj, 1000);
        assert!(r.hugepage_limits.is_empty());
    }

    #[test]
    fn shares_default_to_the_limit_without_a_request() {
        let r = resources_of(&pod_of(
            json!({"name": "c", "resources": {"limits": {"cpu": "2"}}}),
        ));
        assert_eq!(r.cpu_shares, 2048);
        assert_eq!(r.cpu_quota, 200_000);
        let r = resources_of(&pod_of(
            json!({"name": "c", "resources": {"requests": {"cpu": "0"}, "limits": {"cpu": "2"}}}),
        ));
        assert_eq!(r.cpu_shares, 2, "a written request wins, even zero");
    }

    #[test]
    fn pod_level_limits_fill_in_missing_container_limits() {
        let p = pod(json!({
            "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
            "containers": [{"name": "c", "resources": {"limits": {"memory": "512Mi"}}}]
        }));
        let r = resources_of(&p);
        assert_eq!(r.cpu_quota, 200_000);
        assert_eq!(r.cpu_shares, 2048);
        assert_eq!(r.memory_limit_in_bytes, 512 << 20);
    }

    #[test]
    fn hugepages() {
        let p = pod_of(json!({"name": "c", "resources": {"limits": {
            "hugepages-2Mi": "100Mi", "hugepages-1Gi": "2Gi", "memory": "1Gi", "cpu": "1"
        }}}));
        let r = resources_of(&p);
        let got: Vec<_> = r
            .hugepage_limits
            .iter()
            .map(|h| (h.page_size.as_str(), h.limit))
            .collect();
        assert_eq!(got, [("1GB", 2 * GI), ("2MB", 100 << 20)]);
        assert_eq!(page_size_name(64 * 1024), Some("64KB".into()));
        assert_eq!(page_size_name(3000), None);
    }

    #[test]
    fn oom_score_by_qos() {
        let guaranteed =
            pod_of(json!({"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}));
        assert_eq!(resources_of(&guaranteed).oom_score_adj, -997);

        let best_effort = pod_of(json!({"name": "c"}));
        assert_eq!(resources_of(&best_effort).oom_score_adj, 1000);

        // 1 GiB of 10 GiB: 1000 - 100 = 900.
        let burstable = pod_of(json!({"name": "c", "resources": {"requests": {"memory": "1Gi"}}}));
        assert_eq!(resources_of(&burstable).oom_score_adj, 900);
    }

    #[test]
    fn burstable_oom_score_stays_between_the_other_classes() {
        let huge = pod_of(json!({"name": "c", "resources": {"requests": {"memory": "20Gi"}}}));
        assert_eq!(
            resources_of(&huge).oom_score_adj,
            3,
            "never as low as guaranteed"
        );
        let tiny = pod_of(json!({"name": "c", "resources": {"requests": {"cpu": "100m"}}}));
        assert_eq!(
            resources_of(&tiny).oom_score_adj,
            999,
            "never as high as best effort"
        );
    }

    #[test]
    fn oom_score_uses_memory_limit_as_default_request() {
        let p = pod_of(json!({"name": "c", "resources": {"limits": {"memory": "5Gi"}}}));
        assert_eq!(resources_of(&p).oom_score_adj, 500);
    }

    #[test]
    fn sidecar_oom_score_is_no_higher_than_the_smallest_regular_container() {
        let p = pod(json!({
            "initContainers": [{"name": "side", "restartPolicy": "Always", "resources": {"requests": {"memory": "100Mi"}}}],
            "containers": [{"name": "app", "resources": {"requests": {"memory": "2Gi"}}}]
        }));
        let side = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
        assert_eq!(linux_resources(side, &p, 10 * GI).oom_score_adj, 800);
        assert_eq!(resources_of(&p).oom_score_adj, 800);
    }

    #[test]
    fn pod_level_memory_requests_are_shared_out() {
        let p = pod(json!({
            "resources": {"requests": {"memory": "4Gi"}},
            "containers": [
                {"name": "a", "resources": {"requests": {"memory": "1Gi"}}},
                {"name": "b"}
            ]
        }));
        // 3 GiB unclaimed over 2 containers: a counts 1 + 1.5 GiB -> 1000 - 250.
        assert_eq!(resources_of(&p).oom_score_adj, 750);
    }

    #[test]
    fn node_critical_pods_are_protected() {
        let spec = json!({
            "priorityClassName": "system-node-critical",
            "priority": 2_000_001_000,
            "containers": [{"name": "c"}]
        });
        let p = pod(spec.clone());
        assert_eq!(resources_of(&p).oom_score_adj, -997);

        let static_pod = pod_with(
            json!({"name": "s", "annotations": {"kubernetes.io/config.source": "file"}}),
            json!({"priorityClassName": "system-node-critical", "containers": [{"name": "c"}]}),
        );
        assert_eq!(resources_of(&static_pod).oom_score_adj, -997);

        let cluster_critical = pod(json!({
            "priorityClassName": "system-cluster-critical",
            "priority": 2_000_000_000,
            "containers": [{"name": "c"}]
        }));
        assert_eq!(resources_of(&cluster_critical).oom_score_adj, 1000);
    }

    #[test]
    fn status_qos_class_drives_the_score() {
        let mut p = pod_of(json!({"name": "c"}));
        p.status = Some(serde_json::from_value(json!({"qosClass": "Guaranteed"})).unwrap());
        assert_eq!(resources_of(&p).oom_score_adj, -997);
    }
}
