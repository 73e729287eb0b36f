//! [`CsiError`]: what a CSI or plugin-registration call can fail with.

use std::time::Duration;

/// An error from connecting to a plugin socket or from one call.
#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    /// The socket path is not usable (relative, too long, wrong scheme), or the client was
    /// created outside a Tokio runtime.
    #[error("invalid plugin endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        endpoint: String,
        reason: &'static str,
    },
    /// The plugin answered with a gRPC error, or could not be reached for this call.
    #[error("{method} failed: {} ({:?})", status.message(), status.code())]
    Status {
        method: &'static str,
        status: tonic::Status,
    },
    /// No answer within the call deadline.
    #[error("{method} timed out after {timeout:?}")]
    Timeout {
        method: &'static str,
        timeout: Duration,
    },
}

impl CsiError {
    /// The gRPC method name (`"NodePublishVolume"`), or `"connect"`.
    #[must_use]
    pub fn method(&self) -> &'static str {
        match self {
            Self::InvalidEndpoint { .. } => "connect",
            Self::Status { method, .. } | Self::Timeout { method, .. } => method,
        }
    }

    /// The gRPC status code, if the plugin (or the transport) produced one.
    #[must_use]
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Status { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// True if the plugin could not be reached (socket gone, plugin restarting) or timed out:
    /// the operation may succeed when retried. Final errors from the plugin return false.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Status { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Aborted
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unknown
            ),
            Self::InvalidEndpoint { .. } => false,
        }
    }
}
