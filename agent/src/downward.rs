//! Downward API values: `fieldRef` (pod fields) and `resourceFieldRef` (container requests and
//! limits), resolved in one place for both their readers, environment variables
//! ([`crate::pods::container::env`]) and downwardAPI/projected volumes
//! ([`crate::volumes::downward`]), so that a file and a variable naming the same field always
//! hold the same value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::node_facts::NodeFacts;
use crate::pod_resources::{self, CPU, EPHEMERAL_STORAGE, HUGEPAGES_PREFIX, MEMORY, NANO};

/// The value of a `fieldRef`, or kubelet's message for a path it does not support. `pod_ips`
/// are the pod's IPs, preferred family first (`status.podIP` is the first; empty before the
/// sandbox has them).
pub(crate) fn field_value(
    sel: &ObjectFieldSelector,
    pod: &Pod,
    node: &NodeFacts,
    pod_ips: &[String],
) -> Result<String, String> {
    match sel.api_version.as_deref() {
        None | Some("" | "v1") => {}
        Some(other) => return Err(format!("unsupported pod version: {other}")),
    }
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let path = sel.field_path.as_str();
    let owned = |s: Option<&String>| s.cloned().unwrap_or_default();
    let value = match path {
        "metadata.name" => owned(meta.name.as_ref()),
        "metadata.namespace" => owned(meta.namespace.as_ref()),
        "metadata.uid" => owned(meta.uid.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| node.node_name.clone()),
        "spec.serviceAccountName" => owned(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => match subscripted(path) {
            Some(("metadata.labels", key)) => owned(meta.labels.as_ref().and_then(|m| m.get(key))),
            Some(("metadata.annotations", key)) => {
                owned(meta.annotations.as_ref().and_then(|m| m.get(key)))
            }
            _ => return Err(format!("field label not supported: {path}")),
        },
    };
    Ok(value)
}

/// Splits `metadata.labels['key']` into its path and key.
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    (!base.is_empty() && !key.is_empty()).then_some((base, key))
}

