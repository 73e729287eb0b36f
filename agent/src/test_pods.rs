//! Test helpers: pods and containers written as the JSON a user would apply. At the crate root
//! so that every module's tests can use them without reaching into another module.

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

/// A pod `web` in namespace `ns` with uid `uid-1` and the given spec.
pub fn pod(spec: Value) -> Pod {
    pod_with(
        json!({"name": "web", "namespace": "ns", "uid": "uid-1"}),
        spec,
    )
}

/// A pod with the given metadata and spec.
pub fn pod_with(metadata: Value, spec: Value) -> Pod {
    serde_json::from_value(json!({"metadata": metadata, "spec": spec})).unwrap()
}

/// A container from JSON.
pub fn container(c: Value) -> Container {
    serde_json::from_value(c).unwrap()
}

/// A pod with one container given as JSON.
pub fn pod_of(c: Value) -> Pod {
    pod(json!({"containers": [c]}))
}

/// The first regular container of `pod`.
pub fn first(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}
