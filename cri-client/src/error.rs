//! The error type of every CRI call.

use std::error::Error as _;
use std::time::Duration;

use tonic::Code;

/// An error from connecting to the runtime or from one CRI call.
///
/// Every variant names the operation that failed: the snake_case RPC name
/// (`"run_pod_sandbox"`, `"pull_image"`, ...) or `"connect"`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CriError {
    /// The endpoint is neither `unix:///absolute/path` nor an absolute path.
    #[error("connect: invalid CRI endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The first connection to the runtime's socket failed.
    #[error(
        "connect: cannot reach CRI runtime at {endpoint}: {}",
        root_cause(source)
    )]
    Connect {
        /// The socket path.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A client was created outside a Tokio runtime.
    #[error("connect: a CRI client must be created inside a Tokio runtime")]
    NoRuntime,
    /// The call did not finish within its deadline (retries included), or
    /// the runtime answered `DEADLINE_EXCEEDED`.
    #[error("CRI {op} timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The deadline the call had.
        after: Duration,
    },
    /// The runtime could not be reached or answered `UNAVAILABLE`, after any
    /// retries the call was allowed.
    #[error("CRI {op}: runtime unavailable: {message}")]
    Unavailable {
        /// The operation.
        op: &'static str,
        /// The runtime's or the transport's message.
        message: String,
    },
    /// The runtime answered `NOT_FOUND` (unknown container, sandbox or image).
    #[error("CRI {op}: not found: {message}")]
    NotFound {
        /// The operation.
        op: &'static str,
        /// The runtime's message.
        message: String,
    },
    /// Any other gRPC status.
    #[error("CRI {op} failed ({code:?}): {message}")]
    Status {
        /// The operation.
        op: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The runtime's message.
        message: String,
    },
}

impl CriError {
    /// Classifies a gRPC status returned by `op`. `deadline` is the deadline
    /// the call was sent with (reported for `DEADLINE_EXCEEDED`).
    pub(crate) fn from_status(
        op: &'static str,
        status: &tonic::Status,
        deadline: Duration,
    ) -> Self {
        let message = status_message(status);
        match status.code() {
            Code::NotFound => Self::NotFound { op, message },
            Code::Unavailable => Self::Unavailable { op, message },
            Code::DeadlineExceeded => Self::Timeout {
                op,
                after: deadline,
            },
            code => Self::Status { op, code, message },
        }
    }

    /// The operation that failed: an RPC name in snake_case, or `"connect"`.
    #[must_use]
    pub fn op(&self) -> &'static str {
        match self {
            Self::InvalidEndpoint { .. } | Self::Connect { .. } | Self::NoRuntime => "connect",
            Self::Timeout { op, .. }
            | Self::Unavailable { op, .. }
            | Self::NotFound { op, .. }
            | Self::Status { op, .. } => op,
        }
    }

    /// The gRPC code this error stands for, if it came from a call.
    #[must_use]
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::InvalidEndpoint { .. } | Self::Connect { .. } | Self::NoRuntime => None,
            Self::Timeout { .. } => Some(Code::DeadlineExceeded),
            Self::Unavailable { .. } => Some(Code::Unavailable),
            Self::NotFound { .. } => Some(Code::NotFound),
            Self::Status { code, .. } => Some(*code),
        }
    }

    /// True if the runtime said the object does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// True if the runtime could not be reached (socket missing, connection
    /// refused, runtime restarting), on connect or on a call.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Connect { .. })
    }

    /// True if the call ran out of time.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}

/// The status message, or, when the status came from a local transport
/// failure with an empty message, its deepest cause.
fn status_message(status: &tonic::Status) -> String {
    if !status.message().is_empty() {
        return status.message().to_owned();
    }
    match status.source() {
        Some(source) => root_cause(source),
        None => String::new(),
    }
}

/// The message of the innermost error in a source chain.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const DEADLINE: Duration = Duration::from_secs(3);

    #[test]
    fn codes_map_to_variants_that_name_the_op() {
        let not_found = CriError::from_status(
            "container_status",
            &tonic::Status::not_found("no such container"),
            DEADLINE,
        );
        assert!(not_found.is_not_found());
        assert_eq!(not_found.op(), "container_status");
        assert_eq!(
            not_found.to_string(),
            "CRI container_status: not found: no such container"
        );

        let unavailable =
            CriError::from_status("version", &tonic::Status::unavailable("refused"), DEADLINE);
        assert!(unavailable.is_unavailable());
        assert_eq!(unavailable.code(), Some(Code::Unavailable));

        let deadline = CriError::from_status(
            "list_containers",
            &tonic::Status::deadline_exceeded("late"),
            DEADLINE,
        );
        assert!(deadline.is_timeout());
        assert!(deadline.to_string().contains("list_containers"));

        let other = CriError::from_status(
            "run_pod_sandbox",
            &tonic::Status::internal("runc failed"),
            DEADLINE,
        );
        assert_eq!(other.code(), Some(Code::Internal));
        assert!(!other.is_not_found() && !other.is_unavailable() && !other.is_timeout());
        assert_eq!(
            other.to_string(),
            "CRI run_pod_sandbox failed (Internal): runc failed"
        );
    }
}
