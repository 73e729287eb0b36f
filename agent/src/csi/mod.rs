//! CSI volumes on this node, as kubelet's CSI plugin does them:
//! - [`watcher`]: discovers node plugins through ROOT/plugins_registry (the plugin-registration
//!   protocol node-driver-registrar speaks) and registers them ([`csinode`]: CSINode entry and
//!   topology labels on the Node);
//! - [`operations`]: mount/unmount of a pod's CSI volume (VolumeAttachment wait, stage into
//!   the global per-volume path, publish into the pod's volume dir) and volume stats;
//! - [`source`]: resolving inline CSI, persistentVolumeClaim and ephemeral volumes to the CSI
//!   volume behind them; [`paths`]: kubelet's directories and vol_data.json.
//!
//! [`Csi::mount`] / [`Csi::unmount`] are what the volume manager calls for `kubernetes.io/csi`
//! volumes.

pub mod csinode;
pub mod error;
pub mod operations;
pub mod paths;
pub mod plugin;
pub mod registry;
pub mod source;
pub mod watcher;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use error::CsiMountError;
pub use operations::VolumeStats;
pub use registry::{Driver, Registry};

/// The agent's CSI plugin: registered drivers plus the node operations on them. Cheap to clone.
#[derive(Clone)]
pub struct Csi {
    root: PathBuf,
    node: String,
    client: kube::Client,
    registry: Registry,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Csi {
    /// `root` is the agent's root dir (kubelet's --root-dir), `node` the Node name.
    pub fn new(root: &Path, node: &str, client: kube::Client) -> Csi {
        Csi {
            root: root.to_path_buf(),
            node: node.to_string(),
            client,
            registry: Registry::default(),
            locks: Arc::default(),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registration watcher for ROOT/plugins_registry; run it with
    /// [`watcher::Watcher::run`].
    pub fn watcher(&self) -> watcher::Watcher {
        watcher::Watcher {
            dir: paths::registry_dir(&self.root),
            node: self.node.clone(),
            client: self.client.clone(),
            registry: self.registry.clone(),
        }
    }

    /// Serialises operations on one volume (stage/unstage decisions of two pods).
    async fn lock(&self, driver: &str, handle: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = match self.locks.lock() {
                Ok(m) => m,
                Err(poisoned) => poisoned.into_inner(),
            };
            Arc::clone(map.entry(format!("{driver}/{handle}")).or_default())
        };
        lock.lock_owned().await
    }
}
