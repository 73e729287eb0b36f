//! kubelet's messages for a node-pressure eviction: which resource the node was low on, the
//! threshold and what was available, then one line per container using more than it requested
//! of that resource (memory: its working set; ephemeral-storage: its writable layer and logs),
//! with the pod's own line first when it has pod-level memory requests; and the annotations
//! kubelet puts on the Evicted event to say the same to a program (`offending_containers`,
//! `offending_containers_usage`, `starved_resource`, and `offending_pod`,
//! `offending_pod_usage` for a pod-level request). Pure.

use std::collections::BTreeMap;
use std::fmt::Write;

use k8s_openapi::api::core::v1::{Container, Pod};

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

/// A container's request of `resource` as its spec writes it (kubelet 1.35 reads the spec's,
/// not what a resize allocated); "0" for none.
fn request_text(c: &Container, resource: &str) -> String {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get(resource))
        .map_or_else(|| "0".to_string(), |q| q.0.clone())
}

fn above(bytes: u64, request: &str) -> bool {
    bytes > parse_units(request).unwrap_or(u64::MAX)
}

/// Who is blamed for an eviction: the message's lines after the node's part, and the
/// Evicted event's annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blame {
    pub lines: String,
    pub annotations: BTreeMap<String, String>,
}

/// What follows the node's part: for memory with pod-level requests, "Pod p was using 300Mi,
/// request is 256Mi, has larger consumption of memory. "; then "Container c was using 200Mi,
/// request is 64Mi, has larger consumption of memory. " for each regular, init or sidecar
/// container above its request, in the spec's order. The annotations name the same
/// containers and usages, comma-separated (empty when none), and the starved resource.
pub fn blame(resource: Resource, pod: &Pod, usage: &PodUsage) -> Blame {
    let name = resource.name();
    let mut out = Blame::default();
    let mut offending = Vec::new();
    let mut usages = Vec::new();
    let used = match resource {
        Resource::Memory => Some(&usage.container_memory),
        Resource::EphemeralStorage => Some(&usage.container_storage),
        Resource::Inodes | Resource::Pids => None,
    };
    if let (Some(spec), Some(used)) = (pod.spec.as_ref(), used) {
        let pod_request = spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name));
        if resource == Resource::Memory
            && let (Some(request), Some(bytes)) = (pod_request, usage.memory)
        {
            // kubelet names the pod whenever it has a pod-level request, above it or not.
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let _ = write!(
                out.lines,
                "Pod {pod_name} was using {}, request is {}, has larger consumption of {name}. ",
                format_binary(bytes),
                request.0
            );
            out.annotations
                .insert("offending_pod".to_string(), pod_name);
            out.annotations
                .insert("offending_pod_usage".to_string(), format_binary(bytes));
        }
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let Some(&bytes) = used.get(&c.name) else {
                continue;
            };
            let request = request_text(c, name);
            if above(bytes, &request) {
                let _ = write!(
                    out.lines,
                    "Container {} was using {}, request is {request}, has larger consumption of {name}. ",
                    c.name,
                    format_binary(bytes)
                );
                offending.push(c.name.clone());
                usages.push(format_binary(bytes));
            }
        }
    }
    let annotations = [
        ("offending_containers", offending.join(",")),
        ("offending_containers_usage", usages.join(",")),
        ("starved_resource", name.to_string()),
    ];
    for (key, value) in annotations {
        out.annotations.insert(key.to_string(), value);
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

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
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
        let b = blame(Resource::Memory, &p, &usage);
        assert_eq!(
            b.lines,
            "Container hog was using 200Mi, request is 64Mi, has larger consumption of memory. \
             Container none was using 1Mi, request is 0, has larger consumption of memory. "
        );
        assert_eq!(
            b.annotations,
            annotations(&[
                ("offending_containers", "hog,none"),
                ("offending_containers_usage", "200Mi,1Mi"),
                ("starved_resource", "memory"),
            ])
        );
        let pids = blame(Resource::Pids, &p, &usage);
        assert_eq!(pids.lines, "");
        assert_eq!(
            pids.annotations,
            annotations(&[
                ("offending_containers", ""),
                ("offending_containers_usage", ""),
                ("starved_resource", "pids"),
            ])
        );
        assert_eq!(blame(Resource::EphemeralStorage, &p, &usage).lines, "");
    }

    #[test]
    fn sidecars_count_and_a_pod_level_request_names_the_pod() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "resources": {"requests": {"memory": "256Mi"}},
            "containers": [{"name": "app"}],
            "initContainers": [{"name": "side", "restartPolicy": "Always",
                "resources": {"requests": {"memory": "8Mi"}}}]}}));
        let usage = PodUsage {
            memory: Some(300 << 20),
            container_memory: [("side".to_string(), 20 << 20)].into(),
            ..PodUsage::default()
        };
        let b = blame(Resource::Memory, &p, &usage);
        assert_eq!(
            b.lines,
            "Pod p was using 300Mi, request is 256Mi, has larger consumption of memory. \
             Container side was using 20Mi, request is 8Mi, has larger consumption of memory. "
        );
        assert_eq!(b.annotations["offending_pod"], "p");
        assert_eq!(b.annotations["offending_pod_usage"], "300Mi");
        assert_eq!(b.annotations["offending_containers"], "side");
    }
}
