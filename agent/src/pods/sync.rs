//! One sync of one pod: compare what the pod asks for with what the runtime holds, take the next
//! steps (sandbox, init containers in order, containers, restarts with backoff, termination),
//! then write the status if it changed. Only the pod's worker calls it, so two syncs of one pod
//! never overlap.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use cri_client::api::PodSandboxConfig;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, info, warn};

use super::container::container_hash;
use super::context::PodContext;
use super::kill;
use super::observe::{self, ContainerView, ObservedPod};
use super::restart_backoff::RestartBackoff;
use super::sandbox::{self, SandboxEnv};
use super::start::{self, StartRequest};
use super::status::{self, Terminal, Waiting};
use super::termination_message;
use super::timing::{Stage, Timings};

/// What a worker remembers about its pod between syncs.
#[derive(Default)]
pub struct PodState {
    pub admitted: bool,
    pub waiting: HashMap<String, Waiting>,
    pub backoff: RestartBackoff,
    pub terminal: Option<Terminal>,
    pub timings: Timings,
    pub last_written: Option<PodStatus>,
    /// Pod IPs of the current sandbox, by sandbox id.
    pub ips: Option<(String, Vec<String>)>,
    pub readiness: HashMap<String, bool>,
    pub started: HashMap<String, bool>,
    /// Containers (by id) a liveness or startup probe wants restarted.
    pub unhealthy: HashSet<String>,
    pub termination_messages: HashMap<String, String>,
    /// When termination began and its deadline.
    pub killing: Option<tokio::time::Instant>,
    pub deletion_requested: bool,
    pub seen_running: bool,
    /// A container could not be started: sync again after this long.
    pub retry_after: Option<Duration>,
}

/// Resync delay after a failed image pull, so the next sync reports ImagePullBackOff.
const PULL_FAILED_RESYNC: Duration = Duration::from_secs(1);
/// Resync delay after any other start failure (config errors, create/start errors).
const START_FAILED_RESYNC: Duration = Duration::from_secs(10);

/// The sandbox the pod's containers go into.
struct Target<'a> {
    sandbox_id: &'a str,
    config: &'a PodSandboxConfig,
    pod_ips: &'a [String],
    /// The runtime state the sync started from.
    runtime: &'a ObservedPod,
    /// The pod's volumes, host path by name.
    volumes: &'a HashMap<String, std::path::PathBuf>,
}

