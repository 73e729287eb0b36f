//! The accept loop: TLS handshakes in their own bounded pool with a short deadline, then each
//! connection in the pool of its kind (with or without a verified client certificate, see
//! [`super::limits`]), a header read timeout that also bounds idle keep-alive (so idle or slow
//! clients cannot hold a slot), HTTP/1.1 with upgrades for the streaming endpoints. The
//! connection's slot rides on every request ([`ConnSlot`]) so that an upgraded stream keeps
//! it after hyper lets go of the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tracing::{debug, info, warn};

use super::ServerError;
use super::identity::{Identity, PeerIdentity};
use super::limits::{Limits, Slot};
use super::stall::WriteDeadline;

/// Real clients finish a handshake in well under a second; the deadline only has to outlast
/// slow links, and a shorter one frees a stalled client's handshake slot sooner.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for a request's headers, and (hyper restarts it when a keep-alive connection
/// goes idle) the longest an idle keep-alive connection keeps its slot.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write to a client without a certificate may wait on that client (see
/// [`super::stall`]); the apiserver's connections get none, so that its streams never break
/// on a slow consumer at the far end.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection's slot, on every request: whoever takes over the connection (an upgraded
/// stream) keeps a clone so that the slot lives as long as the bytes flow.
#[derive(Debug, Clone)]
pub struct ConnSlot(pub Arc<Slot>);

/// Binds the API's address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Serves `router` over TLS on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    cancel: CancellationToken,
) {
    serve_within(listener, tls, router, cancel, Limits::new()).await;
}

async fn serve_within(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    cancel: CancellationToken,
    limits: Limits,
) {
    let acceptor = TlsAcceptor::from(tls);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "HTTPS API listening");
    }
    loop {
        let (tcp, peer) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small writes (a log line, an exec frame, a response's last bytes) go out at once, as
        // from Go's servers; Nagle would hold them for the peer's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(handshake) = limits.handshakes.admit(peer.ip()) else {
            debug!(%peer, "no handshake slot; closing a new connection");
            continue;
        };
        let conn = Connection {
            peer,
            limits: limits.clone(),
            router: router.clone(),
            cancel: cancel.clone(),
        };
        tokio::spawn(conn.run(acceptor.clone(), tcp, handshake));
    }
}

/// One accepted connection and what it needs to be served.
struct Connection {
    peer: SocketAddr,
    limits: Limits,
    router: Router,
    cancel: CancellationToken,
}

impl Connection {
    async fn run(self, acceptor: TlsAcceptor, tcp: TcpStream, handshake: Slot) {
        let Some(tls) = self.handshake(&acceptor, tcp, &handshake).await else {
            return;
        };
        drop(handshake);
        let identity = peer_identity(&tls);
        let has_cert = identity.is_some();
        let pool = self.limits.after_handshake(has_cert);
        let slot = match pool.admit(self.peer.ip()) {
            Ok(slot) => ConnSlot(Arc::new(slot)),
            Err(why) => {
                debug!(peer = %self.peer, ?why, has_cert, "connection limit; closing");
                return;
            }
        };
        let router = self.router;
        // The identity and slot go on each request: the guard authenticates with the one,
        // an upgraded stream keeps the other.
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerIdentity(identity.clone()));
            req.extensions_mut().insert(slot.clone());
            let mut router = router.clone();
            async move { router.call(req.map(axum::body::Body::new)).await }
        });
        let deadline = (!has_cert).then_some(WRITE_STALL_TIMEOUT);
        let conn = http_connection(TokioIo::new(WriteDeadline::new(tls, deadline)), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r { debug!(peer = %self.peer, error = %e, "connection ended"); },
            () = self.cancel.cancelled() => conn.as_mut().graceful_shutdown(),
        }
    }

    /// The TLS handshake, unless it misses the deadline or the handshake pool evicts it.
    async fn handshake(
        &self,
        acceptor: &TlsAcceptor,
        tcp: TcpStream,
        slot: &Slot,
    ) -> Option<TlsStream<TcpStream>> {
        let peer = self.peer;
        tokio::select! {
            () = slot.evicted() => {
                debug!(%peer, "TLS handshake evicted for a newer connection");
                None
            }
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
                Ok(Ok(s)) => Some(s),
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    None
                }
            },
        }
    }
}

/// The identity of a verified client certificate (rustls only reports certificates that
/// passed verification against --client-ca-file).
fn peer_identity(tls: &TlsStream<TcpStream>) -> Option<Identity> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Identity::from_certificate(c))
}

