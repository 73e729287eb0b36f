//! Writes pod status through the status subresource, only when it changed. The write is a
//! strategic-merge patch carrying the pod's UID as a precondition (as kubelet does), so it never
//! conflicts with concurrent writers and never lands on a re-created pod of the same name.
//! [`PodWriter`] is the seam: `kube::Client` writes to the API, tests record in memory.
//!
//! Others write pod status too: the node lifecycle controller marks every pod of a node it saw
//! NotReady unready (condition Ready False, event NodeNotReady), also the control plane's mirror
//! pods while their node first comes up. [`overwritten`] finds that in the API's copy so the
//! writer puts its own conditions back, as kubelet's status manager reconciles
//! (`needsReconcile`).

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, Patch};
use serde_json::{Value, json};

use crate::node::register::patch_params;

/// What the pod controller writes to the API about its pods.
pub trait PodWriter: Send + Sync + 'static {
    /// Patches `status` onto `pod` (see [`write`]).
    fn write_status<'a>(
        &'a self,
        pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>>;

    /// Deletes the pod object, grace 0, UID precondition (see [`delete`]).
    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>>;
}

impl PodWriter for kube::Client {
    fn write_status<'a>(
        &'a self,
        pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        write(self, pod, status).boxed()
    }

    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>> {
        delete(self, pod).boxed()
    }
}

/// Patches `status` onto `pod`.
pub async fn write(
    client: &kube::Client,
    pod: &Pod,
    status: &PodStatus,
) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &patch_params(),
        &Patch::Strategic(patch_body(pod, status)),
    )
    .await
    .map(|_| ())
}

/// The patch: the UID precondition and the status. Conditions merge by type in a
/// strategic-merge patch, so a field a condition no longer has (the reason and message of a
/// ContainersReady that turned True) is sent as null, which removes it; otherwise the API
/// would keep the old text beside the new status (kubelet's two-way patch does the same).
fn patch_body(pod: &Pod, status: &PodStatus) -> Value {
    let mut status = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            for field in ["reason", "message"] {
                c.entry(field).or_insert(Value::Null);
            }
        }
        // A resize condition that ended is removed from the API's list, as kubelet's patch
        // removes it; a strategic merge would keep it otherwise.
        for gone in gone_conditions(pod.status.as_ref(), &status_conditions(conditions)) {
            conditions.push(json!({"type": gone, "$patch": "delete"}));
        }
    }
    json!({
        "metadata": { "uid": pod.metadata.uid },
        "status": status,
    })
}

/// The condition types the agent removes when they no longer hold.
const REMOVED_WHEN_CLEARED: [&str; 2] = [
    super::resize::conditions::PENDING,
    super::resize::conditions::IN_PROGRESS,
];

fn status_conditions(conditions: &[Value]) -> Vec<String> {
    conditions
        .iter()
        .filter_map(|c| c.get("type").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The resize conditions the API's copy shows and `ours` (their types) no longer has.
fn gone_conditions(api: Option<&PodStatus>, ours: &[String]) -> Vec<&'static str> {
    let stored: Vec<&str> = api
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.type_.as_str())
        .collect();
    REMOVED_WHEN_CLEARED
        .into_iter()
        .filter(|t| stored.contains(t) && !ours.iter().any(|o| o == t))
        .collect()
}

/// True when the API's copy of a pod's status shows one of the conditions in `ours` otherwise
/// than `ours` has it (or not at all): another writer changed it since, so it must be written
/// again. Only conditions count: they are what others write, and a field the API server drops
/// (one of a feature it has off) must not make every sync write. Compared as the API stores
/// them (times in whole seconds).
pub fn overwritten(api: Option<&PodStatus>, ours: &PodStatus) -> bool {
    let stored: Vec<Value> = api
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    let types: Vec<String> = ours
        .conditions
        .iter()
        .flatten()
        .map(|c| c.type_.clone())
        .collect();
    ours.conditions.iter().flatten().any(|c| {
        let want = serde_json::to_value(c).unwrap_or(Value::Null);
        !stored.contains(&want)
    }) || !gone_conditions(api, &types).is_empty()
}

