//! Where pods' cgroups go, as kubelet lays them out: the cgroup driver (cgroupfs or systemd,
//! the container runtime's word first), the cgroup root with `kubepods` below it, one cgroup
//! per QoS class (Guaranteed pods directly in `kubepods`), and one per pod, named in the
//! driver's form; plus which cgroup version the host mounts. The agent writes a pod's cgroup
//! and its limits before the sandbox (the runtime puts the sandbox below it, from the cgroup
//! parent) and removes it once the pod is gone.
//!
//! - [`name`]: kubelet's internal cgroup name and its cgroupfs and systemd forms;
//! - [`driver`]: the driver from the configuration and the CRI `RuntimeConfig` answer;
//! - [`layout`]: the per-QoS and per-pod cgroups of this node;
//! - [`version`]: cgroup v1 or v2 (unified) on this host, and the directories a cgroup has;
//! - [`limits`]: the limits of one cgroup and the files that hold them on each version;
//! - [`usage`]: the memory a cgroup holds now;
//! - [`qos`]: kubepods with node allocatable enforced on it, and the QoS class cgroups;
//! - [`fs`]: the OS boundary, [`CgroupFs`], which the host's [`Hierarchy`] implements
//!   (and, in tests, `recording`'s double);
//! - [`systemd_slices`]: under the systemd driver, the cgroups as systemd's slice units, asked
//!   for over D-Bus ([`systemd_bus`]) before the files are written.

mod driver;
mod fs;
mod layout;
mod limits;
mod name;
mod qos;
#[cfg(test)]
pub mod recording;
mod systemd_bus;
mod systemd_slices;
mod usage;
mod version;

pub use driver::{CgroupDriver, DriverChoice, UnknownDriver, choose};
pub use fs::{ApplyError, CgroupFs};
pub use layout::{CgroupSettings, PodCgroups, QosTier};
pub use limits::{
    CPU_PERIOD_US, MAX_CPU_SHARES, MIN_CPU_QUOTA_US, MIN_CPU_SHARES, ResourceConfig, Setting,
    milli_cpu_to_quota, milli_cpu_to_shares, shares_to_weight,
};
pub use name::{CgroupName, NameError};
pub use qos::{NodeAllocatable, QosCgroups};
pub use systemd_bus::{DbusSlices, host_fs};
pub use systemd_slices::{SliceManager, SystemdHierarchy};
pub use usage::{memory_in_use, working_set};
pub use version::{CgroupVersion, Hierarchy};
