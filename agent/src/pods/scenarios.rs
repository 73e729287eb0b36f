//! Pod lifecycle scenarios, in seconds and without a cluster: the real [`sync::sync`] and the
//! real worker against the recording [`FakeRuntime`], API writes and events kept in memory, and
//! tokio's clock paused so that backoffs and grace periods are exact. The pods have no volumes,
//! env sources, pull secrets or runtime class, so the `kube::Client` (pointed at a closed port)
//! is never used.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::admission::Admission;
use super::context::{EnvReads, PodContext};
use super::images::Images;
use super::log_rotation::LogRotation;
use super::status_writer::recording::{RecordingWriter, Written};
use super::sync::{self, Outcome, PodState};
use super::worker::Workers;
use crate::events::{Events, RecordedEvent, RecordedEvents};
use crate::node_facts::NodeFacts;
use crate::runtime::WallClock;
use crate::runtime::fake::{FakeRuntime, Method};

const UID: &str = "uid-1";

/// A pod controller wired to fakes.
struct Node {
    ctx: Arc<PodContext>,
    cri: Arc<FakeRuntime>,
    writer: Arc<RecordingWriter>,
    events: RecordedEvents,
    _root: tempfile::TempDir,
}

/// A client for an address nothing listens on: any use of it fails, none is expected.
fn unreachable_client() -> kube::Client {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

fn node() -> Node {
    let clock = WallClock::tokio();
    let cri = Arc::new(FakeRuntime::new(clock));
    let writer = Arc::new(RecordingWriter::default());
    let (events, recorded) = Events::recording();
    let root = tempfile::tempdir().unwrap();
    let client = unreachable_client();
    let facts = NodeFacts {
        node_name: "node-1".into(),
        host_ip: "192.0.2.10".into(),
        allocatable_cpu_millis: 4000,
        allocatable_memory_bytes: 8 << 30,
        memory_capacity_bytes: 8 << 30,
        max_pods: 110,
    };
    let volumes = crate::volumes::Volumes::new(
        root.path(),
        client.clone(),
        events.clone(),
        facts.clone(),
        Duration::from_secs(60),
    );
    let ctx = PodContext {
        client,
        env_reads: EnvReads::Empty,
        writer: writer.clone(),
        cri: cri.clone(),
        runtime_name: "fake".into(),
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
    };
    Node {
        ctx: Arc::new(ctx),
        cri,
        writer,
        events: recorded,
        _root: root,
    }
}

/// One container, "app", restartPolicy Always unless `spec` says otherwise.
fn pod(spec: serde_json::Value) -> Pod {
    let mut full = json!({"containers": [{"name": "app", "image": "127.0.0.1:5000/busybox:1.35"}]});
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": UID},
        "spec": full,
    }))
    .unwrap()
}

impl Node {
    async fn sync(&self, state: &mut PodState, pod: &Pod) -> Outcome {
        sync::sync(&self.ctx, state, pod).await.unwrap()
    }

    fn statuses(&self) -> Vec<PodStatus> {
        self.writer.statuses()
    }

    fn last_status(&self) -> PodStatus {
        self.statuses().pop().expect("a status was written")
    }

    fn reasons(&mut self) -> Vec<String> {
        self.events.take().into_iter().map(|e| e.reason).collect()
    }
}

/// The pod as the watch delivers it after the agent's own writes.
fn with_written(mut pod: Pod, node: &Node) -> Pod {
    pod.status = node.statuses().pop();
    pod
}