/// What the worker should do after a sync.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sync again after this long even if nothing happens (backoff expiry, deadlines).
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    fn after(d: Duration) -> Self {
        Outcome {
            requeue_after: Some(d),
        }
    }

    fn merge(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |x| x.min(d)));
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn nanos_to_system(nanos: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

fn is_terminal_phase(status: Option<&PodStatus>) -> bool {
    status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

fn sandbox_env(ctx: &PodContext) -> SandboxEnv<'_> {
    SandboxEnv {
        log_root: &ctx.log_root,
        host_resolv_conf: &ctx.host_resolv_conf,
        cluster_dns: &ctx.cluster_dns,
        cluster_domain: &ctx.cluster_domain,
    }
}

/// Syncs `pod` once.
pub async fn sync(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
) -> Result<Outcome, cri_client::CriError> {
    let runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    if pod.metadata.deletion_timestamp.is_some() {
        return terminate(ctx, state, pod, &runtime).await;
    }
    // A pod that already ended keeps the status it has; only its sandbox is cleaned.
    if state.terminal.is_none()
        && is_terminal_phase(pod.status.as_ref())
        && state.last_written.is_none()
    {
        kill::stop_sandboxes(ctx, &runtime).await;
        ctx.admission.release(uid(pod));
        unmount_volumes(ctx, pod).await;
        return Ok(Outcome::default());
    }
    if !state.admitted && state.terminal.is_none() {
        let began = Instant::now();
        match ctx.admission.admit(pod, &ctx.node) {
            Ok(()) => state.admitted = true,
            Err(refusal) => {
                ctx.events
                    .warning(pod, None, &refusal.reason, refusal.message.clone());
                state.terminal = Some(Terminal {
                    phase: "Failed",
                    message: refusal.status_message(),
                    reason: refusal.reason,
                });
            }
        }
        state.timings.add(Stage::Admission, began.elapsed());
        report_unsupported(ctx, pod);
    }
    let mut outcome = Outcome::default();
    if state.terminal.is_none()
        && let Some(d) = active_deadline_left(pod, state.last_written.as_ref())
    {
        if d.is_zero() {
            let msg = "Pod was active on the node longer than the specified deadline".to_string();
            ctx.events
                .normal(pod, None, "DeadlineExceeded", msg.clone());
            let deadline = super::grace::deadline(
                tokio::time::Instant::now(),
                super::grace::grace_period(pod),
            );
            kill::stop_containers(
                ctx,
                pod,
                &runtime,
                deadline,
                |n| format!("Stopping container {n}"),
                |_, _, _| async {},
            )
            .await;
            state.terminal = Some(Terminal {
                phase: "Failed",
                reason: "DeadlineExceeded".to_string(),
                message: msg,
            });
        } else {
            outcome.merge(d);
        }
    }
    if state.terminal.is_some() {
        kill::stop_sandboxes(ctx, &runtime).await;
        ctx.admission.release(uid(pod));
        unmount_volumes(ctx, pod).await;
        let runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
        write_status(ctx, state, pod, &runtime).await;
        return Ok(outcome);
    }

    state.retry_after = None;
    let runtime = run_containers(ctx, state, pod, runtime, &mut outcome).await?;
    if let Some(retry) = state.retry_after {
        outcome.merge(retry);
    }
    let status = write_status(ctx, state, pod, &runtime).await;
    if is_terminal_phase(Some(&status)) {
        // Everything ended for good: release the sandbox (network, IP) and the node's resources.
        kill::stop_sandboxes(ctx, &runtime).await;
        ctx.admission.release(uid(pod));
        unmount_volumes(ctx, pod).await;
    }
    Ok(outcome)
}

/// Sandbox, then init containers in order, then the regular containers. Returns the runtime
/// state after the actions.
async fn run_containers(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    mut runtime: ObservedPod,
    outcome: &mut Outcome,
) -> Result<ObservedPod, cri_client::CriError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = restart_policy(pod).to_string();
    let env = sandbox_env(ctx);

    // The pod ended by its own containers (restartPolicy): do not start it again.
    if runtime.ready_sandbox().is_none() && state.seen_running && all_done(pod, &runtime, &policy) {
        return Ok(runtime);
    }
    // Volumes first: no sandbox or container starts until every volume is set up.
    let Some(volumes) = ensure_volumes(ctx, state, pod, outcome).await else {
        return Ok(runtime);
    };
    let sandbox_id = match runtime.ready_sandbox() {
        Some(s) => s.id.clone(),
        None => {
            let attempt = runtime.sandboxes.first().map_or(0, |s| s.attempt + 1);
            match create_sandbox(ctx, state, pod, attempt).await {
                Ok(id) => {
                    runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
                    id
                }
                Err(()) => {
                    outcome.merge(Duration::from_secs(2));
                    return Ok(runtime);
                }
            }
        }
    };
    let sandbox_config = sandbox::sandbox_config(
        pod,
        runtime.sandboxes.first().map_or(0, |s| s.attempt),
        &env,
    );
    let pod_ips = pod_ips(ctx, state, &sandbox_id).await;
    let target = Target {
        sandbox_id: &sandbox_id,
        config: &sandbox_config,
        pod_ips: &pod_ips,
        runtime: &runtime,
        volumes: &volumes,
    };
    state.seen_running = true;

    // Init containers, one at a time; sidecars (restartPolicy Always) keep running.
    for c in spec.init_containers.iter().flatten() {
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        let latest = runtime.latest(&c.name, &sandbox_id).cloned();
        match latest {
            Some(l) if l.running() => {
                if sidecar {
                    check_liveness(ctx, state, pod, &l).await;
                    continue;
                }
                return Ok(runtime);
            }
            Some(l) if l.exited() && l.exit_code == 0 && !sidecar => continue,
            Some(l) if l.exited() => {
                let restart = sidecar || should_restart(&policy, l.exit_code);
                if !restart {
                    return Ok(runtime);
                }
                if !restart_with_backoff(ctx, state, pod, c, &l, &target, outcome).await {
                    return Ok(runtime);
                }
                if !sidecar {
                    return observe::observe(ctx.cri.as_ref(), uid(pod)).await;
                }
            }
            _ => {
                let restart_count = runtime
                    .latest_any(&c.name)
                    .map_or(0, |l| l.restart_count + 1);
                let started = start_one(ctx, state, pod, c, &target, restart_count).await;
                if !sidecar || !started {
                    return observe::observe(ctx.cri.as_ref(), uid(pod)).await;
                }
            }
        }
    }

    // Regular containers.
    for c in &spec.containers {
        let latest = runtime.latest(&c.name, &sandbox_id).cloned();
        match latest {
            Some(l) if l.running() => {
                if !l.hash.is_empty() && l.hash != container_hash(c) {
                    ctx.events.normal(
                        pod,
                        Some(&c.name),
                        "Killing",
                        format!("Container {} definition changed, will be restarted", c.name),
                    );
                    kill::stop_container(ctx, &l.id, super::grace::grace_period(pod)).await;
                    outcome.merge(Duration::ZERO);
                } else {
                    check_liveness(ctx, state, pod, &l).await;
                }
            }
            Some(l) if l.exited() => {
                if should_restart(&policy, l.exit_code) {
                    restart_with_backoff(ctx, state, pod, c, &l, &target, outcome).await;
                }
            }
            _ => {
                let restart_count = runtime
                    .latest_any(&c.name)
                    .map_or(0, |l| l.restart_count + 1);
                start_one(ctx, state, pod, c, &target, restart_count).await;
            }
        }
    }
    observe::observe(ctx.cri.as_ref(), uid(pod)).await
}

