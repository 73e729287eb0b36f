//! Test helpers: pods and containers written as the JSON a user would apply. At the crate root
//! so that every module's tests can use them without reaching into another module.

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Map, Value, json};

/// A pod `web` in namespace `ns` with uid `uid-1` and the given spec.
pub fn pod(spec: Value) -> Pod {
    pod_with(
        json!({"name": "web", "namespace": "ns", "uid": "uid-1"}),
        spec,
    )
}

/// A pod with the given metadata and spec.
pub fn pod_with(metadata: Value, spec: Value) -> Pod {
    let pod: Map<String, Value> = [
        ("metadata".to_string(), metadata),
        ("spec".to_string(), spec),
    ]
    .into_iter()
    .collect();
    serde_json::from_value(Value::Object(pod)).unwrap()
}

/// A container from JSON.
pub fn container(c: Value) -> Container {
    serde_json::from_value(c).unwrap()
}

/// A pod with one container given as JSON.
pub fn pod_of(c: Value) -> Pod {
    let spec: Map<String, Value> = [("containers".to_string(), Value::Array(vec![c]))]
        .into_iter()
        .collect();
    pod(Value::Object(spec))
}

/// The first regular container of `pod`.
pub fn first(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}
