//! The node-side volume operations: attach wait, NodeStageVolume into the global per-volume
//! path, NodePublishVolume into the pod's volume dir, and the reverse. Every step is
//! idempotent (a published target is left alone, the driver's calls are idempotent by spec),
//! and a failed set-up leaves no directory or mount it made behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use csi_client::proto::csi::{
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest, VolumeCapability,
    volume_capability, volume_usage,
};
use k8s_openapi::api::core::v1::{Pod, Volume};
use k8s_openapi::api::storage::v1::{CSIDriver, VolumeAttachment};
use kube::api::Api;
use tracing::{info, warn};

use super::Csi;
use super::error::CsiMountError;
use super::paths::{self, VolData};
use super::registry::Driver;
use super::source::{self, VolumeSpec};

/// How long one mount attempt waits for the VolumeAttachment before giving up (the volume
/// manager retries).
const ATTACH_WAIT: Duration = Duration::from_secs(15);

/// Usage of a mounted CSI volume (NodeGetVolumeStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VolumeStats {
    pub capacity_bytes: i64,
    pub available_bytes: i64,
    pub used_bytes: i64,
    pub inodes: i64,
    pub inodes_free: i64,
    pub inodes_used: i64,
}

/// True if `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Removes `dir` if it is an empty directory that is not a mount point.
fn remove_empty(dir: &Path) {
    if !is_mount_point(dir) {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Removes `dir`'s vol_data.json and then `dir` itself (if it is not mounted).
fn remove_with_data(dir: &Path) {
    if is_mount_point(dir) {
        return;
    }
    let _ = std::fs::remove_file(dir.join(paths::VOL_DATA));
    let _ = std::fs::remove_dir(dir);
}

fn capability(spec: &VolumeSpec) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume {
                fs_type: spec.fs_type.clone(),
                mount_flags: spec.mount_flags.clone(),
                volume_mount_group: String::new(),
            },
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: spec.access_mode as i32,
        }),
    }
}

/// The volume context NodePublishVolume gets: the volume's attributes, plus kubelet's pod-info
/// keys when the CSIDriver asks for them.
pub fn volume_context(pod: &Pod, spec: &VolumeSpec, pod_info: bool) -> HashMap<String, String> {
    let mut ctx = spec.attributes.clone();
    if pod_info {
        let m = &pod.metadata;
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into());
        for (k, v) in [
            (
                "csi.storage.k8s.io/pod.name",
                m.name.clone().unwrap_or_default(),
            ),
            (
                "csi.storage.k8s.io/pod.namespace",
                m.namespace.clone().unwrap_or_default(),
            ),
            (
                "csi.storage.k8s.io/pod.uid",
                m.uid.clone().unwrap_or_default(),
            ),
            ("csi.storage.k8s.io/serviceAccount.name", sa),
            ("csi.storage.k8s.io/ephemeral", spec.ephemeral.to_string()),
        ] {
            ctx.insert(k.to_string(), v);
        }
    }
    ctx
}

impl Csi {
    fn driver(&self, name: &str) -> Result<Driver, CsiMountError> {
        self.registry
            .get(name)
            .ok_or_else(|| CsiMountError::DriverNotRegistered(name.to_string()))
    }

