//! The resources the node allocated to a pod's resizable containers (kubelet's allocation
//! manager): its regular containers and sidecars, by name. A sync runs on the pod with these in
//! place of its spec's ([`Allocation::apply`]), so a resize the node has not accepted is never
//! applied; while one is pending, the spec and the allocation differ ([`Allocation::differs`]).
//!
//! kubelet keeps the allocation in a checkpoint file. This agent's record of last resort is the
//! pod's own status, which it wrote: after a restart a container whose status reports
//! `allocatedResources` and `resources` is taken to be allocated those ([`Allocation::restore`]),
//! so a resize made while the agent was down is judged like any other.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod_resources;

/// Allocated resources by container name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Allocation(BTreeMap<String, ResourceRequirements>);

/// The containers whose resources can change in place: regular containers and sidecars
/// (restartable init containers), as kubelet's IsResizableContainer.
pub fn resizable(pod: &Pod) -> impl Iterator<Item = &Container> {
    pod_resources::init_containers(pod)
        .iter()
        .filter(|c| pod_resources::is_restartable(c))
        .chain(pod_resources::containers(pod))
}

/// The statuses of the pod's containers and init containers, as the API has them.
pub fn statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status.as_ref().into_iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
    })
}

fn requirements(c: &Container) -> ResourceRequirements {
    c.resources.clone().unwrap_or_default()
}

impl Allocation {
    /// What the spec asks for: a new pod is allocated its spec at admission.
    pub fn of_spec(pod: &Pod) -> Allocation {
        Allocation(
            resizable(pod)
                .map(|c| (c.name.clone(), requirements(c)))
                .collect(),
        )
    }

    /// The allocation the pod's status records (requests from `allocatedResources`, limits from
    /// `resources`), the spec's for containers whose status records none.
    pub fn restore(pod: &Pod) -> Allocation {
        let recorded: BTreeMap<&str, &ContainerStatus> =
            statuses(pod).map(|s| (s.name.as_str(), s)).collect();
        Allocation(
            resizable(pod)
                .map(|c| {
                    let kept = recorded.get(c.name.as_str()).and_then(|s| recorded_of(s));
                    (c.name.clone(), kept.unwrap_or_else(|| requirements(c)))
                })
                .collect(),
        )
    }

    /// The allocation of container `name`.
    pub fn get(&self, name: &str) -> Option<&ResourceRequirements> {
        self.0.get(name)
    }

    /// True when the pod's spec asks for other resources than these (a resize is requested).
    pub fn differs(&self, pod: &Pod) -> bool {
        resizable(pod).any(|c| {
            self.0
                .get(&c.name)
                .is_some_and(|a| !same_as_spec(a, c.resources.as_ref()))
        })
    }

    /// `pod` with its resizable containers' resources replaced by the allocation's: borrowed
    /// when they are the same.
    pub fn apply<'a>(&self, pod: &'a Pod) -> Cow<'a, Pod> {
        if !self.differs(pod) {
            return Cow::Borrowed(pod);
        }
        let mut out = pod.clone();
        let Some(spec) = out.spec.as_mut() else {
            return Cow::Owned(out);
        };
        let init = spec
            .init_containers
            .iter_mut()
            .flatten()
            .filter(|c| pod_resources::is_restartable(c));
        for c in init.chain(spec.containers.iter_mut()) {
            if let Some(a) = self.0.get(&c.name) {
                c.resources = Some(a.clone());
            }
        }
        Cow::Owned(out)
    }
}

/// What a container's status says was allocated to it, if it says.
fn recorded_of(s: &ContainerStatus) -> Option<ResourceRequirements> {
    let reported = s.resources.as_ref()?;
    Some(ResourceRequirements {
        requests: s
            .allocated_resources
            .clone()
            .or_else(|| reported.requests.clone()),
        limits: reported.limits.clone(),
        claims: None,
    })
}

/// `allocated` and a container's (possibly absent) resources equal by amount ("1" and
/// "1000m" are the same), claims aside.
fn same_as_spec(allocated: &ResourceRequirements, spec: Option<&ResourceRequirements>) -> bool {
    same_list(
        allocated.requests.as_ref(),
        spec.and_then(|r| r.requests.as_ref()),
    ) && same_list(
        allocated.limits.as_ref(),
        spec.and_then(|r| r.limits.as_ref()),
    )
}

fn same_list(
    a: Option<&BTreeMap<String, Quantity>>,
    b: Option<&BTreeMap<String, Quantity>>,
) -> bool {
    let empty = BTreeMap::new();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    a.len() == b.len()
        && a.iter().all(|(name, q)| {
            b.get(name).is_some_and(|other| {
                q == other
                    || matches!(
                        (pod_resources::nanos(q), pod_resources::nanos(other)),
                        (Some(x), Some(y)) if x == y
                    )
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod;
    use serde_json::json;

    fn two_containers(cpu: &str) -> Pod {
        pod(json!({
            "initContainers": [
                {"name": "init", "image": "i", "resources": {"requests": {"cpu": "1"}}},
                {"name": "side", "image": "i", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "100m"}}}
            ],
            "containers": [{"name": "app", "image": "i", "resources": {
                "requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]
        }))
    }

    #[test]
    fn only_regular_containers_and_sidecars_are_allocated() {
        let a = Allocation::of_spec(&two_containers("250m"));
        assert!(a.get("app").is_some());
        assert!(a.get("side").is_some());
        assert!(
            a.get("init").is_none(),
            "a plain init container never resizes"
        );
    }

    #[test]
    fn a_changed_spec_differs_and_the_allocation_is_what_the_sync_sees() {
        let old = two_containers("250m");
        let a = Allocation::of_spec(&old);
        assert!(!a.differs(&old));
        assert!(matches!(a.apply(&old), Cow::Borrowed(_)));
        let resized = two_containers("500m");
        assert!(a.differs(&resized));
        let applied = a.apply(&resized);
        let app = &applied.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            app.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0,
            "250m"
        );
        assert!(!a.differs(&applied));
    }

    #[test]
    fn amounts_compare_by_value() {
        let a = Allocation::of_spec(&two_containers("1"));
        assert!(!a.differs(&two_containers("1000m")));
    }

    #[test]
    fn the_status_restores_what_was_allocated() {
        let mut resized = two_containers("500m");
        resized.status = Some(
            serde_json::from_value(json!({"containerStatuses": [{
                "name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                "allocatedResources": {"cpu": "250m", "memory": "64Mi"},
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                              "limits": {"memory": "128Mi"}}
            }]}))
            .unwrap(),
        );
        let a = Allocation::restore(&resized);
        assert!(a.differs(&resized), "the resize is still to be judged");
        assert_eq!(a, Allocation::of_spec(&two_containers("250m")));
        // No status: the spec is the allocation.
        assert_eq!(
            Allocation::restore(&two_containers("500m")),
            Allocation::of_spec(&two_containers("500m"))
        );
    }
}
