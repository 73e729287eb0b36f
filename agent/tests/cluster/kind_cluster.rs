//! A kind cluster whose kubelet is minikubelet on every node, made by the kind CLI
//! (`deploy/kind/cluster up`: a private dockerd, the project's node image, `kind create
//! cluster --image` with one control plane and two workers), and used the way kind users use
//! one:
//! - every node Ready, its InternalIP the node container's address on the kind network, its
//!   kubelet minikubelet; the control plane's static pods run under it;
//! - a Deployment spread over the workers behind a Service, reached by name from a pod
//!   (CoreDNS, kube-proxy, flannel's routes between the nodes);
//! - `kubectl logs`, `exec`, `port-forward`, `top` and the node's metrics through the API
//!   server's proxy; `journalctl -u kubelet` and `systemctl status kubelet` in a node;
//! - a pod's cgroup is a slice systemd made over D-Bus with the pod's limits (kind's
//!   systemd cgroup driver), stopped with the pod;
//! - `systemctl restart kubelet` in a worker: its pods run on untouched;
//! - `kind delete cluster`: no node container, volume, mount or process of it is left, and
//!   `deploy/kind/cluster down` then removes the kind network and the private dockerd.
//!
//! A lane of its own (`deploy/kind/cluster test`; `deploy/dev/test` runs it too): skipped
//! unless MKL_KIND_IT=1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const WORKERS: [&str; 2] = ["kind-worker", "kind-worker2"];
const CONTROL_PLANE: &str = "kind-control-plane";
const NS: &str = "mkl-kind";
const BUSYBOX: &str = "127.0.0.1:5000/busybox:1.35";
const TIMEOUT: Duration = Duration::from_secs(240);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn kind_script() -> PathBuf {
    repo_root().join("deploy/kind/cluster")
}

/// A shell running `line` with the kind cluster's environment (DOCKER_HOST, KUBECONFIG, PATH
/// with kind, docker and kubectl); stdout piped, stdin and stderr as given.
fn shell(line: &str, stdin: Stdio, stderr: Stdio) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "eval \"$({} env)\" && {line}",
            kind_script().display()
        ))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(stderr);
    cmd
}

/// Runs `line` in that shell.
fn sh(line: &str) -> Output {
    shell(line, Stdio::null(), Stdio::piped())
        .output()
        .expect("bash runs")
}

/// `sh`, which must succeed; its stdout.
fn ok(line: &str) -> String {
    let out = sh(line);
    assert!(
        out.status.success(),
        "`{line}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` every 200 ms until it yields Some, or fails after `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `deploy/kind/cluster down` when dropped (after diagnostics when the test failed), so a
/// failed assertion leaves no cluster, network or dockerd behind.
struct KindLane;

impl Drop for KindLane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for line in [
                "kubectl get nodes -o wide",
                "kubectl get pods -A -o wide",
                "kubectl get events -A --sort-by=.lastTimestamp | tail -n 40",
                "for n in $(kind get nodes); do echo \"== $n\"; docker exec $n journalctl -u kubelet --no-pager | tail -n 60; done",
            ] {
                let out = sh(line);
                eprintln!(
                    "== {line}\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let out = Command::new(kind_script()).arg("down").output();
        if let Ok(o) = out {
            eprintln!("{}", String::from_utf8_lossy(&o.stdout));
        }
    }
}

fn pod_names(selector: &str) -> Vec<String> {
    ok(&format!(
        "kubectl -n {NS} get pods -l {selector} -o jsonpath='{{.items[*].metadata.name}}'"
    ))
    .split_whitespace()
    .map(String::from)
    .collect()
}

/// The pods of `node` in the test namespace as "name uid containerID restarts" lines.
fn pods_on(node: &str) -> String {
    ok(&format!(
        "kubectl -n {NS} get pods --field-selector spec.nodeName={node} -o \
         jsonpath='{{range .items[*]}}{{.metadata.name}} {{.metadata.uid}} \
         {{.status.containerStatuses[0].containerID}} {{.status.containerStatuses[0].restartCount}}{{\"\\n\"}}{{end}}'"
    ))
}

fn manifests() -> String {
    format!(
        r"
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NS}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      topologySpreadConstraints:
        - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
        - name: web
          image: {BUSYBOX}
          imagePullPolicy: Never
          command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www']
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NS}, labels: {{app: client}}}}
spec:
  nodeName: {worker}
  containers:
    - name: client
      image: {BUSYBOX}
      imagePullPolicy: Never
      command: [sleep, '3600']
