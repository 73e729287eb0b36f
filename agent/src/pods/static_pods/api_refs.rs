//! Whether a pod references API objects, as kubelet 1.35 checks static pods
//! (`PreventStaticPodAPIReferences`, on by default: `podutil.HasAPIObjectReference`) and as
//! NodeRestriction checks the mirror pods a node creates. A static pod runs without the API
//! server's say, so it may not name a service account, secret, configMap, claim or CSI driver.

use k8s_openapi::api::core::v1::{Container, EnvFromSource, EnvVar, Pod, PodSpec, Volume};

/// The first kind of API object `pod` references, in kubelet's order and words, e.g.
/// `secrets` or `persistentvolumeclaims (via ephemeral volumes)`; None when it references none.
pub fn referenced(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if spec
        .service_account_name
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Some("serviceaccounts".into());
    }
    if references_secrets(spec) {
        return Some("secrets".into());
    }
    if references_config_maps(spec) {
        return Some("configmaps".into());
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Some("resourceclaims".into());
    }
    spec.volumes.iter().flatten().find_map(volume_reference)
}

fn containers(
    spec: &PodSpec,
) -> impl Iterator<Item = (&Option<Vec<EnvVar>>, &Option<Vec<EnvFromSource>>)> {
    let regular = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let ephemeral = spec.ephemeral_containers.iter().flatten();
    regular
        .map(|c: &Container| (&c.env, &c.env_from))
        .chain(ephemeral.map(|c| (&c.env, &c.env_from)))
}

fn references_secrets(spec: &PodSpec) -> bool {
    let pull = spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty());
    let env = containers(spec).any(|(env, from)| {
        env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .is_some_and(|v| v.secret_key_ref.is_some())
        }) || from.iter().flatten().any(|f| f.secret_ref.is_some())
    });
    let volumes = spec.volumes.iter().flatten().any(|v| {
        v.secret.is_some()
            || v.csi
                .as_ref()
                .is_some_and(|c| c.node_publish_secret_ref.is_some())
            || v.projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.secret.is_some()))
    });
    pull || env || volumes
}

fn references_config_maps(spec: &PodSpec) -> bool {
    let env = containers(spec).any(|(env, from)| {
        env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .is_some_and(|v| v.config_map_key_ref.is_some())
        }) || from.iter().flatten().any(|f| f.config_map_ref.is_some())
    });
    let volumes = spec.volumes.iter().flatten().any(|v| {
        v.config_map.is_some()
            || v.projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.config_map.is_some()))
    });
    env || volumes
}

/// The volume kinds that need the API (secret and configMap volumes were found above).
fn volume_reference(v: &Volume) -> Option<String> {
    let what = if v.csi.is_some() {
        "csidrivers (via CSI volumes)"
    } else if v.glusterfs.is_some() {
        "endpoints (via glusterFS volumes)"
    } else if v.persistent_volume_claim.is_some() {
        "persistentvolumeclaims"
    } else if v.ephemeral.is_some() {
        "persistentvolumeclaims (via ephemeral volumes)"
    } else if v.azure_file.is_some() {
        "secrets (via azureFile volumes)"
    } else if let Some(p) = &v.projected {
        let sources = p.sources.iter().flatten();
        let mut found = None;
        for s in sources {
            if s.service_account_token.is_some() {
                found = Some("serviceaccounts (via projected volumes)");
            } else if s.cluster_trust_bundle.is_some() {
                found = Some("clustertrustbundles");
            } else if s.pod_certificate.is_some() {
                found = Some("podcertificates");
            }
            if found.is_some() {
                break;
            }
        }
        found?
    } else {
        return None;
    };
    Some(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refs(spec: &serde_json::Value) -> Option<String> {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec.clone()}))
                .unwrap();
        referenced(&pod)
    }

    #[test]
    fn pods_that_need_the_api_are_named_as_kubelet_names_them() {
        let c = |extra: serde_json::Value| {
            let mut c = json!({"name": "c", "image": "i"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert_eq!(refs(&json!({"containers": [c(json!({}))]})), None);
        let host = json!({"containers": [c(json!({}))], "volumes": [
            {"name": "h", "hostPath": {"path": "/x"}}, {"name": "e", "emptyDir": {}},
            {"name": "d", "downwardAPI": {"items": []}},
            {"name": "p", "projected": {"sources": [{"downwardAPI": {"items": []}}]}}]});
        assert_eq!(refs(&host), None);
        let cases = [
            (
                json!({"containers": [c(json!({}))], "imagePullSecrets": [{"name": "s"}]}),
                "secrets",
            ),
            (
                json!({"containers": [c(json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}))]}),
                "secrets",
            ),
            (
                json!({"containers": [c(json!({"envFrom": [{"configMapRef": {"name": "m"}}]}))]}),
                "configmaps",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
                "secrets",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "configMap": {"name": "m"}}]}),
                "configmaps",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "x"}}]}),
                "persistentvolumeclaims",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "csi": {"driver": "d"}}]}),
                "csidrivers (via CSI volumes)",
            ),
            (
                json!({"containers": [c(json!({}))], "volumes": [{"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "serviceaccounts (via projected volumes)",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(refs(&spec).as_deref(), Some(want), "{spec}");
        }
    }
}