/// Sets up (or refreshes) the pod's volumes. None when one is not ready: its FailedMount event
/// is out, the containers wait in ContainerCreating and the sync is retried with backoff.
async fn ensure_volumes(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    outcome: &mut Outcome,
) -> Option<HashMap<String, std::path::PathBuf>> {
    let began = Instant::now();
    let result = ctx.volumes.ensure(pod).await;
    state.timings.add(Stage::Volumes, began.elapsed());
    match result {
        Ok(ready) => {
            if let Some(d) = ready.refresh_in {
                outcome.merge(d);
            }
            Some(ready.paths)
        }
        Err(not_ready) => {
            all_creating(state, pod, &not_ready.messages.join("; "));
            outcome.merge(not_ready.retry_in);
            None
        }
    }
}

/// A pod that ended for good keeps no volume mounted (its directory stays until deletion).
async fn unmount_volumes(ctx: &PodContext, pod: &Pod) {
    if let Err(e) = ctx.volumes.unmount_all(uid(pod)).await {
        warn!(error = %e, "cannot unmount the volumes of an ended pod");
    }
}

/// True when every regular container exited and none should restart.
fn all_done(pod: &Pod, runtime: &ObservedPod, policy: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.containers.iter().all(|c| {
        runtime
            .latest_any(&c.name)
            .is_some_and(|l| l.exited() && !should_restart(policy, l.exit_code))
    })
}

