//! A container's Linux security context, as kubelet derives it from the pod's and the
//! container's `securityContext`.
//!
//! The container's `runAsUser`, `runAsGroup`, `runAsNonRoot` and `seLinuxOptions` override the
//! pod's; capabilities, privileged, read-only root, privilege escalation and proc mount are the
//! container's own; supplemental groups (`fsGroup` first), their policy and the namespaces come
//! from the pod. Capabilities are passed through as written: the runtime adds the `CAP_` prefix
//! where it is missing, as it does for kubelet. AppArmor is left to the runtime's default.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, Pod, PodSecurityContext, SeccompProfile, SecurityContext,
};

use cri_client::api::{self, NamespaceMode, security_profile::ProfileType};

/// Node settings that shape the security context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOptions {
    /// Where `Localhost` seccomp profiles live (kubelet: ROOT_DIR/seccomp).
    pub seccomp_profile_root: PathBuf,
    /// Use the runtime's default seccomp profile when the pod names none (kubelet's
    /// `--seccomp-default`); otherwise such containers run unconfined.
    pub seccomp_default: bool,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        Self::for_root_dir(Path::new("/var/lib/kubelet"))
    }
}

impl SecurityOptions {
    /// The options for an agent whose state lives in `root_dir`.
    pub fn for_root_dir(root_dir: &Path) -> Self {
        SecurityOptions {
            seccomp_profile_root: root_dir.join("seccomp"),
            seccomp_default: false,
        }
    }
}

/// Paths masked in /proc and /sys unless the container asks for an unmasked /proc.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in /proc unless the container asks for an unmasked /proc.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The security context of `container` in `pod`, with the default [`SecurityOptions`].
pub fn linux_security(
    container: &Container,
    pod: &Pod,
) -> Result<api::LinuxContainerSecurityContext, String> {
    linux_security_with(container, pod, &SecurityOptions::default())
}

/// The security context of `container` in `pod`. Fails, with a message for
/// CreateContainerConfigError, on settings kubelet refuses.
pub fn linux_security_with(
    container: &Container,
    pod: &Pod,
    opts: &SecurityOptions,
) -> Result<api::LinuxContainerSecurityContext, String> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    let eff = Effective::of(psc, csc);

    if eff.run_as_non_root && eff.run_as_user == Some(0) {
        return Err(format!(
            "container's runAsUser breaks non-root policy (pod: {:?}, container: {})",
            pod_ref(pod),
            container.name
        ));
    }

    let unmasked = csc.and_then(|c| c.proc_mount.as_deref()) == Some("Unmasked");
    let paths = |list: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            list.iter().map(ToString::to_string).collect()
        }
    };

    let mut supplemental_groups = Vec::new();
    if let Some(g) = psc.and_then(|p| p.fs_group) {
        supplemental_groups.push(g);
    }
    supplemental_groups.extend(
        psc.and_then(|p| p.supplemental_groups.as_deref())
            .unwrap_or_default(),
    );

    let supplemental_groups_policy = match psc.and_then(|p| p.supplemental_groups_policy.as_deref())
    {
        None | Some("Merge") => api::SupplementalGroupsPolicy::Merge,
        Some("Strict") => api::SupplementalGroupsPolicy::Strict,
        Some(other) => return Err(format!("unsupported supplementalGroupsPolicy: {other}")),
    };

    let capabilities = csc
        .and_then(|c| c.capabilities.as_ref())
        .map(|caps| api::Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        });

    let (apparmor, apparmor_profile) =
        super::apparmor::cri_profile(super::apparmor::profile(pod, container).as_ref());
    let sc = api::LinuxContainerSecurityContext {
        apparmor,
        capabilities,
        privileged: csc.and_then(|c| c.privileged).unwrap_or(false),
        namespace_options: Some(namespace_options(pod)),
        selinux_options: eff.selinux,
        run_as_user: eff.run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: eff.run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: csc
            .and_then(|c| c.read_only_root_filesystem)
            .unwrap_or(false),
        supplemental_groups,
        supplemental_groups_policy: supplemental_groups_policy.into(),
        no_new_privs: csc.and_then(|c| c.allow_privilege_escalation) == Some(false),
        masked_paths: paths(&DEFAULT_MASKED_PATHS),
        readonly_paths: paths(&DEFAULT_READONLY_PATHS),
        seccomp: Some(seccomp(psc, csc, opts)?),
        ..Default::default()
    };
    Ok(with_legacy_apparmor(sc, apparmor_profile))
}

