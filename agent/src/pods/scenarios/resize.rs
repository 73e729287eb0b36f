//! In-place resize scenarios: a resize applied without a restart (the cgroup values read back
//! from the runtime), one resizePolicy restarts, one the node can never give, one deferred
//! until another pod's share goes, and a memory limit refused below what the container holds.

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use serde_json::json;

use super::super::sync::PodState;
use super::{Node, scenario};
use crate::runtime::recording::Method;

/// `pod` as the API has it after the agent's writes and a resize of its first container to
/// `resources` (the resize subresource bumps the generation).
fn resized(node: &Node, pod: &Pod, resources: serde_json::Value) -> Pod {
    let mut p = node.with_written(pod.clone());
    p.metadata.generation = Some(p.metadata.generation.unwrap_or(1) + 1);
    p.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(resources).unwrap());
    p
}

fn condition<'a>(s: &'a PodStatus, kind: &str) -> Option<&'a PodCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == kind)
}

fn app_resources(node: &Node, p: &Pod) -> serde_json::Value {
    let s = node.last_status(p);
    let c = &s.container_statuses.as_ref().unwrap()[0];
    json!({
        "allocated": c.allocated_resources,
        "resources": c.resources,
        "restarts": c.restart_count,
    })
}

fn burstable(node: &Node) -> Pod {
    let mut p = node.pod(json!({"containers": [{"name": "app", "resources": {
        "requests": {"cpu": "100m", "memory": "32Mi"},
        "limits": {"cpu": "200m", "memory": "64Mi"}
    }}]}));
    p.metadata.generation = Some(1);
    p
}

scenario! {
    /// More cpu and memory for a running container: UpdateContainerResources, no restart; the
    /// runtime reports the new quota and limit, the pod cgroup follows, the status shows the
    /// allocation and the applied resources, ResizeStarted then ResizeCompleted.
    a_resize_is_applied_in_place(node) {
        let p = burstable(&node);
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let (id, before) = node.container_resources(&p, "app").await;
        assert_eq!((before.cpu_quota, before.memory_limit_in_bytes), (20_000, 64 << 20));
        node.reasons();

        let bigger = resized(&node, &p, json!({
            "requests": {"cpu": "200m", "memory": "32Mi"},
            "limits": {"cpu": "400m", "memory": "128Mi"}
        }));
        node.sync(&mut state, &bigger).await;
        let updates = node.cri.calls_of(Method::UpdateContainerResources);
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].target, id);
        assert_eq!(node.cri.calls_of(Method::StartContainer).len(), 1, "no restart");
        let (same_id, after) = node.container_resources(&bigger, "app").await;
        assert_eq!(same_id, id);
        assert_eq!(after.cpu_quota, 40_000);
        assert_eq!(after.cpu_shares, 204);
        assert_eq!(after.memory_limit_in_bytes, 128 << 20);
        let path = node.pod_cgroup_path(&p);
        assert_eq!(node.pod_cgroup(&path), Some((Some(128 << 20), Some(204))));

        let status = node.last_status(&bigger);
        assert!(condition(&status, "PodResizeInProgress").is_none());
        assert!(condition(&status, "PodResizePending").is_none());
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(app_resources(&node, &bigger), json!({
            "allocated": {"cpu": "200m", "memory": "32Mi"},
            "resources": {"requests": {"cpu": "200m", "memory": "32Mi"},
                          "limits": {"cpu": "400m", "memory": "128Mi"}},
            "restarts": 0,
        }));
        assert_eq!(node.reasons(), ["ResizeStarted", "ResizeCompleted"]);

        // Back down, above what it holds: the container shrinks first, then the pod cgroup.
        node.hold_memory(&bigger, "app", 1).await;
        let smaller = resized(&node, &bigger, json!({
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "150m", "memory": "96Mi"}
        }));
        node.sync(&mut state, &smaller).await;
        let (_, after) = node.container_resources(&smaller, "app").await;
        assert_eq!((after.cpu_quota, after.memory_limit_in_bytes), (15_000, 96 << 20));
        assert_eq!(node.pod_cgroup(&path), Some((Some(96 << 20), Some(102))));
        node.sync(&mut state, &node.deleting(&smaller, 2)).await;
    }
}

scenario! {
    /// resizePolicy RestartContainer for memory: a memory resize restarts the container (the
    /// Killing event says why), the new instance has the new limit and restartCount 1; a cpu
    /// resize of the same container is still applied in place.
    a_restart_policy_restarts_the_container(node) {
        let mut p = burstable(&node);
        p.spec.as_mut().unwrap().containers[0].resize_policy = Some(serde_json::from_value(json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"}
        ])).unwrap());
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let (first, _) = node.container_resources(&p, "app").await;
        node.reasons();

        let more_memory = resized(&node, &p, json!({
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"}
        }));
        node.sync(&mut state, &more_memory).await;
        assert!(node.cri.calls_of(Method::UpdateContainerResources).is_empty());
        assert_eq!(node.cri.calls_of(Method::StopContainer)[0].target, first);
        let (second, r) = node.container_resources(&more_memory, "app").await;
        assert_ne!(second, first);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(app_resources(&node, &more_memory)["restarts"], 1);
        let reasons = node.reasons();
        assert_eq!(reasons.first().map(String::as_str), Some("ResizeStarted"));
        assert!(reasons.contains(&"Killing".to_string()), "{reasons:?}");
        assert_eq!(reasons.last().map(String::as_str), Some("ResizeCompleted"));

        let more_cpu = resized(&node, &more_memory, json!({
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "300m", "memory": "128Mi"}
        }));
        node.sync(&mut state, &more_cpu).await;
        assert_eq!(node.cri.calls_of(Method::UpdateContainerResources).len(), 1);
        assert_eq!(node.container_resources(&more_cpu, "app").await.0, second);
        node.sync(&mut state, &node.deleting(&more_cpu, 2)).await;
    }
}

