//! HTTP(S) GET for httpGet probes and lifecycle hooks, with kubelet's client rules:
//! certificates are not verified, keep-alive is off, at most 10 KiB of a body is read,
//! redirects to the same host are followed (up to 10 requests) and a redirect to another host
//! is returned as is. Errors are worded as Go's `http.Client` words them
//! (`Get "http://10.244.0.5:8080/healthz": dial tcp ...`), since they end up in events.
//!
//! Redirect locations are resolved by the `url` crate (RFC 3986 / WHATWG joining, dot
//! segments, IPv6 literals, default ports); request targets are escaped with `percent-encoding`
//! using Go's path set. What stays hand-written is the wire form itself, [`Url`]: the host as
//! the spec gave it (kubelet does not validate it; a bad one fails at dial time) and the port
//! always written out, as kubelet's `net.JoinHostPort` URL shows it in events (`url::Url` drops
//! default ports and normalises the first request's path, which kubelet sends as given).

use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use super::tcp::{self, join_host_port};
use super::{KUBE_VERSION, ProbeOutcome, ProbeTarget, truncated_text};

/// Kubelet reads at most 10 KiB of a response body.
const MAX_BODY: usize = 10 * 1024;
/// Go's client gives up when the 10th response is still a redirect.
const MAX_REQUESTS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(scheme: &str) -> Result<Self, String> {
        match scheme.to_ascii_lowercase().as_str() {
            "" | "http" => Ok(Self::Http),
            "https" => Ok(Self::Https),
            other => Err(format!("unsupported protocol scheme {other:?}")),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

/// An absolute http(s) URL, split the way the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    scheme: Scheme,
    /// Without brackets, even for IPv6.
    host: String,
    port: u16,
    /// Origin form: starts with '/', escaped, no fragment.
    path_and_query: String,
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            join_host_port(&self.host, self.port),
            self.path_and_query
        )
    }
}

/// Why a `Location` header gives no next request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RedirectError {
    /// Not a URL reference (bad port, bad IPv6 literal, empty host...).
    Parse {
        location: String,
        error: url::ParseError,
    },
    /// Resolved, but not to http(s) or not to a host.
    Unsupported { url: String, reason: String },
}

impl RedirectError {
    /// The URL Go's error names, and the reason after it.
    fn into_parts(self) -> (String, String) {
        match self {
            Self::Parse { location, error } => (location, format!("invalid redirect: {error}")),
            Self::Unsupported { url, reason } => (url, reason),
        }
    }
}

impl Url {
    fn new(scheme: Scheme, host: &str, port: u16, path: &str) -> Self {
        let path = without_fragment(path);
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Self {
            scheme,
            host: host.to_owned(),
            port,
            path_and_query: escape(&path),
        }
    }

    fn authority(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// Resolves a `Location` header against this URL; also says whether it was absolute
    /// (named a host), which decides whether a custom Host header survives the redirect.
    fn resolve(&self, location: &str) -> Result<(Self, bool), RedirectError> {
        let location = location.trim();
        let parse_error = |error| RedirectError::Parse {
            location: location.to_owned(),
            error,
        };
        let base = url::Url::parse(&self.to_string()).map_err(parse_error)?;
        let mut next = base.join(location).map_err(parse_error)?;
        next.set_fragment(None);
        let absolute = location.starts_with("//")
            || !matches!(
                url::Url::parse(location),
                Err(url::ParseError::RelativeUrlWithoutBase)
            );
        let unsupported = |reason: String| RedirectError::Unsupported {
            url: next.to_string(),
            reason,
        };
        let scheme = Scheme::parse(next.scheme()).map_err(unsupported)?;
        let host = match next.host() {
            Some(url::Host::Domain(name)) => name.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(unsupported("http: no Host in request URL".to_owned())),
        };
        let port = next
            .port_or_known_default()
            .unwrap_or_else(|| scheme.default_port());
        let path_and_query = &next[url::Position::BeforePath..url::Position::AfterQuery];
        let resolved = Self {
            scheme,
            host,
            port,
            path_and_query: escape(path_and_query),
        };
        Ok((resolved, absolute))
    }
}

fn without_fragment(s: &str) -> &str {
    s.split('#').next().unwrap_or(s)
}

/// What Go's URL escapes in a request target: everything but the unreserved and reserved
/// characters (RFC 3986 §2.2-2.3); `%` is kept, so existing escapes stay as they are.
const REQUEST_TARGET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@')
    .remove(b'/')
    .remove(b'?')
    .remove(b'%');

/// Percent-escapes what may not appear in a request target (spaces, quotes, non-ASCII...),
/// as Go's URL does; existing escapes are kept.
fn escape(path_and_query: &str) -> String {
    percent_encoding::utf8_percent_encode(path_and_query, REQUEST_TARGET).to_string()
}

/// One GET as kubelet builds it from an `HTTPGetAction` (`NewRequestForHTTPGetAction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpGet {
    url: Url,
    /// The action's headers, less Host, plus User-Agent and Accept defaults.
    headers: Vec<(String, String)>,
    /// A Host header the action set, which replaces the URL's authority.
    host_header: Option<String>,
}

