//! A [`PodRuntime`] wrapper that records every call in order and fails the next N calls of a
//! method on request, around any runtime: the in-memory [`super::fake::FakeRuntime`] in fast
//! scenarios, containerd in the same scenarios' cluster lane. An injected failure is an
//! Unknown gRPC status and never reaches the wrapped runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_client::api::{
    AuthConfig, Container, ContainerConfig, ContainerFilter, ContainerStatusResponse,
    ExecSyncResponse, ImageStatusResponse, LinuxContainerResources, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxStatusResponse,
};
use cri_client::{Code, CriError};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{ContainerEvents, PodRuntime};

/// The CRI method a call was, for counting calls and injecting failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ListPodSandbox,
    PodSandboxStatus,
    RunPodSandbox,
    StopPodSandbox,
    RemovePodSandbox,
    ListContainers,
    ContainerStatus,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
    UpdateContainerResources,
    ExecSync,
    ReopenContainerLog,
    GetContainerEvents,
    ImageStatus,
    PullImage,
}

impl Method {
    /// The client's name for the operation, as its errors carry it.
    pub fn op(self) -> &'static str {
        match self {
            Method::ListPodSandbox => "list_pod_sandbox",
            Method::PodSandboxStatus => "pod_sandbox_status",
            Method::RunPodSandbox => "run_pod_sandbox",
            Method::StopPodSandbox => "stop_pod_sandbox",
            Method::RemovePodSandbox => "remove_pod_sandbox",
            Method::ListContainers => "list_containers",
            Method::ContainerStatus => "container_status",
            Method::CreateContainer => "create_container",
            Method::StartContainer => "start_container",
            Method::StopContainer => "stop_container",
            Method::RemoveContainer => "remove_container",
            Method::UpdateContainerResources => "update_container_resources",
            Method::ExecSync => "exec_sync",
            Method::ReopenContainerLog => "reopen_container_log",
            Method::GetContainerEvents => "get_container_events",
            Method::ImageStatus => "image_status",
            Method::PullImage => "pull_image",
        }
    }
}

/// One recorded call: the method, the id or name it was about, and a stop's timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: Method,
    /// Sandbox or container id, container name for CreateContainer, image for image calls,
    /// the handler for RunPodSandbox.
    pub target: String,
    pub timeout: Option<Duration>,
}

#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    failures: HashMap<Method, (u32, String)>,
}

/// Records the calls made to `inner` and fails those a test asked to fail.
pub struct Recording {
    inner: Arc<dyn PodRuntime>,
    log: Mutex<Log>,
}

impl Recording {
    pub fn new(inner: Arc<dyn PodRuntime>) -> Self {
        Recording {
            inner,
            log: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next `times` calls of `method` fail with `message` (an Unknown gRPC status).
    pub fn fail_next(&self, method: Method, times: u32, message: &str) {
        self.lock()
            .failures
            .insert(method, (times, message.to_string()));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls so far of `method`, in order.
    pub fn calls_of(&self, method: Method) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Records the call, then fails it if a failure was injected for its method.
    fn record(
        &self,
        method: Method,
        target: &str,
        timeout: Option<Duration>,
    ) -> Result<(), CriError> {
        let mut log = self.lock();
        log.calls.push(Call {
            method,
            target: target.to_string(),
            timeout,
        });
        let Some((left, message)) = log.failures.remove(&method) else {
            return Ok(());
        };
        if left == 0 {
            return Ok(());
        }
        if left > 1 {
            log.failures.insert(method, (left - 1, message.clone()));
        }
        Err(CriError::Status {
            op: method.op(),
            code: Code::Unknown,
            message,
        })
    }

    /// Records the call; runs `call` on the wrapped runtime unless it is to fail.
    fn pass<'a, T: Send + 'a>(
        &'a self,
        method: Method,
        target: &str,
        timeout: Option<Duration>,
        call: impl FnOnce(&'a dyn PodRuntime) -> BoxFuture<'a, Result<T, CriError>>,
    ) -> BoxFuture<'a, Result<T, CriError>> {
        match self.record(method, target, timeout) {
            Ok(()) => call(self.inner.as_ref()),
            Err(e) => async move { Err(e) }.boxed(),
        }
    }
}

impl PodRuntime for Recording {
    fn list_pod_sandbox(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> BoxFuture<'_, Result<Vec<PodSandbox>, CriError>> {
        self.pass(Method::ListPodSandbox, "", None, |r| {
            r.list_pod_sandbox(filter)
        })
    }

    fn pod_sandbox_status<'a>(
        &'a self,
        sandbox_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<PodSandboxStatusResponse, CriError>> {
        self.pass(Method::PodSandboxStatus, sandbox_id, None, move |r| {
            r.pod_sandbox_status(sandbox_id, verbose)
        })
    }

    fn run_pod_sandbox<'a>(
        &'a self,
        config: PodSandboxConfig,
        runtime_handler: &'a str,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        self.pass(Method::RunPodSandbox, runtime_handler, None, move |r| {
            r.run_pod_sandbox(config, runtime_handler)
        })
    }

