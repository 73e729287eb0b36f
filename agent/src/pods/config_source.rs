//! Where a pod came from, as kubelet marks it: the `kubernetes.io/config.*` annotations, and
//! kubelet's `IsStaticPod`, `IsMirrorPod` and `IsCriticalPod` on them. A leaf, so that any part
//! of the pod machinery can ask without depending on the static pod source.

use k8s_openapi::api::core::v1::Pod;

/// Where a pod came from: "file" for static pods (kubelet also has "http" and "api").
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// The static pod's UID (the hash of its manifest).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// When the agent first saw the pod (RFC 3339 with nanoseconds).
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// On mirror pods: the hash of the static pod they mirror.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
/// The config source of manifest files.
pub const FILE_SOURCE: &str = "file";

/// The value of annotation `key` on `pod`.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// kubelet's IsStaticPod: a pod of a non-API source (a manifest file).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, CONFIG_SOURCE).is_some_and(|s| s != "api")
}

/// kubelet's IsMirrorPod.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR).is_some()
}

/// kubelet's SystemCriticalPriority: pods at or above it are critical.
pub use crate::config::shutdown::SYSTEM_CRITICAL_PRIORITY;

/// kubelet's IsCriticalPod: static and mirror pods, and pods at system-critical priority or
/// above. They are admitted under pressure and never evicted.
pub fn is_critical(pod: &Pod) -> bool {
    is_static(pod)
        || is_mirror(pod)
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn static_mirror_and_system_critical_pods_are_critical() {
        let plain = json!({"metadata": {"name": "p"}, "spec": {"containers": []}});
        assert!(!is_critical(&pod(plain)));
        assert!(is_critical(&pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "priority": SYSTEM_CRITICAL_PRIORITY}}))));
        assert!(is_critical(&pod(json!({"metadata": {"name": "s",
            "annotations": {CONFIG_SOURCE: "file"}}, "spec": {"containers": []}}))));
        assert!(is_critical(&pod(json!({"metadata": {"name": "m",
            "annotations": {CONFIG_MIRROR: "abc"}}, "spec": {"containers": []}}))));
    }
}
