//! Typed async client for a CSI v1 node plugin (Identity and Node services) and for the
//! kubelet plugin-registration v1 protocol, over unix sockets.
//!
//! The protobuf messages are written by hand with `prost` derives ([`proto`]); calls go through
//! `tonic::client::Grpc` with a prost codec. Every call has a deadline ([`CsiTimeouts`]) and
//! fails with a typed [`CsiError`].

mod client;
mod error;
pub mod proto;
mod registration;
mod transport;

pub use client::{CsiClient, CsiTimeouts, NodeCapabilities};
pub use error::CsiError;
pub use registration::RegistrationClient;
pub use transport::parse_endpoint;
