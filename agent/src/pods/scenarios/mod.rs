//! Pod lifecycle scenarios, written once and run twice (virtual-kubelet's lifecycle tests
//! shape): the real [`super::sync::sync`] and the real worker, with API writes and events kept
//! in memory, against two runtimes behind the same recording wrapper
//! ([`crate::runtime::recording::Recording`]):
//!
//! - `fake`: the in-memory [`FakeRuntime`] with tokio's clock paused, so that backoffs, grace
//!   periods and deadlines are exact and every scenario runs in milliseconds (`cargo test`);
//! - `containerd`: the cluster's containerd (`CONTAINER_RUNTIME_ENDPOINT`, the busybox image of
//!   `MKL_BUSYBOX_IMAGE`) on the real clock, `#[ignore]`d in plain `cargo test` and run by
//!   `deploy/dev/test`; its timing checks allow for the real clock.
//!
//! The pods are hostNetwork (no CNI: no agent serves the network delegate here) and have no
//! volumes, env sources, pull secrets or runtime class, so they need no API server (the
//! context is standalone's). Their containers wait until told to exit
//! ([`Node::exit`]), which the fake does by fiat and containerd through an exec.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod garbage;
mod lifecycle;
mod resize;
mod resources;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde_json::json;

use super::admission::Admission;
use super::context::{EnvReads, PodContext};
use super::images::Images;
use super::log_rotation::LogRotation;
use super::observe::{self, ObservedPod};
use super::pod_probes::ProbeResults;
use super::status_writer::recording::{RecordingWriter, Written};
use super::sync::{self, Outcome, PodState};
use crate::events::{Events, RecordedEvents};
use crate::node_facts::NodeFacts;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::recording::Recording;
use crate::runtime::{PodRuntime, WallClock};

/// The node name of scenario sandboxes: the cluster's own agent never touches them.
const NODE_NAME: &str = "minikubelet-scenarios";

/// The cgroup root of scenario pods.
const SCENARIO_CGROUP_ROOT: &str = "/minikubelet-scenarios";
/// The scenarios' podPidsLimit: ample for their shells.
pub(super) const SCENARIO_POD_PIDS: i64 = 64;

/// The command of every scenario container: run until /tmp/exit names an exit code; exit 0 on
/// SIGTERM.
const WAIT_FOR_EXIT: &str =
    "trap 'exit 0' TERM; while [ ! -e /tmp/exit ]; do sleep 0.1; done; exit $(cat /tmp/exit)";

/// Which runtime a scenario runs against.
enum Backend {
    Fake(Arc<FakeRuntime>),
    Containerd,
}

/// A pod controller wired to one runtime, with API writes and events in memory.
pub(super) struct Node {
    ctx: Arc<PodContext>,
    /// What the pod side calls: the runtime behind the recording wrapper.
    cri: Arc<Recording>,
    /// The runtime itself, for the test's own looks and actions (never recorded or failed).
    raw: Arc<dyn PodRuntime>,
    backend: Backend,
    writer: Arc<RecordingWriter>,
    events: RecordedEvents,
    image: String,
    /// Where pod cgroups go: recorded on the fake runtime, the host's beside containerd.
    cgroups: ScenarioCgroups,
    _root: tempfile::TempDir,
}

enum ScenarioCgroups {
    Recorded(Arc<crate::cgroups::recording::RecordingCgroupFs>),
    Host(crate::cgroups::Hierarchy),
}

/// A UID no other scenario (or earlier run) uses.
fn fresh_uid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("scn-{}-{n}-{nanos}", std::process::id())
}

impl Node {
    /// Against the in-memory runtime (tokio's clock must be paused).
    pub fn fake() -> Node {
        let clock = WallClock::tokio();
        let fake = Arc::new(FakeRuntime::new(clock));
        Node::with(
            fake.clone(),
            Backend::Fake(fake),
            clock,
            "127.0.0.1:5000/busybox:1.35".into(),
        )
    }

    /// Against the cluster's containerd, after removing what an earlier failed run left.
    pub async fn containerd() -> Node {
        let missing = "the containerd lane needs CONTAINER_RUNTIME_ENDPOINT and MKL_BUSYBOX_IMAGE \
                       (eval \"$(deploy/dev/cluster env)\"; deploy/dev/test runs it)";
        let endpoint = std::env::var("CONTAINER_RUNTIME_ENDPOINT").expect(missing);
        let image = std::env::var("MKL_BUSYBOX_IMAGE").expect(missing);
        let client =
            cri_client::CriClient::connect(&endpoint, cri_client::ClientOptions::default())
                .await
                .expect("containerd answers");
        let node = Node::with(
            Arc::new(client),
            Backend::Containerd,
            WallClock::System,
            image,
        );
        node.remove_leftovers().await;
        node
    }

