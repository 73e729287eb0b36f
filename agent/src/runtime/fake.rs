//! An in-memory [`PodRuntime`] for unit and scenario tests (youki's `syscall/test.rs` shape):
//! it keeps sandboxes and containers with their states and lets a test make a container exit.
//! Every image is present; exec answers exit code 0. Timestamps come from a [`WallClock`], the
//! same one the pod side reads, so paused tokio time drives both. Recording calls and injecting
//! failures is [`super::recording::Recording`]'s job, over this fake or over containerd alike.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use cri_client::api::{
    AuthConfig, Container, ContainerConfig, ContainerFilter, ContainerMetadata, ContainerResources,
    ContainerState, ContainerStatus, ContainerStatusResponse, ExecSyncResponse, Image, ImageSpec,
    ImageStatusResponse, LinuxContainerResources, NamespaceMode, PodSandbox, PodSandboxConfig,
    PodSandboxFilter, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
    PodSandboxStatusResponse,
};
use cri_client::{Code, CriError};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{ContainerEvents, PodRuntime, WallClock};

struct FakeSandbox {
    id: String,
    config: PodSandboxConfig,
    ready: bool,
    created_at: i64,
}

struct FakeContainer {
    id: String,
    sandbox_id: String,
    config: ContainerConfig,
    state: ContainerState,
    created_at: i64,
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
}

#[derive(Default)]
struct State {
    sandboxes: Vec<FakeSandbox>,
    containers: Vec<FakeContainer>,
    next_id: u64,
    last_nanos: i64,
}

/// The fake runtime.
pub struct FakeRuntime {
    clock: WallClock,
    state: Mutex<State>,
}

/// The IP every fake sandbox gets.
pub const POD_IP: &str = "10.244.0.7";

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0)
}

fn matches(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn not_found(op: &'static str, id: &str) -> CriError {
    CriError::NotFound {
        op,
        message: format!("{id} not found"),
    }
}

impl FakeRuntime {
    pub fn new(clock: WallClock) -> Self {
        FakeRuntime {
            clock,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the newest running container called `name` exit now with `exit_code`.
    /// Returns its id, or None when no such container runs.
    pub fn exit_container(&self, name: &str, exit_code: i32) -> Option<String> {
        let now = nanos(self.clock.now());
        let mut state = self.lock();
        let c =
            state.containers.iter_mut().rev().find(|c| {
                container_name(c) == name && c.state == ContainerState::ContainerRunning
            })?;
        c.state = ContainerState::ContainerExited;
        c.finished_at = now;
        c.exit_code = exit_code;
        Some(c.id.clone())
    }

    /// How many containers called `name` the runtime holds, and how many of them run.
    pub fn containers_named(&self, name: &str) -> (usize, usize) {
        let state = self.lock();
        let all = state
            .containers
            .iter()
            .filter(|c| container_name(c) == name);
        let running = all
            .clone()
            .filter(|c| c.state == ContainerState::ContainerRunning)
            .count();
        (all.count(), running)
    }

    /// The PID namespace the newest container called `name` was created with: its mode and,
    /// for TARGET, the target's id.
    pub fn pid_namespace(&self, name: &str) -> Option<(NamespaceMode, String)> {
        let state = self.lock();
        let c = state
            .containers
            .iter()
            .rev()
            .find(|c| container_name(c) == name)?;
        let ns = c
            .config
            .linux
            .as_ref()?
            .security_context
            .as_ref()?
            .namespace_options
            .as_ref()?;
        Some((ns.pid(), ns.target_id.clone()))
    }

    /// How many sandboxes the runtime holds.
    pub fn sandbox_count(&self) -> usize {
        self.lock().sandboxes.len()
    }

    /// A fresh id and a creation time strictly after the previous one.
    fn next(&self, state: &mut State, prefix: &str) -> (String, i64) {
        state.next_id += 1;
        let at = nanos(self.clock.now()).max(state.last_nanos + 1);
        state.last_nanos = at;
        (format!("{prefix}-{}", state.next_id), at)
    }

    fn run_sandbox(&self, config: PodSandboxConfig) -> String {
        let mut state = self.lock();
        let (id, created_at) = self.next(&mut state, "sandbox");
        state.sandboxes.push(FakeSandbox {
            id: id.clone(),
            config,
            ready: true,
            created_at,
        });
        id
    }

    fn create(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String, CriError> {
        let mut state = self.lock();
        if !state
            .sandboxes
            .iter()
            .any(|s| s.id == sandbox_id && s.ready)
        {
            return Err(not_found("create_container", sandbox_id));
        }
        let (id, created_at) = self.next(&mut state, "container");
        state.containers.push(FakeContainer {
            id: id.clone(),
            sandbox_id: sandbox_id.to_string(),
            config,
            state: ContainerState::ContainerCreated,
            created_at,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
        });
        Ok(id)
    }

    fn with_container<T>(
        &self,
        op: &'static str,
        id: &str,
        f: impl FnOnce(&mut FakeContainer, i64) -> T,
    ) -> Result<T, CriError> {
        let now = nanos(self.clock.now());
        let mut state = self.lock();
        let c = state
            .containers
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found(op, id))?;
        Ok(f(c, now))
    }

    fn list_sandboxes(&self, filter: Option<PodSandboxFilter>) -> Vec<PodSandbox> {
        let filter = filter.unwrap_or_default();
        self.lock()
            .sandboxes
            .iter()
            .filter(|s| matches(&s.config.labels, &filter.label_selector))
            .map(|s| PodSandbox {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: sandbox_state(s) as i32,
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                ..PodSandbox::default()
            })
            .collect()
    }

    fn sandbox_status(&self, id: &str) -> Result<PodSandboxStatusResponse, CriError> {
        let state = self.lock();
        let s = state
            .sandboxes
            .iter()
            .find(|s| s.id == id)
            .ok_or_else(|| not_found("pod_sandbox_status", id))?;
        Ok(PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                id: s.id.clone(),
                metadata: s.config.metadata.clone(),
                state: sandbox_state(s) as i32,
                created_at: s.created_at,
                network: Some(PodSandboxNetworkStatus {
                    ip: POD_IP.to_string(),
                    ..PodSandboxNetworkStatus::default()
                }),
                labels: s.config.labels.clone(),
                ..PodSandboxStatus::default()
            }),
            ..PodSandboxStatusResponse::default()
        })
    }

    fn list(&self, filter: Option<ContainerFilter>) -> Vec<Container> {
        let filter = filter.unwrap_or_default();
        let wanted_state = filter.state.map(|s| s.state);
        self.lock()
            .containers
            .iter()
            .filter(|c| matches(&c.config.labels, &filter.label_selector))
            .filter(|c| wanted_state.is_none_or(|s| s == c.state as i32))
            .filter(|c| filter.pod_sandbox_id.is_empty() || filter.pod_sandbox_id == c.sandbox_id)
            .map(|c| Container {
                id: c.id.clone(),
                pod_sandbox_id: c.sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                state: c.state as i32,
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
                ..Container::default()
            })
            .collect()
    }
}

