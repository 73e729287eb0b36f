//! The pod writer the workers use: a static pod's status goes to the [`StaticPods`] registry
//! (the mirror task carries it to the mirror pod), and its "deletion" tells the file source the
//! pod is cleaned up; every other pod's writes go to the API. Without an API server
//! (standalone mode) there are no other pods.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::StaticPods;
use crate::pods::status_writer::PodWriter;

/// Routes writes by where the pod came from.
pub struct RoutingWriter {
    pub statics: StaticPods,
    /// Where API pods' writes go; None in standalone mode.
    pub api: Option<Arc<dyn PodWriter>>,
}

fn static_uid<'a>(statics: &StaticPods, pod: &'a Pod) -> Option<&'a str> {
    pod.metadata
        .uid
        .as_deref()
        .filter(|uid| statics.contains(uid))
}

impl PodWriter for RoutingWriter {
    fn write_status<'a>(
        &'a self,
        pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        if let Some(uid) = static_uid(&self.statics, pod) {
            self.statics.set_status(uid, status);
            return async { Ok(()) }.boxed();
        }
        match &self.api {
            Some(api) => api.write_status(pod, status),
            None => async { Ok(()) }.boxed(),
        }
    }

    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>> {
        if let Some(uid) = static_uid(&self.statics, pod) {
            self.statics.finish(uid);
            return async { Ok(()) }.boxed();
        }
        match &self.api {
            Some(api) => api.delete(pod),
            None => async { Ok(()) }.boxed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::status_writer::recording::{RecordingWriter, Written};

    fn pod(uid: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "uid": uid}})).unwrap()
    }

    #[tokio::test]
    async fn static_pods_are_written_to_the_registry_and_api_pods_to_the_api() {
        let statics = StaticPods::default();
        statics.put(Arc::new(pod("s")), false);
        let api = Arc::new(RecordingWriter::default());
        let writer = RoutingWriter {
            statics: statics.clone(),
            api: Some(api.clone()),
        };
        let running = PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        writer.write_status(&pod("s"), &running).await.unwrap();
        writer.write_status(&pod("a"), &running).await.unwrap();
        assert_eq!(statics.all()[0].status.as_ref(), Some(&running));
        writer.delete(&pod("s")).await.unwrap();
        writer.delete(&pod("a")).await.unwrap();
        assert!(!statics.contains("s"));
        assert_eq!(statics.take_finished(), vec!["s".to_string()]);
        let uids: Vec<String> = api
            .writes()
            .into_iter()
            .map(|w| match w {
                Written::Status { uid, .. } | Written::Deleted { uid } => uid,
            })
            .collect();
        assert_eq!(
            uids,
            vec!["a", "a"],
            "nothing of the static pod reached the API"
        );
    }
}
