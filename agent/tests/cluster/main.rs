//! The integration tests against the real local cluster (`deploy/dev/cluster up`), one module
//! per behaviour, in one test binary: one compile and one link of the cluster harness and the
//! API types instead of one per file (most of a cold `deploy/dev/test`'s build time was those
//! links). Run serially (`--test-threads=1`): some tests stop shared components. A module's
//! tests are `cargo test --test cluster -- MODULE::`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod bad_input;
mod certificates;
mod eviction;
mod hostile_pods;
mod kind_cluster;
mod kubeadm_init;
mod kubeadm_join;
mod node_api;
mod node_lifecycle;
mod node_stats;
mod pod_config;
mod pod_csi;
mod pod_images_logs;
mod pod_lifecycle;
mod pod_network;
mod pod_volumes;
mod resize;
mod shutdown;
mod static_pods;
