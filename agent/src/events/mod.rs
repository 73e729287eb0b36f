//! Events about pods and the node (events.k8s.io), sent from a background task so that a pod
//! worker never waits on the API server to report what it did. The queue is bounded: when the
//! API server is unreachable, the oldest news is dropped rather than memory growing. A repeat
//! of an event (same object, reason and message) counts on the first one ([`series`]). Without
//! an API server (standalone mode) events are log lines. Shared by node/, pods/ and volumes/,
//! so it lives below all three.

mod publish;
mod series;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::Resource;
use tokio::sync::mpsc;
use tracing::debug;

use publish::{Pending, Publisher};

const QUEUE: usize = 1024;

/// A cheap, cloneable handle to emit events.
#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<Pending>,
}

/// An event with kubelet's reason, e.g. ("Pulling", "Pulling image \"...\"").
pub struct Note<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub action: &'a str,
    pub message: String,
    /// The event object's annotations (kubelet's AnnotatedEventf), usually none.
    pub annotations: BTreeMap<String, String>,
}

impl Events {
    /// Starts the sender task; events are reported as coming from `kubelet` on `node`.
    pub fn start(client: kube::Client, node: &str) -> Events {
        let mut publisher = Publisher::new(client, node);
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let reason = event.reason.clone();
                if let Err(e) = publisher.publish(event).await {
                    debug!(error = %e, %reason, "event not recorded");
                }
            }
        });
        Events { tx }
    }

    /// A handle whose events go to the log only (standalone mode: no API server to send them
    /// to), one line each.
    pub fn log_only() -> Events {
        let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let object = format!(
                    "{}/{}",
                    event.regarding.namespace.as_deref().unwrap_or_default(),
                    event.regarding.name.as_deref().unwrap_or_default()
                );
                tracing::info!(%object, reason = %event.reason, warning = event.warning, note = %event.note, "event");
            }
        });
        Events { tx }
    }

    /// A handle whose events go nowhere (tests of logic that emits events).
    pub fn discard() -> Events {
        let (tx, _rx) = mpsc::channel(1);
        Events { tx }
    }

    /// A handle whose events are kept for the test to read (the sender task's input, as is).
    #[cfg(test)]
    pub fn recording() -> (Events, RecordedEvents) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Events { tx }, RecordedEvents { rx })
    }

    /// Emits an event about `pod`, optionally about one of its containers (fieldPath).
    pub fn emit(&self, pod: &Pod, container: Option<&str>, note: Note<'_>) {
        let mut reference = pod.object_ref(&());
        if let Some(name) = container {
            reference.field_path = Some(container_field_path(pod, name));
        }
        self.send(reference, note);
    }

    fn send(&self, regarding: ObjectReference, note: Note<'_>) {
        let event = Pending {
            regarding,
            warning: note.warning,
            reason: note.reason.to_owned(),
            action: note.action.to_owned(),
            note: truncate(note.message, 1024),
            annotations: note.annotations,
        };
        // A full queue drops the event: losing news beats blocking a pod worker.
        let _ = self.tx.try_send(event);
    }

    pub fn normal(&self, pod: &Pod, container: Option<&str>, reason: &str, message: String) {
        self.emit(pod, container, Note::named(false, reason, message));
    }

    pub fn warning(&self, pod: &Pod, container: Option<&str>, reason: &str, message: String) {
        self.emit(pod, container, Note::named(true, reason, message));
    }

    /// A Warning event about `pod` whose object carries `annotations` (kubelet's Evicted).
    pub fn annotated_warning(
        &self,
        pod: &Pod,
        reason: &str,
        message: String,
        annotations: BTreeMap<String, String>,
    ) {
        let note = Note {
            annotations,
            ..Note::named(true, reason, message)
        };
        self.emit(pod, None, note);
    }
}

impl<'a> Note<'a> {
    /// A note whose action is its reason (kubelet's events name no other action).
    fn named(warning: bool, reason: &'a str, message: String) -> Note<'a> {
        Note {
            warning,
            reason,
            action: reason,
            message,
            annotations: BTreeMap::new(),
        }
    }
}

impl Events {
    /// A Normal event about the Node itself (kubelet's Starting, NodeReady, NodeNotReady).
    /// kubelet refers to its Node with the node name as UID; so does this.
    pub fn node(&self, node: &str, reason: &str, message: String) {
        self.about_node(node, Note::named(false, reason, message));
    }

    /// A Warning event about the Node (kubelet's EvictionThresholdMet).
    pub fn node_warning(&self, node: &str, reason: &str, message: String) {
        self.about_node(node, Note::named(true, reason, message));
    }

    fn about_node(&self, node: &str, what: Note<'_>) {
        let reference = ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Node".to_string()),
            name: Some(node.to_string()),
            uid: Some(node.to_string()),
            ..ObjectReference::default()
        };
        self.send(reference, what);
    }
}

/// The events a [`Events::recording`] handle emitted.
#[cfg(test)]
pub struct RecordedEvents {
    rx: mpsc::Receiver<Pending>,
}

/// One recorded event, reduced to what scenarios assert on.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// spec.containers{NAME}, or None for the pod itself.
    pub field_path: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
impl RecordedEvents {
    /// The events emitted since the last call, in order.
    pub fn take(&mut self) -> Vec<RecordedEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            out.push(RecordedEvent {
                warning: event.warning,
                reason: event.reason,
                message: event.note,
                field_path: event.regarding.field_path,
                annotations: event.annotations,
            });
        }
        out
    }
}

/// kubelet's fieldPath for a container: spec.containers{NAME} or spec.initContainers{NAME}.
fn container_field_path(pod: &Pod, name: &str) -> String {
    let is_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == name));
    if is_init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
