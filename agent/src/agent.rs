//! Start-up and shutdown: check the peers once (a misconfiguration fails fast with one clear
//! line), then run the long-lived tasks until SIGTERM or SIGINT. After start-up, a peer that
//! goes away is retried, never fatal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cri_client::{ClientOptions, CriClient};
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apiserver::ApiServer;
use crate::certificates::NodeCredentials;
use crate::config::Config;
use crate::events::Events;
use crate::healthz;
use crate::node::machine::{self, MachineInfo};
use crate::node::{self, status::Heartbeat};
use crate::node_facts::NodeFacts;
use crate::pods::static_pods::{StaticPods, writer::RoutingWriter};
use crate::pods::status_writer::PodWriter;
use crate::pods::{
    self, PodContext, admission::Admission, images::Images, log_rotation::LogRotation,
};
use crate::runtime::{CriRuntime, RuntimeHealth, RuntimeInfo, health};

/// How long start-up waits for the runtime to answer before giving up.
const RUNTIME_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the runtime's health is checked (kubelet: 5 s).
const RUNTIME_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long one health check waits for the runtime: less than the interval, so checks never
/// overlap.
const RUNTIME_CHECK_TIMEOUT: Duration =
    RUNTIME_CHECK_INTERVAL.saturating_sub(Duration::from_secs(1));
/// How long tasks get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the agent could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Certificates(#[from] crate::certificates::CertError),
    #[error("cannot reach the container runtime at {endpoint}: {message}")]
    Runtime { endpoint: String, message: String },
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
}

async fn runtime(config: &Config) -> Result<(CriRuntime, String), StartError> {
    let endpoint = config.container_runtime_endpoint.clone();
    let fail = |message: String| StartError::Runtime {
        endpoint: endpoint.clone(),
        message,
    };
    let options = ClientOptions {
        request_timeout: config.runtime_request_timeout,
        observer: Some(crate::metrics::runtime_ops::observer()),
        ..ClientOptions::default()
    };
    let client = CriClient::connect_lazy(&endpoint, options).map_err(|e| fail(e.to_string()))?;
    let runtime = CriRuntime::new(client);
    match tokio::time::timeout(RUNTIME_STARTUP_TIMEOUT, runtime.version()).await {
        Ok(Ok(version)) => {
            info!(%version, %endpoint, "connected to the container runtime");
            let name = version.split("://").next().unwrap_or_default().to_string();
            Ok((runtime, name))
        }
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!(
            "no answer within {RUNTIME_STARTUP_TIMEOUT:?}"
        ))),
    }
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

/// Where pod log directories live, as kubelet has it.
const POD_LOG_ROOT: &str = "/var/log/pods";

fn pod_context(
    config: &Config,
    api: &ApiServer,
    statics: StaticPods,
    cri: CriClient,
    runtime_name: String,
    machine: &MachineInfo,
    node_ip: std::net::IpAddr,
) -> Result<PodContext, StartError> {
    let sysctls = crate::pods::sysctls::Allowlist::new(&config.allowed_unsafe_sysctls)
        .map_err(StartError::Sysctls)?;
    let apparmor = crate::pods::container::apparmor::host_enabled();
    if !apparmor {
        info!("AppArmor is not enabled on this host: pods that ask for a profile are refused");
    }
    let admission = Admission::new(sysctls, apparmor);
    let (cpu, memory, memory_capacity) = node::allocatable(config, machine);
    let facts = NodeFacts {
        node_name: config.node_name.clone(),
        host_ip: node_ip.to_string(),
        allocatable_cpu_millis: cpu,
        allocatable_memory_bytes: memory,
        memory_capacity_bytes: memory_capacity,
        max_pods: config.max_pods,
    };
    let events = match api.connected() {
        Some(client) => Events::start(client.clone(), &config.node_name),
        None => Events::log_only(),
    };
    let volumes = crate::volumes::Volumes::new(
        &config.root_dir,
        api.clone(),
        events.clone(),
        facts.clone(),
        config.sync_frequency,
    );
    let writer = RoutingWriter {
        statics,
        api: (api.connected()).map(|c| Arc::new(c.clone()) as Arc<dyn PodWriter>),
    };
    Ok(PodContext {
        events,
        volumes,
        writer: Arc::new(writer),
        env_reads: crate::pods::context::EnvReads::Api,
        api: api.clone(),
        cri: Arc::new(cri),
        runtime_name,
        node: facts,
        root_dir: config.root_dir.clone(),
        log_root: PathBuf::from(POD_LOG_ROOT),
        host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        log_rotation: LogRotation {
            max_size_bytes: config.container_log_max_size,
            max_files: config.container_log_max_files,
        },
        images: Images::default(),
        admission,
        clock: crate::runtime::WallClock::System,
    })
}

/// Creates the root dir and its `pods` dir with kubelet's mode 0750 (root and its group only:
/// pods' secrets and tokens live below), correcting the mode of dirs that already exist.
fn private_dir(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for dir in [root.to_path_buf(), root.join("pods")] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
    }
    Ok(())
}

/// Creates the private root dir and replaces `config.root_dir` with its resolved path.
fn prepare_root_dir(config: &mut Config) -> Result<(), StartError> {
    let root_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StartError::RootDir { path, source }
    };
    private_dir(&config.root_dir).map_err(root_error(&config.root_dir))?;
    // The mount table names resolved paths: a root dir given through a symlink or relatively
    // would hide its own mounts from the teardown, which then removes through them.
    config.root_dir =
        std::fs::canonicalize(&config.root_dir).map_err(root_error(&config.root_dir))?;
    Ok(())
}

