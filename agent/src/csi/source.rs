//! Resolving a pod's volume to the CSI volume behind it: an inline `csi` source, or a
//! persistentVolumeClaim / generic ephemeral volume bound to a CSI PersistentVolume.

use std::collections::HashMap;

use csi_client::proto::csi::volume_capability::Mode;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume};
use kube::api::Api;

use super::error::CsiMountError;
use super::paths::sha256_hex;

/// A secret reference, resolved to its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// Everything the node operations need about one CSI volume of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeSpec {
    pub driver: String,
    pub handle: String,
    /// The PV name, or the pod's volume name for inline volumes.
    pub spec_vol_id: String,
    /// An inline (ephemeral) CSI volume: no attach, no stage.
    pub ephemeral: bool,
    pub read_only: bool,
    pub fs_type: String,
    pub mount_flags: Vec<String>,
    pub access_mode: Mode,
    pub attributes: HashMap<String, String>,
    pub stage_secret: Option<SecretRef>,
    pub publish_secret: Option<SecretRef>,
}

/// kubelet's access-mode mapping (PV access modes -> CSI).
pub fn access_mode(modes: &[String]) -> Mode {
    let has = |m: &str| modes.iter().any(|x| x == m);
    if has("ReadWriteMany") {
        Mode::MultiNodeMultiWriter
    } else if has("ReadOnlyMany") && !has("ReadWriteOnce") {
        Mode::MultiNodeReaderOnly
    } else {
        Mode::SingleNodeWriter
    }
}

/// The volume handle kubelet makes for an inline volume: "csi-" + SHA256(podUID + volumeName).
pub fn inline_handle(pod_uid: &str, volume: &str) -> String {
    format!("csi-{}", sha256_hex(&format!("{pod_uid}{volume}")))
}

/// The inline form, which needs no API calls.
pub fn inline(pod: &Pod, volume: &Volume) -> Option<VolumeSpec> {
    let csi = volume.csi.as_ref()?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    Some(VolumeSpec {
        driver: csi.driver.clone(),
        handle: inline_handle(&uid, &volume.name),
        spec_vol_id: volume.name.clone(),
        ephemeral: true,
        read_only: csi.read_only.unwrap_or(false),
        fs_type: csi.fs_type.clone().unwrap_or_default(),
        mount_flags: Vec::new(),
        access_mode: Mode::SingleNodeWriter,
        attributes: csi
            .volume_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        stage_secret: None,
        publish_secret: csi.node_publish_secret_ref.as_ref().map(|r| SecretRef {
            namespace,
            name: r.name.clone(),
        }),
    })
}

/// The PV form: the claim's bound PersistentVolume with its CSI source.
pub fn from_pv(pv: &PersistentVolume, claim_read_only: bool) -> Result<VolumeSpec, CsiMountError> {
    let name = pv.metadata.name.clone().unwrap_or_default();
    let spec = pv
        .spec
        .as_ref()
        .ok_or_else(|| CsiMountError::NotCsi(name.clone()))?;
    let csi = spec
        .csi
        .as_ref()
        .ok_or_else(|| CsiMountError::NotCsi(name.clone()))?;
    let secret = |r: &Option<k8s_openapi::api::core::v1::SecretReference>| {
        r.as_ref().and_then(|r| {
            Some(SecretRef {
                namespace: r.namespace.clone()?,
                name: r.name.clone()?,
            })
        })
    };
    Ok(VolumeSpec {
        driver: csi.driver.clone(),
        handle: csi.volume_handle.clone(),
        spec_vol_id: name,
        ephemeral: false,
        read_only: claim_read_only || csi.read_only.unwrap_or(false),
        fs_type: csi.fs_type.clone().unwrap_or_default(),
        mount_flags: spec.mount_options.clone().unwrap_or_default(),
        access_mode: access_mode(spec.access_modes.as_deref().unwrap_or_default()),
        attributes: csi
            .volume_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        stage_secret: secret(&csi.node_stage_secret_ref),
        publish_secret: secret(&csi.node_publish_secret_ref),
    })
}

