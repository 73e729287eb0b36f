//! The API client whose identity rotates in place: kube's own layers (base URI, retries on
//! 429/503/504, auth, extra headers) and timeouts over a hyper client whose TLS asks the
//! shared [`Identity`] for its client certificate at every handshake, and whose connections
//! close when that identity is replaced ([`ClosingConnector`]); TLS sessions are never resumed,
//! since a resumed session carries the certificate of its first handshake. The kube::Client built here is
//! the one every part of the agent uses, so a renewed certificate reaches all of them at once.
//! Without rotation ([`plain_client`]) the stack is the same, with the kubeconfig's own
//! certificate: every API connection the agent makes has TCP_NODELAY and the same pool.

use std::sync::Arc;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

use super::CertError;
use super::connector::ClosingConnector;
use super::identity::Identity;

/// Idle connections to the API server kept for reuse.
const IDLE_CONNECTIONS: usize = 8;

#[allow(clippy::needless_pass_by_value)] // map_err hands the error over by value
fn invalid(e: kube::Error) -> CertError {
    CertError::Client(e.to_string())
}

/// Builds the client for `config` as it is: its own client certificate, if any, for the
/// connection's life (the bootstrap client, and the agent's when rotation is off).
pub fn plain_client(config: &kube::Config) -> Result<kube::Client, CertError> {
    let tls = config.rustls_client_config().map_err(invalid)?;
    // An identity that is never replaced: its connections are never closed by rotation.
    build(config, tls, Identity::new(None))
}

/// Builds the client for `config` (whose own client certificate, if any, is ignored) with
/// `identity` as its certificate.
pub fn rotating_client(
    mut config: kube::Config,
    identity: Arc<Identity>,
) -> Result<kube::Client, CertError> {
    // The certificate comes from the identity; the kubeconfig's would be fixed for the
    // connection's life.
    config.auth_info.client_certificate = None;
    config.auth_info.client_certificate_data = None;
    config.auth_info.client_key = None;
    config.auth_info.client_key_data = None;
    let mut tls = config.rustls_client_config().map_err(invalid)?;
    tls.client_auth_cert_resolver = identity.clone();
    // No TLS session resumption (client-go keeps no session cache either): a resumed session
    // skips the client certificate and the API server keeps the one of the first handshake,
    // so a connection made after a rotation would still authenticate with the old certificate
    // and fail with 401 once it expires.
    tls.resumption = tokio_rustls::rustls::client::Resumption::disabled();
    build(&config, tls, identity)
}

/// kube's layers and timeouts over a hyper client with `tls`, on connections that close when
/// `identity` is replaced.
fn build(
    config: &kube::Config,
    tls: tokio_rustls::rustls::ClientConfig,
    identity: Arc<Identity>,
) -> Result<kube::Client, CertError> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // On a new connection the first request follows the TLS Finished at once: with Nagle's
    // algorithm it waits for the API server's delayed ACK of the Finished (40 ms on Linux),
    // which nearly doubled a pod's start. Go's dialer (client-go's) sets TCP_NODELAY too.
    tcp.set_nodelay(true);
    let closing = ClosingConnector::new(tcp, identity);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|e| CertError::Client(format!("tls-server-name {name:?}: {e}")))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_http1().wrap_connector(closing);
    let mut timed = hyper_timeout::TimeoutConnector::new(https);
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    timed.set_reset_reader_on_write(config.reset_reader_on_write);
    // HTTP/1.1 opens a connection per concurrent request: a burst of pods opens dozens, each
    // with its TLS state and buffers. Keep a few for reuse and close the rest when they fall
    // idle, so memory (here and in the API server) goes back down after the burst.
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .build(timed);

    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer().map_err(invalid)?)
        .layer(config.extra_headers_layer().map_err(invalid)?)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace.clone()).build())
}
