//! The eviction manager end to end on the real cluster: a pod writing past its emptyDir
//! sizeLimit is evicted and its volume removed; under memory pressure (the pods' allocatable
//! memory, from a flag-set threshold and a system reservation that leaves pods 1 GiB) a
//! memory hog is evicted before a Guaranteed pod, the node reports MemoryPressure, and a
//! BestEffort pod is refused meanwhile; image garbage collection removes an unused image above
//! its threshold and keeps the ones in use. The eviction tests print how long the agent took
//! from the threshold being crossed to the pod Failed. Serial, each with its own agent.

use std::time::{Duration, Instant};

use crate::common::pods::{
    TestNamespace, busybox, condition, events, phase, ready, setup_with, sh, wait_pod,
};
use crate::common::{require_cluster, wait_for};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn reason(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.reason.as_deref())
        .unwrap_or_default()
}

fn message(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.message.as_deref())
        .unwrap_or_default()
}

/// kubelet's message for the hog: the node's part, then the line for its container above its
/// request (the runtime's working set).
fn memory_pressure_message(p: &Pod) {
    let m = message(p);
    assert!(
        m.starts_with(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: "
        ) && m.contains("Container c was using ")
            && m.ends_with(", request is 10Mi, has larger consumption of memory. "),
        "{m}"
    );
}

/// Waits for the pod to end Failed with reason Evicted; returns it and when that was seen.
async fn evicted(ns: &TestNamespace, name: &str) -> (Pod, Instant) {
    let p = wait_pod(&ns.pods(), name, "Failed, Evicted", T, |p| {
        phase(p) == "Failed" && reason(p) == "Evicted"
    })
    .await;
    (p, Instant::now())
}

#[tokio::test]
async fn a_pod_writing_past_its_empty_dir_size_limit_is_evicted_and_its_volume_removed() {
    if !require_cluster() {
        return;
    }
    let node = "evict-storage";
    let (client, agent, ns) = setup_with(node, "evict-storage", &[]).await;
    // The container writes 2 MiB into a 1 MiB emptyDir once it runs, then waits.
    ns.pod(
        "writer",
        node,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh("dd if=/dev/zero of=/scratch/fill bs=1M count=2 && sleep 3600"),
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]}),
    )
    .await;
    let running = ready(&ns, "writer").await;
    let crossed = Instant::now();
    let (p, seen) = evicted(&ns, "writer").await;
    println!(
        "emptyDir over its sizeLimit -> pod Failed/Evicted seen: {} ms (from Ready)",
        (seen - crossed).as_millis()
    );
    assert_eq!(
        message(&p),
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
    );
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    let said = events(&client, &ns.name, "writer").await;
    assert!(
        said.iter().any(|e| e.contains("Evicted")),
        "an Evicted event: {said:?}"
    );
    let uid = running.metadata.uid.clone().unwrap();
    let volume = agent
        .dir
        .path()
        .join("root/pods")
        .join(&uid)
        .join("volumes/kubernetes.io~empty-dir/scratch");
    wait_for("the emptyDir removed", T, || async {
        (!volume.exists()).then_some(())
    })
    .await;
}

fn disruption_target(p: &Pod) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .cloned()
}

/// /proc/meminfo's MemTotal in bytes.
fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

async fn node_condition(client: &kube::Client, node: &str, kind: &str) -> Option<String> {
    let n: Node = Api::<Node>::all(client.clone()).get(node).await.ok()?;
    crate::common::condition(&n, kind).map(|c| c.status)
}

