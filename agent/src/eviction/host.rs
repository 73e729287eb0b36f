//! The eviction manager's view of the host, behind [`Host`] so that its passes run against a
//! double in unit tests: the node's figures (procfs, statvfs, the pods' cgroup, the runtime's
//! image filesystem), what one pod uses (its cgroup, its emptyDir trees and logs walked
//! without following links, its containers' writable layers from the runtime), and the
//! node-level reclaim (the images no container uses).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use cri_client::CriClient;
use cri_client::api::ContainerStatsFilter;
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, warn};

use super::image_gc::{image_fs, remove_unused};
use super::local_storage::StorageUsage;
use super::observation::{FsReading, NodeReading};
use super::rank::PodUsage;
use crate::cgroups::{CgroupFs, PodCgroups, QosTier, memory_in_use};
use crate::config::eviction::Resource;
use crate::node::machine::Usage;
use crate::pods::container::labels::{CONTAINER_NAME, POD_UID};
use crate::pods::sandbox;
use crate::volumes::usage::tree_usage;

/// What the eviction manager reads and frees on the host.
pub trait Host: Send + Sync {
    /// One reading of the node.
    fn node(&self) -> BoxFuture<'_, NodeReading>;

    /// What `pod` uses: memory and processes always, its local storage when `storage` (a walk
    /// of its volumes and logs, so only when a limit or disk pressure needs it).
    fn pod_usage<'a>(
        &'a self,
        pod: &'a Pod,
        storage: bool,
    ) -> BoxFuture<'a, (PodUsage, Option<StorageUsage>)>;

    /// Frees what the node itself holds of `resource` (unused images, for disk).
    fn reclaim(&self, resource: Resource) -> BoxFuture<'_, ()>;
}

/// The host the agent runs on.
pub struct LiveHost {
    pub cri: CriClient,
    pub root_dir: PathBuf,
    pub log_root: PathBuf,
    pub memory_capacity: u64,
    /// Capacity minus kube- and system-reserved: what the pods' cgroup may hold.
    pub allocatable_memory: u64,
    pub cgroups: PodCgroups,
    pub cgroup_fs: Arc<dyn CgroupFs>,
}

fn cgroup_processes(fs: &dyn CgroupFs, path: &str) -> Option<u64> {
    fs.read(path, "pids", "pids.current")?.trim().parse().ok()
}

impl LiveHost {
    /// Each of the pod's containers' writable layer and memory working set, by container
    /// name (one ListContainerStats call).
    async fn container_stats(&self, uid: &str) -> BTreeMap<String, (Option<u64>, Option<u64>)> {
        let filter = ContainerStatsFilter {
            label_selector: HashMap::from([(POD_UID.to_string(), uid.to_string())]),
            ..ContainerStatsFilter::default()
        };
        let stats = match self.cri.list_container_stats(Some(filter)).await {
            Ok(s) => s,
            Err(error) => {
                debug!(%error, "ListContainerStats failed; containers' use not counted");
                return BTreeMap::new();
            }
        };
        let mut out: BTreeMap<String, (Option<u64>, Option<u64>)> = BTreeMap::new();
        for s in stats {
            let Some(name) = s
                .attributes
                .and_then(|a| a.labels.get(CONTAINER_NAME).cloned())
            else {
                continue;
            };
            let writable = s.writable_layer.and_then(|w| w.used_bytes).map(|b| b.value);
            let memory = s.memory.and_then(|m| m.working_set_bytes).map(|b| b.value);
            // A dead instance is listed too, without memory: the running one (kubelet drops
            // terminated containers) wins whatever the runtime's order.
            match out.get(&name) {
                Some((_, Some(_))) if memory.is_none() => {}
                _ => {
                    out.insert(name, (writable, memory));
                }
            }
        }
        out
    }
}