",
        worker = WORKERS[0]
    )
}

/// An HTTP GET of `/` on 127.0.0.1:`port`; the body.
fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Every node Ready, with its container's kind address, minikubelet as its kubelet, and the
/// control plane's static pods running under it.
fn every_node_is_a_minikubelet_node() {
    // Every node Ready, with the kind network address docker gave its container, and
    // minikubelet as its kubelet.
    let nodes = ok(
        "kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} \
         {.status.addresses[?(@.type==\"InternalIP\")].address} {.status.nodeInfo.kubeletVersion} \
         {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}'",
    );
    let nodes: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for node in &nodes {
        let container_ip = ok(&format!(
            "docker inspect -f '{{{{.NetworkSettings.Networks.kind.IPAddress}}}}' {}",
            node[0]
        ));
        assert_eq!(node[1], container_ip.trim(), "{node:?}");
        assert!(node[2].contains("minikubelet"), "{node:?}");
        assert_eq!(node[3], "True", "{node:?}");
    }
    // The control plane's static pods run under the control plane's minikubelet.
    for component in [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let phase = ok(&format!(
            "kubectl -n kube-system get pod {component}-{CONTROL_PLANE} -o jsonpath='{{.status.phase}}'"
        ));
        assert_eq!(phase, "Running", "{component}");
        let ps = ok(&format!(
            "docker exec {CONTROL_PLANE} crictl ps --name '^{component}$' -q"
        ));
        assert!(
            !ps.trim().is_empty(),
            "no {component} container in the node"
        );
    }
}

