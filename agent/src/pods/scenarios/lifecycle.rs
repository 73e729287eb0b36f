//! The lifecycle scenarios: each name reads as the rule it proves, each runs on the fake
//! runtime (paused clock) and on containerd (see the module above).

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::super::lifecycle::Lifecycle;
use super::super::pod_probes::ProbeResults;
use super::super::probe::ProbeKind;
use super::super::sync::{self, PodState};
use super::super::worker::Workers;
use super::{Node, eventually, scenario};
use crate::runtime::recording::Method;

fn condition(status: &k8s_openapi::api::core::v1::PodStatus, kind: &str) -> String {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

fn waiting_reason(status: &k8s_openapi::api::core::v1::PodStatus, name: &str) -> String {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_default()
}

/// `got` is `want` on the paused clock; on the real one a little less (time passed since the
/// runtime recorded the event the wait counts from).
fn assert_wait(node: &Node, got: Option<Duration>, want: Duration) {
    let got = got.expect("a wait");
    if node.exact() {
        assert_eq!(got, want);
    } else {
        assert!(
            got <= want && got + Duration::from_secs(3) >= want,
            "{got:?} is not about {want:?}"
        );
    }
}

scenario! {
    /// Create: sandbox, pull, create, start; Running and Ready, written once.
    a_created_pod_reaches_running_with_ready_written_once(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;

        let status = node.last_status(&p);
        assert_eq!(status.phase.as_deref(), Some("Running"), "{status:?}");
        assert_eq!(condition(&status, "Ready"), "True");
        assert_eq!(condition(&status, "ContainersReady"), "True");
        assert_eq!(node.containers_named(&p, "app").await, (1, 1));
        let reasons = node.reasons();
        for expected in ["Created", "Started"] {
            assert!(reasons.contains(&expected.to_string()), "{reasons:?}");
        }
        assert_eq!(state.lifecycle, Lifecycle::Syncing);
        // The runtime is listed once, before the start: the sandbox RunPodSandbox returned is
        // recorded as it is, the started container read by its id; a hostNetwork pod's IPs
        // are the node's.
        assert_eq!(node.cri.calls_of(Method::ListPodSandbox).len(), 1);
        assert_eq!(node.cri.calls_of(Method::ListContainers).len(), 1);
        assert_eq!(node.cri.calls_of(Method::ContainerStatus).len(), 1);
        assert!(node.cri.calls_of(Method::PodSandboxStatus).is_empty());
        assert_eq!(status.pod_ip.as_deref(), Some(node.ctx.node.host_ip.as_str()));

        for _ in 0..3 {
            node.sync(&mut state, &node.with_written(p.clone())).await;
        }
        let ready_writes = node
            .statuses()
            .iter()
            .filter(|s| condition(s, "Ready") == "True")
            .count();
        assert_eq!(ready_writes, 1, "an unchanged status is not written again");
        assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 1);
    }
}

