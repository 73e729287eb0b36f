//! Ephemeral containers (`kubectl debug`): containers added to a running pod through its
//! `ephemeralcontainers` subresource. Kubelet's rules, kept here: each is started once into the
//! pod's sandbox and never restarted; it has no probes, lifecycle hooks, ports or resources (the
//! API server refuses them; they are dropped here too, so none can run); with
//! `targetContainerName` it joins the PID namespace of that container's running instance; its
//! status goes to `ephemeralContainerStatuses` and it never counts for phase or readiness.

use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};

/// An ephemeral container as the container the start path runs, with the name of the container
/// whose PID namespace it joins.
pub struct Ephemeral {
    pub container: Container,
    pub target: Option<String>,
}

/// The pod's ephemeral containers, in spec order.
pub fn of(pod: &Pod) -> Vec<Ephemeral> {
    pod.spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
        .map(|e| Ephemeral {
            container: as_container(e),
            target: e.target_container_name.clone().filter(|t| !t.is_empty()),
        })
        .collect()
}

/// The fields an ephemeral container shares with a container; those it may not have are left
/// out.
fn as_container(e: &EphemeralContainer) -> Container {
    Container {
        name: e.name.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        command: e.command.clone(),
        args: e.args.clone(),
        working_dir: e.working_dir.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        volume_mounts: e.volume_mounts.clone(),
        volume_devices: e.volume_devices.clone(),
        security_context: e.security_context.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        tty: e.tty,
        termination_message_path: e.termination_message_path.clone(),
        termination_message_policy: e.termination_message_policy.clone(),
        ..Container::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_ephemeral_container_keeps_what_it_may_have_and_drops_the_rest() {
        let pod: Pod = serde_json::from_value(json!({
            "spec": {
                "containers": [{"name": "app", "image": "img"}],
                "ephemeralContainers": [
                    {"name": "debugger", "image": "dbg", "command": ["sh"], "stdin": true,
                     "tty": true, "targetContainerName": "app",
                     "readinessProbe": {"exec": {"command": ["true"]}},
                     "lifecycle": {"postStart": {"exec": {"command": ["true"]}}},
                     "ports": [{"containerPort": 80}]},
                    {"name": "second", "image": "dbg", "targetContainerName": ""}
                ]
            }
        }))
        .unwrap();
        let all = of(&pod);
        assert_eq!(all.len(), 2);
        let d = &all[0];
        assert_eq!(d.container.name, "debugger");
        assert_eq!(d.container.image.as_deref(), Some("dbg"));
        assert_eq!(
            d.container.command.as_deref(),
            Some(&["sh".to_string()][..])
        );
        assert_eq!(
            (d.container.stdin, d.container.tty),
            (Some(true), Some(true))
        );
        assert_eq!(d.target.as_deref(), Some("app"));
        assert!(d.container.readiness_probe.is_none());
        assert!(d.container.lifecycle.is_none());
        assert!(d.container.ports.is_none());
        assert_eq!(all[1].target, None, "an empty target is no target");
    }
}
