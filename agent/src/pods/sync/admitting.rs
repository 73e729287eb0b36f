//! The admitting phase: the node's admission decides whether the pod may run here. A refused
//! pod ends with kubelet's reason; a pod that had already ended before this worker saw it
//! (the agent restarted) keeps the status the API holds.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;

use super::super::context::PodContext;
use super::super::lifecycle::{Ending, Lifecycle};
use super::super::status::Terminal;
use super::super::timing::Stage;
use super::{PodState, Step};

/// True when the API already shows the pod Succeeded or Failed and this worker never wrote its
/// status: it ended before the worker saw it.
pub fn ended_before(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(super::is_terminal_phase)
}

/// Admits the pod (it moves to syncing) or refuses it (it terminates with the refusal).
pub fn admit(ctx: &PodContext, state: &mut PodState, pod: &Pod) -> Step {
    let began = Instant::now();
    let lifecycle = std::mem::take(&mut state.lifecycle);
    state.lifecycle = match ctx.admission.admit(pod, &ctx.node) {
        Ok(()) => Lifecycle::Syncing,
        Err(refusal) => {
            ctx.events
                .warning(pod, None, &refusal.reason, refusal.message.clone());
            lifecycle.terminate(
                tokio::time::Instant::now(),
                Ending::Verdict(Terminal {
                    phase: "Failed",
                    message: refusal.status_message(),
                    reason: refusal.reason,
                    disruption_target: false,
                }),
            )
        }
    };
    state.timings.add(Stage::Admission, began.elapsed());
    Step::Next
}
