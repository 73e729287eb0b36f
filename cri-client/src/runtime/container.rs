//! Container lifecycle and queries.

use std::time::Duration;

use super::whole_seconds;
use crate::client::Call;
use crate::{CriClient, CriError, api};

impl CriClient {
    /// `CreateContainer`: creates a container in a sandbox; returns its id.
    /// `sandbox_config` is the config the sandbox was run with.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried.
    pub async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: api::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let request = api::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let call = Call::once("create_container", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.create_container(r).await
            })
            .await?;
        Ok(response.container_id)
    }

    /// `StartContainer`.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried.
    pub async fn start_container(&self, container_id: &str) -> Result<(), CriError> {
        let request = api::StartContainerRequest {
            container_id: container_id.to_owned(),
        };
        let call = Call::once("start_container", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.start_container(r).await
        })
        .await?;
        Ok(())
    }

    /// `StopContainer`: signals the container and kills it after `timeout`
    /// (sent rounded up to whole seconds; zero kills at once). The call's
    /// deadline is `timeout` plus [`crate::ClientOptions::runtime_grace`].
    /// Idempotent in CRI, so it is retried.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn stop_container(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> Result<(), CriError> {
        let request = api::StopContainerRequest {
            container_id: container_id.to_owned(),
            timeout: whole_seconds(timeout),
        };
        let deadline = timeout.saturating_add(self.options().runtime_grace);
        let call = Call::idempotent("stop_container", deadline);
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.stop_container(r).await
        })
        .await?;
        Ok(())
    }

    /// `RemoveContainer`: idempotent in CRI, so it is retried.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn remove_container(&self, container_id: &str) -> Result<(), CriError> {
        let request = api::RemoveContainerRequest {
            container_id: container_id.to_owned(),
        };
        let call = Call::idempotent("remove_container", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.remove_container(r).await
        })
        .await?;
        Ok(())
    }

    /// `ListContainers`: containers matching `filter` (all when `None`).
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn list_containers(
        &self,
        filter: Option<api::ContainerFilter>,
    ) -> Result<Vec<api::Container>, CriError> {
        let request = api::ListContainersRequest { filter };
        let call = Call::idempotent("list_containers", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.list_containers(r).await
            })
            .await?;
        Ok(response.containers)
    }

    /// `ContainerStatus`: state, exit code, reason and, with `verbose`,
    /// runtime details in `info`.
    ///
    /// # Errors
    /// [`CriError::NotFound`] for an unknown id, or any other [`CriError`].
    pub async fn container_status(
        &self,
        container_id: &str,
        verbose: bool,
    ) -> Result<api::ContainerStatusResponse, CriError> {
        let request = api::ContainerStatusRequest {
            container_id: container_id.to_owned(),
            verbose,
        };
        let call = Call::idempotent("container_status", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.container_status(r).await
        })
        .await
    }

    /// `UpdateContainerResources`: changes a running container's limits.
    ///
    /// # Errors
    /// Any [`CriError`]; not retried.
    pub async fn update_container_resources(
        &self,
        request: api::UpdateContainerResourcesRequest,
    ) -> Result<(), CriError> {
        let call = Call::once("update_container_resources", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.update_container_resources(r).await
        })
        .await?;
        Ok(())
    }

    /// `ReopenContainerLog`: asks the runtime to reopen the container's log
    /// file (after the agent rotated it).
    ///
    /// # Errors
    /// Any [`CriError`]; not retried.
    pub async fn reopen_container_log(&self, container_id: &str) -> Result<(), CriError> {
        let request = api::ReopenContainerLogRequest {
            container_id: container_id.to_owned(),
        };
        let call = Call::once("reopen_container_log", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.reopen_container_log(r).await
        })
        .await?;
        Ok(())
    }

    /// `CheckpointContainer`: checkpoints a container to `request.location`.
    /// The deadline is `request.timeout` seconds (or the request timeout when
    /// zero) plus [`crate::ClientOptions::runtime_grace`].
    ///
    /// # Errors
    /// Any [`CriError`]; not retried.
    pub async fn checkpoint_container(
        &self,
        request: api::CheckpointContainerRequest,
    ) -> Result<(), CriError> {
        let own = u64::try_from(request.timeout)
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let deadline = own
            .unwrap_or(self.request_timeout())
            .saturating_add(self.options().runtime_grace);
        let call = Call::once("checkpoint_container", deadline);
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.checkpoint_container(r).await
        })
        .await?;
        Ok(())
    }
}
