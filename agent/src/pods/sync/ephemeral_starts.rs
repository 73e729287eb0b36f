//! Starting the pod's ephemeral containers (`kubectl debug`), as kubelet does: each one that
//! has no instance yet is started into the sandbox, even while init containers run, and never
//! again once it has run (its instance from an older sandbox counts too). One with a
//! `targetContainerName` joins the PID namespace of that container's running instance; while
//! there is none it waits with CreateContainerConfigError.

use cri_client::api::ContainerState;
use k8s_openapi::api::core::v1::Pod;

use super::super::context::PodContext;
use super::super::ephemeral;
use super::super::status::Waiting;
use super::container_starts::{self, Instance, Target};
use super::{Outcome, PodState};

/// Starts the ephemeral containers that never ran. True when it acted on the runtime.
pub(super) async fn run_ephemeral_containers(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    target: &Target<'_>,
    outcome: &mut Outcome,
) -> bool {
    let mut acted = false;
    for e in ephemeral::of(pod) {
        let name = e.container.name.as_str();
        let latest = target.runtime.latest_any(name);
        if latest.is_some_and(|l| l.state != ContainerState::ContainerCreated) {
            continue;
        }
        let pid_target = match &e.target {
            None => None,
            Some(t) => {
                let running = target
                    .runtime
                    .latest(t, target.sandbox_id)
                    .filter(|l| l.running());
                let Some(running) = running else {
                    state.waiting.insert(
                        name.to_string(),
                        Waiting {
                            reason: "CreateContainerConfigError".to_string(),
                            message: format!("target container {t:?} is not running"),
                        },
                    );
                    outcome.merge(std::time::Duration::from_secs(2));
                    continue;
                };
                Some(running.id.clone())
            }
        };
        container_starts::remove_unstarted(ctx, latest).await;
        let instance = Instance {
            container: &e.container,
            restart_count: 0,
            pid_target: pid_target.as_deref(),
        };
        container_starts::start_one(ctx, state, pod, &instance, target, outcome).await;
        acted = true;
    }
    acted
}
