//! The volume manager: the desired state is the pod's volumes, the actual state is what is on
//! disk and in the mount table. [`Volumes::ensure`] (before a pod's sandbox and containers
//! start, and on every later sync) sets up what is missing and rewrites API-backed contents when
//! a refresh is due; [`Volumes::teardown`] (after the pod's containers stopped) unmounts
//! everything below the pod's directory and removes it. Every mount is checked against the
//! mount table first, so a volume found mounted after an agent restart is adopted, not mounted
//! twice. File system work (stat, mkdir, writes, mount table reads, removals) runs on tokio's
//! blocking pool, never on the runtime's worker threads.

use crate::apiserver::ApiServer;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Volume};
use tracing::{debug, warn};

use super::atomic_writer::{self, Payload};
use super::configmap_secret::{self as cms, DEFAULT_MODE};
use super::dirfd::DirFd;
use super::layout::{self, Layout};
use super::plugin::{ExternalPlugin, MountError, Plugin, csi_source};
use super::token::Tokens;
use super::{downward, emptydir, hostpath, mounts, ownership, projected};
use crate::events::Events;
use crate::node_facts::NodeFacts;

/// How often API-backed volume contents are refreshed (kubelet's --sync-frequency, 1 min).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Retry delays after a failed setup: 1 s doubling up to this.
const MAX_RETRY: Duration = Duration::from_secs(32);

/// The pod's volumes are ready: host path per volume name.
#[derive(Debug, Default)]
pub struct Ready {
    pub paths: HashMap<String, PathBuf>,
    /// Sync again after this long to refresh contents (None: nothing to refresh).
    pub refresh_in: Option<Duration>,
}

/// Some volume could not be set up (events were emitted); try again after `retry_in`.
#[derive(Debug)]
pub struct NotReady {
    pub retry_in: Duration,
    /// `MountVolume.SetUp failed for volume ...` texts.
    pub messages: Vec<String>,
}

/// A pod's labels and annotations: a change refreshes its downwardAPI contents.
type PodMetadata = (
    Option<BTreeMap<String, String>>,
    Option<BTreeMap<String, String>>,
);

#[derive(Default)]
struct PodVolumes {
    set_up: HashMap<String, PathBuf>,
    next_refresh: Option<Instant>,
    metadata: Option<PodMetadata>,
    failures: u32,
}

/// Shared by all pod workers; a pod's calls come from its worker only, one at a time.
pub struct Volumes {
    layout: Layout,
    api: ApiServer,
    events: Events,
    node: NodeFacts,
    tokens: Tokens,
    refresh: Duration,
    pods: Mutex<HashMap<String, PodVolumes>>,
    external: OnceLock<Arc<dyn ExternalPlugin>>,
}

fn retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(5)).min(MAX_RETRY)
}

/// Runs blocking file system work on tokio's blocking pool. A task that panicked or was
/// cancelled is an error here, not a panic of the caller.
async fn off_runtime<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("volume task failed: {e}"))
}

/// [`off_runtime`] for a volume setup step.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, MountError> + Send + 'static,
) -> Result<T, MountError> {
    off_runtime(f).await.map_err(MountError::Failed)?
}

/// ROOT/pods/UID/volumes/PLUGIN and its parents, 0750 (kubelet's).
fn make_plugin_dir(layout: &Layout, uid: &str, plugin: Plugin) -> Result<PathBuf, MountError> {
    layout.create_plugin_dir(uid, plugin.name()).map_err(|e| {
        let dir = layout
            .volumes_dir(uid)
            .join(layout::escape_plugin(plugin.name()));
        MountError::io(format!("mkdir {}", dir.display()), e)
    })
}

