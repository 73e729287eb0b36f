//! The Node status writer: every update period (and at once when the runtime's health or the
//! node's pressure changes) it computes the status, and writes it through the status
//! subresource when it changed or when the report period has passed since the last write.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::capacity::{self, ResourceInputs};
use super::conditions::{self, Observed};
use super::machine::{MachineInfo, Usage};
use super::object::{self, Identity};
use super::register::patch_params;
use crate::config::Config;
use crate::runtime::RuntimeHealth;

/// Seconds since the epoch of the writer's last completed cycle; read by /healthz.
#[derive(Clone, Default)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    fn beat(&self) {
        self.0
            .store(Timestamp::now().as_second(), Ordering::Relaxed);
    }

    /// Seconds since the last beat, None before the first.
    pub fn age(&self) -> Option<i64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Timestamp::now().as_second() - t),
        }
    }
}

/// What the writer needs, computed once at start-up.
pub struct StatusWriter {
    pub api: Api<Node>,
    pub config: Arc<Config>,
    pub machine: MachineInfo,
    pub node_ip: std::net::IpAddr,
    /// The pressure conditions the eviction manager judged.
    pub pressure: crate::pressure::PressureWatch,
    /// Whether logind announced a shutdown.
    pub shutdown: crate::shutdown_status::ShutdownWatch,
    pub heartbeat: Heartbeat,
    /// Node events (NodeReady / NodeNotReady when the Ready condition flips).
    pub events: crate::events::Events,
    /// The Ready condition as last written (None before the first write).
    pub ready: watch::Sender<Option<bool>>,
}

/// What the status writer tells the rest of the agent: that it is alive (healthz, the systemd
/// watchdog) and whether the node is Ready (systemd's READY=1).
pub struct Reports {
    pub heartbeat: Heartbeat,
    pub ready: watch::Sender<Option<bool>>,
}

/// The status the agent would report now, given the last reported conditions.
pub fn compute(w: &StatusWriter, health: &RuntimeHealth, previous: &[NodeCondition]) -> NodeStatus {
    let c = &w.config;
    let usage = Usage::read(&c.root_dir);
    let hugepages = capacity::read_hugepages();
    let resources = capacity::compute(&ResourceInputs {
        machine: &w.machine,
        usage: &usage,
        max_pods: c.max_pods,
        kube_reserved: &c.kube_reserved,
        system_reserved: &c.system_reserved,
        eviction: &c.eviction,
        hugepages: &hugepages,
    });
    let observed = Observed {
        runtime: health,
        pressure: *w.pressure.borrow(),
        shutting_down: *w.shutdown.borrow(),
    };
    let conds = conditions::build(previous, &observed, &Time(Timestamp::now()));
    let id = identity(w);
    let mut status = object::status(&id, &resources, conds, health.version().unwrap_or_default());
    status.runtime_handlers = Some(object::runtime_handlers(health.handlers()));
    status
}

/// The node's identity as the writer knows it.
pub fn identity(w: &StatusWriter) -> Identity<'_> {
    Identity {
        name: &w.config.node_name,
        node_ip: w.node_ip,
        port: w.config.port,
        labels: &w.config.node_labels,
        taints: &w.config.register_with_taints,
        machine: &w.machine,
    }
}

/// True when `new` differs from `old` in anything but heartbeat times.
fn status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| NodeStatus {
        conditions: None,
        ..s.clone()
    };
    strip(old) != strip(new)
        || conditions::changed(
            old.conditions.as_deref().unwrap_or_default(),
            new.conditions.as_deref().unwrap_or_default(),
        )
}

/// How long one heartbeat call (node status or lease) may take: kubelet's rule, the shorter of
/// the lease duration and the status update frequency.
pub fn heartbeat_deadline(config: &crate::config::Config) -> Duration {
    config
        .node_status_update_frequency
        .min(Duration::from_secs(u64::from(
            config.node_lease_duration_seconds,
        )))
}

/// Runs the writer until cancelled. `initial` is the status the API server holds (from
/// registration), so transition times carry over an agent restart.
pub async fn run(
    mut w: StatusWriter,
    mut health: watch::Receiver<RuntimeHealth>,
    initial: Option<NodeStatus>,
    cancel: CancellationToken,
) {
    let name = w.config.node_name.clone();
    let mut reported: Option<(NodeStatus, Instant)> = None;
    let mut previous_conditions: Vec<NodeCondition> =
        initial.and_then(|s| s.conditions).unwrap_or_default();
    let mut ticker = tokio::time::interval(w.config.node_status_update_frequency);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
            changed = health.changed() => {
                if changed.is_err() { return; }
                debug!(node = %name, "runtime health changed");
            }
            // A pressure condition is written when it is judged, not at the next tick.
            Ok(()) = w.pressure.changed() => {
                let now = *w.pressure.borrow_and_update();
                debug!(node = %name, pressure = ?now, "node pressure changed");
            }
            // kubelet syncs the Node status as soon as a shutdown is announced.
            Ok(()) = w.shutdown.changed() => {
                let now = *w.shutdown.borrow_and_update();
                debug!(node = %name, shutting_down = now, "node shutdown state changed");
            }
        }
        let current = health.borrow_and_update().clone();
        let status = compute(&w, &current, &previous_conditions);
        let due = match &reported {
            None => true,
            Some((old, at)) => {
                status_changed(old, &status)
                    || at.elapsed() >= w.config.node_status_report_frequency
            }
        };
        if due {
            let patch = Patch::Strategic(json!({ "status": status }));
            let params = patch_params();
            let write = w.api.patch_status(&name, &params, &patch);
            let written = tokio::time::timeout(heartbeat_deadline(&w.config), write)
                .await
                .unwrap_or_else(|_| {
                    Err(kube::Error::Service(
                        "no answer within the heartbeat deadline".into(),
                    ))
                });
            match written {
                Ok(_) => {
                    if let Some(ready) = status
                        .conditions
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .find(|c| c.type_ == "Ready")
                    {
                        let flipped = reported.as_ref().is_none_or(|(old, _)| {
                            old.conditions
                                .as_deref()
                                .unwrap_or_default()
                                .iter()
                                .find(|c| c.type_ == "Ready")
                                .map(|c| &c.status)
                                != Some(&ready.status)
                        });
                        if flipped {
                            info!(node = %name, ready = %ready.status, message = ?ready.message, "node status written");
                        }
                        let is_ready = Some(ready.status == "True");
                        w.ready
                            .send_if_modified(|r| std::mem::replace(r, is_ready) != is_ready);
                        let before = previous_conditions
                            .iter()
                            .find(|c| c.type_ == "Ready")
                            .map(|c| c.status.as_str());
                        if before != Some(ready.status.as_str()) {
                            let reason = if ready.status == "True" {
                                "NodeReady"
                            } else {
                                "NodeNotReady"
                            };
                            w.events.node(
                                &name,
                                reason,
                                format!("Node {name} status is now: {reason}"),
                            );
                        }
                    }
                    previous_conditions = status.conditions.clone().unwrap_or_default();
                    reported = Some((status, Instant::now()));
                }
                Err(e) => {
                    warn!(node = %name, error = %e, "failed to write node status");
                }
            }
        }
        w.heartbeat.beat();
    }
}
