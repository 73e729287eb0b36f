//! Runtime-wide calls: version, status and runtime configuration.

use crate::client::Call;
use crate::{CriClient, CriError, api};

/// The CRI API version this client speaks, sent in `VersionRequest`.
const API_VERSION: &str = "v1";

impl CriClient {
    /// `Version`: the runtime's name, version and CRI API version.
    ///
    /// # Errors
    /// Any [`CriError`]; retried while the runtime is unavailable.
    pub async fn version(&self) -> Result<api::VersionResponse, CriError> {
        let request = api::VersionRequest {
            version: API_VERSION.to_owned(),
        };
        self.invoke(
            Call::idempotent("version", self.request_timeout()),
            &self.runtime,
            request,
            |mut c, r| async move { c.version(r).await },
        )
        .await
    }

    /// `Status`: runtime conditions (`RuntimeReady`, `NetworkReady`) and, with
    /// `verbose`, runtime-specific details in `info`.
    ///
    /// # Errors
    /// Any [`CriError`]; retried while the runtime is unavailable.
    pub async fn status(&self, verbose: bool) -> Result<api::StatusResponse, CriError> {
        let request = api::StatusRequest { verbose };
        self.invoke(
            Call::idempotent("status", self.request_timeout()),
            &self.runtime,
            request,
            |mut c, r| async move { c.status(r).await },
        )
        .await
    }

    /// `UpdateRuntimeConfig`: pushes node-level configuration (the pod CIDR).
    ///
    /// # Errors
    /// Any [`CriError`]; not retried.
    pub async fn update_runtime_config(
        &self,
        runtime_config: api::RuntimeConfig,
    ) -> Result<(), CriError> {
        let request = api::UpdateRuntimeConfigRequest {
            runtime_config: Some(runtime_config),
        };
        let call = Call::once("update_runtime_config", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.update_runtime_config(r).await
        })
        .await?;
        Ok(())
    }

    /// `RuntimeConfig`: configuration the runtime wants the agent to follow
    /// (for example its cgroup driver).
    ///
    /// # Errors
    /// Any [`CriError`]; `Unimplemented` from runtimes that predate it.
    pub async fn runtime_config(&self) -> Result<api::RuntimeConfigResponse, CriError> {
        let call = Call::idempotent("runtime_config", self.request_timeout());
        self.invoke(
            call,
            &self.runtime,
            api::RuntimeConfigRequest {},
            |mut c, r| async move { c.runtime_config(r).await },
        )
        .await
    }
}