    fn with(
        runtime: Arc<dyn PodRuntime>,
        backend: Backend,
        clock: WallClock,
        image: String,
    ) -> Node {
        let cri = Arc::new(Recording::new(runtime.clone()));
        let writer = Arc::new(RecordingWriter::default());
        let (cgroups, cgroup_fs): (_, Arc<dyn crate::cgroups::CgroupFs>) = match backend {
            Backend::Fake(_) => {
                let fs = Arc::new(crate::cgroups::recording::RecordingCgroupFs::new(
                    crate::cgroups::CgroupVersion::V1,
                ));
                (ScenarioCgroups::Recorded(fs.clone()), fs)
            }
            Backend::Containerd => {
                let host = crate::cgroups::Hierarchy::detect().expect("a cgroup mount");
                (ScenarioCgroups::Host(host.clone()), Arc::new(host))
            }
        };
        // Beside containerd, a cgroup root of the scenarios' own: the cluster agent's
        // orphaned-cgroup sweep never sees their pods.
        let settings = crate::cgroups::CgroupSettings {
            root: crate::cgroups::CgroupName::parse_root(SCENARIO_CGROUP_ROOT).unwrap(),
            pod_pids_limit: Some(SCENARIO_POD_PIDS),
            ..crate::cgroups::CgroupSettings::default()
        };
        let layout =
            crate::cgroups::PodCgroups::new(&settings, crate::cgroups::CgroupDriver::Cgroupfs)
                .unwrap();
        let (events, recorded) = Events::recording();
        let root = tempfile::tempdir().unwrap();
        let facts = NodeFacts {
            node_name: NODE_NAME.into(),
            host_ip: "192.0.2.10".into(),
            allocatable_cpu_millis: 4000,
            allocatable_memory_bytes: 8 << 30,
            absolute_allocatable_cpu_millis: 6000,
            absolute_allocatable_memory_bytes: 8 << 30,
            memory_capacity_bytes: 8 << 30,
            max_pods: 110,
        };
        let volumes = crate::volumes::Volumes::new(
            root.path(),
            crate::apiserver::ApiServer::Standalone,
            events.clone(),
            facts.clone(),
            Duration::from_secs(60),
        );
        let ctx = PodContext {
            api: crate::apiserver::ApiServer::Standalone,
            env_reads: EnvReads::Empty,
            services: crate::pods::service_lister::ServiceLister::none(),
            writer: writer.clone(),
            cri: cri.clone(),
            runtime_name: "containerd".into(),
            node: facts,
            root_dir: root.path().to_path_buf(),
            log_root: root.path().join("logs"),
            host_resolv_conf: "nameserver 192.0.2.53\n".into(),
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            log_rotation: LogRotation {
                max_size_bytes: 10 << 20,
                max_files: 5,
            },
            images: Images::default(),
            events,
            admission: Admission::new(super::sysctls::Allowlist::new(&[]).unwrap(), false),
            clock,
            volumes,
            qos_cgroups: Arc::new(crate::cgroups::QosCgroups::new(
                cgroup_fs.clone(),
                layout.clone(),
            )),
            cgroups: layout,
            cgroup_fs,
            container_gc: crate::config::container_gc::ContainerGcPolicy::default(),
            userns: Arc::new(crate::userns::UserNamespaces::load(root.path(), 65536, 110).unwrap()),
            runtime_health: tokio::sync::watch::channel(crate::runtime::RuntimeHealth::Unknown).1,
        };
        Node {
            ctx: Arc::new(ctx),
            cri,
            raw: runtime,
            backend,
            writer,
            events: recorded,
            image,
            cgroups,
            _root: root,
        }
    }

    /// Makes an empty cgroup at `path` (cgroupfs form), as a pod the node no longer knows left.
    pub fn make_cgroup(&self, path: &str) {
        use crate::cgroups::CgroupFs;
        match &self.cgroups {
            ScenarioCgroups::Recorded(fs) => {
                fs.apply(path, &crate::cgroups::ResourceConfig::default())
                    .unwrap();
            }
            ScenarioCgroups::Host(h) => {
                for dir in h.dirs_of(path) {
                    std::fs::create_dir_all(dir).unwrap();
                }
            }
        }
    }

