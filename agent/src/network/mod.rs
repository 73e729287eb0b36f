//! Pod networking owned by the agent. containerd's CRI runs CNI itself for every sandbox, so
//! its CNI config names one delegate plugin (`minikubelet-cni`, `src/bin/minikubelet-cni.rs`)
//! that forwards each request over a unix socket to this module, which runs the real chain
//! (`--cni-conf-dir`, with cni-invoker) and answers with its result (Multus' thick-plugin
//! pattern). One file per concern:
//! - [`wire`]: the request/answer format shared with the delegate;
//! - [`server`]: the unix socket;
//! - [`chain`]: the chain runner (ADD, DEL, CHECK, STATUS; per-plugin durations as metrics);
//! - [`conflist`]: the chain's config, rendered with the pod CIDR;
//! - [`pod_cidr`]: Node.spec.podCIDR, else `--pod-cidr`;
//! - [`readiness`]: NetworkReady, fed into the Node's Ready condition;
//! - [`routes`]: which agent owns which pod, for the delegate;
//! - [`gc`]: releasing the networks of sandboxes that no longer exist.

pub mod chain;
pub mod conflist;
pub mod gc;
pub mod pod_cidr;
pub mod readiness;
pub mod routes;
pub mod server;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cni_invoker::CniError;
use cri_client::CriClient;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use chain::Chain;
use conflist::PodCidr;
use routes::Routes;

/// How often GC runs after the one at start.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// The agent's network settings (`--cni-*` and `--pod-cidr` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// The chain's conf dir (not containerd's, which holds the delegate's config).
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    /// The socket the delegate forwards to.
    pub socket: PathBuf,
    /// Where route files go (shared by every agent using the same containerd).
    pub routes_dir: PathBuf,
    /// Used while Node.spec.podCIDR is empty.
    pub pod_cidr: Option<PodCidr>,
}

/// Defaults, like kubelet's where it has them.
pub mod defaults {
    pub const CONF_DIR: &str = "/etc/minikubelet/cni/net.d";
    pub const BIN_DIRS: &str = "/opt/cni/bin,/usr/lib/cni";
    pub const ROUTES_DIR: &str = "/run/minikubelet/cni/routes";
    /// Below --root-dir.
    pub const CACHE_SUBDIR: &str = "cni/cache";
    /// Below --root-dir.
    pub const SOCKET_SUBPATH: &str = "cni/minikubelet.sock";
}

/// Why a network request or check failed; one line each.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Cni(#[from] CniError),
    #[error("no pod CIDR yet: Node.spec.podCIDR is empty and --pod-cidr is not set")]
    NoPodCidr,
    #[error("bad request: {0}")]
    Request(String),
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the CNI delegate socket {path}: {source}")]
pub struct StartError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Binds the socket and starts the pod CIDR source, the server, the readiness monitor and
/// GC. Returns the chain's readiness.
pub async fn start(
    settings: &NetworkSettings,
    client: Option<kube::Client>,
    node_name: String,
    cri: CriClient,
    tasks: &mut tokio::task::JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<watch::Receiver<readiness::Readiness>, StartError> {
    let listener = server::bind(&settings.socket)
        .await
        .map_err(|source| StartError {
            path: settings.socket.clone(),
            source,
        })?;
    // A restarted agent knows its pod CIDR from the Node at once, so its first status does not
    // flip Ready off and on (which would move Ready's transition time).
    let known = match settings.pod_cidr {
        Some(c) => Some(c),
        None => match &client {
            Some(client) => pod_cidr::read_once(client.clone(), &node_name).await,
            // Standalone: no Node to read it from; only --pod-cidr gives one.
            None => None,
        },
    };
    let (cidr_tx, cidr_rx) = watch::channel(known);
    let chain = Arc::new(Chain::new(
        settings.conf_dir.clone(),
        settings.bin_dirs.clone(),
        settings.cache_dir.clone(),
        cidr_rx.clone(),
    ));
    let routes = Routes {
        dir: settings.routes_dir.clone(),
        socket: settings.socket.clone(),
        cache_dir: settings.cache_dir.clone(),
    };
    routes::install(routes.clone());
    let first = readiness::check(&chain).await;
    let (ready_tx, ready_rx) = watch::channel(first);
    if let Some(client) = client {
        tasks.spawn(pod_cidr::follow(
            client,
            node_name,
            settings.pod_cidr,
            cidr_tx,
            cancel.clone(),
        ));
    }
    tasks.spawn(server::serve(listener, chain.clone(), cancel.clone()));
    tasks.spawn(readiness::monitor(
        chain.clone(),
        cidr_rx,
        ready_tx,
        cancel.clone(),
    ));
    tasks.spawn(gc_loop(chain, cri, routes, cancel.clone()));
    info!(socket = %settings.socket.display(), conf_dir = %settings.conf_dir.display(), "serving the CNI delegate");
    Ok(ready_rx)
}

async fn gc_loop(chain: Arc<Chain>, cri: CriClient, routes: Routes, cancel: CancellationToken) {
    loop {
        match gc::collect(&chain, &cri, &routes).await {
            Ok(r) if r != gc::GcReport::default() => info!(
                released = r.released,
                failed = r.failed,
                routes_pruned = r.routes_pruned,
                "network GC"
            ),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "network GC skipped"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(GC_INTERVAL) => {}
        }
    }
}
