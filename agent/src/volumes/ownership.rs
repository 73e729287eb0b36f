//! fsGroup, as kubelet's SetVolumeOwnership: every file and directory of a volume gets the
//! pod's `securityContext.fsGroup` as its group; files get `mode |= 0440` on volumes containers
//! only read (configMap, secret, downwardAPI, projected) and `|= 0660` on read-write ones
//! (emptyDir); directories also get setgid (new entries inherit the group) and `|= 0110`.
//! Symlinks get the group but no chmod (a chmod would reach their target). Everything goes
//! through fds opened no-follow ([`super::dirfd`]), never through a path a container wrote.

use std::ffi::OsStr;

use k8s_openapi::api::core::v1::Pod;
use rustix::fs::{FileType, Stat};
use tracing::warn;

use super::dirfd::{self, DirError, DirFd};

const RO_MASK: u32 = 0o440;
const RW_MASK: u32 = 0o660;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// Whether containers write to the volume (the mask kubelet adds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// The group to give a volume's contents, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsGroup {
    pub gid: u32,
    pub access: Access,
}

/// The pod's fsGroup, when it has one. A value outside a gid's range (the API refuses those)
/// is an error rather than a silently different group.
pub fn pod_fs_group(pod: &Pod) -> Result<Option<u32>, String> {
    let Some(g) = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
    else {
        return Ok(None);
    };
    // (gid_t)-1 means "leave the group" to chown: not a group to give.
    u32::try_from(g)
        .ok()
        .filter(|g| *g != u32::MAX)
        .map(Some)
        .ok_or_else(|| format!("invalid fsGroup {g}"))
}

impl FsGroup {
    pub fn new(gid: u32, access: Access) -> FsGroup {
        FsGroup { gid, access }
    }

    fn mask(self) -> u32 {
        match self.access {
            Access::ReadOnly => RO_MASK,
            Access::ReadWrite => RW_MASK,
        }
    }

    /// The mode a file with `mode` ends with.
    pub fn file_mode(self, mode: u32) -> u32 {
        (mode | self.mask()) & 0o7777
    }

    /// The mode a directory with `mode` ends with.
    pub fn dir_mode(self, mode: u32) -> u32 {
        (mode | self.mask() | EXEC_MASK | SETGID) & 0o7777
    }

    /// Group, then mode, of an open directory (chown first: it may clear set-id bits).
    pub fn apply_dir(self, dir: &DirFd) -> Result<(), DirError> {
        dirfd::set_group(dir, self.gid)?;
        let mode = dirfd::mode_bits(&dir.stat()?);
        dirfd::set_mode(dir, self.dir_mode(mode))
    }

    /// Group and `file_mode(mode)` of a file this agent just created and holds open.
    pub fn apply_file(self, fd: &std::os::fd::OwnedFd, mode: u32) -> Result<(), DirError> {
        dirfd::set_group(fd, self.gid)?;
        dirfd::set_mode(fd, self.file_mode(mode))
    }

    /// Applies the group and masks to `dir` and everything below it, for a tree containers
    /// may have written (an emptyDir found after an agent restart). An entry that cannot be
    /// changed is logged and skipped, as kubelet does; only failing to read `dir` is an error.
    pub fn apply_tree(self, dir: &DirFd) -> Result<(), DirError> {
        self.apply_dir(dir)?;
        let summary = dir.walk(&mut |parent, name, st| {
            if let Err(e) = self.apply_entry(parent, name, st) {
                warn!(entry = ?name, error = %e, "fsGroup ownership not applied");
            }
        })?;
        if summary.too_deep > 0 {
            warn!(
                directories = summary.too_deep,
                depth = dirfd::MAX_DEPTH,
                "fsGroup ownership not applied below the maximum depth"
            );
        }
        Ok(())
    }

    /// One entry of [`apply_tree`]: the entry is opened no-follow and changed through that fd,
    /// so an entry swapped for a symlink after the walk saw it is not followed.
    fn apply_entry(self, parent: &DirFd, name: &OsStr, st: &Stat) -> Result<(), DirError> {
        match dirfd::file_type(st) {
            FileType::Symlink => parent.lchown_group(name, self.gid),
            FileType::Directory => self.apply_dir(&parent.open_dir(name)?),
            _ => {
                // O_PATH: opening a FIFO or a device node this way has no side effect.
                let fd = parent.open_path(name)?;
                let st = dirfd::stat_fd(&fd)?;
                match dirfd::file_type(&st) {
                    FileType::Symlink => parent.lchown_group(name, self.gid),
                    FileType::Directory => Ok(()),
                    _ => {
                        dirfd::set_group_path_fd(&fd, self.gid)?;
                        dirfd::set_mode_path_fd(&fd, self.file_mode(dirfd::mode_bits(&st)))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn masks_follow_kubelet() {
        let ro = FsGroup::new(1234, Access::ReadOnly);
        assert_eq!(ro.file_mode(0o400), 0o440);
        assert_eq!(ro.file_mode(0o644), 0o644);
        assert_eq!(ro.dir_mode(0o755), 0o2755);
        assert_eq!(ro.dir_mode(0o700), 0o2750);
        let rw = FsGroup::new(1234, Access::ReadWrite);
        assert_eq!(rw.file_mode(0o600), 0o660);
        assert_eq!(rw.dir_mode(0o755), 0o2775);
        assert_eq!(rw.dir_mode(0o777), 0o2777);
    }

    #[test]
    fn fs_group_comes_from_the_pod_security_context() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"securityContext": {"fsGroup": 2000}, "containers": []}}))
        .unwrap();
        assert_eq!(pod_fs_group(&pod).unwrap(), Some(2000));
        assert_eq!(pod_fs_group(&Pod::default()).unwrap(), None);
        for bad in [-1i64, 4_294_967_295] {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"securityContext": {"fsGroup": bad}, "containers": []}}))
            .unwrap();
            assert!(pod_fs_group(&pod).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tree_gets_group_and_modes_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let canary = tmp.path().join("canary");
        std::fs::write(&canary, "x").unwrap();
        std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o600)).unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("sub/f"), "x").unwrap();
        std::fs::set_permissions(vol.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink(&canary, vol.join("sub/link")).unwrap();
        let dir = DirFd::open(&vol).unwrap();
        FsGroup::new(4321, Access::ReadWrite)
            .apply_tree(&dir)
            .unwrap();
        let file = std::fs::metadata(vol.join("sub/f")).unwrap();
        assert_eq!(file.gid(), 4321);
        assert_eq!(file.mode() & 0o7777, 0o660);
        let sub = std::fs::metadata(vol.join("sub")).unwrap();
        assert_eq!(sub.gid(), 4321);
        assert_eq!(sub.mode() & 0o2000, 0o2000);
        assert_eq!(sub.mode() & 0o770, 0o770);
        let link = std::fs::symlink_metadata(vol.join("sub/link")).unwrap();
        assert_eq!(link.gid(), 4321, "the link itself is chowned");
        let target = std::fs::metadata(&canary).unwrap();
        assert_eq!(
            target.mode() & 0o7777,
            0o600,
            "the link's target is not touched"
        );
        assert_ne!(target.gid(), 4321);
    }
}
