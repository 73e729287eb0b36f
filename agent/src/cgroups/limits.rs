//! The limits kubelet writes on a cgroup (its `ResourceConfig`), and the files that hold them
//! on each cgroup version: cpu shares (v2: `cpu.weight`, converted as runc and kubelet convert
//! it), the CFS quota and period (v2: `cpu.max`), the memory limit and the pids limit.

use super::version::CgroupVersion;

/// The CFS period kubelet uses (100 ms, in microseconds).
pub const CPU_PERIOD_US: i64 = 100_000;
/// The smallest quota kubelet sets (1 ms).
pub const MIN_CPU_QUOTA_US: i64 = 1_000;
/// The smallest and largest cpu shares.
pub const MIN_CPU_SHARES: i64 = 2;
pub const MAX_CPU_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;

/// Cpu shares for a cpu request in millicores: 1024 per core, within 2..=262144.
pub fn milli_cpu_to_shares(millis: u64) -> i64 {
    if millis == 0 {
        return MIN_CPU_SHARES;
    }
    let shares = i128::from(millis) * i128::from(SHARES_PER_CPU) / 1000;
    i64::try_from(shares.clamp(i128::from(MIN_CPU_SHARES), i128::from(MAX_CPU_SHARES)))
        .unwrap_or(MAX_CPU_SHARES)
}

/// CFS quota (µs per `period_us`) for a cpu limit in millicores, at least 1 ms; 0 (no quota)
/// without a limit.
pub fn milli_cpu_to_quota(millis: u64, period_us: i64) -> i64 {
    if millis == 0 {
        return 0;
    }
    let quota = i128::from(millis) * i128::from(period_us) / 1000;
    i64::try_from(quota.max(i128::from(MIN_CPU_QUOTA_US))).unwrap_or(i64::MAX)
}

/// What one cgroup is limited to; None leaves the runtime's or the kernel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    /// cpu.shares, 2..=262144.
    pub cpu_shares: Option<i64>,
    /// CFS quota in µs per [`cpu_period_us`](Self::cpu_period_us); -1 is no quota.
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: Option<i64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Most processes; -1 is no limit.
    pub pids_max: Option<i64>,
}

/// One value to write: the v1 hierarchy it lives in (empty on v2, whose tree is one), its file
/// and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

fn setting(controller: &'static str, file: &'static str, value: String) -> Setting {
    Setting {
        controller,
        file,
        value,
    }
}

/// cpu.shares (v1, 2..=262144) as cpu.weight (v2, 1..=10000), the conversion runc and kubelet
/// use: 2 is 1, 1024 is 39, 262144 is 10000.
pub fn shares_to_weight(shares: i64) -> i64 {
    let shares = shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES);
    1 + ((shares - MIN_CPU_SHARES) * 9999) / (MAX_CPU_SHARES - MIN_CPU_SHARES)
}

impl ResourceConfig {
    /// The files and values that carry this config on `version`, in the order they are written
    /// (the period before the quota, so a quota is never checked against the old period).
    pub fn settings(&self, version: CgroupVersion) -> Vec<Setting> {
        match version {
            CgroupVersion::V1 => self.v1_settings(),
            CgroupVersion::V2 => self.v2_settings(),
        }
    }

    fn v1_settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        if let Some(shares) = self.cpu_shares {
            out.push(setting("cpu", "cpu.shares", shares.to_string()));
        }
        if let Some(period) = self.cpu_period_us {
            out.push(setting("cpu", "cpu.cfs_period_us", period.to_string()));
        }
        if let Some(quota) = self.cpu_quota_us {
            out.push(setting("cpu", "cpu.cfs_quota_us", quota.to_string()));
        }
        if let Some(bytes) = self.memory_bytes {
            out.push(setting(
                "memory",
                "memory.limit_in_bytes",
                bytes.to_string(),
            ));
        }
        if let Some(pids) = self.pids_max {
            out.push(setting("pids", "pids.max", limit_or_max(pids)));
        }
        out
    }

    fn v2_settings(&self) -> Vec<Setting> {
        let mut out = Vec::new();
        if let Some(shares) = self.cpu_shares {
            out.push(setting(
                "",
                "cpu.weight",
                shares_to_weight(shares).to_string(),
            ));
        }
        if self.cpu_quota_us.is_some() || self.cpu_period_us.is_some() {
            let quota = self.cpu_quota_us.map_or_else(|| "max".into(), limit_or_max);
            let period = self.cpu_period_us.unwrap_or(CPU_PERIOD_US);
            out.push(setting("", "cpu.max", format!("{quota} {period}")));
        }
        if let Some(bytes) = self.memory_bytes {
            out.push(setting("", "memory.max", bytes.to_string()));
        }
        if let Some(pids) = self.pids_max {
            out.push(setting("", "pids.max", limit_or_max(pids)));
        }
        out
    }
}

/// A limit where a negative number means none ("max").
fn limit_or_max(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guaranteed() -> ResourceConfig {
        ResourceConfig {
            cpu_shares: Some(512),
            cpu_quota_us: Some(50_000),
            cpu_period_us: Some(CPU_PERIOD_US),
            memory_bytes: Some(64 << 20),
            pids_max: Some(-1),
        }
    }

    fn files(settings: &[Setting]) -> Vec<String> {
        settings
            .iter()
            .map(|s| format!("{}/{}={}", s.controller, s.file, s.value))
            .collect()
    }

    #[test]
    fn v1_writes_each_controllers_files() {
        assert_eq!(
            files(&guaranteed().settings(CgroupVersion::V1)),
            [
                "cpu/cpu.shares=512",
                "cpu/cpu.cfs_period_us=100000",
                "cpu/cpu.cfs_quota_us=50000",
                "memory/memory.limit_in_bytes=67108864",
                "pids/pids.max=max",
            ]
        );
    }

    #[test]
    fn v2_writes_the_unified_files() {
        assert_eq!(
            files(&guaranteed().settings(CgroupVersion::V2)),
            [
                "/cpu.weight=20",
                "/cpu.max=50000 100000",
                "/memory.max=67108864",
                "/pids.max=max",
            ]
        );
        let no_quota = ResourceConfig {
            cpu_shares: Some(2),
            cpu_quota_us: Some(-1),
            cpu_period_us: Some(CPU_PERIOD_US),
            ..ResourceConfig::default()
        };
        assert_eq!(
            files(&no_quota.settings(CgroupVersion::V2)),
            ["/cpu.weight=1", "/cpu.max=max 100000"]
        );
        assert!(
            ResourceConfig::default()
                .settings(CgroupVersion::V2)
                .is_empty()
        );
    }

    #[test]
    fn shares_convert_to_weights_as_runc_converts_them() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1, "below the range is the least");
        assert_eq!(shares_to_weight(-5), 1);
        assert_eq!(shares_to_weight(i64::MAX), 10_000, "above it the most");
    }

    #[test]
    fn shares_and_quota_math() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2, "rounds below the minimum");
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_CPU_SHARES);
        assert_eq!(milli_cpu_to_shares(u64::MAX), MAX_CPU_SHARES);
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD_US), 0);
        assert_eq!(milli_cpu_to_quota(1, CPU_PERIOD_US), 1000, "at least 1ms");
        assert_eq!(milli_cpu_to_quota(250, CPU_PERIOD_US), 25_000);
        assert_eq!(milli_cpu_to_quota(2500, CPU_PERIOD_US), 250_000);
        assert_eq!(milli_cpu_to_quota(u64::MAX, CPU_PERIOD_US), i64::MAX);
    }
}