fn container_name(c: &FakeContainer) -> &str {
    c.config.metadata.as_ref().map_or("", |m| m.name.as_str())
}

fn sandbox_state(s: &FakeSandbox) -> PodSandboxState {
    if s.ready {
        PodSandboxState::SandboxReady
    } else {
        PodSandboxState::SandboxNotready
    }
}

fn status_of(c: &FakeContainer) -> ContainerStatusResponse {
    ContainerStatusResponse {
        status: Some(ContainerStatus {
            id: c.id.clone(),
            metadata: c
                .config
                .metadata
                .clone()
                .or(Some(ContainerMetadata::default())),
            state: c.state as i32,
            created_at: c.created_at,
            started_at: c.started_at,
            finished_at: c.finished_at,
            exit_code: c.exit_code,
            image: c.config.image.clone(),
            image_ref: c
                .config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            log_path: c.config.log_path.clone(),
            resources: c
                .config
                .linux
                .as_ref()
                .and_then(|l| l.resources.clone())
                .map(|linux| ContainerResources {
                    linux: Some(linux),
                    ..ContainerResources::default()
                }),
            ..ContainerStatus::default()
        }),
        ..ContainerStatusResponse::default()
    }
}

fn image(name: &str) -> Image {
    Image {
        id: format!("sha256:{name}"),
        repo_tags: vec![name.to_string()],
        spec: Some(ImageSpec {
            image: name.to_string(),
            ..ImageSpec::default()
        }),
        ..Image::default()
    }
}

/// Every fake call is accepted (failures are injected by the recording wrapper), and answered
/// at once.
fn ready<'a, T: Send + 'a>(result: Result<T, CriError>) -> BoxFuture<'a, Result<T, CriError>> {
    async move { result }.boxed()
}

