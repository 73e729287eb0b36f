//! When the pod worker runs a container's postStart and preStop hooks (postStart right after
//! the container starts, preStop before it is killed), within what time, and the events their
//! failures become (FailedPostStartHook, FailedPreStopHook). Running one handler is
//! [`super::hook_handler`].

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::context::PodContext;
use super::hook_handler::run_handler;
use super::kill;
use super::probe::ProbeTarget;
use super::runtime_exec::RuntimeExec;

/// Upper bound for a postStart handler (kubelet has none; a hung hook must not hang the pod).
const POST_START_LIMIT: Duration = Duration::from_secs(120);

fn target(
    pod: &Pod,
    c: &Container,
    container_id: &str,
    pod_ips: &[String],
    host_ip: &str,
) -> ProbeTarget {
    ProbeTarget {
        pod_ip: pod_ips.first().cloned(),
        host_ip: host_ip.to_string(),
        container_id: container_id.to_string(),
        ports: c.ports.clone().unwrap_or_default(),
        host_network: pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
    }
}

/// Runs postStart after the container started; on failure the container is killed.
pub async fn post_start(ctx: &PodContext, pod: &Pod, c: &Container, id: &str, pod_ips: &[String]) {
    let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
        return;
    };
    let t = target(pod, c, id, pod_ips, &ctx.node.host_ip);
    if let Err(msg) =
        run_handler(handler, &t, &RuntimeExec(ctx.cri.clone()), POST_START_LIMIT).await
    {
        ctx.events
            .warning(pod, Some(&c.name), "FailedPostStartHook", msg);
        ctx.events.normal(
            pod,
            Some(&c.name),
            "Killing",
            format!("FailedPostStartHook: container {} will be killed", c.name),
        );
        kill::stop_container(ctx, id, super::grace::grace_period(pod)).await;
    }
}

/// The preStop handlers of a pod's running containers, ready to run during termination.
pub struct PreStopTargets {
    pod: Pod,
    ips: Vec<String>,
}

impl PreStopTargets {
    pub fn new(pod: &Pod) -> Self {
        let ips = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ips.as_ref())
            .map(|v| v.iter().map(|p| p.ip.clone()).collect())
            .unwrap_or_default();
        PreStopTargets {
            pod: pod.clone(),
            ips,
        }
    }

    /// Runs the preStop handler of container `name` (id `id`) within `left`.
    pub async fn run(&self, ctx: &PodContext, name: String, id: String, left: Duration) {
        let spec = self.pod.spec.as_ref();
        let Some(c) = spec.and_then(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .find(|c| c.name == name)
        }) else {
            return;
        };
        let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
            return;
        };
        let t = target(&self.pod, c, &id, &self.ips, &ctx.node.host_ip);
        if let Err(msg) = run_handler(handler, &t, &RuntimeExec(ctx.cri.clone()), left).await {
            ctx.events
                .warning(&self.pod, Some(&name), "FailedPreStopHook", msg);
        }
    }
}