/// Deletes the pod object with grace 0 and a UID precondition (the last step of termination).
pub async fn delete(client: &kube::Client, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = kube::api::DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // Already gone, or a different pod now has the name: nothing of ours to delete.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A [`PodWriter`] that keeps every write in memory, for scenario tests.
#[cfg(test)]
pub mod recording {
    use std::sync::Mutex;

    use futures::FutureExt;
    use futures::future::BoxFuture;
    use k8s_openapi::api::core::v1::{Pod, PodStatus};

    /// One write the pod controller made.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Written {
        Status {
            uid: String,
            status: Box<PodStatus>,
        },
        /// The final deletion (always grace 0 with the UID precondition in the real writer).
        Deleted {
            uid: String,
        },
    }

    /// Records writes; every write succeeds.
    #[derive(Default)]
    pub struct RecordingWriter {
        writes: Mutex<Vec<Written>>,
    }

    impl RecordingWriter {
        /// Every write so far, in order.
        pub fn writes(&self) -> Vec<Written> {
            self.lock().clone()
        }

        /// The status patches so far, in order.
        pub fn statuses(&self) -> Vec<PodStatus> {
            self.writes()
                .into_iter()
                .filter_map(|w| match w {
                    Written::Status { status, .. } => Some(*status),
                    Written::Deleted { .. } => None,
                })
                .collect()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Written>> {
            self.writes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        fn record(&self, w: Written) -> BoxFuture<'_, Result<(), kube::Error>> {
            self.lock().push(w);
            async { Ok(()) }.boxed()
        }
    }

    fn uid(pod: &Pod) -> String {
        pod.metadata.uid.clone().unwrap_or_default()
    }

    impl super::PodWriter for RecordingWriter {
        fn write_status<'a>(
            &'a self,
            pod: &'a Pod,
            status: &'a PodStatus,
        ) -> BoxFuture<'a, Result<(), kube::Error>> {
            self.record(Written::Status {
                uid: uid(pod),
                status: Box::new(status.clone()),
            })
        }

        fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>> {
            self.record(Written::Deleted { uid: uid(pod) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(v: Value) -> PodStatus {
        serde_json::from_value(v).unwrap()
    }

    fn ready(flag: &str, time: &str) -> PodStatus {
        status(json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": flag, "lastTransitionTime": time},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": time}
        ]}))
    }

    #[test]
    fn a_condition_another_writer_changed_is_overwritten() {
        let ours = ready("True", "2026-12-02T10:00:00Z");
        // The node lifecycle controller's mark: Ready False, ContainersReady untouched.
        let mut marked = ours.clone();
        marked.conditions.as_mut().unwrap()[0] = serde_json::from_value(
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "2026-12-02T10:00:05Z"}),
        )
        .unwrap();
        assert!(overwritten(Some(&marked), &ours));
        assert!(overwritten(None, &ours), "nothing stored yet");
        assert!(!overwritten(Some(&ours), &ours));
    }

    #[test]
    fn only_conditions_count_and_others_conditions_and_fields_are_left_alone() {
        let ours = ready("True", "2026-12-02T10:00:00Z");
        let mut stored = ours.clone();
        // The scheduler's condition, and a field the API server left out.
        stored.conditions.as_mut().unwrap().push(
            serde_json::from_value(json!({"type": "PodScheduled", "status": "True"})).unwrap(),
        );
        stored.phase = None;
        assert!(!overwritten(Some(&stored), &ours));
    }

    #[test]
    fn times_compare_in_the_whole_seconds_the_api_stores() {
        let mut ours = ready("True", "2026-12-02T10:00:00Z");
        for c in ours.conditions.as_mut().unwrap() {
            c.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-12-02T10:00:00.750Z".parse().unwrap(),
            ));
        }
        let stored = ready("True", "2026-12-02T10:00:00Z");
        assert!(!overwritten(Some(&stored), &ours));
    }

    #[test]
    fn the_patch_removes_a_reason_and_message_a_condition_no_longer_has() {
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u1"}})).unwrap();
        let body = patch_body(&pod, &ready("True", "2026-12-02T10:00:00Z"));
        assert_eq!(body["metadata"]["uid"], "u1");
        let c = &body["status"]["conditions"][1];
        assert_eq!(c["type"], "ContainersReady");
        assert!(c.get("reason").is_some_and(Value::is_null), "{c}");
        assert!(c.get("message").is_some_and(Value::is_null), "{c}");
        let unready = status(json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "ContainersNotReady", "message": "containers with unready status: [c]"}]}));
        let body = patch_body(&pod, &unready);
        assert_eq!(
            body["status"]["conditions"][0]["reason"],
            "ContainersNotReady"
        );
    }

    #[test]
    fn a_resize_condition_that_ended_is_deleted_from_the_api_list() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "PodResizeInProgress", "status": "True"},
                {"type": "example.com/gate", "status": "True"}
            ]}
        }))
        .unwrap();
        let ours = ready("True", "2026-12-02T10:00:00Z");
        assert!(
            overwritten(pod.status.as_ref(), &ours),
            "the stale condition makes the status written"
        );
        let body = patch_body(&pod, &ours);
        let conditions = body["status"]["conditions"].as_array().unwrap();
        let deleted: Vec<&Value> = conditions
            .iter()
            .filter(|c| c.get("$patch").is_some())
            .collect();
        assert_eq!(
            deleted,
            [&json!({"type": "PodResizeInProgress", "$patch": "delete"})],
            "others' conditions are left alone"
        );
    }
}
