//! The terminated and cleaned-up phases: nothing of the pod runs. Its sandbox is stopped, its
//! volumes unmounted (emptyDir contents removed) and the node's resources released, and the final status written (unless
//! the API's status stands). A deleted pod is removed from the node entirely (containers,
//! sandboxes, directory, logs, cgroups) and its object deleted with grace 0 and a UID
//! precondition; the worker then waits for the object to go. Pods gone from the API without
//! that (force deletion, deleted while the agent was down) are removed by [`remove_gone`].

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tracing::warn;

use super::super::context::PodContext;
use super::super::kill;
use super::super::lifecycle::{Ending, Lifecycle};
use super::super::observe::{self, ObservedPod};
use super::super::pod_probes::ProbeResults;
use super::super::sandbox;
use super::{Outcome, PodState, Step, deleted, report, uid};

/// How often a deleted pod's worker looks again while its object's deletion is under way.
const DELETION_SENT_RESYNC: Duration = Duration::from_secs(5);
/// Retry delay after the API refused the object's deletion.
const DELETION_FAILED_RESYNC: Duration = Duration::from_secs(1);

fn status_stands(state: &PodState) -> bool {
    state.lifecycle.ending() == Some(&Ending::Recorded)
}

/// What the runtime holds for the pod now, after the final status was written from it (unless
/// the API's status stands).
async fn observe_and_report(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
) -> Result<ObservedPod, cri_client::CriError> {
    let runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    if !status_stands(state) {
        report::write_status(ctx, state, pod, probes, &runtime).await;
    }
    Ok(runtime)
}

/// Releases what the terminated pod holds; the pod is then cleaned up.
pub async fn clean_up(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    outcome: &mut Outcome,
) -> Result<Step, cri_client::CriError> {
    let runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    kill::stop_sandboxes(ctx, &runtime).await;
    if deleted(pod) {
        return remove_and_delete(ctx, state, pod, probes, outcome).await;
    }
    match ctx.volumes.unmount_all(uid(pod)).await {
        Ok(()) => {
            if let Err(e) = ctx.volumes.remove_empty_dirs(uid(pod)).await {
                warn!(error = %e, "cannot remove the emptyDir volumes of an ended pod");
            }
        }
        Err(e) => warn!(error = %e, "cannot unmount the volumes of an ended pod"),
    }
    ctx.admission.release(uid(pod));
    observe_and_report(ctx, state, pod, probes).await?;
    state.lifecycle = std::mem::take(&mut state.lifecycle).cleaned_up(false);
    Ok(Step::Done)
}

/// A cleaned-up pod: a deleted one waits for its object to go (or retries its deletion); an
/// ended one only retries a status write that failed.
pub async fn cleaned_up(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    outcome: &mut Outcome,
) -> Result<Step, cri_client::CriError> {
    if let Lifecycle::CleanedUp {
        object_deleted: true,
        ..
    } = state.lifecycle
    {
        outcome.merge(DELETION_SENT_RESYNC);
        return Ok(Step::Done);
    }
    if deleted(pod) {
        return remove_and_delete(ctx, state, pod, probes, outcome).await;
    }
    observe_and_report(ctx, state, pod, probes).await?;
    Ok(Step::Done)
}

/// A deleted pod: the final status, everything removed from the node, then the object.
async fn remove_and_delete(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    outcome: &mut Outcome,
) -> Result<Step, cri_client::CriError> {
    let runtime = observe_and_report(ctx, state, pod, probes).await?;
    let log_dir = sandbox::log_directory(&ctx.log_root, pod);
    kill::remove_all(ctx, uid(pod), &runtime, Some(&log_dir)).await;
    ctx.admission.release(uid(pod));
    ctx.images.forget_pod(uid(pod));
    let sent = match ctx.writer.delete(pod).await {
        Ok(()) => {
            outcome.merge(DELETION_SENT_RESYNC);
            true
        }
        Err(e) => {
            warn!(error = %e, "failed to delete pod object; retrying");
            outcome.merge(DELETION_FAILED_RESYNC);
            false
        }
    };
    state.lifecycle = std::mem::take(&mut state.lifecycle).cleaned_up(sent);
    Ok(Step::Done)
}

/// Cleans up a pod that is gone from the API (deleted by force, or while the agent was down).
pub async fn remove_gone(
    ctx: &PodContext,
    pod_uid: &str,
    log_dir: Option<&Path>,
) -> Result<(), cri_client::CriError> {
    let runtime = observe::observe(ctx.cri.as_ref(), pod_uid).await?;
    kill::remove_all(ctx, pod_uid, &runtime, log_dir).await;
    ctx.admission.release(pod_uid);
    ctx.images.forget_pod(pod_uid);
    Ok(())
}
