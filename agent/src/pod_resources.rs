//! Reading resource amounts out of a pod and its containers the way the API server leaves them:
//! a request that is not written defaults to the limit of the same resource. Shared by the
//! container config (QoS, cgroup resources) and the downward API, so it lives below both.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity;

/// Billionths of a unit: exact for every suffix a quantity may carry ("n" is the smallest).
pub(crate) const NANO: u128 = 1_000_000_000;

pub(crate) const CPU: &str = "cpu";
pub(crate) const MEMORY: &str = "memory";
pub(crate) const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub(crate) const HUGEPAGES_PREFIX: &str = "hugepages-";

type ResourceList = Option<BTreeMap<String, Quantity>>;

/// The quantity in billionths of a unit, `None` when it cannot be parsed.
pub(crate) fn nanos(q: &Quantity) -> Option<u128> {
    quantity::parse_scaled(&q.0, NANO).ok()
}

fn entry<'a>(list: &'a ResourceList, name: &str) -> Option<&'a Quantity> {
    list.as_ref()?.get(name)
}

/// The limit written for `name`.
pub(crate) fn limit<'a>(r: Option<&'a ResourceRequirements>, name: &str) -> Option<&'a Quantity> {
    entry(&r?.limits, name)
}

/// The request written for `name`, or the limit when only that is written (API defaulting).
pub(crate) fn request<'a>(r: Option<&'a ResourceRequirements>, name: &str) -> Option<&'a Quantity> {
    let r = r?;
    entry(&r.requests, name).or_else(|| entry(&r.limits, name))
}

/// Millicores of a cpu quantity, 0 when absent or unparseable.
pub(crate) fn millis(q: Option<&Quantity>) -> u64 {
    q.and_then(|q| quantity::parse_millis(&q.0).ok())
        .unwrap_or(0)
}

/// Whole units (bytes) of a quantity, 0 when absent or unparseable.
pub(crate) fn units(q: Option<&Quantity>) -> u64 {
    q.and_then(|q| quantity::parse_units(&q.0).ok())
        .unwrap_or(0)
}

/// The pod-level resources (`spec.resources`), if any.
pub(crate) fn pod_resources(pod: &Pod) -> Option<&ResourceRequirements> {
    pod.spec.as_ref()?.resources.as_ref()
}

fn has_pod_level(list: &ResourceList) -> bool {
    list.as_ref()
        .is_some_and(|l| l.contains_key(CPU) || l.contains_key(MEMORY))
}

/// Whether the pod sets cpu or memory requests at pod level.
pub(crate) fn pod_level_requests_set(pod: &Pod) -> bool {
    pod_resources(pod).is_some_and(|r| has_pod_level(&r.requests))
}

/// Whether the pod sets cpu or memory requests or limits at pod level.
pub(crate) fn pod_level_resources_set(pod: &Pod) -> bool {
    pod_resources(pod).is_some_and(|r| has_pod_level(&r.requests) || has_pod_level(&r.limits))
}

/// Regular containers of the pod.
pub(crate) fn containers(pod: &Pod) -> &[Container] {
    pod.spec.as_ref().map_or(&[], |s| s.containers.as_slice())
}

/// Init containers of the pod, sidecars included.
pub(crate) fn init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}

/// A restartable init container (`restartPolicy: Always`), i.e. a sidecar.
pub(crate) fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Whether `container` is one of the pod's sidecars.
pub(crate) fn is_sidecar(pod: &Pod, container: &Container) -> bool {
    is_restartable(container)
        && init_containers(pod)
            .iter()
            .any(|c| c.name == container.name)
}

/// The pod's effective memory request summed over its containers, as the scheduler counts it.
pub(crate) fn aggregate_memory_request(pod: &Pod) -> u64 {
    aggregate(pod, |c| units(request(c.resources.as_ref(), MEMORY)))
}

/// An amount summed over the pod's containers as kubelet's resource helpers sum requests and
/// limits: regular containers and sidecars add up; each plain init container needs its own
/// amount plus the sidecars started before it; the pod needs the larger of the two.
pub(crate) fn aggregate(pod: &Pod, amount: impl Fn(&Container) -> u64) -> u64 {
    let mut total: u64 = containers(pod)
        .iter()
        .map(&amount)
        .fold(0, u64::saturating_add);
    let mut sidecars: u64 = 0;
    let mut init_peak: u64 = 0;
    for c in init_containers(pod) {
        let need = if is_restartable(c) {
            total = total.saturating_add(amount(c));
            sidecars = sidecars.saturating_add(amount(c));
            sidecars
        } else {
            amount(c).saturating_add(sidecars)
        };
        init_peak = init_peak.max(need);
    }
    total.max(init_peak)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod;
    use serde_json::json;

    #[test]
    fn request_defaults_to_limit() {
        let r: ResourceRequirements = serde_json::from_value(
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}),
        )
        .unwrap();
        assert_eq!(millis(request(Some(&r), CPU)), 500);
        assert_eq!(units(request(Some(&r), MEMORY)), 1 << 30);
        assert_eq!(request(Some(&r), EPHEMERAL_STORAGE), None);
    }

    #[test]
    fn nanos_are_exact_for_every_suffix() {
        assert_eq!(nanos(&Quantity("1500m".into())), Some(1_500_000_000));
        assert_eq!(nanos(&Quantity("1Ki".into())), Some(1024 * NANO));
        assert_eq!(nanos(&Quantity("5n".into())), Some(5));
        assert_eq!(nanos(&Quantity("bogus".into())), None);
    }

    #[test]
    fn aggregate_memory_counts_sidecars_and_init_peaks() {
        let p = pod(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"memory": "100"}}},
                {"name": "init", "resources": {"requests": {"memory": "1000"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"memory": "200"}}},
                {"name": "b", "resources": {"limits": {"memory": "300"}}}
            ]
        }));
        // Regular 200 + 300 + sidecar 100 = 600; init 1000 + sidecar 100 = 1100.
        assert_eq!(aggregate_memory_request(&p), 1100);
    }
}
