//! A pod's user namespace mappings on disk, `ROOT/pods/UID/userns`, in kubelet's format
//! (`{"uidMappings":[{"hostId":..,"containerId":0,"length":..}],"gidMappings":[..]}`), so an agent
//! restart (or kubelet taking the node over) keeps each running pod's IDs. The pod directory is
//! the agent's own (no container writes there); the file is still opened without following a
//! link, written whole to a temporary name, renamed over, and the directory synced.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::volumes::dirfd::{DirError, DirFd};

/// The file's name in the pod directory.
pub const FILE: &str = "userns";
const TEMP: &str = ".userns.tmp";
/// Larger than any file this agent or kubelet writes.
const MAX_LEN: u64 = 4096;

/// One mapping: `length` IDs from `container_id` in the pod onto `host_id` on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    pub host_id: u32,
    pub container_id: u32,
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mappings {
    uid_mappings: Vec<IdMapping>,
    gid_mappings: Vec<IdMapping>,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("user namespace mappings file: {0}")]
    Dir(#[from] DirError),
    #[error("user namespace mappings file: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid user namespace mappings file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid user namespace configuration: {0}")]
    Invalid(&'static str),
}

/// The file's single mapping (the same for users and groups, container ID 0 included, as the
/// only files kubelet and this agent produce); None when the pod has no file.
pub fn read(pod_dir: &Path) -> Result<Option<IdMapping>, StoreError> {
    let dir = match DirFd::open(pod_dir) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let file = match dir.open_file(FILE) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    file.take(MAX_LEN).read_to_string(&mut text)?;
    if text.is_empty() {
        return Ok(None);
    }
    parse(&text).map(Some)
}

fn parse(text: &str) -> Result<IdMapping, StoreError> {
    let m: Mappings = serde_json::from_str(text)?;
    let invalid = StoreError::Invalid;
    let ([uid], [gid]) = (m.uid_mappings.as_slice(), m.gid_mappings.as_slice()) else {
        return Err(invalid("exactly one UID and one GID mapping allowed"));
    };
    if uid != gid {
        return Err(invalid("GID and UID mapping should be identical"));
    }
    if uid.container_id != 0 {
        return Err(invalid("UID 0 must be mapped"));
    }
    Ok(*uid)
}

/// Writes `mapping` (for users and groups) as the pod's file, durably.
pub fn write(pod_dir: &Path, mapping: IdMapping) -> Result<(), StoreError> {
    let dir = DirFd::open(pod_dir)?;
    let body = serde_json::to_vec(&Mappings {
        uid_mappings: vec![mapping],
        gid_mappings: vec![mapping],
    })?;
    match dir.unlink(TEMP) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let fd = dir.create_file(TEMP, 0o600, &body)?;
    rustix::fs::fsync(&fd).map_err(std::io::Error::from)?;
    dir.rename(TEMP, FILE)?;
    rustix::fs::fsync(&dir).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_mapping_reads_back_in_kubelets_format() {
        let d = tempfile::tempdir().unwrap();
        assert!(
            read(d.path()).unwrap().is_none(),
            "no file: no user namespace"
        );
        assert!(read(&d.path().join("gone")).unwrap().is_none());
        let m = IdMapping {
            host_id: 131_072,
            container_id: 0,
            length: 65536,
        };
        write(d.path(), m).unwrap();
        write(d.path(), m).unwrap();
        assert_eq!(read(d.path()).unwrap(), Some(m));
        let text = std::fs::read_to_string(d.path().join(FILE)).unwrap();
        assert_eq!(
            text,
            r#"{"uidMappings":[{"hostId":131072,"containerId":0,"length":65536}],"gidMappings":[{"hostId":131072,"containerId":0,"length":65536}]}"#
        );
    }

    #[test]
    fn files_kubelet_would_refuse_are_refused_and_a_link_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let one = r#"{"hostId":65536,"containerId":0,"length":65536}"#;
        for (body, says) in [
            (format!(r#"{{"uidMappings":[],"gidMappings":[{one}]}}"#), "exactly one"),
            (
                format!(r#"{{"uidMappings":[{one}],"gidMappings":[{{"hostId":131072,"containerId":0,"length":65536}}]}}"#),
                "identical",
            ),
            (
                r#"{"uidMappings":[{"hostId":65536,"containerId":1,"length":65536}],"gidMappings":[{"hostId":65536,"containerId":1,"length":65536}]}"#.to_string(),
                "UID 0",
            ),
            ("not json".to_string(), "invalid user namespace mappings file"),
        ] {
            std::fs::write(d.path().join(FILE), body).unwrap();
            let e = read(d.path()).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
        std::fs::remove_file(d.path().join(FILE)).unwrap();
        let elsewhere = d.path().join("elsewhere");
        std::fs::write(
            &elsewhere,
            format!(r#"{{"uidMappings":[{one}],"gidMappings":[{one}]}}"#),
        )
        .unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.path().join(FILE)).unwrap();
        assert!(
            read(d.path()).is_err(),
            "a link in place of the file is refused"
        );
    }
}
