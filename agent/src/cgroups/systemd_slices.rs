//! The systemd cgroup driver's cgroups, kubelet's way: each of kubepods, the QoS classes and
//! the pods is a transient slice unit that systemd owns, made and changed over D-Bus
//! ([`SliceManager`]; the bus itself is `systemd_bus`), then written to the hierarchy as well,
//! as kubelet's cgroup manager (libcontainer's systemd manager) does:
//!
//! - made: `StartTransientUnit` of `NAME.slice` with `Wants=` its parent slice,
//!   `DefaultDependencies=no` and the accounting of cpu, memory, io and tasks on; an existing
//!   unit (the agent restarted) is kept, as libcontainer keeps one for kubelet;
//! - limited: `SetUnitProperties` with the limits in systemd's terms ([`resource_properties`]:
//!   `CPUShares` / `CPUWeight`, `CPUQuotaPerSecUSec` rounded up to whole percents as
//!   libcontainer rounds it, `CPUQuotaPeriodUSec`, `MemoryLimit` / `MemoryMax`, `TasksMax`),
//!   then the same values written to the cgroup files, so that systemd's idea and the kernel's
//!   agree;
//! - removed: `StopUnit`, then the empty directories where any are left.
//!
//! Without systemd the limits would be written by a unit-less hand into a tree systemd
//! manages, and systemd would put its own back at its next reload: the reason kubelet asks it.

use super::fs::{ApplyError, CgroupFs};
use super::limits::{CPU_PERIOD_US, ResourceConfig, shares_to_weight};
use super::version::CgroupVersion;

/// A unit property's value, as D-Bus carries it (b, t, s, as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Bool(bool),
    U64(u64),
    Str(String),
    Strings(Vec<String>),
}