    /// The pids.max of the pod cgroup at `path`: the last apply recorded, or the host's file.
    pub fn pod_cgroup_pids_max(&self, path: &str) -> Option<String> {
        use crate::cgroups::recording::CgroupOp;
        match &self.cgroups {
            ScenarioCgroups::Recorded(fs) => fs.ops().into_iter().rev().find_map(|op| match op {
                CgroupOp::Apply(p, c) if p == path => c.pids_max.map(|n| n.to_string()),
                _ => None,
            }),
            ScenarioCgroups::Host(h) => {
                let file = h
                    .mount()
                    .join("pids")
                    .join(path.trim_start_matches('/'))
                    .join("pids.max");
                std::fs::read_to_string(file)
                    .ok()
                    .map(|s| s.trim().to_string())
            }
        }
    }

    /// The pod's cgroup (cgroupfs form) below the scenarios' cgroup root.
    pub fn pod_cgroup_path(&self, pod: &Pod) -> String {
        super::sandbox::cgroup_parent(&self.ctx.cgroups, pod)
    }

    /// The memory limit and cpu shares of the pod cgroup at `path` (cgroupfs form), None when
    /// there is no such cgroup: the last call recorded, or the host's files read back.
    pub fn pod_cgroup(&self, path: &str) -> Option<(Option<u64>, Option<i64>)> {
        use crate::cgroups::recording::CgroupOp;
        match &self.cgroups {
            ScenarioCgroups::Recorded(fs) => {
                fs.ops().into_iter().rev().find_map(|op| match op {
                    CgroupOp::Apply(p, c) if p == path => {
                        Some(Some((c.memory_bytes, c.cpu_shares)))
                    }
                    CgroupOp::Remove(p) if p == path => Some(None),
                    _ => None,
                })?
            }
            ScenarioCgroups::Host(h) => {
                let dir = |controller: &str| {
                    h.mount()
                        .join(controller)
                        .join(path.trim_start_matches('/'))
                };
                if !dir("memory").is_dir() {
                    return None;
                }
                let read = |controller: &str, file: &str| {
                    std::fs::read_to_string(dir(controller).join(file)).unwrap_or_default()
                };
                Some((
                    read("memory", "memory.limit_in_bytes").trim().parse().ok(),
                    read("cpu", "cpu.shares").trim().parse().ok(),
                ))
            }
        }
    }

    /// A pod with a fresh UID: one container "app" (restartPolicy Always unless `spec` says
    /// otherwise), hostNetwork, every container running [`WAIT_FOR_EXIT`].
    pub fn pod(&self, spec: serde_json::Value) -> Pod {
        self.named_pod("web", spec)
    }

