//! Start-up and shutdown: check the peers once (a misconfiguration fails fast with one clear
//! line), then run the long-lived tasks until SIGTERM or SIGINT. After start-up, a peer that
//! goes away is retried, never fatal.

mod peers;
mod setup;
mod tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::node::{machine::MachineInfo, status::Heartbeat};
use crate::pods::{self, static_pods::StaticPods};
use peers::{api_server, node_ip, pod_cgroups, runtime, spawn_runtime_health};
use setup::{RuntimeSide, bind_healthz, pod_context, prepare_root_dir};
use tasks::Running;

/// How long tasks get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Certificates(#[from] crate::certificates::CertError),
    #[error("cannot reach the container runtime at {endpoint}: {message}")]
    Runtime { endpoint: String, message: String },
    #[error("pod cgroups: {0}")]
    Cgroups(String),
    #[error("cannot create root dir {path}: {source}")]
    RootDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for /healthz: {source}")]
    Healthz {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("HTTPS API: {0}")]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    Network(#[from] crate::network::StartError),
    #[error("invalid --allowed-unsafe-sysctls: {0}")]
    Sysctls(String),
    #[error("user namespaces: {0}")]
    UserNamespaces(#[from] crate::userns::UsernsError),
}

async fn shutdown_signal() -> Result<&'static str, StartError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// Runs the agent until a shutdown signal. Pods are left running on shutdown.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    let (api, mut credentials) = api_server(&config).await?;
    let (runtime, runtime_name) = runtime(&config).await?;
    let (cgroups, cgroup_hierarchy) = pod_cgroups(&runtime, &config).await?;
    prepare_root_dir(&mut config)?;
    let healthz_listener = bind_healthz(&config).await?;
    let signal = tokio::spawn(shutdown_signal());

    let config = Arc::new(config);
    let mut agent = Running {
        stall_after: config.node_status_update_frequency * 3 + Duration::from_secs(30),
        config: config.clone(),
        tasks: tokio::task::JoinSet::new(),
        cancel: CancellationToken::new(),
        heartbeat: Heartbeat::default(),
        notifier: crate::systemd::Notifier::from_env(),
    };
    let cancel = agent.cancel.clone();
    let cri = runtime.client().clone();
    let health_rx = spawn_runtime_health(runtime, &config, &api, &mut agent.tasks, &cancel).await?;
    let machine = MachineInfo::read();
    let node_ip = node_ip(&config);
    let statics = StaticPods::default();
    // CSI: drivers announced in ROOT/plugins_registry serve kubernetes.io/csi volumes.
    let csi = (api.connected())
        .map(|c| crate::csi::Csi::new(&config.root_dir, &config.node_name, c.clone()));
    let serving = (credentials.as_mut()).and_then(|c| c.serving(&config, node_ip));
    let api_task = crate::server::start(
        &config,
        cri.clone(),
        api.clone(),
        statics.clone(),
        csi.clone(),
        crate::server::ServingIdentity {
            node_ip,
            resolver: serving,
        },
        cancel.clone(),
    )
    .await?;
    if let Some(credentials) = credentials {
        credentials.spawn(&mut agent.tasks, &cancel);
    }
    let (pressure_tx, pressure) = watch::channel(crate::pressure::Pressure::default());
    let (shutdown_tx, shutdown) = watch::channel(false);
    let watches = crate::node::Watches {
        health: health_rx,
        pressure,
        shutdown,
    };
    let pods = pod_context(
        &config,
        &api,
        statics.clone(),
        RuntimeSide {
            cri: cri.clone(),
            name: runtime_name,
            cgroups,
            cgroup_hierarchy,
        },
        &machine,
        node_ip,
        &watches,
    )
    .await?;
    let pods = Arc::new(pods);
    let workers = pods::worker::Workers::new(pods.clone(), cancel.clone());
    agent.start_eviction(&pods, workers.clone(), cri, &machine, pressure_tx);
    agent.start_shutdown_manager(&pods, workers.clone(), shutdown_tx);
    let (static_pods_listed, listed_rx) = watch::channel(false);
    match (api.connected(), csi) {
        (Some(client), Some(csi)) => {
            agent.start_connected(client, &pods, machine, node_ip, watches, &csi);
        }
        _ => agent.start_standalone(listed_rx),
    }
    let static_pods = pods::controller::StaticPodSettings {
        path: config.static_pod_path.clone(),
        file_check_frequency: config.file_check_frequency,
    };
    (agent.tasks).spawn(pods::run(
        pods,
        workers,
        statics,
        static_pods,
        static_pods_listed,
        cancel.clone(),
    ));
    agent.tasks.spawn(api_task);
    agent.serve_healthz(healthz_listener);
    info!(node = %config.node_name, "minikubelet started");

    let which = signal.await.unwrap_or(Ok("task failure"))?;
    info!(signal = which, "shutting down; pods keep running");
    (agent.notifier).stopping(&format!("Stopping ({which}); pods keep running"));
    cancel.cancel();
    join_within(&mut agent.tasks, SHUTDOWN_GRACE).await;
    Ok(())
}

/// Waits for every task to finish, aborting those still running after `grace`.
async fn join_within(tasks: &mut tokio::task::JoinSet<()>, grace: Duration) {
    let joined =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if joined.is_err() {
        warn!("some tasks did not stop within {grace:?}; aborting them");
        tasks.abort_all();
    }
}
