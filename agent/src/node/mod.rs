//! The node controller: registers (or adopts) the Node, then keeps its Lease and status fresh.
//! Each job lives in its own module; this one only wires them together.

pub mod capacity;
pub mod conditions;
pub mod lease;
pub mod machine;
pub mod object;
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
use status::{Reports, StatusWriter};

/// What pods may use of this node, as admission and resizes count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAllocatable {
    /// Allocatable cpu (millicores) and memory (bytes): capacity minus the reservations and the
    /// hard eviction thresholds, as the Node reports it.
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// Capacity minus the reservations alone (kubelet's nodeAllocatableAbsolute).
    pub absolute_cpu_millis: u64,
    pub absolute_memory_bytes: u64,
    /// The machine's memory.
    pub memory_capacity_bytes: u64,
}

/// The node's allocatable cpu and memory, with and without the hard eviction thresholds.
pub fn allocatable(config: &Config, machine: &MachineInfo) -> PodAllocatable {
    let usage = machine::Usage::read(&config.root_dir);
    let hugepages = capacity::read_hugepages();
    let no_eviction = crate::config::eviction::EvictionSettings {
        thresholds: Vec::new(),
        ..config.eviction.clone()
    };
    let amounts = |eviction| {
        let r = capacity::compute(&capacity::ResourceInputs {
            machine,
            usage: &usage,
            max_pods: config.max_pods,
            kube_reserved: &config.kube_reserved,
            system_reserved: &config.system_reserved,
            eviction,
            hugepages: &hugepages,
        });
        let cpu = r
            .allocatable
            .get("cpu")
            .and_then(|q| crate::quantity::parse_millis(&q.0).ok())
            .unwrap_or(0);
        let mem = r
            .allocatable
            .get("memory")
            .and_then(|q| crate::quantity::parse_units(&q.0).ok())
            .unwrap_or(0);
        (cpu, mem)
    };
    let (cpu_millis, memory_bytes) = amounts(&config.eviction);
    let (absolute_cpu_millis, absolute_memory_bytes) = amounts(&no_eviction);
    PodAllocatable {
        cpu_millis,
        memory_bytes,
        absolute_cpu_millis,
        absolute_memory_bytes,
        memory_capacity_bytes: machine.memory_bytes,
    }
}

/// What the Node status follows besides its own readings.
pub struct Watches {
    /// The runtime's health (RuntimeReady, NetworkReady).
    pub health: watch::Receiver<RuntimeHealth>,
    /// The pressure conditions the eviction manager judged.
    pub pressure: crate::pressure::PressureWatch,
    /// Whether logind announced a shutdown.
    pub shutdown: crate::shutdown_status::ShutdownWatch,
}

/// Runs the node's lifecycle until `cancel` fires.
pub async fn run(
    client: kube::Client,
    config: Arc<Config>,
    machine: MachineInfo,
    node_ip: std::net::IpAddr,
    watches: Watches,
    reports: Reports,
    cancel: CancellationToken,
) {
    let Watches {
        health,
        pressure,
        shutdown,
    } = watches;
    let writer = StatusWriter {
        api: Api::<Node>::all(client.clone()),
        config: config.clone(),
        machine,
        node_ip,
        pressure,
        shutdown,
        heartbeat: reports.heartbeat,
        events: crate::events::Events::start(client.clone(), &config.node_name),
        ready: reports.ready,
    };
    let initial_status = status::compute(&writer, &health.borrow(), &[]);
    let desired = object::node(&status::identity(&writer), initial_status);
    info!(node = %config.node_name, %node_ip, "registering node");
    let Some(node) = register::register_or_adopt(&writer.api, &desired, &cancel).await else {
        return;
    };
    writer.events.node(
        &config.node_name,
        "Starting",
        "Starting kubelet.".to_string(),
    );
    let owner = lease::LeaseOwner {
        node_name: config.node_name.clone(),
        node_uid: node.metadata.uid.clone().unwrap_or_default(),
        duration_seconds: config.node_lease_duration_seconds,
    };
    let leases = Api::<Lease>::namespaced(client, lease::LEASE_NAMESPACE);
    let lease_task = tokio::spawn(lease::run(
        leases,
        owner,
        status::heartbeat_deadline(&config),
        cancel.clone(),
    ));
    status::run(writer, health, node.status, cancel).await;
    let _ = lease_task.await;
}
