//! The node's own figures from procfs and statvfs: cpu time (/proc/stat), memory
//! (/proc/meminfo, /proc/vmstat), network (/proc/net/dev) and the root filesystem. The parsers
//! are pure functions over file text; [`read`] is the one place that touches the system.

use std::path::Path;

use super::model::{InterfaceStats, MemoryValues};
use crate::node::machine::{default_route_interface, parse_meminfo};

/// /proc/stat counts in USER_HZ, which Linux fixes at 100 for userspace on every architecture.
const USER_HZ: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// Busy cpu time of all cpus in nanoseconds from /proc/stat's aggregate `cpu` line: user, nice,
/// system, irq, softirq and steal (idle and iowait are not busy; guest is inside user).
pub fn parse_cpu_busy_nanos(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let ticks = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    Some(ticks.saturating_mul(NANOS_PER_TICK))
}

/// Boot time in seconds since the epoch (`btime` in /proc/stat).
pub fn parse_boot_time(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// One counter of /proc/vmstat.
pub fn parse_vmstat(vmstat: &str, field: &str) -> Option<u64> {
    vmstat.lines().find_map(|l| {
        let (name, value) = l.split_once(' ')?;
        (name == field).then(|| value.trim().parse().ok())?
    })
}

/// The node's memory as kubelet reports its root cgroup: usage is what is not free, the working
/// set is usage minus inactive file pages, available is total minus the working set.
pub fn node_memory(meminfo: &str, vmstat: &str) -> Option<MemoryValues> {
    let total = parse_meminfo(meminfo, "MemTotal")?;
    let free = parse_meminfo(meminfo, "MemFree").unwrap_or(0);
    let inactive_file = parse_meminfo(meminfo, "Inactive(file)").unwrap_or(0);
    let usage = total.saturating_sub(free);
    let working_set = usage.saturating_sub(inactive_file);
    Some(MemoryValues {
        available_bytes: Some(total.saturating_sub(working_set)),
        usage_bytes: Some(usage),
        working_set_bytes: Some(working_set),
        rss_bytes: parse_meminfo(meminfo, "AnonPages"),
        page_faults: parse_vmstat(vmstat, "pgfault"),
        major_page_faults: parse_vmstat(vmstat, "pgmajfault"),
    })
}

/// The host's interfaces from /proc/net/dev, without loopback and the pods' veth ends.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" || name.starts_with("veth") {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            Some(InterfaceStats {
                name: name.to_string(),
                rx_bytes: *f.first()?,
                rx_errors: *f.get(2)?,
                tx_bytes: *f.get(8)?,
                tx_errors: *f.get(10)?,
            })
        })
        .collect()
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

fn read_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Reads the node's figures now; `fs_path` names the filesystem to report.
pub fn read(fs_path: &Path) -> NodeReading {
    let stat = read_file("/proc/stat");
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
    NodeReading {
        cpu_busy_nanos: parse_cpu_busy_nanos(&stat),
        boot_time: parse_boot_time(&stat),
        memory: node_memory(&read_file("/proc/meminfo"), &read_file("/proc/vmstat")),
        default_interface: default_route_interface(&read_file("/proc/net/route")),
        interfaces: parse_net_dev(&read_file("/proc/net/dev")),
        fs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1 2\nbtime 1700000000\n";

    #[test]
    fn busy_cpu_counts_user_nice_system_irq_softirq_steal() {
        // 100+5+50+3+2+1 = 161 ticks of 10 ms
        assert_eq!(parse_cpu_busy_nanos(STAT), Some(1_610_000_000));
        assert_eq!(parse_boot_time(STAT), Some(1_700_000_000));
        assert_eq!(parse_cpu_busy_nanos("intr 1\n"), None);
    }

    #[test]
    fn memory_follows_kubelet_working_set() {
        let meminfo = "MemTotal:       1000 kB\nMemFree:         200 kB\nInactive(file):  100 kB\nAnonPages:       300 kB\n";
        let vmstat = "pgfault 42\npgmajfault 3\n";
        let m = node_memory(meminfo, vmstat).unwrap();
        assert_eq!(m.usage_bytes, Some(800 * 1024));
        assert_eq!(m.working_set_bytes, Some(700 * 1024));
        assert_eq!(m.available_bytes, Some(300 * 1024));
        assert_eq!(m.rss_bytes, Some(300 * 1024));
        assert_eq!(m.page_faults, Some(42));
        assert_eq!(m.major_page_faults, Some(3));
        assert!(node_memory("", vmstat).is_none());
    }

    #[test]
    fn net_dev_skips_loopback_and_veths() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 2 0 0 0 0 0 500 5 1 0 0 0 0 0\nveth1a: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";
        let got = parse_net_dev(text);
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