/// Resolves `volume` of `pod`, reading the claim and its volume from the API when needed.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    volume: &Volume,
) -> Result<VolumeSpec, CsiMountError> {
    if let Some(spec) = inline(pod, volume) {
        return Ok(spec);
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let (claim, read_only) = if let Some(pvc) = &volume.persistent_volume_claim {
        (pvc.claim_name.clone(), pvc.read_only.unwrap_or(false))
    } else if volume.ephemeral.is_some() {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        (format!("{pod_name}-{}", volume.name), false)
    } else {
        return Err(CsiMountError::NotCsiSource);
    };
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &namespace)
        .get_opt(&claim)
        .await
        .map_err(|e| CsiMountError::api(&e))?
        .ok_or_else(|| CsiMountError::ClaimNotFound(claim.clone()))?;
    let pv_name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CsiMountError::ClaimNotBound(claim.clone()))?;
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get_opt(&pv_name)
        .await
        .map_err(|e| CsiMountError::api(&e))?
        .ok_or_else(|| CsiMountError::VolumeNotFound(pv_name.clone()))?;
    from_pv(&pv, read_only)
}

/// The string data of a secret (kubelet passes every key).
pub async fn secret_data(
    client: &kube::Client,
    r: &SecretRef,
) -> Result<HashMap<String, String>, CsiMountError> {
    let secret = Api::<Secret>::namespaced(client.clone(), &r.namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| CsiMountError::api(&e))?
        .ok_or_else(|| CsiMountError::SecretNotFound {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        CSIPersistentVolumeSource, CSIVolumeSource, LocalObjectReference, PersistentVolumeSpec,
        SecretReference,
    };

    #[test]
    fn inline_volumes_get_kubelets_handle_and_pod_namespace_secret() {
        let mut pod = Pod::default();
        pod.metadata.uid = Some("u1".into());
        pod.metadata.namespace = Some("ns".into());
        let vol = Volume {
            name: "data".into(),
            csi: Some(CSIVolumeSource {
                driver: "d".into(),
                read_only: Some(true),
                node_publish_secret_ref: Some(LocalObjectReference { name: "s".into() }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = inline(&pod, &vol).unwrap();
        assert_eq!(spec.handle, format!("csi-{}", sha256_hex("u1data")));
        assert!(spec.ephemeral && spec.read_only);
        assert_eq!(spec.publish_secret.unwrap().namespace, "ns");
    }

    #[test]
    fn pv_sources_carry_mode_flags_and_secrets() {
        let pv = PersistentVolume {
            metadata: kube::api::ObjectMeta {
                name: Some("pv1".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                access_modes: Some(vec!["ReadWriteMany".into()]),
                mount_options: Some(vec!["noatime".into()]),
                csi: Some(CSIPersistentVolumeSource {
                    driver: "d".into(),
                    volume_handle: "h".into(),
                    fs_type: Some("ext4".into()),
                    node_stage_secret_ref: Some(SecretReference {
                        name: Some("st".into()),
                        namespace: Some("sys".into()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = from_pv(&pv, true).unwrap();
        assert_eq!(spec.access_mode, Mode::MultiNodeMultiWriter);
        assert_eq!(spec.mount_flags, vec!["noatime".to_string()]);
        assert!(spec.read_only && !spec.ephemeral);
        assert_eq!(spec.stage_secret.unwrap().name, "st");
        assert!(matches!(
            from_pv(&PersistentVolume::default(), false),
            Err(CsiMountError::NotCsi(_))
        ));
        assert_eq!(
            access_mode(&["ReadOnlyMany".into()]),
            Mode::MultiNodeReaderOnly
        );
        assert_eq!(
            access_mode(&["ReadWriteOnce".into()]),
            Mode::SingleNodeWriter
        );
    }
}
