//! The container runtime boundary. The node side needs only the runtime's identity and health;
//! the trait keeps that logic testable without a runtime, while integration tests use containerd.

mod cri;
pub mod health;

use std::future::Future;

pub use cri::CriRuntime;
pub use health::RuntimeHealth;

/// One runtime condition as CRI Status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCondition {
    /// RuntimeReady or NetworkReady.
    pub kind: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// What the node controller asks of the runtime.
pub trait RuntimeInfo: Send + Sync + 'static {
    /// "NAME://VERSION", as Kubernetes shows containerRuntimeVersion.
    fn version(&self) -> impl Future<Output = Result<String, cri_client::CriError>> + Send;
    /// The runtime's conditions.
    fn status(
        &self,
    ) -> impl Future<Output = Result<Vec<RuntimeCondition>, cri_client::CriError>> + Send;
}
