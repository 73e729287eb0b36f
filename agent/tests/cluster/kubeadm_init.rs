//! A cluster made by kubeadm with minikubelet as every node's kubelet, end to end
//! (`deploy/dev/cluster kubeadm-init`, `kubeadm-join`, `kubeadm-reset`; lib/kubeadm.sh):
//! - `kubeadm init` on node mkl-kcp (its own network namespace, mount namespace and
//!   containerd): the agent runs etcd, kube-apiserver, kube-controller-manager and
//!   kube-scheduler from kubeadm's static pod manifests, with their mirror pods in
//!   kube-system; kubeadm deploys kube-proxy and CoreDNS, which run as pods;
//! - `kubeadm join` of a worker with the printed bootstrap token: the agent's TLS bootstrap;
//! - a Deployment spread over both nodes behind a Service, reached by its DNS name from a pod
//!   on each node (CoreDNS, kube-proxy's rules, pod routes between the nodes);
//! - the control plane node's agent SIGKILLed and started again: the control plane's
//!   containers run on untouched (same container IDs, no restart) and the node is Ready again;
//! - kube-controller-manager signs for 3 minutes (`--cluster-signing-duration`): the control
//!   plane node's client certificate is renewed through new CSRs in place while all of this
//!   runs, and the node stays Ready.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{cluster_with, condition, env, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const CP: &str = "mkl-kcp";
const WORKER: &str = "mkl-kw1";
const NS: &str = "mkl-kubeadm-init";
const SIGNING: &str = "3m";
const CONTROL_PLANE: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Runs `cluster kubeadm-reset` when dropped, so a failed assertion leaves nothing behind.
struct KubeadmCluster;

impl Drop for KubeadmCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            print_diagnostics();
        }
        cluster_with(&["kubeadm-reset"], &[]);
    }
}

/// What a failed run needs to be understood from CI's output alone: the kubeadm cluster's pods
/// with their conditions and container states, its events, and the tail of each node agent's
/// log (the harness keeps the logs, but CI shows only the test's output).
fn print_diagnostics() {
    let kubectl = PathBuf::from(env("MKL_CACHE_DIR")).join("bin/current/kubectl");
    let kubeconfig = kubeadm_dir().join("admin.conf");
    let status = "{range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.nodeName} \
                  {.status.phase} {.status.conditions} {.status.containerStatuses}{\"\\n\"}{end}";
    let queries: [&[&str]; 3] = [
        &["get", "nodes", "-o", "wide"],
        &["get", "pods", "-A", "-o", &format!("jsonpath={status}")],
        &["get", "events", "-A", "--sort-by=.lastTimestamp"],
    ];
    for args in queries {
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output();
        match out {
            Ok(o) => eprintln!(
                "== kubectl {args:?}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("== kubectl {args:?}: {e}"),
        }
    }
    let logs = PathBuf::from(env("MKL_STATE_DIR")).join("logs");
    for node in [CP, WORKER] {
        let log = logs.join(format!("kadm-{node}-minikubelet.log"));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The tail of this run (the harness appends a header line per start).
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(150)..];
        eprintln!(
            "== {} (last {} lines)\n{}",
            log.display(),
            tail.len(),
            tail.join("\n")
        );
    }
}

fn kubeadm_dir() -> PathBuf {
    PathBuf::from(env("MKL_STATE_DIR")).join("kubeadm")
}

