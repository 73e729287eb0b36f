//! kubelet's messages for a node-pressure eviction: which resource the node was low on, the
//! threshold and what was available, then one line per container using more than it requested
//! of that resource (memory: its working set; ephemeral-storage: its writable layer and logs),
//! the request being what the node allocated when a resize changed it. Pure.

use std::fmt::Write;

use k8s_openapi::api::core::v1::Pod;

use super::observation::Observations;
use super::rank::PodUsage;
use crate::config::eviction::{Amount, Resource, Threshold};
use crate::quantity::{format_binary, parse_units};

/// A count or a size as kubelet's messages print it.
fn amount_text(t: &Threshold, value: u64) -> String {
    if t.signal.counts_bytes() {
        format_binary(value)
    } else {
        value.to_string()
    }
}

/// The node's part: "The node was low on resource: memory. Threshold quantity: 100Mi,
/// available: 61804Ki. ".
pub fn pressure_message(t: &Threshold, obs: &Observations) -> String {
    let resource = t.signal.resource().name();
    let Some(o) = obs.get(&t.signal) else {
        return format!("The node was low on resource: {resource}. ");
    };
    let threshold = match t.value {
        Amount::Quantity(_) => t.text.clone(),
        Amount::Fraction(_) => amount_text(t, t.value.of(o.capacity)),
    };
    format!(
        "The node was low on resource: {resource}. Threshold quantity: {threshold}, available: {}. ",
        amount_text(t, o.available)
    )
}

/// Container `name`'s request of `resource` as written: the allocated one in the status for
/// memory (a resize), else the spec's; "0" for none.
fn request_text(pod: &Pod, name: &str, resource: &str) -> String {
    let allocated = (resource == "memory")
        .then(|| {
            pod.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == name)?
                .allocated_resources
                .as_ref()?
                .get(resource)
                .map(|q| q.0.clone())
        })
        .flatten();
    let spec = || {
        pod.spec
            .as_ref()?
            .containers
            .iter()
            .find(|c| c.name == name)?
            .resources
            .as_ref()?
            .requests
            .as_ref()?
            .get(resource)
            .map(|q| q.0.clone())
    };
    allocated.or_else(spec).unwrap_or_else(|| "0".to_string())
}

/// The containers' part: "Container c was using 200Mi, request is 64Mi, has larger
/// consumption of memory. " for each container above its request, in the spec's order.
pub fn container_lines(resource: Resource, pod: &Pod, usage: &PodUsage) -> String {
    let used = match resource {
        Resource::Memory => &usage.container_memory,
        Resource::EphemeralStorage => &usage.container_storage,
        Resource::Inodes | Resource::Pids => return String::new(),
    };
    let name = resource.name();
    let mut out = String::new();
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let Some(&bytes) = used.get(&c.name) else {
            continue;
        };
        let request = request_text(pod, &c.name, name);
        let requested = parse_units(&request).unwrap_or(u64::MAX);
        if bytes > requested {
            let _ = write!(
                out,
                "Container {} was using {}, request is {request}, has larger consumption of {name}. ",
                c.name,
                format_binary(bytes)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn containers_above_their_request_are_named_as_kubelet_names_them() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "hog", "resources": {"requests": {"memory": "64Mi"}}},
            {"name": "calm", "resources": {"requests": {"memory": "64Mi"}}},
            {"name": "none"}]}}));
        let usage = PodUsage {
            container_memory: [
                ("hog".to_string(), 200 << 20),
                ("calm".to_string(), 10 << 20),
                ("none".to_string(), 1 << 20),
            ]
            .into(),
            ..PodUsage::default()
        };
        assert_eq!(
            container_lines(Resource::Memory, &p, &usage),
            "Container hog was using 200Mi, request is 64Mi, has larger consumption of memory. \
             Container none was using 1Mi, request is 0, has larger consumption of memory. "
        );
        assert_eq!(container_lines(Resource::Pids, &p, &usage), "");
        assert_eq!(container_lines(Resource::EphemeralStorage, &p, &usage), "");
    }

    #[test]
    fn a_resized_containers_allocated_request_counts() {
        let p = pod(json!({
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"memory": "64Mi"}}}]},
            "status": {"containerStatuses": [{"name": "c", "image": "", "imageID": "", "ready": true,
                "restartCount": 0, "allocatedResources": {"memory": "256Mi"}}]}}));
        let usage = PodUsage {
            container_memory: [("c".to_string(), 100 << 20)].into(),
            ..PodUsage::default()
        };
        assert_eq!(container_lines(Resource::Memory, &p, &usage), "");
    }
}
