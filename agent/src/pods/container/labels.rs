//! The labels and annotations kubelet puts on CRI containers. The keys are kubelet's own, so
//! crictl and other node tools recognise the containers, and so the agent can rebuild what it
//! needs about a container (hash, restart count, preStop hook, ...) from the runtime alone.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, ContainerPort, LifecycleHandler, Pod};
use serde::Serialize;

/// Label: the pod's name.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: the pod's namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: the pod's uid.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: the container's name in the pod spec.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Annotation: [`container_hash`] of the spec the container was created from.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// Annotation: how many times the container had restarted when this one was created.
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Annotation: the container's terminationMessagePath.
pub const CONTAINER_TERMINATION_MESSAGE_PATH: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Annotation: the container's terminationMessagePolicy.
pub const CONTAINER_TERMINATION_MESSAGE_POLICY: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Annotation: the container's preStop handler, as JSON.
pub const CONTAINER_PRE_STOP_HANDLER: &str = "io.kubernetes.container.preStopHandler";
/// Annotation: the container's ports, as JSON.
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";
/// Annotation: the pod's deletionGracePeriodSeconds when the container was created.
pub const POD_DELETION_GRACE_PERIOD: &str = "io.kubernetes.pod.deletionGracePeriod";
/// Annotation: the pod's terminationGracePeriodSeconds.
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";

/// Where the termination message is read from when the container does not say.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// How the termination message is read when the container does not say.
pub const DEFAULT_TERMINATION_MESSAGE_POLICY: &str = "File";

/// The container's terminationMessagePath, defaulted.
pub fn termination_message_path(container: &Container) -> &str {
    container
        .termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

/// The container's terminationMessagePolicy, defaulted.
pub fn termination_message_policy(container: &Container) -> &str {
    container
        .termination_message_policy
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_POLICY)
}

/// The labels of a container: pod name, namespace, uid and container name.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let m = &pod.metadata;
    let owned = |s: &Option<String>| s.clone().unwrap_or_default();
    HashMap::from([
        (POD_NAME.to_string(), owned(&m.name)),
        (POD_NAMESPACE.to_string(), owned(&m.namespace)),
        (POD_UID.to_string(), owned(&m.uid)),
        (CONTAINER_NAME.to_string(), container.name.clone()),
    ])
}

/// The annotations of a container created for the `restart_count`-th time.
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
) -> HashMap<String, String> {
    let mut a = HashMap::from([
        (CONTAINER_HASH.to_string(), container_hash(container)),
        (
            CONTAINER_RESTART_COUNT.to_string(),
            restart_count.to_string(),
        ),
        (
            CONTAINER_TERMINATION_MESSAGE_PATH.to_string(),
            termination_message_path(container).to_string(),
        ),
        (
            CONTAINER_TERMINATION_MESSAGE_POLICY.to_string(),
            termination_message_policy(container).to_string(),
        ),
    ]);
    if let Some(secs) = pod.metadata.deletion_grace_period_seconds {
        a.insert(POD_DELETION_GRACE_PERIOD.to_string(), secs.to_string());
    }
    if let Some(secs) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        a.insert(POD_TERMINATION_GRACE_PERIOD.to_string(), secs.to_string());
    }
    if let Some(pre_stop) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    {
        insert_json(&mut a, CONTAINER_PRE_STOP_HANDLER, pre_stop);
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty()) {
        insert_json(&mut a, CONTAINER_PORTS, ports);
    }
    a
}

fn insert_json(a: &mut HashMap<String, String>, key: &str, value: &impl Serialize) {
    match serde_json::to_string(value) {
        Ok(json) => {
            a.insert(key.to_string(), json);
        }
        Err(e) => {
            tracing::warn!(annotation = key, error = %e, "cannot encode container annotation");
        }
    }
}

/// A stable hash of the parts of a container spec whose change means the container must be
/// recreated. Like kubelet (1.31+) this is the name and the image: every other field of a
/// running pod's container is immutable (resources change in place), and hashing only these
/// keeps containers running across agent upgrades that add new, defaulted fields.
/// FNV-1a (32 bit) over `{"image":...,"name":...}`, in lowercase hex.
pub fn container_hash(container: &Container) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        image: &'a str,
        name: &'a str,
    }
    let fields = Hashed {
        image: container.image.as_deref().unwrap_or_default(),
        name: &container.name,
    };
    let bytes = serde_json::to_vec(&fields).unwrap_or_default();
    format!("{:x}", fnv1a32(&bytes))
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// What the agent recorded on a container at creation, read back from its annotations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerAnnotations {
    pub hash: Option<String>,
    pub restart_count: u32,
    pub termination_message_path: Option<String>,
    pub termination_message_policy: Option<String>,
    pub pod_deletion_grace_period: Option<i64>,
    pub pod_termination_grace_period: Option<i64>,
    pub pre_stop: Option<LifecycleHandler>,
    pub ports: Vec<ContainerPort>,
}

