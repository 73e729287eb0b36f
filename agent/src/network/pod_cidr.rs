//! Where the node's pod subnet comes from: `Node.spec.podCIDR` once the controller-manager
//! allocated it (`--allocate-node-cidrs`), else `--pod-cidr`. Published on a watch channel.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::conflist::PodCidr;

/// How often the Node is read until it has a podCIDR.
const POLL: Duration = Duration::from_secs(2);

/// The Node's podCIDR if the Node exists and has one (an agent restarting on a registered
/// node), read once with a short deadline so that start-up never waits long on it.
pub async fn read_once(client: kube::Client, node_name: &str) -> Option<PodCidr> {
    let nodes: Api<Node> = Api::all(client);
    let node = tokio::time::timeout(Duration::from_secs(5), nodes.get_opt(node_name))
        .await
        .ok()?
        .ok()??;
    let text = node.spec?.pod_cidr.filter(|t| !t.is_empty())?;
    PodCidr::parse(&text).ok()
}

/// Publishes the pod CIDR: the flag's at once (if any), the Node's as soon as it is set.
pub async fn follow(
    client: kube::Client,
    node_name: String,
    flag: Option<PodCidr>,
    tx: watch::Sender<Option<PodCidr>>,
    cancel: CancellationToken,
) {
    if flag.is_some() {
        tx.send_replace(flag);
    }
    let nodes: Api<Node> = Api::all(client);
    loop {
        match nodes.get_opt(&node_name).await {
            Ok(Some(node)) => {
                let spec = node.spec.unwrap_or_default();
                if let Some(text) = spec.pod_cidr.filter(|t| !t.is_empty()) {
                    match PodCidr::parse(&text) {
                        Ok(cidr) => {
                            info!(pod_cidr = %cidr, "pod CIDR from Node.spec.podCIDR");
                            tx.send_replace(Some(cidr));
                            return;
                        }
                        Err(e) => warn!(error = %e, "ignoring the Node's podCIDR"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot read the Node for its podCIDR"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
