//! [`RuntimeInfo`] over a real CRI runtime.

use cri_client::{CriClient, CriError};

use super::{RuntimeCondition, RuntimeHandler, RuntimeInfo, RuntimeStatus};

/// The CRI runtime the agent drives.
#[derive(Clone)]
pub struct CriRuntime {
    client: CriClient,
}

impl CriRuntime {
    pub fn new(client: CriClient) -> Self {
        CriRuntime { client }
    }

    /// The underlying client, for the pod side.
    pub fn client(&self) -> &CriClient {
        &self.client
    }
}

impl RuntimeInfo for CriRuntime {
    async fn version(&self) -> Result<String, CriError> {
        let v = self.client.version().await?;
        Ok(format!("{}://{}", v.runtime_name, v.runtime_version))
    }

    async fn status(&self) -> Result<RuntimeStatus, CriError> {
        let status = self.client.status(false).await?;
        let conditions = status
            .status
            .map(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| RuntimeCondition {
                kind: c.r#type,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect();
        let handlers = status
            .runtime_handlers
            .into_iter()
            .map(|h| {
                let features = h.features.unwrap_or_default();
                RuntimeHandler {
                    name: h.name,
                    recursive_read_only_mounts: features.recursive_read_only_mounts,
                    user_namespaces: features.user_namespaces,
                }
            })
            .collect();
        Ok(RuntimeStatus {
            conditions,
            handlers,
        })
    }
}
