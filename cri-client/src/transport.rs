//! The unix socket transport: endpoint parsing and the tonic channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

use crate::{ClientOptions, CriError};

/// Longest socket path a `sockaddr_un` holds on Linux (108 bytes with the
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Parses a CRI endpoint: `unix:///absolute/path`, `unix:/absolute/path`, or
/// a bare absolute path. Other schemes (`tcp://`, `npipe://`) are rejected.
///
/// # Errors
/// [`CriError::InvalidEndpoint`] naming the reason.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, CriError> {
    let invalid = |reason| CriError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("unix:") {
        rest
    } else if endpoint.contains("://") {
        return Err(invalid("only unix sockets are supported"));
    } else {
        endpoint
    };
    if path.is_empty() {
        return Err(invalid("no socket path"));
    }
    if !path.starts_with('/') {
        return Err(invalid("socket path must be absolute (unix:///path)"));
    }
    if path.contains('\0') {
        return Err(invalid("socket path contains a NUL byte"));
    }
    if path.len() > MAX_SOCKET_PATH {
        return Err(invalid("socket path longer than 107 bytes"));
    }
    Ok(PathBuf::from(path))
}

/// The tonic endpoint settings; the URI is a placeholder (the connector
/// ignores it) that gives requests the `:authority` gRPC-go uses for unix
/// sockets.
fn endpoint(options: &ClientOptions) -> Endpoint {
    Endpoint::from_static("http://localhost").connect_timeout(options.connect_timeout)
}

/// A channel that dials `path` on first use and redials after the runtime
/// drops the connection.
pub(crate) fn lazy_channel(path: &Path, options: &ClientOptions) -> Channel {
    endpoint(options).connect_with_connector_lazy(unix_connector(path))
}

/// A channel whose first connection is made now.
pub(crate) async fn eager_channel(
    path: &Path,
    options: &ClientOptions,
) -> Result<Channel, CriError> {
    endpoint(options)
        .connect_with_connector(unix_connector(path))
        .await
        .map_err(|source| CriError::Connect {
            endpoint: path.display().to_string(),
            source,
        })
}

/// A tower service that opens a new `UnixStream` to `path` for every
/// connection the channel makes.
fn unix_connector(
    path: &Path,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<UnixStream>,
    Error = std::io::Error,
    Future = impl Future<Output = std::io::Result<TokioIo<UnixStream>>> + Send,
> + Send
+ 'static {
    let path: Arc<Path> = Arc::from(path);
    service_fn(move |_: Uri| {
        let path = Arc::clone(&path);
        async move { UnixStream::connect(&*path).await.map(TokioIo::new) }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn reason(endpoint: &str) -> &'static str {
        match parse_endpoint(endpoint) {
            Err(CriError::InvalidEndpoint { reason, .. }) => reason,
            other => panic!("{endpoint:?} should be an invalid endpoint, got {other:?}"),
        }
    }

    #[test]
    fn accepts_unix_urls_and_absolute_paths() {
        for (input, want) in [
            (
                "unix:///run/containerd/containerd.sock",
                "/run/containerd/containerd.sock",
            ),
            ("unix:/run/crio/crio.sock", "/run/crio/crio.sock"),
            ("/var/run/cri.sock", "/var/run/cri.sock"),
        ] {
            assert_eq!(
                parse_endpoint(input).ok(),
                Some(PathBuf::from(want)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_other_schemes_relative_and_malformed_paths() {
        assert_eq!(
            reason("tcp://127.0.0.1:1234"),
            "only unix sockets are supported"
        );
        assert_eq!(
            reason("npipe:////./pipe/containerd"),
            "only unix sockets are supported"
        );
        assert_eq!(reason(""), "no socket path");
        assert_eq!(reason("unix://"), "no socket path");
        assert_eq!(
            reason("run/containerd.sock"),
            "socket path must be absolute (unix:///path)"
        );
        assert_eq!(
            reason("unix://host/containerd.sock"),
            "socket path must be absolute (unix:///path)"
        );
        assert_eq!(reason("/run/a\0b"), "socket path contains a NUL byte");
        let long = format!("/{}", "x".repeat(MAX_SOCKET_PATH));
        assert_eq!(reason(&long), "socket path longer than 107 bytes");
    }

    #[test]
    fn errors_name_the_endpoint_and_the_connect_op() {
        let err = parse_endpoint("tcp://x:1").err();
        assert_eq!(err.as_ref().map(CriError::op), Some("connect"));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("tcp://x:1"), "{text}");
    }
}
