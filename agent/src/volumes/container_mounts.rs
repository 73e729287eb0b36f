//! A container's CRI mounts from its volumeMounts: the volume's host path (or a subPath /
//! subPathExpr bound through [`super::subpath`]) or, for an image volume, the pulled image;
//! read-only, and the mount propagation.
//! Volumes whose contents the agent writes from the API (configMap, secret, downwardAPI,
//! projected) are always mounted read-only, whatever the pod asks, as kubelet does: a container
//! must never be able to change what the agent later rewrites as root.

use std::collections::HashMap;
use std::path::PathBuf;

use cri_client::api;
use k8s_openapi::api::core::v1::{Container, Pod, VolumeMount};

use super::layout::Layout;
use super::plugin::Plugin;
use super::subpath;
use crate::expand;

fn propagation(mode: Option<&str>) -> i32 {
    match mode {
        Some("HostToContainer") => api::MountPropagation::PropagationHostToContainer as i32,
        Some("Bidirectional") => api::MountPropagation::PropagationBidirectional as i32,
        _ => api::MountPropagation::PropagationPrivate as i32,
    }
}

/// Where a container's volumes come from.
pub struct MountSources<'a> {
    /// The pod's ready volumes on the host, by name (from the volume manager).
    pub paths: &'a HashMap<String, PathBuf>,
    /// The pulled images of its image volumes, by name: the runtime mounts these itself.
    pub images: &'a HashMap<String, api::ImageSpec>,
}

/// An image volume's mount: no host path, the image named instead, always read-only (the CRI
/// requires it of image mounts). A subPath would go in the CRI's image_sub_path (CRI 1.33),
/// which the agent's CRI bindings do not have: such a mount is refused, never widened to the
/// whole image.
fn image_mount(
    m: &VolumeMount,
    c: &Container,
    image: &api::ImageSpec,
    sub: &str,
) -> Result<api::Mount, String> {
    if !sub.is_empty() {
        return Err(format!(
            "failed to prepare subPath for volumeMount {:?} of container {:?}: a subPath of an image volume is not supported by this node",
            m.name, c.name
        ));
    }
    Ok(api::Mount {
        container_path: m.mount_path.clone(),
        readonly: true,
        image: Some(image.clone()),
        propagation: propagation(m.mount_propagation.as_deref()),
        ..Default::default()
    })
}

/// The mounts of `c` from `sources`; `env` is the container's resolved environment (for
/// subPathExpr). Errors are kubelet's CreateContainerConfigError texts.
pub fn container_mounts(
    layout: &Layout,
    pod: &Pod,
    c: &Container,
    sources: &MountSources<'_>,
    env: &[(String, String)],
) -> Result<Vec<api::Mount>, String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let lookup = expand::lookup_in(env);
    let agent_written = |name: &str| {
        pod.spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .find(|v| v.name == name)
            .is_some_and(|v| Plugin::for_volume(v).refreshes())
    };
    let mut out = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => s.clone(),
            (_, Some(e)) if !e.is_empty() => expand::expand(e, &lookup),
            _ => String::new(),
        };
        if let Some(image) = sources.images.get(&m.name) {
            out.push(image_mount(m, c, image, &sub)?);
            continue;
        }
        let Some(host) = sources.paths.get(&m.name) else {
            return Err(format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, c.name
            ));
        };
        let host_path = if sub.is_empty() {
            host.clone()
        } else {
            let target = layout.subpath_target(uid, &m.name, &c.name, i);
            subpath::bind(host, &sub, &target).map_err(|e| {
                tracing::warn!(volume = %m.name, container = %c.name, error = %e, "subPath refused");
                format!(
                    "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                    m.name, c.name
                )
            })?
        };
        out.push(api::Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false) || agent_written(&m.name),
            propagation: propagation(m.mount_propagation.as_deref()),
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_mounts_become_cri_mounts() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "data", "mountPath": "/data", "readOnly": true},
                {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
                {"name": "cfg", "mountPath": "/cfg", "readOnly": false},
                {"name": "tok", "mountPath": "/tok"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "host", "hostPath": {"path": "/srv"}},
                {"name": "cfg", "configMap": {"name": "c"}},
                {"name": "tok", "projected": {"sources": []}}]}}))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let paths = HashMap::from([
            (
                "data".to_string(),
                PathBuf::from("/r/pods/u/volumes/kubernetes.io~empty-dir/data"),
            ),
            ("host".to_string(), PathBuf::from("/srv")),
            ("cfg".to_string(), PathBuf::from("/r/cfg")),
            ("tok".to_string(), PathBuf::from("/r/tok")),
        ]);
        let layout = Layout::new(std::path::Path::new("/r"));
        let images = HashMap::new();
        let sources = MountSources {
            paths: &paths,
            images: &images,
        };
        let m = container_mounts(&layout, &pod, c, &sources, &[]).unwrap();
        assert_eq!(m[0].container_path, "/data");
        assert!(m[0].readonly);
        assert_eq!(m[1].host_path, "/srv");
        assert!(!m[1].readonly, "a hostPath is writable unless asked");
        assert!(
            m[2].readonly,
            "configMap volumes are read-only even when readOnly is false"
        );
        assert!(m[3].readonly, "projected volumes are read-only");
        assert_eq!(
            m[1].propagation,
            api::MountPropagation::PropagationHostToContainer as i32
        );
        let none = HashMap::new();
        let sources = MountSources {
            paths: &none,
            images: &images,
        };
        let e = container_mounts(&layout, &pod, c, &sources, &[]).unwrap_err();
        assert!(e.contains("cannot find volume \"data\""), "{e}");
    }

    #[test]
    fn an_image_volume_is_the_image_read_only_and_its_sub_path_is_refused() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "i", "volumeMounts": [
                {"name": "tools", "mountPath": "/tools", "readOnly": false},
                {"name": "tools", "mountPath": "/bin-only", "subPath": "bin"}]}],
            "volumes": [{"name": "tools", "image": {"reference": "r/tools:1"}}]}}))
        .unwrap();
        let mut c = pod.spec.as_ref().unwrap().containers[0].clone();
        let images = HashMap::from([(
            "tools".to_string(),
            api::ImageSpec {
                image: "sha256:abc".into(),
                ..Default::default()
            },
        )]);
        let paths = HashMap::new();
        let sources = MountSources {
            paths: &paths,
            images: &images,
        };
        let layout = Layout::new(std::path::Path::new("/r"));
        let e = container_mounts(&layout, &pod, &c, &sources, &[]).unwrap_err();
        assert!(e.contains("a subPath of an image volume"), "{e}");
        c.volume_mounts.as_mut().unwrap().truncate(1);
        let m = container_mounts(&layout, &pod, &c, &sources, &[]).unwrap();
        assert_eq!(m[0].container_path, "/tools");
        assert!(m[0].host_path.is_empty());
        assert!(
            m[0].readonly,
            "image mounts are read-only whatever the pod asks"
        );
        assert_eq!(m[0].image.as_ref().unwrap().image, "sha256:abc");
    }
}
