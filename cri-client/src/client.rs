//! [`CriClient`]: connection, and the deadline/retry/observe wrapper every
//! RPC goes through.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tracing::Instrument as _;

use crate::retry::Idempotency;
use crate::transport::{eager_channel, lazy_channel, parse_endpoint};
use crate::{ClientOptions, CriError};

/// A client of one container runtime's CRI v1 `RuntimeService` and
/// `ImageService`.
///
/// Cloning is cheap: clones share one HTTP/2 connection, which multiplexes
/// concurrent calls. The RPC methods live in the `runtime` and `image`
/// modules; each takes `&self` and can be called from many tasks at once.
#[derive(Clone)]
pub struct CriClient {
    pub(crate) runtime: RuntimeServiceClient<Channel>,
    pub(crate) images: ImageServiceClient<Channel>,
    shared: Arc<Shared>,
}

struct Shared {
    socket: PathBuf,
    options: ClientOptions,
}

/// How one call is made: its name, deadline and whether it may be retried.
pub(crate) struct Call {
    op: &'static str,
    deadline: Duration,
    idempotency: Idempotency,
    send_deadline: bool,
}

impl Call {
    /// A call that may be retried on transient failures.
    pub(crate) fn idempotent(op: &'static str, deadline: Duration) -> Self {
        Self {
            op,
            deadline,
            idempotency: Idempotency::Idempotent,
            send_deadline: true,
        }
    }

    /// An idempotent call that opens a server stream: `deadline` bounds only
    /// opening it and is not sent to the runtime, which would otherwise end
    /// the stream when it passes.
    pub(crate) fn stream(op: &'static str, deadline: Duration) -> Self {
        Self {
            op,
            deadline,
            idempotency: Idempotency::Idempotent,
            send_deadline: false,
        }
    }

    /// A call made exactly once.
    pub(crate) fn once(op: &'static str, deadline: Duration) -> Self {
        Self {
            op,
            deadline,
            idempotency: Idempotency::NotIdempotent,
            send_deadline: true,
        }
    }
}

impl CriClient {
    /// Connects to the runtime at `endpoint` (`unix:///path` or an absolute
    /// path) **eagerly**: the socket is dialled before this returns, so a
    /// missing or dead runtime is reported here. Later, if the runtime drops
    /// the connection (for example on restart), the client redials on the
    /// next call and idempotent calls retry per [`ClientOptions::retry`].
    ///
    /// # Errors
    /// [`CriError::InvalidEndpoint`] for a malformed endpoint,
    /// [`CriError::Connect`] if the socket cannot be reached within
    /// [`ClientOptions::connect_timeout`].
    pub async fn connect(endpoint: &str, options: ClientOptions) -> Result<Self, CriError> {
        let socket = parse_endpoint(endpoint)?;
        let channel = eager_channel(&socket, &options).await?;
        Ok(Self::with_channel(channel, socket, options))
    }

