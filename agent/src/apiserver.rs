//! The API server the agent works with, or none: without `--kubeconfig` the agent runs
//! standalone (only static pods; no Node, Lease, events or mirror pods in any API). Code that
//! needs the API asks [`ApiServer::client`] and gets the client or [`Standalone`], an error
//! whose text says why there is none, so a pod that needs an API object fails with a clear
//! reason rather than a connection error.

use thiserror::Error;

/// Where API reads and writes go.
#[derive(Clone)]
pub enum ApiServer {
    Connected(kube::Client),
    /// No API server (standalone mode).
    Standalone,
}

/// The error of a call that needs the API server in standalone mode.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("no API server: the agent runs standalone (no --kubeconfig)")]
pub struct Standalone;

impl ApiServer {
    /// The client, or [`Standalone`].
    pub fn client(&self) -> Result<&kube::Client, Standalone> {
        match self {
            ApiServer::Connected(c) => Ok(c),
            ApiServer::Standalone => Err(Standalone),
        }
    }

    /// The client, if there is an API server.
    pub fn connected(&self) -> Option<&kube::Client> {
        self.client().ok()
    }
}