scenario! {
    /// Another writer's change (the node lifecycle controller marks the pods of a node it saw
    /// NotReady: Ready False) is put back by the next sync, once.
    a_ready_condition_another_writer_changed_is_written_back(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let writes = node.statuses().len();

        let mut marked = node.with_written(p.clone());
        for c in marked.status.as_mut().unwrap().conditions.as_mut().unwrap() {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        node.sync(&mut state, &marked).await;
        assert_eq!(node.statuses().len(), writes + 1, "written back");
        assert_eq!(condition(&node.last_status(&p), "Ready"), "True");

        node.sync(&mut state, &node.with_written(p.clone())).await;
        assert_eq!(node.statuses().len(), writes + 1, "and only once");
    }
}

scenario! {
    /// Crash loop: the first restart is immediate, then 10 s, then 20 s after the exit.
    a_crash_looping_container_restarts_at_once_then_after_10s_then_20s(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;

        node.exit(&p, "app", 1).await;
        let first = node.sync(&mut state, &p).await;
        assert_eq!(
            node.cri.calls_of(Method::StartContainer).len(),
            2,
            "first restart is immediate"
        );
        assert_eq!(first.requeue_after, None);

        node.exit(&p, "app", 1).await;
        let backoff = node.sync(&mut state, &p).await;
        assert_wait(&node, backoff.requeue_after, Duration::from_secs(10));
        assert_eq!(waiting_reason(&node.last_status(&p), "app"), "CrashLoopBackOff");
        assert!(node.reasons().contains(&"BackOff".to_string()));

        if node.exact() {
            node.wait(Duration::from_millis(9_999)).await;
            let early = node.sync(&mut state, &p).await;
            assert_eq!(early.requeue_after, Some(Duration::from_millis(1)));
            assert_eq!(node.cri.calls_of(Method::StartContainer).len(), 2);
            node.wait(Duration::from_millis(1)).await;
        } else {
            node.wait(backoff.requeue_after.unwrap_or_default()).await;
        }
        node.sync(&mut state, &p).await;
        assert_eq!(
            node.cri.calls_of(Method::StartContainer).len(),
            3,
            "restarted after 10 s"
        );

        node.exit(&p, "app", 1).await;
        let longer = node.sync(&mut state, &p).await;
        assert_wait(&node, longer.requeue_after, Duration::from_secs(20));
        let restarts = node.last_status(&p).container_statuses.unwrap()[0].restart_count;
        assert_eq!(restarts, 2);
        assert_eq!(
            node.containers_named(&p, "app").await,
            (1, 0),
            "the newest exited instance is kept for lastState, older ones removed"
        );
    }
}

scenario! {
    /// Graceful delete: preStop, then stop within the deletion's grace period, then everything
    /// removed and the object deleted, once.
    a_graceful_delete_runs_pre_stop_stops_within_the_grace_and_deletes_the_object_once(node) {
        let p = node.pod(json!({
            "terminationGracePeriodSeconds": 60,
            "containers": [{"name": "app", "lifecycle": {"preStop": {"exec": {
                "command": ["sh", "-c", "echo bye > /tmp/stopping"]}}}}],
        }));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.reasons();

        let deleting = node.deleting(&p, 7);
        let outcome = node.sync(&mut state, &deleting).await;

        assert_eq!(node.cri.calls_of(Method::ExecSync).len(), 1, "preStop ran");
        let stops = node.cri.calls_of(Method::StopContainer);
        assert_eq!(stops.len(), 1);
        assert_wait(&node, stops[0].timeout, Duration::from_secs(7));
        assert_eq!(node.cri.calls_of(Method::StopPodSandbox).len(), 1);
        assert_eq!(node.containers_named(&p, "app").await, (0, 0));
        assert_eq!(node.sandbox_count(&p).await, 0);
        assert_eq!(node.deletions(&p), 1);
        assert!(node.reasons().contains(&"Killing".to_string()));
        assert_eq!(outcome.requeue_after, Some(Duration::from_secs(5)));
        assert!(matches!(state.lifecycle, Lifecycle::CleanedUp { object_deleted: true, .. }));

        node.sync(&mut state, &deleting).await;
        assert_eq!(node.deletions(&p), 1, "the object is deleted once");
    }
}

scenario! {
    /// A failing RunPodSandbox: FailedCreatePodSandBox, ContainerCreating, retried.
    a_failing_run_pod_sandbox_reports_failed_create_pod_sandbox_and_is_retried(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.cri.fail_next(Method::RunPodSandbox, 1, "no network");
        let outcome = node.sync(&mut state, &p).await;

        assert_eq!(outcome.requeue_after, Some(Duration::from_secs(2)));
        let events = node.events.take();
        let failed: Vec<_> = events
            .iter()
            .filter(|e| e.reason == "FailedCreatePodSandBox")
            .collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0].warning);
        assert!(failed[0].message.contains("no network"), "{}", failed[0].message);
        let status = node.last_status(&p);
        assert_eq!(waiting_reason(&status, "app"), "ContainerCreating");
        assert_eq!(status.phase.as_deref(), Some("Pending"));

        node.sync(&mut state, &p).await;
        assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 2);
        assert_eq!(node.last_status(&p).phase.as_deref(), Some("Running"));
    }
}

