//! Starting one container into the pod's sandbox, restarting an exited one under kubelet's
//! crash-loop backoff, and restarting one its liveness or startup probe failed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use cri_client::api::{ContainerState, PodSandboxConfig};
use k8s_openapi::api::core::v1::{Container, Pod};
use tracing::{info, warn};

use super::super::context::PodContext;
use super::super::kill;
use super::super::observe::{ContainerView, ObservedPod};
use super::super::pod_probes::ProbeResults;
use super::super::probe::ProbeKind;
use super::super::start::{self, StartRequest};
use super::super::status::Waiting;
use super::{Outcome, PodState, uid};

/// Resync delay after a failed image pull, so the next sync reports ImagePullBackOff.
const PULL_FAILED_RESYNC: Duration = Duration::from_secs(1);
/// Resync delay after any other start failure (config errors, create/start errors).
const START_FAILED_RESYNC: Duration = Duration::from_secs(10);

/// The sandbox the pod's containers go into.
pub(super) struct Target<'a> {
    pub sandbox_id: &'a str,
    pub config: &'a PodSandboxConfig,
    pub pod_ips: &'a [String],
    /// The runtime state the sync started from.
    pub runtime: &'a ObservedPod,
    /// The pod's volumes, host path by name.
    pub volumes: &'a HashMap<String, PathBuf>,
    /// The image volumes this sync pulled already.
    pub pulled_volumes: &'a super::super::image_volumes::Pulled,
}

fn nanos_to_system(nanos: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// One container instance to start.
pub(super) struct Instance<'a> {
    pub container: &'a Container,
    /// Which instance of the container this is (CRI's attempt, the status's restartCount).
    pub restart_count: u32,
    /// An ephemeral container's target: the id of the container whose PID namespace it joins.
    pub pid_target: Option<&'a str>,
}

/// Creates and starts an instance of a container. True when it started; otherwise its waiting
/// reason says why and the sync is retried.
pub(super) async fn start_one(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    instance: &Instance<'_>,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> bool {
    let c = instance.container;
    let req = StartRequest {
        pod,
        container: c,
        sandbox_id: target.sandbox_id,
        sandbox_config: target.config,
        restart_count: instance.restart_count,
        pod_ips: target.pod_ips,
        volumes: target.volumes,
        pid_target: instance.pid_target,
        pulled_volumes: target.pulled_volumes,
    };
    match start::start(ctx, &mut state.timings, &req).await {
        Ok(id) => {
            state.waiting.remove(&c.name);
            // Its cgroup holds what the (allocated) spec gives it.
            state.resize.actuated.insert(
                c.name.clone(),
                super::super::resize::Actuated::of(c.resources.as_ref()),
            );
            super::super::lifecycle_hooks::post_start(ctx, pod, c, &id, target.pod_ips).await;
            state.started.push(id);
            true
        }
        Err(w) => {
            // Try again: soon after a failed pull (to report ImagePullBackOff), when the pull
            // backoff ends, or after a while for configuration errors (a ConfigMap may appear).
            let retry = match w.reason.as_str() {
                "ErrImagePull" => PULL_FAILED_RESYNC,
                "ImagePullBackOff" => ctx
                    .images
                    .backoff_remaining(uid(pod), c.image.as_deref().unwrap_or_default())
                    .unwrap_or(PULL_FAILED_RESYNC)
                    .max(PULL_FAILED_RESYNC),
                _ => START_FAILED_RESYNC,
            };
            outcome.merge(retry);
            state.waiting.insert(c.name.clone(), w);
            false
        }
    }
}