impl PodRuntime for FakeRuntime {
    fn list_pod_sandbox(
        &self,
        filter: Option<PodSandboxFilter>,
    ) -> BoxFuture<'_, Result<Vec<PodSandbox>, CriError>> {
        ready(Ok(self.list_sandboxes(filter)))
    }

    fn pod_sandbox_status<'a>(
        &'a self,
        sandbox_id: &'a str,
        _verbose: bool,
    ) -> BoxFuture<'a, Result<PodSandboxStatusResponse, CriError>> {
        ready(self.sandbox_status(sandbox_id))
    }

    fn run_pod_sandbox<'a>(
        &'a self,
        config: PodSandboxConfig,
        _runtime_handler: &'a str,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        ready(Ok(self.run_sandbox(config)))
    }

    fn stop_pod_sandbox<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        let mut state = self.lock();
        for s in state.sandboxes.iter_mut().filter(|s| s.id == sandbox_id) {
            s.ready = false;
        }
        for c in state
            .containers
            .iter_mut()
            .filter(|c| c.sandbox_id == sandbox_id)
        {
            if c.state == ContainerState::ContainerRunning {
                c.state = ContainerState::ContainerExited;
                c.exit_code = 137;
            }
        }
        drop(state);
        ready(Ok(()))
    }

    fn remove_pod_sandbox<'a>(
        &'a self,
        sandbox_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        let mut state = self.lock();
        state.sandboxes.retain(|s| s.id != sandbox_id);
        state.containers.retain(|c| c.sandbox_id != sandbox_id);
        drop(state);
        ready(Ok(()))
    }

    fn list_containers(
        &self,
        filter: Option<ContainerFilter>,
    ) -> BoxFuture<'_, Result<Vec<Container>, CriError>> {
        ready(Ok(self.list(filter)))
    }

    fn container_status<'a>(
        &'a self,
        container_id: &'a str,
        _verbose: bool,
    ) -> BoxFuture<'a, Result<ContainerStatusResponse, CriError>> {
        ready(self.with_container("container_status", container_id, |c, _| status_of(c)))
    }

    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        mut config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        // As containerd: the status's log path is the sandbox's log directory joined with it.
        if !config.log_path.is_empty() && !sandbox_config.log_directory.is_empty() {
            config.log_path = std::path::Path::new(&sandbox_config.log_directory)
                .join(&config.log_path)
                .display()
                .to_string();
        }
        ready(self.create(sandbox_id, config))
    }

    fn start_container<'a>(&'a self, container_id: &'a str) -> BoxFuture<'a, Result<(), CriError>> {
        ready(
            self.with_container("start_container", container_id, |c, now| {
                c.state = ContainerState::ContainerRunning;
                c.started_at = now;
            }),
        )
    }

    fn stop_container<'a>(
        &'a self,
        container_id: &'a str,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        ready(
            self.with_container("stop_container", container_id, |c, now| {
                if c.state == ContainerState::ContainerRunning {
                    c.state = ContainerState::ContainerExited;
                    c.finished_at = now;
                    c.exit_code = 143;
                }
            }),
        )
    }

    fn remove_container<'a>(
        &'a self,
        container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        self.lock().containers.retain(|c| c.id != container_id);
        ready(Ok(()))
    }

    fn update_container_resources<'a>(
        &'a self,
        container_id: &'a str,
        resources: LinuxContainerResources,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        ready(
            self.with_container("update_container_resources", container_id, |c, _| {
                c.config
                    .linux
                    .get_or_insert_with(Default::default)
                    .resources = Some(resources);
            }),
        )
    }

    fn exec_sync<'a>(
        &'a self,
        _container_id: &'a str,
        _cmd: Vec<String>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<ExecSyncResponse, CriError>> {
        ready(Ok(ExecSyncResponse::default()))
    }

    fn reopen_container_log<'a>(
        &'a self,
        _container_id: &'a str,
    ) -> BoxFuture<'a, Result<(), CriError>> {
        ready(Ok(()))
    }

    /// As containerd 1.6: no event stream, so the pod side relists.
    fn get_container_events(&self) -> BoxFuture<'_, Result<ContainerEvents, CriError>> {
        ready(Err(CriError::Status {
            op: "get_container_events",
            code: Code::Unimplemented,
            message: "the fake runtime has no events".to_string(),
        }))
    }

    fn image_status<'a>(
        &'a self,
        image_name: &'a str,
        _verbose: bool,
    ) -> BoxFuture<'a, Result<ImageStatusResponse, CriError>> {
        ready(Ok(ImageStatusResponse {
            image: Some(image(image_name)),
            ..ImageStatusResponse::default()
        }))
    }

    fn pull_image<'a>(
        &'a self,
        image_name: &'a str,
        _auth: Option<AuthConfig>,
        _sandbox_config: Option<PodSandboxConfig>,
    ) -> BoxFuture<'a, Result<String, CriError>> {
        ready(Ok(image(image_name).id))
    }
}