/// A Deployment over both workers behind a Service, reached by name from a pod; the web
/// pods' names.
fn a_service_reaches_both_workers() -> Vec<String> {
    // A Deployment over both workers behind a Service, reached by name from a pod.
    let out = shell("kubectl apply -f -", Stdio::piped(), Stdio::inherit())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(manifests().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "kubectl apply failed");
    ok(&format!(
        "kubectl -n {NS} rollout status deployment/web --timeout=120s && \
         kubectl -n {NS} wait --for=condition=Ready pod/client --timeout=120s"
    ));
    let web = pod_names("app=web");
    let web_nodes = ok(&format!(
        "kubectl -n {NS} get pods -l app=web -o jsonpath='{{.items[*].spec.nodeName}}'"
    ));
    let mut web_nodes: Vec<&str> = web_nodes.split_whitespace().collect();
    web_nodes.sort_unstable();
    assert_eq!(web_nodes, WORKERS, "the replicas are not one per worker");
    let mut seen = std::collections::BTreeSet::new();
    wait_for("both replicas to answer http://web/", TIMEOUT, || {
        let out = sh(&format!(
            "kubectl -n {NS} exec client -- timeout 5 wget -qO- http://web/"
        ));
        if out.status.success() {
            seen.insert(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        (seen.len() == 2).then_some(())
    });
    let mut expected = web.clone();
    expected.sort();
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);

    web
}

/// Under kind's systemd cgroup driver a pod's cgroup is a slice systemd made at the agent's
/// request, with the pod's limits as the unit's properties and in the cgroup files, and it is
/// stopped with the pod.
fn pod_cgroups_are_systemd_slices() {
    let worker = WORKERS[0];
    ok(&format!(
        "kubectl -n {NS} apply -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata: {{name: limited, namespace: {NS}}}
spec:
  nodeName: {worker}
  containers:
    - name: c
      image: {BUSYBOX}
      imagePullPolicy: Never
      command: [sleep, '3600']
      resources:
        requests: {{cpu: 100m, memory: 32Mi}}
        limits: {{cpu: 200m, memory: 64Mi}}
EOF"
    ));
    ok(&format!(
        "kubectl -n {NS} wait --for=condition=Ready pod/limited --timeout=120s"
    ));
    let uid = ok(&format!(
        "kubectl -n {NS} get pod limited -o jsonpath='{{.metadata.uid}}'"
    ))
    .trim()
    .replace('-', "_");
    // kind's cgroupRoot is /kubelet: kubelet.slice/kubelet-kubepods.slice/...
    let unit = format!("kubelet-kubepods-burstable-pod{uid}.slice");
    let show = |property: &str| {
        ok(&format!(
            "docker exec {worker} systemctl show -p {property} --value {unit}"
        ))
        .trim()
        .to_string()
    };
    assert_eq!(show("LoadState"), "loaded");
    assert_eq!(show("ActiveState"), "active");
    assert_eq!(show("CPUShares"), "102");
    assert_eq!(show("CPUQuotaPerSecUSec"), "200ms");
    assert_eq!(show("MemoryLimit"), "67108864");
    let shares = ok(&format!(
        "docker exec {worker} sh -c 'cat $(find /sys/fs/cgroup -maxdepth 7 -path \"*/{unit}/cpu.shares\" | head -n1)'"
    ));
    assert_eq!(
        shares.trim(),
        "102",
        "the cgroup file holds what the unit says"
    );
    ok(&format!("kubectl -n {NS} delete pod limited --wait=true"));
    // Stopped (a stopped transient unit may stay loaded a while, inactive), its cgroup gone.
    wait_for("the pod's slice stopped", TIMEOUT, || {
        (show("ActiveState") == "inactive").then_some(())
    });
    let left = ok(&format!(
        "docker exec {worker} find /sys/fs/cgroup -maxdepth 7 -type d -name {unit}"
    ));
    assert_eq!(left.trim(), "", "the slice's cgroups are left");
}

/// logs, exec, port-forward, top, the node's metrics, journald and systemd.
fn kubectl_and_the_node_tools_work(web: &[String]) {
    // logs, exec, port-forward.
    let pod = &web[0];
    assert!(ok(&format!("kubectl -n {NS} logs {pod}")).contains("serving"));
    assert_eq!(
        ok(&format!(
            "kubectl -n {NS} exec {pod} -- cat /www/index.html"
        ))
        .trim(),
        pod
    );
    let mut forward = shell(
        &format!("exec kubectl -n {NS} port-forward pod/{pod} :8080"),
        Stdio::null(),
        Stdio::null(),
    )
    .spawn()
    .unwrap();
    // The reader lives as long as kubectl: a closed pipe would end it at its next line.
    let mut output = BufReader::new(forward.stdout.take().unwrap());
    let mut first = String::new();
    output.read_line(&mut first).unwrap();
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let port: u16 = first
        .split_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output {first:?}"));
    let body = wait_for("the port-forward to answer", TIMEOUT, || http_get(port));
    assert_eq!(body.trim(), pod);
    forward.kill().unwrap();
    forward.wait().unwrap();
    drop(output);

    // kubectl top (metrics-server scraping every node's agent) and the node's own metrics.
    wait_for("kubectl top nodes to list every node", TIMEOUT, || {
        let out = sh("kubectl top nodes --no-headers");
        let text = String::from_utf8_lossy(&out.stdout);
        (out.status.success() && text.lines().count() == 3).then_some(())
    });
    wait_for("kubectl top pods to list the web pods", TIMEOUT, || {
        let out = sh(&format!("kubectl -n {NS} top pods -l app=web --no-headers"));
        let text = String::from_utf8_lossy(&out.stdout);
        (out.status.success() && text.lines().count() == 2).then_some(())
    });
    let metrics = ok(&format!(
        "kubectl get --raw /api/v1/nodes/{}/proxy/metrics",
        WORKERS[0]
    ));
    assert!(metrics.contains("kubelet_running_pods"), "{metrics}");

    // journald has the agent's log; systemd its sd_notify status.
    let journal = ok(&format!(
        "docker exec {} journalctl -u kubelet --no-pager",
        WORKERS[0]
    ));
    assert!(journal.contains("CNI ADD"), "{journal}");
    let status = ok(&format!(
        "docker exec {} systemctl status kubelet --no-pager",
        WORKERS[0]
    ));
    assert!(status.contains("Active: active (running)"), "{status}");
    assert!(
        status.contains(&format!("Status: \"Node {} is Ready\"", WORKERS[0])),
        "{status}"
    );
}

/// `systemctl restart kubelet` in a worker: its pods run on untouched.
fn a_restarted_agent_leaves_its_pods_alone() {
    // systemctl restart kubelet in a worker: its pods run on untouched.
    let before = pods_on(WORKERS[0]);
    let main_pid = ok(&format!(
        "docker exec {} systemctl show -p MainPID --value kubelet",
        WORKERS[0]
    ));
    ok(&format!(
        "docker exec {} systemctl restart kubelet",
        WORKERS[0]
    ));
    wait_for("the restarted agent to say Ready again", TIMEOUT, || {
        let pid = ok(&format!(
            "docker exec {} systemctl show -p MainPID --value kubelet",
            WORKERS[0]
        ));
        let status = ok(&format!(
            "docker exec {} systemctl show -p StatusText --value kubelet",
            WORKERS[0]
        ));
        (pid != main_pid && status.contains("is Ready")).then_some(())
    });
    assert_eq!(
        pods_on(WORKERS[0]),
        before,
        "a pod changed across the restart"
    );
    wait_for("http://web/ through the restarted worker", TIMEOUT, || {
        sh(&format!(
            "kubectl -n {NS} exec client -- timeout 5 wget -qO- http://web/"
        ))
        .status
        .success()
        .then_some(())
    });
}

/// `kind delete cluster`: no container, volume, mount or process of the cluster is left.
fn kind_delete_cluster_leaves_nothing() {
    // kind delete cluster: nothing of the cluster is left.
    let containers: Vec<(String, String)> = ok(
        "docker ps -aq --filter label=io.x-k8s.kind.cluster=kind --no-trunc | \
         xargs docker inspect -f '{{.Id}} {{.State.Pid}}'",
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(id, pid)| (id.to_string(), pid.to_string()))
    .collect();
    assert_eq!(containers.len(), 3, "{containers:?}");
    ok("kind delete cluster --name kind");
    assert_eq!(ok("docker ps -aq").trim(), "", "containers are left");
    assert_eq!(ok("docker volume ls -q").trim(), "", "volumes are left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for (id, pid) in &containers {
        assert!(!mounts.contains(id.as_str()), "a mount of {id} is left");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the init of {id} (pid {pid}) still runs"
        );
    }
}

