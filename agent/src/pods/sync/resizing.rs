//! The resize steps of a sync ([`crate::pods::resize`] has the timeline): judging the resources
//! a pod's spec asks for against what the node allocated ([`allocate`]), and applying an
//! accepted resize to the running containers and the pod's cgroup ([`actuate`]).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use tracing::{info, warn};

use super::super::admission::pod_requests;
use super::super::container::resources::linux_resources;
use super::super::context::PodContext;
use super::super::kill;
use super::super::observe::ContainerView;
use super::super::pod_cgroup;
use super::super::resize::conditions::{InProgress, Pending, PendingReason};
use super::super::resize::{Actuated, Allocation, Changed, Verdict, event, judge, resizable};
use super::super::status::stored_now;
use super::container_starts::{self, Target};
use super::{Outcome, PodState, uid};
use crate::cgroups::{CgroupDriver, ResourceConfig, memory_in_use};

/// kubelet's periodic retry of deferred resizes (they also retry when room frees).
const DEFERRED_RETRY: Duration = Duration::from_secs(180);
/// A resize that failed to apply is tried again after this (kubelet's worker backoff).
const ERROR_RETRY: Duration = Duration::from_secs(10);

/// Judges the resize the spec asks for, if it asks for one: accepted, the allocation becomes
/// the spec's; otherwise the pod shows why it waits.
pub(super) fn allocate(ctx: &PodContext, state: &mut PodState, pod: &Pod, outcome: &mut Outcome) {
    let r = &mut state.resize;
    let Some(allocation) = r.allocation.as_ref() else {
        return;
    };
    if !allocation.differs(pod) {
        // Reverted, or accepted already.
        if r.pending.take().is_some() {
            ctx.admission.forget_resize(uid(pod));
        }
        return;
    }
    let generation = pod.metadata.generation;
    if r.counted_generation != generation {
        r.counted_generation = generation;
        count_requested(allocation, pod);
    }
    if r.pending
        .as_ref()
        .is_some_and(|p| p.reason == PendingReason::Infeasible && p.generation == generation)
    {
        return;
    }
    match judge(pod, &ctx.admission, &ctx.node) {
        Verdict::Accepted => {
            info!(generation = ?generation, "resize accepted");
            if r.pending
                .as_ref()
                .is_some_and(|p| p.reason == PendingReason::Deferred)
            {
                crate::metrics::count_deferred_accepted_resize(r.woke_by);
            }
            r.allocation = Some(Allocation::of_spec(pod));
            r.pending = None;
            r.in_progress = Some(InProgress {
                error: None,
                generation,
                since: stored_now(),
            });
            r.accepted_at = Some(Instant::now());
            ctx.events.normal(
                pod,
                None,
                "ResizeStarted",
                event::message("Pod resize started", pod, generation, None),
            );
        }
        Verdict::Infeasible { message, detail } => {
            crate::metrics::count_infeasible_resize(detail);
            ctx.admission.forget_resize(uid(pod));
            set_pending(ctx, state, pod, PendingReason::Infeasible, message);
        }
        Verdict::Deferred { message } => {
            set_pending(ctx, state, pod, PendingReason::Deferred, message);
            outcome.merge(DEFERRED_RETRY);
        }
    }
}

/// Records why the resize waits; the event goes out when the reason or generation is new.
fn set_pending(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    reason: PendingReason,
    message: String,
) {
    let generation = pod.metadata.generation;
    let previous = state.resize.pending.take();
    let same_reason = previous.as_ref().is_some_and(|p| p.reason == reason);
    let announce = !same_reason
        || previous
            .as_ref()
            .is_some_and(|p| p.generation != generation);
    if announce {
        let (event_reason, prefix) = match reason {
            PendingReason::Infeasible => ("ResizeInfeasible", "Pod resize Infeasible"),
            PendingReason::Deferred => ("ResizeDeferred", "Pod resize Deferred"),
        };
        ctx.events.warning(
            pod,
            None,
            event_reason,
            event::message(prefix, pod, generation, Some(&message)),
        );
    }
    let since = previous
        .filter(|_| same_reason)
        .map_or_else(stored_now, |p| p.since);
    state.resize.pending = Some(Pending {
        reason,
        message,
        generation,
        since,
    });
}

