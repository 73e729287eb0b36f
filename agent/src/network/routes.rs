//! Route files: several agents may share one containerd, whose CNI config names one delegate.
//! Before RunPodSandbox the agent writes `ROUTES_DIR/POD_UID` = `{"socket": ..., "cacheDir": ...}`
//! so the delegate forwards that pod's CNI requests to it; files of pods without any sandbox
//! left are pruned by GC.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::wire;

/// A route file younger than this is kept even without a sandbox: RunPodSandbox may be running.
const MIN_AGE: Duration = Duration::from_secs(120);

/// This agent's routes.
#[derive(Debug, Clone)]
pub struct Routes {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub cache_dir: PathBuf,
}

static ROUTES: OnceLock<Routes> = OnceLock::new();

/// Makes `routes` the process's routes (once; the agent calls it at start).
pub fn install(routes: Routes) {
    let _ = ROUTES.set(routes);
}

/// Points the delegate at this agent for pod `uid` (no-op before [`install`]). Errors are
/// logged: without the file the default agent serves the pod, which still works.
pub fn record_pod(uid: &str) {
    let Some(routes) = ROUTES.get() else { return };
    if let Err(e) = routes.write(uid) {
        warn!(pod_uid = uid, error = %e, dir = %routes.dir.display(), "cannot write the CNI route file");
    }
}

impl Routes {
    pub fn write(&self, uid: &str) -> std::io::Result<()> {
        if !wire::is_safe_file_name(uid) {
            return Err(std::io::Error::other(format!("unusable pod UID {uid:?}")));
        }
        std::fs::create_dir_all(&self.dir)?;
        let body = serde_json::json!({
            "socket": self.socket,
            "cacheDir": self.cache_dir,
        })
        .to_string();
        let tmp = self.dir.join(format!(".{uid}.tmp"));
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, self.dir.join(uid))
    }

    /// Removes route files older than [`MIN_AGE`] whose pod has no sandbox in `live_uids`.
    /// Every agent may prune every file: the sandboxes of one containerd are one list.
    pub fn prune(&self, live_uids: &HashSet<String>) -> usize {
        prune_dir(&self.dir, live_uids, MIN_AGE)
    }
}

fn prune_dir(dir: &Path, live_uids: &HashSet<String>, min_age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || live_uids.contains(&name) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= min_age);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            debug!(pod_uid = %name, "removed CNI route file");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_prune_only_dead_pods() {
        let dir = tempfile::tempdir().unwrap();
        let routes = Routes {
            dir: dir.path().join("routes"),
            socket: "/run/a.sock".into(),
            cache_dir: "/var/a".into(),
        };
        routes.write("uid-1").unwrap();
        routes.write("uid-2").unwrap();
        assert!(routes.write("../x").is_err());
        let body = std::fs::read_to_string(routes.dir.join("uid-1")).unwrap();
        assert!(body.contains("/run/a.sock") && body.contains("/var/a"));
        let live: HashSet<String> = ["uid-1".to_string()].into();
        assert_eq!(routes.prune(&live), 0, "young files are kept");
        assert_eq!(prune_dir(&routes.dir, &live, Duration::ZERO), 1);
        assert!(routes.dir.join("uid-1").exists());
        assert!(!routes.dir.join("uid-2").exists());
    }
}