impl HttpGet {
    /// `user_agent` is "kube-probe/1.35" for probes, "kube-lifecycle/1.35" for hooks.
    pub(crate) fn for_action(
        action: &HTTPGetAction,
        target: &ProbeTarget,
        user_agent: &str,
    ) -> Result<Self, String> {
        let scheme = Scheme::parse(action.scheme.as_deref().unwrap_or_default())?;
        let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
            Some(host) => host,
            None => target.default_host()?,
        };
        let port = target.resolve_port(&action.port)?;
        let url = Url::new(
            scheme,
            host,
            port,
            action.path.as_deref().unwrap_or_default(),
        );

        let mut headers: Vec<(String, String)> = Vec::new();
        let mut host_header = None;
        for header in action.http_headers.iter().flatten() {
            if header.name.eq_ignore_ascii_case("host") {
                host_header.get_or_insert_with(|| header.value.clone());
            } else {
                headers.push((header.name.clone(), header.value.clone()));
            }
        }
        let has = |headers: &[(String, String)], name: &str| {
            headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        if !has(&headers, "user-agent") {
            headers.push(("User-Agent".to_owned(), user_agent.to_owned()));
        }
        let accept = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("accept"));
        match accept {
            None => headers.push(("Accept".to_owned(), "*/*".to_owned())),
            // An Accept header set to "" means "send none".
            Some((_, value)) if value.is_empty() => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("accept"));
            }
            Some(_) => {}
        }
        Ok(Self {
            url,
            headers,
            host_header: host_header.filter(|h| !h.is_empty()),
        })
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn is_https(&self) -> bool {
        self.url.scheme == Scheme::Https
    }

    /// The same request over plain HTTP without credentials: kubelet's retry when an HTTPS
    /// lifecycle hook got an HTTP answer.
    pub(crate) fn over_plain_http(&self) -> Self {
        let mut plain = self.clone();
        plain.url.scheme = Scheme::Http;
        plain
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        plain
    }
}

/// The final response of a GET (after same-host redirects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    pub status: u16,
    /// At most 10 KiB.
    pub body: Vec<u8>,
    /// The URL that answered.
    pub url: Url,
}

/// Why a GET got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError {
    /// As Go words it: `Get "URL": reason`.
    pub message: String,
    /// An HTTPS request reached a server that answered in plain HTTP.
    pub plain_http_on_tls: bool,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends `request`, following redirects as kubelet's client does, all within `timeout`.
