//! One static pod manifest (YAML or JSON, one Pod) turned into the pod this node runs, with
//! kubelet's defaults (pkg/kubelet/config/common.go `applyDefaults`): the name gets `-NODE`
//! appended, the namespace defaults to `default`, spec.nodeName is this node, the pod tolerates
//! every NoExecute taint, its phase is Pending, and unless the manifest sets one its UID is a
//! hash of the parsed pod, the node name and the file's path. kubelet hashes its decoded object
//! with FNV-128; this agent hashes the pod's canonical JSON with SHA-256 cut to the same 128
//! bits, so the rules hold (same content, node and path: same UID; any change in what the pod
//! says: a new UID; formatting and comments do not count) while the values differ from
//! kubelet's. The UID is also the `kubernetes.io/config.hash` annotation.

use std::path::Path;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Toleration};
use thiserror::Error;

use super::{CONFIG_HASH, CONFIG_SOURCE, FILE_SOURCE};

/// Why a manifest is not a pod to run. Displays as kubelet's messages.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("{path}: couldn't parse as pod({message}), please check config file")]
    Parse { path: String, message: String },
    #[error("invalid pod: {0}")]
    Invalid(String),
    #[error("static pods may not reference {0}")]
    ApiReference(String),
}

fn parse_error(path: &Path, message: impl std::fmt::Display) -> ManifestError {
    ManifestError::Parse {
        path: path.display().to_string(),
        message: message.to_string().replace('\n', " "),
    }
}

/// Decodes `data` (the file at `path`) into a Pod and applies kubelet's defaults for `node`.
pub fn parse(data: &[u8], path: &Path, node: &str) -> Result<Pod, ManifestError> {
    // JSON is YAML, so one decoder reads both.
    let value: serde_json::Value =
        serde_yaml::from_slice(data).map_err(|e| parse_error(path, e))?;
    let kind = value.get("kind").and_then(serde_json::Value::as_str);
    let version = value.get("apiVersion").and_then(serde_json::Value::as_str);
    match (version, kind) {
        (Some("v1"), Some("Pod")) => {}
        (_, None) => return Err(parse_error(path, "Object 'Kind' is missing")),
        (v, Some(k)) => {
            let v = v.unwrap_or("");
            return Err(parse_error(path, format!("not a v1 Pod: {v}/{k}")));
        }
    }
    let pod: Pod = serde_json::from_value(value).map_err(|e| parse_error(path, e))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(ManifestError::Invalid("name is needed for the pod".into()));
    }
    if pod.spec.as_ref().is_none_or(|s| s.containers.is_empty()) {
        return Err(ManifestError::Invalid(
            "spec.containers: Required value".into(),
        ));
    }
    if let Some(resource) = super::api_refs::referenced(&pod) {
        return Err(ManifestError::ApiReference(resource));
    }
    Ok(apply_defaults(pod, &name, path, node))
}

/// kubelet's `applyDefaults` for a file source.
fn apply_defaults(mut pod: Pod, name: &str, path: &Path, node: &str) -> Pod {
    if pod.metadata.uid.as_deref().is_none_or(str::is_empty) {
        pod.metadata.uid = Some(uid_of(&pod, path, node));
    }
    let full_name = format!("{name}-{}", node.to_lowercase());
    pod.metadata.name = Some(full_name);
    if pod.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        pod.metadata.namespace = Some("default".to_string());
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.get_or_insert_default();
    annotations.insert(CONFIG_HASH.to_string(), uid);
    annotations.insert(CONFIG_SOURCE.to_string(), FILE_SOURCE.to_string());
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.to_string());
        let tolerate_no_execute = Toleration {
            operator: Some("Exists".to_string()),
            effect: Some("NoExecute".to_string()),
            ..Toleration::default()
        };
        let tolerations = spec.tolerations.get_or_insert_default();
        if !tolerations.contains(&tolerate_no_execute) {
            tolerations.push(tolerate_no_execute);
        }
    }
    pod.status = Some(PodStatus {
        phase: Some("Pending".to_string()),
        ..PodStatus::default()
    });
    pod
}

