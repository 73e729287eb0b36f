//! The volume manager: the desired state is the pod's volumes, the actual state is what is on
//! disk and in the mount table. [`Volumes::ensure`] (before a pod's sandbox and containers
//! start, and on every later sync) sets up what is missing and rewrites API-backed contents when
//! a refresh is due; [`Volumes::teardown`] (after the pod's containers stopped) unmounts
//! everything below the pod's directory and removes it. Every mount is checked against the
//! mount table first, so a volume found mounted after an agent restart is adopted, not mounted
//! twice.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Volume};
use tracing::{debug, warn};

use super::atomic_writer::{self, Payload};
use super::configmap_secret::{self as cms, DEFAULT_MODE};
use super::layout::{self, Layout};
use super::plugin::{ExternalPlugin, MountError, Plugin, csi_source};
use super::token::Tokens;
use super::{downward, emptydir, hostpath, mounts, projected};
use crate::pods::container::NodeFacts;
use crate::pods::events::Events;

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
    client: kube::Client,
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

impl Volumes {
    pub fn new(
        root_dir: &Path,
        client: kube::Client,
        events: Events,
        node: NodeFacts,
        refresh: Duration,
    ) -> Volumes {
        Volumes {
            layout: Layout::new(root_dir),
            client,
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
        match plugin {
            Plugin::EmptyDir => {
                let src = v.empty_dir.clone().unwrap_or_default();
                let tmpfs = if src.medium.as_deref() == Some("Memory") {
                    Some(emptydir::tmpfs_size(&src)?)
                } else {
                    None
                };
                emptydir::set_up(&dir, tmpfs)?;
                Ok((dir, None))
            }
            Plugin::ConfigMap => {
                let src = v.config_map.clone().unwrap_or_default();
                let cm = cms::get_configmap(&self.client, ns, &src.name).await?;
                let payload = cms::configmap_payload(
                    &src.name,
                    cm.as_ref(),
                    src.items.as_deref(),
                    src.default_mode.unwrap_or(DEFAULT_MODE),
                    src.optional.unwrap_or(false),
                )?;
                write_volume(&dir, &payload, plugin.on_tmpfs()).map(|p| (p, None))
            }
            Plugin::Secret => {
                let src = v.secret.clone().unwrap_or_default();
                let name = src.secret_name.clone().unwrap_or_default();
                let secret = cms::get_secret(&self.client, ns, &name).await?;
                let payload = cms::secret_payload(
                    &name,
                    secret.as_ref(),
                    src.items.as_deref(),
                    src.default_mode.unwrap_or(DEFAULT_MODE),
                    src.optional.unwrap_or(false),
                )?;
                write_volume(&dir, &payload, plugin.on_tmpfs()).map(|p| (p, None))
            }
            Plugin::DownwardApi => {
                let src = v.downward_api.clone().unwrap_or_default();
                let payload = downward::payload(
                    pod,
                    src.items.as_deref().unwrap_or_default(),
                    src.default_mode,
                    &self.node,
                )?;
                write_volume(&dir, &payload, plugin.on_tmpfs()).map(|p| (p, None))
            }
            Plugin::Projected => {
                let src = v.projected.clone().unwrap_or_default();
                let (payload, due) =
                    projected::payload(&self.client, &self.tokens, &self.node, pod, &src).await?;
                write_volume(&dir, &payload, plugin.on_tmpfs()).map(|p| (p, due))
            }
            Plugin::HostPath => {
                let src = v.host_path.clone().unwrap_or_default();
                hostpath::set_up(&src).map(|p| (p, None))
            }
            Plugin::Csi => match self.external.get() {
                Some(p) => p.mount(pod, v, &dir).await.map(|p| (p, None)),
                None => Err(MountError::NeedsCsi(csi_source(v))),
            },
            Plugin::Unsupported => Err(MountError::Unsupported),
        }
    }

    /// Unmounts everything below the pod's directory (CSI volumes through their plugin first)
    /// and removes the directory, unless something stays mounted there: then it is kept (a
    /// recursive removal would reach into the mount) and the error says what.
    pub async fn teardown(&self, uid: &str) -> Result<(), String> {
        self.unmount_all(uid).await?;
        let pod_dir = self.layout.pod_dir(uid);
        if let Err(e) = std::fs::remove_dir_all(&pod_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("cannot remove {}: {e}", pod_dir.display()));
        }
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
            for entry in std::fs::read_dir(&csi).into_iter().flatten().flatten() {
                let began = Instant::now();
                let r = external.unmount(uid, &entry.path()).await;
                crate::metrics::observe_volume(
                    "unmount",
                    Plugin::Csi.name(),
                    began.elapsed().as_secs_f64(),
                    r.is_ok(),
                );
                if let Err(e) = r {
                    return Err(format!(
                        "UnmountVolume.TearDown failed for volume {}: {e}",
                        entry.path().display()
                    ));
                }
            }
        }
        for m in mounts::mount_points_under(&pod_dir) {
            let began = Instant::now();
            let r = mounts::unmount(&m);
            crate::metrics::observe_volume(
                "unmount",
                &plugin_of(&pod_dir, &m),
                began.elapsed().as_secs_f64(),
                r.is_ok(),
            );
            match r {
                Ok(()) => debug!(mount = %m.display(), "unmounted"),
                Err(e) => warn!(mount = %m.display(), error = %e, "unmount failed"),
            }
        }
        let left = mounts::mount_points_under(&pod_dir);
        if !left.is_empty() {
            return Err(format!("still mounted: {left:?}"));
        }
        self.lock().remove(uid);
        Ok(())
    }
}

/// Writes an API-backed volume: its directory (a tmpfs for secrets and tokens), then the
/// payload atomically. A failure leaves nothing this call made.
fn write_volume(dir: &Path, payload: &Payload, tmpfs: bool) -> Result<PathBuf, MountError> {
    let created = !dir.exists();
    let mounted = emptydir::set_up(dir, tmpfs.then_some(None))?;
    match atomic_writer::write(dir, payload) {
        Ok(_) => Ok(dir.to_path_buf()),
        Err(e) => {
            emptydir::undo(dir, mounted, created);
            Err(MountError::io(format!("write {}", dir.display()), e))
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
}