/// Runtimes older than CRI 1.30 read only the deprecated string form of the AppArmor profile.
#[allow(deprecated)]
fn with_legacy_apparmor(
    mut sc: api::LinuxContainerSecurityContext,
    profile: String,
) -> api::LinuxContainerSecurityContext {
    sc.apparmor_profile = profile;
    sc
}

/// The user an image runs as (from `ImageStatus`): used when the pod names no `runAsUser`,
/// and to check `runAsNonRoot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUser {
    /// The numeric uid of the image's USER, when numeric.
    pub uid: Option<i64>,
    /// The image's USER when it is a name rather than a number.
    pub username: String,
}

impl ImageUser {
    /// Root, which is what an image that names no user runs as.
    pub fn root() -> Self {
        ImageUser {
            uid: Some(0),
            username: String::new(),
        }
    }

    /// The user of a CRI image as kubelet reads it: the uid when numeric, else the user name,
    /// else (no USER, or no image status) root.
    pub fn from_image(image: Option<&api::Image>) -> Self {
        match image {
            Some(api::Image { uid: Some(uid), .. }) => ImageUser {
                uid: Some(uid.value),
                username: String::new(),
            },
            Some(i) if !i.username.is_empty() => ImageUser {
                uid: None,
                username: i.username.clone(),
            },
            _ => Self::root(),
        }
    }
}

/// kubelet's runAsNonRoot verification: a `runAsUser` of 0 is refused; without a `runAsUser`
/// the image's user must be a non-root uid. `image: None` (user unknown) cannot be verified
/// and is refused too.
pub fn verify_run_as_non_root(
    container: &Container,
    pod: &Pod,
    image: Option<&ImageUser>,
) -> Result<(), String> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let eff = Effective::of(psc, container.security_context.as_ref());
    if !eff.run_as_non_root {
        return Ok(());
    }
    let who = format!("(pod: {:?}, container: {})", pod_ref(pod), container.name);
    if let Some(user) = eff.run_as_user {
        if user == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy {who}"
            ));
        }
        return Ok(());
    }
    let Some(image) = image else {
        return Err(format!(
            "container has runAsNonRoot and the image's user is unknown, cannot verify user is non-root {who}"
        ));
    };
    match image.uid {
        None if !image.username.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root {who}",
            image.username
        )),
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root {who}"
        )),
        Some(uid) if uid < 0 || uid > i64::from(i32::MAX) => Err(format!(
            "container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({})) {who}",
            i32::MAX
        )),
        _ => Ok(()),
    }
}

/// Fills in the image's user when the pod names none, as kubelet does.
pub fn apply_image_user(sc: &mut api::LinuxContainerSecurityContext, image: &ImageUser) {
    if sc.run_as_user.is_none() {
        sc.run_as_user = image.uid.map(|value| api::Int64Value { value });
        sc.run_as_username.clone_from(&image.username);
    }
}

