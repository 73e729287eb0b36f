//! csi-client against a real CSI node plugin process: the project's csi-minihostpath (built by
//! deploy/dev/cluster from deploy/go/csi-minihostpath). Needs root (bind mounts).
//! The binary is $MKL_CSI_DRIVER_BIN, else /var/cache/minikubelet/bin/current/csi-minihostpath.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use csi_client::proto::csi::{
    NodeGetVolumeStatsRequest, NodePublishVolumeRequest, NodeStageVolumeRequest, VolumeCapability,
    volume_capability, volume_usage,
};
use csi_client::proto::registration::CSI_PLUGIN;
use csi_client::{CsiClient, CsiTimeouts, RegistrationClient};

const DRIVER: &str = "minihostpath.csi.minikubelet.dev";

struct Plugin {
    child: Child,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver_bin() -> PathBuf {
    let bin = std::env::var_os("MKL_CSI_DRIVER_BIN").map_or_else(
        || PathBuf::from("/var/cache/minikubelet/bin/current/csi-minihostpath"),
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "{} missing: run deploy/dev/cluster up",
        bin.display()
    );
    bin
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start() -> Plugin {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let child = Command::new(driver_bin())
        .arg(format!("--endpoint={}/csi.sock", root.display()))
        .arg("--nodeid=node-a")
        .arg(format!("--state-dir={}/state", root.display()))
        .arg(format!("--registration-dir={}/registry", root.display()))
        .arg("--max-volumes-per-node=7")
        .spawn()
        .unwrap();
    wait_for(&root.join("csi.sock"));
    wait_for(&root.join(format!("registry/{DRIVER}-reg.sock")));
    Plugin {
        child,
        _dir: dir,
        root,
    }
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn capability() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume::default(),
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::Mode::SingleNodeWriter as i32,
        }),
    }
}

#[tokio::test]
async fn registration_and_identity() {
    let p = start();
    let reg_socket = p.root.join(format!("registry/{DRIVER}-reg.sock"));
    let reg =
        RegistrationClient::new(reg_socket.to_str().unwrap(), Duration::from_secs(5)).unwrap();
    let info = reg.get_info().await.unwrap();
    assert_eq!(info.r#type, CSI_PLUGIN);
    assert_eq!(info.name, DRIVER);
    assert_eq!(info.endpoint, format!("{}/csi.sock", p.root.display()));
    assert_eq!(info.supported_versions, vec!["1.0.0".to_owned()]);
    reg.notify_registration_status(true, "").await.unwrap();

    let csi = CsiClient::new(&info.endpoint, CsiTimeouts::default()).unwrap();
    assert_eq!(csi.get_plugin_info().await.unwrap().name, DRIVER);
    assert!(csi.probe().await.unwrap());
    assert_eq!(
        csi.get_plugin_capabilities()
            .await
            .unwrap()
            .capabilities
            .len(),
        1
    );
    let node = csi.node_get_info().await.unwrap();
    assert_eq!(node.node_id, "node-a");
    assert_eq!(node.max_volumes_per_node, 7);
    let topo = node.accessible_topology.unwrap().segments;
    assert_eq!(topo.values().collect::<Vec<_>>(), vec!["node-a"]);
    let caps = csi.node_get_capabilities().await.unwrap();
    assert!(caps.stage_unstage && caps.get_volume_stats, "{caps:?}");
}

#[tokio::test]
async fn stage_publish_stats_unpublish_unstage() {
    let p = start();
    let csi = CsiClient::new(
        p.root.join("csi.sock").to_str().unwrap(),
        CsiTimeouts::default(),
    )
    .unwrap();
    let staging = p.root.join("globalmount");
    let target = p.root.join("pod/mount");
    let stage = NodeStageVolumeRequest {
        volume_id: "vol-1".into(),
        staging_target_path: staging.to_str().unwrap().into(),
        volume_capability: Some(capability()),
        ..Default::default()
    };
    csi.node_stage_volume(stage.clone()).await.unwrap();
    csi.node_stage_volume(stage).await.unwrap(); // idempotent
    assert!(is_mounted(&staging));
    let publish = NodePublishVolumeRequest {
        volume_id: "vol-1".into(),
        staging_target_path: staging.to_str().unwrap().into(),
        target_path: target.to_str().unwrap().into(),
        volume_capability: Some(capability()),
        ..Default::default()
    };
    csi.node_publish_volume(publish.clone()).await.unwrap();
    csi.node_publish_volume(publish).await.unwrap();
    assert!(is_mounted(&target));
    std::fs::write(target.join("data"), b"hello").unwrap();
    assert_eq!(
        std::fs::read(p.root.join("state/volumes/vol-1/data")).unwrap(),
        b"hello"
    );

    let stats = csi
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "vol-1".into(),
            volume_path: target.to_str().unwrap().into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
        .unwrap();
    assert!(bytes.total > 0 && bytes.used > 0, "{stats:?}");

    csi.node_unpublish_volume("vol-1", target.to_str().unwrap())
        .await
        .unwrap();
    csi.node_unpublish_volume("vol-1", target.to_str().unwrap())
        .await
        .unwrap();
    assert!(!target.exists());
    csi.node_unstage_volume("vol-1", staging.to_str().unwrap())
        .await
        .unwrap();
    assert!(!is_mounted(&staging));
}

#[tokio::test]
async fn plugin_errors_are_typed() {
    let p = start();
    let csi = CsiClient::new(
        p.root.join("csi.sock").to_str().unwrap(),
        CsiTimeouts::default(),
    )
    .unwrap();
    let err = csi
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: "Bad/ID".into(),
            staging_target_path: p.root.join("g").to_str().unwrap().into(),
            volume_capability: Some(capability()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.method(), "NodeStageVolume");
    assert_eq!(err.code(), Some(tonic::Code::InvalidArgument));
    assert!(!err.is_transient());
    assert!(err.to_string().contains("invalid volume id"), "{err}");

    let gone = CsiClient::new(
        p.root.join("nope.sock").to_str().unwrap(),
        CsiTimeouts::default(),
    )
    .unwrap();
    let err = gone.probe().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}
