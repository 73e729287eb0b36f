//! What the machine is and has, read from procfs, sysfs, /etc and statvfs. The parsers are pure
//! functions over file text so they are tested without the files; [`MachineFacts::read`] is the
//! one place that touches the system.

use std::net::IpAddr;
use std::path::Path;

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

/// Reads one field (in kB) of /proc/meminfo and returns bytes.
pub fn parse_meminfo(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb = rest.split_whitespace().next()?.parse::<u64>().ok()?;
        Some(kb.saturating_mul(1024))
    })
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

/// The interface of the IPv4 default route, from /proc/net/route.
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.len() > 2 && cols[1] == "00000000").then(|| cols[0].to_string())
    })
}

/// Picks the node's InternalIP when --node-ip is not given: the first IPv4 address of the
/// default route's interface, else loopback.
pub fn detect_node_ip() -> IpAddr {
    let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let fallback = IpAddr::from([127, 0, 0, 1]);
    let Some(iface) = default_route_interface(&route) else {
        return fallback;
    };
    interface_ipv4(&iface).unwrap_or(fallback)
}

/// First IPv4 address of an interface: the local addresses in /proc/net/fib_trie are not keyed
/// by interface, so each is matched against the interface's on-link subnets in /proc/net/route.
fn interface_ipv4(iface: &str) -> Option<IpAddr> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let subnets: Vec<(u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let c: Vec<&str> = line.split_whitespace().collect();
            if c.len() < 8 || c[0] != iface || c[1] == "00000000" {
                return None;
            }
            let dest = u32::from_str_radix(c[1], 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(c[7], 16).ok()?.swap_bytes();
            Some((dest, mask))
        })
        .collect();
    local_addresses(&trie).into_iter().find_map(|ip| {
        let n = u32::from(ip);
        subnets
            .iter()
            .any(|(dest, mask)| n & mask == *dest)
            .then_some(IpAddr::V4(ip))
    })
}

/// The host's local IPv4 addresses listed in /proc/net/fib_trie (entries tagged "/32 host LOCAL").
pub fn local_addresses(trie: &str) -> Vec<std::net::Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<std::net::Ipv4Addr> = None;
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
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let uname = rustix::system::uname();
        MachineInfo {
            machine_id,
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_image: parse_os_release(&read_trimmed("/etc/os-release"))
                .unwrap_or_else(|| "Linux".to_string()),
            architecture: go_arch(std::env::consts::ARCH).to_string(),
            hostname: uname.nodename().to_string_lossy().into_owned(),
            cpu_count,
            memory_bytes: parse_meminfo(&meminfo, "MemTotal").unwrap_or(0),
        }
    }
}

impl Usage {
    /// Reads the current figures; `fs_path` is the filesystem holding the agent's root dir.
    pub fn read(fs_path: &Path) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mut usage = Usage {
            memory_available_bytes: parse_meminfo(&meminfo, "MemAvailable").unwrap_or(0),
            pid_max: read_trimmed("/proc/sys/kernel/pid_max")
                .parse()
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

/// Number of processes (pids in /proc), the figure kubelet compares with pid_max.
fn count_processes() -> u64 {
    std::fs::read_dir("/proc").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count() as u64
    })
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

    #[test]
    fn meminfo_fields_become_bytes() {
        let text = "MemTotal:       24567892 kB\nMemFree: 100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(24_567_892 * 1024));
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(2048 * 1024));
        assert_eq!(parse_meminfo(text, "Mem"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        let text = "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }

    #[test]
    fn default_route_and_local_addresses() {
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
                     eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.2\n        /32 host LOCAL\n\
                    |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(
            local_addresses(trie),
            vec![std::net::Ipv4Addr::new(192, 0, 2, 2)]
        );
    }

    #[test]
    fn arch_names_follow_go() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
    }
}
