//! What every pod worker shares: clients, node facts and the shared managers. Read-only but for
//! the managers' own interior state; no worker owns another's data.

use std::path::PathBuf;
use std::sync::Arc;

use crate::events::Events;
use crate::node_facts::NodeFacts;
use crate::runtime::{PodRuntime, WallClock};

use super::admission::Admission;
use super::images::Images;
use super::log_rotation::LogRotation;
use super::status_writer::PodWriter;

/// Where container environments read ConfigMaps, Secrets and Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvReads {
    /// The API server, through [`PodContext::api`] (none in standalone mode: no object exists).
    Api,
    /// An API without objects: no ConfigMap, Secret or Service exists (scenario tests).
    #[cfg(test)]
    Empty,
}

/// An API without objects.
pub struct NoObjects;

impl super::container::env::EnvSource for NoObjects {
    async fn config_map(
        &self,
        _ns: &str,
        _name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, kube::Error> {
        Ok(None)
    }

    async fn secret(
        &self,
        _ns: &str,
        _name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Secret>, kube::Error> {
        Ok(None)
    }
}

/// Shared by all pod workers.
pub struct PodContext {
    /// For the reads the pod side makes (volumes, env sources, pull secrets, runtime classes);
    /// none in standalone mode.
    pub api: crate::apiserver::ApiServer,
    /// Where container environments come from (the API but in scenario tests).
    pub env_reads: EnvReads,
    /// The Services container environments see (a watch-fed cache when connected).
    pub services: super::service_lister::ServiceLister,
    /// What the pod side writes to the API: status patches and the final deletion.
    pub writer: Arc<dyn PodWriter>,
    /// The container runtime.
    pub cri: Arc<dyn PodRuntime>,
    /// "containerd", for containerID fields ("containerd://ID").
    pub runtime_name: String,
    pub node: NodeFacts,
    /// The agent's root dir (pods/UID/... lives below it).
    pub root_dir: PathBuf,
    /// Where pod log directories live (/var/log/pods).
    pub log_root: PathBuf,
    pub host_resolv_conf: String,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// --container-log-max-size and --container-log-max-files.
    pub log_rotation: LogRotation,
    pub images: Images,
    pub events: Events,
    pub admission: Admission,
    /// The wall clock compared with the runtime's timestamps.
    pub clock: WallClock,
    /// Pod volumes (set up before containers start, torn down after they stop).
    pub volumes: crate::volumes::Volumes,
    /// Where pods' cgroups go (the sandbox's cgroup parent).
    pub cgroups: crate::cgroups::PodCgroups,
    /// Where pods' cgroups are written and removed (the host's hierarchies).
    pub cgroup_fs: std::sync::Arc<dyn crate::cgroups::CgroupFs>,
    /// kubepods and the QoS class cgroups (the Burstable shares follow its pods).
    pub qos_cgroups: std::sync::Arc<crate::cgroups::QosCgroups>,
    /// Dead container instances kept (kubelet's container GC policy).
    pub container_gc: crate::config::container_gc::ContainerGcPolicy,
    /// The host ID ranges of `hostUsers: false` pods.
    pub userns: std::sync::Arc<crate::userns::UserNamespaces>,
    /// The runtime's health, for what its handlers support (user namespaces).
    pub runtime_health: tokio::sync::watch::Receiver<crate::runtime::RuntimeHealth>,
}

impl PodContext {
    /// ROOT/pods/UID.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }
}
