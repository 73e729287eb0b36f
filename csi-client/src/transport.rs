//! Unix socket channels and the one generic unary call every method goes through.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

use crate::CsiError;

/// Longest socket path a `sockaddr_un` holds on Linux.
const MAX_SOCKET_PATH: usize = 107;

/// Parses `unix:///abs/path`, `unix:/abs/path` or a bare absolute path, the forms kubelet
/// accepts for a CSI endpoint.
///
/// # Errors
/// [`CsiError::InvalidEndpoint`] naming the reason.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, CsiError> {
    let invalid = |reason| CsiError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if path.contains("://") {
        return Err(invalid("only unix sockets are supported"));
    }
    if !path.starts_with('/') {
        return Err(invalid("socket path must be absolute"));
    }
    if path.contains('\0') {
        return Err(invalid("socket path contains a NUL byte"));
    }
    if path.len() > MAX_SOCKET_PATH {
        return Err(invalid("socket path longer than 107 bytes"));
    }
    Ok(PathBuf::from(path))
}

/// A channel that dials `path` on first use and redials after the plugin restarts.
///
/// # Errors
/// [`CsiError::InvalidEndpoint`] outside a Tokio runtime.
pub(crate) fn lazy_channel(path: &Path, connect_timeout: Duration) -> Result<Channel, CsiError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(CsiError::InvalidEndpoint {
            endpoint: path.display().to_string(),
            reason: "a plugin client must be created inside a Tokio runtime",
        });
    }
    let socket: Arc<Path> = Arc::from(path);
    let connector = service_fn(move |_: Uri| {
        let socket = Arc::clone(&socket);
        async move { UnixStream::connect(&*socket).await.map(TokioIo::new) }
    });
    Ok(Endpoint::from_static("http://localhost")
        .connect_timeout(connect_timeout)
        .connect_with_connector_lazy(connector))
}

/// One unary call `/SERVICE/METHOD` with a deadline.
pub(crate) async fn unary<Req, Resp>(
    channel: &Channel,
    service: &'static str,
    method: &'static str,
    request: Req,
    timeout: Duration,
) -> Result<Resp, CsiError>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let call = async {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.map_err(|e| CsiError::Status {
            method,
            status: tonic::Status::unavailable(format!("plugin not reachable: {e}")),
        })?;
        let path = PathAndQuery::try_from(format!("/{service}/{method}")).map_err(|_| {
            CsiError::InvalidEndpoint {
                endpoint: format!("/{service}/{method}"),
                reason: "not a valid gRPC method path",
            }
        })?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(tonic::Request::new(request), path, codec)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| CsiError::Status { method, status })
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(CsiError::Timeout { method, timeout }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_like_kubelet() {
        for (input, want) in [
            (
                "unix:///var/lib/kubelet/plugins/d/csi.sock",
                "/var/lib/kubelet/plugins/d/csi.sock",
            ),
            ("unix:/run/csi.sock", "/run/csi.sock"),
            ("/run/csi.sock", "/run/csi.sock"),
        ] {
            assert_eq!(
                parse_endpoint(input).ok(),
                Some(PathBuf::from(want)),
                "{input}"
            );
        }
        for bad in ["tcp://127.0.0.1:10000", "csi.sock", "", "/a\0b"] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
        assert!(parse_endpoint(&format!("/{}", "x".repeat(200))).is_err());
    }

    #[test]
    fn a_channel_needs_a_runtime() {
        assert!(lazy_channel(Path::new("/run/x.sock"), Duration::from_secs(1)).is_err());
    }
}
