//! The messages of kubelet's resize events (ResizeStarted, ResizeDeferred, ResizeInfeasible,
//! ResizeCompleted, ResizeError): a prefix, then the resources of the pod's containers as JSON
//! with the generation and, for failures, the error.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use serde::Serialize;

#[derive(Serialize)]
struct Named<'a> {
    name: &'a str,
    resources: ResourceRequirements,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<Named<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    containers: Vec<Named<'a>>,
    generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn named(cs: Option<&Vec<Container>>) -> Vec<Named<'_>> {
    cs.into_iter()
        .flatten()
        .map(|c| Named {
            name: &c.name,
            resources: c.resources.clone().unwrap_or_default(),
        })
        .collect()
}

/// `PREFIX: {"initContainers":[...],"containers":[...],"generation":N,"error":"..."}` for the
/// resources `pod` shows.
pub fn message(prefix: &str, pod: &Pod, generation: Option<i64>, error: Option<&str>) -> String {
    let spec = pod.spec.as_ref();
    let body = Body {
        init_containers: named(spec.and_then(|s| s.init_containers.as_ref())),
        containers: named(spec.map(|s| &s.containers)),
        generation: generation.unwrap_or(0),
        error,
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    format!("{prefix}: {json}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod;
    use serde_json::json;

    #[test]
    fn messages_name_each_containers_resources() {
        let p = pod(json!({"containers": [
            {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "b", "image": "i"}
        ]}));
        assert_eq!(
            message("Pod resize started", &p, Some(2), None),
            r#"Pod resize started: {"containers":[{"name":"a","resources":{"requests":{"cpu":"100m"}}},{"name":"b","resources":{}}],"generation":2}"#
        );
        assert!(
            message("Pod resize Deferred", &p, Some(3), Some("no room"))
                .ends_with(r#""generation":3,"error":"no room"}"#)
        );
    }
}