impl Volumes {
    pub fn new(
        root_dir: &Path,
        api: ApiServer,
        events: Events,
        node: NodeFacts,
        refresh: Duration,
    ) -> Volumes {
        Volumes {
            layout: Layout::new(root_dir),
            api,
            events,
            node,
            tokens: Tokens::default(),
            refresh,
            pods: Mutex::default(),
            external: OnceLock::new(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Installs the plugin for persistentVolumeClaim / csi / ephemeral volumes (CSI).
    pub fn set_external_plugin(&self, plugin: Arc<dyn ExternalPlugin>) {
        let _ = self.external.set(plugin);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodVolumes>> {
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets up every volume of `pod` that is not yet, and refreshes API-backed contents when
    /// due (every refresh period, on label/annotation changes, when a token nears expiry).
    pub async fn ensure(&self, pod: &Pod) -> Result<Ready, NotReady> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut state = self.lock().remove(&uid).unwrap_or_default();
        let now = Instant::now();
        let metadata = Some((
            pod.metadata.labels.clone(),
            pod.metadata.annotations.clone(),
        ));
        let refresh_due = state.next_refresh.is_none_or(|t| now >= t) || state.metadata != metadata;
        let mut ready = Ready::default();
        let mut messages = Vec::new();
        let mut token_due: Option<Duration> = None;
        let mut refreshable = false;
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let plugin = Plugin::for_volume(v);
            if plugin == Plugin::Image {
                // Pulled by the pod worker and mounted by the runtime (pods/image_volumes).
                continue;
            }
            refreshable |= plugin.refreshes();
            let existing = state.set_up.get(&v.name).cloned();
            if let Some(path) = &existing
                && (!plugin.refreshes() || !refresh_due)
            {
                ready.paths.insert(v.name.clone(), path.clone());
                continue;
            }
            let began = Instant::now();
            let result = self.set_up_one(&uid, pod, v, plugin).await;
            crate::metrics::observe_volume(
                "mount",
                plugin.name(),
                began.elapsed().as_secs_f64(),
                result.is_ok(),
            );
            match result {
                Ok((path, due)) => {
                    if let Some(d) = due {
                        token_due = Some(token_due.map_or(d, |t| t.min(d)));
                    }
                    ready.paths.insert(v.name.clone(), path.clone());
                    state.set_up.insert(v.name.clone(), path);
                }
                Err(e) => {
                    let msg = e.event_message(&v.name);
                    self.events.warning(pod, None, "FailedMount", msg.clone());
                    match existing {
                        // A refresh failed: the volume keeps its last contents.
                        Some(path) => {
                            ready.paths.insert(v.name.clone(), path);
                        }
                        None => messages.push(msg),
                    }
                }
            }
        }
        if refresh_due && refreshable {
            let every = token_due.map_or(self.refresh, |t| t.min(self.refresh));
            state.next_refresh = Some(now + every);
            state.metadata = metadata;
        }
        let failed = !messages.is_empty();
        state.failures = if failed { state.failures + 1 } else { 0 };
        let retry_in = retry_after(state.failures);
        ready.refresh_in = if refreshable {
            state
                .next_refresh
                .map(|t| t.saturating_duration_since(Instant::now()))
        } else {
            None
        };
        self.lock().insert(uid, state);
        if failed {
            Err(NotReady { retry_in, messages })
        } else {
            Ok(ready)
        }
    }

    async fn set_up_one(
        &self,
        uid: &str,
        pod: &Pod,
        v: &Volume,
        plugin: Plugin,
    ) -> Result<(PathBuf, Option<Duration>), MountError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let dir = self.layout.volume_dir(uid, plugin.name(), &v.name);
        let fs_group = ownership::pod_fs_group(pod).map_err(MountError::Failed)?;
        match plugin {
            Plugin::EmptyDir => {
                let src = v.empty_dir.clone().unwrap_or_default();
                let tmpfs = if src.medium.as_deref() == Some("Memory") {
                    Some(emptydir::tmpfs_size(&src)?)
                } else {
                    None
                };
                let (layout, uid) = (self.layout.clone(), uid.to_string());
                blocking(move || {
                    make_plugin_dir(&layout, &uid, plugin)?;
                    emptydir::set_up(&dir, tmpfs, fs_group)?;
                    Ok((dir, None))
                })
                .await
            }
            Plugin::ConfigMap => {
                let src = v.config_map.clone().unwrap_or_default();
                let cm = cms::get_configmap(self.api.client()?, ns, &src.name).await?;
                let payload = cms::configmap_payload(
                    &src.name,
                    cm.as_ref(),
                    src.items.as_deref(),
                    src.default_mode.unwrap_or(DEFAULT_MODE),
                    src.optional.unwrap_or(false),
                )?;
                self.write_volume(uid, plugin, dir, payload, fs_group)
                    .await
                    .map(|p| (p, None))
            }
            Plugin::Secret => {
                let src = v.secret.clone().unwrap_or_default();
                let name = src.secret_name.clone().unwrap_or_default();
                let secret = cms::get_secret(self.api.client()?, ns, &name).await?;
                let payload = cms::secret_payload(
                    &name,
                    secret.as_ref(),
                    src.items.as_deref(),
                    src.default_mode.unwrap_or(DEFAULT_MODE),
                    src.optional.unwrap_or(false),
                )?;
                self.write_volume(uid, plugin, dir, payload, fs_group)
                    .await
                    .map(|p| (p, None))
            }
            Plugin::DownwardApi => {
                let src = v.downward_api.clone().unwrap_or_default();
                let payload = downward::payload(
                    pod,
                    src.items.as_deref().unwrap_or_default(),
                    src.default_mode,
                    &self.node,
                )?;
                self.write_volume(uid, plugin, dir, payload, fs_group)
                    .await
                    .map(|p| (p, None))
            }
            Plugin::Projected => {
                let src = v.projected.clone().unwrap_or_default();
                let (payload, due) =
                    projected::payload(&self.api, &self.tokens, &self.node, pod, &src).await?;
                self.write_volume(uid, plugin, dir, payload, fs_group)
                    .await
                    .map(|p| (p, due))
            }
            Plugin::HostPath => {
                let src = v.host_path.clone().unwrap_or_default();
                blocking(move || hostpath::set_up(&src))
                    .await
                    .map(|p| (p, None))
            }
            Plugin::Csi => match self.external.get() {
                Some(p) => {
                    let (layout, uid) = (self.layout.clone(), uid.to_string());
                    blocking(move || make_plugin_dir(&layout, &uid, plugin)).await?;
                    p.mount(pod, v, &dir).await.map(|p| (p, None))
                }
                None => Err(MountError::NeedsCsi(csi_source(v))),
            },
            Plugin::Image | Plugin::Unsupported => Err(MountError::Unsupported),
        }
    }

    /// Writes an API-backed volume off the runtime: the plugin's directory, then
    /// [`write_volume`].
    async fn write_volume(
        &self,
        uid: &str,
        plugin: Plugin,
        dir: PathBuf,
        payload: Payload,
        fs_group: Option<u32>,
    ) -> Result<PathBuf, MountError> {
        let (layout, uid) = (self.layout.clone(), uid.to_string());
        blocking(move || {
            make_plugin_dir(&layout, &uid, plugin)?;
            write_volume(&dir, &payload, plugin.on_tmpfs(), fs_group)
        })
        .await
    }

    /// Unmounts everything below the pod's directory (CSI volumes through their plugin first)
    /// and removes the directory, unless something stays mounted there: then it is kept (a
    /// recursive removal would reach into the mount) and the error says what.
    pub async fn teardown(&self, uid: &str) -> Result<(), String> {
        self.unmount_all(uid).await?;
        let (layout, owned) = (self.layout.clone(), uid.to_string());
        off_runtime(move || remove_pod_dir(&layout, &owned)).await??;
        self.lock().remove(uid);
        self.tokens.forget_pod(uid);
        Ok(())
    }

    /// Unmounts every volume of the pod (a pod that ended keeps its directory until deleted).
    pub async fn unmount_all(&self, uid: &str) -> Result<(), String> {
        let pod_dir = self.layout.pod_dir(uid);
        if let Some(external) = self.external.get() {
            let csi = self
                .layout
                .volumes_dir(uid)
                .join(layout::escape_plugin(Plugin::Csi.name()));
            for path in off_runtime(move || entries_of(&csi)).await? {
                let began = Instant::now();
                let r = external.unmount(uid, &path).await;
                crate::metrics::observe_volume(
                    "unmount",
                    Plugin::Csi.name(),
                    began.elapsed().as_secs_f64(),
                    r.is_ok(),
                );
                if let Err(e) = r {
                    return Err(format!(
                        "UnmountVolume.TearDown failed for volume {}: {e}",
                        path.display()
                    ));
                }
            }
        }
        off_runtime(move || unmount_below(&pod_dir)).await??;
        self.lock().remove(uid);
        Ok(())
    }

    /// Removes the contents of the pod's emptyDir volumes once it ended for good (kubelet's
    /// emptyDir teardown: what an evicted pod wrote is freed). Call after [`Self::unmount_all`];
    /// a mount still below one stops its removal (never deleting through it).
    pub async fn remove_empty_dirs(&self, uid: &str) -> Result<(), String> {
        let dir = self
            .layout
            .volumes_dir(uid)
            .join(layout::escape_plugin(Plugin::EmptyDir.name()));
        off_runtime(move || {
            let top = match DirFd::open(&dir) {
                Ok(top) => top,
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.to_string()),
            };
            for name in top.entries().map_err(|e| e.to_string())? {
                match top.remove_tree(&name) {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(format!("{}: {e}", dir.join(&name).display())),
                }
            }
            Ok(())
        })
        .await?
    }
}

/// The paths of a directory's entries (none when it cannot be read).
fn entries_of(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Unmounts every mount point below `pod_dir`, deepest first; fails when any is left.
fn unmount_below(pod_dir: &Path) -> Result<(), String> {
    for m in mounts::mount_points_under(pod_dir) {
        let began = Instant::now();
        let r = mounts::unmount(&m);
        crate::metrics::observe_volume(
            "unmount",
            &plugin_of(pod_dir, &m),
            began.elapsed().as_secs_f64(),
            r.is_ok(),
        );
        match r {
            Ok(()) => debug!(mount = %m.display(), "unmounted"),
            Err(e) => warn!(mount = %m.display(), error = %e, "unmount failed"),
        }
    }
    let left = mounts::mount_points_under(pod_dir);
    if !left.is_empty() {
        return Err(format!("still mounted: {left:?}"));
    }
    Ok(())
}

/// Removes ROOT/pods/UID relative to an fd of ROOT/pods, following no link a container left
/// in a volume below it. Already gone is fine.
fn remove_pod_dir(layout: &Layout, uid: &str) -> Result<(), String> {
    let removed = DirFd::open(&layout.pods_dir()).and_then(|pods| pods.remove_tree(uid));
    match removed {
        Err(e) if !e.is_not_found() => Err(format!(
            "cannot remove {}: {e}",
            layout.pod_dir(uid).display()
        )),
        _ => Ok(()),
    }
}

/// Writes an API-backed volume: its directory (a tmpfs for secrets and tokens), then the
/// payload atomically, with the pod's fsGroup. A failure leaves nothing this call made.
fn write_volume(
    dir: &Path,
    payload: &Payload,
    tmpfs: bool,
    fs_group: Option<u32>,
) -> Result<PathBuf, MountError> {
    let created = std::fs::symlink_metadata(dir).is_err();
    let mounted = emptydir::set_up(dir, tmpfs.then_some(None), None)?;
    match atomic_writer::write(dir, payload, fs_group) {
        Ok(_) => Ok(dir.to_path_buf()),
        Err(e) => {
            emptydir::undo(dir, mounted, created);
            Err(MountError::io(format!("write {}", dir.display()), e.into()))
        }
    }
}

/// The plugin a mount below the pod's directory belongs to (for metrics).
fn plugin_of(pod_dir: &Path, mount: &Path) -> String {
    let rel = mount.strip_prefix(pod_dir).unwrap_or(mount);
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    match (parts.next().as_deref(), parts.next()) {
        (Some("volumes"), Some(p)) => layout::unescape_plugin(&p),
        (Some("volume-subpaths"), _) => "kubernetes.io/subpath".to_string(),
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(2), Duration::from_secs(2));
        assert_eq!(retry_after(4), Duration::from_secs(8));
        assert_eq!(retry_after(40), MAX_RETRY);
    }

    #[test]
    fn mounts_are_attributed_to_their_plugin() {
        let pod = Path::new("/r/pods/u");
        assert_eq!(
            plugin_of(pod, Path::new("/r/pods/u/volumes/kubernetes.io~secret/s")),
            "kubernetes.io/secret"
        );
        assert_eq!(
            plugin_of(pod, Path::new("/r/pods/u/volume-subpaths/v/c/0")),
            "kubernetes.io/subpath"
        );
    }

    #[test]
    fn a_pod_dir_is_removed_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let canary = d.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("keep"), "x").unwrap();
        let layout = Layout::new(&d.path().join("root"));
        let vol = layout
            .create_plugin_dir("u", Plugin::EmptyDir.name())
            .unwrap()
            .join("v");
        std::fs::create_dir(&vol).unwrap();
        std::os::unix::fs::symlink(&canary, vol.join("link")).unwrap();
        remove_pod_dir(&layout, "u").unwrap();
        assert!(!layout.pod_dir("u").exists());
        assert!(canary.join("keep").exists());
        remove_pod_dir(&layout, "u").unwrap();
    }

    #[test]
    fn a_failed_first_write_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("v");
        let mut p = Payload::new();
        p.insert(
            "../x".into(),
            atomic_writer::FileProjection {
                data: vec![],
                mode: 0o644,
            },
        );
        assert!(write_volume(&dir, &p, false, None).is_err());
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn blocking_work_runs_off_the_runtime_and_join_errors_are_errors() {
        let r: Result<u32, MountError> = blocking(|| Ok(7)).await;
        assert_eq!(r.unwrap(), 7);
        let e = off_runtime(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(e.contains("volume task failed"), "{e}");
    }
}
