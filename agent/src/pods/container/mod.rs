//! Turning a pod's container into a CRI `ContainerConfig`, as kubelet does. Pure functions,
//! one concern per module, plus one async resolver for the environment:
//! - [`qos`]: the pod's QoS class;
//! - [`env`]: the container's environment (ConfigMaps, Secrets, downward API, services);
//! - [`resources`]: cgroup settings and OOM score;
//! - [`security`]: the Linux security context and namespaces;
//! - [`labels`]: the CRI labels and annotations kubelet uses, and the spec hash;
//! - [`container_config`]: all of it put together.
//!
//! What volumes share with it lives below both: `$(VAR)` expansion ([`crate::expand`]), the
//! downward API ([`crate::downward`]) and resource amounts ([`crate::pod_resources`]).

pub mod apparmor;
pub mod env;
pub mod labels;
pub mod qos;
pub mod resources;
pub mod security;
mod services;

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use thiserror::Error;

use cri_client::api;

use crate::expand;
use crate::pod_resources;

pub use env::{EnvError, EnvSource, ResolvedEnv, SkippedKeys, resolve_env};
pub use labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID, container_hash};
pub use qos::{QosClass, qos_class};
pub use resources::linux_resources;
pub use security::{ImageUser, SecurityOptions, linux_security};
pub use services::service_env;

/// Everything needed to write one container's CRI config.
pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// How many times this container has restarted; the CRI attempt number.
    pub restart_count: u32,
    /// The image id/ref returned by PullImage / ImageStatus.
    pub image_ref: &'a str,
    /// The environment from [`resolve_env`].
    pub env: &'a [(String, String)],
    /// Volume mounts prepared by the volume manager.
    pub mounts: Vec<api::Mount>,
    /// Host file to bind at the container's terminationMessagePath
    /// (kubelet: ROOT/pods/UID/containers/NAME/RANDOM); none, no bind.
    pub termination_message_host_path: Option<PathBuf>,
    pub node_memory_capacity_bytes: u64,
}

/// Node- and image-level settings beyond [`ContainerInputs`]. The default is kubelet's
/// default configuration, on a node whose cgroup features are not known, for an image whose
/// user is not known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigOptions {
    /// The image's user ([`ImageUser::from_image`] on the ImageStatus result): the default
    /// user when the pod names none, and what `runAsNonRoot` is checked against. `None`: not
    /// known, so containers that need the check are refused.
    pub image_user: Option<ImageUser>,
    pub security: SecurityOptions,
    /// cgroup v2: kill the whole container when one of its processes hits the memory limit
    /// (`memory.oom.group=1`), as kubelet does there unless `singleProcessOOMKill` is set.
    pub oom_kill_whole_container: bool,
    /// cgroup v2 with the swap controller (`memory.swap.max` exists): give containers no swap,
    /// kubelet's `NoSwap` behaviour. Must stay off where the controller is missing, or the
    /// runtime fails to write it.
    pub disable_swap: bool,
    /// An ephemeral container's target: the id of the running container whose PID namespace
    /// it joins (CRI's TARGET mode). Ignored when the pod's containers already share one (the
    /// pod's or the node's).
    pub pid_target: Option<String>,
    /// The pod's user namespace (`userns` module): the container's namespace options carry it,
    /// and in a pod's own user namespace every mount is ID-mapped onto its range.
    pub userns: Option<api::UserNamespace>,
}

/// Why a container's config cannot be written; shown as CreateContainerConfigError.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContainerConfigError {
    #[error("container {container:?}: no image to run")]
    NoImage { container: String },
    #[error("container {container:?}: invalid quantity {value:?} for {resource}")]
    InvalidQuantity {
        container: String,
        resource: String,
        value: String,
    },
    #[error("container {container:?}: terminationMessagePath {path:?} must be an absolute path")]
    TerminationMessagePath { container: String, path: String },
    /// A security setting kubelet refuses; the message is kubelet's.
    #[error("{0}")]
    Security(String),
}