/// The pod's local storage on disk: its emptyDir trees and its containers' log directories.
fn storage_on_disk(root: &std::path::Path, log_dir: &std::path::Path, pod: &Pod) -> StorageUsage {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let volumes = root
        .join("pods")
        .join(uid)
        .join("volumes")
        .join("kubernetes.io~empty-dir");
    let mut out = StorageUsage::default();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some(e) = &v.empty_dir else { continue };
        if e.medium.as_deref() == Some("Memory") {
            out.memory_backed.push(v.name.clone());
        }
        match tree_usage(&volumes.join(&v.name)) {
            Ok(u) => {
                if u.too_deep > 0 {
                    warn!(volume = %v.name, "emptyDir nested deeper than the walk goes: not all counted");
                }
                out.empty_dirs.insert(v.name.clone(), u.bytes);
                out.inodes = out.inodes.saturating_add(u.inodes);
            }
            Err(error) => debug!(volume = %v.name, %error, "emptyDir not measured"),
        }
    }
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        if let Ok(u) = tree_usage(&log_dir.join(&c.name)) {
            out.containers.insert(c.name.clone(), u.bytes);
            out.inodes = out.inodes.saturating_add(u.inodes);
        }
    }
    out
}

impl Host for LiveHost {
    fn node(&self) -> BoxFuture<'_, NodeReading> {
        async move {
            let root = self.root_dir.clone();
            let imagefs = image_fs(&self.cri).await;
            let usage = tokio::task::spawn_blocking(move || Usage::read(&root))
                .await
                .unwrap_or_default();
            let kubepods = self
                .cgroups
                .qos(QosTier::Guaranteed)
                .map(|k| self.cgroups.form(&k));
            let pods_working_set = kubepods.and_then(|k| memory_in_use(&*self.cgroup_fs, &k));
            NodeReading {
                memory_capacity: self.memory_capacity,
                memory_available: (usage.memory_available_bytes > 0)
                    .then_some(usage.memory_available_bytes),
                allocatable_memory: self.allocatable_memory,
                pods_working_set,
                nodefs: (usage.fs_capacity_bytes > 0).then_some(FsReading {
                    capacity_bytes: usage.fs_capacity_bytes,
                    available_bytes: usage.fs_available_bytes,
                    inodes: usage.fs_inodes,
                    inodes_free: usage.fs_inodes_free,
                }),
                imagefs,
                pid_max: usage.pid_max,
                processes: usage.pids_running,
            }
        }
        .boxed()
    }

    fn pod_usage<'a>(
        &'a self,
        pod: &'a Pod,
        storage: bool,
    ) -> BoxFuture<'a, (PodUsage, Option<StorageUsage>)> {
        async move {
            let path = sandbox::cgroup_parent(&self.cgroups, pod);
            let (memory, processes) = if path.is_empty() {
                (None, None)
            } else {
                (
                    memory_in_use(&*self.cgroup_fs, &path),
                    cgroup_processes(&*self.cgroup_fs, &path),
                )
            };
            let uid = pod.metadata.uid.as_deref().unwrap_or_default();
            let stats = self.container_stats(uid).await;
            let mut usage = PodUsage {
                memory,
                processes,
                container_memory: (stats.iter())
                    .filter_map(|(name, (_, m))| Some((name.clone(), (*m)?)))
                    .collect(),
                ..PodUsage::default()
            };
            if !storage {
                return (usage, None);
            }
            let (root, log_dir, owned) = (
                self.root_dir.clone(),
                sandbox::log_directory(&self.log_root, pod),
                pod.clone(),
            );
            let mut disk =
                tokio::task::spawn_blocking(move || storage_on_disk(&root, &log_dir, &owned))
                    .await
                    .unwrap_or_default();
            for (name, (writable, _)) in stats {
                let entry = disk.containers.entry(name).or_insert(0);
                *entry = entry.saturating_add(writable.unwrap_or(0));
            }
            usage.container_storage = disk.containers.clone();
            usage.ephemeral_bytes = Some(disk.total());
            usage.inodes = Some(disk.inodes);
            (usage, Some(disk))
        }
        .boxed()
    }

    fn reclaim(&self, resource: Resource) -> BoxFuture<'_, ()> {
        async move {
            if !matches!(resource, Resource::EphemeralStorage | Resource::Inodes) {
                return;
            }
            remove_unused(&self.cri).await;
        }
        .boxed()
    }
}