/// One HTTP/1.1 connection over `io`, upgrades allowed.
fn http_connection<I, S, B>(
    io: I,
    service: S,
) -> hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service)
        .with_upgrades()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::limits;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    fn ok_service() -> impl hyper::service::HttpService<Incoming, ResBody = String> {
        hyper::service::service_fn(|_req: hyper::Request<Incoming>| async {
            Ok::<_, std::convert::Infallible>(hyper::Response::new("ok".to_string()))
        })
    }

    /// Reads until the peer closes; true if it did within `limit` of virtual time.
    async fn closed_within(client: &mut tokio::io::DuplexStream, limit: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(limit, async {
            while client.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await
        .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(4096);
        let start = Instant::now();
        let conn = http_connection(TokioIo::new(server), ok_service());
        let (_, closed) = tokio::join!(conn, async {
            closed_within(&mut client, HEADER_READ_TIMEOUT + Duration::from_secs(1)).await
        });
        assert!(closed);
        assert!(start.elapsed() >= HEADER_READ_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(4096);
        let conn = http_connection(TokioIo::new(server), ok_service());
        let (_, idle) = tokio::join!(conn, async {
            // A request well into the first window, so a timer that is not restarted when
            // the connection goes idle would close it early.
            tokio::time::sleep(Duration::from_secs(20)).await;
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 256];
            let n = client.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            let idle_since = Instant::now();
            assert!(closed_within(&mut client, HEADER_READ_TIMEOUT + Duration::from_secs(1)).await);
            idle_since.elapsed()
        });
        assert!(
            idle >= HEADER_READ_TIMEOUT.saturating_sub(Duration::from_secs(1)),
            "closed after {idle:?} idle"
        );
    }

    /// A CA, a server certificate for 127.0.0.1 and a client certificate, as the apiserver's.
    struct Pki {
        server: Arc<ServerConfig>,
        ca: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
        client_cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
        client_key: Vec<u8>,
    }

    fn pki() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio_rustls::rustls::{RootCertStore, crypto, server::WebPkiClientVerifier};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-kubelet-client");
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();
        let provider = Arc::new(crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert.der().clone()], key)
            .unwrap();
        Pki {
            server: Arc::new(server),
            ca: ca_cert.der().clone(),
            client_cert: client_cert.der().clone(),
            client_key: client_key.serialize_der(),
        }
    }

    type Tls = tokio_rustls::client::TlsStream<TcpStream>;

    async fn tls_client(pki: &Pki, addr: SocketAddr, with_cert: bool) -> std::io::Result<Tls> {
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
        use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.clone()).unwrap();
        let builder =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = if with_cert {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.client_key.clone()));
            builder
                .with_client_auth_cert(vec![pki.client_cert.clone()], key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }

    /// One request on `conn`; true if it was answered 200.
    async fn get_ok(conn: &mut Tls) -> bool {
        let asked = conn
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let mut buf = [0u8; 512];
        let answered = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await;
        matches!((asked, answered), (Ok(()), Ok(Ok(n))) if buf[..n].starts_with(b"HTTP/1.1 200"))
    }

    #[tokio::test]
    async fn certificate_clients_are_served_through_a_flood_from_their_own_address() {
        let pki = pki();
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Limits::new();
        let cancel = CancellationToken::new();
        tokio::spawn(serve_within(
            listener,
            pki.server.clone(),
            router,
            cancel.clone(),
            limits.clone(),
        ));
        let mut established = tls_client(&pki, addr, true).await.unwrap();
        assert!(get_ok(&mut established).await);

        // From the same address: connections that never start a handshake, then more
        // certificate-less TLS connections than their pool holds, all kept open.
        // More than the single pool of 256 this replaced, so that one would refuse the
        // certificate client below.
        let mut stalled = Vec::new();
        for _ in 0..300 {
            stalled.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut anonymous = Vec::new();
        for _ in 0..limits::WITHOUT_CERT_PER_SOURCE + 10 {
            if let Ok(c) = tls_client(&pki, addr, false).await {
                anonymous.push(c);
            }
        }
        // The client's handshake can end before the server has taken its side's last step.
        let full = tokio::time::timeout(Duration::from_secs(10), async {
            while limits.without_cert.in_use() < limits::WITHOUT_CERT_PER_SOURCE {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(full.await.is_ok());
        assert_eq!(
            limits.without_cert.in_use(),
            limits::WITHOUT_CERT_PER_SOURCE
        );
        assert!(limits.handshakes.in_use() <= limits::HANDSHAKES_PER_SOURCE);
        let mut answered = 0;
        for c in &mut anonymous {
            answered += usize::from(get_ok(c).await);
        }
        assert_eq!(answered, limits::WITHOUT_CERT_PER_SOURCE);

        // The established stream still works, and a new certificate client gets in.
        assert!(get_ok(&mut established).await);
        let mut fresh = tls_client(&pki, addr, true).await.unwrap();
        assert!(get_ok(&mut fresh).await);
        assert_eq!(limits.with_cert.in_use(), 2);
        cancel.cancel();
    }
}
