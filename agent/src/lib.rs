//! minikubelet: a small Kubernetes node agent. Modules, one concern each:
//! - [`config`]: flags, config file and defaults resolved into one validated `Config`;
//! - [`node`]: registration, the node Lease and the Node status writer;
//! - [`runtime`]: the container runtime boundary and its health monitor;
//! - [`healthz`]: the local /healthz endpoint;
//! - [`network`]: pod networking (the CNI delegate's socket, the chain, NetworkReady, GC);
//! - [`agent`]: start-up checks and the task set that runs until a shutdown signal.

pub mod agent;
pub mod backoff;
pub mod config;
pub mod csi;
mod downward;
pub mod events;
mod expand;
pub mod healthz;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod node;
pub mod node_facts;
mod pod_resources;
pub mod pods;
pub mod quantity;
pub mod runtime;
pub mod server;
#[cfg(test)]
mod test_pods;
pub mod volumes;