    /// [`Node::pod`] with a name.
    pub fn named_pod(&self, name: &str, spec: serde_json::Value) -> Pod {
        let mut full = json!({
            "containers": [{"name": "app"}],
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 5,
        });
        if let (Some(full), serde_json::Value::Object(extra)) = (full.as_object_mut(), spec) {
            full.extend(extra);
        }
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in full[list].as_array_mut().into_iter().flatten() {
                c["image"] = json!(self.image);
                c["command"] = json!(["sh", "-c", WAIT_FOR_EXIT]);
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": fresh_uid()},
            "spec": full,
        }))
        .unwrap()
    }

    /// True on the paused clock, where waits and backoffs are exact.
    pub fn exact(&self) -> bool {
        matches!(self.backend, Backend::Fake(_))
    }

    /// Lets `d` pass: the paused clock jumps, the real one is slept on.
    pub async fn wait(&self, d: Duration) {
        match self.backend {
            Backend::Fake(_) => tokio::time::advance(d).await,
            Backend::Containerd => tokio::time::sleep(d).await,
        }
    }

    /// A sync with no probe results.
    pub async fn sync(&self, state: &mut PodState, pod: &Pod) -> Outcome {
        self.sync_probed(state, pod, &ProbeResults::default()).await
    }

    /// A sync after the probes said `probes`.
    pub async fn sync_probed(
        &self,
        state: &mut PodState,
        pod: &Pod,
        probes: &ProbeResults,
    ) -> Outcome {
        sync::sync(&self.ctx, state, pod, probes).await.unwrap()
    }

    /// What the runtime holds for `pod`.
    pub async fn observed(&self, pod: &Pod) -> ObservedPod {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        observe::observe(self.raw.as_ref(), uid).await.unwrap()
    }

    /// How many containers called `name` the runtime holds for `pod`, and how many run.
    pub async fn containers_named(&self, pod: &Pod, name: &str) -> (usize, usize) {
        let observed = self.observed(pod).await;
        let named = observed.containers.iter().filter(|c| c.name == name);
        (named.clone().count(), named.filter(|c| c.running()).count())
    }

    /// Whether the running container `a` of `pod` is in the PID namespace of the running
    /// container `b`: the fake says so by `a`'s config (TARGET `b`), containerd by the
    /// namespace each process sees.
    pub async fn shares_pid_namespace(&self, pod: &Pod, a: &str, b: &str) -> bool {
        let observed = self.observed(pod).await;
        let running = |name: &str| {
            observed
                .containers
                .iter()
                .find(|c| c.name == name && c.running())
                .map(|c| c.id.clone())
                .expect("the container runs")
        };
        let (a_id, b_id) = (running(a), running(b));
        if let Backend::Fake(fake) = &self.backend {
            return fake.pid_namespace(a) == Some((cri_client::api::NamespaceMode::Target, b_id));
        }
        let mut seen = Vec::new();
        for id in [a_id, b_id] {
            let cmd = vec!["readlink".to_string(), "/proc/self/ns/pid".to_string()];
            let out = self
                .raw
                .exec_sync(&id, cmd, Duration::from_secs(10))
                .await
                .unwrap();
            seen.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        assert!(!seen[0].is_empty(), "readlink printed nothing");
        seen[0] == seen[1]
    }

    /// How many sandboxes the runtime holds for `pod`.
    pub async fn sandbox_count(&self, pod: &Pod) -> usize {
        self.observed(pod).await.sandboxes.len()
    }

    /// Makes the running container `name` of `pod` exit with `code`, and waits until the
    /// runtime says it exited.
    pub async fn exit(&self, pod: &Pod, name: &str, code: i32) {
        if let Backend::Fake(fake) = &self.backend {
            fake.exit_container(name, code).expect("the container runs");
            return;
        }
        let id = self.running_id(pod, name).await;
        let cmd = vec![
            "sh".to_string(),
            "-c".to_string(),
            format!("echo {code} > /tmp/exit"),
        ];
        self.raw
            .exec_sync(&id, cmd, Duration::from_secs(10))
            .await
            .unwrap();
        eventually("the container exits", || async {
            self.observed(pod)
                .await
                .containers
                .iter()
                .any(|c| c.id == id && c.exited())
        })
        .await;
    }

    /// The running container `name` of `pod`: its id and the cgroup resources the runtime
    /// reports for it.
    pub async fn container_resources(
        &self,
        pod: &Pod,
        name: &str,
    ) -> (String, cri_client::api::LinuxContainerResources) {
        let id = self.running_id(pod, name).await;
        let status = self.raw.container_status(&id, false).await.unwrap();
        let linux = status
            .status
            .and_then(|s| s.resources)
            .and_then(|r| r.linux)
            .expect("the runtime reports the container's resources");
        (id, linux)
    }

    /// The id of the running container `name` of `pod`.
    async fn running_id(&self, pod: &Pod, name: &str) -> String {
        self.observed(pod)
            .await
            .containers
            .iter()
            .find(|c| c.name == name && c.running())
            .expect("the container runs")
            .id
            .clone()
    }

    /// Makes the running container `name` of `pod` (and so its pod) hold `mib` MiB of memory
    /// that cannot be dropped: on containerd a file in its /dev/shm (tmpfs), on the fake the
    /// cgroup files say so.
    pub async fn hold_memory(&self, pod: &Pod, name: &str, mib: u64) {
        let (id, _) = self.container_resources(pod, name).await;
        match &self.cgroups {
            ScenarioCgroups::Recorded(fs) => {
                let pod_path = self.pod_cgroup_path(pod);
                for path in [format!("{pod_path}/{id}"), pod_path] {
                    fs.put(
                        &path,
                        "memory",
                        "memory.usage_in_bytes",
                        &(mib << 20).to_string(),
                    );
                    fs.put(&path, "memory", "memory.stat", "");
                }
            }
            ScenarioCgroups::Host(_) => {
                let cmd = vec![
                    "sh".to_string(),
                    "-c".to_string(),
                    format!("head -c {} /dev/zero > /dev/shm/held", mib << 20),
                ];
                let r = self
                    .raw
                    .exec_sync(&id, cmd, Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
            }
        }
    }

    pub fn statuses(&self) -> Vec<PodStatus> {
        self.writer.statuses()
    }

    /// The last status written for `pod`, if any.
    pub fn written_status(&self, pod: &Pod) -> Option<PodStatus> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.writer
            .writes()
            .into_iter()
            .rev()
            .find_map(|w| match w {
                Written::Status { uid: u, status } if u == uid => Some(*status),
                Written::Status { .. } | Written::Deleted { .. } => None,
            })
    }

    /// The last status written for `pod`.
    pub fn last_status(&self, pod: &Pod) -> PodStatus {
        self.written_status(pod).expect("a status was written")
    }

    /// How many times `pod`'s object was deleted.
    pub fn deletions(&self, pod: &Pod) -> usize {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.writer
            .writes()
            .iter()
            .filter(|w| matches!(w, Written::Deleted { uid: u } if *u == uid))
            .count()
    }

    /// The reasons of the events emitted since the last call.
    pub fn reasons(&mut self) -> Vec<String> {
        self.events.take().into_iter().map(|e| e.reason).collect()
    }

    /// The pod as the watch delivers it after the agent's own writes: the status as the API
    /// stores it (through JSON, so times in whole seconds).
    pub fn with_written(&self, mut pod: Pod) -> Pod {
        if let Some(status) = self.written_status(&pod) {
            let stored = serde_json::to_value(&status).unwrap();
            pod.status = Some(serde_json::from_value(stored).unwrap());
        }
        pod
    }

    /// `pod` deleted with `grace` seconds.
    pub fn deleting(&self, pod: &Pod, grace: i64) -> Pod {
        let mut deleting = self.with_written(pod.clone());
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        deleting.metadata.deletion_grace_period_seconds = Some(grace);
        deleting
    }

    /// Removes every sandbox (and its containers) scenarios left in the runtime.
    pub async fn remove_leftovers(&self) {
        let filter = cri_client::api::PodSandboxFilter {
            label_selector: [(super::NODE_LABEL.to_string(), NODE_NAME.to_string())].into(),
            ..Default::default()
        };
        let Ok(sandboxes) = self.raw.list_pod_sandbox(Some(filter)).await else {
            return;
        };
        for s in sandboxes {
            let filter = cri_client::api::ContainerFilter {
                pod_sandbox_id: s.id.clone(),
                ..Default::default()
            };
            for c in self
                .raw
                .list_containers(Some(filter))
                .await
                .unwrap_or_default()
            {
                let _ = self.raw.stop_container(&c.id, Duration::ZERO).await;
                let _ = self.raw.remove_container(&c.id).await;
            }
            let _ = self.raw.stop_pod_sandbox(&s.id).await;
            let _ = self.raw.remove_pod_sandbox(&s.id).await;
        }
    }
}

/// Polls until `done` holds: 50 ms steps (instant on the paused clock), 30 s at most.
pub(super) async fn eventually<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// A scenario, written once: `fake` runs it in `cargo test` on the paused clock, `containerd`
/// (ignored unless asked for) against the cluster's containerd, cleaning up after itself.
macro_rules! scenario {
    ($(#[$doc:meta])* $name:ident($node:ident) $body:block) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[allow(unused_mut)]
            async fn run(mut $node: crate::pods::scenarios::Node) $body

            #[tokio::test(start_paused = true)]
            async fn fake() {
                run(crate::pods::scenarios::Node::fake()).await;
            }

            #[tokio::test]
            #[ignore = "the containerd lane: deploy/dev/test runs it against the cluster's containerd"]
            async fn containerd() {
                let node = crate::pods::scenarios::Node::containerd().await;
                let raw = node.raw.clone();
                run(node).await;
                let cleanup = crate::pods::scenarios::Node::with(
                    raw,
                    crate::pods::scenarios::Backend::Containerd,
                    crate::runtime::WallClock::System,
                    String::new(),
                );
                cleanup.remove_leftovers().await;
            }
        }
    };
}
pub(super) use scenario;
