//! Which plugin handles a volume, what a failed mount says, and the seam for plugins that live
//! outside the agent (CSI): [`ExternalPlugin`].

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};
use thiserror::Error;

/// The in-tree plugins, by the kind of volume source; kubelet's plugin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    EmptyDir,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
    HostPath,
    /// persistentVolumeClaim, inline csi and ephemeral volumes: served by the CSI plugin.
    Csi,
    /// An OCI image (`image`): pulled by the pod worker and mounted by the runtime; nothing to
    /// set up on the host (kubelet's image plugin is a no-op too).
    Image,
    /// A source this agent has no plugin for (in-tree cloud disks, nfs, ...).
    Unsupported,
}

impl Plugin {
    pub fn for_volume(v: &Volume) -> Plugin {
        if v.empty_dir.is_some() {
            Plugin::EmptyDir
        } else if v.config_map.is_some() {
            Plugin::ConfigMap
        } else if v.secret.is_some() {
            Plugin::Secret
        } else if v.downward_api.is_some() {
            Plugin::DownwardApi
        } else if v.projected.is_some() {
            Plugin::Projected
        } else if v.host_path.is_some() {
            Plugin::HostPath
        } else if v.persistent_volume_claim.is_some() || v.csi.is_some() || v.ephemeral.is_some() {
            Plugin::Csi
        } else if v.image.is_some() {
            Plugin::Image
        } else {
            Plugin::Unsupported
        }
    }

    /// kubelet's plugin name (the directory is this name with `/` as `~`).
    pub fn name(self) -> &'static str {
        match self {
            Plugin::EmptyDir => "kubernetes.io/empty-dir",
            Plugin::ConfigMap => "kubernetes.io/configmap",
            Plugin::Secret => "kubernetes.io/secret",
            Plugin::DownwardApi => "kubernetes.io/downward-api",
            Plugin::Projected => "kubernetes.io/projected",
            Plugin::HostPath => "kubernetes.io/host-path",
            Plugin::Csi => "kubernetes.io/csi",
            Plugin::Image => "kubernetes.io/image",
            Plugin::Unsupported => "unsupported",
        }
    }

    /// Contents that come from the API and are rewritten on refresh.
    pub fn refreshes(self) -> bool {
        matches!(
            self,
            Plugin::ConfigMap | Plugin::Secret | Plugin::DownwardApi | Plugin::Projected
        )
    }

    /// Backed by a tmpfs of the agent's own (secrets and tokens never touch the disk).
    pub fn on_tmpfs(self) -> bool {
        matches!(
            self,
            Plugin::Secret | Plugin::DownwardApi | Plugin::Projected
        )
    }
}

/// Why a volume could not be set up; the text follows kubelet's and goes after
/// `MountVolume.SetUp failed for volume "NAME" : `.
#[derive(Debug, Error)]
pub enum MountError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigMapKey(String),
    #[error("references non-existent secret key: {0}")]
    MissingSecretKey(String),
    #[error("hostPath type check failed: {path} is not a {what}")]
    HostPathType { path: String, what: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An API call failed, or a value could not be computed; kubelet's message.
    #[error("{0}")]
    Failed(String),
    #[error("volume needs the CSI plugin ({0}), which this minikubelet does not have yet")]
    NeedsCsi(String),
    #[error("volume type is not supported by minikubelet")]
    Unsupported,
}

impl From<crate::apiserver::Standalone> for MountError {
    fn from(e: crate::apiserver::Standalone) -> Self {
        MountError::Failed(e.to_string())
    }
}

impl MountError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> MountError {
        MountError::Io {
            what: what.into(),
            source,
        }
    }

    /// kubelet's FailedMount event text for `volume`.
    pub fn event_message(&self, volume: &str) -> String {
        format!("MountVolume.SetUp failed for volume {volume:?} : {self}")
    }
}

/// A volume plugin that lives outside the agent (the CSI node plugin). The manager gives it the
/// pod, the volume and its directory under kubelet's layout
/// (`ROOT/pods/UID/volumes/kubernetes.io~csi/NAME`); `mount` returns the host path to bind
/// into containers. `unmount` gets the same directory back (also for volumes found on disk
/// after an agent restart) and must leave nothing mounted below it.
pub trait ExternalPlugin: Send + Sync {
    fn mount<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<PathBuf, MountError>>;

    fn unmount<'a>(
        &'a self,
        pod_uid: &'a str,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), MountError>>;
}

/// What the CSI-backed volume asks for, for the message while no CSI plugin is set.
pub fn csi_source(v: &Volume) -> String {
    if let Some(pvc) = &v.persistent_volume_claim {
        format!("persistentVolumeClaim {:?}", pvc.claim_name)
    } else if let Some(csi) = &v.csi {
        format!("inline CSI driver {:?}", csi.driver)
    } else {
        "generic ephemeral volume".to_string()
    }
}
