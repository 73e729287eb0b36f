//! [`PodRuntime`]: the CRI calls the pod side makes, behind one object-safe trait so the pod
//! controller can live on `Arc<dyn PodRuntime>`: [`cri_client::CriClient`] in the agent (thin
//! forwarding, same errors), the recording fake of [`super::fake`] in scenario tests.

use std::time::Duration;

use cri_client::CriError;
use cri_client::api::{
    AuthConfig, Container, ContainerConfig, ContainerEventResponse, ContainerFilter,
    ContainerStatusResponse, ExecSyncResponse, ImageStatusResponse, LinuxContainerResources,
    PodSandbox, PodSandboxConfig, PodSandboxFilter, PodSandboxStatusResponse,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};

/// The runtime's container events, as `GetContainerEvents` streams them.
pub type ContainerEvents = BoxStream<'static, Result<ContainerEventResponse, CriError>>;

/// What the pod side asks of the container runtime: sandboxes, containers, images, exec, logs
/// and events. Each method is the CRI call of the same name.
pub trait PodRuntime: Send + Sync + 'static {
    fn list_pod_sandbox(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> BoxFuture<'_, Result<Vec<PodSandbox>, CriError>>;

    fn pod_sandbox_status<'a>(
        &'a self,
        sandbox_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<PodSandboxStatusResponse, CriError>>;

    /// Returns the new sandbox's id.
    fn run_pod_sandbox<'a>(
        &'a self,
        config: PodSandboxConfig,
        runtime_handler: &'a str,
    ) -> BoxFuture<'a, Result<String, CriError>>;

    fn stop_pod_sandbox<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), CriError>>;

    fn remove_pod_sandbox<'a>(&'a self, sandbox_id: &'a str)
    -> BoxFuture<'a, Result<(), CriError>>;

    fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> BoxFuture<'_, Result<Vec<Container>, CriError>>;

    fn container_status<'a>(
        &'a self,
        container_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ContainerStatusResponse, CriError>>;

    /// Returns the new container's id.
    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String, CriError>>;

    fn start_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), CriError>>;

    fn stop_container<'a>(
        &'a self,
        container_id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CriError>>;

    fn remove_container<'a>(&'a self, container_id: &'a str)
    -> BoxFuture<'a, Result<(), CriError>>;

    /// Changes a running container's cgroup limits (an in-place resize).
    fn update_container_resources<'a>(
        &'a self,
        container_id: &'a str,
        resources: LinuxContainerResources,
    ) -> BoxFuture<'a, Result<(), CriError>>;

    fn exec_sync<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecSyncResponse, CriError>>;

    fn reopen_container_log<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>>;

    fn get_container_events(&self) -> BoxFuture<'_, Result<ContainerEvents, CriError>>;

    fn image_status<'a>(
        &'a self,
        image: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ImageStatusResponse, CriError>>;

    /// Returns the image reference the runtime resolved.
    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> BoxFuture<'a, Result<String, CriError>>;
}

/// The real runtime: every call forwards to the client's method of the same name.
impl PodRuntime for cri_client::CriClient {
    fn list_pod_sandbox(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> BoxFuture<'_, Result<Vec<PodSandbox>, CriError>> {
        Self::list_pod_sandbox(self, filter).boxed()
    }

    fn pod_sandbox_status<'a>(
        &'a self,
        sandbox_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<PodSandboxStatusResponse, CriError>> {
        Self::pod_sandbox_status(self, sandbox_id, verbose).boxed()
    }

    fn run_pod_sandbox<'a>(
        &'a self,
        config: PodSandboxConfig,
        runtime_handler: &'a str,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        Self::run_pod_sandbox(self, config, runtime_handler).boxed()
    }

    fn stop_pod_sandbox<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        Self::stop_pod_sandbox(self, sandbox_id).boxed()
    }

    fn remove_pod_sandbox<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        Self::remove_pod_sandbox(self, sandbox_id).boxed()
    }

    fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> BoxFuture<'_, Result<Vec<Container>, CriError>> {
        Self::list_containers(self, filter).boxed()
    }

    fn container_status<'a>(
        &'a self,
        container_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ContainerStatusResponse, CriError>> {
        Self::container_status(self, container_id, verbose).boxed()
    }

    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        Self::create_container(self, sandbox_id, config, sandbox_config).boxed()
    }

    fn start_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        Self::start_container(self, container_id).boxed()
    }

    fn stop_container<'a>(
        &'a self,
        container_id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        Self::stop_container(self, container_id, timeout).boxed()
    }

    fn remove_container<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        Self::remove_container(self, container_id).boxed()
    }

    fn update_container_resources<'a>(
        &'a self,
        container_id: &'a str,
        resources: LinuxContainerResources,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        Self::update_container_resources(
            self,
            cri_client::api::UpdateContainerResourcesRequest {
                container_id: container_id.to_string(),
                linux: Some(resources),
                ..Default::default()
            },
        )
        .boxed()
    }

    fn exec_sync<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecSyncResponse, CriError>> {
        Self::exec_sync(self, container_id, cmd, timeout).boxed()
    }

    fn reopen_container_log<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        Self::reopen_container_log(self, container_id).boxed()
    }

    fn get_container_events(&self) -> BoxFuture<'_, Result<ContainerEvents, CriError>> {
        async move {
            let stream = Self::get_container_events(self).await?;
            Ok(stream.boxed())
        }
        .boxed()
    }

    fn image_status<'a>(
        &'a self,
        image: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ImageStatusResponse, CriError>> {
        Self::image_status(self, image, verbose).boxed()
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        Self::pull_image(self, image, auth, sandbox_config).boxed()
    }
}
