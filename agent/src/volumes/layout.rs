//! Where a pod's volumes live on the node, as kubelet lays them out:
//! `ROOT/pods/UID/volumes/PLUGIN/NAME` (the plugin name with `/` escaped as `~`, e.g.
//! `kubernetes.io~secret`) and subPath bind mounts under
//! `ROOT/pods/UID/volume-subpaths/VOLUME/CONTAINER/INDEX`. The directories down to a
//! plugin's are kubelet's 0750 (root's only: containers reach their volumes through bind
//! mounts, never by walking these), made with that exact mode and corrected when found with
//! another.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::dirfd::DirFd;

/// kubelet's mode for ROOT/pods, ROOT/pods/UID, .../volumes and .../volumes/PLUGIN.
pub const POD_DIR_MODE: u32 = 0o750;

/// Paths below one agent root dir.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

/// kubelet's escaping of a plugin name for a directory: `kubernetes.io/secret` ->
/// `kubernetes.io~secret`.
pub fn escape_plugin(plugin: &str) -> String {
    plugin.replace('/', "~")
}

/// The inverse of [`escape_plugin`].
pub fn unescape_plugin(dir: &str) -> String {
    dir.replace('~', "/")
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }

    /// ROOT/pods.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    /// ROOT/pods/UID.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    /// ROOT/pods/UID/volumes.
    pub fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes")
    }

    /// ROOT/pods/UID/volumes/PLUGIN~ESCAPED/NAME.
    pub fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.volumes_dir(uid).join(escape_plugin(plugin)).join(name)
    }

    /// ROOT/pods/UID/volume-subpaths/VOLUME/CONTAINER/INDEX: where a subPath is bind-mounted.
    pub fn subpath_target(
        &self,
        uid: &str,
        volume: &str,
        container: &str,
        index: usize,
    ) -> PathBuf {
        self.pod_dir(uid)
            .join("volume-subpaths")
            .join(volume)
            .join(container)
            .join(index.to_string())
    }

    /// Opens ROOT/pods (made 0750 if missing), the root dir itself made 0750 if missing (an
    /// existing one keeps the mode its owner gave it). The root is the administrator's choice
    /// and may be a symlink; nothing below it is followed.
    fn open_pods(&self) -> io::Result<DirFd> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(POD_DIR_MODE)
            .create(&self.root)?;
        let root = DirFd::open_following(&self.root)?;
        Ok(root.ensure_dir("pods", POD_DIR_MODE)?)
    }

    /// Makes ROOT/pods and ROOT/pods/UID with mode 0750 (fixing the mode of existing ones);
    /// returns ROOT/pods/UID. `uid` must be one path component.
    pub fn create_pod_dir(&self, uid: &str) -> io::Result<PathBuf> {
        self.open_pods()?.ensure_dir(uid, POD_DIR_MODE)?;
        Ok(self.pod_dir(uid))
    }

    /// Makes ROOT/pods/UID/volumes/PLUGIN~ESCAPED and its parents with mode 0750; returns it.
    pub fn create_plugin_dir(&self, uid: &str, plugin: &str) -> io::Result<PathBuf> {
        let escaped = escape_plugin(plugin);
        self.open_pods()?
            .ensure_dir(uid, POD_DIR_MODE)?
            .ensure_dir("volumes", POD_DIR_MODE)?
            .ensure_dir(&escaped, POD_DIR_MODE)?;
        Ok(self.volumes_dir(uid).join(escaped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubelet() {
        let l = Layout::new(Path::new("/var/lib/kubelet"));
        assert_eq!(
            l.volume_dir("u1", "kubernetes.io/secret", "token"),
            Path::new("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~secret/token")
        );
        assert_eq!(
            l.subpath_target("u1", "v", "c", 2),
            Path::new("/var/lib/kubelet/pods/u1/volume-subpaths/v/c/2")
        );
        assert_eq!(
            unescape_plugin("kubernetes.io~empty-dir"),
            "kubernetes.io/empty-dir"
        );
    }

    #[test]
    fn pod_and_plugin_dirs_are_0750() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(&d.path().join("root"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(l.create_pod_dir("u1").unwrap(), l.pod_dir("u1"));
        assert_eq!(mode(&l.pods_dir()), 0o750);
        assert_eq!(mode(&l.pod_dir("u1")), 0o750);
        std::fs::set_permissions(l.pod_dir("u1"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let plugin = l.create_plugin_dir("u1", "kubernetes.io/secret").unwrap();
        assert_eq!(plugin, l.volumes_dir("u1").join("kubernetes.io~secret"));
        for p in [l.pod_dir("u1"), l.volumes_dir("u1"), plugin] {
            assert_eq!(mode(&p), 0o750, "{p:?}");
        }
        assert!(l.create_pod_dir("../x").is_err());
        assert!(l.create_pod_dir("a/b").is_err());
    }
}
