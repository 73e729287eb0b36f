//! Pod sandbox lifecycle and queries.

use crate::client::Call;
use crate::{CriClient, CriError, api};

impl CriClient {
    /// `RunPodSandbox`: creates and starts a sandbox; returns its id.
    /// `runtime_handler` selects a runtime class ("" for the default).
    ///
    /// # Errors
    /// Any [`CriError`]; never retried (a retry could leak a sandbox).
    pub async fn run_pod_sandbox(
        &self,
        config: api::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let request = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_owned(),
        };
        let response = self
            .invoke(
                Call::once("run_pod_sandbox", self.request_timeout()),
                &self.runtime,
                request,
                |mut c, r| async move { c.run_pod_sandbox(r).await },
            )
            .await?;
        Ok(response.pod_sandbox_id)
    }

    /// `StopPodSandbox`: stops the sandbox's processes and releases its
    /// network. Idempotent in CRI, so it is retried.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let request = api::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        let call = Call::idempotent("stop_pod_sandbox", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.stop_pod_sandbox(r).await
        })
        .await?;
        Ok(())
    }

    /// `RemovePodSandbox`: removes the sandbox and its containers. Idempotent
    /// in CRI (no error if it is already gone), so it is retried.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<(), CriError> {
        let request = api::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        let call = Call::idempotent("remove_pod_sandbox", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.remove_pod_sandbox(r).await
        })
        .await?;
        Ok(())
    }

    /// `PodSandboxStatus`: the sandbox's state, network and, with `verbose`,
    /// runtime details in `info`.
    ///
    /// # Errors
    /// [`CriError::NotFound`] for an unknown id, or any other [`CriError`].
    pub async fn pod_sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<api::PodSandboxStatusResponse, CriError> {
        let request = api::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            verbose,
        };
        let call = Call::idempotent("pod_sandbox_status", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.pod_sandbox_status(r).await
        })
        .await
    }

    /// `ListPodSandbox`: sandboxes matching `filter` (all when `None`).
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn list_pod_sandbox(
        &self,
        filter: Option<api::PodSandboxFilter>,
    ) -> Result<Vec<api::PodSandbox>, CriError> {
        let request = api::ListPodSandboxRequest { filter };
        let call = Call::idempotent("list_pod_sandbox", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.list_pod_sandbox(r).await
            })
            .await?;
        Ok(response.items)
    }
}
