//! The node's lifecycle against the real local cluster: registration, Ready, the Lease, and
//! surviving its peers (containerd, the API server, its own SIGKILL). Run serially
//! (`--test-threads=1`): some tests stop shared components.

use std::time::{Duration, Instant};

use crate::common::{Agent, admin, cluster, condition, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

async fn lease_renew_time(client: &kube::Client, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = leases.get_opt(name).await.ok().flatten()?;
    let t = lease.spec?.renew_time?;
    Some(t.0.to_string())
}

async fn wait_lease_renewed_after(
    client: &kube::Client,
    name: &str,
    after: &str,
    timeout: Duration,
) {
    wait_for(
        &format!("lease {name} renewed after {after}"),
        timeout,
        || async {
            let t = lease_renew_time(client, name).await?;
            (t.as_str() > after).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn node_registers_with_capacity_info_labels_and_taints_and_turns_ready() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let agent = Agent::start(
        "mkl-it-register",
        &[
            "--node-labels=tier=gold,topology.kubernetes.io/zone=z1",
            "--register-with-taints=dedicated=test:NoSchedule",
            "--max-pods=42",
        ],
    );
    let node = wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;

    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "mkl-it-register");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["tier"], "gold");
    assert_eq!(labels["topology.kubernetes.io/zone"], "z1");
    let taints = node.spec.clone().unwrap().taints.unwrap();
    assert!(
        taints
            .iter()
            .any(|t| t.key == "dedicated" && t.effect == "NoSchedule")
    );

    let status = node.status.clone().unwrap();
    let capacity = status.capacity.unwrap();
    for key in ["cpu", "memory", "ephemeral-storage", "pods"] {
        assert!(
            capacity.contains_key(key),
            "capacity lacks {key}: {capacity:?}"
        );
    }
    assert_eq!(capacity["pods"].0, "42");
    let allocatable = status.allocatable.unwrap();
    assert_eq!(allocatable["pods"].0, "42");
    assert_ne!(
        allocatable["memory"], capacity["memory"],
        "eviction threshold is subtracted"
    );

    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "{info:?}"
    );
    assert!(info.kubelet_version.starts_with("v1.35"), "{info:?}");
    assert!(!info.boot_id.is_empty() && !info.kernel_version.is_empty());
    assert_eq!(info.operating_system, "linux");

    let addresses = status.addresses.unwrap();
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1")
    );
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == "mkl-it-register")
    );
    let port = status
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port;
    assert_eq!(port, i32::from(agent.port));

    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = condition(&node, kind).unwrap();
        assert_eq!(c.status, "False", "{kind}: {c:?}");
    }
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));

    // The local /healthz answers while the agent runs.
    let (code, body) = wait_for("healthz", Duration::from_secs(10), || {
        crate::common::http_get(agent.healthz_port, "/healthz")
    })
    .await;
    assert_eq!((code, body.as_str()), (200, "ok"));
}

#[tokio::test]
async fn lease_is_created_owned_by_the_node_and_renewed() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let agent = Agent::start("mkl-it-lease", &[]);
    let node = wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = wait_for("lease exists", READY_TIMEOUT, || async {
        leases.get_opt(&agent.name).await.ok().flatten()
    })
    .await;
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("mkl-it-lease"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(owner.kind, "Node");
    assert_eq!(Some(&owner.uid), node.metadata.uid.as_ref());

    let first = spec.renew_time.unwrap().0.to_string();
    // Renewed every 10 s: a second renewal must come well within 25 s.
    wait_lease_renewed_after(&client, &agent.name, &first, Duration::from_secs(25)).await;
}

#[tokio::test]
async fn containerd_stopped_turns_node_not_ready_within_15s_and_ready_again_after_restart() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let began = k8s_openapi::jiff::Timestamp::now() - std::time::Duration::from_secs(2);
    let agent = Agent::start("mkl-it-runtime", &[]);
    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;

    cluster(&["stop", "containerd"]);
    let stopped = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(15),
        wait_ready(&client, &agent.name, "False", Duration::from_secs(16)),
    )
    .await;
    let seen_after = stopped.elapsed();
    // Bring containerd back before asserting, so a failure leaves the cluster usable.
    cluster(&["start", "containerd"]);
    let node = outcome.unwrap_or_else(|_| panic!("node still Ready 15 s after containerd stopped"));
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
    let message = ready.message.unwrap_or_default();
    assert!(message.contains("container runtime is down"), "{message}");
    eprintln!("Ready=False seen {seen_after:?} after containerd stopped");

    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    assert!(
        agent.log().contains("container runtime is up"),
        "{}",
        agent.log()
    );
    // kubectl describe node shows kubelet's node events for what happened.
    let name = agent.name.clone();
    let seen = wait_for("node events", Duration::from_secs(30), || async {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(client.clone(), "default");
        let reasons: Vec<String> = api
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name.as_str()))
            .filter(|e| {
                e.metadata
                    .creation_timestamp
                    .as_ref()
                    .is_some_and(|t| t.0 >= began)
            })
            .filter_map(|e| e.reason)
            .collect();
        let all = ["Starting", "NodeReady", "NodeNotReady"];
        all.iter()
            .all(|r| reasons.iter().any(|x| x == r))
            .then_some(reasons)
    })
    .await;
    eprintln!("node events: {seen:?}");
}

