//! Plugin discovery as kubelet's plugin manager does it: registration sockets appear in
//! ROOT/plugins_registry (put there by node-driver-registrar or a driver itself); for each one
//! the agent calls GetInfo, validates and registers the CSI driver (Identity, NodeGetInfo,
//! NodeGetCapabilities, CSINode, topology labels) and answers NotifyRegistrationStatus. A
//! socket that goes away unregisters its driver. The directory is polled, so sockets already
//! there when the agent (re)starts are registered again.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use csi_client::proto::registration::CSI_PLUGIN;
use csi_client::{CsiClient, CsiTimeouts, RegistrationClient};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::csinode;
use super::registry::{Driver, Registry, timed};
use crate::backoff::KeyedBackoff;

const POLL: Duration = Duration::from_secs(1);
/// A socket that failed to register is tried again after 2 s, doubling up to this.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Registers the drivers announced in one plugins_registry directory.
pub struct Watcher {
    pub dir: PathBuf,
    pub node: String,
    pub client: kube::Client,
    pub registry: Registry,
}

/// Sockets (by path) directly in `dir`.
fn sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// A CSI registrar must offer a 1.x version (kubelet rejects 0.x since 1.17... and anything else).
pub fn supported(versions: &[String]) -> bool {
    versions
        .iter()
        .any(|v| v.trim_start_matches('v').starts_with("1."))
}

impl Watcher {
    pub async fn run(self, cancel: CancellationToken) {
        let _ = std::fs::create_dir_all(&self.dir);
        let mut registered: HashMap<PathBuf, String> = HashMap::new();
        // Sockets that failed to register, until they register or go away.
        let mut failed: KeyedBackoff<PathBuf, Instant> =
            KeyedBackoff::new(POLL * 2, MAX_RETRY).never_forgotten();
        let mut csinode_exists = false;
        loop {
            // The CSINode exists from the start, drivers or not (kubelet's nodeinfomanager):
            // tried each round until the Node is registered.
            if !csinode_exists {
                match super::csinode::ensure(&self.client, &self.node).await {
                    Ok(()) => csinode_exists = true,
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => warn!(error = %e, "cannot create the node's CSINode; retrying"),
                }
            }
            let present = sockets(&self.dir);
            for gone in registered
                .keys()
                .filter(|s| !present.contains(s))
                .cloned()
                .collect::<Vec<_>>()
            {
                if let Some(name) = registered.remove(&gone) {
                    self.unregister(&name).await;
                }
            }
            failed.retain(|s| present.contains(s));
            for socket in present {
                if registered.contains_key(&socket)
                    || failed
                        .remaining_since_update(&socket, Instant::now())
                        .is_some()
                {
                    continue;
                }
                match self.register(&socket).await {
                    Ok(name) => {
                        failed.reset(&socket);
                        registered.insert(socket, name);
                    }
                    Err(e) => {
                        let delay = failed.next(socket.clone(), Instant::now());
                        warn!(socket = %socket.display(), error = %e, retry_in = ?delay, "plugin registration failed");
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Registers the plugin behind `socket`; returns its driver name.
    async fn register(&self, socket: &Path) -> Result<String, String> {
        let reg = RegistrationClient::new(&socket.to_string_lossy(), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let info = reg.get_info().await.map_err(|e| e.to_string())?;
        if info.r#type != CSI_PLUGIN {
            // Device and DRA plugins are not this agent's; leave them unanswered.
            return Err(format!("plugin type {:?} is not supported", info.r#type));
        }
        let outcome = self.register_csi(socket, &info).await;
        let (ok, error) = match &outcome {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e.clone()),
        };
        if let Err(e) = reg.notify_registration_status(ok, &error).await {
            warn!(driver = %info.name, error = %e, "NotifyRegistrationStatus failed");
        }
        outcome.map(|()| info.name)
    }

    async fn register_csi(
        &self,
        socket: &Path,
        info: &csi_client::proto::registration::PluginInfo,
    ) -> Result<(), String> {
        let name = info.name.as_str();
        if name.is_empty() {
            return Err("plugin announced an empty name".into());
        }
        if !supported(&info.supported_versions) {
            return Err(format!(
                "none of CSI driver {name}'s versions {:?} is supported (want 1.x)",
                info.supported_versions
            ));
        }
        let endpoint = if info.endpoint.is_empty() {
            socket.to_string_lossy().into_owned()
        } else {
            info.endpoint.clone()
        };
        let client =
            CsiClient::new(&endpoint, CsiTimeouts::default()).map_err(|e| e.to_string())?;
        let plugin = timed("GetPluginInfo", name, client.get_plugin_info())
            .await
            .map_err(|e| e.to_string())?;
        if plugin.name != name {
            return Err(format!(
                "registrar announced driver {name:?} but the plugin calls itself {:?}",
                plugin.name
            ));
        }
        let node = timed("NodeGetInfo", name, client.node_get_info())
            .await
            .map_err(|e| e.to_string())?;
        let capabilities = timed("NodeGetCapabilities", name, client.node_get_capabilities())
            .await
            .map_err(|e| e.to_string())?;
        let topology: BTreeMap<String, String> = node
            .accessible_topology
            .map(|t| t.segments.into_iter().collect())
            .unwrap_or_default();
        let driver = Driver {
            name: name.to_string(),
            endpoint,
            client,
            capabilities,
            node_id: node.node_id,
            max_volumes: node.max_volumes_per_node,
            topology,
        };
        csinode::label_node(&self.client, &self.node, &driver.topology)
            .await
            .map_err(|e| format!("labelling node {}: {e}", self.node))?;
        csinode::set_driver(
            &self.client,
            &self.node,
            name,
            Some(csinode::driver_entry(&driver)),
        )
        .await
        .map_err(|e| format!("updating CSINode {}: {e}", self.node))?;
        info!(driver = name, node_id = %driver.node_id, endpoint = %driver.endpoint,
            capabilities = ?driver.capabilities, "CSI driver registered");
        self.registry.insert(driver);
        Ok(())
    }

    async fn unregister(&self, name: &str) {
        self.registry.remove(name);
        if let Err(e) = csinode::set_driver(&self.client, &self.node, name, None).await {
            warn!(driver = name, error = %e, "removing the driver from CSINode failed");
        }
        info!(
            driver = name,
            "CSI driver unregistered (registration socket removed)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_1x_versions_are_supported() {
        assert!(supported(&["1.0.0".into()]));
        assert!(supported(&["0.3.0".into(), "v1.2.0".into()]));
        assert!(!supported(&["0.3.0".into()]));
        assert!(!supported(&[]));
    }
}
