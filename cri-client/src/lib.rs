//! Typed async client for the CRI v1 `RuntimeService` and `ImageService`.
//!
//! [`CriClient`] talks gRPC over a unix socket (for example containerd's
//! `/run/containerd/containerd.sock`) using the bindings of the `k8s-cri`
//! crate, re-exported here as [`api`]. Every call gets a deadline, a
//! `tracing` span, an optional [`CallObserver`] notification, and, when it is
//! idempotent, retries with exponential backoff on transient failures (see
//! [`RetryPolicy`]).
//!
//! Method shapes: a method named after an RPC takes the fields of that RPC's
//! request as arguments when there are at most three of them, and the full
//! `api::*Request` otherwise; responses with a single field are unwrapped.

#![warn(missing_docs)]

mod client;
mod error;
mod image;
mod options;
mod retry;
mod runtime;
mod transport;

pub use client::CriClient;
pub use error::CriError;
pub use image::IntoImageSpec;
pub use k8s_cri::v1 as api;
pub use options::{CallObserver, ClientOptions};
pub use retry::RetryPolicy;
pub use runtime::events::ContainerEventStream;
pub use tonic::Code;
pub use transport::parse_endpoint;
