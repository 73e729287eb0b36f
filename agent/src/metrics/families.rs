//! Every metric family the agent exports, registered once. Names follow kubelet's where kubelet
//! has the metric (so existing dashboards work); the agent's own carry `minikubelet_`.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, exponential_buckets,
};

/// kubelet's buckets for pod start durations (pkg/kubelet/metrics).
const POD_START_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// Buckets for the agent's own share of a pod start: 0.25 ms .. ~1 s.
fn share_buckets() -> Vec<f64> {
    (0..13).map(|i| 0.000_25 * f64::from(1u32 << i)).collect()
}

/// Buckets for sub-second operations: 1 ms .. ~33 s.
fn op_buckets() -> Vec<f64> {
    (0..16).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

/// The registered families.
pub struct Families {
    pub node_name: IntGaugeVec,
    pub running_pods: Gauge,
    pub running_containers: GaugeVec,
    pub pod_start_duration: Histogram,
    pub pod_start_stage_duration: HistogramVec,
    pub pod_start_agent: HistogramVec,
    pub pod_worker_duration: HistogramVec,
    pub runtime_operations: IntCounterVec,
    pub runtime_operations_duration: HistogramVec,
    pub runtime_operations_errors: IntCounterVec,
    pub cni_operations: HistogramVec,
    pub csi_operations: HistogramVec,
    pub storage_operations: HistogramVec,
    pub http_requests: IntCounterVec,
    pub pod_worker_panics: IntCounter,
    pub evictions: IntCounterVec,
    pub graceful_shutdown: GracefulShutdown,
    pub resizes: super::resizes::Resizes,
    pub certificates: super::certificates::CertificateFamilies,
}

fn histogram(
    name: &str,
    help: &str,
    buckets: Vec<f64>,
    labels: &[&str],
) -> Result<HistogramVec, prometheus::Error> {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
}

/// kubelet's eviction counter.
/// kubelet_graceful_shutdown_{start,end}_time_seconds.
pub struct GracefulShutdown {
    pub start: Gauge,
    pub end: Gauge,
}

impl GracefulShutdown {
    fn new() -> Result<GracefulShutdown, prometheus::Error> {
        Ok(GracefulShutdown {
            start: Gauge::new(
                "kubelet_graceful_shutdown_start_time_seconds",
                "Last graceful shutdown start time since unix epoch in seconds",
            )?,
            end: Gauge::new(
                "kubelet_graceful_shutdown_end_time_seconds",
                "Last graceful shutdown end time since unix epoch in seconds",
            )?,
        })
    }
}

fn evictions() -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(
        Opts::new(
            "kubelet_evictions",
            "Cumulative number of pod evictions by eviction signal",
        ),
        &["eviction_signal"],
    )
}

