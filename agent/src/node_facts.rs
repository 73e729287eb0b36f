//! What the pod side and the volume manager know about this node, fixed at start-up: its name
//! and address, and the allocatable amounts and pod count that admission checks and that unset
//! downward-API limits default to. One type for both, below both; values that belong to one pod
//! (its IPs) are passed beside it, never stored in it.

/// The node, as pods see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub node_name: String,
    /// The node's address (`status.hostIP`, also used for `status.hostIPs`).
    pub host_ip: String,
    /// Allocatable cpu in millicores: what admission counts against, and the default for an
    /// unset `limits.cpu` in the downward API (0: unknown).
    pub allocatable_cpu_millis: u64,
    /// Allocatable memory in bytes: what admission counts against, and the default for an unset
    /// `limits.memory` in the downward API (0: unknown).
    pub allocatable_memory_bytes: u64,
    /// Capacity minus kube- and system-reserved, eviction thresholds not subtracted
    /// (kubelet's nodeAllocatableAbsolute): a resize asking for more cpu can never fit here.
    pub absolute_allocatable_cpu_millis: u64,
    /// The same for memory, in bytes.
    pub absolute_allocatable_memory_bytes: u64,
    /// The machine's memory, for containers' OOM score.
    pub memory_capacity_bytes: u64,
    /// --max-pods.
    pub max_pods: u32,
}
