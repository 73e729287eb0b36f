//! The long-lived tasks of a running agent and what they share: connected (CSI, the Node,
//! systemd following its Ready condition) or standalone (systemd hears READY=1 once the static
//! pods were started), and /healthz in both.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::Config;
use crate::healthz;
use crate::node::{self, machine::MachineInfo, status::Heartbeat};
use crate::pods::PodContext;
use crate::runtime::RuntimeHealth;

/// What the tasks of both modes share.
pub(super) struct Running {
    pub(super) config: Arc<Config>,
    pub(super) tasks: tokio::task::JoinSet<()>,
    pub(super) cancel: CancellationToken,
    pub(super) heartbeat: Heartbeat,
    pub(super) notifier: crate::systemd::Notifier,
    /// /healthz counts the node status loop stalled after this long without a cycle.
    pub(super) stall_after: Duration,
}

impl Running {
    /// With an API server: CSI drivers, the Node (registration, Lease, status) and systemd
    /// following the node's Ready condition.
    pub(super) fn start_connected(
        &mut self,
        client: &kube::Client,
        pods: &PodContext,
        machine: MachineInfo,
        node_ip: std::net::IpAddr,
        health_rx: watch::Receiver<RuntimeHealth>,
        csi: &crate::csi::Csi,
    ) {
        let (config, cancel) = (&self.config, &self.cancel);
        pods.volumes.set_external_plugin(Arc::new(csi.clone()));
        self.tasks.spawn(csi.watcher().run(cancel.clone()));
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(None);
        self.tasks.spawn(node::run(
            client.clone(),
            config.clone(),
            machine,
            node_ip,
            health_rx,
            node::status::Reports {
                heartbeat: self.heartbeat.clone(),
                ready: ready_tx,
            },
            cancel.clone(),
        ));
        self.tasks.spawn(crate::systemd::follow_node(
            self.notifier.clone(),
            config.node_name.clone(),
            ready_rx,
            self.heartbeat.clone(),
            self.stall_after,
            cancel.clone(),
        ));
    }

    /// Without one: systemd hears READY=1 once the static pods were started.
    pub(super) fn start_standalone(&mut self, static_pods_listed: watch::Receiver<bool>) {
        self.tasks.spawn(crate::systemd::follow_standalone(
            self.notifier.clone(),
            static_pods_listed,
            self.cancel.clone(),
        ));
    }

    pub(super) fn serve_healthz(&mut self, listener: Option<tokio::net::TcpListener>) {
        let Some(listener) = listener else {
            return;
        };
        let (cancel, heartbeat, stall_after) = (
            self.cancel.clone(),
            self.heartbeat.clone(),
            self.stall_after,
        );
        self.tasks.spawn(async move {
            if let Err(e) = healthz::serve(listener, heartbeat, stall_after, cancel).await {
                warn!(error = %e, "/healthz server stopped");
            }
        });
    }
}
