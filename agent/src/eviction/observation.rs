//! What the eviction manager compares its thresholds with: per signal, what is available and
//! out of how much, built from one reading of the node. Memory is `MemAvailable`, which counts
//! the page cache and slab the kernel can reclaim as available, unlike kubelet's working set
//! (capacity minus usage minus inactive file pages only, kubernetes#43916); the pods' share is
//! their cgroup's usage minus all of its file pages.

use std::collections::BTreeMap;

use crate::config::eviction::Signal;

/// One signal's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub available: u64,
    pub capacity: u64,
}

/// The figures of every signal that could be read.
pub type Observations = BTreeMap<Signal, Observation>;

/// A filesystem's figures (statvfs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsReading {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// One reading of the node; None (or zero capacity) where a figure could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReading {
    pub memory_capacity: u64,
    pub memory_available: Option<u64>,
    /// Node allocatable memory (capacity minus the reservations) and what the pods' cgroup
    /// holds that cannot be reclaimed.
    pub allocatable_memory: u64,
    pub pods_working_set: Option<u64>,
    pub nodefs: Option<FsReading>,
    pub imagefs: Option<FsReading>,
    pub pid_max: u64,
    pub processes: u64,
}

/// The observations of `r`.
pub fn observe(r: &NodeReading) -> Observations {
    let mut out = Observations::new();
    let mut put = |signal, available: u64, capacity: u64| {
        if capacity > 0 {
            out.insert(
                signal,
                Observation {
                    available: available.min(capacity),
                    capacity,
                },
            );
        }
    };
    if let Some(available) = r.memory_available {
        put(Signal::MemoryAvailable, available, r.memory_capacity);
    }
    if let Some(ws) = r.pods_working_set {
        put(
            Signal::AllocatableMemoryAvailable,
            r.allocatable_memory.saturating_sub(ws),
            r.allocatable_memory,
        );
    }
    if let Some(fs) = r.nodefs {
        put(
            Signal::NodefsAvailable,
            fs.available_bytes,
            fs.capacity_bytes,
        );
        put(Signal::NodefsInodesFree, fs.inodes_free, fs.inodes);
    }
    if let Some(fs) = r.imagefs.or(r.nodefs) {
        put(
            Signal::ImagefsAvailable,
            fs.available_bytes,
            fs.capacity_bytes,
        );
        put(Signal::ImagefsInodesFree, fs.inodes_free, fs.inodes);
        put(
            Signal::ContainerfsAvailable,
            fs.available_bytes,
            fs.capacity_bytes,
        );
        put(Signal::ContainerfsInodesFree, fs.inodes_free, fs.inodes);
    }
    put(
        Signal::PidAvailable,
        r.pid_max.saturating_sub(r.processes),
        r.pid_max,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_readable_figure_becomes_an_observation() {
        let fs = FsReading {
            capacity_bytes: 100,
            available_bytes: 40,
            inodes: 10,
            inodes_free: 9,
        };
        let o = observe(&NodeReading {
            memory_capacity: 1000,
            memory_available: Some(300),
            allocatable_memory: 800,
            pods_working_set: Some(900),
            nodefs: Some(fs),
            imagefs: None,
            pid_max: 100,
            processes: 30,
        });
        assert_eq!(o[&Signal::MemoryAvailable].available, 300);
        assert_eq!(
            o[&Signal::AllocatableMemoryAvailable].available,
            0,
            "pods above allocatable leave nothing"
        );
        assert_eq!(
            o[&Signal::ImagefsAvailable],
            o[&Signal::NodefsAvailable],
            "without its own filesystem the image fs is the node fs"
        );
        assert_eq!(o[&Signal::PidAvailable].available, 70);
        let none = observe(&NodeReading::default());
        assert!(none.is_empty(), "{none:?}");
    }
}
