//! The terminating phase: every running container is stopped within the pod's grace period,
//! counted from when termination began (so a termination cut short by a shorter grace and
//! resumed keeps its deadline); an eviction or a node shutdown shortens it to its grace. Running
//! containers run their preStop hooks first within that grace, whatever ends the pod (kubelet's
//! killContainer does the same).

use k8s_openapi::api::core::v1::Pod;

use super::super::context::PodContext;
use super::super::grace;
use super::super::kill;
use super::super::lifecycle::Lifecycle;
use super::super::lifecycle_hooks::PreStopTargets;
use super::super::observe::ObservedPod;
use super::{PodState, Step};

/// Stops the pod's containers; the pod is then terminated.
pub async fn stop(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    runtime: &ObservedPod,
) -> Step {
    let Lifecycle::Terminating { since, .. } = state.lifecycle else {
        return Step::Next;
    };
    let own = grace::grace_period(pod);
    let grace = state.grace_override.map_or(own, |o| o.min(own));
    let deadline = grace::deadline(since, grace);
    let message = |name: &str| format!("Stopping container {name}");
    // kubelet runs preStop hooks whatever ends the pod: a deletion, an eviction, a node
    // shutdown, its deadline.
    let targets = PreStopTargets::new(pod);
    kill::stop_containers(ctx, pod, runtime, deadline, message, |name, id, left| {
        targets.run(ctx, name, id, left)
    })
    .await;
    state.lifecycle = std::mem::take(&mut state.lifecycle).stopped();
    Step::Next
}