    /// (attachRequired, podInfoOnMount) from the CSIDriver object; kubelet's defaults when
    /// there is none (attach required, no pod info).
    async fn driver_policy(&self, name: &str) -> Result<(bool, bool), CsiMountError> {
        let obj = Api::<CSIDriver>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|e| CsiMountError::api(&e))?;
        Ok(obj.map_or((true, false), |d| {
            (
                d.spec.attach_required.unwrap_or(true),
                d.spec.pod_info_on_mount.unwrap_or(false),
            )
        }))
    }

    /// Waits for the VolumeAttachment of `spec` to this node; returns its attachment metadata.
    async fn wait_attached(
        &self,
        spec: &VolumeSpec,
    ) -> Result<HashMap<String, String>, CsiMountError> {
        let name = paths::attachment_name(&spec.handle, &spec.driver, &self.node);
        let api = Api::<VolumeAttachment>::all(self.client.clone());
        let deadline = Instant::now() + ATTACH_WAIT;
        loop {
            let va = api
                .get_opt(&name)
                .await
                .map_err(|e| CsiMountError::api(&e))?;
            if let Some(status) = va.and_then(|v| v.status) {
                if status.attached {
                    return Ok(status
                        .attachment_metadata
                        .unwrap_or_default()
                        .into_iter()
                        .collect());
                }
                if let Some(err) = status.attach_error.and_then(|e| e.message) {
                    return Err(CsiMountError::AttachFailed { name, message: err });
                }
            }
            if Instant::now() >= deadline {
                return Err(CsiMountError::NotAttached(name));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Sets up `volume` of `pod` in `dir` (ROOT/pods/UID/volumes/kubernetes.io~csi/NAME) and
    /// returns the path to bind into containers (`dir/mount`).
    pub async fn mount(
        &self,
        pod: &Pod,
        volume: &Volume,
        dir: &Path,
    ) -> Result<PathBuf, CsiMountError> {
        let target = paths::publish_target(dir);
        if is_mount_point(&target) {
            return Ok(target); // already published (agent restart, resync): no second mount
        }
        let spec = source::resolve(&self.client, pod, volume).await?;
        let driver = self.driver(&spec.driver)?;
        let _guard = self.lock(&spec.driver, &spec.handle).await;
        if is_mount_point(&target) {
            return Ok(target);
        }
        let (attach_required, pod_info) = self.driver_policy(&spec.driver).await?;
        let publish_context = if attach_required && !spec.ephemeral {
            self.wait_attached(&spec).await?
        } else {
            HashMap::new()
        };
        let stage_secrets = match &spec.stage_secret {
            Some(r) => source::secret_data(&self.client, r).await?,
            None => HashMap::new(),
        };
        let publish_secrets = match &spec.publish_secret {
            Some(r) => source::secret_data(&self.client, r).await?,
            None => HashMap::new(),
        };
        let staging = if driver.capabilities.stage_unstage && !spec.ephemeral {
            let staging = paths::staging_path(&self.root, &spec.driver, &spec.handle);
            self.stage(&driver, &spec, &staging, &publish_context, stage_secrets)
                .await?;
            Some(staging)
        } else {
            None
        };
        let data = VolData {
            driver_name: spec.driver.clone(),
            volume_handle: spec.handle.clone(),
            spec_vol_id: spec.spec_vol_id.clone(),
            volume_lifecycle_mode: if spec.ephemeral {
                "Ephemeral"
            } else {
                "Persistent"
            }
            .into(),
            attachment_id: if attach_required && !spec.ephemeral {
                paths::attachment_name(&spec.handle, &spec.driver, &self.node)
            } else {
                String::new()
            },
            node_name: self.node.clone(),
        };
        paths::write_vol_data(dir, &data)
            .map_err(|e| CsiMountError::io(format!("writing {}", dir.display()), e))?;
        let req = NodePublishVolumeRequest {
            volume_id: spec.handle.clone(),
            publish_context,
            staging_target_path: staging
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            target_path: target.to_string_lossy().into_owned(),
            volume_capability: Some(capability(&spec)),
            readonly: spec.read_only,
            secrets: publish_secrets,
            volume_context: volume_context(pod, &spec, pod_info),
        };
        let published = driver
            .call("NodePublishVolume", driver.client.node_publish_volume(req))
            .await;
        if let Err(e) = published {
            remove_empty(&target);
            remove_with_data(dir);
            if let Some(staging) = &staging {
                self.unstage_if_unused(&driver, &spec.handle, staging).await;
            }
            return Err(e.into());
        }
        info!(driver = %spec.driver, volume = %spec.spec_vol_id, target = %target.display(), "CSI volume published");
        Ok(target)
    }

    async fn stage(
        &self,
        driver: &Driver,
        spec: &VolumeSpec,
        staging: &Path,
        publish_context: &HashMap<String, String>,
        secrets: HashMap<String, String>,
    ) -> Result<(), CsiMountError> {
        let global = staging.parent().map(Path::to_path_buf).unwrap_or_default();
        let created = !global.exists();
        let data = VolData {
            driver_name: spec.driver.clone(),
            volume_handle: spec.handle.clone(),
            spec_vol_id: spec.spec_vol_id.clone(),
            volume_lifecycle_mode: "Persistent".into(),
            attachment_id: String::new(),
            node_name: self.node.clone(),
        };
        paths::write_vol_data(&global, &data)
            .and_then(|()| std::fs::create_dir_all(staging))
            .map_err(|e| CsiMountError::io(format!("creating {}", staging.display()), e))?;
        let req = NodeStageVolumeRequest {
            volume_id: spec.handle.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: staging.to_string_lossy().into_owned(),
            volume_capability: Some(capability(spec)),
            secrets,
            volume_context: spec.attributes.clone(),
        };
        if let Err(e) = driver
            .call("NodeStageVolume", driver.client.node_stage_volume(req))
            .await
        {
            if created || !is_mount_point(staging) {
                remove_empty(staging);
                remove_with_data(&global);
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// NodeUnstageVolume when no pod volume dir on this node still uses the volume.
    async fn unstage_if_unused(&self, driver: &Driver, handle: &str, staging: &Path) {
        if !paths::pod_users(&self.root, &driver.name, handle).is_empty() {
            return;
        }
        let path = staging.to_string_lossy().into_owned();
        match driver
            .call(
                "NodeUnstageVolume",
                driver.client.node_unstage_volume(handle, &path),
            )
            .await
        {
            Ok(()) => {
                remove_empty(staging);
                if let Some(global) = staging.parent() {
                    remove_with_data(global);
                }
            }
            Err(e) => warn!(driver = %driver.name, error = %e, "NodeUnstageVolume failed"),
        }
    }

    /// Tears down the CSI volume in `dir` from what is on disk (vol_data.json): unpublish, then
    /// unstage when no other pod on the node uses the volume.
    pub async fn unmount(&self, dir: &Path) -> Result<(), CsiMountError> {
        let target = paths::publish_target(dir);
        let Ok(data) = paths::read_vol_data(dir) else {
            if is_mount_point(&target) {
                return Err(CsiMountError::io(
                    format!("{} is mounted but has no vol_data.json", target.display()),
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            remove_empty(&target);
            remove_empty(dir);
            return Ok(());
        };
        let driver = self.driver(&data.driver_name)?;
        let _guard = self.lock(&data.driver_name, &data.volume_handle).await;
        let path = target.to_string_lossy().into_owned();
        driver
            .call(
                "NodeUnpublishVolume",
                driver
                    .client
                    .node_unpublish_volume(&data.volume_handle, &path),
            )
            .await?;
        remove_empty(&target);
        remove_with_data(dir);
        if driver.capabilities.stage_unstage && data.volume_lifecycle_mode != "Ephemeral" {
            let staging = paths::staging_path(&self.root, &data.driver_name, &data.volume_handle);
            if staging.exists() {
                self.unstage_if_unused(&driver, &data.volume_handle, &staging)
                    .await;
            }
        }
        info!(driver = %data.driver_name, volume = %data.spec_vol_id, "CSI volume unpublished");
        Ok(())
    }

    /// NodeGetVolumeStats for the volume in `dir`; None when the driver does not report usage.
    pub async fn volume_stats(&self, dir: &Path) -> Result<Option<VolumeStats>, CsiMountError> {
        let data = paths::read_vol_data(dir)
            .map_err(|e| CsiMountError::io(format!("reading {}", dir.display()), e))?;
        let driver = self.driver(&data.driver_name)?;
        if !driver.capabilities.get_volume_stats {
            return Ok(None);
        }
        let staging = paths::staging_path(&self.root, &data.driver_name, &data.volume_handle);
        let req = NodeGetVolumeStatsRequest {
            volume_id: data.volume_handle.clone(),
            volume_path: paths::publish_target(dir).to_string_lossy().into_owned(),
            staging_target_path: if driver.capabilities.stage_unstage {
                staging.to_string_lossy().into_owned()
            } else {
                String::new()
            },
        };
        let resp = driver
            .call(
                "NodeGetVolumeStats",
                driver.client.node_get_volume_stats(req),
            )
            .await?;
        let mut stats = VolumeStats::default();
        for u in resp.usage {
            if u.unit == volume_usage::Unit::Bytes as i32 {
                (
                    stats.capacity_bytes,
                    stats.available_bytes,
                    stats.used_bytes,
                ) = (u.total, u.available, u.used);
            } else if u.unit == volume_usage::Unit::Inodes as i32 {
                (stats.inodes, stats.inodes_free, stats.inodes_used) =
                    (u.total, u.available, u.used);
            }
        }
        Ok(Some(stats))
    }
}
