//! cgroup v1 or v2 on this host, told by the filesystem mounted at /sys/fs/cgroup (cgroup2 is
//! the unified hierarchy; a tmpfs holds v1's per-controller hierarchies, "hybrid" when a
//! `unified` cgroup2 mount sits beside them), and the directories one cgroup has under it: one
//! per hierarchy on v1, one on v2. The runtime creates a pod's cgroups; the agent removes the
//! empty directories once the pod is gone.

use std::path::{Path, PathBuf};

/// Where the cgroup filesystems are mounted.
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// statfs(2)'s f_type of a cgroup2 filesystem.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    /// The version of a mount whose statfs f_type is `fs_type`.
    pub fn of_fs_type(fs_type: u64) -> Self {
        if fs_type == CGROUP2_SUPER_MAGIC {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// The cgroup hierarchies below a mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mount: PathBuf,
    version: CgroupVersion,
}

impl Hierarchy {
    pub fn new(mount: impl Into<PathBuf>, version: CgroupVersion) -> Self {
        Hierarchy {
            mount: mount.into(),
            version,
        }
    }

    /// This host's, from the filesystem at [`CGROUP_MOUNT`].
    ///
    /// # Errors
    /// statfs failed (no cgroup mount).
    pub fn detect() -> std::io::Result<Self> {
        let st = rustix::fs::statfs(CGROUP_MOUNT)?;
        // f_type is a signed or unsigned word by architecture; magic numbers are positive.
        let fs_type = u64::try_from(st.f_type).unwrap_or_default();
        Ok(Self::new(CGROUP_MOUNT, CgroupVersion::of_fs_type(fs_type)))
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Where the hierarchies are mounted.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The directories of the cgroup at `path` (cgroupfs or expanded systemd form, absolute):
    /// below the mount on v2, below every hierarchy directory on v1 (symbolic links such as
    /// `cpu -> cpu,cpuacct` are skipped, their target is listed itself).
    pub fn dirs_of(&self, path: &str) -> Vec<PathBuf> {
        let relative = path.trim_start_matches('/');
        if self.version == CgroupVersion::V2 {
            return vec![self.mount.join(relative)];
        }
        let Ok(entries) = std::fs::read_dir(&self.mount) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().join(relative))
            .collect();
        dirs.sort();
        dirs
    }

    /// Removes the cgroup at `path` where it exists and is empty (a cgroup directory with no
    /// children and no tasks is removable with rmdir); what cannot be removed stays.
    pub fn remove(&self, path: &str) {
        for dir in self.dirs_of(path) {
            if is_real_dir(&dir) {
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_magic_is_v2_and_anything_else_v1() {
        assert_eq!(CgroupVersion::of_fs_type(0x6367_7270), CgroupVersion::V2);
        // tmpfs, the mount of v1's (and hybrid's) hierarchies.
        assert_eq!(CgroupVersion::of_fs_type(0x0102_1994), CgroupVersion::V1);
    }

    /// A recorded v1 tree: controller hierarchies, a symlinked alias and a pod's cgroup.
    fn v1_tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for ctrl in ["cpu,cpuacct", "memory", "pids", "unified"] {
            std::fs::create_dir_all(root.path().join(ctrl).join("kubepods/burstable/podu1"))
                .unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
        root
    }

    #[test]
    fn v1_has_a_directory_per_hierarchy_and_v2_one() {
        let tree = v1_tree();
        let v1 = Hierarchy::new(tree.path(), CgroupVersion::V1);
        let names: Vec<String> = v1
            .dirs_of("/kubepods/burstable/podu1")
            .iter()
            .map(|d| d.strip_prefix(tree.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "cpu,cpuacct/kubepods/burstable/podu1",
                "memory/kubepods/burstable/podu1",
                "pids/kubepods/burstable/podu1",
                "unified/kubepods/burstable/podu1"
            ]
        );
        let v2 = Hierarchy::new("/sys/fs/cgroup", CgroupVersion::V2);
        assert_eq!(
            v2.dirs_of("/kubepods.slice/kubepods-burstable.slice"),
            [PathBuf::from(
                "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice"
            )]
        );
    }

    #[test]
    fn removal_takes_empty_cgroups_and_leaves_the_rest() {
        let tree = v1_tree();
        // memory's pod cgroup still has a child (a container): it stays.
        std::fs::create_dir(tree.path().join("memory/kubepods/burstable/podu1/c1")).unwrap();
        let v1 = Hierarchy::new(tree.path(), CgroupVersion::V1);
        v1.remove("/kubepods/burstable/podu1");
        assert!(!tree.path().join("pids/kubepods/burstable/podu1").exists());
        assert!(
            !tree
                .path()
                .join("cpu,cpuacct/kubepods/burstable/podu1")
                .exists()
        );
        assert!(tree.path().join("memory/kubepods/burstable/podu1").exists());
        assert!(
            tree.path().join("pids/kubepods/burstable").exists(),
            "the QoS cgroup stays"
        );
    }
}