pub(crate) async fn get(request: &HttpGet, timeout: Duration) -> Result<HttpResponse, HttpError> {
    let deadline = Instant::now() + timeout;
    let mut url = request.url.clone();
    let mut host_header = request.host_header.clone();
    let mut requests = 0;
    loop {
        requests += 1;
        let exchange = exchange(&url, host_header.as_deref(), &request.headers);
        let answer = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                return Err(HttpError {
                    message: format!("Get {:?}: {}", url.to_string(), failure.reason),
                    plain_http_on_tls: failure.plain_http_on_tls,
                });
            }
            Err(_elapsed) => {
                return Err(HttpError {
                    message: format!(
                        "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                        url.to_string()
                    ),
                    plain_http_on_tls: false,
                });
            }
        };
        let location = answer.location.filter(|_| is_redirect(answer.status));
        let Some(location) = location else {
            return Ok(HttpResponse {
                status: answer.status,
                body: answer.body,
                url,
            });
        };
        let (next, absolute) = url.resolve(&location).map_err(|error| {
            let (url, reason) = error.into_parts();
            HttpError {
                message: format!("Get {url:?}: {reason}"),
                plain_http_on_tls: false,
            }
        })?;
        if !next.host.eq_ignore_ascii_case(&request.url.host) {
            // A redirect to another host is not followed: the 3xx is the answer.
            return Ok(HttpResponse {
                status: answer.status,
                body: answer.body,
                url,
            });
        }
        if requests >= MAX_REQUESTS {
            return Err(HttpError {
                message: format!("Get {:?}: stopped after 10 redirects", next.to_string()),
                plain_http_on_tls: false,
            });
        }
        if absolute {
            host_header = None;
        }
        url = next;
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// One request/response on a fresh connection.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

struct ExchangeFailure {
    reason: String,
    plain_http_on_tls: bool,
}

impl From<String> for ExchangeFailure {
    fn from(reason: String) -> Self {
        Self {
            reason,
            plain_http_on_tls: false,
        }
    }
}

async fn exchange(
    url: &Url,
    host_header: Option<&str>,
    headers: &[(String, String)],
) -> Result<Answer, ExchangeFailure> {
    let request = build_request(url, host_header, headers)?;
    let stream = tcp::dial(&url.host, url.port).await?;
    match url.scheme {
        Scheme::Http => Ok(send(stream, request).await?),
        Scheme::Https => {
            let connector = TLS_CONNECTOR.as_ref().map_err(Clone::clone)?;
            let server_name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| format!("tls: invalid server name {:?}: {e}", url.host))?;
            let stream = connector
                .connect(server_name, stream)
                .await
                .map_err(|e| tls_failure(&e))?;
            Ok(send(stream, request).await?)
        }
    }
}

fn build_request(
    url: &Url,
    host_header: Option<&str>,
    headers: &[(String, String)],
) -> Result<hyper::Request<Empty<Bytes>>, String> {
    let mut builder = hyper::Request::get(url.path_and_query.as_str());
    let host = host_header.map_or_else(|| url.authority(), str::to_owned);
    let host = HeaderValue::try_from(host).map_err(|_| "net/http: invalid Host header")?;
    builder = builder.header(hyper::header::HOST, host);
    for (name, value) in headers {
        let header_name = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("net/http: invalid header field name {name:?}"))?;
        let header_value = HeaderValue::try_from(value.as_str())
            .map_err(|_| format!("net/http: invalid header field value for {name:?}"))?;
        builder = builder.header(header_name, header_value);
    }
    // Kubelet's probe transport disables keep-alive.
    builder = builder.header(hyper::header::CONNECTION, "close");
    builder
        .body(Empty::new())
        .map_err(|e| format!("net/http: invalid request: {e}"))
}

/// Aborts the connection task when the exchange ends or is dropped (timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send<S>(stream: S, request: hyper::Request<Empty<Bytes>>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| error_chain(&e))?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        // Its error, if any, is the response's error too.
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    let body = read_at_most(response.into_body(), MAX_BODY)
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(Answer {
        status,
        location,
        body,
    })
}

/// Reads up to `limit` bytes and drops the rest, as kubelet's `ReadAtMost`.
async fn read_at_most(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let take = data.len().min(limit - out.len());
            out.extend_from_slice(&data[..take]);
        }
    }
    Ok(out)
}

fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => tcp::go_error_text(io),
            None => cause.to_string(),
        };
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