/// The CRI config of `i.container`, with default [`ConfigOptions`].
pub fn container_config(
    i: &ContainerInputs<'_>,
) -> Result<api::ContainerConfig, ContainerConfigError> {
    container_config_with(i, &ConfigOptions::default())
}

/// The CRI config of `i.container`.
pub fn container_config_with(
    i: &ContainerInputs<'_>,
    opts: &ConfigOptions,
) -> Result<api::ContainerConfig, ContainerConfigError> {
    let c = i.container;
    if i.image_ref.is_empty() {
        return Err(ContainerConfigError::NoImage {
            container: c.name.clone(),
        });
    }
    check_quantities(c, i.pod)?;

    let mut security = security::linux_security_with(c, i.pod, &opts.security)
        .map_err(ContainerConfigError::Security)?;
    security::verify_run_as_non_root(c, i.pod, opts.image_user.as_ref())
        .map_err(ContainerConfigError::Security)?;
    if let Some(user) = &opts.image_user {
        security::apply_image_user(&mut security, user);
    }
    if let Some(target) = &opts.pid_target {
        security::join_pid_namespace(&mut security, target);
    }
    if let Some(ns) = &opts.userns {
        let options = security
            .namespace_options
            .get_or_insert_with(Default::default);
        options.userns_options = Some(ns.clone());
    }

    let mut resources = resources::linux_resources(c, i.pod, i.node_memory_capacity_bytes);
    if opts.oom_kill_whole_container {
        resources
            .unified
            .insert("memory.oom.group".into(), "1".into());
    }
    if opts.disable_swap {
        resources
            .unified
            .insert("memory.swap.max".into(), "0".into());
    }

    let lookup = expand::lookup_in(i.env);
    let expand_all = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand::expand(s, &lookup))
            .collect::<Vec<_>>()
    };

    let mut mounts = i.mounts.clone();
    if let Some(host) = &i.termination_message_host_path {
        let path = labels::termination_message_path(c);
        if !Path::new(path).is_absolute() {
            return Err(ContainerConfigError::TerminationMessagePath {
                container: c.name.clone(),
                path: path.to_string(),
            });
        }
        mounts.push(api::Mount {
            container_path: path.to_string(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: false,
            ..Default::default()
        });
    }
    let (uids, gids) = crate::userns::mount_mappings(opts.userns.as_ref());
    if !uids.is_empty() {
        for m in &mut mounts {
            m.uid_mappings.clone_from(&uids);
            m.gid_mappings.clone_from(&gids);
        }
    }

    Ok(api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: i.restart_count,
        }),
        image: Some(api::ImageSpec {
            image: i.image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: i
            .env
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts,
        labels: labels::container_labels(i.pod, c),
        annotations: labels::container_annotations(i.pod, c, i.restart_count),
        log_path: log_path(&c.name, i.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security),
        }),
        ..Default::default()
    })
}

/// The container's log file, relative to the sandbox's log directory: `NAME/RESTART_COUNT.log`.
pub fn log_path(container_name: &str, restart_count: u32) -> String {
    format!("{container_name}/{restart_count}.log")
}