fn condition(status: &PodStatus, kind: &str) -> String {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn waiting_reason(status: &PodStatus) -> String {
    status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == "app")
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_created_pod_reaches_running_with_ready_written_once() {
    let mut node = node();
    let p = pod(json!({}));
    let mut state = PodState::default();
    node.sync(&mut state, &p).await;

    let status = node.last_status();
    assert_eq!(status.phase.as_deref(), Some("Running"), "{status:?}");
    assert_eq!(condition(&status, "Ready"), "True");
    assert_eq!(condition(&status, "ContainersReady"), "True");
    assert_eq!(node.cri.containers_named("app"), (1, 1));
    let reasons = node.reasons();
    for expected in ["Pulled", "Created", "Started"] {
        assert!(reasons.contains(&expected.to_string()), "{reasons:?}");
    }

    for _ in 0..3 {
        node.sync(&mut state, &with_written(p.clone(), &node)).await;
    }
    let ready_writes = node
        .statuses()
        .iter()
        .filter(|s| condition(s, "Ready") == "True")
        .count();
    assert_eq!(ready_writes, 1, "an unchanged status is not written again");
    assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crash_looping_container_restarts_at_once_then_after_10s_then_20s() {
    let mut node = node();
    let p = pod(json!({}));
    let mut state = PodState::default();
    node.sync(&mut state, &p).await;

    node.cri.exit_container("app", 1).unwrap();
    let first = node.sync(&mut state, &p).await;
    assert_eq!(
        node.cri.calls_of(Method::StartContainer).len(),
        2,
        "first restart is immediate"
    );
    assert_eq!(first.requeue_after, None);

    node.cri.exit_container("app", 1).unwrap();
    let backoff = node.sync(&mut state, &p).await;
    assert_eq!(backoff.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(waiting_reason(&node.last_status()), "CrashLoopBackOff");
    assert!(node.reasons().contains(&"BackOff".to_string()));

    tokio::time::advance(Duration::from_millis(9_999)).await;
    let early = node.sync(&mut state, &p).await;
    assert_eq!(early.requeue_after, Some(Duration::from_millis(1)));
    assert_eq!(node.cri.calls_of(Method::StartContainer).len(), 2);

    tokio::time::advance(Duration::from_millis(1)).await;
    node.sync(&mut state, &p).await;
    assert_eq!(
        node.cri.calls_of(Method::StartContainer).len(),
        3,
        "restarted after 10 s"
    );

    node.cri.exit_container("app", 1).unwrap();
    let longer = node.sync(&mut state, &p).await;
    assert_eq!(longer.requeue_after, Some(Duration::from_secs(20)));
    let restarts = node.last_status().container_statuses.unwrap()[0].restart_count;
    assert_eq!(restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_graceful_delete_stops_with_the_grace_period_removes_everything_and_deletes_with_grace_0()
{
    let mut node = node();
    let p = pod(json!({"terminationGracePeriodSeconds": 60}));
    let mut state = PodState::default();
    node.sync(&mut state, &p).await;
    node.reasons();

    let mut deleting = with_written(p, &node);
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    deleting.metadata.deletion_grace_period_seconds = Some(7);
    let outcome = node.sync(&mut state, &deleting).await;

    let stops = node.cri.calls_of(Method::StopContainer);
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].timeout, Some(Duration::from_secs(7)));
    assert_eq!(node.cri.calls_of(Method::StopPodSandbox).len(), 1);
    assert_eq!(node.cri.containers_named("app"), (0, 0));
    assert_eq!(node.cri.sandbox_count(), 0);
    assert_eq!(
        node.writer.writes().last(),
        Some(&Written::Deleted { uid: UID.into() })
    );
    assert!(node.reasons().contains(&"Killing".to_string()));
    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(5)));

    node.sync(&mut state, &deleting).await;
    let deletions = node
        .writer
        .writes()
        .into_iter()
        .filter(|w| matches!(w, Written::Deleted { .. }))
        .count();
    assert_eq!(deletions, 1, "the object is deleted once");
}

#[tokio::test(start_paused = true)]
async fn a_failing_run_pod_sandbox_reports_failed_create_pod_sandbox_and_is_retried() {
    let mut node = node();
    let p = pod(json!({}));
    let mut state = PodState::default();
    node.cri.fail_next(Method::RunPodSandbox, 1, "no network");
    let outcome = node.sync(&mut state, &p).await;

    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(2)));
    let events = node.events.take();
    let failed: Vec<&RecordedEvent> = events
        .iter()
        .filter(|e| e.reason == "FailedCreatePodSandBox")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].warning);
    assert!(
        failed[0].message.contains("no network"),
        "{}",
        failed[0].message
    );
    let status = node.last_status();
    assert_eq!(waiting_reason(&status), "ContainerCreating");
    assert_eq!(status.phase.as_deref(), Some("Pending"));

    node.sync(&mut state, &p).await;
    assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 2);
    assert_eq!(node.last_status().phase.as_deref(), Some("Running"));
}

#[tokio::test(start_paused = true)]
async fn a_create_container_error_becomes_the_containers_waiting_reason() {
    let mut node = node();
    let p = pod(json!({}));
    let mut state = PodState::default();
    node.cri.fail_next(Method::CreateContainer, 1, "disk full");
    let outcome = node.sync(&mut state, &p).await;

    assert_eq!(outcome.requeue_after, Some(Duration::from_secs(10)));
    let status = node.last_status();
    assert_eq!(waiting_reason(&status), "CreateContainerError");
    assert_eq!(condition(&status, "Ready"), "False");
    let events = node.events.take();
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Failed" && e.message.contains("disk full")),
        "{events:?}"
    );

    node.sync(&mut state, &p).await;
    assert_eq!(
        node.cri.containers_named("app"),
        (1, 1),
        "the retry starts it"
    );
}

#[tokio::test(start_paused = true)]
async fn active_deadline_seconds_ends_the_pod_failed_with_deadline_exceeded() {
    let mut node = node();
    let p = pod(json!({"activeDeadlineSeconds": 30}));
    let mut state = PodState::default();
    let first = node.sync(&mut state, &p).await;
    let left = first.requeue_after.unwrap();
    assert!(
        left <= Duration::from_secs(30) && left > Duration::from_secs(25),
        "{left:?}"
    );

    // The API's start time, 31 s ago: the deadline has passed.
    let mut late = with_written(p, &node);
    let started = Timestamp::now() - SignedDuration::from_secs(31);
    late.status.as_mut().unwrap().start_time = Some(Time(started));
    node.reasons();
    node.sync(&mut state, &late).await;

    assert!(node.reasons().contains(&"DeadlineExceeded".to_string()));
    assert_eq!(node.cri.calls_of(Method::StopContainer).len(), 1);
    let status = node.last_status();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(node.cri.calls_of(Method::StopPodSandbox).len(), 1);
}

/// Polls (in paused time, so instantly) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(start_paused = true)]
async fn a_pod_whose_object_is_gone_is_cleaned_up_by_its_worker() {
    let node = node();
    let cancel = CancellationToken::new();
    let workers = Workers::new(node.ctx.clone(), cancel.clone());
    workers.update(pod(json!({})));
    eventually("the pod runs", || {
        node.cri.containers_named("app") == (1, 1)
    })
    .await;

    workers.gone(UID);
    eventually("the worker is gone", || !workers.contains(UID)).await;
    assert_eq!(node.cri.containers_named("app"), (0, 0));
    assert_eq!(node.cri.sandbox_count(), 0);
    assert!(
        !node
            .writer
            .writes()
            .iter()
            .any(|w| matches!(w, Written::Deleted { .. })),
        "a gone object is not deleted again"
    );
    cancel.cancel();
}
