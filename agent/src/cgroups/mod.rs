//! Where pods' cgroups go, as kubelet lays them out: the cgroup driver (cgroupfs or systemd,
//! the container runtime's word first), the cgroup root with `kubepods` below it, one cgroup
//! per QoS class (Guaranteed pods directly in `kubepods`), and one per pod, named in the
//! driver's form; plus which cgroup version the host mounts. The runtime creates the cgroups
//! from the sandbox's cgroup parent; the agent removes a pod's once the pod is gone.
//!
//! - [`name`]: kubelet's internal cgroup name and its cgroupfs and systemd forms;
//! - [`driver`]: the driver from the configuration and the CRI `RuntimeConfig` answer;
//! - [`layout`]: the per-QoS and per-pod cgroups of this node;
//! - [`version`]: cgroup v1 or v2 (unified) on this host, and the directories a cgroup has.

mod driver;
mod layout;
mod name;
mod version;

pub use driver::{CgroupDriver, DriverChoice, UnknownDriver, choose};
pub use layout::{CgroupSettings, PodCgroups, QosTier};
pub use name::{CgroupName, NameError};
pub use version::{CgroupVersion, Hierarchy};
