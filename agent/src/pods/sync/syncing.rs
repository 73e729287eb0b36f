//! The syncing phase: drive the runtime towards the spec. Volumes first, then the sandbox,
//! then init containers one at a time (sidecars keep running), then the regular containers,
//! with restarts under crash-loop backoff. The phase ends when activeDeadlineSeconds passes
//! (the agent terminates the pod) or when the containers have ended it for good.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::jiff::Timestamp;

use super::super::container::container_hash;
use super::super::context::PodContext;
use super::super::kill;
use super::super::lifecycle::Ending;
use super::super::observe::{self, ObservedPod};
use super::super::pod_probes::ProbeResults;
use super::super::sandbox;
use super::super::status::Terminal;
use super::container_gc;
use super::container_starts::{self, Target};
use super::ephemeral_starts::run_ephemeral_containers;
use super::{Outcome, PodState, Step, is_terminal_phase, report, sandbox_setup, uid};

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

pub(super) fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// One step of the syncing phase.
pub async fn sync(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    runtime: &ObservedPod,
    outcome: &mut Outcome,
) -> Result<Step, cri_client::CriError> {
    if let Some(left) = active_deadline_left(pod, state.last_written.as_ref()) {
        if left.is_zero() {
            let message =
                "Pod was active on the node longer than the specified deadline".to_string();
            ctx.events
                .normal(pod, None, "DeadlineExceeded", message.clone());
            let verdict = Ending::Verdict(Terminal {
                phase: "Failed",
                reason: "DeadlineExceeded".to_string(),
                message,
                disruption_target: false,
            });
            let now = tokio::time::Instant::now();
            state.lifecycle = std::mem::take(&mut state.lifecycle).terminate(now, verdict);
            return Ok(Step::Next);
        }
        outcome.merge(left);
    }
    let runtime = run_containers(ctx, state, pod, probes, runtime.clone(), outcome).await?;
    let status = report::write_status(ctx, state, pod, probes, &runtime).await;
    if is_terminal_phase(&status) {
        // Its containers ended it for good: release the sandbox (network, IP), the volumes
        // and the node's resources.
        state.lifecycle = std::mem::take(&mut state.lifecycle).ended(Ending::Containers);
        return Ok(Step::Next);
    }
    Ok(Step::Done)
}

/// Sandbox, then ephemeral containers, init containers in order, then the regular containers. Returns the runtime
/// state after the actions.
async fn run_containers(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    mut runtime: ObservedPod,
    outcome: &mut Outcome,
) -> Result<ObservedPod, cri_client::CriError> {
    let env = sandbox_setup::sandbox_env(ctx);
    state.started.clear();

    // Volumes first: no sandbox or container starts until every volume is set up.
    let Some(volumes) = sandbox_setup::ensure_volumes(ctx, state, pod, outcome).await else {
        return Ok(runtime);
    };
    if !sandbox_setup::ensure_pod_cgroup(ctx, state, pod).await {
        outcome.merge(Duration::from_secs(2));
        return Ok(runtime);
    }
    let Some(sandbox_id) = ready_sandbox(ctx, state, pod, &mut runtime, outcome).await else {
        return Ok(runtime);
    };
    let userns = match ctx.userns.recorded(pod) {
        Ok(ns) => ns,
        Err(e) => {
            tracing::warn!(error = %e, "no container starts without the sandbox's user namespace");
            outcome.merge(Duration::from_secs(2));
            return Ok(runtime);
        }
    };
    let env = sandbox::SandboxEnv {
        userns: Some(&userns),
        ..env
    };
    let sandbox_config = sandbox::sandbox_config(
        pod,
        runtime.sandboxes.first().map_or(0, |s| s.attempt),
        &env,
    );
    let pod_ips = sandbox_setup::pod_ips(ctx, state, pod, &sandbox_id).await;
    let pulled_volumes = super::super::image_volumes::Pulled::default();
    let target = Target {
        sandbox_id: &sandbox_id,
        config: &sandbox_config,
        pod_ips: &pod_ips,
        runtime: &runtime,
        volumes: &volumes,
        pulled_volumes: &pulled_volumes,
    };
    // Ephemeral containers may start while the pod initializes (kubelet's rule).
    let debugged = run_ephemeral_containers(ctx, state, pod, &target, outcome).await;
    match run_init_containers(ctx, state, pod, probes, &target, outcome).await {
        InitProgress::Complete => {}
        InitProgress::Pending if !debugged => return Ok(runtime),
        InitProgress::Pending | InitProgress::Acted => {
            return observe::observe(ctx.cri.as_ref(), uid(pod)).await;
        }
    }
    // A pod's first start (no container in the runtime before it; nothing to collect): what
    // changed is exactly the containers it started, read one by one. Otherwise the pod's
    // containers and sandboxes are listed again.
    let first_start = runtime.containers.is_empty();
    run_regular_containers(ctx, state, pod, probes, &target, outcome).await;
    if first_start {
        // Nothing ran before: what started holds the allocation already.
        super::resizing::actuate(ctx, state, pod, &target, outcome).await;
        return observe::with_started(ctx.cri.as_ref(), runtime, &sandbox_id, &state.started).await;
    }
    container_gc::collect(ctx, &runtime).await;
    let now = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    let current = Target {
        runtime: &now,
        ..target
    };
    if super::resizing::actuate(ctx, state, pod, &current, outcome).await {
        return observe::observe(ctx.cri.as_ref(), uid(pod)).await;
    }
    Ok(now)
}