fn tls_failure(error: &std::io::Error) -> ExchangeFailure {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)) => {
            ExchangeFailure {
                reason: "http: server gave HTTP response to HTTPS client".to_owned(),
                plain_http_on_tls: true,
            }
        }
        Some(e) => format!("tls: {e}").into(),
        None => tcp::go_error_text(error).into(),
    }
}

/// Kubelet probes HTTPS without verifying the server's certificate (`InsecureSkipVerify`);
/// handshake signatures are still checked.
static TLS_CONNECTOR: LazyLock<Result<TlsConnector, String>> = LazyLock::new(|| {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyServerCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
});

#[derive(Debug)]
struct AcceptAnyServerCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub(super) async fn probe(
    action: &HTTPGetAction,
    target: &ProbeTarget,
    timeout: Duration,
) -> ProbeOutcome {
    let user_agent = format!("kube-probe/{KUBE_VERSION}");
    let request = match HttpGet::for_action(action, target, &user_agent) {
        Ok(request) => request,
        Err(e) => return ProbeOutcome::Unknown(e),
    };
    match get(&request, timeout).await {
        Err(e) => ProbeOutcome::Failure(e.message),
        Ok(response) if (200..300).contains(&response.status) => ProbeOutcome::Success,
        Ok(response) if (300..400).contains(&response.status) => {
            // Kubelet's "ProbeWarning": a redirect it did not follow still counts as healthy.
            ProbeOutcome::Warning(format!(
                "Probe terminated redirects, Response body: {}",
                truncated_text(&response.body, MAX_BODY)
            ))
        }
        Ok(response) => ProbeOutcome::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            response.status
        )),
    }
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A tiny HTTP/1.1 server on 127.0.0.1 that answers every request from a routing function
    //! and records what it received.

    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw response: status line, headers, body.
    pub struct Reply {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Reply {
        pub fn status(status: u16) -> Self {
            Self {
                status,
                headers: Vec::new(),
                body: String::new(),
            }
        }

        pub fn redirect(status: u16, location: &str) -> Self {
            Self {
                status,
                headers: vec![("Location".to_owned(), location.to_owned())],
                body: String::new(),
            }
        }
    }

    pub struct TestServer {
        pub port: u16,
        /// The raw request heads received, in order.
        pub requests: Arc<Mutex<Vec<String>>>,
    }

    impl TestServer {
        pub async fn start(route: impl Fn(&str, u16) -> Reply + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            let route = Arc::new(route);
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let seen = seen.clone();
                    let route = route.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                            if !head[0].is_ascii_uppercase() {
                                // Not HTTP (a TLS hello): answer as HTTP servers do.
                                let reply =
                                    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
                                let _ = socket.write_all(reply).await;
                                return;
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        seen.lock().unwrap().push(head);
                        let reply = route(&path, port);
                        let mut out = format!("HTTP/1.1 {} Whatever\r\n", reply.status);
                        for (name, value) in &reply.headers {
                            write!(out, "{name}: {value}\r\n").unwrap();
                        }
                        write!(
                            out,
                            "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                            reply.body.len(),
                            reply.body
                        )
                        .unwrap();
                        let _ = socket.write_all(out.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            });
            Self { port, requests }
        }

        pub fn request_count(&self) -> usize {
            self.requests.lock().unwrap().len()
        }

        pub fn request(&self, i: usize) -> String {
            self.requests.lock().unwrap()[i].clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{HTTPGetAction, HTTPHeader, Probe};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use tokio::net::TcpListener;

    use super::super::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::super::{ProbeOutcome, run_once};
    use super::test_server::{Reply, TestServer};
    use super::*;

    fn action(port: u16, path: &str) -> HTTPGetAction {
        HTTPGetAction {
            port: IntOrString::Int(i32::from(port)),
            path: Some(path.to_owned()),
            ..Default::default()
        }
    }

    async fn probe_outcome(action: HTTPGetAction) -> ProbeOutcome {
        let probe = Probe {
            http_get: Some(action),
            // Well above kubelet's default of 1 s: a loaded CI machine must not turn these
            // answers into timeouts (the timeout path has a test of its own).
            timeout_seconds: Some(10),
            ..Default::default()
        };
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        run_once(&probe, &loopback_target(), &exec).await
    }

    #[tokio::test]
    async fn a_200_is_healthy_and_the_request_carries_kubelets_headers() {
        let server = TestServer::start(|_, _| Reply::status(200)).await;
        let mut action = action(server.port, "/healthz?full=1");
        action.http_headers = Some(vec![HTTPHeader {
            name: "X-Probe".into(),
            value: "yes".into(),
        }]);
        assert_eq!(probe_outcome(action).await, ProbeOutcome::Success);
        let head = server.request(0);
        assert!(
            head.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("User-Agent: kube-probe/1.35\r\n"), "{head}");
        assert!(head.contains("Accept: */*\r\n"), "{head}");
        assert!(
            head.contains(&format!("Host: 127.0.0.1:{}\r\n", server.port)),
            "{head}"
        );
        assert!(head.contains("X-Probe: yes\r\n"), "{head}");
    }

    #[tokio::test]
    async fn headers_from_the_spec_override_host_user_agent_and_accept() {
        let server = TestServer::start(|_, _| Reply::status(204)).await;
        let mut action = action(server.port, "healthz");
        action.http_headers = Some(vec![
            HTTPHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
            HTTPHeader {
                name: "user-agent".into(),
                value: "mine".into(),
            },
            HTTPHeader {
                name: "Accept".into(),
                value: String::new(),
            },
        ]);
        assert_eq!(probe_outcome(action).await, ProbeOutcome::Success);
        let head = server.request(0);
        assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Host: example.test\r\n"), "{head}");
        assert!(head.contains("User-Agent: mine\r\n"), "{head}");
        assert!(!head.contains("kube-probe"), "{head}");
        assert!(!head.contains("Accept:"), "{head}");
    }

    #[tokio::test]
    async fn a_500_fails_with_the_status_code() {
        let server = TestServer::start(|_, _| Reply::status(500)).await;
        assert_eq!(
            probe_outcome(action(server.port, "/healthz")).await,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".to_owned())
        );
    }

    #[tokio::test]
    async fn a_redirect_to_the_same_host_is_followed() {
        let server = TestServer::start(|path, _| match path {
            "/old" => Reply::redirect(302, "/new"),
            "/new" => Reply::status(503),
            _ => Reply::status(404),
        })
        .await;
        assert_eq!(
            probe_outcome(action(server.port, "/old")).await,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 503".to_owned())
        );
        assert_eq!(server.request_count(), 2);
        assert!(server.request(1).starts_with("GET /new HTTP/1.1"));
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_not_followed_and_counts_as_success_with_a_warning() {
        let server =
            TestServer::start(|_, _| Reply::redirect(302, "http://login.example.test/")).await;
        let outcome = probe_outcome(action(server.port, "/")).await;
        let ProbeOutcome::Warning(message) = outcome else {
            panic!("not a warning: {outcome:?}");
        };
        assert!(
            message.starts_with("Probe terminated redirects, Response body: "),
            "{message}"
        );
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn endless_same_host_redirects_stop_after_ten_requests() {
        let server = TestServer::start(|path, port| {
            let n: u32 = path.trim_start_matches("/r").parse().unwrap_or(0);
            Reply::redirect(301, &format!("http://127.0.0.1:{port}/r{}", n + 1))
        })
        .await;
        let outcome = probe_outcome(action(server.port, "/r0")).await;
        assert_eq!(
            outcome,
            ProbeOutcome::Failure(format!(
                "Get \"http://127.0.0.1:{}/r10\": stopped after 10 redirects",
                server.port
            ))
        );
        assert_eq!(server.request_count(), 10);
    }

    #[tokio::test]
    async fn a_closed_port_fails_as_go_words_it() {
        let closed = crate::pods::probe::testing::closed_port();
        let port = closed.port;
        assert_eq!(
            probe_outcome(action(port, "/healthz")).await,
            ProbeOutcome::Failure(format!(
                "Get \"http://127.0.0.1:{port}/healthz\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts (the kernel does) but never writes.
        let request = HttpGet::for_action(&action(port, "/slow"), &loopback_target(), "t").unwrap();
        let error = get(&request, Duration::from_millis(200)).await.unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )
        );
        drop(listener);
    }

    /// A self-signed certificate (CN=probe-test), made for this test only.
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASegAwIBAgIUazvsuT06n3XYGCWI2QQk01gRZNQwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKcHJvYmUtdGVzdDAgFw0yNjExMjIwMjA0MTFaGA8yMTI2MTAy
OTAyMDQxMVowFTETMBEGA1UEAwwKcHJvYmUtdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABJ6JzPNnqwiVzhpYVkSUITXJPYas3/k0z9T2ixKWbMuCyegEu9m0
GpxROj9S6UxCK65uM1b00o6lEEp8hZ/0N5GjUzBRMB0GA1UdDgQWBBTVbKF7dIXt
VMQMU+loom2veOXFFDAfBgNVHSMEGDAWgBTVbKF7dIXtVMQMU+loom2veOXFFDAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCH5+l//sWHgsZKuGkR
wiNBZ9XV29nz9i2XX/igHKQ8fAIhAIA0jy1Ep14te20/OfE9yyjtLP/dLV2+X1UW
CDXj5F8W
-----END CERTIFICATE-----
";
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzZrmdJN+oS5QvIZD
A7Eh+SHQ26yopewV0wIJuUruQH6hRANCAASeiczzZ6sIlc4aWFZElCE1yT2GrN/5
NM/U9osSlmzLgsnoBLvZtBqcUTo/UulMQiuubjNW9NKOpRBKfIWf9DeR
-----END PRIVATE KEY-----
";

    /// An HTTPS server on 127.0.0.1 with the self-signed certificate; answers `status`.
    async fn https_server(status: u16) -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let cert = CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    continue;
                };
                let mut buf = [0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tls.write_all(reply.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        port
    }

    #[tokio::test]
    async fn https_is_probed_without_verifying_the_certificate() {
        let port = https_server(200).await;
        let mut healthy = action(port, "/healthz");
        healthy.scheme = Some("HTTPS".into());
        assert_eq!(probe_outcome(healthy).await, ProbeOutcome::Success);

        let port = https_server(503).await;
        let mut unhealthy = action(port, "/healthz");
        unhealthy.scheme = Some("HTTPS".into());
        assert_eq!(
            probe_outcome(unhealthy).await,
            ProbeOutcome::Failure("HTTP probe failed with statuscode: 503".to_owned())
        );
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_recognised() {
        let server = TestServer::start(|_, _| Reply::status(400)).await;
        let mut action = action(server.port, "/");
        action.scheme = Some("HTTPS".into());
        let request = HttpGet::for_action(&action, &loopback_target(), "t").unwrap();
        let error = get(&request, Duration::from_secs(2)).await.unwrap_err();
        assert!(error.plain_http_on_tls, "{error}");
        assert_eq!(
            error.message,
            format!(
                "Get \"https://127.0.0.1:{}/\": http: server gave HTTP response to HTTPS client",
                server.port
            )
        );
    }

    #[test]
    fn redirect_locations_resolve_like_a_browser() {
        let base = Url::new(Scheme::Http, "10.0.0.1", 8080, "/a/b/c?x=1");
        let resolve = |loc: &str| base.resolve(loc).unwrap().0.to_string();
        assert_eq!(resolve("/d"), "http://10.0.0.1:8080/d");
        assert_eq!(resolve("d"), "http://10.0.0.1:8080/a/b/d");
        assert_eq!(resolve("../d?y=2#frag"), "http://10.0.0.1:8080/a/d?y=2");
        assert_eq!(resolve("?y=2"), "http://10.0.0.1:8080/a/b/c?y=2");
        assert_eq!(resolve("https://10.0.0.1/x"), "https://10.0.0.1:443/x");
        assert_eq!(resolve("//other:81"), "http://other:81/");
        assert_eq!(resolve("http://[::1]:9/z"), "http://[::1]:9/z");
        assert!(base.resolve("ftp://10.0.0.1/").is_err());
    }

    #[test]
    fn redirects_to_ipv6_literals_keep_their_brackets_only_in_the_authority() {
        let base = Url::new(Scheme::Http, "fd00::5", 8080, "/a/b?q=1");
        let (next, absolute) = base.resolve("c?d=2").unwrap();
        assert_eq!(next.to_string(), "http://[fd00::5]:8080/a/c?d=2");
        assert_eq!(
            (next.host.as_str(), next.port, absolute),
            ("fd00::5", 8080, false)
        );
        let (next, absolute) = base.resolve("//[FD00:0::6]/x").unwrap();
        assert_eq!(next.to_string(), "http://[fd00::6]:80/x");
        assert_eq!((next.host.as_str(), absolute), ("fd00::6", true));
        let (next, _) = base.resolve("https://[::1]/").unwrap();
        assert_eq!((next.host.as_str(), next.port), ("::1", 443));
        assert_eq!(next.authority(), "[::1]:443");
        assert!(base.resolve("http://[::1/").is_err());
    }

    #[test]
    fn only_locations_that_name_a_host_are_absolute() {
        let base = Url::new(Scheme::Http, "10.0.0.1", 8080, "/a/b");
        let absolute = |loc: &str| base.resolve(loc).unwrap().1;
        assert!(!absolute("/x"));
        assert!(!absolute("x/../y"));
        assert!(!absolute("?q"));
        assert!(absolute("//10.0.0.1:8080/x"));
        assert!(absolute("http://10.0.0.1:8080/x"));
    }

    #[test]
    fn redirect_targets_are_escaped_as_go_escapes_them() {
        let base = Url::new(Scheme::Http, "h", 80, "/");
        let resolve = |loc: &str| base.resolve(loc).unwrap().0.path_and_query;
        assert_eq!(resolve("/a b|c"), "/a%20b%7Cc");
        assert_eq!(resolve("/caf\u{e9}?x=%41"), "/caf%C3%A9?x=%41");
        assert_eq!(resolve("/a/./b/../c"), "/a/c");
    }

    #[tokio::test]
    async fn a_relative_redirect_resolves_against_the_request_path() {
        let server = TestServer::start(|path, _| match path {
            "/dir/old?x=1" => Reply::redirect(307, "new?y=2"),
            "/dir/new?y=2" => Reply::redirect(308, "../up"),
            "/up" => Reply::status(200),
            _ => Reply::status(404),
        })
        .await;
        assert_eq!(
            probe_outcome(action(server.port, "/dir/old?x=1")).await,
            ProbeOutcome::Success
        );
        assert_eq!(server.request_count(), 3);
        assert!(server.request(1).starts_with("GET /dir/new?y=2 HTTP/1.1"));
        assert!(server.request(2).starts_with("GET /up HTTP/1.1"));
    }

    #[tokio::test]
    async fn an_ipv6_host_is_dialled_bare_and_sent_bracketed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // Skipped where the machine has no IPv6 loopback.
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut heads = Vec::new();
            for reply in [
                "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                heads.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                socket.write_all(reply.as_bytes()).await.unwrap();
                let _ = socket.shutdown().await;
            }
            heads
        });
        let mut action = action(port, "/first");
        action.host = Some("::1".into());
        let request = HttpGet::for_action(&action, &loopback_target(), "t").unwrap();
        assert_eq!(
            request.url().to_string(),
            format!("http://[::1]:{port}/first")
        );
        let response = get(&request, Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            response.url.to_string(),
            format!("http://[::1]:{port}/next")
        );
        let heads = server.await.unwrap();
        assert!(
            heads[0].starts_with("GET /first HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].contains(&format!("Host: [::1]:{port}\r\n")),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].starts_with("GET /next HTTP/1.1\r\n"),
            "{}",
            heads[1]
        );
    }

    #[test]
    fn paths_are_escaped_and_rooted() {
        let url = Url::new(Scheme::Http, "::1", 80, "health check#x");
        assert_eq!(url.to_string(), "http://[::1]:80/health%20check");
    }
}