scenario! {
    /// A CreateContainer error is the container's waiting reason; the retry starts it.
    a_create_container_error_becomes_the_containers_waiting_reason(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.cri.fail_next(Method::CreateContainer, 1, "disk full");
        let outcome = node.sync(&mut state, &p).await;

        assert_eq!(outcome.requeue_after, Some(Duration::from_secs(10)));
        let status = node.last_status(&p);
        assert_eq!(waiting_reason(&status, "app"), "CreateContainerError");
        assert_eq!(condition(&status, "Ready"), "False");
        let events = node.events.take();
        assert!(
            events.iter().any(|e| e.reason == "Failed" && e.message.contains("disk full")),
            "{events:?}"
        );

        node.sync(&mut state, &p).await;
        assert_eq!(node.containers_named(&p, "app").await, (1, 1), "the retry starts it");
    }
}

scenario! {
    /// A StartContainer error: RunContainerError, and the retry replaces the container that
    /// never started instead of piling up another.
    a_failed_start_is_retried_without_leaving_the_unstarted_container_behind(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.cri.fail_next(Method::StartContainer, 1, "exec format error");
        node.sync(&mut state, &p).await;
        assert_eq!(waiting_reason(&node.last_status(&p), "app"), "RunContainerError");

        node.sync(&mut state, &p).await;
        assert_eq!(node.containers_named(&p, "app").await, (1, 1));
        assert_eq!(node.last_status(&p).phase.as_deref(), Some("Running"));
    }
}

scenario! {
    /// activeDeadlineSeconds: DeadlineExceeded, containers stopped, Failed, sandbox released.
    active_deadline_seconds_ends_the_pod_failed_with_deadline_exceeded(node) {
        let p = node.pod(json!({"activeDeadlineSeconds": 30}));
        let mut state = PodState::default();
        let first = node.sync(&mut state, &p).await;
        let left = first.requeue_after.unwrap();
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(25), "{left:?}");

        // The API's start time, 31 s ago: the deadline has passed.
        let mut late = node.with_written(p.clone());
        let started = k8s_openapi::jiff::Timestamp::now()
            - k8s_openapi::jiff::SignedDuration::from_secs(31);
        late.status.as_mut().unwrap().start_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(started));
        node.reasons();
        node.sync(&mut state, &late).await;

        assert!(node.reasons().contains(&"DeadlineExceeded".to_string()));
        assert_eq!(node.cri.calls_of(Method::StopContainer).len(), 1);
        let status = node.last_status(&p);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(node.cri.calls_of(Method::StopPodSandbox).len(), 1);
        assert!(matches!(state.lifecycle, Lifecycle::CleanedUp { object_deleted: false, .. }));

        node.sync(&mut state, &late).await;
        assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 1, "never started again");
    }
}

scenario! {
    /// An init container that fails under restartPolicy Never fails the pod; the app never
    /// starts.
    a_failed_init_container_fails_the_pod_and_the_app_never_starts(node) {
        let p = node.pod(json!({
            "restartPolicy": "Never",
            "initContainers": [{"name": "setup"}],
        }));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        assert_eq!(node.containers_named(&p, "setup").await, (1, 1));
        assert_eq!(waiting_reason(&node.last_status(&p), "app"), "PodInitializing");

        node.exit(&p, "setup", 3).await;
        node.sync(&mut state, &p).await;
        let status = node.last_status(&p);
        assert_eq!(status.phase.as_deref(), Some("Failed"), "{status:?}");
        assert_eq!(node.containers_named(&p, "app").await, (0, 0));
        assert_eq!(node.cri.calls_of(Method::StopPodSandbox).len(), 1);
    }
}

scenario! {
    /// Adoption after an agent restart: a fresh worker state finds the running pod and starts
    /// nothing new.
    an_adopted_pod_keeps_its_sandbox_and_containers_after_an_agent_restart(node) {
        let p = node.pod(json!({}));
        let mut before = PodState::default();
        node.sync(&mut before, &p).await;

        let mut after = PodState::default();
        node.sync(&mut after, &node.with_written(p.clone())).await;
        assert_eq!(node.cri.calls_of(Method::RunPodSandbox).len(), 1);
        assert_eq!(node.cri.calls_of(Method::CreateContainer).len(), 1);
        assert_eq!(node.containers_named(&p, "app").await, (1, 1));
        assert_eq!(node.last_status(&p).phase.as_deref(), Some("Running"));
    }
}