/// Every quantity the config reads must parse; the API server guarantees it, so a failure
/// here means a corrupt object, reported rather than silently read as zero.
fn check_quantities(c: &Container, pod: &Pod) -> Result<(), ContainerConfigError> {
    let lists = [c.resources.as_ref(), pod_resources::pod_resources(pod)]
        .into_iter()
        .flatten()
        .flat_map(|r| [r.requests.as_ref(), r.limits.as_ref()])
        .flatten();
    for list in lists {
        for (resource, q) in list {
            if pod_resources::nanos(q).is_none() {
                return Err(ContainerConfigError::InvalidQuantity {
                    container: c.name.clone(),
                    resource: resource.clone(),
                    value: q.0.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{first, pod_with};
    use serde_json::{Value, json};

    const GI: u64 = 1 << 30;

    fn web(container: &Value) -> Pod {
        pod_with(
            json!({"name": "web", "namespace": "ns", "uid": "uid-1"}),
            json!({"terminationGracePeriodSeconds": 30, "containers": [container]}),
        )
    }

    fn inputs<'a>(pod: &'a Pod, env: &'a [(String, String)]) -> ContainerInputs<'a> {
        ContainerInputs {
            pod,
            container: first(pod),
            restart_count: 2,
            image_ref: "sha256:abc",
            env,
            mounts: vec![api::Mount {
                container_path: "/data".into(),
                host_path: "/var/lib/kubelet/pods/uid-1/volumes/data".into(),
                readonly: true,
                ..Default::default()
            }],
            termination_message_host_path: Some(PathBuf::from(
                "/var/lib/kubelet/pods/uid-1/containers/app/x1",
            )),
            node_memory_capacity_bytes: 8 * GI,
        }
    }

    fn env() -> Vec<(String, String)> {
        vec![
            ("GREETING".into(), "hello".into()),
            ("WHO".into(), "world".into()),
        ]
    }

    #[test]
    fn end_to_end() {
        let p = web(&json!({
            "name": "app", "image": "docker.io/library/busybox:1.36",
            "command": ["/bin/sh", "-c"],
            "args": ["echo $(GREETING) $(WHO) $(MISSING) $$(GREETING)"],
            "workingDir": "/work",
            "stdin": true, "stdinOnce": true, "tty": true,
            "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "2Gi"}},
            "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true},
            "ports": [{"containerPort": 8080, "protocol": "TCP"}]
        }));
        let env = env();
        let cfg = container_config(&inputs(&p, &env)).unwrap();

        let meta = cfg.metadata.unwrap();
        assert_eq!((meta.name.as_str(), meta.attempt), ("app", 2));
        let image = cfg.image.unwrap();
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "docker.io/library/busybox:1.36");
        assert_eq!(cfg.command, ["/bin/sh", "-c"]);
        assert_eq!(cfg.args, ["echo hello world $(MISSING) $(GREETING)"]);
        assert_eq!(cfg.working_dir, "/work");
        let envs: Vec<_> = cfg
            .envs
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_str()))
            .collect();
        assert_eq!(envs, [("GREETING", "hello"), ("WHO", "world")]);
        assert_eq!(cfg.log_path, "app/2.log");
        assert!(cfg.stdin && cfg.stdin_once && cfg.tty);

        assert_eq!(cfg.mounts.len(), 2);
        assert_eq!(cfg.mounts[0].container_path, "/data");
        let term = &cfg.mounts[1];
        assert_eq!(term.container_path, "/dev/termination-log");
        assert_eq!(
            term.host_path,
            "/var/lib/kubelet/pods/uid-1/containers/app/x1"
        );
        assert!(!term.readonly);

        assert_eq!(cfg.labels[POD_NAME], "web");
        assert_eq!(cfg.labels[POD_NAMESPACE], "ns");
        assert_eq!(cfg.labels[POD_UID], "uid-1");
        assert_eq!(cfg.labels[CONTAINER_NAME], "app");
        assert_eq!(
            cfg.annotations[labels::CONTAINER_HASH],
            container_hash(first(&p))
        );
        assert_eq!(cfg.annotations[labels::CONTAINER_RESTART_COUNT], "2");
        assert_eq!(cfg.annotations[labels::POD_TERMINATION_GRACE_PERIOD], "30");
        assert_eq!(
            cfg.annotations[labels::CONTAINER_PORTS],
            r#"[{"containerPort":8080,"protocol":"TCP"}]"#
        );

        let linux = cfg.linux.unwrap();
        let r = linux.resources.unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.cpu_period),
            (102, 50_000, 100_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 2 << 30);
        assert_eq!(r.oom_score_adj, 875);
        let sc = linux.security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert!(sc.readonly_rootfs);
        assert_eq!(
            sc.namespace_options.unwrap().pid(),
            api::NamespaceMode::Container
        );
    }

    #[test]
    fn no_command_keeps_the_image_entrypoint() {
        let p = web(&json!({"name": "app", "image": "nginx"}));
        let cfg = container_config(&inputs(&p, &[])).unwrap();
        assert!(cfg.command.is_empty());
        assert!(cfg.args.is_empty());
        assert_eq!(cfg.working_dir, "");
    }

    #[test]
    fn termination_message_path_is_the_containers_own() {
        let p =
            web(&json!({"name": "app", "image": "nginx", "terminationMessagePath": "/tmp/done"}));
        let cfg = container_config(&inputs(&p, &[])).unwrap();
        assert_eq!(cfg.mounts[1].container_path, "/tmp/done");

        let mut i = inputs(&p, &[]);
        i.termination_message_host_path = None;
        assert_eq!(
            container_config(&i).unwrap().mounts.len(),
            1,
            "no host file, no bind"
        );

        let p =
            web(&json!({"name": "app", "image": "nginx", "terminationMessagePath": "relative"}));
        assert_eq!(
            container_config(&inputs(&p, &[])).unwrap_err().to_string(),
            "container \"app\": terminationMessagePath \"relative\" must be an absolute path"
        );
    }

    #[test]
    fn security_refusals_are_config_errors() {
        let p = web(&json!({"name": "app", "image": "nginx",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0}}));
        let err = container_config(&inputs(&p, &[])).unwrap_err();
        assert_eq!(
            err,
            ContainerConfigError::Security(
                "container's runAsUser breaks non-root policy (pod: \"web_ns(uid-1)\", container: app)".into()
            )
        );
    }

    #[test]
    fn image_user_is_checked_and_used() {
        let p = web(
            &json!({"name": "app", "image": "nginx", "securityContext": {"runAsNonRoot": true}}),
        );
        let with_user = |uid: i64| ConfigOptions {
            image_user: Some(ImageUser {
                uid: Some(uid),
                username: String::new(),
            }),
            ..Default::default()
        };
        let err = container_config_with(&inputs(&p, &[]), &with_user(0)).unwrap_err();
        assert!(err.to_string().contains("image will run as root"), "{err}");

        let err = container_config(&inputs(&p, &[])).unwrap_err();
        assert!(err.to_string().contains("user is unknown"), "{err}");

        let cfg = container_config_with(&inputs(&p, &[]), &with_user(101)).unwrap();
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 101);

        let plain = web(&json!({"name": "app", "image": "nginx"}));
        let cfg = container_config(&inputs(&plain, &[])).unwrap();
        let sc = cfg.linux.unwrap().security_context.unwrap();
        assert_eq!(
            sc.run_as_user, None,
            "unknown image user: left to the runtime"
        );
    }

    #[test]
    fn cgroup_v2_options() {
        let p = web(&json!({"name": "app", "image": "nginx"}));
        let cfg = container_config(&inputs(&p, &[])).unwrap();
        assert!(cfg.linux.unwrap().resources.unwrap().unified.is_empty());

        let opts = ConfigOptions {
            oom_kill_whole_container: true,
            disable_swap: true,
            ..Default::default()
        };
        let cfg = container_config_with(&inputs(&p, &[]), &opts).unwrap();
        let unified = cfg.linux.unwrap().resources.unwrap().unified;
        assert_eq!(unified["memory.oom.group"], "1");
        assert_eq!(unified["memory.swap.max"], "0");
    }

    #[test]
    fn invalid_inputs() {
        let p = web(&json!({"name": "app", "image": "nginx"}));
        let mut i = inputs(&p, &[]);
        i.image_ref = "";
        assert_eq!(
            container_config(&i).unwrap_err(),
            ContainerConfigError::NoImage {
                container: "app".into()
            }
        );

        let p = web(
            &json!({"name": "app", "image": "nginx", "resources": {"limits": {"memory": "lots"}}}),
        );
        assert_eq!(
            container_config(&inputs(&p, &[])).unwrap_err().to_string(),
            "container \"app\": invalid quantity \"lots\" for memory"
        );
    }

    #[test]
    fn log_paths() {
        assert_eq!(log_path("app", 0), "app/0.log");
        assert_eq!(log_path("sidecar", 12), "sidecar/12.log");
    }
}
