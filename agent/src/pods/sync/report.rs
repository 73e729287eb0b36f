//! The pod's status as a sync leaves it: computed from the runtime, the worker's memory and the
//! probes' word ([`super::super::status::compute`]), and written when it changed or when the
//! API's copy no longer shows it ([`status_writer::overwritten`]). The first write showing the
//! pod Ready also logs the startup breakdown.

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tracing::warn;

use super::super::config_source;
use super::super::context::PodContext;
use super::super::observe::ObservedPod;
use super::super::pod_probes::ProbeResults;
use super::super::probe::ProbeKind;
use super::super::status;
use super::super::status_writer;
use super::super::termination_message;
use super::PodState;

/// Computes the status and writes it when it changed; returns it.
pub async fn write_status(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    runtime: &ObservedPod,
) -> PodStatus {
    read_termination_messages(ctx, state, pod, runtime);
    let ips = state
        .ips
        .as_ref()
        .map(|(_, ips)| ips.clone())
        .unwrap_or_default();
    let readiness = probes.by_name(ProbeKind::Readiness, runtime);
    let started = probes.by_name(ProbeKind::Startup, runtime);
    let status = status::compute(&status::Inputs {
        pod,
        runtime,
        runtime_name: &ctx.runtime_name,
        pod_ips: &ips,
        host_ip: &ctx.node.host_ip,
        waiting: &state.waiting,
        readiness: &readiness,
        started: &started,
        termination_messages: &state.termination_messages,
        terminal: state.lifecycle.verdict(),
        resize: &state.resize,
        now: status::stored_now(),
    });
    // Unchanged, and the API's copy still shows it (another writer may have changed the
    // conditions since; a static pod's copy is its mirror pod's, which the mirror task checks).
    let unchanged = state.last_written.as_ref() == Some(&status);
    if unchanged
        && (config_source::is_static(pod)
            || !status_writer::overwritten(pod.status.as_ref(), &status))
    {
        return status;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let sent = std::time::Instant::now();
    match ctx.writer.write_status(pod, &status).await {
        Ok(()) => {
            // The breakdown goes to the log (and the stage histograms), not to an event:
            // kubelet's events for a start are Pulled, Created and Started, and each event is
            // one more API request per pod.
            if ready && let Some(line) = state.timings.ready(sent) {
                tracing::info!("{line}");
            }
            state.last_written = Some(status.clone());
        }
        Err(e) => warn!(error = %e, "failed to write pod status"),
    }
    status
}

/// Reads the termination message of every exited container not read yet.
fn read_termination_messages(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    runtime: &ObservedPod,
) {
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    for l in runtime.containers.iter().filter(|l| l.exited()) {
        if state.termination_messages.contains_key(&l.id) {
            continue;
        }
        let Some(c) = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == l.name)
        else {
            continue;
        };
        let msg = termination_message::read(ctx, pod, c, l);
        state
            .termination_messages
            .insert(l.id.clone(), msg.unwrap_or_default());
    }
}