/// `name_namespace(uid)`, kubelet's way of naming a pod in messages.
fn pod_ref(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// The settings where the container overrides the pod.
struct Effective {
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
    run_as_non_root: bool,
    selinux: Option<api::SeLinuxOption>,
}

impl Effective {
    fn of(psc: Option<&PodSecurityContext>, csc: Option<&SecurityContext>) -> Self {
        let selinux = csc
            .and_then(|c| c.se_linux_options.as_ref())
            .or_else(|| psc.and_then(|p| p.se_linux_options.as_ref()))
            .map(|o| api::SeLinuxOption {
                user: o.user.clone().unwrap_or_default(),
                role: o.role.clone().unwrap_or_default(),
                r#type: o.type_.clone().unwrap_or_default(),
                level: o.level.clone().unwrap_or_default(),
            });
        Effective {
            run_as_user: csc
                .and_then(|c| c.run_as_user)
                .or(psc.and_then(|p| p.run_as_user)),
            run_as_group: csc
                .and_then(|c| c.run_as_group)
                .or(psc.and_then(|p| p.run_as_group)),
            run_as_non_root: csc
                .and_then(|c| c.run_as_non_root)
                .or(psc.and_then(|p| p.run_as_non_root))
                .unwrap_or(false),
            selinux,
        }
    }
}

/// Network, PID and IPC namespaces: the node's with hostNetwork/hostPID/hostIPC; otherwise
/// network and IPC are the pod's, and PID is the container's own unless the pod shares one.
pub fn namespace_options(pod: &Pod) -> api::NamespaceOption {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| {
        spec.and_then(f).unwrap_or(false)
    };
    let host_or_pod = |host: bool| {
        if host {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }
    };
    let pid = if flag(|s| s.host_pid) {
        NamespaceMode::Node
    } else if flag(|s| s.share_process_namespace) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    api::NamespaceOption {
        network: host_or_pod(flag(|s| s.host_network)).into(),
        pid: pid.into(),
        ipc: host_or_pod(flag(|s| s.host_ipc)).into(),
        ..Default::default()
    }
}

/// Puts the container into the PID namespace of container `target_id`, unless the pod's
/// containers already share the pod's or the node's.
pub fn join_pid_namespace(sc: &mut api::LinuxContainerSecurityContext, target_id: &str) {
    let ns = sc.namespace_options.get_or_insert_with(Default::default);
    if ns.pid() == NamespaceMode::Container {
        ns.set_pid(NamespaceMode::Target);
        ns.target_id = target_id.to_string();
    }
}

/// The seccomp profile: the container's, else the pod's, else the node default.
fn seccomp(
    psc: Option<&PodSecurityContext>,
    csc: Option<&SecurityContext>,
    opts: &SecurityOptions,
) -> Result<api::SecurityProfile, String> {
    let profile = |t: ProfileType, localhost_ref: String| api::SecurityProfile {
        profile_type: t.into(),
        localhost_ref,
    };
    let chosen: Option<&SeccompProfile> = csc
        .and_then(|c| c.seccomp_profile.as_ref())
        .or_else(|| psc.and_then(|p| p.seccomp_profile.as_ref()));
    let Some(p) = chosen else {
        let t = if opts.seccomp_default {
            ProfileType::RuntimeDefault
        } else {
            ProfileType::Unconfined
        };
        return Ok(profile(t, String::new()));
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(profile(ProfileType::RuntimeDefault, String::new())),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            // Only a path below the profile root: `join` of an absolute path would replace
            // the root, and `..` would climb out of it.
            Some(name)
                if Path::new(name).is_absolute()
                    || Path::new(name)
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir)) =>
            {
                Err(format!(
                    "localhostProfile {name:?} must be a relative path below the seccomp profile root"
                ))
            }
            Some(name) => Ok(profile(
                ProfileType::Localhost,
                opts.seccomp_profile_root
                    .join(name)
                    .to_string_lossy()
                    .into_owned(),
            )),
            None => {
                Err("localhostProfile must be set if seccompProfile type is Localhost.".to_string())
            }
        },
        _ => Ok(profile(ProfileType::Unconfined, String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{first, pod};
    use serde_json::{Value, json};

    fn sc_of(spec: Value) -> Result<api::LinuxContainerSecurityContext, String> {
        let p = pod(spec);
        linux_security(first(&p), &p)
    }

    fn ns_modes(spec: Value) -> (NamespaceMode, NamespaceMode, NamespaceMode) {
        let o = sc_of(spec).unwrap().namespace_options.unwrap();
        (o.network(), o.pid(), o.ipc())
    }

    #[test]
    fn defaults() {
        let sc = sc_of(json!({"containers": [{"name": "c"}]})).unwrap();
        assert!(!sc.privileged);
        assert!(!sc.readonly_rootfs);
        assert!(!sc.no_new_privs);
        assert_eq!(sc.run_as_user, None);
        assert_eq!(sc.capabilities, None);
        assert_eq!(sc.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
        assert_eq!(sc.readonly_paths, DEFAULT_READONLY_PATHS);
        assert_eq!(
            sc.seccomp.as_ref().unwrap().profile_type(),
            ProfileType::Unconfined
        );
        assert_eq!(sc.apparmor, None);
        assert_eq!(
            sc.supplemental_groups_policy(),
            api::SupplementalGroupsPolicy::Merge
        );
    }

    #[test]
    fn container_overrides_pod_identity() {
        let sc = sc_of(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000, "supplementalGroups": [4000, 4001]},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 1001}}]
        }))
        .unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1001);
        assert_eq!(sc.run_as_group.unwrap().value, 2000);
        assert_eq!(sc.supplemental_groups, [3000, 4000, 4001], "fsGroup first");
    }

    #[test]
    fn container_only_settings() {
        let sc = sc_of(json!({"containers": [{"name": "c", "securityContext": {
            "privileged": true,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["ALL"]},
            "seLinuxOptions": {"type": "spc_t", "level": "s0"}
        }}]}))
        .unwrap();
        assert!(sc.privileged);
        assert!(sc.readonly_rootfs);
        assert!(
            sc.no_new_privs,
            "allowPrivilegeEscalation: false sets no_new_privs"
        );
        let caps = sc.capabilities.unwrap();
        assert_eq!(
            caps.add_capabilities,
            ["NET_ADMIN", "CAP_SYS_TIME"],
            "passed as written"
        );
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        let se = sc.selinux_options.unwrap();
        assert_eq!((se.r#type.as_str(), se.level.as_str()), ("spc_t", "s0"));

        let sc = sc_of(json!({"containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": true}}]})).unwrap();
        assert!(!sc.no_new_privs);
    }

    #[test]
    fn namespaces() {
        use NamespaceMode::{Container, Node, Pod};
        let c = json!([{"name": "c"}]);
        assert_eq!(ns_modes(json!({"containers": c})), (Pod, Container, Pod));
        assert_eq!(
            ns_modes(json!({"hostNetwork": true, "containers": c})),
            (Node, Container, Pod)
        );
        assert_eq!(
            ns_modes(json!({"hostPID": true, "containers": c})),
            (Pod, Node, Pod)
        );
        assert_eq!(
            ns_modes(json!({"hostIPC": true, "containers": c})),
            (Pod, Container, Node)
        );
        assert_eq!(
            ns_modes(json!({"shareProcessNamespace": true, "containers": c})),
            (Pod, Pod, Pod)
        );
        assert_eq!(
            ns_modes(json!({"hostPID": true, "shareProcessNamespace": true, "containers": c})),
            (Pod, Node, Pod)
        );
    }

    #[test]
    fn seccomp_profiles() {
        let t = |spec: Value| sc_of(spec).unwrap().seccomp.unwrap();
        let p = t(
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]}),
        );
        assert_eq!(p.profile_type(), ProfileType::RuntimeDefault);

        let p = t(json!({
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]
        }));
        assert_eq!(p.profile_type(), ProfileType::Unconfined, "container wins");

        let p = t(json!({"containers": [{"name": "c", "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}
        }}]}));
        assert_eq!(p.profile_type(), ProfileType::Localhost);
        assert_eq!(
            p.localhost_ref,
            "/var/lib/kubelet/seccomp/profiles/audit.json"
        );

        let err = sc_of(
            json!({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}),
        );
        assert_eq!(
            err.unwrap_err(),
            "localhostProfile must be set if seccompProfile type is Localhost."
        );

        let p = pod(json!({"containers": [{"name": "c"}]}));
        let opts = SecurityOptions {
            seccomp_default: true,
            ..SecurityOptions::for_root_dir(Path::new("/data/agent"))
        };
        let sc = linux_security_with(first(&p), &p, &opts).unwrap();
        assert_eq!(
            sc.seccomp.unwrap().profile_type(),
            ProfileType::RuntimeDefault
        );
        assert_eq!(opts.seccomp_profile_root, Path::new("/data/agent/seccomp"));
    }

    #[test]
    fn unmasked_proc_mount_clears_paths() {
        let sc = sc_of(
            json!({"containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]}),
        )
        .unwrap();
        assert!(sc.masked_paths.is_empty());
        assert!(sc.readonly_paths.is_empty());
    }

    #[test]
    fn run_as_non_root_with_root_user_is_refused() {
        let err = sc_of(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]
        }))
        .unwrap_err();
        assert_eq!(
            err,
            "container's runAsUser breaks non-root policy (pod: \"web_ns(uid-1)\", container: c)"
        );

        let ok = sc_of(json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0},
            "containers": [{"name": "c", "securityContext": {"runAsUser": 1000}}]
        }));
        assert!(
            ok.is_ok(),
            "the container's user overrides the pod's root user"
        );

        let ok = sc_of(json!({
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "c", "securityContext": {"runAsNonRoot": false, "runAsUser": 0}}]
        }));
        assert!(ok.is_ok(), "the container may allow root");
    }

    #[test]
    fn run_as_non_root_checks_the_image_user() {
        let p =
            pod(json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]}));
        let c = first(&p);
        let user = |uid: Option<i64>, name: &str| ImageUser {
            uid,
            username: name.into(),
        };
        assert!(verify_run_as_non_root(c, &p, Some(&user(Some(1000), ""))).is_ok());
        assert_eq!(
            verify_run_as_non_root(c, &p, Some(&user(Some(0), ""))).unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"web_ns(uid-1)\", container: c)"
        );
        assert!(
            verify_run_as_non_root(c, &p, Some(&user(None, "nginx")))
                .unwrap_err()
                .contains("image has non-numeric user (nginx)")
        );
        assert!(verify_run_as_non_root(c, &p, Some(&user(Some(-1), ""))).is_err());
        assert!(
            verify_run_as_non_root(c, &p, None)
                .unwrap_err()
                .contains("user is unknown"),
            "an unknown user fails closed"
        );

        let relaxed = pod(json!({"containers": [{"name": "c"}]}));
        assert!(
            verify_run_as_non_root(first(&relaxed), &relaxed, Some(&ImageUser::root())).is_ok()
        );
        assert!(verify_run_as_non_root(first(&relaxed), &relaxed, None).is_ok());

        let explicit = pod(
            json!({"containers": [{"name": "c", "securityContext": {"runAsNonRoot": true, "runAsUser": 7}}]}),
        );
        assert!(
            verify_run_as_non_root(first(&explicit), &explicit, None).is_ok(),
            "runAsUser decides"
        );
    }

    #[test]
    fn image_user_from_image_status() {
        let image = |uid: Option<i64>, username: &str| api::Image {
            uid: uid.map(|value| api::Int64Value { value }),
            username: username.into(),
            ..Default::default()
        };
        assert_eq!(
            ImageUser::from_image(Some(&image(Some(101), ""))).uid,
            Some(101)
        );
        let named = ImageUser::from_image(Some(&image(None, "nginx")));
        assert_eq!((named.uid, named.username.as_str()), (None, "nginx"));
        assert_eq!(
            ImageUser::from_image(Some(&image(None, ""))),
            ImageUser::root(),
            "no USER runs as root"
        );
        assert_eq!(ImageUser::from_image(None), ImageUser::root());
    }

    #[test]
    fn image_user_fills_in_a_missing_run_as_user() {
        let mut sc = api::LinuxContainerSecurityContext::default();
        apply_image_user(
            &mut sc,
            &ImageUser {
                uid: Some(101),
                username: String::new(),
            },
        );
        assert_eq!(sc.run_as_user.unwrap().value, 101);

        let mut sc = api::LinuxContainerSecurityContext::default();
        apply_image_user(
            &mut sc,
            &ImageUser {
                uid: None,
                username: "www".into(),
            },
        );
        assert_eq!((sc.run_as_user, sc.run_as_username.as_str()), (None, "www"));

        let mut sc = api::LinuxContainerSecurityContext {
            run_as_user: Some(api::Int64Value { value: 5 }),
            ..Default::default()
        };
        apply_image_user(
            &mut sc,
            &ImageUser {
                uid: Some(0),
                username: "root".into(),
            },
        );
        assert_eq!(sc.run_as_user.unwrap().value, 5, "the pod's user wins");
        assert_eq!(sc.run_as_username, "");
    }

    #[test]
    fn refused_settings() {
        // A pod in a user namespace of its own is the runtime's (the sandbox's options).
        assert!(sc_of(json!({"hostUsers": false, "containers": [{"name": "c"}]})).is_ok());
        let err = sc_of(
            json!({"securityContext": {"supplementalGroupsPolicy": "Odd"}, "containers": [{"name": "c"}]}),
        );
        assert_eq!(
            err.unwrap_err(),
            "unsupported supplementalGroupsPolicy: Odd"
        );
        let sc = sc_of(
            json!({"securityContext": {"supplementalGroupsPolicy": "Strict"}, "containers": [{"name": "c"}]}),
        );
        assert_eq!(
            sc.unwrap().supplemental_groups_policy(),
            api::SupplementalGroupsPolicy::Strict
        );
    }
}
