//! kubelet's on-disk layout for CSI: the registration directory, the per-volume global
//! (staging) mount and the per-pod publish target, and the vol_data.json files that let
//! tear-down work from the disk alone (after an agent restart, with the pod gone).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The in-tree plugin name CSI volumes live under.
pub const PLUGIN: &str = "kubernetes.io/csi";
/// vol_data.json, beside `mount` in the pod's volume dir and beside `globalmount`.
pub const VOL_DATA: &str = "vol_data.json";

/// ROOT/plugins_registry: where registrars put their registration sockets.
pub fn registry_dir(root: &Path) -> PathBuf {
    root.join("plugins_registry")
}

/// Lowercase hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    hex::encode(digest)
}

/// ROOT/plugins/kubernetes.io/csi/DRIVER/SHA256(volumeHandle): holds `globalmount` and
/// vol_data.json.
pub fn volume_global_dir(root: &Path, driver: &str, handle: &str) -> PathBuf {
    root.join("plugins")
        .join(PLUGIN)
        .join(driver)
        .join(sha256_hex(handle))
}

/// The staging path NodeStageVolume gets.
pub fn staging_path(root: &Path, driver: &str, handle: &str) -> PathBuf {
    volume_global_dir(root, driver, handle).join("globalmount")
}

/// The publish target below a pod's volume dir (`.../kubernetes.io~csi/NAME/mount`).
pub fn publish_target(volume_dir: &Path) -> PathBuf {
    volume_dir.join("mount")
}

/// kubelet's VolumeAttachment name: "csi-" + SHA256(volumeHandle + driver + nodeName).
pub fn attachment_name(handle: &str, driver: &str, node: &str) -> String {
    format!("csi-{}", sha256_hex(&format!("{handle}{driver}{node}")))
}

/// What kubelet records next to a CSI mount (the keys are kubelet's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolData {
    pub driver_name: String,
    pub volume_handle: String,
    #[serde(default, rename = "specVolID")]
    pub spec_vol_id: String,
    #[serde(default)]
    pub volume_lifecycle_mode: String,
    #[serde(
        default,
        rename = "attachmentID",
        skip_serializing_if = "String::is_empty"
    )]
    pub attachment_id: String,
    #[serde(default)]
    pub node_name: String,
}

pub fn write_vol_data(dir: &Path, data: &VolData) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(data).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(VOL_DATA), json)
}

pub fn read_vol_data(dir: &Path) -> std::io::Result<VolData> {
    let bytes = std::fs::read(dir.join(VOL_DATA))?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// Every pod volume dir under ROOT/pods/*/volumes/kubernetes.io~csi/* whose vol_data.json
/// names this driver and handle: the volume's users on this node.
pub fn pod_users(root: &Path, driver: &str, handle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(pods) = std::fs::read_dir(root.join("pods")) else {
        return out;
    };
    for pod in pods.flatten() {
        let csi = pod.path().join("volumes").join("kubernetes.io~csi");
        let Ok(vols) = std::fs::read_dir(&csi) else {
            continue;
        };
        for vol in vols.flatten() {
            if let Ok(d) = read_vol_data(&vol.path())
                && d.driver_name == driver
                && d.volume_handle == handle
            {
                out.push(vol.path());
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_kubelet() {
        let root = Path::new("/var/lib/kubelet");
        // sha256("vol-1")
        let h = sha256_hex("vol-1");
        assert_eq!(h.len(), 64);
        assert_eq!(
            staging_path(root, "d.csi", "vol-1"),
            Path::new(&format!(
                "/var/lib/kubelet/plugins/kubernetes.io/csi/d.csi/{h}/globalmount"
            ))
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            attachment_name("h", "d", "n"),
            format!("csi-{}", sha256_hex("hdn"))
        );
        assert_eq!(
            registry_dir(root),
            Path::new("/var/lib/kubelet/plugins_registry")
        );
    }

    #[test]
    fn vol_data_round_trips_and_finds_users() {
        let tmp = tempfile::tempdir().unwrap();
        let data = VolData {
            driver_name: "d".into(),
            volume_handle: "h".into(),
            spec_vol_id: "pv".into(),
            volume_lifecycle_mode: "Persistent".into(),
            attachment_id: String::new(),
            node_name: "n".into(),
        };
        let dir = tmp.path().join("pods/u1/volumes/kubernetes.io~csi/pv");
        write_vol_data(&dir, &data).unwrap();
        let text = std::fs::read_to_string(dir.join(VOL_DATA)).unwrap();
        assert!(
            text.contains("\"driverName\":\"d\"") && text.contains("\"specVolID\""),
            "{text}"
        );
        assert_eq!(read_vol_data(&dir).unwrap(), data);
        assert_eq!(pod_users(tmp.path(), "d", "h"), vec![dir]);
        assert!(pod_users(tmp.path(), "d", "other").is_empty());
    }
}
