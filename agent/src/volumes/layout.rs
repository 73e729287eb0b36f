//! Where a pod's volumes live on the node, as kubelet lays them out:
//! `ROOT/pods/UID/volumes/PLUGIN/NAME` (the plugin name with `/` escaped as `~`, e.g.
//! `kubernetes.io~secret`) and subPath bind mounts under
//! `ROOT/pods/UID/volume-subpaths/VOLUME/CONTAINER/INDEX`.

use std::path::{Path, PathBuf};

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
}
