//! Mirror pods: the API server's copy of a static pod, so the cluster sees what the node runs.
//! As kubelet's mirror client builds it (pkg/kubelet/pod/mirror_client.go): the static pod
//! with its annotations plus `kubernetes.io/config.mirror` = the static pod's hash, and one
//! ownerReference to the Node (controller, no blockOwnerDeletion), which is what
//! NodeRestriction requires of a mirror pod a node creates. A pod is a mirror pod when it has
//! that annotation (kubelet's `IsMirrorPod`): the API watch never runs one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{CONFIG_HASH, CONFIG_MIRROR, annotation};

pub use crate::pods::config_source::is_mirror as is_mirror_pod;

/// kubelet's IsMirrorPodOf: same name and namespace, and the mirror's hash is the static
/// pod's.
pub fn is_mirror_of(mirror: &Pod, static_pod: &Pod) -> bool {
    let (m, s) = (&mirror.metadata, &static_pod.metadata);
    m.name == s.name
        && m.namespace == s.namespace
        && annotation(mirror, CONFIG_MIRROR)
            .is_some_and(|h| Some(h) == annotation(static_pod, CONFIG_HASH))
}

/// The mirror pod to create for `static_pod` on node `node` (whose object has UID `node_uid`).
pub fn build(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut annotations: BTreeMap<String, String> =
        static_pod.metadata.annotations.clone().unwrap_or_default();
    let hash = annotations.get(CONFIG_HASH).cloned().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.to_string(), hash);
    Pod {
        metadata: ObjectMeta {
            name: static_pod.metadata.name.clone(),
            namespace: static_pod.metadata.namespace.clone(),
            labels: static_pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: static_pod.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_pod() -> Pod {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\n\
            spec: {containers: [{name: c, image: i}]}\n";
        super::super::manifest::parse(text.as_bytes(), std::path::Path::new("/m/web.yaml"), "n")
            .unwrap()
    }

    #[test]
    fn a_mirror_pod_carries_the_hash_and_a_controller_reference_to_the_node() {
        let s = static_pod();
        let m = build(&s, "n", "node-uid");
        let hash = s.metadata.uid.clone().unwrap();
        let a = m.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[CONFIG_MIRROR], hash);
        assert_eq!(a[CONFIG_HASH], hash);
        assert_eq!(a[super::super::CONFIG_SOURCE], "file");
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "n"));
        assert_eq!(
            (owner.api_version.as_str(), owner.uid.as_str()),
            ("v1", "node-uid")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, None);
        assert_eq!(
            m.metadata.uid, None,
            "the API server gives the mirror its own UID"
        );
        assert_eq!(m.metadata.name.as_deref(), Some("web-n"));
        assert_eq!(m.spec.as_ref().unwrap().node_name.as_deref(), Some("n"));
        assert!(m.metadata.labels.is_some());
        assert!(is_mirror_pod(&m));
        assert!(!is_mirror_pod(&s));
        assert!(is_mirror_of(&m, &s));
    }

    #[test]
    fn a_mirror_of_an_older_manifest_is_not_the_mirror_of_the_new_one() {
        let s = static_pod();
        let mut m = build(&s, "n", "u");
        m.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(CONFIG_MIRROR.into(), "old".into());
        assert!(!is_mirror_of(&m, &s));
        let mut renamed = build(&s, "n", "u");
        renamed.metadata.name = Some("other-n".into());
        assert!(!is_mirror_of(&renamed, &s));
    }
}
