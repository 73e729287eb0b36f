//! Writes pod status through the status subresource, only when it changed. The write is a
//! strategic-merge patch carrying the pod's UID as a precondition (as kubelet does), so it never
//! conflicts with concurrent writers and never lands on a re-created pod of the same name.
//! [`PodWriter`] is the seam: `kube::Client` writes to the API, tests record in memory.

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, Patch};
use serde_json::json;

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
    let patch = json!({
        "metadata": { "uid": pod.metadata.uid },
        "status": status,
    });
    api.patch_status(name, &patch_params(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
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
