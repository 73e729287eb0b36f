//! What the runtime holds for one pod: its sandboxes and containers, found by the pod-UID label
//! that every sandbox and container the agent makes carries.

use std::collections::HashMap;

use cri_client::CriError;
use cri_client::api::{self, ContainerFilter, ContainerState, PodSandboxFilter, PodSandboxState};

use crate::runtime::PodRuntime;

use super::labels;

/// One container as the runtime reports it.
#[derive(Debug, Clone)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    pub restart_count: u32,
    pub hash: String,
    pub state: ContainerState,
    /// Nanoseconds since the epoch (0 = unset).
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub image: String,
    pub image_ref: String,
    pub log_path: String,
}

impl ContainerView {
    pub fn running(&self) -> bool {
        self.state == ContainerState::ContainerRunning
    }

    pub fn exited(&self) -> bool {
        self.state == ContainerState::ContainerExited
    }
}

/// One sandbox as the runtime reports it.
#[derive(Debug, Clone)]
pub struct SandboxView {
    pub id: String,
    pub attempt: u32,
    pub ready: bool,
    pub created_at: i64,
}

/// The pod's runtime state; both lists newest first.
#[derive(Debug, Clone, Default)]
pub struct ObservedPod {
    pub sandboxes: Vec<SandboxView>,
    pub containers: Vec<ContainerView>,
}

impl ObservedPod {
    /// Records the sandbox RunPodSandbox just returned as the newest, ready one: what listing
    /// the runtime again would show, without the two list calls.
    pub fn sandbox_created(&mut self, id: String, attempt: u32) {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(i64::MAX);
        self.sandboxes.insert(
            0,
            SandboxView {
                id,
                attempt,
                ready: true,
                created_at,
            },
        );
    }

    /// The newest sandbox, if it is ready.
    pub fn ready_sandbox(&self) -> Option<&SandboxView> {
        self.sandboxes.first().filter(|s| s.ready)
    }

    /// Containers of `name` in `sandbox_id`, newest first.
    pub fn containers_named<'a>(
        &'a self,
        name: &'a str,
        sandbox_id: &'a str,
    ) -> impl Iterator<Item = &'a ContainerView> + 'a {
        self.containers
            .iter()
            .filter(move |c| c.name == name && c.sandbox_id == sandbox_id)
    }

    /// The newest container of `name` in `sandbox_id`.
    pub fn latest(&self, name: &str, sandbox_id: &str) -> Option<&ContainerView> {
        self.containers
            .iter()
            .find(|c| c.name == name && c.sandbox_id == sandbox_id)
    }

    /// The newest container of `name` in any sandbox (for restart counts across sandboxes).
    pub fn latest_any(&self, name: &str) -> Option<&ContainerView> {
        self.containers.iter().find(|c| c.name == name)
    }
}

fn uid_selector(uid: &str) -> HashMap<String, String> {
    HashMap::from([(labels::POD_UID.to_string(), uid.to_string())])
}

/// Lists the pod's sandboxes and containers, with each container's full status.
pub async fn observe(cri: &dyn PodRuntime, uid: &str) -> Result<ObservedPod, CriError> {
    let sandboxes = cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: uid_selector(uid),
            ..PodSandboxFilter::default()
        }))
        .await?;
    let mut sandboxes: Vec<SandboxView> = sandboxes
        .into_iter()
        .map(|s| SandboxView {
            attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
            ready: s.state == PodSandboxState::SandboxReady as i32,
            created_at: s.created_at,
            id: s.id,
        })
        .collect();
    sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));

    let listed = cri
        .list_containers(Some(ContainerFilter {
            label_selector: uid_selector(uid),
            ..ContainerFilter::default()
        }))
        .await?;
    let mut containers = Vec::with_capacity(listed.len());
    for c in listed {
        let Some(s) = status_of(cri, &c.id).await? else {
            continue;
        };
        containers.push(view(&c.pod_sandbox_id, s));
    }
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(ObservedPod {
        sandboxes,
        containers,
    })
}

/// `runtime` with the containers `started` in `sandbox_id` since it was observed, each read
/// with ContainerStatus: a full observation when nothing else changed, in one call per
/// container instead of listing sandboxes and containers again.
pub async fn with_started(
    cri: &dyn PodRuntime,
    mut runtime: ObservedPod,
    sandbox_id: &str,
    started: &[String],
) -> Result<ObservedPod, CriError> {
    for id in started {
        if let Some(s) = status_of(cri, id).await? {
            runtime.containers.push(view(sandbox_id, s));
        }
    }
    runtime
        .containers
        .sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(runtime)
}

/// A container's status; None when it is gone (removed since it was listed or started).
async fn status_of(
    cri: &dyn PodRuntime,
    id: &str,
) -> Result<Option<api::ContainerStatus>, CriError> {
    match cri.container_status(id, false).await {
        Ok(r) => Ok(r.status),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The view of a container of `sandbox_id` (ContainerStatus carries no sandbox id), from its
/// status: state and times, and the name, restart count and hash the agent labelled it with.
fn view(sandbox_id: &str, s: api::ContainerStatus) -> ContainerView {
    let annotation = |k: &str| s.annotations.get(k).cloned().unwrap_or_default();
    ContainerView {
        id: s.id.clone(),
        name: s
            .labels
            .get(labels::CONTAINER_NAME)
            .cloned()
            .unwrap_or_default(),
        sandbox_id: sandbox_id.to_string(),
        restart_count: annotation(labels::CONTAINER_RESTART_COUNT)
            .parse()
            .unwrap_or(0),
        hash: annotation(labels::CONTAINER_HASH),
        state: ContainerState::try_from(s.state).unwrap_or(ContainerState::ContainerUnknown),
        created_at: s.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        reason: s.reason,
        message: s.message,
        image: s.image.map(|i| i.image).unwrap_or_default(),
        image_ref: s.image_ref,
        log_path: s.log_path,
    }
}