/// kubelet_container_requested_resizes_total for each amount the spec changed.
fn count_requested(allocation: &Allocation, pod: &Pod) {
    for c in resizable(pod) {
        let was = Actuated::of(allocation.get(&c.name));
        let now = Actuated::of(c.resources.as_ref());
        let amounts = [
            (
                "cpu",
                "requests",
                was.cpu_request_millis,
                now.cpu_request_millis,
            ),
            ("cpu", "limits", was.cpu_limit_millis, now.cpu_limit_millis),
            (
                "memory",
                "requests",
                was.memory_request_bytes,
                now.memory_request_bytes,
            ),
            (
                "memory",
                "limits",
                was.memory_limit_bytes,
                now.memory_limit_bytes,
            ),
        ];
        for (resource, requirement, was, now) in amounts {
            let operation = match (was, now) {
                (a, b) if a == b => continue,
                (0, _) => "add",
                (_, 0) => "remove",
                (a, b) if b > a => "increase",
                _ => "decrease",
            };
            crate::metrics::count_requested_resize(resource, requirement, operation);
        }
    }
}

/// One running container whose cgroup differs from its allocation.
struct Differing<'a> {
    spec: &'a Container,
    running: &'a ContainerView,
    want: Actuated,
    have: Actuated,
}

/// Applies the allocation to the running containers of `pod` (the allocated pod) whose
/// cgroups differ from it. True when it changed any (the runtime is to be read again).
pub(super) async fn actuate(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> bool {
    let mut restarts = Vec::new();
    let mut updates = Vec::new();
    for spec in resizable(pod) {
        let Some(running) = target
            .runtime
            .latest(&spec.name, target.sandbox_id)
            .filter(|l| l.running())
        else {
            continue;
        };
        let want = Actuated::of(spec.resources.as_ref());
        // A container without a record (adopted, never resized) holds what it was given.
        let have = if let Some(have) = state.resize.actuated.get(&spec.name) {
            *have
        } else {
            state.resize.actuated.insert(spec.name.clone(), want);
            want
        };
        let changed = have.changed(&want);
        if !changed.any() {
            continue;
        }
        let d = Differing {
            spec,
            running,
            want,
            have,
        };
        if restart_required(spec, changed) {
            restarts.push(d);
        } else {
            updates.push(d);
        }
    }
    if restarts.is_empty() && updates.is_empty() {
        finish(ctx, state, pod, Ok(()));
        return false;
    }
    let applied = apply(ctx, state, pod, &restarts, &updates, target, outcome).await;
    if applied.is_err() {
        outcome.merge(ERROR_RETRY);
    }
    finish(ctx, state, pod, applied);
    true
}

/// Whether the container's resizePolicy restarts it for the resources that changed.
fn restart_required(c: &Container, changed: Changed) -> bool {
    c.resize_policy.iter().flatten().any(|p| {
        p.restart_policy == "RestartContainer"
            && ((p.resource_name == "cpu" && changed.cpu)
                || (p.resource_name == "memory" && changed.memory))
    })
}

/// The pod cgroup raised, the containers restarted or updated, the pod cgroup settled.
async fn apply(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    restarts: &[Differing<'_>],
    updates: &[Differing<'_>],
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let current = state.pod_cgroup_limits.clone();
    let wanted = ResourceConfig {
        pids_max: ctx.cgroups.pod_pids_limit(),
        ..pod_cgroup::pod_limits(pod)
    };
    check_memory(ctx, pod, current.as_ref(), &wanted, updates)
        .map_err(|e| format!("cannot decrease memory limits: {e}"))?;
    if let Some(cur) = &current {
        pod_cgroup::write(ctx, pod, &pod_cgroup::raised(cur, &wanted)).await?;
    }
    for d in restarts {
        ctx.events.normal(
            pod,
            Some(&d.spec.name),
            "Killing",
            format!("Container {} resize requires restart", d.spec.name),
        );
        kill::stop_container(ctx, &d.running.id, super::super::grace::grace_period(pod)).await;
        container_starts::restart_now(ctx, state, pod, d.spec, d.running, target, outcome).await;
    }
    for d in updates {
        let resources = linux_resources(d.spec, pod, ctx.node.memory_capacity_bytes);
        ctx.cri
            .update_container_resources(&d.running.id, resources)
            .await
            .map_err(|e| e.to_string())?;
        info!(container = %d.spec.name, from = ?d.have, to = ?d.want, "container resized in place");
        state.resize.actuated.insert(d.spec.name.clone(), d.want);
    }
    if let Some(cur) = &current {
        let settled = pod_cgroup::settled(cur, &wanted);
        pod_cgroup::write(ctx, pod, &settled).await?;
        state.pod_cgroup_limits = Some(settled);
    }
    Ok(())
}

/// kubelet's check before lowering memory limits: the pod's and each lowered container's
/// memory in use must stay below its new limit.
fn check_memory(
    ctx: &PodContext,
    pod: &Pod,
    current: Option<&ResourceConfig>,
    wanted: &ResourceConfig,
    updates: &[Differing<'_>],
) -> Result<(), String> {
    if ctx.cgroups.driver() != CgroupDriver::Cgroupfs {
        return Ok(());
    }
    let parent = super::super::sandbox::cgroup_parent(&ctx.cgroups, pod);
    let lowered = |have: u64, want: u64| want > 0 && (have == 0 || want < have);
    let mut errors = Vec::new();
    if let (Some(cur), Some(new)) = (current.and_then(|c| c.memory_bytes), wanted.memory_bytes)
        && lowered(cur, new)
    {
        match memory_in_use(ctx.cgroup_fs.as_ref(), &parent) {
            Some(used) if used >= new => errors.push(format!(
                "attempting to set pod memory limit ({new}) below current usage ({used})"
            )),
            Some(_) => {}
            None => errors.push("missing pod memory usage".to_string()),
        }
    }
    for d in updates
        .iter()
        .filter(|d| lowered(d.have.memory_limit_bytes, d.want.memory_limit_bytes))
    {
        let name = &d.spec.name;
        let new = d.want.memory_limit_bytes;
        let path = format!("{parent}/{}", d.running.id);
        match memory_in_use(ctx.cgroup_fs.as_ref(), &path) {
            Some(used) if used >= new => errors.push(format!(
                "attempting to set container \"{name}\" memory limit ({new}) below current usage ({used})"
            )),
            Some(_) => {}
            None => errors.push(format!("missing container \"{name}\" memory usage")),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

/// After an attempt: done (ResizeCompleted, the node's share settles) or failed (reason
/// Error, ResizeError when the message is new).
fn finish(ctx: &PodContext, state: &mut PodState, pod: &Pod, result: Result<(), String>) {
    let r = &mut state.resize;
    match result {
        Ok(()) => {
            let Some(done) = r.in_progress.take() else {
                return;
            };
            if let Some(at) = r.accepted_at.take() {
                crate::metrics::observe_resize(at.elapsed(), true);
            }
            match pod_requests(pod) {
                Ok(applied) => ctx.admission.settle(super::uid(pod), applied),
                Err(e) => warn!(error = %e, "the resized pod's requests do not parse"),
            }
            info!("resize completed");
            ctx.events.normal(
                pod,
                None,
                "ResizeCompleted",
                event::message("Pod resize completed", pod, done.generation, None),
            );
        }
        Err(message) => {
            warn!(error = %message, "resize not applied; retrying");
            let progress = r.in_progress.get_or_insert_with(|| InProgress {
                error: None,
                generation: pod.metadata.generation,
                since: stored_now(),
            });
            if progress.error.as_deref() != Some(message.as_str()) {
                if let Some(at) = r.accepted_at {
                    crate::metrics::observe_resize(at.elapsed(), false);
                }
                ctx.events.warning(
                    pod,
                    None,
                    "ResizeError",
                    event::message("Pod resize error", pod, progress.generation, Some(&message)),
                );
                progress.error = Some(message);
            }
        }
    }
}
