//! kubelet's QoS container manager: the node's `kubepods` cgroup, limited to node allocatable
//! (capacity minus kube- and system-reserved) when `enforceNodeAllocatable` holds `pods`, and
//! the two class cgroups below it: BestEffort with the least cpu shares, Burstable with the
//! shares of its pods' summed cpu requests, rewritten as Burstable pods come and go.
//! Guaranteed pods sit directly in kubepods and need nothing of their own.
//!
//! Written with per-QoS cgroups only (see [`super::PodCgroups`]); under the systemd driver
//! they are slices, which the host's [`CgroupFs`] asks systemd for.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::fs::{ApplyError, CgroupFs};
use super::layout::{PodCgroups, QosTier};
use super::limits::{MIN_CPU_SHARES, ResourceConfig, milli_cpu_to_shares};

/// What kubepods is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAllocatable {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

#[derive(Debug)]
pub struct QosCgroups {
    fs: Arc<dyn CgroupFs>,
    layout: PodCgroups,
    /// Burstable pods' cpu requests in millicores, by pod UID.
    burstable: Mutex<BTreeMap<String, u64>>,
}

impl QosCgroups {
    pub fn new(fs: Arc<dyn CgroupFs>, layout: PodCgroups) -> Self {
        QosCgroups {
            fs,
            layout,
            burstable: Mutex::default(),
        }
    }

    fn active(&self) -> bool {
        self.layout.qos(QosTier::Guaranteed).is_some()
    }

    /// Makes kubepods (limited to `enforced` when given) and the class cgroups.
    ///
    /// # Errors
    /// A cgroup that cannot be made or a limit the kernel refuses.
    pub fn start(&self, enforced: Option<NodeAllocatable>) -> Result<(), ApplyError> {
        if !self.active() {
            return Ok(());
        }
        let kubepods = match enforced {
            Some(a) => ResourceConfig {
                cpu_shares: Some(milli_cpu_to_shares(a.cpu_millis)),
                memory_bytes: Some(a.memory_bytes),
                ..ResourceConfig::default()
            },
            None => ResourceConfig::default(),
        };
        self.write(QosTier::Guaranteed, &kubepods)?;
        self.write(
            QosTier::BestEffort,
            &ResourceConfig {
                cpu_shares: Some(MIN_CPU_SHARES),
                ..ResourceConfig::default()
            },
        )?;
        self.write_burstable()
    }

    /// A Burstable pod with `cpu_request_millis` runs (again, after a restart: idempotent).
    ///
    /// # Errors
    /// The Burstable cgroup's shares could not be written.
    pub fn burstable_pod(&self, uid: &str, cpu_request_millis: u64) -> Result<(), ApplyError> {
        if !self.active() {
            return Ok(());
        }
        let changed = self.burstable.lock().is_ok_and(|mut pods| {
            pods.insert(uid.to_string(), cpu_request_millis) != Some(cpu_request_millis)
        });
        if changed {
            self.write_burstable()?;
        }
        Ok(())
    }

    /// The pod with `uid` is gone: the Burstable shares no longer count it.
    ///
    /// # Errors
    /// The Burstable cgroup's shares could not be written.
    pub fn pod_gone(&self, uid: &str) -> Result<(), ApplyError> {
        let was_there = self
            .burstable
            .lock()
            .is_ok_and(|mut pods| pods.remove(uid).is_some());
        if was_there && self.active() {
            self.write_burstable()?;
        }
        Ok(())
    }

    fn write_burstable(&self) -> Result<(), ApplyError> {
        let millis = self.burstable.lock().map_or(0, |pods| {
            pods.values().copied().fold(0, u64::saturating_add)
        });
        self.write(
            QosTier::Burstable,
            &ResourceConfig {
                cpu_shares: Some(milli_cpu_to_shares(millis)),
                ..ResourceConfig::default()
            },
        )
    }

    fn write(&self, tier: QosTier, config: &ResourceConfig) -> Result<(), ApplyError> {
        let Some(name) = self.layout.qos(tier) else {
            return Ok(());
        };
        self.fs.apply(&self.layout.form(&name), config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::CgroupDriver;
    use crate::cgroups::CgroupSettings;
    use crate::cgroups::name::CgroupName;
    use crate::cgroups::recording::{CgroupOp, RecordingCgroupFs};
    use crate::cgroups::version::CgroupVersion;

    fn qos(root: &str, driver: CgroupDriver) -> (QosCgroups, Arc<RecordingCgroupFs>) {
        let fs = Arc::new(RecordingCgroupFs::new(CgroupVersion::V1));
        let settings = CgroupSettings {
            root: CgroupName::parse_root(root).unwrap(),
            ..CgroupSettings::default()
        };
        let layout = PodCgroups::new(&settings, driver).unwrap();
        (QosCgroups::new(fs.clone(), layout), fs)
    }

    fn shares(cpu: i64) -> ResourceConfig {
        ResourceConfig {
            cpu_shares: Some(cpu),
            ..ResourceConfig::default()
        }
    }

    #[test]
    fn start_limits_kubepods_and_makes_the_class_cgroups() {
        let (q, fs) = qos("/node1", CgroupDriver::Cgroupfs);
        q.start(Some(NodeAllocatable {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
        }))
        .unwrap();
        assert_eq!(
            fs.ops(),
            [
                CgroupOp::Apply(
                    "/node1/kubepods".into(),
                    ResourceConfig {
                        cpu_shares: Some(2048),
                        memory_bytes: Some(4 << 30),
                        ..ResourceConfig::default()
                    }
                ),
                CgroupOp::Apply("/node1/kubepods/besteffort".into(), shares(2)),
                CgroupOp::Apply("/node1/kubepods/burstable".into(), shares(2)),
            ]
        );
    }

    #[test]
    fn burstable_shares_follow_their_pods() {
        let (q, fs) = qos("/", CgroupDriver::Cgroupfs);
        q.burstable_pod("a", 500).unwrap();
        q.burstable_pod("b", 250).unwrap();
        q.burstable_pod("b", 250).unwrap();
        q.pod_gone("a").unwrap();
        q.pod_gone("never-burstable").unwrap();
        let burstable = "/kubepods/burstable".to_string();
        assert_eq!(
            fs.ops(),
            [
                CgroupOp::Apply(burstable.clone(), shares(512)),
                CgroupOp::Apply(burstable.clone(), shares(768)),
                CgroupOp::Apply(burstable, shares(256)),
            ],
            "a pod seen again changes nothing"
        );
    }

    #[test]
    fn under_systemd_the_same_limits_go_to_the_slices() {
        let (q, fs) = qos("/", CgroupDriver::Systemd);
        q.start(None).unwrap();
        q.burstable_pod("a", 500).unwrap();
        let burstable = "/kubepods.slice/kubepods-burstable.slice".to_string();
        assert_eq!(
            fs.ops(),
            [
                CgroupOp::Apply("/kubepods.slice".into(), ResourceConfig::default()),
                CgroupOp::Apply(
                    "/kubepods.slice/kubepods-besteffort.slice".into(),
                    shares(2)
                ),
                CgroupOp::Apply(burstable.clone(), shares(2)),
                CgroupOp::Apply(burstable, shares(512)),
            ]
        );
    }
}