scenario! {
    /// A pod the API shows Succeeded when first seen keeps that status: nothing runs, nothing
    /// is written.
    a_pod_that_ended_before_it_was_seen_keeps_its_recorded_status(node) {
        let mut p = node.pod(json!({}));
        p.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.sync(&mut state, &p).await;
        assert!(node.statuses().is_empty());
        assert!(node.cri.calls_of(Method::RunPodSandbox).is_empty());
        assert!(matches!(state.lifecycle, Lifecycle::CleanedUp { .. }));
    }
}

scenario! {
    /// A pod for another OS is refused at admission: Failed, PodOSNotSupported, never started.
    a_refused_pod_fails_with_the_admission_reason_and_never_starts(node) {
        let p = node.pod(json!({"os": {"name": "windows"}}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let status = node.last_status(&p);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("PodOSNotSupported"));
        assert!(node.reasons().contains(&"PodOSNotSupported".to_string()));
        assert!(node.cri.calls_of(Method::RunPodSandbox).is_empty());
    }
}

scenario! {
    /// A failed liveness probe stops that container instance once, within the probe's own
    /// terminationGracePeriodSeconds; its successor is not judged by its predecessor's probe.
    a_failed_liveness_probe_restarts_that_container_instance_once(node) {
        let p = node.pod(json!({"terminationGracePeriodSeconds": 60, "containers": [{
            "name": "app",
            "livenessProbe": {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 3},
        }]}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let id = node.observed(&p).await.containers[0].id.clone();
        let failed = ProbeResults::default().with("app", &id, ProbeKind::Liveness, false);

        node.sync_probed(&mut state, &p, &failed).await;
        let stops = node.cri.calls_of(Method::StopContainer);
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].timeout, Some(Duration::from_secs(3)), "the probe's grace, not the pod's");
        let events = node.events.take();
        assert!(
            events.iter().any(|e| e.reason == "Killing"
                && e.message == "Container app failed liveness probe, will be restarted"),
            "{events:?}"
        );

        node.sync_probed(&mut state, &p, &failed).await;
        node.sync_probed(&mut state, &p, &failed).await;
        assert_eq!(node.cri.calls_of(Method::StopContainer).len(), 1, "the new instance runs");
        assert_eq!(node.containers_named(&p, "app").await.1, 1);
        let status = node.last_status(&p);
        assert_eq!(status.container_statuses.unwrap()[0].restart_count, 1);
    }
}

scenario! {
    /// Readiness follows the probe of the running instance only.
    readiness_follows_the_probe_of_the_running_instance(node) {
        let p = node.pod(json!({"containers": [{"name": "app",
            "readinessProbe": {"exec": {"command": ["true"]}}}]}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        assert_eq!(condition(&node.last_status(&p), "Ready"), "False", "no verdict yet");

        let id = node.observed(&p).await.containers[0].id.clone();
        let ready = ProbeResults::default().with("app", &id, ProbeKind::Readiness, true);
        node.sync_probed(&mut state, &p, &ready).await;
        assert_eq!(condition(&node.last_status(&p), "Ready"), "True");

        node.exit(&p, "app", 1).await;
        node.sync_probed(&mut state, &p, &ready).await;
        assert_eq!(
            condition(&node.last_status(&p), "Ready"),
            "False",
            "the restarted instance is not ready on its predecessor's word"
        );
    }
}

scenario! {
    /// A sidecar with a startup probe has started only once the probe passed: the regular
    /// containers wait for it, as kubelet starts the next container only then.
    a_sidecar_holds_the_regular_containers_back_until_its_startup_probe_passes(node) {
        let p = node.pod(json!({
            "initContainers": [{"name": "side", "restartPolicy": "Always",
                "startupProbe": {"exec": {"command": ["true"]}}}],
        }));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.sync(&mut state, &p).await;
        assert_eq!(node.containers_named(&p, "side").await, (1, 1));
        assert_eq!(node.containers_named(&p, "app").await, (0, 0), "no startup verdict yet");

        let observed = node.observed(&p).await;
        let side = observed.containers.iter().find(|c| c.name == "side").unwrap();
        let passed = ProbeResults::default().with("side", &side.id, ProbeKind::Startup, true);
        node.sync_probed(&mut state, &p, &passed).await;
        assert_eq!(node.containers_named(&p, "app").await, (1, 1));

        // A restarted sidecar has no verdict yet, and the app that already ran keeps running.
        node.exit(&p, "side", 1).await;
        node.sync_probed(&mut state, &p, &passed).await;
        node.sync_probed(&mut state, &p, &passed).await;
        assert_eq!(node.containers_named(&p, "side").await.1, 1);
        assert_eq!(node.containers_named(&p, "app").await, (1, 1));
    }
}

scenario! {
    /// Force delete: the object is gone; the worker removes everything and does not delete the
    /// object again.
    a_pod_whose_object_is_gone_is_cleaned_up_by_its_worker(node) {
        let cancel = CancellationToken::new();
        let workers = Workers::new(node.ctx.clone(), cancel.clone());
        let p = node.pod(json!({}));
        let uid = p.metadata.uid.clone().unwrap();
        workers.update(p.clone());
        eventually("the pod runs", || async {
            node.containers_named(&p, "app").await == (1, 1)
        })
        .await;

        workers.gone(&uid);
        eventually("the worker is gone", || async { !workers.contains(&uid) }).await;
        assert_eq!(node.containers_named(&p, "app").await, (0, 0));
        assert_eq!(node.sandbox_count(&p).await, 0);
        assert_eq!(node.deletions(&p), 0, "a gone object is not deleted again");
        cancel.cancel();
    }
}

scenario! {
    /// A deletion that arrives while the pod is starting: what started is stopped, the object
    /// deleted, nothing left once it is gone.
    a_delete_during_start_stops_what_started_and_deletes_the_object(node) {
        let cancel = CancellationToken::new();
        let workers = Workers::new(node.ctx.clone(), cancel.clone());
        let p = node.pod(json!({}));
        let uid = p.metadata.uid.clone().unwrap();
        workers.update(p.clone());
        workers.update(node.deleting(&p, 3));
        eventually("the object is deleted", || async { node.deletions(&p) == 1 }).await;
        assert_eq!(node.containers_named(&p, "app").await, (0, 0));
        assert_eq!(node.sandbox_count(&p).await, 0);

        workers.gone(&uid);
        eventually("the worker is gone", || async { !workers.contains(&uid) }).await;
        assert_eq!(node.deletions(&p), 1);
        cancel.cancel();
    }
}

scenario! {
    /// Same name, new UID: the new pod runs while the old one terminates; each has its own
    /// worker and nothing of the old one is left.
    a_new_uid_with_the_same_name_runs_while_the_old_one_is_removed(node) {
        let cancel = CancellationToken::new();
        let workers = Workers::new(node.ctx.clone(), cancel.clone());
        let old = node.named_pod("web", json!({}));
        let new = node.named_pod("web", json!({}));
        let old_uid = old.metadata.uid.clone().unwrap();
        workers.update(old.clone());
        eventually("the old pod runs", || async {
            node.containers_named(&old, "app").await == (1, 1)
        })
        .await;

        workers.update(node.deleting(&old, 2));
        workers.update(new.clone());
        eventually("the new pod runs", || async {
            node.containers_named(&new, "app").await == (1, 1)
        })
        .await;
        eventually("the old object is deleted", || async { node.deletions(&old) == 1 }).await;
        workers.gone(&old_uid);
        eventually("the old worker is gone", || async { !workers.contains(&old_uid) }).await;
        assert_eq!(node.sandbox_count(&old).await, 0);
        assert_eq!(node.containers_named(&new, "app").await, (1, 1));
        assert_eq!(node.deletions(&new), 0);
        cancel.cancel();
    }
}

/// The CRI calls a pod's life makes, each failed once in its own run.
const FAILED_ONCE: [Method; 12] = [
    Method::ListPodSandbox,
    Method::ListContainers,
    Method::ContainerStatus,
    Method::RunPodSandbox,
    Method::PodSandboxStatus,
    Method::ImageStatus,
    Method::CreateContainer,
    Method::StartContainer,
    Method::StopContainer,
    Method::StopPodSandbox,
    Method::RemoveContainer,
    Method::RemovePodSandbox,
];

scenario! {
    /// A runtime error at any CRI call delays the pod but never loses it: it still runs, is
    /// still deleted, and nothing stays behind.
    a_runtime_error_at_any_cri_call_delays_the_pod_but_never_loses_it(node) {
        for method in FAILED_ONCE {
            let p = node.pod(json!({}));
            let uid = p.metadata.uid.clone().unwrap();
            let mut state = PodState::default();
            node.cri.fail_next(method, 1, "injected");
            let mut running = false;
            for _ in 0..5 {
                let synced = sync::sync(&node.ctx, &mut state, &p, &ProbeResults::default()).await;
                if synced.is_ok()
                    && node.statuses().last().and_then(|s| s.phase.clone()).as_deref()
                        == Some("Running")
                    && node.containers_named(&p, "app").await == (1, 1)
                {
                    running = true;
                    break;
                }
            }
            assert!(running, "{method:?}: the pod never ran");

            node.cri.fail_next(method, 1, "injected");
            let deleting = node.deleting(&p, 1);
            for _ in 0..5 {
                let _ = sync::sync(&node.ctx, &mut state, &deleting, &ProbeResults::default()).await;
                if node.deletions(&p) > 0 {
                    break;
                }
            }
            assert!(node.deletions(&p) > 0, "{method:?}: the object was never deleted");
            // The object is gone: what a failed removal left is removed now.
            let mut removed = false;
            for _ in 0..3 {
                if sync::remove_gone(&node.ctx, &uid, None).await.is_ok()
                    && node.sandbox_count(&p).await == 0
                    && node.containers_named(&p, "app").await == (0, 0)
                {
                    removed = true;
                    break;
                }
            }
            assert!(removed, "{method:?}: something of the pod stayed behind");
            node.cri.fail_next(method, 0, "");
        }
    }
}

scenario! {
    /// Ephemeral containers (`kubectl debug`): one added to a running pod starts once, in its
    /// target's PID namespace, reports in ephemeralContainerStatuses only, and is not restarted
    /// after it exits; the pod stays Running and Ready throughout.
    an_ephemeral_container_starts_once_in_its_targets_pid_namespace_and_never_restarts(node) {
        let mut p = node.pod(json!({}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;

        let mut debugged = node.pod(json!({
            "ephemeralContainers": [{"name": "debugger", "targetContainerName": "app"}],
        }));
        debugged.metadata.uid.clone_from(&p.metadata.uid);
        p = node.with_written(debugged);
        node.sync(&mut state, &p).await;
        assert_eq!(node.containers_named(&p, "debugger").await, (1, 1));
        assert!(node.shares_pid_namespace(&p, "debugger", "app").await);
        let status = node.last_status(&p);
        let eph = status.ephemeral_container_statuses.clone().unwrap_or_default();
        assert_eq!(eph.len(), 1, "{status:?}");
        assert!(eph[0].state.as_ref().unwrap().running.is_some(), "{eph:?}");
        assert!(status.container_statuses.iter().flatten().all(|c| c.name == "app"));
        assert_eq!(condition(&status, "Ready"), "True");

        node.exit(&p, "debugger", 3).await;
        for _ in 0..2 {
            node.sync(&mut state, &node.with_written(p.clone())).await;
        }
        assert_eq!(node.containers_named(&p, "debugger").await, (1, 0), "never restarted");
        let status = node.last_status(&p);
        let eph = status.ephemeral_container_statuses.clone().unwrap_or_default();
        let exit = eph[0].state.as_ref().unwrap().terminated.as_ref().map(|t| t.exit_code);
        assert_eq!(exit, Some(3), "{eph:?}");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(condition(&status, "Ready"), "True");
    }
}