/// Reads [`ContainerAnnotations`] back; missing or unreadable values are left empty.
pub fn parse_container_annotations<S: std::hash::BuildHasher>(
    a: &HashMap<String, String, S>,
) -> ContainerAnnotations {
    let text = |k: &str| a.get(k).cloned();
    let int = |k: &str| a.get(k).and_then(|v| v.parse::<i64>().ok());
    ContainerAnnotations {
        hash: text(CONTAINER_HASH),
        restart_count: a
            .get(CONTAINER_RESTART_COUNT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        termination_message_path: text(CONTAINER_TERMINATION_MESSAGE_PATH),
        termination_message_policy: text(CONTAINER_TERMINATION_MESSAGE_POLICY),
        pod_deletion_grace_period: int(POD_DELETION_GRACE_PERIOD),
        pod_termination_grace_period: int(POD_TERMINATION_GRACE_PERIOD),
        pre_stop: a
            .get(CONTAINER_PRE_STOP_HANDLER)
            .and_then(|v| serde_json::from_str(v).ok()),
        ports: a
            .get(CONTAINER_PORTS)
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{container, pod_with};
    use serde_json::json;

    fn sample() -> (Pod, Container) {
        let c = json!({
            "name": "app", "image": "nginx:1.27",
            "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}}}
        });
        let p = pod_with(
            json!({"name": "web", "namespace": "ns", "uid": "uid-1", "deletionGracePeriodSeconds": 10}),
            json!({"terminationGracePeriodSeconds": 45, "containers": [c.clone()]}),
        );
        (p, container(c))
    }

    #[test]
    fn labels_identify_the_pod_and_container() {
        let (p, c) = sample();
        let l = container_labels(&p, &c);
        assert_eq!(l[POD_NAME], "web");
        assert_eq!(l[POD_NAMESPACE], "ns");
        assert_eq!(l[POD_UID], "uid-1");
        assert_eq!(l[CONTAINER_NAME], "app");
        assert_eq!(l.len(), 4);
    }

    #[test]
    fn annotations_round_trip() {
        let (p, c) = sample();
        let a = container_annotations(&p, &c, 3);
        assert_eq!(a[CONTAINER_RESTART_COUNT], "3");
        assert_eq!(
            a[CONTAINER_TERMINATION_MESSAGE_PATH],
            "/dev/termination-log"
        );
        assert_eq!(a[CONTAINER_TERMINATION_MESSAGE_POLICY], "File");
        assert_eq!(a[POD_TERMINATION_GRACE_PERIOD], "45");
        assert_eq!(a[POD_DELETION_GRACE_PERIOD], "10");
        assert_eq!(
            a[CONTAINER_PORTS],
            r#"[{"containerPort":80,"name":"http","protocol":"TCP"}]"#
        );
        assert_eq!(
            a[CONTAINER_PRE_STOP_HANDLER],
            r#"{"exec":{"command":["/bin/sh","-c","sleep 5"]}}"#
        );

        let back = parse_container_annotations(&a);
        assert_eq!(back.hash.as_deref(), Some(container_hash(&c).as_str()));
        assert_eq!(back.restart_count, 3);
        assert_eq!(back.pod_termination_grace_period, Some(45));
        assert_eq!(back.pod_deletion_grace_period, Some(10));
        assert_eq!(back.ports, c.ports.clone().unwrap());
        assert_eq!(
            back.pre_stop,
            c.lifecycle.as_ref().unwrap().pre_stop.clone()
        );
    }

    #[test]
    fn optional_annotations_are_left_out() {
        let p = pod_with(
            json!({"name": "web"}),
            json!({"containers": [{"name": "c"}]}),
        );
        let c = container(
            json!({"name": "c", "terminationMessagePath": "/tmp/msg", "terminationMessagePolicy": "FallbackToLogsOnError"}),
        );
        let a = container_annotations(&p, &c, 0);
        assert_eq!(a[CONTAINER_TERMINATION_MESSAGE_PATH], "/tmp/msg");
        assert_eq!(
            a[CONTAINER_TERMINATION_MESSAGE_POLICY],
            "FallbackToLogsOnError"
        );
        for k in [
            CONTAINER_PORTS,
            CONTAINER_PRE_STOP_HANDLER,
            POD_DELETION_GRACE_PERIOD,
            POD_TERMINATION_GRACE_PERIOD,
        ] {
            assert!(!a.contains_key(k), "{k}");
        }
        assert_eq!(
            parse_container_annotations(&HashMap::new()),
            ContainerAnnotations::default()
        );
    }

    #[test]
    fn hash_is_stable_and_tracks_name_and_image_only() {
        let a = container(json!({"name": "app", "image": "nginx:1.27"}));
        assert_eq!(container_hash(&a), container_hash(&a.clone()));
        // FNV-1a 32 of the JSON; pinned so a change of scheme is a deliberate one.
        assert_eq!(
            container_hash(&a),
            format!("{:x}", fnv1a32(br#"{"image":"nginx:1.27","name":"app"}"#))
        );
        let other_image = container(json!({"name": "app", "image": "nginx:1.28"}));
        assert_ne!(container_hash(&a), container_hash(&other_image));
        let resized = container(
            json!({"name": "app", "image": "nginx:1.27", "resources": {"limits": {"cpu": "2"}}}),
        );
        assert_eq!(container_hash(&a), container_hash(&resized));
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }
}
