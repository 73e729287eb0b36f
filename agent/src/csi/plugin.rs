//! [`Csi`] as the volume manager's [`ExternalPlugin`]: `kubernetes.io/csi` volumes
//! (persistentVolumeClaim, inline csi, generic ephemeral) are set up and torn down here. The
//! manager records the mount/unmount durations; the CSI calls are recorded per method.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, Volume};

use super::Csi;
use crate::volumes::{ExternalPlugin, MountError};

impl ExternalPlugin for Csi {
    fn mount<'a>(
        &'a self,
        pod: &'a Pod,
        volume: &'a Volume,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<PathBuf, MountError>> {
        async move {
            Csi::mount(self, pod, volume, dir)
                .await
                .map_err(|e| MountError::Failed(e.to_string()))
        }
        .boxed()
    }

    fn unmount<'a>(
        &'a self,
        _pod_uid: &'a str,
        dir: &'a Path,
    ) -> BoxFuture<'a, Result<(), MountError>> {
        async move {
            Csi::unmount(self, dir)
                .await
                .map_err(|e| MountError::Failed(e.to_string()))
        }
        .boxed()
    }
}