/// A whole label or annotation map, as the downward API renders it: `key="value"` lines,
/// sorted by key, values quoted.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Double-quotes `s` with Go-style escapes for quotes, backslashes and control characters.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let code = u32::from(c);
                // Writing to a String cannot fail.
                let _ = if code < 0x100 {
                    write!(out, "\\x{code:02x}")
                } else {
                    write!(out, "\\u{code:04x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef`: the amount divided by the divisor (default 1), rounded
/// up. Limits that are not set default to the pod-level limit, else to the node's allocatable
/// (cpu, memory), as kubelet does before it reads them.
pub(crate) fn resource_value(
    sel: &ResourceFieldSelector,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
) -> Result<String, String> {
    // A named container is looked up in the pod; only regular containers get defaulted limits
    // there, while the container being started always does.
    let (target, default_limits) = match sel.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => (container, true),
        Some(name) => {
            if let Some(c) = pod_resources::containers(pod)
                .iter()
                .find(|c| c.name == name)
            {
                (c, true)
            } else if let Some(c) = pod_resources::init_containers(pod)
                .iter()
                .find(|c| c.name == name)
            {
                (c, false)
            } else {
                return Err(format!("container {name} not found"));
            }
        }
    };

    let unsupported = || format!("unsupported container resource : {}", sel.resource);
    let (kind, name) = sel.resource.split_once('.').ok_or_else(unsupported)?;
    if !matches!(name, CPU | MEMORY | EPHEMERAL_STORAGE) && !name.starts_with(HUGEPAGES_PREFIX) {
        return Err(unsupported());
    }
    let r = target.resources.as_ref();
    let amount = match kind {
        "requests" => parsed(pod_resources::request(r, name))?,
        "limits" => {
            let written = parsed(pod_resources::limit(r, name))?;
            if written == 0 && default_limits {
                default_limit(pod, name, node)?
            } else {
                written
            }
        }
        _ => return Err(unsupported()),
    };
    let divisor = match parsed(sel.divisor.as_ref())? {
        0 => NANO,
        d => d,
    };
    if amount == 0 {
        return Ok("0".to_string());
    }
    let units = amount.div_ceil(divisor);
    Ok(i64::try_from(units).unwrap_or(i64::MAX).to_string())
}

/// The limit a container without one gets: the pod-level limit when set, else the node's
/// allocatable; 0 when neither is known.
fn default_limit(pod: &Pod, name: &str, node: &NodeFacts) -> Result<u128, String> {
    let allocatable = match name {
        CPU => u128::from(node.allocatable_cpu_millis) * (NANO / 1000),
        MEMORY => u128::from(node.allocatable_memory_bytes) * NANO,
        _ => 0,
    };
    if allocatable == 0 {
        return Ok(0);
    }
    let pod_level = parsed(pod_resources::limit(
        pod_resources::pod_resources(pod),
        name,
    ))?;
    Ok(if pod_level > 0 {
        pod_level
    } else {
        allocatable
    })
}

fn parsed(q: Option<&Quantity>) -> Result<u128, String> {
    match q {
        None => Ok(0),
        Some(q) => pod_resources::nanos(q).ok_or_else(|| format!("invalid quantity {:?}", q.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{first, pod, pod_with};
    use serde_json::{Value, json};

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "node-a".into(),
            host_ip: "192.0.2.10".into(),
            allocatable_cpu_millis: 4000,
            allocatable_memory_bytes: 8 << 30,
            absolute_allocatable_cpu_millis: 4000,
            absolute_allocatable_memory_bytes: 8 << 30,
            ..NodeFacts::default()
        }
    }

    fn pod_ips() -> Vec<String> {
        vec!["10.1.0.5".into(), "fd00::5".into()]
    }

    fn field(p: &Pod, path: &str) -> Result<String, String> {
        let sel = ObjectFieldSelector {
            api_version: Some("v1".into()),
            field_path: path.into(),
        };
        field_value(&sel, p, &node(), &pod_ips())
    }

    fn meta_pod() -> Pod {
        pod_with(
            json!({
                "name": "web", "namespace": "ns", "uid": "uid-1",
                "labels": {"app": "web", "tier": "front\"end"},
                "annotations": {"note": "line1\nline2"}
            }),
            json!({"nodeName": "node-a", "serviceAccountName": "sa", "containers": [{"name": "c"}]}),
        )
    }

    #[test]
    fn pod_fields() {
        let p = meta_pod();
        assert_eq!(field(&p, "metadata.name").unwrap(), "web");
        assert_eq!(field(&p, "metadata.namespace").unwrap(), "ns");
        assert_eq!(field(&p, "metadata.uid").unwrap(), "uid-1");
        assert_eq!(field(&p, "spec.nodeName").unwrap(), "node-a");
        assert_eq!(field(&p, "spec.serviceAccountName").unwrap(), "sa");
        assert_eq!(field(&p, "status.hostIP").unwrap(), "192.0.2.10");
        assert_eq!(field(&p, "status.hostIPs").unwrap(), "192.0.2.10");
        assert_eq!(field(&p, "status.podIP").unwrap(), "10.1.0.5");
        assert_eq!(field(&p, "status.podIPs").unwrap(), "10.1.0.5,fd00::5");
    }

    #[test]
    fn labels_and_annotations() {
        let p = meta_pod();
        assert_eq!(field(&p, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(field(&p, "metadata.labels['missing']").unwrap(), "");
        assert_eq!(
            field(&p, "metadata.annotations['note']").unwrap(),
            "line1\nline2"
        );
        assert_eq!(
            field(&p, "metadata.labels").unwrap(),
            "app=\"web\"\ntier=\"front\\\"end\""
        );
        assert_eq!(
            field(&p, "metadata.annotations").unwrap(),
            "note=\"line1\\nline2\""
        );
    }

    #[test]
    fn quoting_escapes_like_go() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("\u{1}\t\u{85}é"), "\"\\x01\\t\\x85é\"");
    }

    #[test]
    fn unsupported_paths_and_versions_fail() {
        let p = meta_pod();
        assert_eq!(
            field(&p, "spec.restartPolicy").unwrap_err(),
            "field label not supported: spec.restartPolicy"
        );
        assert!(field(&p, "metadata.labels[app]").is_err());
        let sel = ObjectFieldSelector {
            api_version: Some("v2".into()),
            field_path: "metadata.name".into(),
        };
        assert_eq!(
            field_value(&sel, &p, &node(), &pod_ips()).unwrap_err(),
            "unsupported pod version: v2"
        );
    }

    #[test]
    fn pod_ip_is_empty_before_networking() {
        let sel = ObjectFieldSelector {
            api_version: None,
            field_path: "status.podIP".into(),
        };
        assert_eq!(field_value(&sel, &meta_pod(), &node(), &[]).unwrap(), "");
    }

    fn resource(p: &Pod, sel: Value) -> Result<String, String> {
        let sel: ResourceFieldSelector = serde_json::from_value(sel).unwrap();
        resource_value(&sel, p, first(p), &node())
    }

    #[test]
    fn cpu_rounds_up_to_whole_divisor_units() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {
            "requests": {"cpu": "250m"}, "limits": {"cpu": "1500m"}
        }}]}));
        assert_eq!(
            resource(&p, json!({"resource": "limits.cpu"})).unwrap(),
            "2"
        );
        assert_eq!(
            resource(&p, json!({"resource": "limits.cpu", "divisor": "1m"})).unwrap(),
            "1500"
        );
        assert_eq!(
            resource(&p, json!({"resource": "requests.cpu"})).unwrap(),
            "1"
        );
        assert_eq!(
            resource(&p, json!({"resource": "requests.cpu", "divisor": "1m"})).unwrap(),
            "250"
        );
    }

    #[test]
    fn memory_with_divisors() {
        let p = pod(json!({"containers": [{"name": "c", "resources": {
            "requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi", "ephemeral-storage": "1Gi"}
        }}]}));
        assert_eq!(
            resource(&p, json!({"resource": "limits.memory"})).unwrap(),
            (128u64 << 20).to_string()
        );
        assert_eq!(
            resource(&p, json!({"resource": "limits.memory", "divisor": "1Mi"})).unwrap(),
            "128"
        );
        assert_eq!(
            resource(&p, json!({"resource": "requests.memory", "divisor": "1M"})).unwrap(),
            "68"
        );
        assert_eq!(
            resource(
                &p,
                json!({"resource": "limits.ephemeral-storage", "divisor": "1Gi"})
            )
            .unwrap(),
            "1"
        );
        assert_eq!(
            resource(&p, json!({"resource": "requests.ephemeral-storage"})).unwrap(),
            "1073741824"
        );
    }

    #[test]
    fn unset_limits_default_to_node_allocatable() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            resource(&p, json!({"resource": "limits.cpu"})).unwrap(),
            "4"
        );
        assert_eq!(
            resource(&p, json!({"resource": "limits.memory", "divisor": "1Gi"})).unwrap(),
            "8"
        );
        assert_eq!(
            resource(&p, json!({"resource": "requests.cpu"})).unwrap(),
            "0"
        );
        assert_eq!(
            resource(&p, json!({"resource": "limits.ephemeral-storage"})).unwrap(),
            "0"
        );
    }

    #[test]
    fn unset_limits_default_to_pod_level_limits_first() {
        let p = pod(json!({
            "resources": {"limits": {"cpu": "2"}},
            "containers": [{"name": "c"}]
        }));
        assert_eq!(
            resource(&p, json!({"resource": "limits.cpu"})).unwrap(),
            "2"
        );
        assert_eq!(
            resource(&p, json!({"resource": "limits.memory", "divisor": "1Gi"})).unwrap(),
            "8"
        );
    }

    #[test]
    fn named_containers_and_hugepages() {
        let p = pod(json!({
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "c"},
                {"name": "other", "resources": {"limits": {"cpu": "3", "hugepages-2Mi": "4Mi"}}}
            ]
        }));
        let sel = |s: Value| resource(&p, s);
        assert_eq!(
            sel(json!({"resource": "limits.cpu", "containerName": "other"})).unwrap(),
            "3"
        );
        assert_eq!(
            sel(json!({"resource": "limits.hugepages-2Mi", "containerName": "other", "divisor": "1Mi"})).unwrap(),
            "4"
        );
        assert_eq!(
            sel(json!({"resource": "limits.cpu", "containerName": "init"})).unwrap(),
            "0"
        );
        assert_eq!(
            sel(json!({"resource": "limits.cpu", "containerName": "nope"})).unwrap_err(),
            "container nope not found"
        );
    }

    #[test]
    fn unsupported_resources_fail() {
        let p = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            resource(&p, json!({"resource": "limits.gpu"})).unwrap_err(),
            "unsupported container resource : limits.gpu"
        );
        assert!(resource(&p, json!({"resource": "cpu"})).is_err());
    }
}
