//! Finds a pod's sandbox and containers in the runtime by the labels the agent put on them,
//! restricted to this node's sandboxes (agents sharing one runtime never see each other's).

use std::collections::HashMap;

use cri_client::CriClient;
use cri_client::api::{Container, ContainerFilter, PodSandbox, PodSandboxFilter, PodSandboxState};

use super::ServerError;
use crate::pods::container::labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE};
use crate::runtime::NODE_LABEL;

/// The pod's sandboxes on this node, newest first.
pub async fn sandboxes(
    cri: &CriClient,
    node: &str,
    namespace: &str,
    pod: &str,
) -> Result<Vec<PodSandbox>, ServerError> {
    let selector = HashMap::from([
        (NODE_LABEL.to_string(), node.to_string()),
        (POD_NAMESPACE.to_string(), namespace.to_string()),
        (POD_NAME.to_string(), pod.to_string()),
    ]);
    let mut found = cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await
        .map_err(ServerError::runtime)?;
    found.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    if found.is_empty() {
        return Err(ServerError::NotFound(format!(
            "pod \"{pod}\" in namespace \"{namespace}\" is not running on this node"
        )));
    }
    Ok(found)
}

/// The pod's ready sandbox (for port-forward).
pub async fn ready_sandbox(
    cri: &CriClient,
    node: &str,
    namespace: &str,
    pod: &str,
) -> Result<PodSandbox, ServerError> {
    sandboxes(cri, node, namespace, pod)
        .await?
        .into_iter()
        .find(|s| s.state == PodSandboxState::SandboxReady as i32)
        .ok_or_else(|| {
            ServerError::NotFound(format!(
                "pod \"{pod}\" in namespace \"{namespace}\" has no running sandbox"
            ))
        })
}

/// Every instance of the named container in the pod, newest first (the first is the current
/// one, the second the previous one).
pub async fn container_instances(
    cri: &CriClient,
    node: &str,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<Container>, ServerError> {
    let sandboxes = sandboxes(cri, node, namespace, pod).await?;
    let selector = HashMap::from([
        (POD_NAMESPACE.to_string(), namespace.to_string()),
        (POD_NAME.to_string(), pod.to_string()),
        (CONTAINER_NAME.to_string(), container.to_string()),
    ]);
    let mut found: Vec<Container> = cri
        .list_containers(Some(ContainerFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await
        .map_err(ServerError::runtime)?
        .into_iter()
        .filter(|c| sandboxes.iter().any(|s| s.id == c.pod_sandbox_id))
        .collect();
    found.sort_by_key(|x| std::cmp::Reverse(x.created_at));
    if found.is_empty() {
        return Err(ServerError::NotFound(format!(
            "container \"{container}\" in pod \"{pod}\" is not available"
        )));
    }
    Ok(found)
}
