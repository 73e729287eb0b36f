//! The node controller: registers (or adopts) the Node, then keeps its Lease and status fresh.
//! Each job lives in its own module; this one only wires them together.

pub mod capacity;
pub mod conditions;
pub mod lease;
pub mod machine;
pub mod object;
pub mod pressure;
pub mod register;
pub mod status;

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::runtime::RuntimeHealth;
use machine::MachineInfo;
use pressure::Thresholds;
use status::{Heartbeat, StatusWriter};

/// Runs the node's lifecycle until `cancel` fires.
pub async fn run(
    client: kube::Client,
    config: Arc<Config>,
    health: watch::Receiver<RuntimeHealth>,
    heartbeat: Heartbeat,
    cancel: CancellationToken,
) {
    let machine = MachineInfo::read();
    let node_ip = config.node_ip.unwrap_or_else(machine::detect_node_ip);
    let writer = StatusWriter {
        api: Api::<Node>::all(client.clone()),
        config: config.clone(),
        machine,
        node_ip,
        thresholds: Thresholds::default(),
        heartbeat,
    };
    let initial_status = status::compute(&writer, &health.borrow(), &[]);
    let desired = object::node(&status::identity(&writer), initial_status);
    info!(node = %config.node_name, %node_ip, "registering node");
    let Some(node) = register::register_or_adopt(&writer.api, &desired, &cancel).await else {
        return;
    };
    let owner = lease::LeaseOwner {
        node_name: config.node_name.clone(),
        node_uid: node.metadata.uid.clone().unwrap_or_default(),
        duration_seconds: config.node_lease_duration_seconds,
    };
    let leases = Api::<Lease>::namespaced(client, lease::LEASE_NAMESPACE);
    let lease_task = tokio::spawn(lease::run(leases, owner, cancel.clone()));
    status::run(writer, health, node.status, cancel).await;
    let _ = lease_task.await;
}