async fn create_sandbox(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    attempt: u32,
) -> Result<String, ()> {
    let env = sandbox_env(ctx);
    if attempt == 0 && sandbox::needs_cluster_dns(pod, &env) {
        ctx.events.warning(
            pod,
            None,
            "MissingClusterDNS",
            "pod: \"ClusterFirst\" dnsPolicy requested but the node has no cluster DNS configured. Falling back to \"Default\" policy.".to_string(),
        );
    }
    let mut config = sandbox::sandbox_config(pod, attempt, &env);
    config
        .labels
        .insert(super::NODE_LABEL.to_string(), ctx.node.node_name.clone());
    if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
        warn!(dir = %config.log_directory, error = %e, "cannot create pod log directory");
    }
    let began = Instant::now();
    let handler = match super::runtime_class::handler(&ctx.client, pod).await {
        Ok(h) => h,
        Err(e) => {
            sandbox_failed(ctx, state, pod, &e);
            return Err(());
        }
    };
    // The CNI delegate forwards this pod's network requests to this agent.
    if let Some(uid) = pod.metadata.uid.as_deref() {
        crate::network::routes::record_pod(uid);
    }
    match ctx.cri.run_pod_sandbox(config, &handler).await {
        Ok(id) => {
            state.timings.add(Stage::Sandbox, began.elapsed());
            state.ips = None;
            if attempt > 0 {
                ctx.events.normal(
                    pod,
                    None,
                    "SandboxChanged",
                    "Pod sandbox changed, it will be killed and re-created.".to_string(),
                );
            }
            debug!(sandbox = %id, attempt, "sandbox ready");
            Ok(id)
        }
        Err(e) => {
            sandbox_failed(ctx, state, pod, &e);
            Err(())
        }
    }
}

/// kubelet's FailedCreatePodSandBox: the event, and every container waiting in
/// ContainerCreating with the reason.
fn sandbox_failed(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    error: &dyn std::fmt::Display,
) {
    let msg = format!("Failed to create pod sandbox: {error}");
    ctx.events
        .warning(pod, None, "FailedCreatePodSandBox", msg.clone());
    all_creating(state, pod, &msg);
}

/// Every container waits in ContainerCreating, saying why.
fn all_creating(state: &mut PodState, pod: &Pod, message: &str) {
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        state.waiting.insert(
            c.name.clone(),
            Waiting {
                reason: "ContainerCreating".to_string(),
                message: message.to_string(),
            },
        );
    }
}

