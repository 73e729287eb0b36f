//! Static pods against the real local cluster: a manifest in --pod-manifest-path runs as a pod
//! with a mirror pod in the API (annotated, owned by the Node, showing the status); deleting the
//! mirror brings it back without touching the pod; editing the manifest replaces the pod and
//! removing it stops the pod and deletes the mirror; and standalone mode (no --kubeconfig) runs
//! static pods with /healthz and the HTTPS /pods answering. Serial (`--test-threads=1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::pods::{busybox, condition, container, cri, phase, running, sandboxes_of};
use crate::common::{Agent, admin, env, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};

const T: Duration = Duration::from_secs(90);
const MIRROR: &str = "kubernetes.io/config.mirror";
const HASH: &str = "kubernetes.io/config.hash";

/// A manifest for pod `name` whose container prints `word` and waits for SIGTERM.
fn manifest(name: &str, word: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: {image}
    command: ["sh", "-c", "echo {word}; trap 'exit 0' TERM; while sleep 1; do :; done"]
"#,
        image = busybox()
    )
}

/// The manifest directory of a test; on drop, every sandbox of the node's static pods still in
/// containerd is stopped and removed (a failed test leaves nothing running).
struct Manifests {
    dir: tempfile::TempDir,
    node: String,
}

impl Manifests {
    fn new(node: &str) -> Manifests {
        Manifests {
            dir: tempfile::tempdir().unwrap(),
            node: node.to_string(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn flag(&self) -> String {
        format!("--pod-manifest-path={}", self.path().display())
    }

    /// Writes a file atomically (a rename), as an editor or kubeadm would.
    fn write(&self, file: &str, text: &str) -> PathBuf {
        let tmp = self.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        let path = self.path().join(file);
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.path().join(file)).unwrap();
    }
}

impl Drop for Manifests {
    fn drop(&mut self) {
        let suffix = format!("-{}", self.node);
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let cri = cri().await;
                for s in cri.list_pod_sandbox(None).await.unwrap_or_default() {
                    let name = s
                        .metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default();
                    if name.ends_with(&suffix) {
                        let _ = cri.stop_pod_sandbox(&s.id).await;
                        let _ = cri.remove_pod_sandbox(&s.id).await;
                    }
                }
            });
        });
        let _ = t.join();
    }
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn ready(p: &Pod) -> bool {
    condition(p, "Ready").as_deref() == Some("True") && phase(p) == "Running"
}

/// Waits until the mirror pod `name` (namespace default) satisfies `check`.
async fn wait_mirror(what: &str, name: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    let pods: Api<Pod> = Api::namespaced(admin().await, "default");
    wait_for(&format!("mirror pod {name}: {what}"), T, || async {
        let p = pods.get_opt(name).await.ok().flatten()?;
        check(&p).then_some(p)
    })
    .await
}

async fn wait_mirror_gone(name: &str) {
    let pods: Api<Pod> = Api::namespaced(admin().await, "default");
    crate::common::wait_gone(&pods, name, T).await;
}

async fn wait_no_sandbox(uid: &str) {
    wait_for(&format!("no sandbox of {uid}"), T, || async {
        sandboxes_of(uid).await.is_empty().then_some(())
    })
    .await;
}

fn container_id(p: &Pod) -> String {
    container(p, "c").unwrap().container_id.clone().unwrap()
}

/// Starts a connected agent for `node` looking at `manifests` every `period` (besides its
/// inotify watch); waits for Ready.
async fn connected_every(node: &str, manifests: &Manifests, period: &str) -> Agent {
    let period = format!("--file-check-frequency={period}");
    let agent = Agent::start(node, &[&manifests.flag(), &period]);
    wait_ready(&admin().await, node, "True", T).await;
    agent
}

/// Starts a connected agent for `node` looking at `manifests` every second; waits for Ready.
async fn connected(node: &str, manifests: &Manifests) -> Agent {
    connected_every(node, manifests, "1s").await
}

#[tokio::test]
async fn a_manifest_runs_as_a_pod_whose_mirror_pod_is_owned_by_the_node_and_shows_its_status() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-it-static-run";
    let manifests = Manifests::new(node);
    manifests.write(".hidden.yaml", &manifest("hidden", "no"));
    manifests.write("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: [");
    manifests.write("web.yaml", &manifest("web", "hello"));
    let agent = connected(node, &manifests).await;
    let name = format!("web-{node}");
    let mirror = wait_mirror("Running and Ready", &name, ready).await;

    let hash = annotation(&mirror, HASH).unwrap().to_string();
    assert_eq!(annotation(&mirror, MIRROR), Some(hash.as_str()));
    assert_eq!(
        annotation(&mirror, "kubernetes.io/config.source"),
        Some("file")
    );
    assert!(annotation(&mirror, "kubernetes.io/config.seen").is_some());
    assert_ne!(
        mirror.metadata.uid.as_deref(),
        Some(hash.as_str()),
        "the API's own UID"
    );
    let node_obj = Api::<Node>::all(admin().await).get(node).await.unwrap();
    let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", node));
    assert_eq!(Some(owner.uid.as_str()), node_obj.metadata.uid.as_deref());
    assert_eq!(owner.controller, Some(true));
    let spec = mirror.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node));
    assert!(spec.tolerations.iter().flatten().any(|t| {
        t.operator.as_deref() == Some("Exists") && t.effect.as_deref() == Some("NoExecute")
    }));
    let sandboxes = sandboxes_of(&hash).await;
    assert_eq!(
        sandboxes.len(),
        1,
        "one sandbox, under the static pod's UID"
    );
    assert!(container(&mirror, "c").is_some_and(running));
    let log = agent.log();
    assert!(
        log.contains("could not process static pod manifest") && log.contains("broken.yaml"),
        "one warning names the bad file:\n{log}"
    );
    let pods: Api<Pod> = Api::namespaced(admin().await, "default");
    assert!(
        pods.get_opt(&format!("hidden-{node}"))
            .await
            .unwrap()
            .is_none()
    );

    manifests.remove("web.yaml");
    wait_mirror_gone(&name).await;
    wait_no_sandbox(&hash).await;
}

