//! A node joined the kubeadm way against the real local cluster: `deploy/dev/cluster join`
//! runs a real `kubeadm join` (built from the pinned k8s.io/kubernetes module) with the dev
//! cluster's bootstrap token and CA hash; minikubelet starts from the files kubeadm wrote
//! (bootstrap-kubelet.conf, config.yaml, kubeadm-flags.env) in the node's own mount
//! namespace, does the TLS bootstrap, and turns Ready. Then the node runs a pod with a
//! secret volume (mounted in the node's namespace, seen by containerd in the host's), serves
//! its logs through the API server, and runs a static pod from its /etc/kubernetes/manifests.
//! `cluster leave` removes the node, its pods, its files and its bootstrap token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::pods::{TestNamespace, busybox, output, ready, sh, wait_pod};
use crate::common::{admin, cluster, env, http_get, require_cluster, wait_gone, wait_ready};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::json;

const NODE: &str = "mkl-kubeadm-join";

/// Runs `cluster leave NODE` when dropped, so a failed assertion leaves nothing behind.
struct Joined;

impl Drop for Joined {
    fn drop(&mut self) {
        cluster(&["leave", NODE]);
    }
}

fn node_dir() -> PathBuf {
    PathBuf::from(env("MKL_STATE_DIR"))
        .join("joined")
        .join(NODE)
}

/// kubeadm's files, as the kubelet finds them after a join (the bootstrap credential is gone:
/// kubeadm removes it once the kubelet has its own certificate); checks the healthz port
/// that kubeadm's per-node patch set. Returns the node's ports file (port, healthz port).
async fn check_kubeadm_files(dir: &Path) -> String {
    let config = std::fs::read_to_string(dir.join("var-lib-kubelet/config.yaml")).unwrap();
    assert!(config.contains("kind: KubeletConfiguration"), "{config}");
    let flags = std::fs::read_to_string(dir.join("var-lib-kubelet/kubeadm-flags.env")).unwrap();
    assert!(flags.starts_with("KUBELET_KUBEADM_ARGS="), "{flags}");
    assert!(dir.join("etc-kubernetes/kubelet.conf").is_file());
    assert!(dir.join("etc-kubernetes/pki/ca.crt").is_file());
    assert!(!dir.join("etc-kubernetes/bootstrap-kubelet.conf").exists());
    let ports = std::fs::read_to_string(dir.join("ports")).unwrap();
    let healthz: u16 = ports.lines().nth(1).unwrap().parse().unwrap();
    assert!(
        config.contains(&format!("healthzPort: {healthz}")),
        "{config}"
    );
    let (status, body) = http_get(healthz, "/healthz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    ports
}

/// The client certificate came from a CSR made with the token of the join command (`cluster
/// join` asks `kubeadm token create` for a new one); the Node reports the port kubeadm's
/// patch gave it. Returns the token's ID.
async fn check_bootstrapped(client: &kube::Client, dir: &Path, ports: &str) -> String {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let join = std::fs::read_to_string(dir.join("join.yaml")).unwrap();
    let token = join
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap();
    let dev_token =
        std::fs::read_to_string(PathBuf::from(env("MKL_STATE_DIR")).join("pki/bootstrap-token"))
            .unwrap();
    assert_ne!(
        token,
        dev_token.trim(),
        "a token of its own, not the dev node's"
    );
    let user = format!("system:bootstrap:{}", token.split('.').next().unwrap());
    let issued = csrs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.spec.username.as_deref() == Some(user.as_str()))
        .any(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some()
                && c.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
        });
    assert!(issued, "no issued bootstrap CSR by {user}");
    let node: Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let port = node
        .status
        .unwrap()
        .daemon_endpoints
        .unwrap()
        .kubelet_endpoint
        .unwrap()
        .port;
    assert_eq!(port.to_string(), ports.lines().next().unwrap());
    token.split('.').next().unwrap().to_string()
}

/// The joined node's cgroup root (`cluster join` passes `--cgroup-root=/joined-NAME`).
fn cgroup_root() -> String {
    format!("joined-{NODE}")
}