/// Binds the /healthz listener, or none when its port is 0.
async fn bind_healthz(config: &Config) -> Result<Option<tokio::net::TcpListener>, StartError> {
    if config.healthz_port == 0 {
        return Ok(None);
    }
    let addr = SocketAddr::new(config.healthz_bind_address, config.healthz_port);
    let listener = healthz::bind(addr)
        .await
        .map_err(|source| StartError::Healthz { addr, source })?;
    Ok(Some(listener))
}

/// Starts the runtime health monitor and the agent's network plugin, and returns the runtime's
/// health with the network's readiness laid over it: what the node reports.
async fn spawn_runtime_health(
    runtime: CriRuntime,
    config: &Config,
    api: &ApiServer,
    tasks: &mut tokio::task::JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<watch::Receiver<RuntimeHealth>, StartError> {
    let cri = runtime.client().clone();
    let first = health::check_once(&runtime, RUNTIME_CHECK_INTERVAL).await;
    let (runtime_tx, runtime_health) = watch::channel(first);
    tasks.spawn(health::monitor(
        runtime,
        RUNTIME_CHECK_INTERVAL,
        RUNTIME_CHECK_TIMEOUT,
        runtime_tx,
    ));
    // The node sees NetworkReady from the agent's own chain (containerd only sees the delegate).
    let network_ready = crate::network::start(
        &config.network,
        api.connected().cloned(),
        config.node_name.clone(),
        cri,
        tasks,
        cancel,
    )
    .await?;
    let (merged_tx, merged) = watch::channel(crate::network::readiness::overlay(
        &runtime_health.borrow(),
        &network_ready.borrow(),
    ));
    tasks.spawn(crate::network::readiness::merge(
        runtime_health,
        network_ready,
        merged_tx,
    ));
    Ok(merged)
}

/// The API server from --kubeconfig, with the node's credentials (bootstrapped and rotated by
/// `certificates/`), or standalone mode without one.
async fn api_server(config: &Config) -> Result<(ApiServer, Option<NodeCredentials>), StartError> {
    if let Some(path) = &config.kubeconfig {
        let credentials = crate::certificates::start(config, path).await?;
        return Ok((
            ApiServer::Connected(credentials.client.clone()),
            Some(credentials),
        ));
    }
    info!(
        "no --kubeconfig: running standalone (static pods only; no Node, Lease, events or \
         mirror pods in any API server)"
    );
    Ok((ApiServer::Standalone, None))
}

/// The node's IP: --node-ip, else detected; a loopback one is accepted with a warning.
fn node_ip(config: &Config) -> std::net::IpAddr {
    let node_ip = config.node_ip.unwrap_or_else(machine::detect_node_ip);
    if node_ip.is_loopback() {
        // kubelet refuses one ("nodeIP can't be loopback address"); this agent runs, but says
        // what does not work with it.
        warn!(
            %node_ip,
            "the node IP is a loopback address: the API server refuses to proxy to it \
             (nodes/NODE/proxy, so Prometheus through the API server, answers \
             \"address not allowed\"); logs, exec and port-forward work only from this machine"
        );
    }
    node_ip
}

/// What the tasks of both modes share.
struct Agent {
    config: Arc<Config>,
    tasks: tokio::task::JoinSet<()>,
    cancel: CancellationToken,
    heartbeat: Heartbeat,
    notifier: crate::systemd::Notifier,
    /// /healthz counts the node status loop stalled after this long without a cycle.
    stall_after: Duration,
}

impl Agent {
    /// With an API server: CSI drivers, the Node (registration, Lease, status) and systemd
    /// following the node's Ready condition.
    fn start_connected(
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
    fn start_standalone(&mut self, static_pods_listed: watch::Receiver<bool>) {
        self.tasks.spawn(crate::systemd::follow_standalone(
            self.notifier.clone(),
            static_pods_listed,
            self.cancel.clone(),
        ));
    }

    fn serve_healthz(&mut self, listener: Option<tokio::net::TcpListener>) {
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

/// Runs the agent until a shutdown signal. Pods are left running on shutdown.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    let (api, mut credentials) = api_server(&config).await?;
    let (runtime, runtime_name) = runtime(&config).await?;
    prepare_root_dir(&mut config)?;
    let healthz_listener = bind_healthz(&config).await?;
    let signal = tokio::spawn(shutdown_signal());

    let config = Arc::new(config);
    let mut agent = Agent {
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
    let pods = pod_context(
        &config,
        &api,
        statics.clone(),
        cri,
        runtime_name,
        &machine,
        node_ip,
    )?;
    let (static_pods_listed, listed_rx) = watch::channel(false);
    match (api.connected(), csi) {
        (Some(client), Some(csi)) => {
            agent.start_connected(client, &pods, machine, node_ip, health_rx, &csi);
        }
        _ => agent.start_standalone(listed_rx),
    }
    let static_pods = pods::controller::StaticPodSettings {
        path: config.static_pod_path.clone(),
        file_check_frequency: config.file_check_frequency,
    };
    (agent.tasks).spawn(pods::run(
        Arc::new(pods),
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
