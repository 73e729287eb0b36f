//! Starting one container, as kubelet's startContainer: resolve its environment, make sure its
//! image is there, create it, start it, run its postStart hook. Each failure becomes the
//! container's waiting reason and an event with kubelet's reason.

use std::time::Instant;

use cri_client::api::{self, PodSandboxConfig};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use tracing::debug;

use super::container::{self, ContainerInputs, ResolvedEnv};
use super::context::PodContext;
use super::image_volumes::{self, ImageVolumes};
use super::images::{Ensured, Wanted};
use super::pull::{pull, pull_secrets};
use super::status::Waiting;
use super::timing::{Stage, Timings};

/// What a container start needs to know of its pod.
pub struct StartRequest<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub sandbox_id: &'a str,
    pub sandbox_config: &'a PodSandboxConfig,
    pub restart_count: u32,
    pub pod_ips: &'a [String],
    /// The pod's volumes, host path by name (from the volume manager).
    pub volumes: &'a std::collections::HashMap<String, std::path::PathBuf>,
    /// An ephemeral container's target: the id of the container whose PID namespace it joins.
    pub pid_target: Option<&'a str>,
    /// The image volumes this sync pulled already.
    pub pulled_volumes: &'a image_volumes::Pulled,
}

fn waiting(reason: &str, message: String) -> Waiting {
    Waiting {
        reason: reason.to_string(),
        message,
    }
}

/// Creates the host file bound at terminationMessagePath: ROOT/pods/UID/containers/NAME/ID.
fn termination_message_file(
    ctx: &PodContext,
    pod: &Pod,
    name: &str,
    restart: u32,
) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let uid = pod.metadata.uid.as_deref()?;
    ctx.volumes.layout().create_pod_dir(uid).ok()?;
    let dir = ctx.pod_dir(uid).join("containers").join(name);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("termination-{restart}"));
    std::fs::write(&path, b"").ok()?;
    // Any user the container runs as must be able to write its message (kubelet: 0666); the
    // pod dir above is 0750, so no other local user reaches it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).ok()?;
    Some(path)
}

/// Reports a failure the way kubelet does (a `Failed` event saying `Error: msg`) and returns
/// the waiting reason to show.
fn failed(ctx: &PodContext, req: &StartRequest<'_>, reason: &str, msg: String) -> Waiting {
    ctx.events.warning(
        req.pod,
        Some(&req.container.name),
        "Failed",
        format!("Error: {msg}"),
    );
    waiting(reason, msg)
}

/// The container's environment (ConfigMaps, Secrets, downward API), with an event for each
/// `envFrom` source whose keys were skipped.
async fn environment(ctx: &PodContext, req: &StartRequest<'_>) -> Result<ResolvedEnv, Waiting> {
    let (pod, c) = (req.pod, req.container);
    let (node, ips) = (&ctx.node, req.pod_ips);
    let resolved = match ctx.env_reads {
        super::context::EnvReads::Api => match ctx.api.client() {
            Ok(client) => {
                let src = super::service_lister::CachedEnvSource {
                    client,
                    services: &ctx.services,
                };
                container::resolve_env(&src, pod, c, node, ips).await
            }
            Err(_) => container::resolve_env(&super::context::NoObjects, pod, c, node, ips).await,
        },
        #[cfg(test)]
        super::context::EnvReads::Empty => {
            container::resolve_env(&super::context::NoObjects, pod, c, node, ips).await
        }
    };
    let env =
        resolved.map_err(|e| failed(ctx, req, "CreateContainerConfigError", e.to_string()))?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for skipped in &env.skipped {
        ctx.events.warning(
            pod,
            Some(&c.name),
            container::env::INVALID_ENV_NAMES_REASON,
            skipped.event_message(ns),
        );
    }
    Ok(env)
}

/// Makes sure the container's image is there (pulling it with the pod's pull secrets), with
/// kubelet's events for each outcome.
async fn image(
    ctx: &PodContext,
    timings: &mut Timings,
    req: &StartRequest<'_>,
    secrets: &[Secret],
) -> Result<Ensured, Waiting> {
    let c = req.container;
    let image_started = Instant::now();
    let ensured = pull(ctx, req.pod, Some(&c.name), Wanted::container(c), secrets).await;
    timings.add(Stage::Image, image_started.elapsed());
    ensured
}

