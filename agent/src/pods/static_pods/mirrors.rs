//! The mirror task (only with an API server): keeps one mirror pod per static pod, as
//! kubelet's `tryReconcileMirrorPods` and its orphaned-mirror cleanup do, and writes the status
//! each static pod's worker computed to its mirror pod (with the mirror's UID as the patch's
//! precondition, as kubelet's status manager translates it).
//!
//! - A static pod without a mirror gets one; a mirror pod being deleted, or one whose
//!   `kubernetes.io/config.mirror` hash is not the static pod's (the manifest changed), is
//!   deleted (grace 0, UID precondition) and created anew. Deleting a mirror pod therefore
//!   brings it back and never touches the static pod. A terminating static pod keeps its
//!   mirror but gets no new one.
//! - A mirror pod with no static pod of its name is deleted, once both the API and the
//!   manifest directory have been listed (so a restart does not delete what is still there).
//! - A mirror pod whose conditions another writer changed (the node lifecycle controller
//!   marks a NotReady node's pods unready, mirror pods included) gets its status again.
//! - It runs after every change the registry announces, and every 10 s to retry failures and
//!   to put back what others changed.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::StaticPods;
use super::mirror::{build, is_mirror_of};
use super::registry::{StaticPod, full_name};

const RETRY: Duration = Duration::from_secs(10);

/// What the task remembers between passes.
struct Mirrors {
    client: kube::Client,
    node: String,
    node_uid: Option<String>,
    /// The status last written to each mirror pod, by the mirror's UID.
    written: HashMap<String, PodStatus>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Runs until cancelled, once `files_listed` and `api_listed` are both true.
pub async fn run(
    client: kube::Client,
    node: String,
    statics: StaticPods,
    mut files_listed: watch::Receiver<bool>,
    mut api_listed: watch::Receiver<bool>,
    cancel: CancellationToken,
) {
    let listed = async {
        let _ = files_listed.wait_for(|l| *l).await;
        let _ = api_listed.wait_for(|l| *l).await;
    };
    tokio::select! {
        () = cancel.cancelled() => return,
        () = listed => {}
    }
    let mut mirrors = Mirrors {
        client,
        node,
        node_uid: None,
        written: HashMap::new(),
    };
    loop {
        mirrors.pass(&statics).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = statics.mirror_wake.notified() => {}
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

impl Mirrors {
    async fn pass(&mut self, statics: &StaticPods) {
        let mut mirrors: HashMap<String, Pod> = statics
            .mirrors()
            .into_iter()
            .map(|m| (full_name(&m), m))
            .collect();
        let pods = statics.all();
        for s in &pods {
            let name = full_name(&s.pod);
            let mirror = mirrors.remove(&name);
            if let Some(created) = self.reconcile(s, mirror).await {
                statics.mirror_seen(created);
            }
        }
        // What is left has no static pod of its name: orphans.
        for orphan in mirrors.values() {
            info!(pod = %full_name(orphan), "deleting the mirror pod of a static pod that is gone");
            self.delete(orphan).await;
        }
        let present: Vec<String> = statics.mirrors().iter().map(uid).collect();
        self.written
            .retain(|mirror_uid, _| present.contains(mirror_uid));
    }

    /// Makes `mirror` the current mirror of `s` with its status; returns a mirror it created.
    async fn reconcile(&mut self, s: &StaticPod, mirror: Option<Pod>) -> Option<Pod> {
        let mut current = mirror;
        if let Some(m) = &current
            && (m.metadata.deletion_timestamp.is_some() || !is_mirror_of(m, &s.pod))
        {
            info!(pod = %full_name(m), "deleting a mirror pod that does not match its static pod");
            if self.delete(m).await {
                current = None;
            } else {
                return None;
            }
        }
        let (mirror, created) = match current {
            Some(m) => (m, false),
            None if s.removing => return None,
            None => (self.create(&s.pod).await?, true),
        };
        if let Some(status) = &s.status
            && (self.written.get(&uid(&mirror)) != Some(status)
                || crate::pods::status_writer::overwritten(mirror.status.as_ref(), status))
        {
            match crate::pods::status_writer::write(&self.client, &mirror, status).await {
                Ok(()) => {
                    self.written.insert(uid(&mirror), status.clone());
                }
                Err(e) => {
                    warn!(pod = %full_name(&mirror), error = %e, "failed to write the mirror pod's status");
                }
            }
        }
        created.then_some(mirror)
    }

    async fn create(&mut self, pod: &Pod) -> Option<Pod> {
        let node_uid = self.node_uid().await?;
        let mirror = build(pod, &self.node, &node_uid);
        let ns = mirror.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        match api.create(&PostParams::default(), &mirror).await {
            Ok(created) => {
                info!(pod = %full_name(&created), "created a mirror pod for a static pod");
                Some(created)
            }
            // Created by an earlier pass whose watch event has not arrived yet.
            Err(kube::Error::Api(e)) if e.code == 409 => None,
            Err(e) => {
                warn!(pod = %full_name(&mirror), error = %e, "failed creating a mirror pod");
                // The Node may have been replaced: look its UID up again next time.
                self.node_uid = None;
                None
            }
        }
    }

    /// Deletes `mirror` (grace 0, its UID as precondition); true when it is gone.
    async fn delete(&self, mirror: &Pod) -> bool {
        let ns = mirror.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: mirror.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let name = mirror.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &params).await {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => true,
            Err(e) => {
                warn!(pod = %full_name(mirror), error = %e, "failed deleting a mirror pod");
                false
            }
        }
    }

    /// The Node's UID for the owner reference; None while the Node is not registered (or is
    /// being deleted: kubelet makes no mirror pods then).
    async fn node_uid(&mut self) -> Option<String> {
        if self.node_uid.is_none() {
            let node = Api::<Node>::all(self.client.clone())
                .get_opt(&self.node)
                .await;
            self.node_uid = match node {
                Ok(Some(n)) if n.metadata.deletion_timestamp.is_none() => n.metadata.uid,
                Ok(_) => None,
                Err(e) => {
                    warn!(error = %e, "cannot read the Node for mirror pods");
                    None
                }
            };
        }
        self.node_uid.clone()
    }
}
