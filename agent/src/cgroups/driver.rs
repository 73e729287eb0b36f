//! The cgroup driver: the configuration's (`--cgroup-driver`, `cgroupDriver`, default
//! cgroupfs) unless the container runtime names its own through the CRI `RuntimeConfig` call,
//! as kubelet 1.35 asks at start. A runtime that predates the call (containerd 1.x answers
//! Unimplemented) leaves the configuration's in force; a driver the CRI does not define is an
//! error, as in kubelet.

use thiserror::Error;

/// How pods' cgroups are named and who manages them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// Paths below the cgroup mounts (`/kubepods/burstable/podUID`).
    #[default]
    Cgroupfs,
    /// systemd slices (`kubepods-burstable-podUID.slice`).
    Systemd,
}

impl CgroupDriver {
    /// The configuration's spelling: "cgroupfs" or "systemd".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cgroupfs" => Some(CgroupDriver::Cgroupfs),
            "systemd" => Some(CgroupDriver::Systemd),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

/// Which driver is used, and whose word it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverChoice {
    /// The runtime's `RuntimeConfig` named it.
    Runtime(CgroupDriver),
    /// The runtime does not say (no `RuntimeConfig`, or no Linux section): the configuration's.
    Config(CgroupDriver),
}

impl DriverChoice {
    pub fn driver(self) -> CgroupDriver {
        match self {
            DriverChoice::Runtime(d) | DriverChoice::Config(d) => d,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("the container runtime returned an unknown cgroup driver {0}")]
pub struct UnknownDriver(pub i32);

/// The driver to use: `runtime` is the CRI enum the runtime's `RuntimeConfig` answered in its
/// Linux section (None when it has no such call or no Linux section).
///
/// # Errors
/// A value the CRI does not define.
pub fn choose(
    configured: CgroupDriver,
    runtime: Option<i32>,
) -> Result<DriverChoice, UnknownDriver> {
    use cri_client::api::CgroupDriver as Cri;
    let Some(code) = runtime else {
        return Ok(DriverChoice::Config(configured));
    };
    match Cri::try_from(code) {
        Ok(Cri::Systemd) => Ok(DriverChoice::Runtime(CgroupDriver::Systemd)),
        Ok(Cri::Cgroupfs) => Ok(DriverChoice::Runtime(CgroupDriver::Cgroupfs)),
        Err(_) => Err(UnknownDriver(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_client::api::CgroupDriver as Cri;

    #[test]
    fn the_runtimes_word_wins_and_silence_keeps_the_configuration() {
        assert_eq!(
            choose(CgroupDriver::Cgroupfs, Some(Cri::Systemd as i32)),
            Ok(DriverChoice::Runtime(CgroupDriver::Systemd))
        );
        assert_eq!(
            choose(CgroupDriver::Systemd, Some(Cri::Cgroupfs as i32)),
            Ok(DriverChoice::Runtime(CgroupDriver::Cgroupfs))
        );
        assert_eq!(
            choose(CgroupDriver::Systemd, None),
            Ok(DriverChoice::Config(CgroupDriver::Systemd))
        );
        assert_eq!(
            choose(CgroupDriver::Cgroupfs, Some(7)),
            Err(UnknownDriver(7))
        );
    }

    #[test]
    fn drivers_parse_by_kubelets_names() {
        assert_eq!(CgroupDriver::parse("systemd"), Some(CgroupDriver::Systemd));
        assert_eq!(
            CgroupDriver::parse("cgroupfs"),
            Some(CgroupDriver::Cgroupfs)
        );
        assert_eq!(CgroupDriver::parse("Systemd"), None);
        assert_eq!(CgroupDriver::default().as_str(), "cgroupfs");
    }
}
