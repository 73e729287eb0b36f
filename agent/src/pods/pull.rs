//! Pulling an image for a pod with kubelet's events: `Pulling`, then `Pulled` ("Successfully
//! pulled ..." or "... already present on machine"), or the failure's events (`Failed`,
//! `BackOff`, `ErrImageNeverPull`, `InspectFailed`) and its waiting reason. Used for a
//! container's own image and for the pod's image volumes.

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use tracing::warn;

use super::context::PodContext;
use super::images::{Ensured, Wanted};
use super::status::Waiting;

/// Pull secrets named by the pod; missing ones are skipped (kubelet warns and goes on).
pub async fn pull_secrets(ctx: &PodContext, pod: &Pod) -> Vec<Secret> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let Ok(client) = ctx.api.client() else {
        // Standalone: only static pods, which may not reference secrets.
        return Vec::new();
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for r in pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.as_ref())
        .into_iter()
        .flatten()
    {
        match api.get_opt(&r.name).await {
            Ok(Some(s)) => out.push(s),
            Ok(None) => warn!(secret = %r.name, "image pull secret not found; pulling without it"),
            Err(e) => warn!(secret = %r.name, error = %e, "cannot read image pull secret"),
        }
    }
    out
}

/// Makes `wanted` present for `pod`, with kubelet's events on the pod (on its container
/// `field` when the image is a container's; on the pod itself for an image volume, as kubelet's
/// puller is given the pod's reference then). A failure is returned as the waiting reason.
pub async fn pull(
    ctx: &PodContext,
    pod: &Pod,
    field: Option<&str>,
    wanted: Wanted<'_>,
    secrets: &[Secret],
) -> Result<Ensured, Waiting> {
    let events = &ctx.events;
    let image = wanted.image;
    let ensured = ctx
        .images
        .ensure(ctx.cri.as_ref(), pod, wanted, secrets, |msg| {
            events.normal(pod, field, "Pulling", msg);
        })
        .await;
    let ensured = match ensured {
        Ok(e) => e,
        Err(e) => {
            let reason = e.reason();
            let msg = e.to_string();
            match reason {
                "ImagePullBackOff" => events.normal(
                    pod,
                    field,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                ),
                "ErrImageNeverPull" => events.warning(pod, field, "ErrImageNeverPull", msg.clone()),
                "InvalidImageName" => events.warning(pod, field, "InspectFailed", msg.clone()),
                _ => {
                    events.warning(pod, field, "Failed", msg.clone());
                    events.warning(pod, field, "Failed", format!("Error: {reason}"));
                }
            }
            return Err(Waiting {
                reason: reason.to_string(),
                message: msg,
            });
        }
    };
    let pulled = match ensured.pulled_in {
        Some(d) => format!(
            "Successfully pulled image \"{image}\" in {}ms",
            d.as_millis()
        ),
        None => format!("Container image \"{image}\" already present on machine"),
    };
    events.normal(pod, field, "Pulled", pulled);
    Ok(ensured)
}
