//! The peers start-up checks once: the container runtime (its answer within 10 s, its cgroup
//! driver, then its health every 5 s with the network's readiness laid over it), the API server
//! (with the node's credentials) or standalone mode, and the node's IP.

use std::time::Duration;

use cri_client::{ClientOptions, CriClient};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::StartError;
use crate::apiserver::ApiServer;
use crate::certificates::NodeCredentials;
use crate::cgroups::{DriverChoice, Hierarchy, PodCgroups};
use crate::config::Config;
use crate::node::machine;
use crate::runtime::{CriRuntime, RuntimeHealth, RuntimeInfo, health};

/// How long start-up waits for the runtime to answer before giving up.
const RUNTIME_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the runtime's health is checked (kubelet: 5 s).
const RUNTIME_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long one health check waits for the runtime: less than the interval, so checks never
/// overlap.
const RUNTIME_CHECK_TIMEOUT: Duration =
    RUNTIME_CHECK_INTERVAL.saturating_sub(Duration::from_secs(1));

pub(super) async fn runtime(config: &Config) -> Result<(CriRuntime, String), StartError> {
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

/// Where pods' cgroups go: the driver the runtime names through the CRI `RuntimeConfig` call
/// (kubelet asks the same at start) or, from a runtime without the call, the configured one;
/// and the host's cgroup version.
pub(super) async fn pod_cgroups(
    runtime: &CriRuntime,
    config: &Config,
) -> Result<(PodCgroups, Hierarchy), StartError> {
    let answer = match runtime.client().runtime_config().await {
        Ok(response) => response.linux.map(|l| l.cgroup_driver),
        Err(e) if e.code() == Some(tonic::Code::Unimplemented) => {
            info!(
                "CRI implementation should be updated to support RuntimeConfig. Falling back to using cgroupDriver from kubelet config."
            );
            None
        }
        Err(e) => {
            return Err(StartError::Runtime {
                endpoint: config.container_runtime_endpoint.clone(),
                message: format!("RuntimeConfig: {e}"),
            });
        }
    };
    let choice =
        crate::cgroups::choose(config.cgroups.driver, answer).map_err(|e| StartError::Runtime {
            endpoint: config.container_runtime_endpoint.clone(),
            message: e.to_string(),
        })?;
    if let DriverChoice::Runtime(d) = choice {
        info!(
            cgroup_driver = d.as_str(),
            "Using cgroup driver setting received from the CRI runtime"
        );
    }
    let layout = PodCgroups::new(&config.cgroups, choice.driver())
        .map_err(|e| StartError::Cgroups(e.to_string()))?;
    let hierarchy = Hierarchy::detect()
        .map_err(|e| StartError::Cgroups(format!("cannot stat /sys/fs/cgroup: {e}")))?;
    info!(
        cgroup_driver = choice.driver().as_str(),
        cgroup_version = hierarchy.version().as_str(),
        cgroups_per_qos = config.cgroups.per_qos,
        cgroup_root = %config.cgroups.root.to_cgroupfs(),
        "pod cgroups"
    );
    Ok((layout, hierarchy))
}

/// Starts the runtime health monitor and the agent's network plugin, and returns the runtime's
/// health with the network's readiness laid over it: what the node reports.
pub(super) async fn spawn_runtime_health(
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
pub(super) async fn api_server(
    config: &Config,
) -> Result<(ApiServer, Option<NodeCredentials>), StartError> {
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
pub(super) fn node_ip(config: &Config) -> std::net::IpAddr {
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