/// Restarts an exited container unless it is in crash-loop backoff. Returns true if started.
pub(super) async fn restart_with_backoff(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    c: &Container,
    latest: &ContainerView,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> bool {
    let now = ctx.clock.now();
    if let Some(left) = state
        .backoff
        .remaining(&c.name, nanos_to_system(latest.finished_at), now)
    {
        let delay = state.backoff.delay(&c.name);
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let msg = format!(
            "back-off {}s restarting failed container={} pod={pod_name}_{ns}({})",
            delay.as_secs(),
            c.name,
            uid(pod)
        );
        if state
            .waiting
            .get(&c.name)
            .is_none_or(|w| w.reason != "CrashLoopBackOff")
        {
            ctx.events.warning(
                pod,
                Some(&c.name),
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_name}_{ns}({})",
                    c.name,
                    uid(pod)
                ),
            );
        }
        state.waiting.insert(
            c.name.clone(),
            Waiting {
                reason: "CrashLoopBackOff".to_string(),
                message: msg,
            },
        );
        outcome.merge(left);
        return false;
    }
    state.backoff.restarted(&c.name, now);
    restart_now(ctx, state, pod, c, latest, target, outcome).await
}

/// Starts the next instance of `c` after `latest` at once (no backoff): after an exit the
/// backoff allowed, or after a resize that restarts it. True if started.
pub(super) async fn restart_now(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    c: &Container,
    latest: &ContainerView,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> bool {
    // Keep one exited instance (for lastState and logs --previous); remove older ones.
    for old in target
        .runtime
        .containers_named(&c.name, target.sandbox_id)
        .filter(|x| x.exited() && x.id != latest.id)
    {
        super::container_gc::remove_container(ctx, old).await;
    }
    let instance = Instance {
        container: c,
        restart_count: latest.restart_count + 1,
        pid_target: None,
    };
    start_one(ctx, state, pod, &instance, target, outcome).await
}

/// Starts `c` where no instance runs or exited in this sandbox: the next instance after any the
/// pod had, replacing `unstarted` (one created whose start failed). True when it started.
pub(super) async fn start_new(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    c: &Container,
    target: &Target<'_>,
    unstarted: Option<&ContainerView>,
    outcome: &mut Outcome,
) -> bool {
    remove_unstarted(ctx, unstarted).await;
    let restart_count = target
        .runtime
        .latest_any(&c.name)
        .map_or(0, |l| l.restart_count + 1);
    let instance = Instance {
        container: c,
        restart_count,
        pid_target: None,
    };
    start_one(ctx, state, pod, &instance, target, outcome).await
}

/// Removes an instance that was created but never started (its StartContainer failed), before
/// the next attempt creates another: failed starts never pile up containers.
pub(super) async fn remove_unstarted(ctx: &PodContext, latest: Option<&ContainerView>) {
    let Some(stale) = latest.filter(|l| l.state == ContainerState::ContainerCreated) else {
        return;
    };
    if let Err(e) = ctx.cri.remove_container(&stale.id).await
        && !e.is_not_found()
    {
        warn!(container = %stale.name, error = %e, "cannot remove a container that never started");
    }
}

/// Stops a running container whose liveness or startup probe failed; the next sync restarts
/// it (under backoff, as any exited container). The grace period is the failed probe's
/// terminationGracePeriodSeconds when it sets one, else the pod's.
pub(super) async fn restart_if_unhealthy(
    ctx: &PodContext,
    pod: &Pod,
    spec: &Container,
    probes: &ProbeResults,
    c: &ContainerView,
) {
    let Some(kind) = probes.wants_restart(&c.id) else {
        return;
    };
    info!(container = %c.name, probe = %kind, "restarting unhealthy container");
    ctx.events.normal(
        pod,
        Some(&c.name),
        "Killing",
        format!(
            "Container {} failed {} probe, will be restarted",
            c.name,
            kind.to_string().to_lowercase()
        ),
    );
    kill::stop_container(ctx, &c.id, probe_grace(pod, spec, kind)).await;
}

/// The grace period of a kill a probe asked for: the probe's own terminationGracePeriodSeconds,
/// else the pod's.
fn probe_grace(pod: &Pod, spec: &Container, kind: ProbeKind) -> Duration {
    let probe = match kind {
        ProbeKind::Liveness => spec.liveness_probe.as_ref(),
        ProbeKind::Startup => spec.startup_probe.as_ref(),
        ProbeKind::Readiness => None,
    };
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .map_or_else(
            || super::super::grace::grace_period(pod),
            super::super::grace::seconds,
        )
}
