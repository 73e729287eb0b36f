//! Gauges computed from the runtime when /metrics is scraped, so their values are what is
//! running right now: kubelet_running_pods and kubelet_running_containers.

use cri_client::CriClient;
use cri_client::api::{ContainerFilter, ContainerState, PodSandboxFilter, PodSandboxState};

use crate::runtime::NODE_LABEL;

fn state_label(state: i32) -> &'static str {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerRunning) => "running",
        Ok(ContainerState::ContainerExited) => "exited",
        Ok(ContainerState::ContainerCreated) => "created",
        _ => "unknown",
    }
}

/// A count as a gauge's f64 (exact: counts here stay far below 2^52).
#[allow(clippy::cast_precision_loss)]
fn gauge(n: usize) -> f64 {
    n as f64
}

/// Refreshes the gauges from the runtime, counting only this node's pods.
pub async fn refresh(cri: &CriClient, node: &str) {
    let Some(m) = super::global() else { return };
    let selector = std::collections::HashMap::from([(NODE_LABEL.to_string(), node.to_string())]);
    let sandboxes = cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await;
    if let Ok(sandboxes) = &sandboxes {
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == PodSandboxState::SandboxReady as i32)
            .count();
        m.families.running_pods.set(gauge(ready));
    }
    let Ok(sandboxes) = sandboxes else { return };
    let ids: std::collections::HashSet<String> = sandboxes.into_iter().map(|s| s.id).collect();
    let containers = cri
        .list_containers(Some(ContainerFilter::default()))
        .await
        .map(|all| {
            all.into_iter()
                .filter(|c| ids.contains(&c.pod_sandbox_id))
                .collect::<Vec<_>>()
        });
    if let Ok(containers) = containers {
        for label in ["running", "exited", "created", "unknown"] {
            let n = containers
                .iter()
                .filter(|c| state_label(c.state) == label)
                .count();
            m.families
                .running_containers
                .with_label_values(&[label])
                .set(gauge(n));
        }
    }
}