scenario! {
    /// More cpu than the node has: PodResizePending Infeasible with kubelet's message, the
    /// event once, nothing applied; reverting the spec clears the condition.
    a_resize_beyond_the_node_is_infeasible(node) {
        let p = burstable(&node);
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.reasons();
        let huge = resized(&node, &p, json!({
            "requests": {"cpu": "100", "memory": "32Mi"},
            "limits": {"cpu": "100", "memory": "64Mi"}
        }));
        node.sync(&mut state, &huge).await;
        let status = node.last_status(&huge);
        let pending = condition(&status, "PodResizePending").expect("pending");
        assert_eq!(pending.reason.as_deref(), Some("Infeasible"));
        assert_eq!(
            pending.message.as_deref(),
            Some("Node didn't have enough capacity: cpu, requested: 100000, capacity: 6000")
        );
        assert_eq!(pending.observed_generation, Some(2));
        assert_eq!(node.reasons(), ["ResizeInfeasible"]);
        assert!(node.cri.calls_of(Method::UpdateContainerResources).is_empty());
        assert_eq!(
            app_resources(&node, &huge)["allocated"],
            json!({"cpu": "100m", "memory": "32Mi"}),
            "the allocation stands"
        );
        node.sync(&mut state, &node.with_written(huge.clone())).await;
        assert!(node.reasons().is_empty(), "judged once per generation");

        let mut reverted = node.with_written(huge.clone());
        reverted.spec = p.spec.clone();
        node.sync(&mut state, &reverted).await;
        assert!(condition(&node.last_status(&reverted), "PodResizePending").is_none());
        node.sync(&mut state, &node.deleting(&reverted, 2)).await;
    }
}

scenario! {
    /// A resize that fits the node but not beside another pod: Deferred, then accepted once
    /// that pod's share is released.
    a_deferred_resize_is_accepted_when_room_frees(node) {
        let mut big = node.named_pod("big", json!({"containers": [{"name": "app", "resources": {
            "requests": {"cpu": "3"}}}]}));
        big.metadata.generation = Some(1);
        let p = burstable(&node);
        let (mut big_state, mut state) = (PodState::default(), PodState::default());
        node.sync(&mut big_state, &big).await;
        node.sync(&mut state, &p).await;
        node.reasons();
        let wants = json!({
            "requests": {"cpu": "1500m", "memory": "32Mi"},
            "limits": {"cpu": "2", "memory": "64Mi"}
        });
        let grown = resized(&node, &p, wants);
        node.sync(&mut state, &grown).await;
        let pending = condition(&node.last_status(&grown), "PodResizePending").cloned().expect("pending");
        assert_eq!(pending.reason.as_deref(), Some("Deferred"));
        assert_eq!(
            pending.message.as_deref(),
            Some("Node didn't have enough resource: cpu, requested: 1500, used: 3000, capacity: 4000")
        );
        assert!(state.resize.deferred());
        assert_eq!(node.reasons(), ["ResizeDeferred"]);

        node.sync(&mut big_state, &node.deleting(&big, 2)).await;
        node.reasons();
        node.sync(&mut state, &node.with_written(grown.clone())).await;
        assert!(condition(&node.last_status(&grown), "PodResizePending").is_none());
        assert_eq!(node.container_resources(&grown, "app").await.1.cpu_quota, 200_000);
        assert_eq!(node.reasons(), ["ResizeStarted", "ResizeCompleted"]);
        node.sync(&mut state, &node.deleting(&grown, 2)).await;
    }
}

scenario! {
    /// A memory limit below what the container holds is not applied: PodResizeInProgress with
    /// reason Error and kubelet's message, ResizeError; the limit stays.
    a_memory_limit_below_usage_is_refused(node) {
        let p = node.pod(json!({"containers": [{"name": "app", "resources": {
            "requests": {"cpu": "100m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "64Mi"}
        }}]}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.hold_memory(&p, "app", 24).await;
        node.reasons();
        let tight = resized(&node, &p, json!({
            "requests": {"cpu": "100m", "memory": "8Mi"},
            "limits": {"cpu": "200m", "memory": "16Mi"}
        }));
        node.sync(&mut state, &tight).await;
        let status = node.last_status(&tight);
        let progress = condition(&status, "PodResizeInProgress").expect("in progress");
        assert_eq!(progress.reason.as_deref(), Some("Error"));
        let message = progress.message.clone().unwrap();
        assert!(message.starts_with("cannot decrease memory limits: "), "{message}");
        assert!(
            message.contains("attempting to set container \"app\" memory limit (16777216) below current usage"),
            "{message}"
        );
        assert_eq!(node.reasons(), ["ResizeStarted", "ResizeError"]);
        assert!(node.cri.calls_of(Method::UpdateContainerResources).is_empty());
        assert_eq!(node.container_resources(&tight, "app").await.1.memory_limit_in_bytes, 64 << 20);
        assert_eq!(
            app_resources(&node, &tight)["resources"]["limits"]["memory"],
            "64Mi",
            "the status shows what the cgroup holds"
        );
        node.sync(&mut state, &node.deleting(&tight, 2)).await;
    }
}
