//! In-place pod resize end to end on the real cluster: the `resize` subresource changes a
//! running container's cpu and memory, the agent applies them without a restart (the cgroup
//! files read back from the host), reports them in the status with kubelet's events, keeps the
//! allocation across its own restart, and refuses one beyond the node (PodResizePending
//! Infeasible, counted by kubelet's pending-resize gauge until it is reverted).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::pods::{
    TestNamespace, busybox, container, events, pod_condition, ready, setup, wait_event, wait_pod,
};
use crate::common::{agent_metrics, require_cluster, wait_for};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn spec(node: &str) -> Value {
    json!({"containers": [{"name": "c", "image": busybox(), "command": ["sleep", "3600"],
        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                      "limits": {"cpu": "200m", "memory": "64Mi"}}}],
        "nodeName": node})
}

/// Sends `resources` for container c through the resize subresource.
async fn resize(ns: &TestNamespace, name: &str, resources: Value) {
    let patch = json!({"spec": {"containers": [{"name": "c", "resources": resources}]}});
    ns.pods()
        .patch_subresource(
            "resize",
            name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .expect("the resize subresource takes it");
}

/// The status's resources of container c, as JSON.
fn reported(p: &Pod) -> Value {
    serde_json::to_value(&container(p, "c").unwrap().resources).unwrap()
}

/// A file of the container's cgroup (cgroupfs layout below the agent's cgroup root).
fn cgroup_file(root: &str, pod: &Pod, controller: &str, file: &str) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap();
    let id = container(pod, "c").unwrap().container_id.clone().unwrap();
    let id = id.trim_start_matches("containerd://");
    let path = PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(root.trim_start_matches('/'))
        .join(format!("kubepods/burstable/pod{uid}"))
        .join(id)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[tokio::test]
async fn a_running_pods_cpu_and_memory_are_resized_in_place() {
    if !require_cluster() {
        return;
    }
    let node = "resize-in-place";
    let (client, mut agent, ns) = setup(node, "resize-in-place").await;
    ns.pod("p", node, spec(node)).await;
    let before = ready(&ns, "p").await;
    let root = agent.cgroup_root();
    assert_eq!(
        cgroup_file(&root, &before, "cpu", "cpu.cfs_quota_us"),
        "20000"
    );
    assert_eq!(
        reported(&before),
        json!({"requests": {"cpu": "100m", "memory": "32Mi"},
               "limits": {"cpu": "200m", "memory": "64Mi"}})
    );

    resize(
        &ns,
        "p",
        json!({"requests": {"cpu": "200m", "memory": "32Mi"},
                             "limits": {"cpu": "400m", "memory": "128Mi"}}),
    )
    .await;
    let after = wait_pod(&ns.pods(), "p", "the resize applied", T, |p| {
        reported(p)["limits"]["cpu"] == "400m" && pod_condition(p, "PodResizeInProgress").is_none()
    })
    .await;
    let c = container(&after, "c").unwrap();
    assert_eq!(c.restart_count, 0, "no restart");
    assert_eq!(
        c.container_id,
        container(&before, "c").unwrap().container_id,
        "the same container"
    );
    assert_eq!(
        serde_json::to_value(&c.allocated_resources).unwrap(),
        json!({"cpu": "200m", "memory": "32Mi"})
    );
    assert_eq!(
        cgroup_file(&root, &after, "cpu", "cpu.cfs_quota_us"),
        "40000"
    );
    assert_eq!(cgroup_file(&root, &after, "cpu", "cpu.shares"), "204");
    assert_eq!(
        cgroup_file(&root, &after, "memory", "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(
        after.status.as_ref().unwrap().observed_generation,
        after.metadata.generation
    );
    let started = wait_event(&client, &ns.name, "p", "ResizeStarted", T).await;
    assert!(
        started.contains(r#""limits":{"cpu":"400m","memory":"128Mi"}"#),
        "{started}"
    );
    wait_event(&client, &ns.name, "p", "ResizeCompleted", T).await;

    // The agent restarts: the allocation is the status's, nothing is applied again.
    agent.signal_and_wait("TERM", Duration::from_secs(30));
    agent.restart(&[]);
    crate::common::wait_ready(&client, node, "True", Duration::from_secs(90)).await;
    let still = ready(&ns, "p").await;
    assert_eq!(container(&still, "c").unwrap().restart_count, 0);
    assert_eq!(reported(&still), reported(&after));
    let started = events(&client, &ns.name, "p")
        .await
        .iter()
        .filter(|e| e.starts_with("ResizeStarted: "))
        .count();
    assert_eq!(started, 1, "no resize after the restart");
}

#[tokio::test]
async fn a_resize_beyond_the_node_is_infeasible() {
    if !require_cluster() {
        return;
    }
    let node = "resize-infeasible";
    let (client, agent, ns) = setup(node, "resize-infeasible").await;
    ns.pod("p", node, spec(node)).await;
    let before = ready(&ns, "p").await;
    resize(
        &ns,
        "p",
        json!({"requests": {"cpu": "1000", "memory": "32Mi"},
                             "limits": {"cpu": "1000", "memory": "64Mi"}}),
    )
    .await;
    let pending = wait_for("PodResizePending", T, || async {
        let p = ns.pods().get("p").await.ok()?;
        pod_condition(&p, "PodResizePending").cloned()
    })
    .await;
    assert_eq!(pending.status, "True");
    assert_eq!(pending.reason.as_deref(), Some("Infeasible"));
    let message = pending.message.unwrap_or_default();
    assert!(
        message
            .starts_with("Node didn't have enough capacity: cpu, requested: 1000000, capacity: "),
        "{message}"
    );
    let event = wait_event(&client, &ns.name, "p", "ResizeInfeasible", T).await;
    assert!(
        event.starts_with("ResizeInfeasible: Pod resize Infeasible: {"),
        "{event}"
    );
    let now = ns.pods().get("p").await.unwrap();
    assert_eq!(reported(&now), reported(&before), "nothing applied");
    assert_eq!(
        cgroup_file(&agent.cgroup_root(), &now, "cpu", "cpu.cfs_quota_us"),
        "20000"
    );
    let gauge = |text: &str, sample: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(sample))
            .map(|v| v.trim().to_string())
    };
    let infeasible = "kubelet_pod_pending_resizes{reason=\"infeasible\"}";
    let text = agent_metrics(agent.port);
    assert_eq!(gauge(&text, infeasible).as_deref(), Some("1"), "{text}");
    assert!(text.contains(
        "kubelet_pod_infeasible_resizes_total{reason_detail=\"insufficient_node_allocatable\"} 1"
    ));
    // Reverted: the condition and the gauge's count go.
    resize(
        &ns,
        "p",
        json!({"requests": {"cpu": "100m", "memory": "32Mi"},
                             "limits": {"cpu": "200m", "memory": "64Mi"}}),
    )
    .await;
    wait_for("the pending resize gone from the gauge", T, || async {
        (gauge(&agent_metrics(agent.port), infeasible).is_none()).then_some(())
    })
    .await;
    let p = ns.pods().get("p").await.unwrap();
    assert!(pod_condition(&p, "PodResizePending").is_none());
}
