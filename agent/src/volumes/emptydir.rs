//! emptyDir volumes: a directory under the pod's volumes, or for `medium: Memory` a tmpfs
//! mounted there, sized by `sizeLimit`. The same tmpfs backs secret, downwardAPI and projected
//! volumes, as kubelet wraps them in a memory emptyDir.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

use super::dirfd::{self, DirError, DirFd};
use super::mounts;
use super::ownership::{Access, FsGroup};
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

/// Creates `dir` (mode 0777 as kubelet's emptyDir; its parent must exist); with `tmpfs`,
/// mounts one there unless one is already mounted (a volume found after an agent restart).
/// With `fs_group`, the directory and everything already in it get that group and kubelet's
/// read-write masks (files `|= 0660`, directories setgid `|= 0770`). Returns true when this
/// call mounted a tmpfs, so a later failure can undo it. On failure nothing is left mounted.
pub fn set_up(
    dir: &Path,
    tmpfs: Option<Option<u64>>,
    fs_group: Option<u32>,
) -> Result<bool, MountError> {
    let created = match std::fs::DirBuilder::new().mode(0o777).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(MountError::io(format!("mkdir {}", dir.display()), e)),
    };
    let mut mounted = false;
    if let Some(size) = tmpfs
        && !mounts::is_mount_point(dir)
    {
        if let Err(e) = mounts::mount_tmpfs(dir, size) {
            undo(dir, false, created);
            return Err(MountError::io(
                format!("mount tmpfs at {}", dir.display()),
                e,
            ));
        }
        mounted = true;
    }
    if let Err(e) = set_modes(dir, fs_group) {
        undo(dir, mounted, created);
        return Err(MountError::io(format!("chmod {}", dir.display()), e.into()));
    }
    Ok(mounted)
}

/// 0777 unless the permission bits already are (then set-id bits an fsGroup gave stay), then
/// the fsGroup ownership; all through an fd opened no-follow.
fn set_modes(dir: &Path, fs_group: Option<u32>) -> Result<(), DirError> {
    let fd = DirFd::open(dir)?;
    if dirfd::mode_bits(&fd.stat()?) & 0o777 != 0o777 {
        dirfd::set_mode(&fd, 0o777)?;
    }
    match fs_group {
        Some(gid) => FsGroup::new(gid, Access::ReadWrite).apply_tree(&fd),
        None => Ok(()),
    }
}

/// Undoes a [`set_up`]: unmounts what it mounted and removes what it created (relative to the
/// parent's fd, following no link inside).
pub fn undo(dir: &Path, mounted: bool, created: bool) {
    if mounted {
        let _ = mounts::unmount(dir);
    }
    if created
        && !mounts::is_mount_point(dir)
        && let (Some(parent), Some(name)) = (dir.parent(), dir.file_name())
        && let Ok(parent) = DirFd::open(parent)
    {
        let _ = parent.remove_tree(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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
        assert!(!set_up(&dir, None, None).unwrap());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o777);
        assert!(!set_up(&dir, None, None).unwrap(), "found: adopted");
    }

    #[test]
    fn fs_group_owns_the_empty_dir_and_what_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let canary = tmp.path().join("canary");
        std::fs::write(&canary, "x").unwrap();
        std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
        let dir = tmp.path().join("v");
        set_up(&dir, None, Some(3456)).unwrap();
        let root = std::fs::metadata(&dir).unwrap();
        assert_eq!((root.gid(), root.mode() & 0o7777), (3456, 0o2777));

        // After an agent restart: what containers wrote gets the group too, links are not
        // followed.
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(dir.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink(&canary, dir.join("sub/link")).unwrap();
        set_up(&dir, None, Some(3456)).unwrap();
        let file = std::fs::metadata(dir.join("sub/f")).unwrap();
        assert_eq!((file.gid(), file.mode() & 0o7777), (3456, 0o660));
        let sub = std::fs::metadata(dir.join("sub")).unwrap();
        assert_eq!((sub.gid(), sub.mode() & 0o7777), (3456, 0o2770));
        let target = std::fs::metadata(&canary).unwrap();
        assert_eq!(target.mode() & 0o7777, 0o600);
        assert_ne!(target.gid(), 3456);
    }
}
