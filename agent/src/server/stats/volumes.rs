//! Per-pod volume usage for /stats/summary: CSI volumes through the driver's
//! NodeGetVolumeStats (kubelet reports the same under pods[].volume).

use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::model::VolumeStats;
use crate::csi::Csi;

/// Usage of the pod's CSI volumes (ROOT_DIR/pods/UID/volumes/kubernetes.io~csi/NAME), for
/// drivers that report it; a driver that fails is skipped with a debug line.
pub async fn csi_volumes(root: &Path, csi: &Csi, pod_uid: &str, time: &Time) -> Vec<VolumeStats> {
    let dir = root
        .join("pods")
        .join(pod_uid)
        .join("volumes")
        .join("kubernetes.io~csi");
    let volumes = tokio::task::spawn_blocking(move || volume_dirs(&dir))
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for (name, path) in volumes {
        match csi.volume_stats(&path).await {
            Ok(Some(s)) => out.push(VolumeStats {
                time: time.clone(),
                name,
                capacity_bytes: s.capacity_bytes,
                available_bytes: s.available_bytes,
                used_bytes: s.used_bytes,
                inodes: s.inodes,
                inodes_free: s.inodes_free,
                inodes_used: s.inodes_used,
            }),
            Ok(None) => {}
            Err(error) => tracing::debug!(%error, volume = %name, "NodeGetVolumeStats failed"),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The volume directories under `dir` as (name, path); none if it cannot be read. Blocking.
fn volume_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}