/// An admin client of the kubeadm cluster (kubeadm's admin.conf, copied by the harness).
async fn kubeadm_admin() -> kube::Client {
    let kubeconfig = Kubeconfig::read_from(kubeadm_dir().join("admin.conf")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn running_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The control plane's mirror pods: the kubeadm manifests' pods, Running and Ready, each with
/// kubelet's mirror annotation. Returns their container IDs.
async fn control_plane_pods(client: &kube::Client) -> Vec<(String, String, i32)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let mut found = Vec::new();
    for component in CONTROL_PLANE {
        let name = format!("{component}-{CP}");
        let pod = wait_for(&format!("{name} Ready"), Duration::from_secs(120), || {
            let pods = pods.clone();
            let name = name.clone();
            async move {
                pods.get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .filter(running_ready)
            }
        })
        .await;
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        assert!(
            annotations.contains_key("kubernetes.io/config.mirror"),
            "{name}: {annotations:?}"
        );
        let c = &pod.status.unwrap().container_statuses.unwrap()[0];
        found.push((
            name,
            c.container_id.clone().unwrap_or_default(),
            c.restart_count,
        ));
    }
    found
}

/// Each control plane pod runs in its own cgroup below the node's cgroup root (kubeadm's
/// `--cgroup-root=/kubelet-NODE`), in its QoS class's cgroup, with cpu shares from its cpu
/// requests (the kubeadm manifests request 100m to 250m).
async fn check_control_plane_cgroups(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    for component in CONTROL_PLANE {
        let pod = pods.get(&format!("{component}-{CP}")).await.unwrap();
        let uid = &pod.metadata.annotations.as_ref().unwrap()["kubernetes.io/config.mirror"];
        let class = pod.status.as_ref().and_then(|s| s.qos_class.as_deref());
        assert_eq!(class, Some("Burstable"), "{component}");
        let millis: i64 = pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
            .map(|q| {
                q.0.strip_suffix('m').map_or_else(
                    || q.0.parse::<i64>().unwrap() * 1000,
                    |m| m.parse().unwrap(),
                )
            })
            .sum();
        let file =
            format!("/sys/fs/cgroup/cpu/kubelet-{CP}/kubepods/burstable/pod{uid}/cpu.shares");
        let shares = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            shares.trim(),
            (millis * 1024 / 1000).max(2).to_string(),
            "{file}"
        );
    }
}

/// kube-proxy on both nodes and CoreDNS, Running and Ready.
async fn addons_run(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    wait_for(
        "kube-proxy on both nodes and CoreDNS Ready",
        Duration::from_secs(180),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?.items;
                let ready_on = |prefix: &str| -> Vec<String> {
                    list.iter()
                        .filter(|p| p.metadata.name.as_deref().unwrap_or("").starts_with(prefix))
                        .filter(|p| running_ready(p))
                        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                        .collect()
                };
                let mut proxies = ready_on("kube-proxy-");
                proxies.sort();
                (proxies == [CP, WORKER] && !ready_on("coredns-").is_empty()).then_some(())
            }
        },
    )
    .await;
}

/// Issued client-certificate CSRs of the control plane node (system:node:mkl-kcp).
async fn node_renewals(client: &kube::Client) -> usize {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let user = format!("system:node:{CP}");
    csrs.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.spec.username.as_deref() == Some(user.as_str()))
        .filter(|c| c.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet")
        .filter(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.certificate.as_ref())
                .is_some()
        })
        .count()
}

/// A Deployment of two busybox httpd replicas, one per node (required anti-affinity), each
/// answering with its pod name, behind Service "web".
async fn deploy_web(client: &kube::Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let labels = json!({"app": "web"});
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "automountServiceAccountToken": false,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
                    ]}},
                    "containers": [{
                        "name": "httpd", "image": crate::common::pods::busybox(),
                        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "command": ["sh", "-c", "mkdir /www && echo \"$POD\" > /www/index.html && exec httpd -f -p 8080 -h /www"],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
                    }]
                }
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

/// The names of the web pods with the node each runs on, once both are Ready on two nodes.
async fn web_pods(client: &kube::Client) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    wait_for(
        "web pods Ready on both nodes",
        Duration::from_secs(180),
        || {
            let pods = pods.clone();
            async move {
                let list = pods
                    .list(&ListParams::default().labels("app=web"))
                    .await
                    .ok()?
                    .items;
                let mut placed: Vec<(String, String)> = list
                    .iter()
                    .filter(|p| running_ready(p))
                    .filter_map(|p| {
                        Some((
                            p.metadata.name.clone()?,
                            p.spec.as_ref()?.node_name.clone()?,
                        ))
                    })
                    .collect();
                placed.sort_by(|a, b| a.1.cmp(&b.1));
                let nodes: Vec<&str> = placed.iter().map(|(_, n)| n.as_str()).collect();
                (nodes == [CP, WORKER]).then_some(placed)
            }
        },
    )
    .await
}