/// A pod with a secret volume: the tmpfs is made in the node's namespace and reaches
/// containerd through the shared root dir; its logs come through the API server.
async fn check_secret_pod(client: &kube::Client, ns: &TestNamespace) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret = serde_json::from_value(json!({
        "metadata": {"name": "s"}, "stringData": {"key": "joined-secret"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    ns.pod(
        "reader",
        NODE,
        json!({
            "containers": [{"name": "c", "image": busybox(),
                "command": sh("cat /s/key; echo; exec sleep 3600"),
                "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "s"}}],
        }),
    )
    .await;
    let pod = ready(ns, "reader").await;
    assert_eq!(output(&pod, "c", &["cat", "/s/key"]).await, "joined-secret");
    // kubeadm's kubeletExtraArgs gave the node its own cgroup root; the BestEffort pod's
    // cgroup is below it, with the least cpu shares.
    let uid = pod.metadata.uid.as_deref().unwrap();
    let shares = format!(
        "/sys/fs/cgroup/cpu/{}/kubepods/besteffort/pod{uid}/cpu.shares",
        cgroup_root()
    );
    assert_eq!(
        std::fs::read_to_string(&shares)
            .map(|s| s.trim().to_string())
            .ok(),
        Some("2".to_string()),
        "{shares}"
    );
    let logs = ns
        .pods()
        .logs("reader", &LogParams::default())
        .await
        .unwrap();
    assert_eq!(logs.trim(), "joined-secret");
}

/// A static pod from the node's own /etc/kubernetes/manifests (the staticPodPath of
/// kubeadm's KubeletConfiguration) gets a mirror pod; removing the file removes both.
async fn check_static_pod(ns: &TestNamespace, dir: &Path) {
    let manifests = dir.join("etc-kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let manifest = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "static", "namespace": ns.name},
        "spec": {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": busybox(), "command": ["sleep", "3600"]}]},
    });
    std::fs::write(manifests.join("static.yaml"), manifest.to_string()).unwrap();
    let mirror_name = format!("static-{NODE}");
    let mirror = wait_pod(
        &ns.pods(),
        &mirror_name,
        "Running",
        Duration::from_secs(90),
        |p| crate::common::pods::phase(p) == "Running",
    )
    .await;
    let annotations = mirror.metadata.annotations.unwrap_or_default();
    assert!(
        annotations.contains_key("kubernetes.io/config.mirror"),
        "{annotations:?}"
    );
    std::fs::remove_file(manifests.join("static.yaml")).unwrap();
    wait_gone(&ns.pods(), &mirror_name, Duration::from_secs(90)).await;
}

#[tokio::test]
async fn kubeadm_join_bootstraps_a_ready_node_that_runs_pods_and_static_pods() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let started = Instant::now();
    let out = cluster(&["join", NODE]);
    let joined = Joined;
    eprintln!("kubeadm join to Ready: {:?}\n{out}", started.elapsed());
    wait_ready(&client, NODE, "True", Duration::from_secs(30)).await;
    let ports = check_kubeadm_files(&node_dir()).await;
    let token_id = check_bootstrapped(&client, &node_dir(), &ports).await;
    let ns = TestNamespace::create(&client, "mkl-kubeadm-join").await;
    check_secret_pod(&client, &ns).await;
    check_static_pod(&ns, &node_dir()).await;
    drop(ns);

    // Leaving removes the Node and every file of the node.
    drop(joined);
    let nodes: Api<Node> = Api::all(client.clone());
    assert!(nodes.get_opt(NODE).await.unwrap().is_none());
    assert!(!node_dir().exists());
    assert!(
        !Path::new("/sys/fs/cgroup/memory")
            .join(cgroup_root())
            .exists(),
        "the node's cgroups are gone"
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let token_secret = format!("bootstrap-token-{token_id}");
    assert!(
        secrets.get_opt(&token_secret).await.unwrap().is_none(),
        "{token_secret} deleted"
    );
}
