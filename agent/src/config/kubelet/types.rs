//! The `kubelet.config.k8s.io/v1beta1` `KubeletConfiguration` type of Kubernetes v1.35 (the
//! project's pinned release), field for field, as serde structs. Every field is optional here:
//! kubelet treats a zero value as unset and defaults it, and so does [`super::convert`].
//!
//! Durations stay strings (Go's `metav1.Duration` only decodes from one) and are parsed where
//! they are used, so an error names the field's path. Fields whose Go type takes either a number
//! or a string (`logging.flushFrequency`, quantities) are kept as YAML values for the same reason.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value;

/// The group/version a KubeletConfiguration must declare.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// The kind a KubeletConfiguration must declare.
pub const KIND: &str = "KubeletConfiguration";

type Map = BTreeMap<String, String>;

/// `KubeletConfiguration` (k8s.io/kubelet/config/v1beta1, v1.35).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub enable_server: Option<bool>,
    pub static_pod_path: Option<String>,
    pub pod_logs_dir: Option<String>,
    pub sync_frequency: Option<String>,
    pub file_check_frequency: Option<String>,
    pub http_check_frequency: Option<String>,
    #[serde(rename = "staticPodURL")]
    pub static_pod_url: Option<String>,
    #[serde(rename = "staticPodURLHeader")]
    pub static_pod_url_header: Option<BTreeMap<String, Vec<String>>>,
    pub address: Option<String>,
    pub port: Option<i32>,
    pub read_only_port: Option<i32>,
    pub tls_cert_file: Option<String>,
    pub tls_private_key_file: Option<String>,
    pub tls_cipher_suites: Option<Vec<String>>,
    pub tls_min_version: Option<String>,
    pub rotate_certificates: Option<bool>,
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: Option<bool>,
    pub authentication: Option<Authentication>,
    pub authorization: Option<Authorization>,
    #[serde(rename = "registryPullQPS")]
    pub registry_pull_qps: Option<i32>,
    pub registry_burst: Option<i32>,
    pub image_pull_credentials_verification_policy: Option<String>,
    pub preloaded_images_verification_allowlist: Option<Vec<String>>,
    #[serde(rename = "eventRecordQPS")]
    pub event_record_qps: Option<i32>,
    pub event_burst: Option<i32>,
    pub enable_debugging_handlers: Option<bool>,
    pub enable_contention_profiling: Option<bool>,
    pub healthz_port: Option<i32>,
    pub healthz_bind_address: Option<String>,
    pub oom_score_adj: Option<i32>,
    pub cluster_domain: Option<String>,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Option<Vec<String>>,
    pub streaming_connection_idle_timeout: Option<String>,
    pub node_status_update_frequency: Option<String>,
    pub node_status_report_frequency: Option<String>,
    pub node_lease_duration_seconds: Option<i32>,
    #[serde(rename = "imageMinimumGCAge")]
    pub image_minimum_gc_age: Option<String>,
    #[serde(rename = "imageMaximumGCAge")]
    pub image_maximum_gc_age: Option<String>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: Option<i32>,
    pub volume_stats_agg_period: Option<String>,
    pub kubelet_cgroups: Option<String>,
    pub system_cgroups: Option<String>,
    pub cgroup_root: Option<String>,
    #[serde(rename = "cgroupsPerQOS")]
    pub cgroups_per_qos: Option<bool>,
    pub cgroup_driver: Option<String>,
    pub cpu_manager_policy: Option<String>,
    #[serde(rename = "singleProcessOOMKill")]
    pub single_process_oom_kill: Option<bool>,
    pub cpu_manager_policy_options: Option<Map>,
    pub cpu_manager_reconcile_period: Option<String>,
    pub memory_manager_policy: Option<String>,
    pub topology_manager_policy: Option<String>,
    pub topology_manager_scope: Option<String>,
    pub topology_manager_policy_options: Option<Map>,
    pub qos_reserved: Option<Map>,
    pub runtime_request_timeout: Option<String>,
    pub hairpin_mode: Option<String>,
    pub max_pods: Option<i32>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    pub pod_pids_limit: Option<i64>,
    pub resolv_conf: Option<String>,
    pub run_once: Option<bool>,
    #[serde(rename = "cpuCFSQuota")]
    pub cpu_cfs_quota: Option<bool>,
    #[serde(rename = "cpuCFSQuotaPeriod")]
    pub cpu_cfs_quota_period: Option<String>,
    pub node_status_max_images: Option<i32>,
    pub max_open_files: Option<i64>,
    pub content_type: Option<String>,
    #[serde(rename = "kubeAPIQPS")]
    pub kube_api_qps: Option<i32>,
    #[serde(rename = "kubeAPIBurst")]
    pub kube_api_burst: Option<i32>,
    pub serialize_image_pulls: Option<bool>,
    pub max_parallel_image_pulls: Option<i32>,
    pub eviction_hard: Option<Map>,
    pub eviction_soft: Option<Map>,
    pub eviction_soft_grace_period: Option<Map>,
    pub eviction_pressure_transition_period: Option<String>,
    pub eviction_max_pod_grace_period: Option<i32>,
    pub eviction_minimum_reclaim: Option<Map>,
    pub merge_default_eviction_settings: Option<bool>,
    pub pods_per_core: Option<i32>,
    pub enable_controller_attach_detach: Option<bool>,
    pub protect_kernel_defaults: Option<bool>,
    #[serde(rename = "makeIPTablesUtilChains")]
    pub make_iptables_util_chains: Option<bool>,
    pub iptables_masquerade_bit: Option<i32>,
    pub iptables_drop_bit: Option<i32>,
    pub feature_gates: Option<BTreeMap<String, bool>>,
    pub fail_swap_on: Option<bool>,
    pub memory_swap: Option<MemorySwap>,
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<i32>,
    pub container_log_max_workers: Option<i32>,
    pub container_log_monitor_interval: Option<String>,
    pub config_map_and_secret_change_detection_strategy: Option<String>,
    pub system_reserved: Option<Map>,
    pub kube_reserved: Option<Map>,
    #[serde(rename = "reservedSystemCPUs")]
    pub reserved_system_cpus: Option<String>,
    pub show_hidden_metrics_for_version: Option<String>,
    pub system_reserved_cgroup: Option<String>,
    pub kube_reserved_cgroup: Option<String>,
    pub enforce_node_allocatable: Option<Vec<String>>,
    pub allowed_unsafe_sysctls: Option<Vec<String>>,
    pub volume_plugin_dir: Option<String>,
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    pub kernel_memcg_notification: Option<bool>,
    pub logging: Option<Logging>,
    pub enable_system_log_handler: Option<bool>,
    pub enable_system_log_query: Option<bool>,
    pub shutdown_grace_period: Option<String>,
    pub shutdown_grace_period_critical_pods: Option<String>,
    pub shutdown_grace_period_by_pod_priority: Option<Vec<ShutdownGracePeriodByPodPriority>>,
    pub crash_loop_back_off: Option<CrashLoopBackOff>,
    pub reserved_memory: Option<Vec<MemoryReservation>>,
    pub enable_profiling_handler: Option<bool>,
    pub enable_debug_flags_handler: Option<bool>,
    pub seccomp_default: Option<bool>,
    pub memory_throttling_factor: Option<f64>,
    pub register_with_taints: Option<Vec<Taint>>,
    pub register_node: Option<bool>,
    pub tracing: Option<Tracing>,
    pub local_storage_capacity_isolation: Option<bool>,
    pub container_runtime_endpoint: Option<String>,
    pub image_service_endpoint: Option<String>,
    #[serde(rename = "failCgroupV1")]
    pub fail_cgroup_v1: Option<bool>,
    pub user_namespaces: Option<UserNamespaces>,
}

