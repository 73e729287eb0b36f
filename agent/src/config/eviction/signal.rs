//! kubelet's eviction signals: what each one measures, the node condition it raises and the
//! resource that evicting a pod reclaims for it.

use std::fmt;

/// One eviction signal, named as kubelet names it (`memory.available`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Memory the machine can still hand out: `MemAvailable` (free memory plus the page cache
    /// and slab the kernel can reclaim).
    MemoryAvailable,
    /// Node allocatable memory minus what the pods' cgroup (kubepods) holds; only with node
    /// allocatable enforced on pods, with the memory.available hard thresholds' values.
    AllocatableMemoryAvailable,
    /// Free space of the filesystem holding the agent's root dir.
    NodefsAvailable,
    NodefsInodesFree,
    /// Free space of the runtime's image filesystem.
    ImagefsAvailable,
    ImagefsInodesFree,
    /// Where containers' writable layers live: the image filesystem here (no split disk).
    ContainerfsAvailable,
    ContainerfsInodesFree,
    /// Process ids left below `kernel.pid_max`.
    PidAvailable,
}

/// A node condition an eviction signal raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    Memory,
    Disk,
    Pid,
}

/// What evicting a pod reclaims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Memory,
    EphemeralStorage,
    Inodes,
    Pids,
}

impl Signal {
    pub const ALL: [Signal; 9] = [
        Signal::MemoryAvailable,
        Signal::AllocatableMemoryAvailable,
        Signal::NodefsAvailable,
        Signal::NodefsInodesFree,
        Signal::ImagefsAvailable,
        Signal::ImagefsInodesFree,
        Signal::ContainerfsAvailable,
        Signal::ContainerfsInodesFree,
        Signal::PidAvailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::AllocatableMemoryAvailable => "allocatableMemory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::ImagefsAvailable => "imagefs.available",
            Signal::ImagefsInodesFree => "imagefs.inodesFree",
            Signal::ContainerfsAvailable => "containerfs.available",
            Signal::ContainerfsInodesFree => "containerfs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn condition(self) -> Condition {
        match self {
            Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Condition::Memory,
            Signal::PidAvailable => Condition::Pid,
            _ => Condition::Disk,
        }
    }

    pub fn resource(self) -> Resource {
        match self {
            Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Resource::Memory,
            Signal::NodefsAvailable | Signal::ImagefsAvailable | Signal::ContainerfsAvailable => {
                Resource::EphemeralStorage
            }
            Signal::NodefsInodesFree
            | Signal::ImagefsInodesFree
            | Signal::ContainerfsInodesFree => Resource::Inodes,
            Signal::PidAvailable => Resource::Pids,
        }
    }

    /// Whether the signal counts bytes (quantities in thresholds are byte sizes) rather than
    /// inodes or processes.
    pub fn counts_bytes(self) -> bool {
        matches!(
            self.resource(),
            Resource::Memory | Resource::EphemeralStorage
        )
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Condition {
    /// The node condition's type.
    pub fn type_name(self) -> &'static str {
        match self {
            Condition::Memory => "MemoryPressure",
            Condition::Disk => "DiskPressure",
            Condition::Pid => "PIDPressure",
        }
    }
}

impl Resource {
    /// kubelet's resource name, as its eviction messages and events say it.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_parses_back_from_its_name() {
        for s in Signal::ALL {
            assert_eq!(Signal::parse(s.name()), Some(s));
        }
        assert_eq!(Signal::parse("memory.free"), None);
    }

    #[test]
    fn signals_raise_kubelets_conditions() {
        assert_eq!(
            Signal::AllocatableMemoryAvailable.condition().type_name(),
            "MemoryPressure"
        );
        assert_eq!(
            Signal::ImagefsInodesFree.condition().type_name(),
            "DiskPressure"
        );
        assert_eq!(Signal::PidAvailable.condition().type_name(), "PIDPressure");
        assert_eq!(Signal::NodefsInodesFree.resource().name(), "inodes");
        assert!(!Signal::PidAvailable.counts_bytes());
    }
}
