//! AppArmor: the profile a container asked for (its securityContext, else the legacy
//! `container.apparmor.security.beta.kubernetes.io/NAME` annotation, else the pod's
//! securityContext, in kubelet's order), turned into the CRI's profile, and the admission check
//! kubelet makes: a pod that needs AppArmor on a host without it is refused with reason
//! `AppArmor` rather than run without the isolation it asked for.

use std::sync::OnceLock;

use cri_client::api;
use cri_client::api::security_profile::ProfileType;
use k8s_openapi::api::core::v1::{AppArmorProfile, Container, Pod};

/// kubelet's reason for a pod refused for AppArmor.
pub const REFUSED_REASON: &str = "AppArmor";

const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The profile of `container` in `pod`, if any asks for one.
pub fn profile(pod: &Pod, container: &Container) -> Option<AppArmorProfile> {
    if let Some(p) = container
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone())
    {
        return Some(p);
    }
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{ANNOTATION_PREFIX}{}", container.name)));
    if let Some(value) = annotation {
        return Some(from_annotation(value));
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.app_armor_profile.clone())
}

/// The legacy annotation's value: `runtime/default`, `unconfined` or `localhost/NAME`.
fn from_annotation(value: &str) -> AppArmorProfile {
    let (type_, localhost) = match value {
        "unconfined" => ("Unconfined", None),
        "runtime/default" => ("RuntimeDefault", None),
        other => match other.strip_prefix("localhost/") {
            Some(name) => ("Localhost", Some(name.to_string())),
            // An unknown form asks for something: treat it as a profile that must be enforced.
            None => ("Localhost", Some(String::new())),
        },
    };
    AppArmorProfile {
        type_: type_.to_string(),
        localhost_profile: localhost,
    }
}

/// The CRI fields for a profile: the structured one and the deprecated string.
pub fn cri_profile(p: Option<&AppArmorProfile>) -> (Option<api::SecurityProfile>, String) {
    let Some(p) = p else {
        return (None, String::new());
    };
    match p.type_.as_str() {
        "Unconfined" => (
            Some(api::SecurityProfile {
                profile_type: ProfileType::Unconfined.into(),
                localhost_ref: String::new(),
            }),
            "unconfined".to_string(),
        ),
        "Localhost" => {
            let name = p.localhost_profile.clone().unwrap_or_default();
            (
                Some(api::SecurityProfile {
                    profile_type: ProfileType::Localhost.into(),
                    localhost_ref: name.clone(),
                }),
                format!("localhost/{name}"),
            )
        }
        _ => (
            Some(api::SecurityProfile {
                profile_type: ProfileType::RuntimeDefault.into(),
                localhost_ref: String::new(),
            }),
            "runtime/default".to_string(),
        ),
    }
}

/// True when the kernel has AppArmor switched on (read once).
pub fn host_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with('Y'))
    })
}

/// kubelet's isRequired: the pod needs AppArmor when its own profile, any container's
/// (ephemeral ones included) or any legacy annotation asks for something other than
/// Unconfined, even if every container then overrides the pod's profile.
fn required(pod: &Pod) -> bool {
    let confined = |p: Option<&AppArmorProfile>| p.is_some_and(|p| p.type_ != "Unconfined");
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let pod_level = spec
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref());
    let container_level = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .any(|c| {
            confined(
                c.security_context
                    .as_ref()
                    .and_then(|s| s.app_armor_profile.as_ref()),
            )
        });
    let ephemeral = spec.ephemeral_containers.iter().flatten().any(|c| {
        confined(
            c.security_context
                .as_ref()
                .and_then(|s| s.app_armor_profile.as_ref()),
        )
    });
    let annotated = pod
        .metadata
        .annotations
        .iter()
        .flatten()
        .any(|(k, v)| k.starts_with(ANNOTATION_PREFIX) && v != "unconfined");
    confined(pod_level) || container_level || ephemeral || annotated
}

/// kubelet's AppArmor admission for a pending pod: a pod that needs AppArmor needs it on the
/// host, and a Localhost profile needs a name. The error is kubelet's message.
pub fn check(pod: &Pod, host_enabled: bool) -> Result<(), String> {
    if !required(pod) {
        return Ok(());
    }
    if !host_enabled {
        return Err("Cannot enforce AppArmor: AppArmor is not enabled on the host".to_string());
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        if let Some(p) = profile(pod, c).filter(|p| p.type_ == "Localhost")
            && p.localhost_profile
                .as_deref()
                .is_none_or(|n| n.trim().is_empty())
        {
            return Err(format!(
                "Cannot enforce AppArmor: invalid empty AppArmor profile name: {p:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_container_field_wins_then_the_annotation_then_the_pod() {
        let p = pod(json!({"metadata": {"name": "p", "annotations": {
                "container.apparmor.security.beta.kubernetes.io/b": "localhost/legacy"}},
            "spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {"name": "a", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}},
                    {"name": "b"}, {"name": "c"}]}}));
        let cs = &p.spec.as_ref().unwrap().containers;
        assert_eq!(profile(&p, &cs[0]).unwrap().type_, "Unconfined");
        let b = profile(&p, &cs[1]).unwrap();
        assert_eq!(
            (b.type_.as_str(), b.localhost_profile.as_deref()),
            ("Localhost", Some("legacy"))
        );
        assert_eq!(profile(&p, &cs[2]).unwrap().type_, "RuntimeDefault");
        let (sp, legacy) = cri_profile(Some(&b));
        assert_eq!(sp.unwrap().localhost_ref, "legacy");
        assert_eq!(legacy, "localhost/legacy");
        assert_eq!(cri_profile(None), (None, String::new()));
    }

    #[test]
    fn a_profile_on_a_host_without_apparmor_is_refused() {
        let p = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a",
            "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "nope"}}}]}}),
        );
        assert_eq!(
            check(&p, false),
            Err("Cannot enforce AppArmor: AppArmor is not enabled on the host".to_string())
        );
        assert_eq!(check(&p, true), Ok(()));
        let unconfined = pod(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"appArmorProfile": {"type": "Unconfined"}},
            "containers": [{"name": "a"}]}}));
        assert_eq!(check(&unconfined, false), Ok(()));
        let overridden = pod(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a",
                "securityContext": {"appArmorProfile": {"type": "Unconfined"}}}]}}));
        assert!(
            check(&overridden, false).is_err(),
            "a confining pod-level profile needs AppArmor even when every container overrides it"
        );
        let plain =
            pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(check(&plain, false), Ok(()));
        let bad = pod(json!({"metadata": {"name": "p", "annotations": {
                "container.apparmor.security.beta.kubernetes.io/a": "localhost/"}},
            "spec": {"containers": [{"name": "a"}]}}));
        assert!(
            check(&bad, true)
                .unwrap_err()
                .contains("invalid empty AppArmor profile name")
        );
    }
}