#[tokio::test]
async fn apiserver_restart_reconnects_without_a_duplicate_node() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let agent = Agent::start("mkl-it-apiserver", &[]);
    let node = wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let uid = node.metadata.uid.clone();

    cluster(&["restart", "kube-apiserver"]);
    let client = admin().await;
    let after = k8s_openapi::jiff::Timestamp::now().to_string();
    wait_lease_renewed_after(&client, &agent.name, &after, Duration::from_secs(60)).await;

    let nodes: Api<Node> = Api::all(client.clone());
    let same: Vec<_> = nodes
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() == Some(agent.name.as_str()))
        .collect();
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].metadata.uid, uid, "the Node was not re-created");
    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
}

#[tokio::test]
async fn sigkill_then_restart_adopts_the_existing_node() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let mut agent = Agent::start("mkl-it-adopt", &[]);
    let node = wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let uid = node.metadata.uid.clone();
    let transition = condition(&node, "Ready").unwrap().last_transition_time;

    agent.signal_and_wait("KILL", Duration::from_secs(10));
    let after = k8s_openapi::jiff::Timestamp::now().to_string();
    agent.restart(&[]);
    wait_lease_renewed_after(&client, &agent.name, &after, READY_TIMEOUT).await;
    let node = wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    assert_eq!(node.metadata.uid, uid, "adopted, not re-created");
    assert_eq!(
        condition(&node, "Ready").unwrap().last_transition_time,
        transition,
        "Ready never flipped, so its transition time carries over the restart"
    );
    assert!(
        agent.log().contains("adopted existing node"),
        "{}",
        agent.log()
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_exit_code_zero() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let mut agent = Agent::start("mkl-it-sigterm", &["--log-format=json"]);
    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let status = agent.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}\n{}", agent.log());
    let log = agent.log();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("shutting down"))
        .unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(last).expect("JSON log lines");
    assert_eq!(parsed["signal"], "SIGTERM");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn systemd_hears_ready_then_stopping_on_the_notify_socket() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let socket_path = path.to_string_lossy().into_owned();
    let mut agent =
        Agent::start_with_env("mkl-it-sdnotify", &[], &[("NOTIFY_SOCKET", &socket_path)]);
    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let mut heard = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !heard.iter().any(|m: &String| m.contains("READY=1")) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert_eq!(
        heard.first().map(String::as_str),
        Some("STATUS=Registering node mkl-it-sdnotify\n"),
        "{heard:?}"
    );
    assert!(
        heard.contains(&"READY=1\nSTATUS=Node mkl-it-sdnotify is Ready\n".to_string()),
        "{heard:?}\n{}",
        agent.log()
    );

    let status = agent.signal_and_wait("TERM", Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    let mut stopping = None;
    while let Ok(n) = socket.recv(&mut buf) {
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.starts_with("STOPPING=1") {
            stopping = Some(m);
            break;
        }
    }
    assert_eq!(
        stopping.as_deref(),
        Some("STOPPING=1\nSTATUS=Stopping (SIGTERM); pods keep running\n")
    );
}

#[tokio::test]
async fn a_node_without_csi_drivers_has_its_csinode_and_warns_of_a_loopback_ip() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let agent = Agent::start("mkl-it-csinode", &[]);
    wait_ready(&client, &agent.name, "True", READY_TIMEOUT).await;
    let api: Api<k8s_openapi::api::storage::v1::CSINode> = Api::all(client.clone());
    let csinode = wait_for("the CSINode", Duration::from_secs(30), || async {
        api.get_opt(&agent.name).await.ok().flatten()
    })
    .await;
    assert!(csinode.spec.drivers.is_empty(), "{csinode:?}");
    let owner = &csinode.metadata.owner_references.unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Node", agent.name.as_str())
    );
    let log = agent.log();
    assert!(
        log.contains("the node IP is a loopback address"),
        "the test agents run with --node-ip=127.0.0.1:\n{log}"
    );
}
