//! In-place pod resize, kubelet's way (InPlacePodVerticalScaling, GA in 1.35). The timeline:
//!
//! 1. The `resize` subresource changes a running pod's container resources; its spec now
//!    differs from what the node allocated ([`allocation`]), and the worker syncs.
//! 2. The node judges the new resources ([`decision`]): Infeasible (never here), Deferred (not
//!    now; tried again when another pod's share shrinks or goes, and every 3 minutes), or
//!    accepted: the allocation becomes the spec's and counts against the node at once, the
//!    pod shows PodResizeInProgress and the event ResizeStarted.
//! 3. Every sync runs on the pod with the allocation in place of its spec
//!    ([`Resize::apply`]): nothing the node has not accepted reaches a cgroup.
//! 4. The sync applies the allocation to the running containers whose cgroups differ from it
//!    ([`actuated`]): resizePolicy RestartContainer restarts the container, otherwise
//!    UpdateContainerResources changes it in place, with the pod cgroup raised before and
//!    lowered after (`sync::resizing`). Once every running container holds its allocation the
//!    condition goes and ResizeCompleted is emitted; a failure keeps it with reason Error.
//! 5. The status shows `allocatedResources` and `resources` per container and the conditions
//!    ([`conditions`]); the events' messages are kubelet's ([`event`]).

pub mod actuated;
pub mod allocation;
pub mod conditions;
pub mod decision;
pub mod event;
mod state;

pub use actuated::{Actuated, Changed};
pub use allocation::{Allocation, resizable};
pub use conditions::{InProgress, Pending, PendingReason};
pub use decision::{Verdict, judge};
pub use state::Resize;
