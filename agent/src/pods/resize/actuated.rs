//! What a container's cgroup was last given (kubelet's actuated resources): cpu and memory
//! requests and limits, the four amounts a resize can change. Recorded when the container is
//! created and after each UpdateContainerResources that succeeded; a resize is in progress while
//! a running container's record differs from its allocation. The status's `resources` are the
//! allocation with these amounts in place ([`Actuated::report`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod_resources::{self, CPU, MEMORY};
use crate::quantity::{format_binary, format_millis};

/// The resizable amounts of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actuated {
    pub cpu_request_millis: u64,
    pub cpu_limit_millis: u64,
    pub memory_request_bytes: u64,
    pub memory_limit_bytes: u64,
}

/// Which resources differ between two records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub cpu: bool,
    pub memory: bool,
}

impl Changed {
    pub fn any(self) -> bool {
        self.cpu || self.memory
    }
}

/// kubelet reports a runtime's cpu limit only above 10m and its request above 2m: below that
/// the cgroup cannot tell the allocation's amount apart.
const MIN_REPORTED_CPU_LIMIT_MILLIS: u64 = 10;
const MIN_REPORTED_CPU_REQUEST_MILLIS: u64 = 2;

impl Actuated {
    /// The amounts `r` asks for (a missing one is 0).
    pub fn of(r: Option<&ResourceRequirements>) -> Actuated {
        Actuated {
            cpu_request_millis: pod_resources::millis(pod_resources::request(r, CPU)),
            cpu_limit_millis: pod_resources::millis(pod_resources::limit(r, CPU)),
            memory_request_bytes: pod_resources::units(pod_resources::request(r, MEMORY)),
            memory_limit_bytes: pod_resources::units(pod_resources::limit(r, MEMORY)),
        }
    }

    /// Which resources `self` and `other` disagree on.
    pub fn changed(&self, other: &Actuated) -> Changed {
        Changed {
            cpu: self.cpu_request_millis != other.cpu_request_millis
                || self.cpu_limit_millis != other.cpu_limit_millis,
            memory: self.memory_request_bytes != other.memory_request_bytes
                || self.memory_limit_bytes != other.memory_limit_bytes,
        }
    }

    /// The status's `resources` of a container allocated `allocated` whose cgroup has these
    /// amounts: the allocation, with cpu and memory as applied where it lists them.
    pub fn report(&self, allocated: &ResourceRequirements) -> ResourceRequirements {
        let mut out = allocated.clone();
        let wanted = Actuated::of(Some(allocated));
        if let Some(limits) = out.limits.as_mut() {
            if self.cpu_limit_millis != wanted.cpu_limit_millis
                && (self.cpu_limit_millis > MIN_REPORTED_CPU_LIMIT_MILLIS
                    || wanted.cpu_limit_millis > MIN_REPORTED_CPU_LIMIT_MILLIS)
            {
                set(limits, CPU, format_millis(self.cpu_limit_millis));
            }
            if self.memory_limit_bytes != wanted.memory_limit_bytes {
                set(limits, MEMORY, format_binary(self.memory_limit_bytes));
            }
        }
        if let Some(requests) = out.requests.as_mut() {
            if self.cpu_request_millis != wanted.cpu_request_millis
                && (self.cpu_request_millis > MIN_REPORTED_CPU_REQUEST_MILLIS
                    || wanted.cpu_request_millis > MIN_REPORTED_CPU_REQUEST_MILLIS)
            {
                set(requests, CPU, format_millis(self.cpu_request_millis));
            }
            if self.memory_request_bytes != wanted.memory_request_bytes {
                set(requests, MEMORY, format_binary(self.memory_request_bytes));
            }
        }
        out
    }
}

/// Sets `name` to `value`, or removes it where the amount is zero (none was applied).
fn set(list: &mut BTreeMap<String, Quantity>, name: &str, value: String) {
    if value == "0" {
        list.remove(name);
    } else {
        list.insert(name.to_string(), Quantity(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: serde_json::Value) -> ResourceRequirements {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn amounts_and_changes() {
        let a = Actuated::of(Some(&req(json!({
            "requests": {"cpu": "100m", "memory": "64Mi"},
            "limits": {"cpu": "1", "memory": "128Mi"}
        }))));
        assert_eq!(
            a,
            Actuated {
                cpu_request_millis: 100,
                cpu_limit_millis: 1000,
                memory_request_bytes: 64 << 20,
                memory_limit_bytes: 128 << 20,
            }
        );
        let more_cpu = Actuated {
            cpu_limit_millis: 2000,
            ..a
        };
        assert_eq!(
            a.changed(&more_cpu),
            Changed {
                cpu: true,
                memory: false
            }
        );
        assert!(!a.changed(&a).any());
        assert_eq!(Actuated::of(None), Actuated::default());
    }

    #[test]
    fn the_report_is_the_allocation_with_what_was_applied() {
        let allocated = req(json!({
            "requests": {"cpu": "200m", "memory": "64Mi"},
            "limits": {"cpu": "400m", "memory": "256Mi"}
        }));
        let applied = Actuated::of(Some(&allocated));
        assert_eq!(applied.report(&allocated), allocated, "nothing pending");
        let before = Actuated {
            cpu_limit_millis: 200,
            memory_limit_bytes: 128 << 20,
            ..applied
        };
        let r = before.report(&allocated);
        let limits = r.limits.unwrap();
        assert_eq!(limits["cpu"].0, "200m");
        assert_eq!(limits["memory"].0, "128Mi");
        assert_eq!(r.requests.unwrap()["cpu"].0, "200m", "kept as allocated");
    }

    #[test]
    fn tiny_cpu_amounts_are_reported_as_allocated() {
        let allocated = req(json!({"requests": {"cpu": "1m"}, "limits": {"cpu": "5m"}}));
        let applied = Actuated {
            cpu_request_millis: 2,
            cpu_limit_millis: 10,
            ..Actuated::default()
        };
        assert_eq!(applied.report(&allocated), allocated);
    }
}
