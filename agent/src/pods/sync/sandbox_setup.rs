//! What containers need before they start: the pod's volumes, its sandbox (with kubelet's
//! FailedCreatePodSandBox and SandboxChanged events) and the sandbox's IPs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use tracing::{debug, warn};

use super::super::context::PodContext;
use super::super::sandbox::{self, SandboxEnv};
use super::super::status::Waiting;
use super::super::timing::Stage;
use super::{Outcome, PodState};

pub(super) fn sandbox_env(ctx: &PodContext) -> SandboxEnv<'_> {
    SandboxEnv {
        log_root: &ctx.log_root,
        host_resolv_conf: &ctx.host_resolv_conf,
        cluster_dns: &ctx.cluster_dns,
        cluster_domain: &ctx.cluster_domain,
        cgroups: &ctx.cgroups,
        userns: None,
    }
}

/// Sets up (or refreshes) the pod's volumes. None when one is not ready: its FailedMount event
/// is out, the containers wait in ContainerCreating and the sync is retried with backoff.
pub(super) async fn ensure_volumes(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    outcome: &mut Outcome,
) -> Option<HashMap<String, PathBuf>> {
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

/// kubelet's pod container manager: the pod's cgroup and its limits, once per worker (again
/// after a failure). False when they could not be written: the event is out, the containers
/// say why, and the sync is retried.
pub(super) async fn ensure_pod_cgroup(ctx: &PodContext, state: &mut PodState, pod: &Pod) -> bool {
    if state.pod_cgroup_made {
        return true;
    }
    match super::super::pod_cgroup::ensure(ctx, pod).await {
        Ok(limits) => {
            state.pod_cgroup_made = true;
            state.pod_cgroup_limits = limits;
            true
        }
        Err(message) => {
            ctx.events
                .warning(pod, None, "FailedCreatePodContainer", message.clone());
            all_creating(state, pod, &message);
            false
        }
    }
}

/// Runs the pod's sandbox (attempt 0 first, one more each time it had to be re-created).
/// Err when it could not be created: the event is out and the containers say why.
pub(super) async fn create_sandbox(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    attempt: u32,
) -> Result<String, ()> {
    let handler = match super::super::runtime_class::handler(&ctx.api, pod).await {
        Ok(h) => h,
        Err(e) => {
            sandbox_failed(ctx, state, pod, &e);
            return Err(());
        }
    };
    let supported = ctx
        .runtime_health
        .borrow()
        .supports_user_namespaces(&handler);
    let userns = match ctx.userns.for_pod(pod, &handler, supported) {
        Ok(ns) => ns,
        Err(e) => {
            sandbox_failed(ctx, state, pod, &e);
            return Err(());
        }
    };
    let env = SandboxEnv {
        userns: Some(&userns),
        ..sandbox_env(ctx)
    };
    if attempt == 0 && sandbox::needs_cluster_dns(pod, &env) {
        ctx.events.warning(
            pod,
            None,
            "MissingClusterDNS",
            "pod: \"ClusterFirst\" dnsPolicy requested but the node has no cluster DNS configured. Falling back to \"Default\" policy.".to_string(),
        );
    }
    let mut config = sandbox::sandbox_config(pod, attempt, &env);
    config.labels.insert(
        super::super::NODE_LABEL.to_string(),
        ctx.node.node_name.clone(),
    );
    if let Err(e) = std::fs::create_dir_all(&config.log_directory) {
        warn!(dir = %config.log_directory, error = %e, "cannot create pod log directory");
    }
    let began = Instant::now();
    // The CNI delegate forwards this pod's network requests to this agent.
    if let Some(uid) = pod.metadata.uid.as_deref() {
        crate::network::routes::record_pod(uid);
    }
    state.timings.cri_call();
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

/// The pod's IPs in `sandbox_id`, asked of the runtime once per sandbox; a hostNetwork pod's
/// are the node's (kubelet's rule, for its status and for `status.podIP` in its environment).
pub(super) async fn pod_ips(
    ctx: &PodContext,
    state: &mut PodState,
    pod: &Pod,
    sandbox_id: &str,
) -> Vec<String> {
    if let Some((id, ips)) = &state.ips
        && id == sandbox_id
    {
        return ips.clone();
    }
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let ips: Vec<String> = if host_network {
        vec![ctx.node.host_ip.clone()]
    } else {
        sandbox_ips(ctx, sandbox_id).await
    };
    state.ips = Some((sandbox_id.to_string(), ips.clone()));
    ips
}

/// The IPs the runtime reports for a sandbox (its CNI result's).
async fn sandbox_ips(ctx: &PodContext, sandbox_id: &str) -> Vec<String> {
    match ctx.cri.pod_sandbox_status(sandbox_id, false).await {
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
    }
}