#[tokio::test]
async fn deleting_the_mirror_pod_brings_it_back_without_restarting_the_static_pod() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-it-static-mirror";
    let manifests = Manifests::new(node);
    manifests.write("web.yaml", &manifest("web", "hello"));
    let _agent = connected(node, &manifests).await;
    let name = format!("web-{node}");
    let first = wait_mirror("Running and Ready", &name, ready).await;
    let hash = annotation(&first, HASH).unwrap().to_string();
    let sandbox = sandboxes_of(&hash).await[0].id.clone();
    let started = container_id(&first);

    let pods: Api<Pod> = Api::namespaced(admin().await, "default");
    pods.delete(&name, &DeleteParams::default()).await.unwrap();
    let first_uid = first.metadata.uid.clone();
    let second = wait_mirror("recreated, Running and Ready", &name, |p| {
        p.metadata.uid != first_uid && p.metadata.deletion_timestamp.is_none() && ready(p)
    })
    .await;
    assert_eq!(
        annotation(&second, MIRROR),
        Some(hash.as_str()),
        "same hash"
    );
    assert_eq!(container_id(&second), started, "the same container");
    assert_eq!(container(&second, "c").unwrap().restart_count, 0);
    let sandboxes = sandboxes_of(&hash).await;
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, sandbox, "the same sandbox");

    manifests.remove("web.yaml");
    wait_mirror_gone(&name).await;
    wait_no_sandbox(&hash).await;
}

#[tokio::test]
async fn editing_the_manifest_replaces_the_pod_and_removing_it_stops_the_pod_and_its_mirror() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-it-static-edit";
    let manifests = Manifests::new(node);
    manifests.write("web.yaml", &manifest("web", "one"));
    // The periodic look is an hour away: the edit and the removal are seen through inotify.
    let _agent = connected_every(node, &manifests, "1h").await;
    let name = format!("web-{node}");
    let first = wait_mirror("Running and Ready", &name, ready).await;
    let old_hash = annotation(&first, HASH).unwrap().to_string();
    assert_eq!(sandboxes_of(&old_hash).await.len(), 1);

    manifests.write("web.yaml", &manifest("web", "two"));
    let second = wait_mirror("replaced, Running and Ready", &name, |p| {
        annotation(p, MIRROR).is_some_and(|h| h != old_hash) && ready(p)
    })
    .await;
    let new_hash = annotation(&second, HASH).unwrap().to_string();
    assert_eq!(annotation(&second, MIRROR), Some(new_hash.as_str()));
    wait_no_sandbox(&old_hash).await;
    assert_eq!(
        sandboxes_of(&new_hash).await.len(),
        1,
        "the new pod's sandbox"
    );
    assert_ne!(container_id(&first), container_id(&second));

    manifests.remove("web.yaml");
    wait_mirror_gone(&name).await;
    wait_no_sandbox(&new_hash).await;
}

/// (status, body) of an HTTPS GET to the agent with the apiserver's kubelet client certificate.
fn https_get(port: u16, path: &str) -> (u16, String) {
    let pki = |f: &str| format!("{}/pki/{f}", env("MKL_STATE_DIR"));
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["--cert", &pki("apiserver-kubelet-client.crt")])
        .args(["--key", &pki("apiserver-kubelet-client.key")])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test]
async fn standalone_runs_static_pods_without_an_api_server() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-it-static-alone";
    let manifests = Manifests::new(node);
    manifests.write("web.yaml", &manifest("web", "alone"));
    let agent = Agent::start_standalone(
        node,
        &[
            &manifests.flag(),
            "--file-check-frequency=1s",
            "--authentication-token-webhook=false",
            "--authorization-mode=AlwaysAllow",
        ],
    );
    let name = format!("web-{node}");
    let cri = cri().await;
    let uid = wait_for("the static pod's sandbox ready", T, || async {
        let sandboxes = cri.list_pod_sandbox(None).await.ok()?;
        let s = sandboxes
            .into_iter()
            .find(|s| s.metadata.as_ref().is_some_and(|m| m.name == name) && s.state == 0)?;
        Some(s.metadata?.uid)
    })
    .await;
    assert_eq!(uid.len(), 32, "the manifest's hash");

    let (code, _) = crate::common::http_get(agent.healthz_port, "/healthz")
        .await
        .unwrap();
    assert_eq!(code, 200);
    let body = wait_for("/pods lists the static pod Running", T, || async {
        let (code, body) = https_get(agent.port, "/pods");
        let list: serde_json::Value = serde_json::from_str(&body).ok()?;
        let pod = list["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == name)?;
        (code == 200 && pod["status"]["phase"] == "Running").then(|| pod.clone())
    })
    .await;
    assert_eq!(body["metadata"]["uid"], uid.as_str());
    assert_eq!(body["metadata"]["annotations"][HASH], uid.as_str());
    let nodes: Api<Node> = Api::all(admin().await);
    assert!(
        nodes.get_opt(node).await.unwrap().is_none(),
        "no Node registered"
    );
    let log = agent.log();
    assert!(log.contains("running standalone"), "{log}");

    manifests.remove("web.yaml");
    wait_no_sandbox(&uid).await;
}
