//! What the agent knows of its static pods, shared by the file source (which adds and removes
//! them), the pod writer (which records the status each worker computes: the status of a
//! static pod lives here, in memory), the mirror task, the API watch (which reports the mirror
//! pods it sees) and the HTTPS API's /pods. A static pod is known by its UID; a UID is static
//! only if the file source put it here, never because of a pod's annotations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::Notify;

/// One static pod.
#[derive(Clone)]
pub struct StaticPod {
    pub pod: Arc<Pod>,
    /// The latest status its worker computed.
    pub status: Option<PodStatus>,
    /// Its file is gone (or changed): the pod is terminating.
    pub removing: bool,
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, StaticPod>,
    /// Workers that finished (the pod is cleaned up), for the file source to retire.
    finished: Vec<String>,
    /// Mirror pods in the API, by namespace/name.
    mirrors: HashMap<String, Pod>,
}

/// The shared registry (cheap to clone).
#[derive(Clone, Default)]
pub struct StaticPods {
    inner: Arc<Mutex<Inner>>,
    /// Wakes the mirror task: a static pod, its status or a mirror pod changed.
    pub mirror_wake: Arc<Notify>,
    /// Wakes the file source: a worker finished.
    pub source_wake: Arc<Notify>,
}

/// namespace/name, kubelet's pod full name (in its order).
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl StaticPods {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A static pod to run (or its latest object: the terminating one after its file went).
    pub fn put(&self, pod: Arc<Pod>, removing: bool) {
        let status = pod.status.clone();
        self.lock()
            .pods
            .entry(uid(&pod))
            .and_modify(|e| {
                e.pod = pod.clone();
                e.removing = removing;
            })
            .or_insert(StaticPod {
                pod,
                status,
                removing,
            });
        self.mirror_wake.notify_one();
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.lock().pods.contains_key(uid)
    }

    /// The status the worker computed for static pod `uid`.
    pub fn set_status(&self, uid: &str, status: &PodStatus) {
        if let Some(e) = self.lock().pods.get_mut(uid) {
            e.status = Some(status.clone());
        }
        self.mirror_wake.notify_one();
    }

    /// The pod's worker is done with it: forget it; the file source retires the worker.
    pub fn finish(&self, uid: &str) {
        let mut inner = self.lock();
        if inner.pods.remove(uid).is_some() {
            inner.finished.push(uid.to_string());
        }
        drop(inner);
        self.source_wake.notify_one();
        self.mirror_wake.notify_one();
    }

    /// UIDs finished since the last call.
    pub fn take_finished(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().finished)
    }

    /// Every static pod.
    pub fn all(&self) -> Vec<StaticPod> {
        self.lock().pods.values().cloned().collect()
    }

    /// The static pods as the node runs them, each with its latest status (for /pods).
    pub fn pods_with_status(&self) -> Vec<Pod> {
        let mut pods: Vec<Pod> = self
            .all()
            .into_iter()
            .map(|e| {
                let mut pod = (*e.pod).clone();
                if e.status.is_some() {
                    pod.status = e.status;
                }
                pod
            })
            .collect();
        pods.sort_by_key(full_name);
        pods
    }

    /// A mirror pod as the API shows it now.
    pub fn mirror_seen(&self, pod: Pod) {
        self.lock().mirrors.insert(full_name(&pod), pod);
        self.mirror_wake.notify_one();
    }

    /// A mirror pod deleted from the API.
    pub fn mirror_gone(&self, pod: &Pod) {
        let mut inner = self.lock();
        let key = full_name(pod);
        if inner.mirrors.get(&key).is_some_and(|m| uid(m) == uid(pod)) {
            inner.mirrors.remove(&key);
        }
        drop(inner);
        self.mirror_wake.notify_one();
    }

    /// After a relist of the API: the mirror pods it holds, all of them.
    pub fn mirrors_listed(&self, pods: Vec<Pod>) {
        self.lock().mirrors = pods.into_iter().map(|p| (full_name(&p), p)).collect();
        self.mirror_wake.notify_one();
    }

    /// Every mirror pod the API holds for this node.
    pub fn mirrors(&self) -> Vec<Pod> {
        self.lock().mirrors.values().cloned().collect()
    }
}
