//! projected volumes: configMap, secret, downwardAPI and serviceAccountToken sources merged
//! into one payload (the default `kube-api-access-*` volume of every pod is one of these:
//! a token, `kube-root-ca.crt`'s `ca.crt` and the namespace).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource};

use super::atomic_writer::{FileProjection, Payload};
use super::configmap_secret::{
    DEFAULT_MODE, configmap_payload, get_configmap, get_secret, secret_payload,
};
use super::downward;
use super::ownership::pod_fs_group;
use super::plugin::MountError;
use super::token::Tokens;
use crate::node_facts::NodeFacts;

/// A token file's mode: the volume's defaultMode, but 0600 when the pod has an fsGroup (as
/// kubelet: the fsGroup ownership then makes it 0640, readable by the group and nobody else).
fn token_mode(default_mode: i32, fs_group: Option<u32>) -> u32 {
    match fs_group {
        Some(_) => 0o600,
        None => u32::try_from(default_mode).unwrap_or(0o644) & 0o777,
    }
}

/// The payload of a projected volume and, when it holds a token, when to refresh it.
pub async fn payload(
    api: &crate::apiserver::ApiServer,
    tokens: &Tokens,
    node: &NodeFacts,
    pod: &Pod,
    source: &ProjectedVolumeSource,
) -> Result<(Payload, Option<Duration>), MountError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
    let fs_group = pod_fs_group(pod).map_err(MountError::Failed)?;
    let mut out = Payload::new();
    let mut refresh: Option<Duration> = None;
    for s in source.sources.iter().flatten() {
        let part = if let Some(c) = &s.config_map {
            let cm = get_configmap(api.client()?, ns, &c.name).await?;
            let optional = c.optional.unwrap_or(false);
            configmap_payload(
                &c.name,
                cm.as_ref(),
                c.items.as_deref(),
                default_mode,
                optional,
            )?
        } else if let Some(c) = &s.secret {
            let secret = get_secret(api.client()?, ns, &c.name).await?;
            let optional = c.optional.unwrap_or(false);
            secret_payload(
                &c.name,
                secret.as_ref(),
                c.items.as_deref(),
                default_mode,
                optional,
            )?
        } else if let Some(d) = &s.downward_api {
            downward::payload(
                pod,
                d.items.as_deref().unwrap_or_default(),
                Some(default_mode),
                node,
            )?
        } else if let Some(t) = &s.service_account_token {
            let expiry = t.expiration_seconds.unwrap_or(3600);
            let (token, due) = tokens
                .get(api.client()?, pod, t.audience.as_deref(), expiry)
                .await?;
            refresh = Some(refresh.map_or(due, |r| r.min(due)));
            let mut p = Payload::new();
            p.insert(
                t.path.clone(),
                FileProjection {
                    data: token.into_bytes(),
                    mode: token_mode(default_mode, fs_group),
                },
            );
            p
        } else if s.cluster_trust_bundle.is_some() {
            return Err(MountError::Failed(
                "clusterTrustBundle projections are not supported by minikubelet".into(),
            ));
        } else if s.pod_certificate.is_some() {
            return Err(MountError::Failed(
                "podCertificate projections are not supported by minikubelet".into(),
            ));
        } else {
            continue;
        };
        out.extend(part);
    }
    Ok((out, refresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_0600_under_an_fs_group() {
        assert_eq!(token_mode(0o644, None), 0o644);
        assert_eq!(token_mode(0o644, Some(2000)), 0o600);
    }
}