/// A client pod on `node` asks web.NS.svc.cluster.local:80 over HTTP until both backends have
/// answered (so the DNS name resolved through CoreDNS, and kube-proxy sent it to the pod on
/// this node and to the one on the other), printing each answer; its log must name both.
async fn check_service_from(client: &kube::Client, node: &str, backends: &[String]) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let name = format!("client-{node}");
    let host = format!("web.{NS}.svc.cluster.local");
    // busybox nc speaks the request (the image's wget, static glibc busybox, dies of SIGSEGV in
    // these pods, even for an IP literal; not yet understood); the body, the pod's name, is
    // the answer's last line.
    let script = format!(
        "seen=''; while true; do a=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80 | tail -n 1) && \\
         [ -n \"$a\" ] && echo \"answer $a\" && \\
         case \" $seen \" in *\" $a \"*) ;; *) seen=\"$seen $a\" ;; esac; \\
         [ $(echo $seen | wc -w) -ge 2 ] && break; done; echo both-seen; exec sleep 3600"
    );
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": crate::common::pods::busybox(), "command": ["sh", "-c", script]}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let logs = wait_for(
        &format!("{name} to reach both backends by name"),
        Duration::from_secs(120),
        || {
            let pods = pods.clone();
            let name = name.clone();
            async move {
                let l = pods.logs(&name, &LogParams::default()).await.ok()?;
                l.contains("both-seen").then_some(l)
            }
        },
    )
    .await;
    for backend in backends {
        assert!(
            logs.contains(&format!("answer {backend}")),
            "{name}: {logs}"
        );
    }
}

/// SIGKILLs the control plane node's agent (by the pid the harness recorded) and starts it
/// again with `cluster kubeadm-agent`: the static pods' containers ran on meanwhile (the API
/// server answered with no agent) and are the same containers after it.
async fn kill_and_restart_agent(client: &kube::Client, before: &[(String, String, i32)]) {
    let pid_file =
        PathBuf::from(env("MKL_STATE_DIR")).join(format!("pids/kadm-{CP}-minikubelet.pid"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the agent gone", Duration::from_secs(30), || async move {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        (stat.is_empty() || stat.contains(") Z")).then_some(())
    })
    .await;
    // With no agent, the control plane still serves.
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get(CP).await.unwrap();
    cluster_with(&["kubeadm-agent", CP], &[]);
    wait_ready(client, CP, "True", Duration::from_secs(60)).await;
    let after = control_plane_pods(client).await;
    for ((name, id, restarts), (_, id_after, restarts_after)) in before.iter().zip(&after) {
        assert_eq!(
            id, id_after,
            "{name}: the same container after the agent's SIGKILL"
        );
        assert_eq!(restarts, restarts_after, "{name}: no restart");
    }
}

#[tokio::test]
async fn kubeadm_init_and_join_make_a_cluster_whose_nodes_are_minikubelet() {
    if !require_cluster() {
        return;
    }
    // A cluster left by an interrupted run goes first (kubeadm-init refuses to replace one).
    cluster_with(&["kubeadm-reset"], &[]);
    let started = Instant::now();
    let out = cluster_with(
        &["kubeadm-init"],
        &[("MKL_KUBEADM_SIGNING_DURATION", SIGNING)],
    );
    let _cluster = KubeadmCluster;
    let init = started.elapsed();
    let client = kubeadm_admin().await;
    let cp = wait_ready(&client, CP, "True", Duration::from_secs(30)).await;
    let before = control_plane_pods(&client).await;
    check_control_plane_cgroups(&client).await;

    let joined = Instant::now();
    let join_out = cluster_with(&["kubeadm-join", WORKER], &[]);
    let join = joined.elapsed();
    eprintln!(
        "kubeadm init to Ready with addons: {init:?}\n{out}\nkubeadm join to Ready: {join:?}\n{join_out}"
    );
    wait_ready(&client, WORKER, "True", Duration::from_secs(30)).await;
    addons_run(&client).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    deploy_web(&client).await;
    let placed = web_pods(&client).await;
    let backends: Vec<String> = placed.into_iter().map(|(p, _)| p).collect();
    check_service_from(&client, CP, &backends).await;
    check_service_from(&client, WORKER, &backends).await;

    kill_and_restart_agent(&client, &before).await;

    // The client certificate kube-controller-manager signs lives 3 minutes: the agent
    // renews it at 70-90% of that, in place, so two issued CSRs of the node's own prove a
    // renewal of a renewed certificate; the node and its pods run on through both.
    wait_for(
        "two renewals of the control plane node's client certificate",
        Duration::from_secs(300),
        || {
            let client = client.clone();
            async move { (node_renewals(&client).await >= 2).then_some(()) }
        },
    )
    .await;
    let node = wait_ready(&client, CP, "True", Duration::from_secs(30)).await;
    assert!(
        condition(&node, "Ready").is_some() && cp.metadata.uid == node.metadata.uid,
        "the same Node object"
    );
    let after = control_plane_pods(&client).await;
    assert_eq!(
        before.iter().map(|b| &b.1).collect::<Vec<_>>(),
        after.iter().map(|a| &a.1).collect::<Vec<_>>(),
        "the control plane's containers ran through the renewals"
    );
}
