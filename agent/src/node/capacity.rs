//! Capacity and allocatable, as kubelet computes them: capacity is what the machine has;
//! allocatable is capacity minus kube-reserved, system-reserved and the hard eviction threshold.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::machine::{MachineInfo, Usage};
use crate::config::Reserved;
use crate::config::eviction::{EvictionSettings, Signal};
use crate::quantity::{format_bytes, format_millis};

/// Capacity and allocatable in API form.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    pub capacity: BTreeMap<String, Quantity>,
    pub allocatable: BTreeMap<String, Quantity>,
}

/// Inputs that decide the node's resources.
pub struct ResourceInputs<'a> {
    pub machine: &'a MachineInfo,
    pub usage: &'a Usage,
    pub max_pods: u32,
    pub kube_reserved: &'a Reserved,
    pub system_reserved: &'a Reserved,
    /// The hard memory.available and nodefs.available thresholds come off allocatable.
    pub eviction: &'a EvictionSettings,
    /// Huge pages configured: page size in bytes -> total bytes.
    pub hugepages: &'a BTreeMap<u64, u64>,
}

fn hugepage_name(page_bytes: u64) -> String {
    if page_bytes >= 1 << 30 && page_bytes.is_multiple_of(1 << 30) {
        format!("hugepages-{}Gi", page_bytes >> 30)
    } else if page_bytes.is_multiple_of(1 << 20) {
        format!("hugepages-{}Mi", page_bytes >> 20)
    } else {
        format!("hugepages-{}Ki", page_bytes >> 10)
    }
}

/// Computes capacity and allocatable.
pub fn compute(i: &ResourceInputs<'_>) -> Resources {
    let q = |s: String| Quantity(s);
    let reserved_cpu = i.kube_reserved.cpu_millis + i.system_reserved.cpu_millis;
    let reserved_mem = i.kube_reserved.memory_bytes + i.system_reserved.memory_bytes;
    let reserved_fs =
        i.kube_reserved.ephemeral_storage_bytes + i.system_reserved.ephemeral_storage_bytes;
    let hugepages_total: u64 = i.hugepages.values().sum();
    let fs_eviction = i
        .eviction
        .hard_amount(Signal::NodefsAvailable, i.usage.fs_capacity_bytes);
    let memory_eviction = i
        .eviction
        .hard_amount(Signal::MemoryAvailable, i.machine.memory_bytes);

    let cpu_millis = i.machine.cpu_count * 1000;
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), q(format_millis(cpu_millis))),
        (
            "memory".to_string(),
            q(format_bytes(i.machine.memory_bytes)),
        ),
        (
            "ephemeral-storage".to_string(),
            q(format_bytes(i.usage.fs_capacity_bytes)),
        ),
        ("pods".to_string(), q(i.max_pods.to_string())),
    ]);
    let mut allocatable = BTreeMap::from([
        (
            "cpu".to_string(),
            q(format_millis(cpu_millis.saturating_sub(reserved_cpu))),
        ),
        (
            "memory".to_string(),
            q(format_bytes(
                i.machine
                    .memory_bytes
                    .saturating_sub(reserved_mem)
                    .saturating_sub(memory_eviction)
                    .saturating_sub(hugepages_total),
            )),
        ),
        (
            "ephemeral-storage".to_string(),
            q(format_bytes(
                i.usage
                    .fs_capacity_bytes
                    .saturating_sub(reserved_fs)
                    .saturating_sub(fs_eviction),
            )),
        ),
        ("pods".to_string(), q(i.max_pods.to_string())),
    ]);
    for (page, total) in i.hugepages {
        capacity.insert(hugepage_name(*page), q(format_bytes(*total)));
        allocatable.insert(hugepage_name(*page), q(format_bytes(*total)));
    }
    Resources {
        capacity,
        allocatable,
    }
}

/// Reads the huge page pools from sysfs: page size -> configured bytes.
pub fn read_hugepages() -> BTreeMap<u64, u64> {
    let mut pools = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return pools;
    };
    for entry in dir.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let count = std::fs::read_to_string(entry.path().join("nr_hugepages"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        pools.insert(kb * 1024, count * kb * 1024);
    }
    pools
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_subtracts_reserved_and_eviction() {
        let machine = MachineInfo {
            cpu_count: 4,
            memory_bytes: 8 << 30,
            ..MachineInfo::default()
        };
        let usage = Usage {
            fs_capacity_bytes: 100 << 30,
            ..Usage::default()
        };
        let kube = Reserved {
            cpu_millis: 100,
            memory_bytes: 256 << 20,
            ..Reserved::default()
        };
        let sys = Reserved {
            cpu_millis: 400,
            ephemeral_storage_bytes: 1 << 30,
            ..Reserved::default()
        };
        let hugepages = BTreeMap::from([(2 << 20, 0), (1 << 30, 2 << 30)]);
        let r = compute(&ResourceInputs {
            machine: &machine,
            usage: &usage,
            max_pods: 50,
            kube_reserved: &kube,
            system_reserved: &sys,
            eviction: &EvictionSettings::default(),
            hugepages: &hugepages,
        });
        assert_eq!(r.capacity["cpu"].0, "4");
        assert_eq!(r.allocatable["cpu"].0, "3500m");
        assert_eq!(r.capacity["memory"].0, format!("{}Ki", 8 << 20));
        // 8Gi - 256Mi reserved - 100Mi eviction - 2Gi huge pages
        let mem = (8u64 << 30) - (256 << 20) - (100 << 20) - (2 << 30);
        assert_eq!(r.allocatable["memory"].0, format!("{}Ki", mem / 1024));
        // 100Gi - 1Gi reserved - 10% eviction
        let fs = (100u64 << 30) - (1 << 30) - (10u64 << 30);
        assert_eq!(
            r.allocatable["ephemeral-storage"].0,
            format!("{}Ki", fs / 1024)
        );
        assert_eq!(r.capacity["pods"].0, "50");
        assert_eq!(r.capacity["hugepages-1Gi"].0, format!("{}Ki", 2 << 20));
        assert_eq!(r.capacity["hugepages-2Mi"].0, "0");
    }

    #[test]
    fn allocatable_never_goes_negative() {
        let machine = MachineInfo {
            cpu_count: 1,
            memory_bytes: 50 << 20,
            ..MachineInfo::default()
        };
        let kube = Reserved {
            cpu_millis: 5000,
            ..Reserved::default()
        };
        let r = compute(&ResourceInputs {
            machine: &machine,
            usage: &Usage::default(),
            max_pods: 1,
            kube_reserved: &kube,
            system_reserved: &Reserved::default(),
            eviction: &EvictionSettings::default(),
            hugepages: &BTreeMap::new(),
        });
        assert_eq!(r.allocatable["cpu"].0, "0");
        assert_eq!(r.allocatable["memory"].0, "0");
    }
}
