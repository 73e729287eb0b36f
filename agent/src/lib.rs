//! minikubelet: a small Kubernetes node agent, as a library. The `minikubelet` binary
//! (`main.rs`) resolves a [`config::Config`], sets up [`logging`] and calls [`agent::run`];
//! the CNI delegate (`bin/minikubelet-cni.rs`) speaks [`network::wire`]; integration tests
//! use a few modules directly. Every module is one concern.
//!
//! How a pod flows: [`pods::source`] (the API watch of pods bound to this node) -> one
//! [`pods::worker`] per pod, the only place its pod is synced -> the backends it drives
//! ([`runtime`] for CRI calls, [`network`] through the CNI delegate, [`volumes`] and [`csi`] for
//! mounts) -> [`pods::status_writer`] back to the API, with [`events`] beside it. The node side
//! ([`node`]: registration, Lease, Node status) runs beside the pod side; [`server`] (the
//! kubelet API on --port) and [`healthz`] read from both, and all of them record [`metrics`].
//!
//! Modules only use modules below them in this list (`deploy/dev/lib/module-cycles.py` proves
//! there is no cycle, at this level and inside each module):
//! - entry: [`agent`] (start-up checks of the peers, the node's set-up, and the task set that
//!   runs until a shutdown signal),
//!   [`logging`], [`systemd`] (sd_notify: READY, STATUS, WATCHDOG, STOPPING);
//! - readers of both sides: [`server`], [`healthz`];
//! - node protection: [`shutdown`] (graceful node shutdown: logind's inhibitor, pods ended by
//!   priority band), [`eviction`] (thresholds, pressure, evicting pods through the workers);
//! - the pod side: [`pods`];
//! - the node side: [`node`] (registration, the node Lease and the Node status writer);
//! - the node's identity: [`certificates`] (TLS bootstrap, the API client whose certificate
//!   rotates in place, the serving certificate from a CSR);
//! - volume backends: [`csi`], then [`volumes`] (pod volumes);
//! - shared by pods/ and volumes/: [`downward`] (downward-API values), [`pod_resources`]
//!   (resource amounts in a pod spec), [`expand`] (`$(VAR)` expansion), [`node_facts`] (what
//!   pods see of the node);
//! - [`config`]: flags, config file and defaults resolved into one validated `Config` (it
//!   holds network's settings, hence above it);
//! - [`network`]: pod networking (the CNI delegate's socket, the chain, NetworkReady, GC);
//! - leaves: [`apiserver`] (the API server, or none in standalone mode), [`events`] (Kubernetes
//!   events), [`metrics`] (Prometheus), [`runtime`] (the
//!   container runtime boundary and its health), [`cgroups`] (where pods' cgroups go: driver,
//!   root, QoS layout, cgroup version), [`backoff`], [`quantity`] (resource quantities),
//!   [`pressure`] (the node's pressure conditions, as the eviction manager judged them),
//!   [`shutdown_status`] (whether logind announced a shutdown).

pub mod agent;
pub mod apiserver;
pub mod backoff;
pub mod certificates;
pub mod cgroups;
pub mod config;
pub mod csi;
pub mod downward;
pub mod events;
pub mod eviction;
pub mod expand;
pub mod healthz;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod node;
pub mod node_facts;
pub mod pod_resources;
pub mod pods;
pub mod pressure;
pub mod quantity;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod shutdown_status;
pub mod systemd;
#[cfg(test)]
mod test_pods;
pub mod userns;
pub mod volumes;
