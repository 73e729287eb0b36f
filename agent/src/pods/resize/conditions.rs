//! The two conditions a resize shows on the pod, as kubelet's status manager sets them:
//!
//! - `PodResizePending` (True): the node has not accepted the spec's resources, reason
//!   `Infeasible` (they can never fit this node) or `Deferred` (not now; retried as room
//!   frees), with the judgement's message;
//! - `PodResizeInProgress` (True): accepted and not yet applied to every running container,
//!   reason `Error` with the failure's message when applying failed.
//!
//! Both carry the generation of the pod they were judged on (`observedGeneration`); the
//! transition time is when the reason last changed.

use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const PENDING: &str = "PodResizePending";
pub const IN_PROGRESS: &str = "PodResizeInProgress";

/// Why a resize waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingReason {
    Infeasible,
    Deferred,
}

impl PendingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingReason::Infeasible => "Infeasible",
            PendingReason::Deferred => "Deferred",
        }
    }
}

/// A resize the node has not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub reason: PendingReason,
    pub message: String,
    pub generation: Option<i64>,
    pub since: Timestamp,
}

/// An accepted resize not applied yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProgress {
    /// Why applying it failed last, if it did.
    pub error: Option<String>,
    pub generation: Option<i64>,
    pub since: Timestamp,
}

fn condition(
    type_: &str,
    reason: Option<&str>,
    message: Option<&str>,
    generation: Option<i64>,
    since: Timestamp,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        observed_generation: generation,
        last_probe_time: Some(Time(since)),
        last_transition_time: Some(Time(since)),
    }
}

/// The conditions for the resize state, pending first.
pub fn conditions(
    pending: Option<&Pending>,
    in_progress: Option<&InProgress>,
) -> Vec<PodCondition> {
    let pending = pending.map(|p| {
        condition(
            PENDING,
            Some(p.reason.as_str()),
            Some(&p.message),
            p.generation,
            p.since,
        )
    });
    let in_progress = in_progress.map(|p| {
        condition(
            IN_PROGRESS,
            p.error.as_ref().map(|_| "Error"),
            p.error.as_deref(),
            p.generation,
            p.since,
        )
    });
    pending.into_iter().chain(in_progress).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_and_in_progress_conditions() {
        let since = Timestamp::from_second(1_700_000_000).unwrap();
        let p = Pending {
            reason: PendingReason::Deferred,
            message: "Node didn't have enough resource: cpu".into(),
            generation: Some(3),
            since,
        };
        let i = InProgress {
            error: Some("cannot decrease memory limits: x".into()),
            generation: Some(2),
            since,
        };
        let c = conditions(Some(&p), Some(&i));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].type_, "PodResizePending");
        assert_eq!(c[0].reason.as_deref(), Some("Deferred"));
        assert_eq!(c[0].observed_generation, Some(3));
        assert_eq!(c[1].type_, "PodResizeInProgress");
        assert_eq!(c[1].reason.as_deref(), Some("Error"));
        assert_eq!(c[1].status, "True");
        let quiet = InProgress { error: None, ..i };
        let c = conditions(None, Some(&quiet));
        assert_eq!((c[0].reason.as_ref(), c[0].message.as_ref()), (None, None));
        assert!(conditions(None, None).is_empty());
    }
}
