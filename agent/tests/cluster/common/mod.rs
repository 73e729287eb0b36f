//! Harness for integration tests against the real local cluster (`deploy/dev/cluster up`).
//! Each test runs its own minikubelet process under a node name of its own, and removes the
//! Node and Lease it made when it ends.

pub mod pods;
pub mod websocket;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use kube::api::{Api, DeleteParams};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// True when the cluster's environment is present; integration tests need it.
pub fn cluster_env_present() -> bool {
    std::env::var_os("MKL_STATE_DIR").is_some() && std::env::var_os("KUBECONFIG").is_some()
}

/// Fails loudly (never silently passes) when the environment is missing, unless the caller opted
/// out of integration tests with MKL_SKIP_INTEGRATION=1.
pub fn require_cluster() -> bool {
    if cluster_env_present() {
        return true;
    }
    if std::env::var_os("MKL_SKIP_INTEGRATION").is_some() {
        eprintln!("MKL_SKIP_INTEGRATION set: skipping an integration test");
        return false;
    }
    panic!(
        "integration tests need the local cluster: run deploy/dev/test, or \
         `eval \"$(deploy/dev/cluster env)\"` after `deploy/dev/cluster up` (MKL_SKIP_INTEGRATION=1 skips them)"
    );
}

/// Runs `deploy/dev/cluster VERB...` and returns its stdout; panics with its output on failure.
pub fn cluster(args: &[&str]) -> String {
    cluster_with(args, &[])
}

/// [`cluster`] with more environment variables for the script.
pub fn cluster_with(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new(repo_root().join("deploy/dev/cluster"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run deploy/dev/cluster");
    assert!(
        out.status.success(),
        "deploy/dev/cluster {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The node kubeconfig path `deploy/dev/cluster node-kubeconfig NAME` prints (its last line,
/// so that a progress message can never be taken for the path).
pub fn node_kubeconfig(name: &str) -> String {
    let out = cluster(&["node-kubeconfig", name]);
    let path = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('/'));
    path.unwrap_or_else(|| panic!("no kubeconfig path in {out:?}"))
        .to_string()
}

/// `/metrics` of the agent, read with the apiserver's kubelet client certificate.
pub fn agent_metrics(port: u16) -> String {
    let pki = |f: &str| format!("{}/pki/{f}", env("MKL_STATE_DIR"));
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "--cert"])
        .arg(pki("apiserver-kubelet-client.crt"))
        .arg("--key")
        .arg(pki("apiserver-kubelet-client.key"))
        .arg(format!("https://127.0.0.1:{port}/metrics"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// An admin client for the local cluster.
pub async fn admin() -> kube::Client {
    kube::Client::try_default()
        .await
        .expect("admin client from KUBECONFIG")
}

/// Polls `check` every 200 ms until it yields Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until the named object is gone from `api` (a 404), or panics after `timeout`. A
/// failed request is not taken for "gone": it is asked again.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{name} gone"), timeout, || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// The named condition of a Node.
pub fn condition(node: &Node, kind: &str) -> Option<NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .cloned()
}

/// Waits until the node's Ready condition has `status`; returns the node.
pub async fn wait_ready(
    client: &kube::Client,
    name: &str,
    status: &str,
    timeout: Duration,
) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(&format!("node {name} Ready={status}"), timeout, || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt(name).await.ok().flatten()?;
            (condition(&n, "Ready")?.status == status).then_some(n)
        }
    })
    .await
}

/// Which --kubeconfig a test agent gets.
enum Kubeconfig {
    /// The node's own, minted by `deploy/dev/cluster node-kubeconfig NAME`.
    Node,
    /// A path the test chose.
    Path(String),
    /// None: standalone.
    None,
}

/// A minikubelet process started by a test; killed (by pid) and its Node removed on drop.
pub struct Agent {
    pub name: String,
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub healthz_port: u16,
    /// Port of the agent's HTTPS API (--port).
    pub port: u16,
    cleanup: bool,
    /// The --kubeconfig it runs with: the node's from the dev cluster, one a test chose (which
    /// the TLS bootstrap may write), or none (standalone).
    kubeconfig: Kubeconfig,
    /// Environment variables the agent process gets beyond the test's own.
    envs: Vec<(String, String)>,
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent binary: `MKL_TEST_AGENT_BINARY` if set (a copy of this build's binary, for when
/// several worktrees share one target dir and another build may replace it), else this build's.
pub fn binary() -> PathBuf {
    std::env::var_os("MKL_TEST_AGENT_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_minikubelet")),
        PathBuf::from,
    )
}

impl Agent {
    /// Starts an agent for node `name` with its own root dir, healthz port and log file.
    pub fn start(name: &str, extra: &[&str]) -> Agent {
        Agent::start_with_env(name, extra, &[])
    }

