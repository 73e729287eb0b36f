//! NetworkReady: whether the agent's chain could serve an ADD now (a valid config, a pod CIDR
//! when the config needs one, every plugin present and answering VERSION/STATUS). The Node's
//! Ready condition follows it: containerd only sees the delegate, so its own NetworkReady is
//! replaced by this one before the node status writer reads the runtime's health.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::chain::Chain;
use crate::runtime::{RuntimeCondition, RuntimeHealth};

const CHECK_INTERVAL: Duration = Duration::from_secs(5);
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// kubelet's reason for a network that is not ready.
pub const NOT_READY_REASON: &str = "NetworkPluginNotReady";

/// The chain's readiness: `Err` holds the message.
pub type Readiness = Result<(), String>;

/// One check.
pub async fn check(chain: &Chain) -> Readiness {
    match tokio::time::timeout(CHECK_TIMEOUT, chain.status()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("Network plugin returns error: {e}")),
        Err(_) => Err(format!(
            "Network plugin returns error: status check timed out after {CHECK_TIMEOUT:?}"
        )),
    }
}

/// Checks every few seconds (and when the pod CIDR changes) and publishes changes.
pub async fn monitor(
    chain: Arc<Chain>,
    mut pod_cidr: watch::Receiver<Option<super::conflist::PodCidr>>,
    tx: watch::Sender<Readiness>,
    cancel: CancellationToken,
) {
    // The CIDR's sender goes away once the Node's podCIDR is known: stop watching it then.
    let mut cidr_open = true;
    loop {
        let now = check(&chain).await;
        tx.send_if_modified(|current| {
            if *current == now {
                return false;
            }
            match &now {
                Ok(()) => info!("pod network is ready"),
                Err(message) => warn!(%message, "pod network is not ready"),
            }
            current.clone_from(&now);
            true
        });
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
            changed = pod_cidr.changed(), if cidr_open => cidr_open = changed.is_ok(),
        }
    }
}

/// The runtime's health with its NetworkReady replaced by the chain's.
pub fn overlay(runtime: &RuntimeHealth, network: &Readiness) -> RuntimeHealth {
    match runtime {
        RuntimeHealth::Up {
            version,
            conditions,
            handlers,
        } => {
            let mut conditions: Vec<RuntimeCondition> = conditions
                .iter()
                .filter(|c| c.kind != "NetworkReady")
                .cloned()
                .collect();
            conditions.push(RuntimeCondition {
                kind: "NetworkReady".to_string(),
                status: network.is_ok(),
                reason: if network.is_ok() {
                    String::new()
                } else {
                    NOT_READY_REASON.to_string()
                },
                message: network.clone().err().unwrap_or_default(),
            });
            RuntimeHealth::Up {
                version: version.clone(),
                conditions,
                handlers: handlers.clone(),
            }
        }
        other => other.clone(),
    }
}

/// Feeds `out` with `runtime` overlaid by `network`, whenever either changes.
pub async fn merge(
    mut runtime: watch::Receiver<RuntimeHealth>,
    mut network: watch::Receiver<Readiness>,
    out: watch::Sender<RuntimeHealth>,
) {
    loop {
        let merged = overlay(&runtime.borrow_and_update(), &network.borrow_and_update());
        out.send_if_modified(|current| {
            let changed = *current != merged;
            if changed {
                *current = merged;
            }
            changed
        });
        tokio::select! {
            r = runtime.changed() => if r.is_err() { return },
            r = network.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chains_readiness_replaces_the_runtimes() {
        let up = RuntimeHealth::Up {
            version: "containerd://1.6".into(),
            handlers: Vec::new(),
            conditions: vec![
                RuntimeCondition {
                    kind: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                RuntimeCondition {
                    kind: "NetworkReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
            ],
        };
        let bad = overlay(&up, &Err("Network plugin returns error: x".into()));
        let c = bad.condition("NetworkReady").unwrap();
        assert!(!c.status);
        assert_eq!(c.reason, "NetworkPluginNotReady");
        // What the Node's Ready condition says about it: node/conditions.rs, which reads this.
        assert!(
            overlay(&up, &Ok(()))
                .condition("NetworkReady")
                .unwrap()
                .status
        );
        assert_eq!(
            overlay(&RuntimeHealth::Unknown, &Ok(())),
            RuntimeHealth::Unknown
        );
    }
}
