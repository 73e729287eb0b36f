//! Local storage limits, checked on every pass before any threshold (kubelet's
//! localStorageEviction): a pod is evicted at once when one of its emptyDir volumes holds more
//! than its `sizeLimit`, when all its local ephemeral storage is above the sum of its
//! containers' `ephemeral-storage` limits, or when one container's writable layer and logs are
//! above that container's limit. The message is kubelet's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod_resources::{self, EPHEMERAL_STORAGE};
use crate::quantity;

/// What a pod's local storage holds, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageUsage {
    /// Each emptyDir volume (disk or memory backed), by volume name.
    pub empty_dirs: BTreeMap<String, u64>,
    /// The memory-backed ones among them (not ephemeral storage).
    pub memory_backed: Vec<String>,
    /// Each container's writable layer plus its logs, by container name.
    pub containers: BTreeMap<String, u64>,
    /// The inodes all of it holds.
    pub inodes: u64,
}

impl StorageUsage {
    /// The pod's ephemeral storage: its disk-backed emptyDirs and its containers.
    pub fn total(&self) -> u64 {
        let dirs = self
            .empty_dirs
            .iter()
            .filter(|(name, _)| !self.memory_backed.contains(name))
            .map(|(_, b)| *b);
        dirs.chain(self.containers.values().copied())
            .fold(0, u64::saturating_add)
    }
}

/// Which limit a pod broke: kubelet's metric label and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `emptydirfs.limit`, `ephemeralpodfs.limit` or `ephemeralcontainerfs.limit`.
    pub signal: &'static str,
    pub message: String,
}

fn limit_of(c: &Container) -> Option<&Quantity> {
    pod_resources::limit(c.resources.as_ref(), EPHEMERAL_STORAGE)
}

/// Whether any container (init containers too) limits its ephemeral storage.
fn containers_limited(spec: &PodSpec) -> bool {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| limit_of(c).is_some())
}

/// Whether `pod` has a local storage limit: only then are its volumes walked on every pass.
pub fn has_limits(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        containers_limited(spec)
            || spec
                .volumes
                .iter()
                .flatten()
                .any(|v| v.empty_dir.as_ref().is_some_and(|e| e.size_limit.is_some()))
    })
}

/// The first limit `pod` breaks with `usage`, in kubelet's order.
pub fn violation(pod: &Pod, usage: &StorageUsage) -> Option<Violation> {
    let spec = pod.spec.as_ref()?;
    for v in spec.volumes.iter().flatten() {
        let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) else {
            continue;
        };
        let Ok(bytes) = quantity::parse_units(&limit.0) else {
            continue;
        };
        if bytes > 0 && usage.empty_dirs.get(&v.name).is_some_and(|u| *u > bytes) {
            return Some(Violation {
                signal: "emptydirfs.limit",
                message: format!(
                    "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                    v.name, limit.0
                ),
            });
        }
    }
    if containers_limited(spec) {
        let total_limit = pod_resources::aggregate(pod, |c| pod_resources::units(limit_of(c)));
        if usage.total() > total_limit {
            return Some(Violation {
                signal: "ephemeralpodfs.limit",
                message: format!(
                    "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                    quantity::format_binary(total_limit)
                ),
            });
        }
    }
    for c in &spec.containers {
        let Some(limit) = limit_of(c) else { continue };
        let bytes = pod_resources::units(Some(limit));
        if bytes > 0 && usage.containers.get(&c.name).is_some_and(|u| *u > bytes) {
            return Some(Violation {
                signal: "ephemeralcontainerfs.limit",
                message: format!(
                    "Container {} exceeded its local ephemeral storage limit {:?}. ",
                    c.name, limit.0
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn usage(dirs: &[(&str, u64)], containers: &[(&str, u64)]) -> StorageUsage {
        StorageUsage {
            empty_dirs: dirs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect(),
            memory_backed: Vec::new(),
            containers: containers
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            inodes: 0,
        }
    }

    #[test]
    fn an_empty_dir_over_its_size_limit_is_kubelets_message() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}},
                        {"name": "free", "emptyDir": {}}]}}));
        assert!(has_limits(&p));
        let plain = pod(json!({"metadata": {"name": "q"}, "spec": {
            "containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "d", "emptyDir": {}}]}}));
        assert!(!has_limits(&plain), "nothing to walk for");
        assert_eq!(violation(&p, &usage(&[("scratch", 1 << 20)], &[])), None);
        assert_eq!(violation(&p, &usage(&[("free", 1 << 40)], &[])), None);
        let v = violation(&p, &usage(&[("scratch", (1 << 20) + 1)], &[])).unwrap();
        assert_eq!(v.signal, "emptydirfs.limit");
        assert_eq!(
            v.message,
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
        );
    }

    #[test]
    fn pod_and_container_limits() {
        let limit = |q: &str| json!({"limits": {"ephemeral-storage": q}});
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "a", "image": "i", "resources": limit("1Mi")},
                           {"name": "b", "image": "i", "resources": limit("2Mi")}],
            "volumes": [{"name": "d", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory"}}]}}));
        let v = violation(&p, &usage(&[("d", 3 << 20)], &[("a", 1)])).unwrap();
        assert_eq!(v.signal, "ephemeralpodfs.limit");
        assert_eq!(
            v.message,
            "Pod ephemeral local storage usage exceeds the total limit of containers 3Mi. "
        );
        let v = violation(&p, &usage(&[], &[("a", (1 << 20) + 1)])).unwrap();
        assert_eq!(v.signal, "ephemeralcontainerfs.limit");
        assert_eq!(
            v.message,
            "Container a exceeded its local ephemeral storage limit \"1Mi\". "
        );
        let mut memory = usage(&[("m", 10 << 20)], &[]);
        memory.memory_backed.push("m".to_string());
        assert_eq!(
            violation(&p, &memory),
            None,
            "tmpfs is not ephemeral storage"
        );
    }
}
