//! downwardAPI volumes (and projections): pod fields (labels, annotations, name, namespace,
//! uid, ...) and container resources written as files, with the same values the environment
//! gets ([`crate::downward`]).

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod};

use super::atomic_writer::{FileProjection, Payload};
use super::configmap_secret::DEFAULT_MODE;
use super::plugin::MountError;
use crate::downward::{field_value, resource_value};
use crate::node_facts::NodeFacts;

/// The payload of a downwardAPI volume's items. Volumes are written before the pod's sandbox
/// has IPs (and the API server allows no `status.podIP` in them), so no pod IPs are passed.
pub fn payload(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    node: &NodeFacts,
) -> Result<Payload, MountError> {
    let mut out = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            field_value(f, pod, node, &[]).map_err(MountError::Failed)?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let spec = pod.spec.as_ref();
            let container = spec
                .into_iter()
                .flat_map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                })
                .find(|c| c.name == name)
                .ok_or_else(|| MountError::Failed(format!("container {name} not found")))?;
            resource_value(r, pod, container, node).map_err(MountError::Failed)?
        } else {
            continue;
        };
        let mode = item.mode.or(default_mode).unwrap_or(DEFAULT_MODE);
        out.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: u32::try_from(mode).unwrap_or(0o644) & 0o777,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_annotations_and_resources_become_files() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"},
                "annotations": {"note": "hi"}},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"memory": "64Mi"}}}]}}))
        .unwrap();
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "note", "fieldRef": {"fieldPath": "metadata.annotations['note']"}, "mode": 0o400},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
        ]))
        .unwrap();
        let node = NodeFacts {
            node_name: "n".into(),
            host_ip: "127.0.0.1".into(),
            allocatable_cpu_millis: 1000,
            allocatable_memory_bytes: 1 << 30,
            absolute_allocatable_cpu_millis: 1000,
            absolute_allocatable_memory_bytes: 1 << 30,
            ..NodeFacts::default()
        };
        let p = payload(&pod, &items, None, &node).unwrap();
        assert_eq!(p["labels"].data, b"a=\"1\"\nb=\"2\"");
        assert_eq!(p["note"].data, b"hi");
        assert_eq!(p["note"].mode, 0o400);
        assert_eq!(p["mem"].data, b"64");
        assert_eq!(p["mem"].mode, 0o644);
    }
}