impl Families {
    pub fn new() -> Result<Families, prometheus::Error> {
        let f = Families {
            node_name: IntGaugeVec::new(
                Opts::new("kubelet_node_name", "The node's name. The count is always 1."),
                &["node"],
            )?,
            running_pods: Gauge::new(
                "kubelet_running_pods",
                "Number of pods that have a running pod sandbox",
            )?,
            running_containers: GaugeVec::new(
                Opts::new(
                    "kubelet_running_containers",
                    "Number of containers currently running",
                ),
                &["container_state"],
            )?,
            pod_start_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "kubelet_pod_start_duration_seconds",
                    "Duration in seconds from the agent seeing a pod for the first time to the pod starting to run",
                )
                .buckets(POD_START_BUCKETS.to_vec()),
            )?,
            pod_start_stage_duration: histogram(
                "minikubelet_pod_start_stage_duration_seconds",
                "Duration in seconds of each stage of a pod's start (admission, volumes, sandbox, image, create, start, ready)",
                op_buckets(),
                &["stage"],
            )?,
            pod_start_agent: histogram(
                "minikubelet_pod_start_agent_seconds",
                "The agent's own share of a pod's first start, by span: watch_to_first_cri (the pod seen in the watch -> its first RunPodSandbox call), last_cri_to_status (the last StartContainer reply -> the status write showing the pod Ready sent)",
                share_buckets(),
                &["span"],
            )?,
            pod_worker_duration: HistogramVec::new(
                HistogramOpts::new(
                    "kubelet_pod_worker_duration_seconds",
                    "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
                )
                .buckets(op_buckets()),
                &["operation_type"],
            )?,
            runtime_operations: IntCounterVec::new(
                Opts::new(
                    "kubelet_runtime_operations_total",
                    "Cumulative number of runtime operations by operation type.",
                ),
                &["operation_type"],
            )?,
            runtime_operations_duration: HistogramVec::new(
                HistogramOpts::new(
                    "kubelet_runtime_operations_duration_seconds",
                    "Duration in seconds of runtime operations. Broken down by operation type.",
                )
                .buckets(exponential_buckets(0.005, 2.5, 14)?),
                &["operation_type"],
            )?,
            runtime_operations_errors: IntCounterVec::new(
                Opts::new(
                    "kubelet_runtime_operations_errors_total",
                    "Cumulative number of runtime operation errors by operation type.",
                ),
                &["operation_type"],
            )?,
            cni_operations: histogram(
                "minikubelet_cni_operations_seconds",
                "Duration in seconds of CNI plugin executions, by operation (ADD, DEL, CHECK, GC), plugin type and result",
                op_buckets(),
                &["operation", "plugin", "result"],
            )?,
            csi_operations: histogram(
                "csi_operations_seconds",
                "Container Storage Interface operation duration with gRPC error code status total",
                op_buckets(),
                &["driver_name", "method_name", "grpc_status_code", "migrated"],
            )?,
            storage_operations: histogram(
                "storage_operation_duration_seconds",
                "Storage operation duration",
                op_buckets(),
                &["operation_name", "volume_plugin", "status", "migrated"],
            )?,
            http_requests: IntCounterVec::new(
                Opts::new(
                    "kubelet_http_requests_total",
                    "Number of the http requests received since the server started",
                ),
                &["method", "path", "server_type", "code"],
            )?,
            pod_worker_panics: IntCounter::with_opts(Opts::new(
                "minikubelet_pod_worker_panics_total",
                "Pod workers that died of a panic and were restarted by their supervisor",
            ))?,
            evictions: evictions()?,
            graceful_shutdown: GracefulShutdown::new()?,
            resizes: super::resizes::Resizes::new()?,
            certificates: super::certificates::CertificateFamilies::new()?,
        };
        Ok(f)
    }

    /// Registers every family in `registry`.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.node_name.clone()))?;
        registry.register(Box::new(self.running_pods.clone()))?;
        registry.register(Box::new(self.running_containers.clone()))?;
        registry.register(Box::new(self.pod_start_duration.clone()))?;
        registry.register(Box::new(self.pod_start_stage_duration.clone()))?;
        registry.register(Box::new(self.pod_start_agent.clone()))?;
        registry.register(Box::new(self.pod_worker_duration.clone()))?;
        registry.register(Box::new(self.runtime_operations.clone()))?;
        registry.register(Box::new(self.runtime_operations_duration.clone()))?;
        registry.register(Box::new(self.runtime_operations_errors.clone()))?;
        registry.register(Box::new(self.cni_operations.clone()))?;
        registry.register(Box::new(self.csi_operations.clone()))?;
        registry.register(Box::new(self.storage_operations.clone()))?;
        registry.register(Box::new(self.http_requests.clone()))?;
        registry.register(Box::new(self.pod_worker_panics.clone()))?;
        registry.register(Box::new(self.evictions.clone()))?;
        registry.register(Box::new(self.graceful_shutdown.start.clone()))?;
        registry.register(Box::new(self.graceful_shutdown.end.clone()))?;
        self.resizes.register(registry)?;
        self.certificates.register(registry)?;
        Ok(())
    }
}
