//! Writes pod status through the status subresource, only when it changed. The write is a
//! strategic-merge patch carrying the pod's UID as a precondition (as kubelet does), so it never
//! conflicts with concurrent writers and never lands on a re-created pod of the same name.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, Patch};
use serde_json::json;

use crate::node::register::patch_params;

/// Patches `status` onto `pod`.
pub async fn write(
    client: &kube::Client,
    pod: &Pod,
    status: &PodStatus,
) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({
        "metadata": { "uid": pod.metadata.uid },
        "status": status,
    });
    api.patch_status(name, &patch_params(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
}

/// Deletes the pod object with grace 0 and a UID precondition (the last step of termination).
pub async fn delete(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // Already gone, or a different pod now has the name: nothing of ours to delete.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