    /// [`Agent::start`] with extra environment variables for the agent process.
    pub fn start_with_env(name: &str, extra: &[&str], envs: &[(&str, &str)]) -> Agent {
        Agent::launch(name, extra, envs, Kubeconfig::Node)
    }

    /// An agent without --kubeconfig (standalone mode: no API server, no Node).
    pub fn start_standalone(name: &str, extra: &[&str]) -> Agent {
        Agent::launch(name, extra, &[], Kubeconfig::None)
    }

    fn launch(name: &str, extra: &[&str], envs: &[(&str, &str)], kubeconfig: Kubeconfig) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let healthz_port = free_port();
        let port = free_port();
        let mut a = Agent {
            name: name.to_string(),
            child: None,
            dir,
            healthz_port,
            port,
            cleanup: !matches!(kubeconfig, Kubeconfig::None),
            kubeconfig,
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        };
        a.spawn(extra);
        a
    }

    /// Starts an agent for node `name` with the given `--kubeconfig` (which may not exist yet:
    /// the TLS bootstrap writes it) and root inside `dir`, which the test may have prepared.
    pub fn start_in(name: &str, dir: tempfile::TempDir, kubeconfig: &str, extra: &[&str]) -> Agent {
        let mut a = Agent {
            name: name.to_string(),
            child: None,
            dir,
            healthz_port: free_port(),
            port: free_port(),
            cleanup: true,
            kubeconfig: Kubeconfig::Path(kubeconfig.to_string()),
            envs: Vec::new(),
        };
        a.spawn(extra);
        a
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let root = self.dir.path().join("root");
        let mut command = Command::new(binary());
        match &self.kubeconfig {
            Kubeconfig::Node => {
                command.arg(format!("--kubeconfig={}", node_kubeconfig(&self.name)));
            }
            Kubeconfig::Path(path) => {
                command.arg(format!("--kubeconfig={path}"));
            }
            Kubeconfig::None => {}
        }
        let child = command
            .arg(format!("--hostname-override={}", self.name))
            .arg("--node-ip=127.0.0.1")
            .arg(format!(
                "--container-runtime-endpoint={}",
                env("CONTAINER_RUNTIME_ENDPOINT")
            ))
            .arg(format!("--root-dir={}", root.display()))
            .arg(format!("--cgroup-root={}", self.cgroup_root()))
            .arg(format!("--healthz-port={}", self.healthz_port))
            .arg(format!("--port={}", self.port))
            .arg(format!(
                "--client-ca-file={}/pki/ca.crt",
                env("MKL_STATE_DIR")
            ))
            .args(extra)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Starts the agent again under the same name and root dir after it was stopped.
    pub fn restart(&mut self, extra: &[&str]) {
        assert!(self.child.is_none(), "stop the agent before restarting it");
        self.spawn(extra);
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("minikubelet.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("agent running").id()).unwrap()
    }

    /// Sends a signal by pid and waits for the process to exit; returns its exit status.
    pub fn signal_and_wait(&mut self, signal: &str, timeout: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "agent did not exit within {timeout:?} after SIG{signal}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// This agent's own cgroup root, so that its kubepods (node allocatable, QoS class shares)
    /// is never the cluster agent's.
    pub fn cgroup_root(&self) -> String {
        format!("/{TEST_CGROUPS}/{}", self.name)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- agent {} log ----\n{}", self.name, self.log());
        }
        if self.cleanup {
            delete_node(&self.name);
        }
        remove_empty_cgroups(&self.cgroup_root());
    }
}

/// Where test agents' cgroup roots live.
const TEST_CGROUPS: &str = "minikubelet-tests";

/// Removes the cgroup tree at `path` in every hierarchy, innermost first; a cgroup that still
/// has processes (a pod the test left) stays.
fn remove_empty_cgroups(path: &str) {
    fn remove(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.flatten() {
        if h.file_type().is_ok_and(|t| t.is_dir()) {
            remove(&h.path().join(path.trim_start_matches('/')));
            let _ = std::fs::remove_dir(h.path().join(TEST_CGROUPS));
        }
    }
}

/// Deletes a Node and its Lease with the admin credentials (blocking; used from Drop).
pub fn delete_node(name: &str) {
    let name = name.to_string();
    let run = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = admin().await;
            let _ = Api::<Node>::all(client.clone())
                .delete(&name, &DeleteParams::default())
                .await;
            let _ = Api::<Lease>::namespaced(client, "kube-node-lease")
                .delete(&name, &DeleteParams::default())
                .await;
        });
    });
    let _ = run.join();
}

/// GET http://127.0.0.1:PORT/PATH with a raw HTTP/1.1 request; returns (status, body).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Some((status, body))
}
