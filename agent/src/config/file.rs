//! The file layer under the flags: the project's flat `--config` format (the same settings as
//! the flags, camelCase keys; unknown keys are an error, so a typo never goes unnoticed), which
//! is also what a KubeletConfiguration is carried into (`kubelet::convert`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// One taint as written in the config file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    pub effect: String,
}

/// The config file's settings; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    pub kubeconfig: Option<PathBuf>,
    pub hostname_override: Option<String>,
    #[serde(rename = "nodeIP")]
    pub node_ip: Option<String>,
    pub container_runtime_endpoint: Option<String>,
    pub root_dir: Option<PathBuf>,
    pub max_pods: Option<u32>,
    pub node_labels: Option<BTreeMap<String, String>>,
    pub register_with_taints: Option<Vec<TaintSpec>>,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<String>>,
    pub cluster_domain: Option<String>,
    pub port: Option<u16>,
    pub healthz_port: Option<u16>,
    pub address: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
    pub anonymous_auth: Option<bool>,
    pub authentication_token_webhook: Option<bool>,
    pub authorization_mode: Option<String>,
    pub healthz_bind_address: Option<String>,
    pub streaming_connection_idle_timeout: Option<String>,
    pub allowed_unsafe_sysctls: Option<Vec<String>>,
    pub kube_reserved: Option<BTreeMap<String, String>>,
    pub system_reserved: Option<BTreeMap<String, String>>,
    pub node_status_update_frequency: Option<String>,
    pub node_status_report_frequency: Option<String>,
    pub sync_frequency: Option<String>,
    pub node_lease_duration_seconds: Option<u32>,
    pub runtime_request_timeout: Option<String>,
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<usize>,
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bin_dir: Option<String>,
    pub cni_cache_dir: Option<PathBuf>,
    pub cni_socket: Option<PathBuf>,
    pub cni_routes_dir: Option<PathBuf>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    pub log_format: Option<String>,
    pub verbosity: Option<u8>,
    pub eviction_hard: Option<BTreeMap<String, String>>,
    pub eviction_soft: Option<BTreeMap<String, String>>,
    pub eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    pub eviction_minimum_reclaim: Option<BTreeMap<String, String>>,
    pub eviction_pressure_transition_period: Option<String>,
    pub eviction_max_pod_grace_period: Option<i64>,
    #[serde(skip)]
    pub merge_default_eviction_settings: Option<bool>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<i32>,
    #[serde(rename = "imageMinimumGCAge")]
    pub image_minimum_gc_age: Option<String>,
    #[serde(rename = "imageMaximumGCAge")]
    pub image_maximum_gc_age: Option<String>,
    // KubeletConfiguration only (not in the flat format):
    #[serde(skip)]
    pub static_pod_path: Option<PathBuf>,
    #[serde(skip)]
    pub file_check_frequency: Option<String>,
    #[serde(skip)]
    pub rotate_certificates: Option<bool>,
    #[serde(skip)]
    pub server_tls_bootstrap: Option<bool>,
    #[serde(skip)]
    pub cgroup_driver: Option<String>,
    #[serde(skip)]
    pub cgroup_root: Option<String>,
    #[serde(skip)]
    pub cgroups_per_qos: Option<bool>,
    #[serde(skip)]
    pub enforce_node_allocatable: Option<Vec<String>>,
    #[serde(skip)]
    pub pod_pids_limit: Option<i64>,
    #[serde(skip)]
    pub shutdown_grace_period: Option<String>,
    #[serde(skip)]
    pub shutdown_grace_period_critical_pods: Option<String>,
    /// `shutdownGracePeriodByPodPriority[]` as (priority, shutdownGracePeriodSeconds).
    #[serde(skip)]
    pub shutdown_grace_period_by_pod_priority: Option<Vec<(i32, i64)>>,
    /// `userNamespaces.idsPerPod`.
    #[serde(skip)]
    pub user_namespaces_ids_per_pod: Option<i64>,
}

impl FileConfig {
    /// Parses config text; the error is serde's one-line message with its location.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }
}