    /// Like [`CriClient::connect`] but **lazy**: nothing is dialled until the
    /// first call, so this succeeds while the runtime is still starting.
    /// Unreachable runtimes surface as [`CriError::Unavailable`] from calls.
    ///
    /// # Errors
    /// [`CriError::InvalidEndpoint`] for a malformed endpoint, and
    /// [`CriError::NoRuntime`] when called outside a Tokio runtime (the
    /// channel spawns its connection task there).
    pub fn connect_lazy(endpoint: &str, options: ClientOptions) -> Result<Self, CriError> {
        let socket = parse_endpoint(endpoint)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(CriError::NoRuntime);
        }
        let channel = lazy_channel(&socket, &options);
        Ok(Self::with_channel(channel, socket, options))
    }

    fn with_channel(channel: Channel, socket: PathBuf, options: ClientOptions) -> Self {
        let max = options.max_message_size;
        Self {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            images: ImageServiceClient::new(channel)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
            shared: Arc::new(Shared { socket, options }),
        }
    }

    /// The unix socket this client talks to.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.shared.socket
    }

    /// The options the client was created with.
    #[must_use]
    pub fn options(&self) -> &ClientOptions {
        &self.shared.options
    }

    /// The default deadline of a call.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.shared.options.request_timeout
    }

    /// Makes one RPC: `rpc` is invoked with a clone of `client` and a fresh
    /// request per attempt. The whole call, retries and backoff included,
    /// is bounded by `call.deadline`, which is also sent to the runtime as
    /// the gRPC deadline of each attempt (except for streams).
    pub(crate) async fn invoke<C, Req, Resp, F, Fut>(
        &self,
        call: Call,
        client: &C,
        request: Req,
        rpc: F,
    ) -> Result<Resp, CriError>
    where
        C: Clone,
        Req: Clone,
        F: Fn(C, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let Call {
            op,
            deadline,
            idempotency,
            send_deadline,
        } = call;
        let span = tracing::debug_span!("cri_call", op, deadline_ms = deadline.as_millis());
        let attempts = async {
            let started = Instant::now();
            let give_up_at = started + deadline.min(LONGEST_DEADLINE);
            let policy = self.shared.options.retry;
            let mut attempt = 1;
            let result = loop {
                let remaining = give_up_at.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break Err(CriError::Timeout { op, after: deadline });
                }
                let mut grpc_request = tonic::Request::new(request.clone());
                if send_deadline {
                    grpc_request.set_timeout(remaining);
                }
                let error = match tokio::time::timeout(remaining, rpc(client.clone(), grpc_request)).await {
                    Err(_elapsed) => break Err(CriError::Timeout { op, after: deadline }),
                    Ok(Ok(response)) => break Ok(response.into_inner()),
                    Ok(Err(status)) if runtime_gave_up(&status, give_up_at) => {
                        break Err(CriError::Timeout { op, after: deadline });
                    }
                    Ok(Err(status)) => CriError::from_status(op, &status, deadline),
                };
                if !policy.allows_retry(idempotency, &error, attempt) {
                    break Err(error);
                }
                let backoff = policy.backoff(attempt);
                if give_up_at.saturating_duration_since(Instant::now()) <= backoff {
                    break Err(error);
                }
                tracing::debug!(attempt, backoff_ms = backoff.as_millis(), %error, "retrying CRI call");
                tokio::time::sleep(backoff).await;
                attempt += 1;
            };
            let elapsed = started.elapsed();
            let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
            match &result {
                Ok(_) => tracing::debug!(attempts = attempt, elapsed_ms, "CRI call succeeded"),
                Err(error) => tracing::debug!(attempts = attempt, elapsed_ms, %error, "CRI call failed"),
            }
            if let Some(observer) = &self.shared.options.observer {
                observer.observe(op, elapsed, result.as_ref().err());
            }
            result
        }
        .instrument(span);
        // Boxed: the loop holds a request and a tonic call (17-28 KB), too much for a caller's
        // stack and future.
        Box::pin(attempts).await
    }
}

/// Deadlines beyond this are treated as this (a year), so that a caller's
/// "practically forever" cannot overflow the clock.
const LONGEST_DEADLINE: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How close to the deadline a `CANCELLED` answer counts as the runtime
/// enforcing the deadline we sent (its timer and ours race by a tick).
const DEADLINE_SLACK: Duration = Duration::from_millis(20);

/// True if the runtime ended the call because the deadline sent with it
/// passed: tonic-based runtimes answer `CANCELLED` then, Go ones
/// `DEADLINE_EXCEEDED` (which [`CriError::from_status`] maps on its own).
fn runtime_gave_up(status: &tonic::Status, give_up_at: Instant) -> bool {
    status.code() == tonic::Code::Cancelled
        && give_up_at.saturating_duration_since(Instant::now()) <= DEADLINE_SLACK
}

impl fmt::Debug for CriClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CriClient")
            .field("socket", &self.shared.socket)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn client_is_send_sync_and_clone() {
        assert_send_sync_clone::<CriClient>();
    }

    #[tokio::test]
    async fn call_futures_are_send() {
        let client =
            CriClient::connect_lazy("/nonexistent/cri.sock", ClientOptions::default()).unwrap();
        assert_send(&client.version());
        assert_send(&client.list_containers(None));
        assert_send(&client.pull_image("127.0.0.1:5000/busybox:1.35", None, None));
        assert_send(&client.get_container_events());
    }

    #[test]
    fn lazy_connect_outside_a_runtime_is_an_error() {
        let err = CriClient::connect_lazy("unix:///run/cri.sock", ClientOptions::default()).err();
        assert!(matches!(err, Some(CriError::NoRuntime)), "{err:?}");
    }

    #[tokio::test]
    async fn eager_connect_to_a_missing_socket_fails_with_connect() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("missing.sock");
        let err = CriClient::connect(socket.to_str().unwrap(), ClientOptions::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CriError::Connect { .. }), "{err:?}");
        assert!(err.is_unavailable());
        assert!(err.to_string().contains("missing.sock"), "{err}");
    }
}
