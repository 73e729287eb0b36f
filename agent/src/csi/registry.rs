//! The CSI drivers registered on this node, by name.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use csi_client::{CsiClient, CsiError, NodeCapabilities};

/// One registered node plugin.
#[derive(Debug, Clone)]
pub struct Driver {
    pub name: String,
    pub endpoint: String,
    pub client: CsiClient,
    pub capabilities: NodeCapabilities,
    pub node_id: String,
    pub max_volumes: i64,
    pub topology: BTreeMap<String, String>,
}

impl Driver {
    /// Runs one CSI call and records its duration (`csi_operations_seconds`).
    pub async fn call<T, F>(&self, method: &'static str, call: F) -> Result<T, CsiError>
    where
        F: Future<Output = Result<T, CsiError>>,
    {
        timed(method, &self.name, call).await
    }
}

/// Runs `call` and records it with [`crate::metrics::observe_csi_code`].
pub async fn timed<T, F>(method: &'static str, driver: &str, call: F) -> Result<T, CsiError>
where
    F: Future<Output = Result<T, CsiError>>,
{
    let start = Instant::now();
    let result = call.await;
    let seconds = start.elapsed().as_secs_f64();
    let code = match &result {
        Ok(_) => "OK".to_string(),
        Err(e) => e
            .code()
            .map_or_else(|| "Unknown".to_string(), |c| format!("{c:?}")),
    };
    crate::metrics::observe_csi_code(method, driver, seconds, &code);
    result
}

/// Registered drivers, shared by the registration watcher and the volume operations.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    drivers: Arc<RwLock<HashMap<String, Driver>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Driver> {
        self.drivers.read().ok()?.get(name).cloned()
    }

    pub fn insert(&self, driver: Driver) {
        if let Ok(mut map) = self.drivers.write() {
            map.insert(driver.name.clone(), driver);
        }
    }

    pub fn remove(&self, name: &str) -> Option<Driver> {
        self.drivers.write().ok()?.remove(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .drivers
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}
