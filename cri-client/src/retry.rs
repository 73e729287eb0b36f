//! Which failures are retried, and how long to wait between attempts.

use std::time::Duration;

use crate::CriError;

/// How a call that failed transiently is retried.
///
/// Only idempotent calls are retried (reads, and the stop/remove calls CRI
/// defines as idempotent), and only on transient failures: the runtime
/// answered `UNAVAILABLE` or the socket could not be reached. Calls that
/// create or start something (`run_pod_sandbox`, `create_container`,
/// `start_container`, `pull_image`, the exec family, ...) are made once.
///
/// The wait before retry `n` (1-based) is `initial_backoff * 2^(n-1)`, capped
/// at `max_backoff`, without jitter: a node agent is the runtime's only
/// client, so there is no herd to spread. Retries also stop when the next
/// attempt would start after the call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; `1` disables retries.
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of any wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Four attempts, waiting 100 ms, 200 ms, then 400 ms (capped at 2 s):
    /// enough to ride out a runtime restart's brief socket gap.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    #[must_use]
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Whether a call that failed with `error` on attempt number `attempt`
    /// (1 for the first) may be tried again.
    pub(crate) fn allows_retry(
        &self,
        idempotency: Idempotency,
        error: &CriError,
        attempt: u32,
    ) -> bool {
        idempotency == Idempotency::Idempotent && is_transient(error) && attempt < self.max_attempts
    }
}

/// Whether repeating a call can change the outcome beyond the first success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, and stop/remove calls (CRI requires them to be idempotent).
    Idempotent,
    /// Calls that create or start something; never retried.
    NotIdempotent,
}

/// True for failures that a later attempt may not see: the runtime answered
/// `UNAVAILABLE` or could not be reached (tonic reports connect errors as
/// `UNAVAILABLE`). Timeouts are not transient: the call's budget is spent.
pub(crate) fn is_transient(error: &CriError) -> bool {
    matches!(error, CriError::Unavailable { .. })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use tonic::Code;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        }
    }

    fn unavailable() -> CriError {
        CriError::Unavailable {
            op: "version",
            message: "connection refused".into(),
        }
    }

    #[test]
    fn backoff_doubles_from_initial_and_is_capped() {
        let p = policy();
        let waits: Vec<u128> = (1..=6).map(|n| p.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500, 500]);
    }

    #[test]
    fn backoff_does_not_overflow_for_huge_retry_counts() {
        let p = RetryPolicy {
            max_backoff: Duration::from_secs(30),
            ..policy()
        };
        assert_eq!(p.backoff(40), Duration::from_secs(30));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(30));
        assert_eq!(p.backoff(0), Duration::from_millis(100));
    }

    #[test]
    fn only_unavailable_is_transient() {
        assert!(is_transient(&unavailable()));
        let others = [
            CriError::NotFound {
                op: "container_status",
                message: String::new(),
            },
            CriError::Timeout {
                op: "list_containers",
                after: Duration::from_secs(1),
            },
            CriError::Status {
                op: "version",
                code: Code::Internal,
                message: String::new(),
            },
            CriError::Status {
                op: "version",
                code: Code::Unknown,
                message: String::new(),
            },
        ];
        for error in others {
            assert!(!is_transient(&error), "{error} must not be transient");
        }
    }

    #[test]
    fn idempotent_calls_retry_transient_errors_up_to_max_attempts() {
        let p = policy();
        assert!(p.allows_retry(Idempotency::Idempotent, &unavailable(), 1));
        assert!(p.allows_retry(Idempotency::Idempotent, &unavailable(), 4));
        assert!(!p.allows_retry(Idempotency::Idempotent, &unavailable(), 5));
    }

    #[test]
    fn non_idempotent_calls_never_retry() {
        assert!(!policy().allows_retry(Idempotency::NotIdempotent, &unavailable(), 1));
    }

    #[test]
    fn never_policy_makes_a_single_attempt() {
        assert!(!RetryPolicy::never().allows_retry(Idempotency::Idempotent, &unavailable(), 1));
    }
}