/// One property of a unit, by systemd's name.
pub type Property = (&'static str, PropValue);

/// systemd's "infinity" for a u64 property.
pub const INFINITY: u64 = u64::MAX;

/// The D-Bus calls on systemd's Manager the driver needs (the host's bus, or a test's
/// recording double). Errors are systemd's message.
pub trait SliceManager: Send + Sync + std::fmt::Debug {
    /// Starts the transient unit `unit` with `properties` and waits for its job; Ok when the
    /// unit exists already.
    fn start(&self, unit: &str, properties: Vec<Property>) -> Result<(), String>;

    /// Changes the running unit's `properties` (runtime only, as libcontainer does).
    fn set(&self, unit: &str, properties: Vec<Property>) -> Result<(), String>;

    /// Stops `unit` and waits for its job; Ok when there is no such unit.
    fn stop(&self, unit: &str) -> Result<(), String>;
}

/// The unit and its parent slice for a cgroup path in systemd's form
/// (`/kubepods.slice/kubepods-burstable.slice`): the last component, and the one before it
/// (`-.slice`, the root slice, for a top-level one). None for a path that names no slice.
pub fn units_of(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_matches('/').rsplit('/');
    let unit = parts.next().filter(|u| {
        u.strip_suffix(".slice")
            .is_some_and(|stem| !stem.is_empty())
    })?;
    let parent = parts.next().unwrap_or("-.slice");
    Some((unit, parent))
}

/// What a new slice is made with (libcontainer's `Apply` for a slice).
pub fn slice_properties(unit: &str, parent: &str, version: CgroupVersion) -> Vec<Property> {
    let io = match version {
        CgroupVersion::V1 => "BlockIOAccounting",
        CgroupVersion::V2 => "IOAccounting",
    };
    vec![
        (
            "Description",
            PropValue::Str(format!("libcontainer container {unit}")),
        ),
        ("Wants", PropValue::Strings(vec![parent.to_string()])),
        ("MemoryAccounting", PropValue::Bool(true)),
        ("CPUAccounting", PropValue::Bool(true)),
        (io, PropValue::Bool(true)),
        ("TasksAccounting", PropValue::Bool(true)),
        ("DefaultDependencies", PropValue::Bool(false)),
    ]
}

/// The limits of `config` as unit properties on `version` (libcontainer's
/// `genV1ResourcesProperties` / `genV2ResourcesProperties` for what kubelet sets).
pub fn resource_properties(config: &ResourceConfig, version: CgroupVersion) -> Vec<Property> {
    let mut out = Vec::new();
    let positive = |v: i64| u64::try_from(v).ok();
    if let Some(bytes) = config.memory_bytes {
        let name = match version {
            CgroupVersion::V1 => "MemoryLimit",
            CgroupVersion::V2 => "MemoryMax",
        };
        out.push((name, PropValue::U64(bytes)));
    }
    if let Some(shares) = config.cpu_shares.filter(|s| *s > 0) {
        let (name, value) = match version {
            CgroupVersion::V1 => ("CPUShares", shares),
            CgroupVersion::V2 => ("CPUWeight", shares_to_weight(shares)),
        };
        out.push((name, PropValue::U64(positive(value).unwrap_or(1))));
    }
    let period = config.cpu_period_us.and_then(positive);
    if let Some(p) = period {
        out.push(("CPUQuotaPeriodUSec", PropValue::U64(p)));
    }
    if config.cpu_quota_us.is_some() || period.is_some() {
        let per_sec = config
            .cpu_quota_us
            .and_then(positive)
            .filter(|q| *q > 0)
            .map_or(INFINITY, |q| {
                quota_per_sec(q, period.unwrap_or(CPU_PERIOD_US.unsigned_abs()))
            });
        out.push(("CPUQuotaPerSecUSec", PropValue::U64(per_sec)));
    }
    if let Some(pids) = config.pids_max {
        let tasks = match pids {
            p if p < 0 => INFINITY,
            // systemd takes no 0 for TasksMax.
            0 => 1,
            p => positive(p).unwrap_or(INFINITY),
        };
        out.push(("TasksMax", PropValue::U64(tasks)));
    }
    out
}

/// A CFS quota per `period_us` as µs per second, rounded up to whole percents (10 ms): systemd
/// keeps whole percents, and a child's quota must fit in what the parent got.
fn quota_per_sec(quota_us: u64, period_us: u64) -> u64 {
    let per_sec = quota_us.saturating_mul(1_000_000) / period_us.max(1);
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// Quota written to the files after [`quota_per_sec`]'s rounding (libcontainer writes the same
/// value the unit got).
fn rounded_quota(quota_us: i64, period_us: i64) -> i64 {
    let (Ok(q), Ok(p)) = (u64::try_from(quota_us), u64::try_from(period_us)) else {
        return quota_us;
    };
    if q == 0 || p == 0 {
        return quota_us;
    }
    let per_sec = quota_per_sec(q, p);
    i64::try_from(per_sec.saturating_mul(p) / 1_000_000).unwrap_or(quota_us)
}

/// The hierarchy under the systemd driver: the slices are systemd's units, the files the
/// kernel's.
#[derive(Debug)]
pub struct SystemdHierarchy<F: CgroupFs, M: SliceManager> {
    fs: F,
    slices: M,
}

impl<F: CgroupFs, M: SliceManager> SystemdHierarchy<F, M> {
    pub fn new(fs: F, slices: M) -> Self {
        SystemdHierarchy { fs, slices }
    }
}

fn dbus_error(path: &str, message: &str) -> ApplyError {
    ApplyError {
        path: path.into(),
        source: std::io::Error::other(format!("systemd: {message}")),
    }
}

impl<F: CgroupFs, M: SliceManager> CgroupFs for SystemdHierarchy<F, M> {
    fn version(&self) -> CgroupVersion {
        self.fs.version()
    }

    fn apply(&self, path: &str, config: &ResourceConfig) -> Result<(), ApplyError> {
        let Some((unit, parent)) = units_of(path) else {
            return self.fs.apply(path, config);
        };
        let version = self.fs.version();
        self.slices
            .start(unit, slice_properties(unit, parent, version))
            .map_err(|e| dbus_error(path, &e))?;
        let properties = resource_properties(config, version);
        if !properties.is_empty() {
            self.slices
                .set(unit, properties)
                .map_err(|e| dbus_error(path, &e))?;
        }
        let written = ResourceConfig {
            cpu_quota_us: config
                .cpu_quota_us
                .map(|q| rounded_quota(q, config.cpu_period_us.unwrap_or(CPU_PERIOD_US))),
            ..config.clone()
        };
        self.fs.apply(path, &written)
    }

    /// Stopping a slice stops what runs in it: only a slice without child cgroups (the
    /// containers' scopes) is stopped, as only an empty cgroup is removed.
    fn remove(&self, path: &str) {
        if let Some((unit, _)) = units_of(path)
            && self.fs.children(path).is_empty()
            && let Err(e) = self.slices.stop(unit)
        {
            tracing::warn!(%unit, error = %e, "systemd did not stop the slice");
        }
        self.fs.remove(path);
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.fs.children(path)
    }

    fn read(&self, path: &str, controller: &str, file: &str) -> Option<String> {
        self.fs.read(path, controller, file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::recording::{CgroupOp, RecordingCgroupFs};
    use std::sync::Mutex;

    /// The calls systemd got, in order; a unit named in `refuse` fails to start.
    #[derive(Debug, Default)]
    struct RecordingSlices {
        calls: Mutex<Vec<String>>,
        refuse: Option<&'static str>,
    }

    impl SliceManager for RecordingSlices {
        fn start(&self, unit: &str, properties: Vec<Property>) -> Result<(), String> {
            if self.refuse == Some(unit) {
                return Err(
                    "Unit kubepods.slice was already loaded or has a fragment file.".into(),
                );
            }
            let names: Vec<&str> = properties.iter().map(|(n, _)| *n).collect();
            self.calls
                .lock()
                .unwrap()
                .push(format!("start {unit} {}", names.join(",")));
            Ok(())
        }

        fn set(&self, unit: &str, properties: Vec<Property>) -> Result<(), String> {
            let shown: Vec<String> = properties
                .iter()
                .map(|(n, v)| match v {
                    PropValue::U64(x) if *x == INFINITY => format!("{n}=infinity"),
                    PropValue::U64(x) => format!("{n}={x}"),
                    other => format!("{n}={other:?}"),
                })
                .collect();
            self.calls
                .lock()
                .unwrap()
                .push(format!("set {unit} {}", shown.join(" ")));
            Ok(())
        }

        fn stop(&self, unit: &str) -> Result<(), String> {
            self.calls.lock().unwrap().push(format!("stop {unit}"));
            Ok(())
        }
    }

    const POD: &str = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice";

    #[test]
    fn a_slice_is_named_by_its_last_component_under_its_parent() {
        assert_eq!(
            units_of(POD),
            Some((
                "kubepods-burstable-poda_b.slice",
                "kubepods-burstable.slice"
            ))
        );
        assert_eq!(
            units_of("/kubepods.slice"),
            Some(("kubepods.slice", "-.slice"))
        );
        assert_eq!(units_of("/kubepods/burstable"), None);
    }

    #[test]
    fn the_slice_is_started_limited_through_systemd_then_written() {
        let h = SystemdHierarchy::new(
            RecordingCgroupFs::new(CgroupVersion::V1),
            RecordingSlices::default(),
        );
        let config = ResourceConfig {
            cpu_shares: Some(512),
            // 25.5 ms per 100 ms: systemd keeps whole percents, so 26 ms.
            cpu_quota_us: Some(25_500),
            cpu_period_us: Some(100_000),
            memory_bytes: Some(64 << 20),
            pids_max: Some(-1),
        };
        h.apply(POD, &config).unwrap();
        assert_eq!(
            *h.slices.calls.lock().unwrap(),
            [
                "start kubepods-burstable-poda_b.slice Description,Wants,MemoryAccounting,CPUAccounting,BlockIOAccounting,TasksAccounting,DefaultDependencies",
                "set kubepods-burstable-poda_b.slice MemoryLimit=67108864 CPUShares=512 CPUQuotaPeriodUSec=100000 CPUQuotaPerSecUSec=260000 TasksMax=infinity",
            ]
        );
        let written = ResourceConfig {
            cpu_quota_us: Some(26_000),
            ..config
        };
        // A container's scope is still there: nothing is stopped.
        h.fs.apply(
            &format!("{POD}/cri-containerd-1.scope"),
            &ResourceConfig::default(),
        )
        .unwrap();
        h.remove(POD);
        assert!(
            !h.slices
                .calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.starts_with("stop"))
        );
        h.fs.remove(&format!("{POD}/cri-containerd-1.scope"));
        h.remove(POD);
        assert_eq!(
            h.slices.calls.lock().unwrap().last().map(String::as_str),
            Some("stop kubepods-burstable-poda_b.slice")
        );
        assert_eq!(
            h.fs.ops(),
            [
                CgroupOp::Apply(POD.into(), written),
                CgroupOp::Apply(
                    format!("{POD}/cri-containerd-1.scope"),
                    ResourceConfig::default()
                ),
                CgroupOp::Remove(POD.into()),
                CgroupOp::Remove(format!("{POD}/cri-containerd-1.scope")),
                CgroupOp::Remove(POD.into()),
            ],
            "the files get the unit's rounded quota"
        );
    }

    #[test]
    fn v2_names_and_a_refusal_is_the_writes_error() {
        let props = resource_properties(
            &ResourceConfig {
                cpu_shares: Some(1024),
                cpu_quota_us: Some(-1),
                memory_bytes: Some(1 << 30),
                pids_max: Some(0),
                ..ResourceConfig::default()
            },
            CgroupVersion::V2,
        );
        assert_eq!(
            props,
            [
                ("MemoryMax", PropValue::U64(1 << 30)),
                ("CPUWeight", PropValue::U64(39)),
                ("CPUQuotaPerSecUSec", PropValue::U64(INFINITY)),
                ("TasksMax", PropValue::U64(1)),
            ]
        );
        let h = SystemdHierarchy::new(
            RecordingCgroupFs::new(CgroupVersion::V2),
            RecordingSlices {
                refuse: Some("kubepods.slice"),
                ..RecordingSlices::default()
            },
        );
        let e = h
            .apply("/kubepods.slice", &ResourceConfig::default())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/kubepods.slice: systemd: Unit kubepods.slice"),
            "{e}"
        );
        assert!(h.fs.ops().is_empty(), "nothing written");
    }
}
