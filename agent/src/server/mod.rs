//! The kubelet-compatible HTTPS API on --port: /healthz, /pods, /metrics, /containerLogs,
//! /exec, /attach, /portForward (and /stats, /metrics/resource). Every request is
//! authenticated (client certificate or bearer token) and authorised (SubjectAccessReview on
//! nodes/proxy, nodes/log, nodes/stats or nodes/metrics), as kubelet does.
//!
//! - [`tls`]: serving certificate and client-CA verification;
//! - [`auth`]: authentication, authorisation and their caches ([`cache`], [`tokens`]); the
//!   caller's [`identity`];
//! - [`conn`]: the accept loop with timeouts; [`limits`]: the connection pools; [`stall`]:
//!   the write deadline for clients without a certificate;
//! - [`routes`]: the router and the small endpoints;
//! - [`logs`] / [`log_view`] / [`cri_log`] / [`tail`]: container logs; [`stream`]: exec, attach,
//!   port-forward proxying, with [`splice`] closing idle streams;
//! - [`lookup`]: a pod's sandbox and containers in the runtime.

pub mod auth;
pub mod cache;
pub mod conn;
pub mod cri_log;
pub mod identity;
pub mod limits;
pub mod log_view;
pub mod logs;
pub mod lookup;
pub mod routes;
pub mod splice;
pub mod stall;
pub mod stats;
pub mod stream;
pub mod tail;
pub mod tls;
pub mod tokens;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cri_client::CriClient;
use thiserror::Error;

use crate::apiserver::ApiServer;
use crate::config::server::ServerConfig;
use crate::pods::static_pods::StaticPods;

/// A request that could not be served, with the status it maps to.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Runtime(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// kubelet's refusal of webhook authentication or authorisation without an API server.
    #[error("no client provided, cannot use webhook {0} (standalone mode: no --kubeconfig)")]
    NoClient(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl ServerError {
    // By value: the shape `map_err` takes.
    #[allow(clippy::needless_pass_by_value)]
    pub fn runtime(e: cri_client::CriError) -> ServerError {
        if e.is_not_found() {
            ServerError::NotFound(e.to_string())
        } else {
            ServerError::Runtime(e.to_string())
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}

/// What the handlers share.
pub struct ServerState {
    pub cri: CriClient,
    pub api: ApiServer,
    /// The static pods, which /pods lists in standalone mode.
    pub statics: StaticPods,
    pub node: String,
    pub settings: ServerConfig,
    pub auth: auth::Auth,
    /// Where pod volumes live, and the CSI drivers to ask for their usage.
    pub root_dir: std::path::PathBuf,
    pub csi: Option<crate::csi::Csi>,
}

impl ServerState {
    pub fn new(cri: CriClient, api: ApiServer, node: &str, settings: ServerConfig) -> Self {
        ServerState {
            auth: auth::Auth::new(api.clone(), node),
            cri,
            api,
            statics: StaticPods::default(),
            node: node.to_string(),
            settings,
            root_dir: std::path::PathBuf::new(),
            csi: None,
        }
    }
}

/// Shared state handle.
pub type Shared = Arc<ServerState>;

/// Who the HTTPS API says it is: the node IP its self-signed pair names and, with
/// serverTLSBootstrap, the resolver of the certificate the cluster issued.
pub struct ServingIdentity {
    pub node_ip: std::net::IpAddr,
    pub resolver: Option<Arc<dyn tokio_rustls::rustls::server::ResolvesServerCert>>,
}

/// Binds the API and returns the task that serves it until `cancel`. Bind and certificate
/// problems fail start-up with one clear line.
pub async fn start(
    config: &crate::config::Config,
    cri: CriClient,
    api: ApiServer,
    statics: StaticPods,
    csi: Option<crate::csi::Csi>,
    identity: ServingIdentity,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<impl std::future::Future<Output = ()> + Send + 'static, ServerError> {
    let settings = config.server.clone();
    if matches!(api, ApiServer::Standalone) {
        // kubelet's BuildAuth: webhooks need the API server.
        if settings.authentication_token_webhook {
            return Err(ServerError::NoClient("authentication"));
        }
        if settings.authorization_mode == crate::config::server::AuthorizationMode::Webhook {
            return Err(ServerError::NoClient("authorization"));
        }
    }
    let addr = std::net::SocketAddr::new(settings.address, config.port);
    let tls = {
        // Reads (and may write) certificate files: off the runtime's threads.
        let (settings, cert_dir) = (settings.clone(), config.certificates.cert_dir.clone());
        let node = config.node_name.clone();
        tokio::task::spawn_blocking(move || {
            let ServingIdentity { node_ip, resolver } = identity;
            tls::server_config(&settings, &cert_dir, &node, &node_ip.to_string(), resolver)
        })
        .await
        .map_err(|e| ServerError::Tls(e.to_string()))??
    };
    let listener = conn::bind(addr).await?;
    let mut state = ServerState::new(cri, api, &config.node_name, settings);
    state.statics = statics;
    state.root_dir.clone_from(&config.root_dir);
    state.csi = csi;
    let state = Arc::new(state);
    let router = routes::router(state);
    crate::metrics::set_node_name(&config.node_name);
    Ok(conn::serve(listener, tls, router, cancel))
}
