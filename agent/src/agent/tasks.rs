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
        watches: node::Watches,
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
            watches,
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

    /// The eviction manager (both modes): it judges the node's pressure for the Node status
    /// and admission, and evicts through the pod workers; and the image garbage collector.
    pub(super) fn start_eviction(
        &mut self,
        pods: &PodContext,
        workers: crate::pods::worker::Workers,
        cri: cri_client::CriClient,
        machine: &MachineInfo,
        pressure: watch::Sender<crate::pressure::Pressure>,
    ) {
        let c = &self.config;
        let reserved = c
            .kube_reserved
            .memory_bytes
            .saturating_add(c.system_reserved.memory_bytes);
        self.tasks.spawn(crate::eviction::image_gc::run(
            crate::eviction::image_gc::ImageGc {
                cri: cri.clone(),
                policy: c.image_gc,
                events: pods.events.clone(),
                node_name: c.node_name.clone(),
                records: crate::eviction::image_gc::ImageRecords::default(),
            },
            self.cancel.clone(),
        ));
        let host = crate::eviction::LiveHost {
            cri,
            root_dir: c.root_dir.clone(),
            log_root: pods.log_root.clone(),
            memory_capacity: machine.memory_bytes,
            allocatable_memory: machine.memory_bytes.saturating_sub(reserved),
            cgroups: pods.cgroups.clone(),
            cgroup_fs: pods.cgroup_fs.clone(),
        };
        let manager = crate::eviction::Manager::new(
            c.eviction.clone(),
            host,
            workers,
            pods.events.clone(),
            c.node_name.clone(),
            pressure,
        );
        self.tasks
            .spawn(crate::eviction::run(manager, self.cancel.clone()));
    }

    /// The node shutdown manager (both modes), when shutdown grace periods are configured: it
    /// holds logind's delay inhibitor and ends the pods through their workers on shutdown.
    pub(super) fn start_shutdown_manager(
        &mut self,
        pods: &PodContext,
        workers: crate::pods::worker::Workers,
        shutting_down: watch::Sender<bool>,
    ) {
        let c = &self.config;
        if !c.shutdown.enabled() {
            tracing::info!("No graceful configuration specified, node shutdown will be immediate");
            return;
        }
        let manager = crate::shutdown::Manager {
            settings: c.shutdown.clone(),
            connector: crate::shutdown::SystemBus::default(),
            pods: workers,
            events: pods.events.clone(),
            node_name: c.node_name.clone(),
            shutting_down,
            state_file: crate::shutdown::record::StateFile::under(&c.root_dir),
        };
        self.tasks
            .spawn(crate::shutdown::run(manager, self.cancel.clone()));
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