/// The container's mounts: its volume mounts (subPath binds included) and the kubelet-managed
/// /etc/hosts.
fn mounts(
    ctx: &PodContext,
    req: &StartRequest<'_>,
    env: &ResolvedEnv,
    images: &ImageVolumes,
) -> Result<Vec<api::Mount>, Waiting> {
    let (pod, c) = (req.pod, req.container);
    let sources = crate::volumes::MountSources {
        paths: req.volumes,
        images,
    };
    let mut mounts =
        crate::volumes::container_mounts(ctx.volumes.layout(), pod, c, &sources, &env.vars)
            .map_err(|msg| failed(ctx, req, "CreateContainerConfigError", msg))?;
    if super::etc_hosts::applies(pod, c, &mounts, req.pod_ips) {
        let hosts = super::etc_hosts::write(&ctx.root_dir, pod, req.pod_ips, &ctx.cluster_domain)
            .map_err(|e| {
            let msg = format!("failed to write the pod's hosts file: {e}");
            failed(ctx, req, "CreateContainerConfigError", msg)
        })?;
        mounts.push(hosts);
    }
    Ok(mounts)
}

/// The user namespace the pod's sandbox was made with: its containers join it.
fn sandbox_userns(config: &PodSandboxConfig) -> Option<api::UserNamespace> {
    let linux = config.linux.as_ref()?;
    let options = linux
        .security_context
        .as_ref()?
        .namespace_options
        .as_ref()?;
    options.userns_options.clone()
}

/// Creates the container from its config; returns its id.
async fn create(
    ctx: &PodContext,
    timings: &mut Timings,
    req: &StartRequest<'_>,
    env: &ResolvedEnv,
    ensured: &Ensured,
    mounts: Vec<api::Mount>,
) -> Result<String, Waiting> {
    let (pod, c) = (req.pod, req.container);
    let name = c.name.as_str();
    let create_started = Instant::now();
    let inputs = ContainerInputs {
        pod,
        container: c,
        restart_count: req.restart_count,
        image_ref: &ensured.image_ref,
        env: &env.vars,
        mounts,
        termination_message_host_path: termination_message_file(ctx, pod, name, req.restart_count),
        node_memory_capacity_bytes: ctx.node.memory_capacity_bytes,
    };
    let options = container::ConfigOptions {
        image_user: Some(container::ImageUser::from_image(ensured.image.as_ref())),
        security: container::SecurityOptions::for_root_dir(&ctx.root_dir),
        pid_target: req.pid_target.map(str::to_string),
        userns: sandbox_userns(req.sandbox_config),
        ..container::ConfigOptions::default()
    };
    let config = container::container_config_with(&inputs, &options)
        .map_err(|e| failed(ctx, req, "CreateContainerConfigError", e.to_string()))?;
    let id = ctx
        .cri
        .create_container(req.sandbox_id, config, req.sandbox_config.clone())
        .await
        .map_err(|e| failed(ctx, req, "CreateContainerError", e.to_string()))?;
    timings.add(Stage::Create, create_started.elapsed());
    ctx.events.normal(
        pod,
        Some(name),
        "Created",
        format!("Created container: {name}"),
    );
    Ok(id)
}

/// Starts `req.container`. On failure returns the waiting reason to report.
pub async fn start(
    ctx: &PodContext,
    timings: &mut Timings,
    req: &StartRequest<'_>,
) -> Result<String, Waiting> {
    let env = environment(ctx, req).await?;
    let secrets = pull_secrets(ctx, req.pod).await;
    let ensured = image(ctx, timings, req, &secrets).await?;
    let images =
        image_volumes::ensure(ctx, req.pod, req.container, &secrets, req.pulled_volumes).await?;
    let mounts = mounts(ctx, req, &env, &images)?;
    let id = create(ctx, timings, req, &env, &ensured, mounts).await?;

    let name = req.container.name.as_str();
    let start_started = Instant::now();
    if let Err(e) = ctx.cri.start_container(&id).await {
        // The created container stays (exited/created) so its failure shows in the status.
        return Err(failed(ctx, req, "RunContainerError", e.to_string()));
    }
    timings.add(Stage::Start, start_started.elapsed());
    timings.cri_replied();
    ctx.events.normal(
        req.pod,
        Some(name),
        "Started",
        format!("Started container {name}"),
    );
    debug!(container = name, %id, "container started");
    Ok(id)
}
