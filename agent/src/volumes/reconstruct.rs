//! The actual state after an agent restart, read back from disk and the mount table: which pod
//! directories exist and which of their volumes are mounted. Volumes of pods that still run are
//! adopted by [`super::Volumes::ensure`] (a mounted volume is never mounted again); pods the API
//! no longer has are torn down here once the pod list is known.

use std::path::PathBuf;

use tracing::{info, warn};

use super::layout::Layout;
use super::mounts;

/// A pod directory found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOnDisk {
    pub uid: String,
    /// Volume directories (ROOT/pods/UID/volumes/PLUGIN/NAME).
    pub volumes: Vec<PathBuf>,
    /// Mount points below the pod's directory.
    pub mounted: Vec<PathBuf>,
}

/// Every pod directory below the root dir, with its volumes and mounts.
pub fn scan(layout: &Layout) -> Vec<PodOnDisk> {
    let Ok(entries) = std::fs::read_dir(layout.pods_dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let uid = e.file_name().to_string_lossy().into_owned();
        let volumes: Vec<PathBuf> = std::fs::read_dir(layout.volumes_dir(&uid))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|plugin| {
                std::fs::read_dir(plugin.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|v| v.path())
            .collect();
        let mounted = mounts::mount_points_under(&layout.pod_dir(&uid));
        out.push(PodOnDisk {
            uid,
            volumes,
            mounted,
        });
    }
    out
}

/// Tears down the pod directories whose pod is not known (`known(uid)` false).
pub async fn clean_orphans(volumes: &super::Volumes, known: impl Fn(&str) -> bool) {
    let found = scan(volumes.layout());
    let mounted: usize = found.iter().map(|p| p.mounted.len()).sum();
    info!(pods = found.len(), mounted, "pod directories found on disk");
    for p in found.iter().filter(|p| !known(&p.uid)) {
        match volumes.teardown(&p.uid).await {
            Ok(()) => {
                info!(uid = %p.uid, volumes = p.volumes.len(), "orphaned pod directory removed");
            }
            Err(e) => warn!(uid = %p.uid, error = %e, "cannot clean orphaned pod directory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_pods_and_their_volumes() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        std::fs::create_dir_all(layout.volume_dir("u1", "kubernetes.io/empty-dir", "a")).unwrap();
        std::fs::create_dir_all(layout.pod_dir("u2")).unwrap();
        let mut found = scan(&layout);
        found.sort_by(|a, b| a.uid.cmp(&b.uid));
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].volumes.len(), 1);
        assert!(found[0].mounted.is_empty());
        assert!(found[1].volumes.is_empty());
    }
}
