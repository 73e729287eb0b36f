//! The container runtime boundary. The node side needs only the runtime's identity and health
//! ([`RuntimeInfo`]); the pod side makes the CRI calls of [`PodRuntime`]. The traits keep that
//! logic testable without a runtime ([`fake`] in unit tests, [`recording`] around it or around
//! containerd in the scenarios), while integration tests use containerd.

mod clock;
mod cri;
#[cfg(test)]
pub mod fake;
pub mod health;
mod pod_runtime;
#[cfg(test)]
pub mod recording;

use std::future::Future;

pub use clock::WallClock;
pub use cri::CriRuntime;
pub use health::RuntimeHealth;
pub use pod_runtime::{ContainerEvents, PodRuntime};

/// Label minikubelet adds to its sandboxes so that agents sharing one runtime (tests) never
/// touch each other's pods: every listing of this node's sandboxes filters on it.
pub const NODE_LABEL: &str = "minikubelet.io/node";

/// One runtime condition as CRI Status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCondition {
    /// RuntimeReady or NetworkReady.
    pub kind: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// A runtime handler (a RuntimeClass's `handler`; "" is the runtime's default) and what it
/// supports, as CRI Status reports it (containerd 1.7 and later; 1.6 reports none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeHandler {
    pub name: String,
    pub recursive_read_only_mounts: bool,
    /// User namespaces for pods, with idmap mounts (`hostUsers: false`).
    pub user_namespaces: bool,
}

/// One answer of CRI Status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeStatus {
    pub conditions: Vec<RuntimeCondition>,
    pub handlers: Vec<RuntimeHandler>,
}

/// What the node controller asks of the runtime.
pub trait RuntimeInfo: Send + Sync + 'static {
    /// "NAME://VERSION", as Kubernetes shows containerRuntimeVersion.
    fn version(&self) -> impl Future<Output = Result<String, cri_client::CriError>> + Send;
    /// The runtime's conditions and handlers.
    fn status(&self) -> impl Future<Output = Result<RuntimeStatus, cri_client::CriError>> + Send;
}