/// `authentication`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Authentication {
    pub x509: Option<X509Authentication>,
    pub webhook: Option<WebhookAuthentication>,
    pub anonymous: Option<AnonymousAuthentication>,
}

/// `authentication.x509`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<String>,
}

/// `authentication.webhook`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct WebhookAuthentication {
    pub enabled: Option<bool>,
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: Option<String>,
}

/// `authentication.anonymous`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AnonymousAuthentication {
    pub enabled: Option<bool>,
}

/// `authorization`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Authorization {
    pub mode: Option<String>,
    pub webhook: Option<WebhookAuthorization>,
}

/// `authorization.webhook`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct WebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: Option<String>,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: Option<String>,
}

/// `logging` (k8s.io/component-base/logs/api/v1 LoggingConfiguration).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    pub format: Option<String>,
    /// A duration string or an integer of nanoseconds.
    pub flush_frequency: Option<Value>,
    pub verbosity: Option<u32>,
    pub vmodule: Option<Vec<VModuleItem>>,
    pub options: Option<LoggingOptions>,
}

/// `logging.vmodule[]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VModuleItem {
    pub file_pattern: Option<String>,
    pub verbosity: Option<u32>,
}

/// `logging.options`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LoggingOptions {
    pub text: Option<OutputRouting>,
    pub json: Option<OutputRouting>,
}

/// `logging.options.text` / `logging.options.json`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRouting {
    pub split_stream: Option<bool>,
    /// A quantity: a string or a number.
    pub info_buffer_size: Option<Value>,
}

/// `memorySwap`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySwap {
    pub swap_behavior: Option<String>,
}

/// `crashLoopBackOff`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrashLoopBackOff {
    pub max_container_restart_period: Option<String>,
}

/// `shutdownGracePeriodByPodPriority[]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownGracePeriodByPodPriority {
    pub priority: Option<i32>,
    pub shutdown_grace_period_seconds: Option<i64>,
}

/// `reservedMemory[]`: limits are quantities (strings or numbers).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryReservation {
    pub numa_node: Option<i32>,
    pub limits: Option<BTreeMap<String, Value>>,
}

/// `registerWithTaints[]` (core/v1 Taint).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: Option<String>,
    pub value: Option<String>,
    pub effect: Option<String>,
    pub time_added: Option<Value>,
}

/// `tracing` (k8s.io/component-base/tracing/api/v1 TracingConfiguration).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tracing {
    pub endpoint: Option<String>,
    pub sampling_rate_per_million: Option<i32>,
}

/// `userNamespaces`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct UserNamespaces {
    #[serde(rename = "idsPerPod")]
    pub ids_per_pod: Option<i64>,
}
