//! emptyDir volumes: a directory under the pod's volumes, or for `medium: Memory` a tmpfs
//! mounted there, sized by `sizeLimit`. The same tmpfs backs secret, downwardAPI and projected
//! volumes, as kubelet wraps them in a memory emptyDir.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use super::mounts;
use super::plugin::MountError;

/// The tmpfs size of a memory emptyDir: its sizeLimit when set (else the kernel default).
pub fn tmpfs_size(src: &EmptyDirVolumeSource) -> Result<Option<u64>, MountError> {
    match &src.size_limit {
        None => Ok(None),
        Some(q) => crate::quantity::parse_units(&q.0)
            .map(|n| (n > 0).then_some(n))
            .map_err(|e| MountError::Failed(format!("invalid sizeLimit {:?}: {e}", q.0))),
    }
}

/// Creates `dir` (mode 0777 as kubelet's emptyDir); with `tmpfs`, mounts one there unless one
/// is already mounted (a volume found after an agent restart). Returns true when this call
/// mounted it, so a later failure can undo it. On failure nothing is left mounted.
pub fn set_up(dir: &Path, tmpfs: Option<Option<u64>>) -> Result<bool, MountError> {
    let created = !dir.exists();
    std::fs::create_dir_all(dir)
        .map_err(|e| MountError::io(format!("mkdir {}", dir.display()), e))?;
    let mut mounted = false;
    if let Some(size) = tmpfs
        && !mounts::is_mount_point(dir)
    {
        if let Err(e) = mounts::mount_tmpfs(dir, size) {
            if created {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(MountError::io(
                format!("mount tmpfs at {}", dir.display()),
                e,
            ));
        }
        mounted = true;
    }
    if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)) {
        undo(dir, mounted, created);
        return Err(MountError::io(format!("chmod {}", dir.display()), e));
    }
    Ok(mounted)
}

/// Undoes a [`set_up`]: unmounts what it mounted and removes what it created.
pub fn undo(dir: &Path, mounted: bool, created: bool) {
    if mounted {
        let _ = mounts::unmount(dir);
    }
    if created && !mounts::is_mount_point(dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_limit_is_the_tmpfs_size() {
        let src: EmptyDirVolumeSource =
            serde_json::from_value(json!({"medium": "Memory", "sizeLimit": "64Mi"})).unwrap();
        assert_eq!(tmpfs_size(&src).unwrap(), Some(64 << 20));
        assert_eq!(tmpfs_size(&EmptyDirVolumeSource::default()).unwrap(), None);
    }

    #[test]
    fn a_disk_empty_dir_is_a_world_writable_directory() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        assert!(!set_up(&dir, None).unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
    }
}