async fn pod_ips(ctx: &PodContext, state: &mut PodState, sandbox_id: &str) -> Vec<String> {
    if let Some((id, ips)) = &state.ips
        && id == sandbox_id
    {
        return ips.clone();
    }
    let ips: Vec<String> = match ctx.cri.pod_sandbox_status(sandbox_id, false).await {
        Ok(r) => r
            .status
            .and_then(|s| s.network)
            .map(|n| {
                std::iter::once(n.ip)
                    .chain(n.additional_ips.into_iter().map(|a| a.ip))
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            warn!(sandbox = sandbox_id, error = %e, "cannot read sandbox status");
            Vec::new()
        }
    };
    state.ips = Some((sandbox_id.to_string(), ips.clone()));
    ips
}

async fn start_one(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    c: &Container,
    target: &Target<'_>,
    restart_count: u32,
) -> bool {
    let req = StartRequest {
        pod,
        container: c,
        sandbox_id: target.sandbox_id,
        sandbox_config: target.config,
        restart_count,
        pod_ips: target.pod_ips,
        volumes: target.volumes,
    };
    match start::start(ctx, &mut state.timings, &req).await {
        Ok(id) => {
            state.waiting.remove(&c.name);
            state.readiness.remove(&c.name);
            state.started.remove(&c.name);
            super::lifecycle_hooks::post_start(ctx, pod, c, &id, target.pod_ips).await;
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
            state.retry_after = Some(state.retry_after.map_or(retry, |r| r.min(retry)));
            state.waiting.insert(c.name.clone(), w);
            false
        }
    }
}

/// Restarts an exited container unless it is in crash-loop backoff. Returns true if started.
async fn restart_with_backoff(
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
    // Keep one exited instance (for lastState and logs --previous); remove older ones.
    for old in target
        .runtime
        .containers_named(&c.name, target.sandbox_id)
        .filter(|x| x.exited() && x.id != latest.id)
    {
        let _ = ctx.cri.remove_container(&old.id).await;
    }
    start_one(ctx, state, pod, c, target, latest.restart_count + 1).await
}

async fn check_liveness(ctx: &PodContext, state: &mut PodState, pod: &Pod, c: &ContainerView) {
    if state.unhealthy.remove(&c.id) {
        info!(container = %c.name, "restarting unhealthy container");
        ctx.events.normal(
            pod,
            Some(&c.name),
            "Killing",
            format!(
                "Container {} failed liveness probe, will be restarted",
                c.name
            ),
        );
        kill::stop_container(ctx, &c.id, super::grace::grace_period(pod)).await;
    }
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

/// Emits one event per pod for what the agent does not do yet.
fn report_unsupported(ctx: &PodContext, pod: &Pod) {
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        ctx.events.warning(
            pod,
            None,
            "Unsupported",
            "ephemeral containers are not supported".to_string(),
        );
    }
}

/// Computes the status and writes it when it changed; returns it.
async fn write_status(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    runtime: &ObservedPod,
) -> PodStatus {
    read_termination_messages(ctx, state, pod, runtime);
    let ips = state
        .ips
        .as_ref()
        .map(|(_, ips)| ips.clone())
        .unwrap_or_default();
    let status = status::compute(&status::Inputs {
        pod,
        runtime,
        runtime_name: &ctx.runtime_name,
        pod_ips: &ips,
        host_ip: &ctx.node.host_ip,
        waiting: &state.waiting,
        readiness: &state.readiness,
        started: &state.started,
        termination_messages: &state.termination_messages,
        terminal: state.terminal.as_ref(),
        now: Timestamp::now(),
    });
    if state.last_written.as_ref() == Some(&status) {
        return status;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    match ctx.writer.write_status(pod, &status).await {
        Ok(()) => {
            if ready && let Some(line) = state.timings.ready() {
                ctx.events.normal(pod, None, "Ready", line);
            }
            state.last_written = Some(status.clone());
        }
        Err(e) => warn!(error = %e, "failed to write pod status"),
    }
    status
}

/// Graceful termination: preStop, stop containers within the grace period, stop the sandbox,
/// write the final status, remove everything, then delete the pod object (grace 0, UID
/// precondition).
async fn terminate(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    runtime: &ObservedPod,
) -> Result<Outcome, cri_client::CriError> {
    if state.deletion_requested {
        return Ok(Outcome::after(Duration::from_secs(5)));
    }
    let began = *state.killing.get_or_insert_with(tokio::time::Instant::now);
    let deadline = super::grace::deadline(began, super::grace::grace_period(pod));
    let targets = super::lifecycle_hooks::PreStopTargets::new(pod);
    kill::stop_containers(
        ctx,
        pod,
        runtime,
        deadline,
        |n| format!("Stopping container {n}"),
        |name, id, left| targets.run(ctx, name, id, left),
    )
    .await;
    kill::stop_sandboxes(ctx, runtime).await;
    let after = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    write_status(ctx, state, pod, &after).await;
    let log_dir = sandbox::log_directory(&ctx.log_root, pod);
    kill::remove_all(ctx, uid(pod), &after, Some(&log_dir)).await;
    ctx.admission.release(uid(pod));
    ctx.images.forget_pod(uid(pod));
    match ctx.writer.delete(pod).await {
        Ok(()) => {
            state.deletion_requested = true;
            Ok(Outcome::after(Duration::from_secs(5)))
        }
        Err(e) => {
            warn!(error = %e, "failed to delete pod object; retrying");
            Ok(Outcome::after(Duration::from_secs(1)))
        }
    }
}

/// Cleans up a pod that is gone from the API (deleted by force, or while the agent was down).
pub async fn remove_gone(
    ctx: &PodContext,
    pod_uid: &str,
    log_dir: Option<&std::path::Path>,
) -> Result<(), cri_client::CriError> {
    let runtime = observe::observe(ctx.cri.as_ref(), pod_uid).await?;
    kill::remove_all(ctx, pod_uid, &runtime, log_dir).await;
    ctx.admission.release(pod_uid);
    ctx.images.forget_pod(pod_uid);
    Ok(())
}
