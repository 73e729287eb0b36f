//! Prometheus metrics: kubelet's names where kubelet has the metric, so dashboards built for
//! kubelet work, plus the agent's own (CNI and per-stage pod start). One process-wide registry,
//! as kubelet has: the recorders below are cheap and never fail (a broken registry only logs).
//!
//! - [`families`]: the metric families and their registration;
//! - [`certificates`]: the node certificates' TTLs and renewal errors;
//! - [`resizes`]: the in-place resize families, with the pending and in-progress gauges;
//! - [`runtime_ops`]: the CRI call observer behind `kubelet_runtime_operations_*`;
//! - [`snapshot`]: gauges computed from the runtime at scrape time (running pods/containers).

pub mod certificates;
pub mod families;
pub mod resizes;
pub mod runtime_ops;
pub mod snapshot;

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{Encoder, Registry, TextEncoder};

use families::Families;
pub use resizes::{
    count_deferred_accepted_resize, count_infeasible_resize, count_requested_resize, forget_resize,
    observe_resize, record_resize,
};

/// The registry and its families.
pub struct Metrics {
    pub registry: Registry,
    pub families: Families,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let families = Families::new()?;
    families.register(&registry)?;
    let process = prometheus::process_collector::ProcessCollector::for_self();
    registry.register(Box::new(process))?;
    Ok(Metrics { registry, families })
}

/// The process-wide metrics, or None if they could not be built (logged once).
pub fn global() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| match build() {
            Ok(m) => Some(m),
            Err(error) => {
                tracing::error!(%error, "metrics registry could not be built; /metrics stays empty");
                None
            }
        })
        .as_ref()
}

/// Sets `kubelet_node_name{node=NAME} 1`.
pub fn set_node_name(node: &str) {
    if let Some(m) = global() {
        m.families.node_name.with_label_values(&[node]).set(1);
    }
}

fn result_label(ok: bool) -> &'static str {
    if ok { "success" } else { "error" }
}

/// One CNI plugin execution: `operation` ADD|DEL|CHECK|GC|STATUS, `plugin` its type.
pub fn observe_cni(operation: &str, plugin: &str, seconds: f64, ok: bool) {
    if let Some(m) = global() {
        m.families
            .cni_operations
            .with_label_values(&[operation, plugin, result_label(ok)])
            .observe(seconds);
    }
}

/// One CSI call (kubelet's `csi_operations_seconds`); `ok` maps to grpc_status_code OK/Unknown
/// unless the caller knows the code: use [`observe_csi_code`] then.
pub fn observe_csi(method: &str, driver: &str, seconds: f64, ok: bool) {
    observe_csi_code(method, driver, seconds, if ok { "OK" } else { "Unknown" });
}

/// One CSI call with its gRPC status code name (OK, NotFound, ...).
pub fn observe_csi_code(method: &str, driver: &str, seconds: f64, code: &str) {
    if let Some(m) = global() {
        m.families
            .csi_operations
            .with_label_values(&[driver, method, code, "false"])
            .observe(seconds);
    }
}

/// One volume set-up or tear-down (kubelet's `storage_operation_duration_seconds`):
/// `operation` mount|unmount (recorded as volume_mount / volume_unmount), `plugin` e.g.
/// kubernetes.io/secret.
pub fn observe_volume(operation: &str, plugin: &str, seconds: f64, ok: bool) {
    let name = match operation {
        "mount" => "volume_mount",
        "unmount" => "volume_unmount",
        other => other,
    };
    let status = if ok { "success" } else { "fail-unknown" };
    if let Some(m) = global() {
        m.families
            .storage_operations
            .with_label_values(&[name, plugin, status, "false"])
            .observe(seconds);
    }
}

/// One pod sync by the pod worker: `operation` create|update|sync (kubelet's labels).
pub fn observe_pod_worker(operation: &str, elapsed: Duration) {
    if let Some(m) = global() {
        m.families
            .pod_worker_duration
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }
}

/// A pod's start, from first seen to running (kubelet_pod_start_duration_seconds).
pub fn observe_pod_start(elapsed: Duration) {
    if let Some(m) = global() {
        m.families.pod_start_duration.observe(elapsed.as_secs_f64());
    }
}

/// One stage of a pod's start (admission, volumes, sandbox, image, create, start, ready).
pub fn observe_pod_start_stage(stage: &str, elapsed: Duration) {
    if let Some(m) = global() {
        m.families
            .pod_start_stage_duration
            .with_label_values(&[stage])
            .observe(elapsed.as_secs_f64());
    }
}

/// The agent's own share of a pod's first start (span: watch_to_first_cri, last_cri_to_status).
pub fn observe_pod_start_agent(span: &str, elapsed: Duration) {
    if let Some(m) = global() {
        m.families
            .pod_start_agent
            .with_label_values(&[span])
            .observe(elapsed.as_secs_f64());
    }
}

/// A pod evicted for `signal` (kubelet_evictions{eviction_signal}).
pub fn count_eviction(signal: &str) {
    if let Some(m) = global() {
        m.families.evictions.with_label_values(&[signal]).inc();
    }
}

/// The last graceful node shutdown's start and end, in seconds since the epoch (0: none).
pub fn set_graceful_shutdown(start: f64, end: f64) {
    if let Some(m) = global() {
        m.families.graceful_shutdown.start.set(start);
        m.families.graceful_shutdown.end.set(end);
    }
}

/// A pod worker died of a panic (and is restarted by its supervisor).
pub fn count_pod_worker_panic() {
    if let Some(m) = global() {
        m.families.pod_worker_panics.inc();
    }
}

/// One request served by the HTTPS API.
pub fn observe_http(method: &str, path: &str, code: u16) {
    if let Some(m) = global() {
        m.families
            .http_requests
            .with_label_values(&[method, path, "https", &code.to_string()])
            .inc();
    }
}

/// The registry in Prometheus text format 0.0.4 (what kubelet serves).
pub fn encode() -> String {
    let Some(m) = global() else {
        return String::new();
    };
    certificates::refresh();
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::warn!(%error, "encoding metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_build_and_register() {
        assert!(build().is_ok());
    }

    #[test]
    fn recorded_values_appear_with_kubelet_names() {
        set_node_name("n1");
        observe_cni("ADD", "bridge", 0.01, true);
        observe_csi("NodePublishVolume", "hostpath.csi.k8s.io", 0.02, false);
        observe_volume("mount", "kubernetes.io/secret", 0.003, true);
        observe_pod_worker("create", Duration::from_millis(5));
        observe_pod_start(Duration::from_millis(300));
        let text = encode();
        for needle in [
            "kubelet_node_name{node=\"n1\"} 1",
            "minikubelet_cni_operations_seconds_count{operation=\"ADD\",plugin=\"bridge\",result=\"success\"} 1",
            "csi_operations_seconds_count{driver_name=\"hostpath.csi.k8s.io\",grpc_status_code=\"Unknown\",method_name=\"NodePublishVolume\",migrated=\"false\"} 1",
            "storage_operation_duration_seconds_count{migrated=\"false\",operation_name=\"volume_mount\",status=\"success\",volume_plugin=\"kubernetes.io/secret\"} 1",
            "kubelet_pod_worker_duration_seconds_count{operation_type=\"create\"} 1",
            "kubelet_pod_start_duration_seconds_count 1",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
