//! Registration: create the Node, or adopt an existing one of the same name, retrying until the
//! API server answers.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::RetryBackoff;

/// Patch parameters naming the agent as the field manager of what it writes.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some("minikubelet".to_string()),
        ..PatchParams::default()
    }
}

/// Creates `desired`, or adopts the existing Node of that name by merging the agent's labels and
/// annotations into it (taints are only set at creation, as kubelet does: NodeRestriction forbids
/// a node to change its own taints). Returns the Node as the API server has it, or None when
/// cancelled first.
pub async fn register_or_adopt(
    api: &Api<Node>,
    desired: &Node,
    cancel: &CancellationToken,
) -> Option<Node> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let mut backoff = RetryBackoff::new(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(7),
    );
    loop {
        match attempt(api, desired, &name).await {
            Ok(node) => return Some(node),
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(node = %name, error = %e, retry_in = ?delay, "node registration failed");
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

async fn attempt(api: &Api<Node>, desired: &Node, name: &str) -> Result<Node, kube::Error> {
    match api.create(&PostParams::default(), desired).await {
        Ok(node) => {
            info!(node = %name, "registered node");
            Ok(node)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({
                "metadata": {
                    "labels": desired.metadata.labels,
                    "annotations": desired.metadata.annotations,
                }
            });
            let node = api
                .patch(name, &patch_params(), &Patch::Merge(&patch))
                .await?;
            info!(node = %name, "adopted existing node");
            Ok(node)
        }
        Err(e) => Err(e),
    }
}
