//! The node's own figures from procfs and statvfs: cpu time (/proc/stat), memory
//! (/proc/meminfo, /proc/vmstat), network (/proc/net/dev, /proc/net/route) and the root
//! filesystem. The `procfs` crate parses the files; what kubelet derives from them is pure
//! functions over its types, tested on types built from text; [`read`] is the one place that
//! touches the system.

use std::path::Path;

use procfs::net::{InterfaceDeviceStatus, RouteEntries};
use procfs::{CpuTime, Current, CurrentSI, KernelStats, Meminfo, VmStat};

use super::model::{InterfaceStats, MemoryValues};
use crate::node::machine::{default_route_interface, read_meminfo};

/// Busy cpu time of all cpus in nanoseconds from /proc/stat's aggregate `cpu` line: user, nice,
/// system, irq, softirq and steal (idle and iowait are not busy; guest is inside user).
pub fn cpu_busy_nanos(total: &CpuTime) -> u64 {
    let millis = total.user_ms()
        + total.nice_ms()
        + total.system_ms()
        + total.irq_ms().unwrap_or(0)
        + total.softirq_ms().unwrap_or(0)
        + total.steal_ms().unwrap_or(0);
    millis.saturating_mul(1_000_000)
}

/// One counter of /proc/vmstat (the kernel prints them unsigned).
fn vmstat_counter(vmstat: &VmStat, field: &str) -> Option<u64> {
    vmstat.0.get(field).and_then(|v| u64::try_from(*v).ok())
}

/// The node's memory as kubelet reports its root cgroup: usage is what is not free, the working
/// set is usage minus inactive file pages, available is total minus the working set.
pub fn node_memory(meminfo: &Meminfo, vmstat: Option<&VmStat>) -> MemoryValues {
    let total = meminfo.mem_total;
    let usage = total.saturating_sub(meminfo.mem_free);
    let working_set = usage.saturating_sub(meminfo.inactive_file.unwrap_or(0));
    MemoryValues {
        available_bytes: Some(total.saturating_sub(working_set)),
        usage_bytes: Some(usage),
        working_set_bytes: Some(working_set),
        rss_bytes: meminfo.anon_pages,
        page_faults: vmstat.and_then(|v| vmstat_counter(v, "pgfault")),
        major_page_faults: vmstat.and_then(|v| vmstat_counter(v, "pgmajfault")),
    }
}

/// The host's interfaces from /proc/net/dev, without loopback and the pods' veth ends, by name.
pub fn host_interfaces(devices: &InterfaceDeviceStatus) -> Vec<InterfaceStats> {
    let mut out: Vec<InterfaceStats> = devices
        .0
        .values()
        .filter(|d| d.name != "lo" && !d.name.starts_with("veth"))
        .map(|d| InterfaceStats {
            name: d.name.clone(),
            rx_bytes: d.recv_bytes,
            rx_errors: d.recv_errs,
            tx_bytes: d.sent_bytes,
            tx_errors: d.sent_errs,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Filesystem figures of the filesystem holding `path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsFigures {
    pub capacity: u64,
    pub available: u64,
    pub used: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// Everything read from the system for one summary.
#[derive(Debug, Clone, Default)]
pub struct NodeReading {
    pub cpu_busy_nanos: Option<u64>,
    pub boot_time: Option<i64>,
    pub memory: Option<MemoryValues>,
    pub default_interface: Option<String>,
    pub interfaces: Vec<InterfaceStats>,
    pub fs: Option<FsFigures>,
}

/// Reads the node's figures now; `fs_path` names the filesystem to report.
pub fn read(fs_path: &Path) -> NodeReading {
    let stat = KernelStats::current().ok();
    let fs = rustix::fs::statvfs(fs_path).ok().map(|st| FsFigures {
        capacity: st.f_blocks.saturating_mul(st.f_frsize),
        available: st.f_bavail.saturating_mul(st.f_frsize),
        used: st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(st.f_frsize),
        inodes: st.f_files,
        inodes_free: st.f_ffree,
    });
    let vmstat = VmStat::current().ok();
    let routes = RouteEntries::current().map(|r| r.0).unwrap_or_default();
    NodeReading {
        cpu_busy_nanos: stat.as_ref().map(|s| cpu_busy_nanos(&s.total)),
        boot_time: stat.as_ref().and_then(|s| i64::try_from(s.btime).ok()),
        memory: read_meminfo().map(|m| node_memory(&m, vmstat.as_ref())),
        default_interface: default_route_interface(&routes),
        interfaces: InterfaceDeviceStatus::current()
            .map(|d| host_interfaces(&d))
            .unwrap_or_default(),
        fs,
    }
}

#[cfg(test)]
mod tests {
    use procfs::{ExplicitSystemInfo, FromBufRead, FromBufReadSI};

    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1 2\nctxt 10\n\
        btime 1700000000\nprocesses 5\nprocs_running 1\nprocs_blocked 0\n";

    fn stat(text: &str) -> procfs::ProcResult<KernelStats> {
        // USER_HZ, which Linux fixes at 100 for userspace on every architecture.
        let si = ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: cfg!(target_endian = "little"),
        };
        KernelStats::from_buf_read(text.as_bytes(), &si)
    }

    #[test]
    fn busy_cpu_counts_user_nice_system_irq_softirq_steal() {
        let s = stat(STAT).unwrap();
        // 100+5+50+3+2+1 = 161 ticks of 10 ms
        assert_eq!(cpu_busy_nanos(&s.total), 1_610_000_000);
        assert_eq!(s.btime, 1_700_000_000);
        assert!(stat("intr 1\n").is_err());
    }

    /// The fields of /proc/meminfo the kernel always prints, with the ones this file reads set.
    const MEMINFO: &str = "MemTotal:       1000 kB\nMemFree:         200 kB\nBuffers: 0 kB\n\
        Cached: 0 kB\nSwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\nInactive(file):  100 kB\n\
        SwapTotal: 0 kB\nSwapFree: 0 kB\nDirty: 0 kB\nWriteback: 0 kB\nAnonPages:       300 kB\n\
        Mapped: 0 kB\nSlab: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\nVmallocUsed: 0 kB\n\
        VmallocChunk: 0 kB\n";

    #[test]
    fn memory_follows_kubelet_working_set() {
        let meminfo = Meminfo::from_buf_read(MEMINFO.as_bytes()).unwrap();
        let vmstat = VmStat::from_buf_read("pgfault 42\npgmajfault 3\n".as_bytes()).unwrap();
        let m = node_memory(&meminfo, Some(&vmstat));
        assert_eq!(m.usage_bytes, Some(800 * 1024));
        assert_eq!(m.working_set_bytes, Some(700 * 1024));
        assert_eq!(m.available_bytes, Some(300 * 1024));
        assert_eq!(m.rss_bytes, Some(300 * 1024));
        assert_eq!(m.page_faults, Some(42));
        assert_eq!(m.major_page_faults, Some(3));
        assert_eq!(node_memory(&meminfo, None).page_faults, None);
        assert!(Meminfo::from_buf_read("".as_bytes()).is_err());
    }

    #[test]
    fn net_dev_skips_loopback_and_veths() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 2 0 0 0 0 0 500 5 1 0 0 0 0 0\nveth1a: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let got = host_interfaces(&InterfaceDeviceStatus::from_buf_read(text.as_bytes()).unwrap());
        assert_eq!(
            got,
            vec![InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1000,
                rx_errors: 2,
                tx_bytes: 500,
                tx_errors: 1,
            }]
        );
    }
}