#[test]
fn a_kind_cluster_of_minikubelet_nodes_runs_what_users_run() {
    if std::env::var("MKL_KIND_IT").as_deref() != Ok("1") {
        eprintln!("MKL_KIND_IT is not 1: skipping the kind lane (deploy/kind/cluster test)");
        return;
    }
    let lane = KindLane;
    // The node image gets the binaries cargo built for this test.
    let up = Command::new(kind_script())
        .arg("up")
        .env("MKL_KIND_AGENT_BIN", env!("CARGO_BIN_EXE_minikubelet"))
        .env("MKL_KIND_CNI_BIN", env!("CARGO_BIN_EXE_minikubelet-cni"))
        .status()
        .unwrap();
    assert!(up.success(), "deploy/kind/cluster up failed");

    every_node_is_a_minikubelet_node();
    let web = a_service_reaches_both_workers();
    kubectl_and_the_node_tools_work(&web);
    pod_cgroups_are_systemd_slices();
    a_restarted_agent_leaves_its_pods_alone();
    kind_delete_cluster_leaves_nothing();
    drop(lane);
    let networks = Command::new("ip")
        .args(["link", "show", "mkl-kind"])
        .output()
        .unwrap();
    assert!(!networks.status.success(), "the kind bridge is left");
    let left = Command::new("pgrep")
        .args(["-f", "/run/minikubelet-kind/docker"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "the private dockerd or its containerd still runs"
    );
}
