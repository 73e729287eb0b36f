//! /exec, /attach and /portForward: the agent asks the runtime for a streaming URL (CRI Exec,
//! Attach, PortForward) and proxies the caller's upgraded connection (SPDY or WebSocket, as
//! the caller chose) to it, byte for byte, as kubelet does when it does not redirect. The
//! runtime's streaming server speaks the remotecommand and portforward protocols itself.
//! An upgraded stream keeps its connection's slot (see [`super::limits`]) until it ends, and
//! ends once idle for --streaming-connection-idle-timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use cri_client::api::{AttachRequest, ExecRequest};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tracing::{debug, warn};

use super::conn::ConnSlot;
use super::splice::{Ended, splice};
use super::{ServerError, ServerState, lookup};

/// Connecting to the runtime's streaming server and getting its answer to the upgrade; it
/// is on loopback, so this only bounds a runtime that hangs.
const STREAMING_SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// kubelet's stream options: command (repeated), input, output, error, tty as "1"/"true".
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    tty: Option<String>,
}

fn flag(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true" | "True"))
}

/// The repeated `command` parameter, in order.
fn commands(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// Path parameters with or without the pod UID segment.
fn split_target(params: &[String]) -> Option<(&str, &str, &str)> {
    match params {
        [ns, pod, container] | [ns, pod, _, container] => Some((ns, pod, container)),
        _ => None,
    }
}

async fn running_container_id(
    state: &ServerState,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<String, ServerError> {
    let current = lookup::container_instances(&state.cri, &state.node, ns, pod, container)
        .await?
        .into_iter()
        .next()
        .filter(|c| c.state == cri_client::api::ContainerState::ContainerRunning as i32);
    current.map(|c| c.id).ok_or_else(|| {
        ServerError::BadRequest(format!(
            "container \"{container}\" in pod \"{pod}\" is not running"
        ))
    })
}

pub async fn exec(
    State(state): State<Arc<ServerState>>,
    Path(params): Path<Vec<String>>,
    Query(q): Query<StreamQuery>,
    req: Request,
) -> Response<Body> {
    let cmd = commands(req.uri().query());
    let result = async {
        let (ns, pod, container) = split_target(&params)
            .ok_or_else(|| ServerError::NotFound("unknown exec path".into()))?;
        if cmd.is_empty() {
            return Err(ServerError::BadRequest("missing command parameter".into()));
        }
        let id = running_container_id(&state, ns, pod, container).await?;
        let url = state
            .cri
            .exec(ExecRequest {
                container_id: id,
                cmd,
                tty: flag(q.tty.as_deref()),
                stdin: flag(q.input.as_deref()),
                stdout: flag(q.output.as_deref()),
                stderr: flag(q.error.as_deref()) && !flag(q.tty.as_deref()),
            })
            .await
            .map_err(ServerError::runtime)?;
        Ok(url.url)
    }
    .await;
    finish(&state, result, req).await
}

pub async fn attach(
    State(state): State<Arc<ServerState>>,
    Path(params): Path<Vec<String>>,
    Query(q): Query<StreamQuery>,
    req: Request,
) -> Response<Body> {
    let result = async {
        let (ns, pod, container) = split_target(&params)
            .ok_or_else(|| ServerError::NotFound("unknown attach path".into()))?;
        let id = running_container_id(&state, ns, pod, container).await?;
        state
            .cri
            .attach(AttachRequest {
                container_id: id,
                tty: flag(q.tty.as_deref()),
                stdin: flag(q.input.as_deref()),
                stdout: flag(q.output.as_deref()),
                stderr: flag(q.error.as_deref()) && !flag(q.tty.as_deref()),
            })
            .await
            .map(|r| r.url)
            .map_err(ServerError::runtime)
    }
    .await;
    finish(&state, result, req).await
}

pub async fn port_forward(
    State(state): State<Arc<ServerState>>,
    Path(params): Path<Vec<String>>,
    req: Request,
) -> Response<Body> {
    let result = async {
        let (ns, pod) = match params.as_slice() {
            [ns, pod] | [ns, pod, _] => (ns.as_str(), pod.as_str()),
            _ => return Err(ServerError::NotFound("unknown portForward path".into())),
        };
        let sandbox = lookup::ready_sandbox(&state.cri, &state.node, ns, pod).await?;
        state
            .cri
            .port_forward(&sandbox.id, Vec::new())
            .await
            .map(|r| r.url)
            .map_err(ServerError::runtime)
    }
    .await;
    finish(&state, result, req).await
}

async fn finish(
    state: &ServerState,
    url: Result<String, ServerError>,
    req: Request,
) -> Response<Body> {
    let idle = state.settings.streaming_connection_idle_timeout;
    match url {
        Ok(url) => match proxy(req, &url, idle).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Forwards `req` (an upgrade request) to the runtime's streaming `url` and, when the runtime
/// switches protocols, splices the two upgraded connections together.
async fn proxy(req: Request, url: &str, idle: Duration) -> Result<Response<Body>, ServerError> {
    tokio::time::timeout(STREAMING_SERVER_TIMEOUT, proxy_within(req, url, idle))
        .await
        // Not the URL: its path is the runtime's one-time stream token.
        .map_err(|_| ServerError::Runtime("the runtime's streaming server timed out".into()))?
}

async fn proxy_within(
    mut req: Request,
    url: &str,
    idle: Duration,
) -> Result<Response<Body>, ServerError> {
    let target: axum::http::Uri = url
        .parse()
        .map_err(|_| ServerError::Runtime(format!("the runtime returned a bad URL {url:?}")))?;
    let authority = target
        .authority()
        .ok_or_else(|| ServerError::Runtime(format!("the runtime returned a bad URL {url:?}")))?
        .clone();
    let host = authority.host();
    if !is_loopback(host) {
        return Err(ServerError::Runtime(format!(
            "refusing to proxy to a non-loopback streaming server {authority}"
        )));
    }
    let stream = tokio::net::TcpStream::connect(authority.as_str())
        .await
        .map_err(|e| ServerError::Runtime(format!("streaming server {authority}: {e}")))?;
    // Interactive frames both ways; see the HTTPS server's accept loop.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY on the streaming connection");
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ServerError::Runtime(format!("streaming server {authority}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            debug!(error = %e, "streaming connection ended");
        }
    });
    let client_upgrade = hyper::upgrade::on(&mut req);
    let path = target
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let mut backend_req = axum::http::Request::builder()
        .method(req.method().clone())
        .uri(path);
    for (name, value) in req.headers() {
        if name == header::HOST || name == header::AUTHORIZATION {
            continue;
        }
        backend_req = backend_req.header(name, value);
    }
    let backend_req = backend_req
        .header(header::HOST, authority.as_str())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ServerError::Runtime(e.to_string()))?;
    let mut backend_resp = sender
        .send_request(backend_req)
        .await
        .map_err(|e| ServerError::Runtime(format!("streaming server {authority}: {e}")))?;
    let status = backend_resp.status();
    let mut out = Response::builder().status(status);
    for (name, value) in backend_resp.headers() {
        out = out.header(name, value);
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let backend_upgrade = hyper::upgrade::on(&mut backend_resp);
        let slot = req.extensions().get::<ConnSlot>().cloned();
        tokio::spawn(async move {
            // The client's connection counts against its pool for as long as the stream runs.
            let _slot = slot;
            match (client_upgrade.await, backend_upgrade.await) {
                (Ok(client), Ok(backend)) => {
                    match splice(TokioIo::new(client), TokioIo::new(backend), idle).await {
                        Ok(Ended::Closed) => {}
                        Ok(Ended::Idle) => debug!(?idle, "closing an idle stream"),
                        Err(e) => debug!(error = %e, "stream proxy ended"),
                    }
                }
                (c, b) => warn!(client = ?c.err(), backend = ?b.err(), "stream upgrade failed"),
            }
        });
        return out
            .body(Body::empty())
            .map_err(|e| ServerError::Runtime(e.to_string()));
    }
    let body = backend_resp
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    if !body.is_empty() {
        out = out.header(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    out.body(Body::from(body))
        .map_err(|e| ServerError::Runtime(e.to_string()))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
fn _futures_are_send(req: Request) {
    fn send<T: Send>(_: T) {}
    send(proxy(req, "http://127.0.0.1:1/", Duration::from_secs(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_command_parameters_keep_their_order() {
        assert_eq!(
            commands(Some("command=sh&command=-c&command=echo%20hi&tty=1")),
            ["sh", "-c", "echo hi"]
        );
        assert!(commands(None).is_empty());
    }

    #[test]
    fn targets_with_and_without_uid() {
        let three = vec!["ns".to_string(), "p".to_string(), "c".to_string()];
        assert_eq!(split_target(&three), Some(("ns", "p", "c")));
        let four = vec!["ns".into(), "p".into(), "uid".into(), "c".into()];
        assert_eq!(split_target(&four), Some(("ns", "p", "c")));
        assert_eq!(split_target(&three[..2]), None);
    }

    #[test]
    fn only_loopback_streaming_servers() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