/// 32 hex digits: SHA-256 over the pod's JSON, then `host:NODE` and `file:PATH` (kubelet's
/// order), cut to 128 bits.
fn uid_of(pod: &Pod, path: &Path, node: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Serialising a typed Pod cannot fail (string keys, no non-finite floats); an empty body
    // would still give a UID that depends on the node and path.
    ctx.update(&serde_json::to_vec(pod).unwrap_or_default());
    ctx.update(format!("host:{node}").as_bytes());
    ctx.update(format!("file:{}", path.display()).as_bytes());
    let digest = ctx.finish();
    hex::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\n\
        spec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: 127.0.0.1:5000/busybox:1.35\n";

    fn parse_at(text: &str, path: &str, node: &str) -> Result<Pod, ManifestError> {
        parse(text.as_bytes(), Path::new(path), node)
    }

    fn uid(p: &Pod) -> String {
        p.metadata.uid.clone().unwrap()
    }

    #[test]
    fn name_namespace_node_annotations_tolerations_and_phase_are_kubelets() {
        let pod = parse_at(YAML, "/etc/kubernetes/manifests/web.yaml", "Node-1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        let t = spec.tolerations.as_ref().unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].operator.as_deref(), Some("Exists"));
        assert_eq!(t[0].effect.as_deref(), Some("NoExecute"));
        assert_eq!(t[0].key, None);
        let a = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[CONFIG_HASH], uid(&pod));
        assert_eq!(a[CONFIG_SOURCE], "file");
        assert_eq!(uid(&pod).len(), 32);
        assert!(uid(&pod).chars().all(|c| c.is_ascii_hexdigit()));
        let phase = pod.status.as_ref().unwrap().phase.as_deref();
        assert_eq!(phase, Some("Pending"));
    }

    #[test]
    fn the_uid_follows_content_node_and_path_but_not_formatting() {
        let base = uid(&parse_at(YAML, "/m/web.yaml", "n").unwrap());
        assert_eq!(base, uid(&parse_at(YAML, "/m/web.yaml", "n").unwrap()));
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},
            "spec":{"hostNetwork":true,"containers":[{"name":"c","image":"127.0.0.1:5000/busybox:1.35"}]}}"#;
        assert_eq!(base, uid(&parse_at(json, "/m/web.yaml", "n").unwrap()));
        let commented = format!("# a comment\n{YAML}");
        assert_eq!(
            base,
            uid(&parse_at(&commented, "/m/web.yaml", "n").unwrap())
        );
        let edited = YAML.replace("busybox:1.35", "busybox:1.36");
        assert_ne!(base, uid(&parse_at(&edited, "/m/web.yaml", "n").unwrap()));
        assert_ne!(base, uid(&parse_at(YAML, "/m/other.yaml", "n").unwrap()));
        assert_ne!(base, uid(&parse_at(YAML, "/m/web.yaml", "m").unwrap()));
    }

    #[test]
    fn a_uid_in_the_manifest_is_kept_and_a_given_namespace_too() {
        let text = YAML.replace(
            "name: web\n",
            "name: web\n  uid: abc\n  namespace: kube-system\n",
        );
        let pod = parse_at(&text, "/m/web.yaml", "n").unwrap();
        assert_eq!(uid(&pod), "abc");
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    }

    #[test]
    fn an_existing_no_execute_toleration_is_not_doubled() {
        let text = format!("{YAML}  tolerations:\n  - operator: Exists\n    effect: NoExecute\n");
        let pod = parse_at(&text, "/m/web.yaml", "n").unwrap();
        assert_eq!(pod.spec.unwrap().tolerations.unwrap().len(), 1);
    }

    #[test]
    fn bad_manifests_say_why() {
        let e = parse_at("a: [", "/m/x.yaml", "n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/m/x.yaml: couldn't parse as pod("),
            "{e}"
        );
        let e = parse_at("apiVersion: v1\nkind: Service\n", "/m/x.yaml", "n").unwrap_err();
        assert!(e.to_string().contains("not a v1 Pod: v1/Service"), "{e}");
        let e = parse_at("apiVersion: v1\nmetadata: {name: x}\n", "/m/x.yaml", "n").unwrap_err();
        assert!(e.to_string().contains("Object 'Kind' is missing"), "{e}");
        let nameless = YAML.replace("name: web\n", "");
        let e = parse_at(&nameless, "/m/x.yaml", "n").unwrap_err();
        assert_eq!(e.to_string(), "invalid pod: name is needed for the pod");
        let empty = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n";
        let e = parse_at(empty, "/m/x.yaml", "n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid pod: spec.containers: Required value"
        );
        let sa = format!("{YAML}  serviceAccountName: default\n");
        let e = parse_at(&sa, "/m/x.yaml", "n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "static pods may not reference serviceaccounts"
        );
    }
}
