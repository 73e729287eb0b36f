//! The CRI side of the benchmark: the runtime floor (the pod start sequence of RunPodSandbox,
//! CreateContainer and StartContainer from this process's persistent gRPC client, at the
//! agents' concurrency), and the removal of sandboxes and cgroups a run leaves.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cri_client::{ClientOptions, CriClient, api};
use futures::future::join_all;

use crate::Res;
use crate::cluster::COMMAND;
use crate::wait::POLL;

/// Label on the floor's sandboxes (so every one of them can be found and removed).
const FLOOR_LABEL: &str = "bench.minikubelet.io/floor";
/// Namespace (in the sandbox metadata) of the floor's sandboxes.
const FLOOR_NAMESPACE: &str = "mkl-bench-floor";
/// cgroupfs parent of the floor's sandboxes.
const FLOOR_CGROUP: &str = "mkl-bench-floor";

pub struct Runtime {
    pub cri: CriClient,
    pub endpoint: String,
    image: String,
    /// The floor's log directories.
    work: tempfile::TempDir,
}

/// One floor round: the start and end instant of each sequence.
pub struct FloorRound {
    pub latencies: Vec<Duration>,
    pub all_started: Duration,
}

impl Runtime {
    pub async fn connect(endpoint: &str, image: &str) -> Res<Runtime> {
        let cri = CriClient::connect(endpoint, ClientOptions::default())
            .await
            .map_err(|e| format!("cannot reach the runtime at {endpoint}: {e}"))?;
        let work = tempfile::Builder::new()
            .prefix("mkl-bench-floor-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        Ok(Runtime {
            cri,
            endpoint: endpoint.to_string(),
            image: image.to_string(),
            work,
        })
    }

    /// "containerd v1.6.20" (or the runtime's own words).
    pub async fn describe(&self) -> String {
        self.cri.version().await.map_or_else(
            |_| "unknown runtime".to_string(),
            |v| format!("{} {}", v.runtime_name, v.runtime_version),
        )
    }

    /// Pulls the images, so no pull is measured.
    pub async fn pull(&self, images: &[&str]) -> Res<()> {
        for image in images {
            self.cri
                .pull_image(*image, None, None)
                .await
                .map_err(|e| format!("the runtime cannot pull {image}: {e}"))?;
        }
        Ok(())
    }

    /// `n` concurrent start sequences; then every floor sandbox is removed (also when one
    /// failed).
    pub async fn floor_round(&self, round: &str, n: usize) -> Res<FloorRound> {
        let results = join_all((0..n).map(|i| self.sequence(round, i))).await;
        let removed = self.remove_floor().await;
        let mut spans = Vec::with_capacity(n);
        for r in results {
            spans.push(r?);
        }
        removed?;
        let first = spans.iter().map(|(t0, _)| *t0).min();
        let last = spans.iter().map(|(_, t1)| *t1).max();
        let all_started = match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        Ok(FloorRound {
            latencies: spans
                .iter()
                .map(|(t0, t1)| t1.saturating_duration_since(*t0))
                .collect(),
            all_started,
        })
    }

    /// One sequence, with the same image, command, log directory and cgroup layout as an
    /// agent's pod; returns its start and end instants.
    async fn sequence(&self, round: &str, i: usize) -> Res<(Instant, Instant)> {
        let name = format!("floor-{round}-{i}");
        let uid = format!("mkl-bench-floor-{}-{round}-{i}", std::process::id());
        let log_dir = self.work.path().join(&name);
        let sandbox = sandbox_config(&name, &uid, &log_dir);
        let container = container_config(&self.image);
        let t0 = Instant::now();
        // The agents create the pod's log directory too.
        std::fs::create_dir_all(&log_dir)?;
        let id = self
            .cri
            .run_pod_sandbox(sandbox.clone(), "")
            .await
            .map_err(|e| format!("floor: RunPodSandbox {name} failed: {e}"))?;
        let cid = self
            .cri
            .create_container(&id, container, sandbox)
            .await
            .map_err(|e| format!("floor: CreateContainer in {name} failed: {e}"))?;
        self.cri
            .start_container(&cid)
            .await
            .map_err(|e| format!("floor: StartContainer in {name} failed: {e}"))?;
        Ok((t0, Instant::now()))
    }

    /// Stops and removes every floor sandbox, then their cgroups.
    pub async fn remove_floor(&self) -> Res<()> {
        let filter = api::PodSandboxFilter {
            label_selector: [(FLOOR_LABEL.to_string(), "1".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        self.remove_sandboxes(Some(filter), |_| true).await?;
        remove_cgroup_tree(FLOOR_CGROUP);
        Ok(())
    }

    /// Stops and removes the sandboxes of pods in `namespace` (what an agent left when it
    /// could not remove them itself); returns how many there were.
    pub async fn remove_namespace_sandboxes(&self, namespace: &str) -> Res<usize> {
        self.remove_sandboxes(None, |sb| {
            sb.metadata
                .as_ref()
                .is_some_and(|m| m.namespace == namespace)
        })
        .await
    }

    /// How many ready sandboxes of pods in `namespace` the runtime holds (a stopped one is
    /// done with: kubelet removes those in its next garbage collection, minikubelet at once).
    pub async fn count_ready_sandboxes(&self, namespace: &str) -> Res<usize> {
        let list = self.cri.list_pod_sandbox(None).await?;
        Ok(list
            .iter()
            .filter(|sb| sb.state == api::PodSandboxState::SandboxReady as i32)
            .filter(|sb| {
                sb.metadata
                    .as_ref()
                    .is_some_and(|m| m.namespace == namespace)
            })
            .count())
    }

    /// Stops and removes the listed sandboxes that `select` picks, until none is left (a
    /// container still starting cannot be removed yet); returns how many there were.
    async fn remove_sandboxes(
        &self,
        filter: Option<api::PodSandboxFilter>,
        select: impl Fn(&api::PodSandbox) -> bool,
    ) -> Res<usize> {
        let cri = &self.cri;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut removed = std::collections::HashSet::new();
        loop {
            let list: Vec<api::PodSandbox> = cri
                .list_pod_sandbox(filter.clone())
                .await
                .map_err(|e| format!("cannot list sandboxes at {}: {e}", self.endpoint))?
                .into_iter()
                .filter(|sb| select(sb))
                .collect();
            if list.is_empty() {
                return Ok(removed.len());
            }
            let results = join_all(list.iter().map(|sb| async move {
                cri.stop_pod_sandbox(&sb.id).await?;
                cri.remove_pod_sandbox(&sb.id).await
            }))
            .await;
            let mut last_error = None;
            for (sb, r) in list.iter().zip(results) {
                match r {
                    Ok(()) => {
                        removed.insert(sb.id.clone());
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            if let Some(e) = last_error {
                if Instant::now() >= deadline {
                    return Err(format!("sandboxes could not be removed within 120 s: {e}").into());
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn sandbox_config(name: &str, uid: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: FLOOR_NAMESPACE.to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.display().to_string(),
        labels: [(FLOOR_LABEL.to_string(), "1".to_string())]
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{FLOOR_CGROUP}/pod{uid}"),
            security_context: Some(api::LinuxSandboxSecurityContext::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "sleep".to_string(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: COMMAND.iter().map(|s| (*s).to_string()).collect(),
        log_path: "sleep/0.log".to_string(),
        linux: Some(api::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// The cgroup hierarchies: the v2 root and every v1 controller directory.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        out.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    out
}

/// Removes the empty cgroup directories at and below `rel` (a name under each hierarchy's
/// root) in every hierarchy, deepest first; a cgroup that still has processes stays (rmdir
/// refuses it). Returns whether none is left.
pub fn remove_cgroup_tree(rel: &str) -> bool {
    let mut all_gone = true;
    for h in cgroup_hierarchies() {
        let dir = h.join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            all_gone &= rmdir_deep(&dir);
        }
    }
    all_gone
}

fn rmdir_deep(dir: &Path) -> bool {
    // Cgroup directories are never symlinks; read_dir on cgroupfs lists only cgroups as dirs.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_deep(&e.path());
            }
        }
    }
    std::fs::remove_dir(dir).is_ok()
}
