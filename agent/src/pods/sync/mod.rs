//! One sync of one pod: compare what the pod asks for with what the runtime holds and take the
//! next steps of the pod's current phase ([`Lifecycle`]), moving on to the next phase in the
//! same sync when one ends. One file per phase:
//!
//! - [`admitting`]: admission, and pods that had ended before the worker saw them;
//! - an eviction (the eviction manager's request) ends a pod that is not ending yet, as the
//!   agent's verdict: Failed, reason Evicted, its containers stopped within the eviction's grace;
//! - [`syncing`]: sandbox, init containers in order, containers, restarts, the active deadline
//!   (with [`sandbox_setup`] and [`container_starts`] for its steps, and [`container_gc`] for
//!   the dead instances and old sandboxes a running pod leaves);
//! - [`terminating`]: stopping the containers within the grace period;
//! - [`terminated`]: releasing the sandbox, volumes and resources; deleting the pod object;
//! - [`resizing`]: an in-place resize judged, then applied to the running containers;
//! - [`report`]: the status, written when it changed.
//!
//! Only the pod's worker calls [`sync`], so two syncs of one pod never overlap.

mod admitting;
pub(crate) mod container_gc;
mod container_starts;
mod ephemeral_starts;
mod report;
mod resizing;
mod sandbox_setup;
mod syncing;
mod terminated;
mod terminating;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::context::PodContext;
use super::lifecycle::{Ending, Eviction, Lifecycle};
use super::observe;
use super::pod_probes::ProbeResults;
use super::restart_backoff::RestartBackoff;
use super::status::{Terminal, Waiting};
use super::timing::Timings;

pub use terminated::remove_gone;

/// What a worker remembers about its pod between syncs.
#[derive(Default)]
pub struct PodState {
    /// Where the pod is on its timeline.
    pub lifecycle: Lifecycle,
    /// Waiting reasons the sync set (image pulls, backoff, config errors), by container name.
    pub waiting: HashMap<String, Waiting>,
    pub backoff: RestartBackoff,
    pub timings: Timings,
    pub last_written: Option<PodStatus>,
    /// Pod IPs of the current sandbox, by sandbox id.
    pub ips: Option<(String, Vec<String>)>,
    /// Termination messages read from exited containers, by container id.
    pub termination_messages: HashMap<String, String>,
    /// The pod's cgroup and its limits are written (once per worker).
    pub pod_cgroup_made: bool,
    /// The limits last written to the pod's cgroup (none where the agent writes none).
    pub pod_cgroup_limits: Option<crate::cgroups::ResourceConfig>,
    /// Its resize: the allocation, what the containers' cgroups hold, the conditions.
    pub resize: super::resize::Resize,
    /// Ids of the containers the current sync started.
    pub(super) started: Vec<String>,
    /// An eviction the worker was asked for and the next sync carries out.
    pub eviction: Option<Eviction>,
    /// The longest its containers may take to stop once an eviction ends it.
    pub grace_override: Option<Duration>,
}

impl PodState {
    /// The first IP of the current sandbox, where probes connect.
    pub fn pod_ip(&self) -> Option<&str> {
        self.ips
            .as_ref()
            .and_then(|(_, ips)| ips.first())
            .map(String::as_str)
    }
}

/// What the worker should do after a sync.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Sync again after this long even if nothing happens (backoff expiry, deadlines).
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    /// Sync again within `d` at the latest.
    fn merge(&mut self, d: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(d, |x| x.min(d)));
    }
}

/// After one phase's step: the pod moved on (run the next phase now), or the sync is done.
enum Step {
    Next,
    Done,
}

/// The phases a sync can pass through: admitting, syncing, terminating, terminated, cleaned up.
const PHASES: usize = 5;

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// Succeeded or Failed: the pod ended for good.
fn is_terminal_phase(status: &PodStatus) -> bool {
    status
        .phase
        .as_deref()
        .is_some_and(|p| p == "Succeeded" || p == "Failed")
}

fn deleted(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Ends the pod as the eviction says, unless it is ending already (a deletion or the agent's
/// verdict came first and stands; a shorter grace still applies, as kubelet's killPodNow
/// shortens a termination under way).
fn evict(state: &mut PodState, e: Eviction) {
    let tighter = state.grace_override.map_or(e.grace, |g| g.min(e.grace));
    if state.lifecycle.is_ending() {
        state.grace_override = Some(tighter);
        return;
    }
    let verdict = Ending::Verdict(Terminal {
        phase: "Failed",
        reason: e.reason.to_string(),
        message: e.message,
        disruption_target: e.disruption_target,
    });
    state.grace_override = Some(tighter);
    let now = tokio::time::Instant::now();
    state.lifecycle = std::mem::take(&mut state.lifecycle).terminate(now, verdict);
}

/// Syncs `pod` once, given what its probes said.
pub async fn sync(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    probes: &ProbeResults,
) -> Result<Outcome, cri_client::CriError> {
    let mut outcome = Outcome::default();
    let runtime = observe::observe(ctx.cri.as_ref(), uid(pod)).await?;
    if state.lifecycle == Lifecycle::Admitting && admitting::ended_before(pod) {
        state.lifecycle = std::mem::take(&mut state.lifecycle).ended(Ending::Recorded);
    }
    if deleted(pod) {
        let now = tokio::time::Instant::now();
        state.lifecycle = std::mem::take(&mut state.lifecycle).terminate(now, Ending::Containers);
    }
    if let Some(e) = state.eviction.take() {
        evict(state, e);
    }
    state.resize.restore(pod);
    // Every step moves the pod forward, so this ends within one pass over the phases.
    for _ in 0..PHASES {
        if state.lifecycle == Lifecycle::Syncing {
            resizing::allocate(ctx, state, pod, &mut outcome);
        } else if state.lifecycle.is_ending() {
            // A pod that ends resizes no more (kubelet clears both conditions).
            state.resize.pending = None;
            state.resize.in_progress = None;
        }
        // Every phase works on the pod as the node allocated it.
        let allocated = state.resize.apply(pod);
        let pod = allocated.as_ref();
        let step = match state.lifecycle {
            Lifecycle::Admitting => admitting::admit(ctx, state, pod),
            Lifecycle::Syncing => {
                syncing::sync(ctx, state, pod, probes, &runtime, &mut outcome).await?
            }
            Lifecycle::Terminating { .. } => terminating::stop(ctx, state, pod, &runtime).await,
            Lifecycle::Terminated { .. } => {
                terminated::clean_up(ctx, state, pod, probes, &mut outcome).await?
            }
            Lifecycle::CleanedUp { .. } => {
                terminated::cleaned_up(ctx, state, pod, probes, &mut outcome).await?
            }
        };
        if let Step::Done = step {
            break;
        }
    }
    Ok(outcome)
}