#[tokio::test]
async fn a_memory_hog_is_evicted_before_a_guaranteed_pod_and_best_effort_pods_are_refused_meanwhile()
 {
    if !require_cluster() {
        return;
    }
    let node = "evict-memory";
    // Pods get 1 GiB of allocatable memory (the rest is reserved for the system); the hard
    // memory.available threshold also watches that share (allocatableMemory.available).
    let reserved = format!("--system-reserved=memory={}", mem_total() - (1 << 30));
    let (client, _agent, ns) = setup_with(
        node,
        "evict-memory",
        &[
            &reserved,
            "--eviction-hard=memory.available<100Mi",
            "--eviction-pressure-transition-period=40s",
        ],
    )
    .await;
    ns.pod(
        "guaranteed",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                          "limits": {"cpu": "10m", "memory": "32Mi"}}}]}),
    )
    .await;
    ready(&ns, "guaranteed").await;
    // The hog fills a memory-backed emptyDir (tmpfs, charged to its cgroup, not reclaimable)
    // to 960 MiB: the pods' share leaves less than 100 MiB of the 1 GiB.
    ns.pod(
        "hog",
        node,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh("dd if=/dev/zero of=/mem/fill bs=1M count=960 && touch /mem/done && sleep 3600"),
            "resources": {"requests": {"memory": "10Mi"}},
            "volumeMounts": [{"name": "mem", "mountPath": "/mem"}]}],
            "volumes": [{"name": "mem", "emptyDir": {"medium": "Memory"}}]}),
    )
    .await;
    let hog = ready(&ns, "hog").await;
    let filled = wait_for("the hog filled its tmpfs", T, || {
        let hog = hog.clone();
        async move {
            let out = crate::common::pods::output(
                &hog,
                "c",
                &["sh", "-c", "test -e /mem/done && echo done || true"],
            )
            .await;
            out.contains("done").then(Instant::now)
        }
    })
    .await;
    let (p, seen) = evicted(&ns, "hog").await;
    println!(
        "pods' memory over allocatable -> hog Failed/Evicted seen: {} ms (from its fill finishing)",
        seen.saturating_duration_since(filled).as_millis()
    );
    memory_pressure_message(&p);
    assert_hog_blamed(&client, &ns.name, &p).await;
    let disruption = disruption_target(&p).expect("a DisruptionTarget condition");
    assert_eq!(
        (disruption.status.as_str(), disruption.reason.as_deref()),
        ("True", Some("TerminationByKubelet"))
    );
    assert_eq!(
        node_condition(&client, node, "MemoryPressure")
            .await
            .as_deref(),
        Some("True")
    );

    // Meanwhile (the condition stays for the transition period) a BestEffort pod is refused.
    ns.pod(
        "besteffort",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    let refused = wait_pod(&ns.pods(), "besteffort", "refused", T, |p| {
        phase(p) == "Failed"
    })
    .await;
    assert_eq!(reason(&refused), "Evicted");
    assert_eq!(
        message(&refused),
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    );

    // The Guaranteed pod was never a candidate while the hog was there, and the hog's memory
    // is freed with its volume: it keeps running, and the pressure ends.
    let g = ns.pods().get("guaranteed").await.unwrap();
    assert_eq!(phase(&g), "Running", "{:?}", g.status);
    wait_for("MemoryPressure False", Duration::from_secs(120), || async {
        (node_condition(&client, node, "MemoryPressure")
            .await
            .as_deref()
            == Some("False"))
        .then_some(())
    })
    .await;
    let g = ns.pods().get("guaranteed").await.unwrap();
    assert_eq!(phase(&g), "Running", "{:?}", g.status);
}

/// Whether containerd holds `image`.
async fn present(cri: &cri_client::CriClient, image: &str) -> bool {
    cri.image_status(image, false)
        .await
        .unwrap()
        .image
        .is_some()
}

#[tokio::test]
async fn image_gc_removes_unused_images_above_its_threshold_but_never_one_in_use() {
    if !require_cluster() {
        return;
    }
    let node = "image-gc";
    let busybox = busybox();
    let registry = busybox.split('/').next().unwrap().to_string();
    let unused = format!("{registry}/grpc-health:1.0");
    let cri = crate::common::pods::cri().await;
    cri.pull_image(unused.as_str(), None, None).await.unwrap();
    assert!(present(&cri, &unused).await);
    // A pod keeps busybox in use; then the agent comes back with a threshold the image
    // filesystem is above (1%) and a low mark it cannot reach (0%).
    let (client, mut agent, ns) = setup_with(node, "image-gc", &[]).await;
    ns.pod(
        "user",
        node,
        json!({"containers": [{"name": "c", "image": busybox, "command": sh("sleep 3600")}]}),
    )
    .await;
    ready(&ns, "user").await;
    assert!(
        present(&cri, &unused).await,
        "the default thresholds leave it"
    );
    agent.signal_and_wait("TERM", Duration::from_secs(30));
    agent.restart(&[
        "--image-gc-high-threshold=1",
        "--image-gc-low-threshold=0",
        "--minimum-image-ttl-duration=0s",
    ]);
    wait_for("the unused image removed", T, || async {
        (!present(&cri, &unused).await).then_some(())
    })
    .await;
    let said =
        crate::common::pods::wait_event(&client, "default", node, "FreeDiskSpaceFailed", T).await;
    assert!(
        said.contains("Failed to garbage collect required amount of images. Attempted to free"),
        "{said}"
    );
    assert!(present(&cri, &busybox).await, "an image in use stays");
    let pause = std::env::var("MKL_PAUSE_IMAGE").unwrap();
    assert!(present(&cri, &pause).await, "the sandbox image stays");
    let user = ns.pods().get("user").await.unwrap();
    assert_eq!(phase(&user), "Running");
}

/// The annotations of the pod's Evicted event, once it exists.
async fn evicted_event_annotations(
    client: &kube::Client,
    ns: &str,
    pod: &str,
) -> std::collections::BTreeMap<String, String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    wait_for("the Evicted event", T, || {
        let api = api.clone();
        async move {
            let list = api.list(&kube::api::ListParams::default()).await.ok()?;
            list.items.into_iter().find_map(|e| {
                let about = e.regarding.as_ref().and_then(|r| r.name.as_deref());
                (about == Some(pod) && e.reason.as_deref() == Some("Evicted"))
                    .then(|| e.metadata.annotations.unwrap_or_default())
            })
        }
    })
    .await
}

/// The hog's Evicted event names its container, the usage its status message gives, and the
/// starved resource, as kubelet's does.
async fn assert_hog_blamed(client: &kube::Client, ns: &str, p: &Pod) {
    let annotations = evicted_event_annotations(client, ns, "hog").await;
    assert_eq!(annotations["offending_containers"], "c", "{annotations:?}");
    let usage = &annotations["offending_containers_usage"];
    assert!(
        message(p).contains(&format!("Container c was using {usage}, request is 10Mi")),
        "{annotations:?} {}",
        message(p)
    );
    assert_eq!(annotations["starved_resource"], "memory", "{annotations:?}");
}
