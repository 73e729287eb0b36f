//! Where a pod's own numbers become waits: the termination grace period (one rule for
//! deletion, deadline and failed-hook kills) and deadlines built from it. A pod may ask for any
//! int64 of seconds; every wait is capped at [`LONGEST_WAIT`] and every deadline is computed
//! with checked arithmetic, so no value in a spec can overflow a clock. Deadlines are tokio
//! instants (the monotonic clock, which paused-time tests drive).

use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::Pod;

/// kubelet's default terminationGracePeriodSeconds.
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The longest wait any number in a pod spec can produce (about ten years: longer than any
/// node lives, small enough for every clock).
pub const LONGEST_WAIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `secs` from a pod spec as a wait: negative is zero, huge is [`LONGEST_WAIT`].
pub fn seconds(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(LONGEST_WAIT)
}

/// The pod's grace period for stopping its containers, as kubelet takes it: the deletion's
/// grace period when the pod is being deleted, else terminationGracePeriodSeconds, else 30 s.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    seconds(secs)
}

/// `start + wait`, never overflowing: a wait the clock cannot represent ends at the latest
/// instant it can (which, with [`LONGEST_WAIT`], never happens on a real clock).
pub fn deadline(start: Instant, wait: Duration) -> Instant {
    let wait = wait.min(LONGEST_WAIT);
    start
        .checked_add(wait)
        .or_else(|| start.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deletion_grace_wins_then_the_spec_then_thirty_seconds() {
        let p = pod(
            json!({"metadata": {"name": "p", "deletionGracePeriodSeconds": 5},
            "spec": {"containers": [], "terminationGracePeriodSeconds": 60}}),
        );
        assert_eq!(grace_period(&p), Duration::from_secs(5));
        let p = pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "terminationGracePeriodSeconds": 60}}));
        assert_eq!(grace_period(&p), Duration::from_secs(60));
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}));
        assert_eq!(grace_period(&p), Duration::from_secs(30));
    }

    #[test]
    fn extreme_numbers_neither_overflow_nor_go_negative() {
        let p = pod(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "terminationGracePeriodSeconds": i64::MAX}}));
        assert_eq!(grace_period(&p), LONGEST_WAIT);
        assert_eq!(seconds(i64::MIN), Duration::ZERO);
        assert_eq!(seconds(-1), Duration::ZERO);
        let now = Instant::now();
        assert!(deadline(now, Duration::MAX) > now);
        assert_eq!(
            deadline(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
    }
}
