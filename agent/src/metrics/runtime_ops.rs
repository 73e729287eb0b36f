//! `kubelet_runtime_operations_*` from the CRI client's per-call observer.

use std::sync::Arc;
use std::time::Duration;

use cri_client::{CallObserver, CriError};

/// kubelet's operation_type for a cri-client op name: the same snake_case words, except that
/// kubelet writes "podsandbox" as one word (run_podsandbox, list_podsandbox, ...).
pub fn operation_type(op: &str) -> String {
    op.replace("pod_sandbox", "podsandbox")
}

/// Records one finished CRI call.
pub fn record(op: &str, elapsed: Duration, failed: bool) {
    let Some(m) = super::global() else { return };
    let kind = operation_type(op);
    let labels = [kind.as_str()];
    m.families
        .runtime_operations
        .with_label_values(&labels)
        .inc();
    m.families
        .runtime_operations_duration
        .with_label_values(&labels)
        .observe(elapsed.as_secs_f64());
    if failed {
        m.families
            .runtime_operations_errors
            .with_label_values(&labels)
            .inc();
    }
}

/// The observer to put in the CRI client's options.
pub fn observer() -> Arc<dyn CallObserver> {
    Arc::new(
        |op: &'static str, elapsed: Duration, error: Option<&CriError>| {
            record(op, elapsed, error.is_some());
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kubelet() {
        assert_eq!(operation_type("run_pod_sandbox"), "run_podsandbox");
        assert_eq!(
            operation_type("list_pod_sandbox_stats"),
            "list_podsandbox_stats"
        );
        assert_eq!(operation_type("create_container"), "create_container");
        assert_eq!(operation_type("exec_sync"), "exec_sync");
    }

    #[test]
    fn errors_are_counted_separately() {
        record("stop_container", Duration::from_millis(3), true);
        record("stop_container", Duration::from_millis(3), false);
        let text = super::super::encode();
        assert!(
            text.contains("kubelet_runtime_operations_total{operation_type=\"stop_container\"} 2")
        );
        assert!(text.contains(
            "kubelet_runtime_operations_errors_total{operation_type=\"stop_container\"} 1"
        ));
    }
}
