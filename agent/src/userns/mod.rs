//! User namespaces for pods (`hostUsers: false`, beta and on by default in Kubernetes 1.35),
//! as kubelet's userns manager: each such pod gets its own range of host user and group IDs
//! ([`allocator`]), kept in its pod directory ([`store`]) so it survives an agent restart, and
//! handed to the runtime as the sandbox's and every container's user namespace (mode POD) and
//! on every mount (idmap mounts). Every other pod is told to use the node's (mode NODE). A pod
//! asking for one on a runtime handler that does not report user namespace support (containerd
//! 1.6 reports no handlers at all) gets kubelet's error and no sandbox.
//!
//! The IDs come from the subordinate IDs of a local user `kubelet` (`getsubids`), when there is
//! one, else from 65536 to the end of the 32-bit space, `userNamespaces.idsPerPod` per pod.

pub mod allocator;
pub mod store;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use cri_client::api::{self, NamespaceMode};
use k8s_openapi::api::core::v1::Pod;
use thiserror::Error;
use tracing::{info, warn};

pub use allocator::{AllocError, Allocator};
use store::IdMapping;

/// Why the user namespace manager cannot start (the agent does not start either, as kubelet).
#[derive(Debug, Error)]
pub enum UsernsError {
    #[error("kubelet mappings: {0}")]
    Mappings(String),
    #[error(transparent)]
    Range(#[from] AllocError),
    #[error("record pod mappings for existing pod {uid:?}: {message}")]
    Existing { uid: String, message: String },
}

/// The local user whose subordinate IDs the pods get, as kubelet's.
const KUBELET_USER: &str = "kubelet";

/// The node's allocations.
pub struct UserNamespaces {
    pods_dir: PathBuf,
    alloc: Mutex<Allocator>,
}

impl UserNamespaces {
    /// The manager over `ROOT/pods`, with the allocations of the pods found there.
    pub fn load(root_dir: &Path, ids_per_pod: u32, max_pods: u32) -> Result<Self, UsernsError> {
        let (first, length) = kubelet_range(ids_per_pod)?;
        let mut alloc = Allocator::new(ids_per_pod, first, length, max_pods)?;
        let pods_dir = root_dir.join("pods");
        for entry in std::fs::read_dir(&pods_dir).into_iter().flatten().flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            let existing = |message: String| UsernsError::Existing {
                uid: uid.clone(),
                message,
            };
            let found = store::read(&entry.path()).map_err(|e| existing(e.to_string()))?;
            if let Some(m) = found {
                alloc
                    .record(&uid, m.host_id, m.length)
                    .map_err(|e| existing(e.to_string()))?;
            }
        }
        info!(first, length, ids_per_pod, "user namespaces for pods");
        Ok(UserNamespaces {
            pods_dir,
            alloc: Mutex::new(alloc),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Allocator> {
        self.alloc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pod's user namespace for the CRI. `supported` is whether the pod's runtime handler
    /// `handler` has user namespaces (the runtime's answer, or why it has none). The error is
    /// kubelet's message.
    pub fn for_pod(
        &self,
        pod: &Pod,
        handler: &str,
        supported: Result<bool, String>,
    ) -> Result<api::UserNamespace, String> {
        let host_users = pod.spec.as_ref().and_then(|s| s.host_users);
        if host_users != Some(false) {
            return Ok(api::UserNamespace {
                mode: NamespaceMode::Node.into(),
                ..Default::default()
            });
        }
        if supported != Ok(true) {
            let mut msg =
                "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
                    .to_string();
            if !handler.is_empty() {
                msg = format!(
                    "can't set `spec.hostUsers: false`, RuntimeClass handler {handler:?} does not support user namespaces"
                );
            }
            return Err(match supported {
                Err(e) => format!("{msg}: {e}"),
                Ok(_) => msg,
            });
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        crate::volumes::dirfd::check_name(uid.as_ref()).map_err(|e| e.to_string())?;
        let dir = self.pods_dir.join(uid);
        let mut alloc = self.lock();
        let mapping =
            if let Some(m) = store::read(&dir).map_err(|e| format!("user namespace: {e}"))? {
                alloc
                    .record(uid, m.host_id, m.length)
                    .map_err(|e| format!("user namespace: {e}"))?;
                m
            } else {
                create(&mut alloc, uid, &dir).map_err(|e| format!("create user namespace: {e}"))?
            };
        let ids = vec![api::IdMapping {
            host_id: mapping.host_id,
            container_id: mapping.container_id,
            length: mapping.length,
        }];
        Ok(api::UserNamespace {
            mode: NamespaceMode::Pod.into(),
            uids: ids.clone(),
            gids: ids,
        })
    }

    /// The user namespace of a pod whose sandbox exists: the recorded range of a
    /// `hostUsers: false` pod (never a new one), the node's otherwise.
    pub fn recorded(&self, pod: &Pod) -> Result<api::UserNamespace, String> {
        if pod.spec.as_ref().and_then(|s| s.host_users) != Some(false) {
            return Ok(api::UserNamespace {
                mode: NamespaceMode::Node.into(),
                ..Default::default()
            });
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let first = self
            .lock()
            .get(uid)
            .ok_or_else(|| "user namespace: the pod's sandbox has no recorded range".to_string())?;
        let ids = vec![api::IdMapping {
            host_id: first,
            container_id: 0,
            length: self.lock().ids_per_pod(),
        }];
        Ok(api::UserNamespace {
            mode: NamespaceMode::Pod.into(),
            uids: ids.clone(),
            gids: ids,
        })
    }

    /// Frees `uid`'s range (its pod is gone; the file went with its directory).
    pub fn release(&self, uid: &str) {
        self.lock().release(uid);
    }

    /// Frees the ranges of pods `known` does not name (kubelet's
    /// CleanupOrphanedPodUsernsAllocations, after the pod sources have listed).
    pub fn release_orphans(&self, known: impl Fn(&str) -> bool) {
        let mut alloc = self.lock();
        for uid in alloc.holders() {
            if !known(&uid) {
                alloc.release(&uid);
            }
        }
    }
}

/// A new range for `uid`, written to its pod directory `dir` (the range is freed again when the
/// file cannot be written).
fn create(alloc: &mut Allocator, uid: &str, dir: &Path) -> Result<IdMapping, String> {
    let first = alloc
        .allocate(uid, random_u32())
        .map_err(|e| e.to_string())?;
    let m = IdMapping {
        host_id: first,
        container_id: 0,
        length: alloc.ids_per_pod(),
    };
    let written = std::fs::create_dir_all(dir)
        .map_err(store::StoreError::from)
        .and_then(|()| store::write(dir, m));
    if let Err(e) = written {
        alloc.release(uid);
        return Err(e.to_string());
    }
    Ok(m)
}

/// The user namespace's ID mappings for a container's mounts (idmap mounts): the pod's, when it
/// has its own user namespace.
pub fn mount_mappings(
    ns: Option<&api::UserNamespace>,
) -> (Vec<api::IdMapping>, Vec<api::IdMapping>) {
    match ns {
        Some(ns) if ns.mode() == NamespaceMode::Pod => (ns.uids.clone(), ns.gids.clone()),
        _ => (Vec::new(), Vec::new()),
    }
}

fn random_u32() -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    // Only the scan's start: a failed read just starts at slot 0.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u32::from_le_bytes(b)
}

/// The host IDs for pods: the `kubelet` user's subordinate IDs when that user exists and
/// `getsubids` is installed, else kubelet's default, from `ids_per_pod` to 2^32.
fn kubelet_range(ids_per_pod: u32) -> Result<(u32, u32), UsernsError> {
    let default = (ids_per_pod, u32::MAX - ids_per_pod + 1);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    if !has_user(&passwd, KUBELET_USER) {
        return Ok(default);
    }
    let Some(getsubids) = find_on_path("getsubids") else {
        return Ok(default);
    };
    let run = |args: &[&str]| -> Result<String, UsernsError> {
        let out = Command::new(&getsubids)
            .args(args)
            .output()
            .map_err(|e| UsernsError::Mappings(format!("getsubids: {e}")))?;
        if !out.status.success() {
            return Err(UsernsError::Mappings(format!(
                "error retrieving additional ids for user {KUBELET_USER:?}"
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let uids = run(&[KUBELET_USER])?;
    let gids = run(&["-g", KUBELET_USER])?;
    if uids != gids {
        return Err(UsernsError::Mappings(format!(
            "mismatched subuids and subgids for user {KUBELET_USER:?}"
        )));
    }
    parse_getsubids(&uids).map_err(UsernsError::Mappings)
}

fn has_user(passwd: &str, user: &str) -> bool {
    passwd.lines().any(|l| l.split(':').next() == Some(user))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `getsubids` output, one line: `0: kubelet 65536 2147483648` (index, user, start, count).
fn parse_getsubids(out: &str) -> Result<(u32, u32), String> {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    let [line] = lines.as_slice() else {
        warn!(output = %out, "getsubids gave not exactly one range");
        return Err(format!(
            "error parsing line {out:?}: it must contain only one line"
        ));
    };
    let parts: Vec<&str> = line.split_whitespace().collect();
    let [_, _, start, count] = parts.as_slice() else {
        return Err(format!("error parsing line {line:?}"));
    };
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|e| format!("error parsing line {line:?}: {e}"))
    };
    Ok((number(start)?, number(count)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, host_users: Option<bool>) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": uid},
            "spec": {"hostUsers": host_users, "containers": [{"name": "c", "image": "i"}]}}))
        .unwrap()
    }

    fn manager(root: &Path) -> UserNamespaces {
        UserNamespaces::load(root, 65536, 110).unwrap()
    }

    #[test]
    fn only_host_users_false_gets_a_range_of_its_own_kept_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let m = manager(d.path());
        for host_users in [None, Some(true)] {
            let ns = m.for_pod(&pod("n", host_users), "", Ok(false)).unwrap();
            assert_eq!(ns.mode(), NamespaceMode::Node);
            assert!(ns.uids.is_empty());
        }
        let a = m.for_pod(&pod("a", Some(false)), "", Ok(true)).unwrap();
        assert_eq!(a.mode(), NamespaceMode::Pod);
        assert_eq!(a.uids, a.gids);
        let range = a.uids[0];
        assert_eq!((range.container_id, range.length), (0, 65536));
        assert!(
            range.host_id >= 65536 && range.host_id.is_multiple_of(65536),
            "{range:?}"
        );
        let b = m.for_pod(&pod("b", Some(false)), "", Ok(true)).unwrap();
        assert_ne!(b.uids[0].host_id, range.host_id);
        // Asked again, and after a restart: the same range, from the pod's file.
        assert_eq!(m.for_pod(&pod("a", Some(false)), "", Ok(true)).unwrap(), a);
        assert_eq!(m.recorded(&pod("a", Some(false))).unwrap(), a);
        assert!(
            m.recorded(&pod("c", Some(false))).is_err(),
            "never a new range"
        );
        assert_eq!(
            m.recorded(&pod("n", None)).unwrap().mode(),
            NamespaceMode::Node
        );
        let again = manager(d.path());
        assert_eq!(
            again.for_pod(&pod("a", Some(false)), "", Ok(true)).unwrap(),
            a
        );
        assert_eq!(again.lock().get("b"), Some(b.uids[0].host_id));
        again.release_orphans(|uid| uid == "a");
        assert_eq!(again.lock().get("b"), None);
        assert!(again.lock().get("a").is_some());
    }

    #[test]
    fn a_runtime_without_user_namespaces_gets_kubelets_error() {
        let d = tempfile::tempdir().unwrap();
        let m = manager(d.path());
        let p = pod("a", Some(false));
        let e = m.for_pod(&p, "", Ok(false)).unwrap_err();
        assert_eq!(
            e,
            "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
        );
        let e = m
            .for_pod(&p, "kata", Err("the handler \"kata\" is not known".into()))
            .unwrap_err();
        assert_eq!(
            e,
            "can't set `spec.hostUsers: false`, RuntimeClass handler \"kata\" does not support user namespaces: the handler \"kata\" is not known"
        );
        assert!(
            !d.path().join("pods/a/userns").exists(),
            "nothing allocated"
        );
    }

    #[test]
    fn getsubids_output_and_the_kubelet_user() {
        assert_eq!(
            parse_getsubids("0: kubelet 65536 2147483648\n").unwrap(),
            (65536, 2_147_483_648)
        );
        assert!(parse_getsubids("0: kubelet 65536\n").is_err());
        assert!(parse_getsubids("0: kubelet 1 2\n1: kubelet 3 4\n").is_err());
        assert!(has_user(
            "root:x:0:0::/root:/bin/sh\nkubelet:x:999:999::/:/bin/false\n",
            "kubelet"
        ));
        assert!(!has_user(
            "root:x:0:0::/root:/bin/sh\nkubeletx:x:1:1::/:/bin/false\n",
            "kubelet"
        ));
    }

    #[test]
    fn mounts_are_mapped_only_in_a_pod_user_namespace() {
        let node = api::UserNamespace {
            mode: NamespaceMode::Node.into(),
            ..Default::default()
        };
        assert_eq!(mount_mappings(Some(&node)), (vec![], vec![]));
        assert_eq!(mount_mappings(None), (vec![], vec![]));
        let ids = vec![api::IdMapping {
            host_id: 65536,
            container_id: 0,
            length: 65536,
        }];
        let pod = api::UserNamespace {
            mode: NamespaceMode::Pod.into(),
            uids: ids.clone(),
            gids: ids.clone(),
        };
        assert_eq!(mount_mappings(Some(&pod)), (ids.clone(), ids));
    }
}
