//! CSI volumes end to end: a real node plugin process (csi-minihostpath, deploy/go) registers
//! through the agent's ROOT/plugins_registry, the agent publishes CSINode and topology labels,
//! and pods get PVC-backed and inline CSI volumes staged/published by the driver. Each test runs
//! its own agent and its own plugin process (started and stopped by pid). Serial; needs root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::pods::{
    TestNamespace, busybox, container, exec_in, ready, setup, sh, wait_event, wait_pod,
};
use crate::common::{require_cluster, wait_for};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);
const DRIVER: &str = "minihostpath.csi.minikubelet.dev";
const TOPOLOGY_KEY: &str = "topology.minihostpath.csi.minikubelet.dev/node";

/// One csi-minihostpath process serving one agent's node.
struct Plugin {
    child: Child,
    dir: tempfile::TempDir,
}

impl Plugin {
    fn start(node: &str, agent_root: &Path) -> Plugin {
        Plugin::start_with(node, agent_root, None)
    }

    /// A node plugin whose volumes live in `volumes_dir` (the directory the cluster's CSI
    /// controller provisions into), so it finds dynamically provisioned volumes.
    fn start_with(node: &str, agent_root: &Path, volumes_dir: Option<&Path>) -> Plugin {
        let bin = std::env::var("MKL_CSI_DRIVER_BIN").unwrap_or_else(|_| {
            format!(
                "{}/bin/current/csi-minihostpath",
                crate::common::env("MKL_CACHE_DIR")
            )
        });
        assert!(
            Path::new(&bin).exists(),
            "{bin} missing: run deploy/dev/cluster up"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("plugin.log")).unwrap();
        let mut cmd = Command::new(bin);
        if let Some(v) = volumes_dir {
            cmd.arg(format!("--volumes-dir={}", v.display()));
        }
        let child = cmd
            .arg(format!("--endpoint={}/csi.sock", dir.path().display()))
            .arg(format!("--nodeid={node}"))
            .arg(format!("--state-dir={}/state", dir.path().display()))
            .arg(format!(
                "--registration-dir={}",
                agent_root.join("plugins_registry").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Plugin { child, dir }
    }

    fn volume_file(&self, handle: &str, file: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/volumes")
            .join(handle)
            .join(file)
    }

    fn request(&self, kind: &str, handle: &str) -> serde_json::Value {
        let p = self
            .dir
            .path()
            .join(format!("state/requests/{kind}-{handle}.json"));
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("plugin.log")).unwrap_or_default()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- csi plugin log ----\n{}", self.log());
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Unmounts whatever a failed test left mounted below the agent's root, before the agent's
/// temporary directory is removed (declared after the agent, so it is dropped first).
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        for m in mounts_under(&self.0).iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn root(agent: &crate::common::Agent) -> PathBuf {
    agent.dir.path().join("root")
}

/// Mount points at or below `prefix`, with repeats (a double mount shows twice).
fn mounts_under(prefix: &Path) -> Vec<String> {
    let p = prefix.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&p))
        .collect()
}

/// The publish target of the pod's only CSI volume (ROOT/pods/UID/volumes/kubernetes.io~csi/X/mount).
fn csi_target(root: &Path, uid: &str) -> PathBuf {
    let dir = root.join(format!("pods/{uid}/volumes/kubernetes.io~csi"));
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    entries[0].join("mount")
}

fn sha256_hex(s: &str) -> String {
    minikubelet::csi::paths::sha256_hex(s)
}

async fn wait_registered(client: &kube::Client, node: &str) -> CSINode {
    wait_for("CSINode with the driver", T, || async {
        let n = Api::<CSINode>::all(client.clone())
            .get_opt(node)
            .await
            .ok()??;
        n.spec.drivers.iter().any(|d| d.name == DRIVER).then_some(n)
    })
    .await
}

/// A static CSI PV bound to claim NS/NAME (no provisioner in the dev cluster).
async fn pv_and_claim(client: &kube::Client, ns: &TestNamespace, pv: &str, handle: &str) {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let _ = pvs.delete(pv, &DeleteParams::default()).await;
    crate::common::wait_gone(&pvs, pv, T).await;
    let obj: PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": pv},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "mountOptions": ["noatime"],
            "claimRef": {"namespace": ns.name, "name": "data"},
            "csi": {"driver": DRIVER, "volumeHandle": handle, "volumeAttributes": {"kind": "test"}}
        }
    }))
    .unwrap();
    pvs.create(&PostParams::default(), &obj).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}}
        }
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    wait_for("claim Bound", T, || async {
        let c = claims.get_opt("data").await.ok()??;
        (c.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await;
}

async fn delete_pv(client: &kube::Client, pv: &str) {
    let _ = Api::<PersistentVolume>::all(client.clone())
        .delete(pv, &DeleteParams::default())
        .await;
}

/// GET /stats/summary from the agent's API with the apiserver's kubelet client certificate.
fn stats_summary(port: u16) -> serde_json::Value {
    let pki = format!("{}/pki", crate::common::env("MKL_STATE_DIR"));
    let out = std::process::Command::new("curl")
        .args(["-sfk", "--max-time", "20", "--cert"])
        .arg(format!("{pki}/apiserver-kubelet-client.crt"))
        .arg("--key")
        .arg(format!("{pki}/apiserver-kubelet-client.key"))
        .arg(format!("https://127.0.0.1:{port}/stats/summary"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pvc_pod(script: &str) -> serde_json::Value {
    json!({
        "containers": [{"name": "c", "image": busybox(), "command": sh(script),
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    })
}

async fn delete_and_wait(ns: &TestNamespace, name: &str) {
    ns.pods()
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    crate::common::wait_gone(&ns.pods(), name, T).await;
}

async fn read(p: &Pod, path: &str) -> String {
    exec_in(
        &container(p, "c").unwrap().container_id.clone().unwrap(),
        &["cat", path],
    )
    .await
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn pvc_data_survives_pod_replacement_and_agent_restart() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-csi-pvc";
    let (client, mut agent, ns) = setup(node, "mkl-csi-pvc").await;
    assert!(
        Api::<CSIDriver>::all(client.clone())
            .get_opt(DRIVER)
            .await
            .unwrap()
            .is_some(),
        "CSIDriver {DRIVER} missing: run deploy/dev/cluster up"
    );
    let root = root(&agent);
    let _guard = MountGuard(root.clone());
    let plugin = Plugin::start(node, &root);

    // Registration: CSINode entry and the topology label on the Node.
    let csinode = wait_registered(&client, node).await;
    let entry = csinode
        .spec
        .drivers
        .iter()
        .find(|d| d.name == DRIVER)
        .unwrap();
    assert_eq!(entry.node_id, node);
    assert_eq!(
        entry.topology_keys.clone().unwrap(),
        vec![TOPOLOGY_KEY.to_string()]
    );
    let n = Api::<Node>::all(client.clone()).get(node).await.unwrap();
    assert_eq!(
        n.metadata
            .labels
            .unwrap()
            .get(TOPOLOGY_KEY)
            .map(String::as_str),
        Some(node)
    );

    let (pv, handle) = ("mkl-csi-pvc-pv", "mkl-csi-pvc-vol");
    pv_and_claim(&client, &ns, pv, handle).await;
    ns.pod(
        "writer",
        node,
        pvc_pod("echo hello > /data/f && sleep 3600"),
    )
    .await;
    let writer = ready(&ns, "writer").await;
    let uid = writer.metadata.uid.clone().unwrap();
    assert_eq!(
        std::fs::read_to_string(plugin.volume_file(handle, "f")).unwrap(),
        "hello\n"
    );
    let staging = root.join(format!(
        "plugins/kubernetes.io/csi/{DRIVER}/{}/globalmount",
        sha256_hex(handle)
    ));
    let target = csi_target(&root, &uid);
    assert_eq!(mounts_under(&staging).len(), 1, "staged once");
    assert_eq!(mounts_under(&target).len(), 1, "published once");
    let vol_data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(target.with_file_name("vol_data.json")).unwrap())
            .unwrap();
    assert_eq!(vol_data["driverName"], DRIVER);
    assert_eq!(vol_data["volumeHandle"], handle);
    // What the driver got: pod info (podInfoOnMount), the PV's attributes and mount options.
    let publish = plugin.request("NodePublishVolume", handle);
    assert_eq!(
        publish["VolumeContext"]["csi.storage.k8s.io/pod.name"],
        "writer"
    );
    assert_eq!(
        publish["VolumeContext"]["csi.storage.k8s.io/ephemeral"],
        "false"
    );
    assert_eq!(publish["VolumeContext"]["kind"], "test");
    assert_eq!(publish["MountFlags"], json!(["noatime"]));
    assert_eq!(publish["AccessMode"], "SINGLE_NODE_WRITER");

    // Deleting the pod unpublishes and, with no other user, unstages.
    delete_and_wait(&ns, "writer").await;
    assert!(
        mounts_under(&root).is_empty(),
        "left mounted: {:?}",
        mounts_under(&root)
    );

    // A new pod on the same claim reads the data.
    ns.pod("reader", node, pvc_pod("sleep 3600")).await;
    let reader = ready(&ns, "reader").await;
    assert_eq!(read(&reader, "/data/f").await, "hello\n");
    let uid = reader.metadata.uid.clone().unwrap();
    let target = csi_target(&root, &uid);

    // Agent restart with the volume mounted: re-registration, no second mount.
    agent.signal_and_wait("TERM", Duration::from_secs(30));
    agent.restart(&[]);
    crate::common::wait_ready(&client, node, "True", T).await;
    wait_registered(&client, node).await;
    // Let the restarted agent sync the pod (its Ready condition is re-confirmed by it).
    wait_for("agent log shows the driver registered again", T, || async {
        (agent.log().matches("CSI driver registered").count() >= 2).then_some(())
    })
    .await;
    let reader = ready(&ns, "reader").await;
    assert_eq!(read(&reader, "/data/f").await, "hello\n");
    assert_eq!(mounts_under(&target).len(), 1, "double mount after restart");
    assert_eq!(mounts_under(&staging).len(), 1);

    delete_and_wait(&ns, "reader").await;
    assert!(
        mounts_under(&root).is_empty(),
        "left mounted: {:?}",
        mounts_under(&root)
    );
    assert!(!staging.exists(), "global dir left behind");
    drop(plugin);
    delete_pv(&client, pv).await;
}

#[tokio::test]
async fn unregistered_driver_and_failing_stage_give_failed_mount_and_leave_nothing() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-csi-bad";
    let (client, agent, ns) = setup(node, "mkl-csi-bad").await;
    let root = root(&agent);
    let _guard = MountGuard(root.clone());

    // An inline volume of a driver nobody registered.
    ns.pod(
        "nodriver",
        node,
        json!({
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
                            "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
            "volumes": [{"name": "v", "csi": {"driver": "nope.csi.example.com"}}]
        }),
    )
    .await;
    let ev = wait_event(&client, &ns.name, "nodriver", "FailedMount", T).await;
    assert!(
        ev.contains(
            "driver name nope.csi.example.com not found in the list of registered CSI drivers"
        ),
        "{ev}"
    );
    wait_pod(&ns.pods(), "nodriver", "ContainerCreating", T, |p| {
        container(p, "c")
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("ContainerCreating")
    })
    .await;

    // NodeStageVolume fails (the driver rejects the handle): FailedMount, nothing left behind.
    let plugin = Plugin::start(node, &root);
    wait_registered(&client, node).await;
    let (pv, handle) = ("mkl-csi-bad-pv", "Bad_Handle");
    pv_and_claim(&client, &ns, pv, handle).await;
    ns.pod("badstage", node, pvc_pod("sleep 3600")).await;
    let ev = wait_event(&client, &ns.name, "badstage", "FailedMount", T).await;
    assert!(
        ev.contains("NodeStageVolume failed") && ev.contains("invalid volume id"),
        "{ev}"
    );
    let p = ns.pods().get("badstage").await.unwrap();
    let waiting = container(&p, "c").and_then(|c| c.state.clone()?.waiting?.reason);
    assert_eq!(waiting.as_deref(), Some("ContainerCreating"));
    let global = root.join(format!(
        "plugins/kubernetes.io/csi/{DRIVER}/{}",
        sha256_hex(handle)
    ));
    assert!(
        !global.exists(),
        "half-made stage dir {} left",
        global.display()
    );
    assert!(
        mounts_under(&root).is_empty(),
        "left mounted: {:?}",
        mounts_under(&root)
    );

    // An inline (ephemeral) volume of the registered driver works, with pod info.
    ns.pod("inline", node, json!({
        "containers": [{"name": "c", "image": busybox(), "command": sh("echo hi > /v/x && sleep 3600"),
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
        "volumes": [{"name": "v", "csi": {"driver": DRIVER, "volumeAttributes": {"a": "b"}}}]
    }))
    .await;
    let inline = ready(&ns, "inline").await;
    let uid = inline.metadata.uid.clone().unwrap();
    let inline_handle = format!("csi-{}", sha256_hex(&format!("{uid}v")));
    assert_eq!(
        std::fs::read_to_string(plugin.volume_file(&inline_handle, "x")).unwrap(),
        "hi\n"
    );
    let publish = plugin.request("NodePublishVolume", &inline_handle);
    assert_eq!(
        publish["VolumeContext"]["csi.storage.k8s.io/ephemeral"],
        "true"
    );
    assert_eq!(
        publish["VolumeContext"]["csi.storage.k8s.io/pod.namespace"],
        ns.name.as_str()
    );
    assert_eq!(publish["VolumeContext"]["a"], "b");
    delete_and_wait(&ns, "inline").await;
    delete_and_wait(&ns, "badstage").await;
    delete_and_wait(&ns, "nodriver").await;
    assert!(
        mounts_under(&root).is_empty(),
        "left mounted: {:?}",
        mounts_under(&root)
    );
    drop(plugin);
    delete_pv(&client, pv).await;
}

const STORAGE_CLASS: &str = "minihostpath";

/// Where the cluster's CSI controller (the `csi-controller` component) creates volumes.
fn shared_volumes_dir() -> PathBuf {
    std::env::var("MKL_CSI_VOLUMES_DIR").map_or_else(
        |_| PathBuf::from(crate::common::env("MKL_STATE_DIR")).join("csi-minihostpath/volumes"),
        PathBuf::from,
    )
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn provisioned_claim_keeps_data_across_pods_and_is_deleted_with_the_claim() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-csi-dyn";
    let (client, agent, ns) = setup(node, "mkl-csi-dyn").await;
    let class = Api::<k8s_openapi::api::storage::v1::StorageClass>::all(client.clone())
        .get_opt(STORAGE_CLASS)
        .await
        .unwrap()
        .unwrap_or_else(|| {
            panic!("StorageClass {STORAGE_CLASS} missing: run deploy/dev/cluster up")
        });
    assert_eq!(
        class.volume_binding_mode.as_deref(),
        Some("WaitForFirstConsumer")
    );
    let root = root(&agent);
    let _guard = MountGuard(root.clone());
    let volumes = shared_volumes_dir();
    let plugin = Plugin::start_with(node, &root, Some(&volumes));
    // The provisioner reads the node's topology from its CSINode entry and labels.
    wait_registered(&client, node).await;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns.name);
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": "64Mi"}}
        }
    }))
    .unwrap();
    claims.create(&PostParams::default(), &claim).await.unwrap();
    ns.pod(
        "writer",
        node,
        pvc_pod("echo hello > /data/f && sleep 3600"),
    )
    .await;
    // WaitForFirstConsumer: nothing is provisioned before a node is chosen.
    let ev = wait_event(&client, &ns.name, "data", "WaitForFirstConsumer", T).await;
    assert!(ev.contains("waiting for first consumer"), "{ev}");
    let c = claims.get("data").await.unwrap();
    assert_eq!(c.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert!(c.spec.and_then(|s| s.volume_name).is_none());
    // The agent holds the pod in ContainerCreating until the claim is bound.
    let ev = wait_event(&client, &ns.name, "writer", "FailedMount", T).await;
    assert!(ev.contains("not bound"), "{ev}");

    // The scheduler would now annotate the claim with the node it picked for the pod; test pods
    // are bound with spec.nodeName and bypass the scheduler, so the test does what it does.
    let t0 = std::time::Instant::now();
    claims
        .patch(
            "data",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {
                "volume.kubernetes.io/selected-node": node}}})),
        )
        .await
        .unwrap();
    let what = "claim Bound (are csi-controller and csi-provisioner up? deploy/dev/cluster status)";
    let pv_name = wait_for(what, T, || async {
        let c = claims.get_opt("data").await.ok()??;
        (c.status?.phase.as_deref() == Some("Bound")).then_some(c.spec?.volume_name?)
    })
    .await;
    eprintln!("provisioned and bound in {:?}", t0.elapsed());

    // The PV: made by csi-provisioner from CreateVolume's answer, pinned to the node's topology.
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await
        .unwrap();
    let spec = pv.spec.clone().unwrap();
    let csi = spec.csi.clone().unwrap();
    assert_eq!(csi.driver, DRIVER);
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some(STORAGE_CLASS));
    let term = &spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms[0];
    let expr = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(
        (expr.key.as_str(), expr.values.clone().unwrap()),
        (TOPOLOGY_KEY, vec![node.to_string()])
    );
    let handle = csi.volume_handle;
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(volumes.join(format!(".meta/{handle}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["capacityBytes"], 64 << 20);
    assert_eq!(meta["node"], node);
    // --extra-create-metadata: the claim's name reaches CreateVolume.
    assert_eq!(meta["parameters"]["csi.storage.k8s.io/pvc/name"], "data");

    // The writer (waiting on the unbound claim until now) starts and writes into the volume.
    let writer = ready(&ns, "writer").await;
    assert_eq!(
        std::fs::read_to_string(volumes.join(&handle).join("f")).unwrap(),
        "hello\n"
    );
    let uid = writer.metadata.uid.clone().unwrap();
    assert_eq!(mounts_under(&csi_target(&root, &uid)).len(), 1);
    // The agent's /stats/summary reports the volume's usage from NodeGetVolumeStats.
    let summary = stats_summary(agent.port);
    let pod = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["uid"] == uid.as_str())
        .unwrap_or_else(|| panic!("writer in {summary}"));
    let volume = &pod["volume"][0];
    assert_eq!(volume["name"], "data", "{pod}");
    assert!(volume["capacityBytes"].as_i64().unwrap() > 0, "{volume}");
    assert!(volume["usedBytes"].as_i64().is_some(), "{volume}");
    delete_and_wait(&ns, "writer").await;
    assert!(
        mounts_under(&root).is_empty(),
        "left mounted: {:?}",
        mounts_under(&root)
    );

    // A second pod on the same claim reads what the first wrote.
    ns.pod("reader", node, pvc_pod("sleep 3600")).await;
    let reader = ready(&ns, "reader").await;
    assert_eq!(read(&reader, "/data/f").await, "hello\n");
    delete_and_wait(&ns, "reader").await;

    // reclaimPolicy Delete: deleting the claim deletes the PV and, through DeleteVolume, the
    // volume's directory.
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    crate::common::wait_gone(&Api::<PersistentVolume>::all(client.clone()), &pv_name, T).await;
    assert!(
        !volumes.join(&handle).exists(),
        "volume directory left behind"
    );
    assert!(!volumes.join(format!(".meta/{handle}.json")).exists());
    drop(plugin);
}
