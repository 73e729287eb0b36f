//! Image volumes (`volumes[].image`, beta and on by default in Kubernetes 1.35): an OCI image
//! mounted read-only into the containers that name it. As kubelet does, the agent only pulls the
//! image (with the volume's pullPolicy and the pod's pull secrets, through the same pull backoff
//! as container images) and hands the runtime a mount that names the pulled image instead of a
//! host path; the runtime (containerd 2.1 and later) mounts it. A pull that fails holds back
//! the containers that mount the volume, with the pull's waiting reason (ErrImagePull,
//! ImagePullBackOff) and kubelet's `Failed` event on each; other containers start. Each image
//! is pulled once per sync, however many of the pod's containers mount it ([`Pulled`]), as
//! kubelet pulls a pod's image volumes once before it starts containers.

use std::collections::HashMap;
use std::sync::Mutex;

use cri_client::api;
use k8s_openapi::api::core::v1::{Container, ImageVolumeSource, Pod, Secret};

use super::context::PodContext;
use super::images::Wanted;
use super::pull::pull;
use super::status::Waiting;

/// The pulled image of each image volume a container mounts, by volume name: what its CRI
/// mount names.
pub type ImageVolumes = HashMap<String, api::ImageSpec>;

/// The image volumes pulled during one sync, by volume name: the image, or why not.
#[derive(Debug, Default)]
pub struct Pulled(Mutex<HashMap<String, Result<api::ImageSpec, Waiting>>>);

impl Pulled {
    fn get(&self, name: &str) -> Option<Result<api::ImageSpec, Waiting>> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(name).cloned()
    }

    fn put(&self, name: &str, result: Result<api::ImageSpec, Waiting>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(name.to_string(), result);
    }
}

/// The pod's image volumes that `c` mounts, in the pod's order.
fn mounted<'a>(pod: &'a Pod, c: &'a Container) -> Vec<(&'a str, &'a ImageVolumeSource)> {
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| Some((v.name.as_str(), v.image.as_ref()?)))
        .filter(|(name, _)| mounts.iter().any(|m| m.name == *name))
        .collect()
}

/// The CRI image of a pulled volume, as kubelet sends it: the resolved reference, the one the
/// user wrote, and the pod's annotations (no runtime handler: kubelet sends one only behind the
/// alpha RuntimeClassInImageCriApi gate).
pub fn image_spec(pod: &Pod, source: &ImageVolumeSource, image_ref: String) -> api::ImageSpec {
    api::ImageSpec {
        image: image_ref,
        user_specified_image: source.reference.clone().unwrap_or_default(),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..api::ImageSpec::default()
    }
}

/// Pulls the images of the volumes `c` mounts, those this sync has not pulled yet
/// (`pulled`). Every one is tried; when any failed, the last failure is `c`'s waiting reason.
pub async fn ensure(
    ctx: &PodContext,
    pod: &Pod,
    c: &Container,
    secrets: &[Secret],
    pulled: &Pulled,
) -> Result<ImageVolumes, Waiting> {
    let mut out = ImageVolumes::new();
    let mut failure = None;
    for (name, source) in mounted(pod, c) {
        let result = if let Some(r) = pulled.get(name) {
            r
        } else {
            let r = pull(ctx, pod, None, Wanted::volume(source), secrets)
                .await
                .map(|ensured| image_spec(pod, source, ensured.image_ref));
            pulled.put(name, r.clone());
            r
        };
        match result {
            Ok(spec) => {
                out.insert(name.to_string(), spec);
            }
            Err(waiting) => {
                let msg = format!("Error: {}", waiting.message);
                ctx.events.warning(pod, Some(&c.name), "Failed", msg);
                failure = Some(waiting);
            }
        }
    }
    failure.map_or(Ok(out), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u", "annotations": {"a": "b"}},
            "spec": {
                "containers": [
                    {"name": "uses", "image": "i", "volumeMounts": [
                        {"name": "tools", "mountPath": "/tools"},
                        {"name": "scratch", "mountPath": "/scratch"}]},
                    {"name": "other", "image": "i"}],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "tools", "image": {"reference": "127.0.0.1:5000/tools:1", "pullPolicy": "IfNotPresent"}},
                    {"name": "unused", "image": {"reference": "127.0.0.1:5000/unused:1"}}]}}))
        .unwrap()
    }

    #[test]
    fn only_the_image_volumes_a_container_mounts_are_pulled_for_it() {
        let pod = pod();
        let spec = pod.spec.as_ref().unwrap();
        let uses = mounted(&pod, &spec.containers[0]);
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].0, "tools");
        assert_eq!(
            uses[0].1.reference.as_deref(),
            Some("127.0.0.1:5000/tools:1")
        );
        assert!(mounted(&pod, &spec.containers[1]).is_empty());
    }

    #[test]
    fn the_cri_image_names_the_pulled_image_and_carries_the_pod_annotations() {
        let pod = pod();
        let source = pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[1]
            .image
            .clone()
            .unwrap();
        let spec = image_spec(&pod, &source, "sha256:abc".into());
        assert_eq!(spec.image, "sha256:abc");
        assert_eq!(spec.user_specified_image, "127.0.0.1:5000/tools:1");
        assert_eq!(spec.annotations.get("a").map(String::as_str), Some("b"));
        assert!(spec.runtime_handler.is_empty());
    }
}