/// The id of the pod's ready sandbox, creating one (and recording it in `runtime`) when there
/// is none. `None` when that failed: the sync is retried in 2 s.
async fn ready_sandbox(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    runtime: &mut ObservedPod,
    outcome: &mut Outcome,
) -> Option<String> {
    if let Some(s) = runtime.ready_sandbox() {
        return Some(s.id.clone());
    }
    let attempt = runtime.sandboxes.first().map_or(0, |s| s.attempt + 1);
    let Ok(id) = sandbox_setup::create_sandbox(ctx, state, pod, attempt).await else {
        outcome.merge(Duration::from_secs(2));
        return None;
    };
    runtime.sandbox_created(id.clone(), attempt);
    Some(id)
}

/// How far the init containers got in one sync.
enum InitProgress {
    /// Every init container has completed (sidecars: started); the regular containers may run.
    Complete,
    /// Still initializing, and the runtime is as observed.
    Pending,
    /// Still initializing after an action on the runtime, which must be observed again.
    Acted,
}

/// Init containers, one at a time; sidecars (restartPolicy Always) keep running.
async fn run_init_containers(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> InitProgress {
    let policy = restart_policy(pod);
    for c in pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
    {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        let latest = target.runtime.latest(&c.name, target.sandbox_id).cloned();
        match latest {
            Some(l) if l.running() => {
                if !sidecar {
                    return InitProgress::Pending;
                }
                container_starts::restart_if_unhealthy(ctx, pod, c, probes, &l).await;
                // A sidecar counts as started once its startup probe passed: until then the
                // containers after it wait, unless the pod had initialized before (a
                // restarted sidecar does not hold back containers that already ran).
                if c.startup_probe.is_some()
                    && !probes.startup_passed(&l.id)
                    && !regular_containers_ran(pod, target)
                {
                    return InitProgress::Pending;
                }
            }
            Some(l) if l.exited() && l.exit_code == 0 && !sidecar => {}
            Some(l) if l.exited() => {
                let restart = sidecar || should_restart(policy, l.exit_code);
                if !restart {
                    return InitProgress::Pending;
                }
                let started =
                    container_starts::restart_with_backoff(ctx, state, pod, c, &l, target, outcome)
                        .await;
                if !started {
                    return InitProgress::Pending;
                }
                if !sidecar || c.startup_probe.is_some() {
                    return InitProgress::Acted;
                }
            }
            unstarted => {
                let started = container_starts::start_new(
                    ctx,
                    state,
                    pod,
                    c,
                    target,
                    unstarted.as_ref(),
                    outcome,
                )
                .await;
                // A sidecar with a startup probe has not started until the probe passes.
                if !sidecar || !started || c.startup_probe.is_some() {
                    return InitProgress::Acted;
                }
            }
        }
    }
    InitProgress::Complete
}

/// Whether any regular container of the pod was created in this sandbox: the pod has
/// initialized (kubelet's podHasInitialized).
fn regular_containers_ran(pod: &Pod, target: &Target<'_>) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .any(|c| target.runtime.latest(&c.name, target.sandbox_id).is_some())
}

/// Regular containers: start the missing ones, restart the exited ones the restart policy
/// allows (under backoff), and replace those whose spec changed.
async fn run_regular_containers(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
    target: &Target<'_>,
    outcome: &mut Outcome,
) {
    let policy = restart_policy(pod);
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        let latest = target.runtime.latest(&c.name, target.sandbox_id).cloned();
        match latest {
            Some(l) if l.running() => {
                if !l.hash.is_empty() && l.hash != container_hash(c) {
                    ctx.events.normal(
                        pod,
                        Some(&c.name),
                        "Killing",
                        format!("Container {} definition changed, will be restarted", c.name),
                    );
                    kill::stop_container(ctx, &l.id, super::super::grace::grace_period(pod)).await;
                    outcome.merge(Duration::ZERO);
                } else {
                    container_starts::restart_if_unhealthy(ctx, pod, c, probes, &l).await;
                }
            }
            Some(l) if l.exited() => {
                if should_restart(policy, l.exit_code) {
                    container_starts::restart_with_backoff(ctx, state, pod, c, &l, target, outcome)
                        .await;
                }
            }
            unstarted => {
                container_starts::start_new(
                    ctx,
                    state,
                    pod,
                    c,
                    target,
                    unstarted.as_ref(),
                    outcome,
                )
                .await;
            }
        }
    }
}

/// Time left before activeDeadlineSeconds, if set.
/// The start time is the API's, else the one this worker wrote, else now (first sync).
fn active_deadline_left(pod: &Pod, written: Option<&PodStatus>) -> Option<Duration> {
    let secs = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or_else(|| written.and_then(|s| s.start_time.as_ref()))
        .map_or_else(Timestamp::now, |t| t.0);
    let end = start
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(secs))
        .ok()?;
    let left = end.duration_since(Timestamp::now());
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO))
}
