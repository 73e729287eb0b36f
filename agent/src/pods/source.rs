//! The pods bound to this node, from a watch with fieldSelector spec.nodeName=NODE (what the Node
//! authorizer lets a node see). Each event goes to the pod's worker; after every (re)list, pods
//! that vanished while the watch was down are reported gone. Mirror pods (annotation
//! `kubernetes.io/config.mirror`, kubelet's rule) are never run: they go to the static pod
//! registry, and static pods (which the API does not list) are never reported gone.

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::static_pods::StaticPods;
use super::static_pods::mirror::is_mirror_pod;
use super::worker::Workers;

/// Runs the watch until cancelled. `synced` turns true after the first complete list.
pub async fn run(
    client: kube::Client,
    node_name: String,
    workers: Workers,
    statics: StaticPods,
    synced: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: HashSet<String> = HashSet::new();
    let mut mirrors: Vec<Pod> = Vec::new();
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = stream.next() => next,
        };
        let Some(event) = next else { return };
        match event {
            Ok(Event::Init) => {
                listing.clear();
                mirrors.clear();
            }
            Ok(Event::InitApply(pod)) if is_mirror_pod(&pod) => mirrors.push(pod),
            Ok(Event::InitApply(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    listing.insert(uid);
                }
                workers.update(pod);
            }
            Ok(Event::InitDone) => {
                statics.mirrors_listed(std::mem::take(&mut mirrors));
                for uid in workers.uids() {
                    if !listing.contains(&uid) && !statics.contains(&uid) {
                        workers.gone(&uid);
                    }
                }
                if !*synced.borrow() {
                    info!(pods = listing.len(), "pods bound to this node listed");
                }
                synced.send_replace(true);
            }
            Ok(Event::Apply(pod)) if is_mirror_pod(&pod) => statics.mirror_seen(pod),
            Ok(Event::Apply(pod)) => workers.update(pod),
            Ok(Event::Delete(pod)) if is_mirror_pod(&pod) => statics.mirror_gone(&pod),
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    workers.gone(uid);
                }
            }
            Err(e) => warn!(error = %e, "pod watch failed; retrying with backoff"),
        }
    }
}
