//! What the machine is and has, read from procfs, sysfs, /etc and statvfs. /proc is parsed by
//! the `procfs` crate (meminfo, net/route, pid_max, boot_id, the pid list); what is decided from
//! its types is pure functions, tested on types built from text. Two small parsers stay here
//! because no crate in the tree reads them: the sysfs cpu range list and /proc/net/fib_trie
//! (`procfs` has no fib_trie type; rustix lists getifaddrs as not implemented, and `nix` or a
//! netlink stack for one address at start-up is not worth a dependency). [`MachineInfo::read`]
//! and [`Usage::read`] are the places that touch the system.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use procfs::Current;
use procfs::net::{RouteEntries, RouteEntry};

/// Static facts about the machine, read once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineInfo {
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub architecture: String,
    pub hostname: String,
    pub cpu_count: u64,
    pub memory_bytes: u64,
}

/// Figures that change while the agent runs: what is available now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_available_bytes: u64,
    pub fs_capacity_bytes: u64,
    pub fs_available_bytes: u64,
    pub fs_inodes: u64,
    pub fs_inodes_free: u64,
    pub pid_max: u64,
    pub pids_running: u64,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Counts CPUs in a sysfs range list such as "0-3,6,8-9".
pub fn parse_cpu_list(text: &str) -> u64 {
    text.trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => u64::from(part.parse::<u64>().is_ok()),
        })
        .sum()
}

/// /proc/meminfo in bytes, `None` when it cannot be read.
pub fn read_meminfo() -> Option<procfs::Meminfo> {
    procfs::Meminfo::current().ok()
}

/// The IPv4 routing table (/proc/net/route), empty when it cannot be read.
fn read_routes() -> Vec<RouteEntry> {
    RouteEntries::current().map(|r| r.0).unwrap_or_default()
}

/// PRETTY_NAME of /etc/os-release, unquoted.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let v = line.strip_prefix("PRETTY_NAME=")?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// Go's name for the architecture, as Kubernetes reports it.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The interface of the IPv4 default route (destination 0.0.0.0 in /proc/net/route).
pub fn default_route_interface(routes: &[RouteEntry]) -> Option<String> {
    routes
        .iter()
        .find(|r| r.destination.is_unspecified())
        .map(|r| r.iface.clone())
}

/// Picks the node's InternalIP when --node-ip is not given: the first IPv4 address of the
/// default route's interface, else loopback.
pub fn detect_node_ip() -> IpAddr {
    let fallback = IpAddr::from([127, 0, 0, 1]);
    let routes = read_routes();
    let Some(iface) = default_route_interface(&routes) else {
        return fallback;
    };
    let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") else {
        return fallback;
    };
    interface_ipv4(&routes, &iface, &local_addresses(&trie)).map_or(fallback, IpAddr::V4)
}

/// First of the host's local addresses that lies in one of the interface's on-link subnets: the
/// local addresses in /proc/net/fib_trie are not keyed by interface, so each is matched against
/// the interface's non-default routes in /proc/net/route.
pub fn interface_ipv4(routes: &[RouteEntry], iface: &str, local: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let subnets: Vec<(u32, u32)> = routes
        .iter()
        .filter(|r| r.iface == iface && !r.destination.is_unspecified())
        .map(|r| (u32::from(r.destination), u32::from(r.mask)))
        .collect();
    local.iter().copied().find(|ip| {
        let n = u32::from(*ip);
        subnets.iter().any(|(dest, mask)| n & mask == *dest)
    })
}

/// The host's local IPv4 addresses listed in /proc/net/fib_trie (entries tagged "/32 host LOCAL").
pub fn local_addresses(trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.parse().ok();
        } else if t.contains("/32 host LOCAL")
            && let Some(ip) = last
            && !ip.is_loopback()
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

