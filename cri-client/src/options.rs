//! Settings of a [`crate::CriClient`] and the per-call observer hook.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{CriError, RetryPolicy};

/// Receives one notification per finished CRI call, retries included, for
/// example to feed `runtime_operations_*` metrics.
///
/// Called on the task that made the call, after it finished: keep it cheap.
pub trait CallObserver: Send + Sync {
    /// `op` is the snake_case RPC name, `elapsed` the call's wall time
    /// including retries, `error` the final error if the call failed.
    fn observe(&self, op: &'static str, elapsed: Duration, error: Option<&CriError>);
}

impl<F> CallObserver for F
where
    F: Fn(&'static str, Duration, Option<&CriError>) + Send + Sync,
{
    fn observe(&self, op: &'static str, elapsed: Duration, error: Option<&CriError>) {
        self(op, elapsed, error);
    }
}

/// Timeouts, retries and limits of a [`crate::CriClient`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Limit on establishing the unix socket connection (each attempt).
    pub connect_timeout: Duration,
    /// Deadline of a call, retries included; like kubelet's
    /// `--runtime-request-timeout` (default 2 minutes).
    pub request_timeout: Duration,
    /// Deadline of `pull_image`, which may transfer large layers.
    pub image_pull_timeout: Duration,
    /// Added to the caller's timeout for `exec_sync` and `stop_container`, so
    /// the runtime can report the outcome and clean up before the client
    /// gives up.
    pub runtime_grace: Duration,
    /// Largest gRPC message sent or received (kubelet uses 16 MiB).
    pub max_message_size: usize,
    /// Retries of idempotent calls on transient failures.
    pub retry: RetryPolicy,
    /// Notified after every call; `None` by default.
    pub observer: Option<Arc<dyn CallObserver>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            image_pull_timeout: Duration::from_secs(15 * 60),
            runtime_grace: Duration::from_secs(10),
            max_message_size: 16 * 1024 * 1024,
            retry: RetryPolicy::default(),
            observer: None,
        }
    }
}

impl ClientOptions {
    /// Sets the observer to a closure `(op, elapsed, error)`.
    #[must_use]
    pub fn observe_with<F>(mut self, observer: F) -> Self
    where
        F: Fn(&'static str, Duration, Option<&CriError>) + Send + Sync + 'static,
    {
        self.observer = Some(Arc::new(observer));
        self
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("image_pull_timeout", &self.image_pull_timeout)
            .field("runtime_grace", &self.runtime_grace)
            .field("max_message_size", &self.max_message_size)
            .field("retry", &self.retry)
            .field("observer", &self.observer.as_ref().map(|_| "CallObserver"))
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn defaults_follow_kubelet() {
        let o = ClientOptions::default();
        assert_eq!(o.request_timeout, Duration::from_secs(120));
        assert_eq!(o.max_message_size, 16 * 1024 * 1024);
        assert!(o.retry.max_attempts > 1);
        assert!(o.observer.is_none());
    }

    #[test]
    fn a_closure_can_observe_calls() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let o = ClientOptions::default().observe_with(move |op, _elapsed, error| {
            if let Ok(mut v) = sink.lock() {
                v.push((op, error.is_some()));
            }
        });
        let observer = o.observer.as_ref().map(Arc::clone);
        assert!(format!("{o:?}").contains("CallObserver"));
        if let Some(observer) = observer {
            observer.observe("version", Duration::ZERO, None);
        }
        assert_eq!(*seen.lock().unwrap(), vec![("version", false)]);
    }
}