    fn stop_pod_sandbox<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(Method::StopPodSandbox, sandbox_id, None, move |r| {
            r.stop_pod_sandbox(sandbox_id)
        })
    }

    fn remove_pod_sandbox<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(Method::RemovePodSandbox, sandbox_id, None, move |r| {
            r.remove_pod_sandbox(sandbox_id)
        })
    }

    fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> BoxFuture<'_, Result<Vec<Container>, CriError>> {
        self.pass(Method::ListContainers, "", None, |r| {
            r.list_containers(filter)
        })
    }

    fn container_status<'a>(
        &'a self,
        container_id: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ContainerStatusResponse, CriError>> {
        self.pass(Method::ContainerStatus, container_id, None, move |r| {
            r.container_status(container_id, verbose)
        })
    }

    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.pass(Method::CreateContainer, &name, None, move |r| {
            r.create_container(sandbox_id, config, sandbox_config)
        })
    }

    fn start_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(Method::StartContainer, container_id, None, move |r| {
            r.start_container(container_id)
        })
    }

    fn stop_container<'a>(
        &'a self,
        container_id: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(
            Method::StopContainer,
            container_id,
            Some(timeout),
            move |r| r.stop_container(container_id, timeout),
        )
    }

    fn remove_container<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(Method::RemoveContainer, container_id, None, move |r| {
            r.remove_container(container_id)
        })
    }

    fn update_container_resources<'a>(
        &'a self,
        container_id: &'a str,
        resources: LinuxContainerResources,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(
            Method::UpdateContainerResources,
            container_id,
            None,
            move |r| r.update_container_resources(container_id, resources),
        )
    }

    fn exec_sync<'a>(
        &'a self,
        container_id: &'a str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecSyncResponse, CriError>> {
        self.pass(Method::ExecSync, container_id, None, move |r| {
            r.exec_sync(container_id, cmd, timeout)
        })
    }

    fn reopen_container_log<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.pass(Method::ReopenContainerLog, container_id, None, move |r| {
            r.reopen_container_log(container_id)
        })
    }

    fn get_container_events(&self) -> BoxFuture<'_, Result<ContainerEvents, CriError>> {
        self.pass(Method::GetContainerEvents, "", None, |r| {
            r.get_container_events()
        })
    }

    fn image_status<'a>(
        &'a self,
        image: &'a str,
        verbose: bool,
    ) -> BoxFuture<'a, Result<ImageStatusResponse, CriError>> {
        self.pass(Method::ImageStatus, image, None, move |r| {
            r.image_status(image, verbose)
        })
    }

    fn pull_image<'a>(
        &'a self,
        image: &'a str,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        self.pass(Method::PullImage, image, None, move |r| {
            r.pull_image(image, auth, sandbox_config)
        })
    }
}