impl MachineInfo {
    /// Reads the static facts.
    pub fn read() -> Self {
        let machine_id = Some(read_trimmed("/etc/machine-id"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| read_trimmed("/var/lib/dbus/machine-id"));
        let cpus = parse_cpu_list(&read_trimmed("/sys/devices/system/cpu/online"));
        let cpu_count = if cpus > 0 {
            cpus
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
        };
        let uname = rustix::system::uname();
        MachineInfo {
            machine_id,
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: procfs::sys::kernel::random::boot_id().unwrap_or_default(),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_image: parse_os_release(&read_trimmed("/etc/os-release"))
                .unwrap_or_else(|| "Linux".to_string()),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            hostname: uname.nodename().to_string_lossy().into_owned(),
            cpu_count,
            memory_bytes: read_meminfo().map_or(0, |m| m.mem_total),
        }
    }
}

impl Usage {
    /// Reads the current figures; `fs_path` is the filesystem holding the agent's root dir.
    pub fn read(fs_path: &Path) -> Self {
        let mut usage = Usage {
            memory_available_bytes: read_meminfo().and_then(|m| m.mem_available).unwrap_or(0),
            pid_max: procfs::sys::kernel::pid_max()
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            pids_running: count_processes(),
            ..Usage::default()
        };
        if let Ok(st) = rustix::fs::statvfs(fs_path) {
            usage.fs_capacity_bytes = st.f_blocks.saturating_mul(st.f_frsize);
            usage.fs_available_bytes = st.f_bavail.saturating_mul(st.f_frsize);
            usage.fs_inodes = st.f_files;
            usage.fs_inodes_free = st.f_favail;
        }
        usage
    }
}

/// Number of processes (pids in /proc), the figure kubelet compares with pid_max. A process
/// that exits while the list is read still counts, as it did in the directory listing.
fn count_processes() -> u64 {
    procfs::process::all_processes().map_or(0, |pids| pids.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), 7);
        assert_eq!(parse_cpu_list("0"), 1);
        assert_eq!(parse_cpu_list(""), 0);
        assert_eq!(parse_cpu_list("3-1"), 0);
    }

    /// A whole /proc/meminfo as Linux 6.1 writes it: `procfs` wants every field the kernel always
    /// prints.
    const MEMINFO: &str = "MemTotal:       24567892 kB\nMemFree:          200 kB\n\
        MemAvailable:       2048 kB\nBuffers: 0 kB\nCached: 0 kB\nSwapCached: 0 kB\nActive: 0 kB\n\
        Inactive: 0 kB\nActive(anon): 0 kB\nInactive(anon): 0 kB\nActive(file): 0 kB\n\
        Inactive(file):   100 kB\nUnevictable: 0 kB\nMlocked: 0 kB\nSwapTotal: 0 kB\n\
        SwapFree: 0 kB\nDirty: 0 kB\nWriteback: 0 kB\nAnonPages:        300 kB\nMapped: 0 kB\n\
        Shmem: 0 kB\nSlab: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\nVmallocUsed: 0 kB\n\
        VmallocChunk: 0 kB\nHugePages_Total: 0\nHugepagesize: 2048 kB\n";

    #[test]
    fn meminfo_fields_become_bytes() {
        use procfs::FromBufRead;
        let m = procfs::Meminfo::from_buf_read(MEMINFO.as_bytes()).unwrap();
        assert_eq!(m.mem_total, 24_567_892 * 1024);
        assert_eq!(m.mem_available, Some(2048 * 1024));
        assert_eq!(m.hugepages_total, Some(0));
        assert!(procfs::Meminfo::from_buf_read("Mem: 1 kB\n".as_bytes()).is_err());
    }

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    /// /proc/net/route with a default route and the on-link subnet of eth0 (192.0.2.0/24), and
    /// a second interface on 198.51.100.0/24.
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        eth1\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    fn routes() -> Vec<RouteEntry> {
        use procfs::FromBufRead;
        RouteEntries::from_buf_read(ROUTE.as_bytes()).unwrap().0
    }

    #[test]
    fn default_route_and_local_addresses() {
        assert_eq!(default_route_interface(&routes()).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface(&routes()[1..]), None);
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.2\n        /32 host LOCAL\n\
                    |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(local_addresses(trie), vec![Ipv4Addr::new(192, 0, 2, 2)]);
    }

    #[test]
    fn the_node_ip_is_the_local_address_on_the_interface_subnet() {
        let local = [Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 2)];
        assert_eq!(
            interface_ipv4(&routes(), "eth0", &local),
            Some(Ipv4Addr::new(192, 0, 2, 2))
        );
        assert_eq!(
            interface_ipv4(&routes(), "eth1", &local),
            Some(Ipv4Addr::new(198, 51, 100, 7))
        );
        assert_eq!(interface_ipv4(&routes(), "eth2", &local), None);
    }

    #[test]
    fn arch_names_follow_go() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }
}
