//! This node's pod cgroups, as kubelet's QoS and pod container managers name them: with
//! `cgroupsPerQOS` (the default) every pod lives below ROOT/kubepods, Burstable and BestEffort
//! pods in a cgroup of their class and Guaranteed pods directly in kubepods, each in its own
//! `pod<UID>` cgroup; the sandbox's cgroup parent is that cgroup in the driver's form. Without
//! `cgroupsPerQOS` pods get no cgroup parent (the runtime's default place).

use super::driver::CgroupDriver;
use super::name::{CgroupName, NameError};

/// kubelet's node allocatable cgroup, below the cgroup root.
const KUBEPODS: &str = "kubepods";

/// The cgroup settings of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSettings {
    /// `--cgroup-driver` / `cgroupDriver`; the runtime's `RuntimeConfig` may override it.
    pub driver: CgroupDriver,
    /// `--cgroup-root` / `cgroupRoot` (default `/`).
    pub root: CgroupName,
    /// `--cgroups-per-qos` / `cgroupsPerQOS` (default true).
    pub per_qos: bool,
    /// `enforceNodeAllocatable` holds `pods` (the default): kubepods is limited to allocatable.
    pub enforce_pods: bool,
    /// `podPidsLimit` / `--pod-max-pids` when positive: every pod cgroup's pids.max.
    pub pod_pids_limit: Option<i64>,
}

impl Default for CgroupSettings {
    fn default() -> Self {
        CgroupSettings {
            driver: CgroupDriver::Cgroupfs,
            root: CgroupName::root(),
            per_qos: true,
            enforce_pods: true,
            pod_pids_limit: None,
        }
    }
}

/// A pod's QoS class, as far as its cgroup goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosTier {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// Where this node's pods' cgroups are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroups {
    driver: CgroupDriver,
    /// pids.max of every pod cgroup.
    pod_pids_limit: Option<i64>,
    /// ROOT/kubepods; None without cgroupsPerQOS.
    kubepods: Option<CgroupName>,
}

impl Default for PodCgroups {
    fn default() -> Self {
        // The default root is valid: kubepods below it is too.
        Self::new(&CgroupSettings::default(), CgroupDriver::Cgroupfs).unwrap_or(PodCgroups {
            driver: CgroupDriver::Cgroupfs,
            pod_pids_limit: None,
            kubepods: None,
        })
    }
}

impl PodCgroups {
    /// The layout of `settings` with the driver in force (the runtime's or the configured).
    ///
    /// # Errors
    /// Not with a root from [`CgroupName::parse_root`]; kept for the child name's check.
    pub fn new(settings: &CgroupSettings, driver: CgroupDriver) -> Result<Self, NameError> {
        let kubepods = if settings.per_qos {
            Some(settings.root.child(KUBEPODS)?)
        } else {
            None
        };
        Ok(PodCgroups {
            driver,
            pod_pids_limit: settings.pod_pids_limit,
            kubepods,
        })
    }

    /// pids.max of every pod cgroup (`podPidsLimit`), None for no limit.
    pub fn pod_pids_limit(&self) -> Option<i64> {
        self.pod_pids_limit
    }

    pub fn driver(&self) -> CgroupDriver {
        self.driver
    }

    /// The cgroup of a QoS class (kubepods itself for Guaranteed); None without cgroupsPerQOS.
    pub fn qos(&self, tier: QosTier) -> Option<CgroupName> {
        let kubepods = self.kubepods.clone()?;
        match tier {
            QosTier::Guaranteed => Some(kubepods),
            QosTier::Burstable => kubepods.child("burstable").ok(),
            QosTier::BestEffort => kubepods.child("besteffort").ok(),
        }
    }

    /// The pod's own cgroup; None without cgroupsPerQOS or for a UID that is no valid cgroup
    /// name component (the pod workers refuse such a UID before anything gets here).
    pub fn pod(&self, tier: QosTier, uid: &str) -> Option<CgroupName> {
        self.qos(tier)?.child(&format!("pod{uid}")).ok()
    }

    /// The pods' cgroups below each QoS class in the driver's form, as (UID, path): what a
    /// listing of the class cgroups' `children` gives, named `pod<UID>` (cgroupfs) or
    /// `<class>-pod<UID, '-' as '_'>.slice` (systemd).
    pub fn pods_in(&self, children: impl Fn(&str) -> Vec<String>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for tier in [QosTier::Guaranteed, QosTier::Burstable, QosTier::BestEffort] {
            let Some(class) = self.qos(tier) else {
                continue;
            };
            let parent = self.form(&class);
            for name in children(&parent) {
                let uid = match self.driver {
                    CgroupDriver::Cgroupfs => name.strip_prefix("pod").map(str::to_string),
                    CgroupDriver::Systemd => systemd_pod_uid(&parent, &name),
                };
                let Some(uid) = uid else {
                    continue;
                };
                // Only what this layout would name so: never another unit that looks alike.
                if let Ok(pod) = class.child(&format!("pod{uid}"))
                    && self.form(&pod) == format!("{}/{name}", parent.trim_end_matches('/'))
                {
                    out.push((uid, self.form(&pod)));
                }
            }
        }
        out
    }

    /// `name` in the driver's form.
    pub fn form(&self, name: &CgroupName) -> String {
        match self.driver {
            CgroupDriver::Cgroupfs => name.to_cgroupfs(),
            CgroupDriver::Systemd => name.to_systemd(),
        }
    }

    /// The sandbox's cgroup parent: the pod's cgroup in the driver's form; empty (the
    /// runtime's default) without cgroupsPerQOS.
    pub fn parent(&self, tier: QosTier, uid: &str) -> String {
        self.pod(tier, uid)
            .map(|name| self.form(&name))
            .unwrap_or_default()
    }
}

/// The UID in a pod slice's name below the class slice `parent` (its path):
/// `kubepods-burstable-pod12_34.slice` below `.../kubepods-burstable.slice` is `12-34`.
fn systemd_pod_uid(parent: &str, name: &str) -> Option<String> {
    let class = parent.rsplit('/').next()?.strip_suffix(".slice")?;
    let escaped = name
        .strip_prefix(class)?
        .strip_prefix("-pod")?
        .strip_suffix(".slice")?;
    Some(escaped.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "5f0e1c2a-0b1d-4c6e-9a7b-3d2f1e0c9b8a";

    fn layout(driver: CgroupDriver, root: &str, per_qos: bool) -> PodCgroups {
        let settings = CgroupSettings {
            driver,
            root: CgroupName::parse_root(root).unwrap(),
            per_qos,
            enforce_pods: true,
            pod_pids_limit: None,
        };
        PodCgroups::new(&settings, driver).unwrap()
    }

    #[test]
    fn cgroupfs_parents_per_qos_class() {
        let l = layout(CgroupDriver::Cgroupfs, "/", true);
        assert_eq!(
            l.parent(QosTier::Guaranteed, UID),
            format!("/kubepods/pod{UID}")
        );
        assert_eq!(
            l.parent(QosTier::Burstable, UID),
            format!("/kubepods/burstable/pod{UID}")
        );
        assert_eq!(
            l.parent(QosTier::BestEffort, UID),
            format!("/kubepods/besteffort/pod{UID}")
        );
        assert_eq!(l, PodCgroups::default());
    }

    #[test]
    fn systemd_parents_are_the_slices_kubelet_names() {
        let l = layout(CgroupDriver::Systemd, "/", true);
        assert_eq!(
            l.parent(QosTier::Burstable, UID),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f0e1c2a_0b1d_4c6e_9a7b_3d2f1e0c9b8a.slice"
        );
        assert_eq!(
            l.parent(QosTier::Guaranteed, UID),
            "/kubepods.slice/kubepods-pod5f0e1c2a_0b1d_4c6e_9a7b_3d2f1e0c9b8a.slice"
        );
    }

    #[test]
    fn kinds_cgroup_root_nests_everything_below_kubelet_slice() {
        // kind's nodes: cgroupDriver systemd, cgroupRoot /kubelet.
        let l = layout(CgroupDriver::Systemd, "/kubelet", true);
        assert_eq!(
            l.parent(QosTier::BestEffort, "u-1"),
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-podu_1.slice"
        );
        let fs = layout(CgroupDriver::Cgroupfs, "/kubelet-mkl", true);
        assert_eq!(
            fs.qos(QosTier::Burstable).unwrap().to_cgroupfs(),
            "/kubelet-mkl/kubepods/burstable"
        );
    }

    #[test]
    fn pods_are_found_below_every_class_by_their_names() {
        let l = layout(CgroupDriver::Cgroupfs, "/node", true);
        let found = l.pods_in(|parent| match parent {
            "/node/kubepods" => vec!["burstable".into(), "besteffort".into(), "poda".into()],
            "/node/kubepods/burstable" => vec!["podb".into(), "other".into()],
            _ => Vec::new(),
        });
        assert_eq!(
            found,
            [
                ("a".to_string(), "/node/kubepods/poda".to_string()),
                ("b".to_string(), "/node/kubepods/burstable/podb".to_string()),
            ]
        );
        let systemd = layout(CgroupDriver::Systemd, "/kubelet", true);
        let found = systemd.pods_in(|parent| match parent {
            "/kubelet.slice/kubelet-kubepods.slice" => vec![
                "kubelet-kubepods-burstable.slice".into(),
                "kubelet-kubepods-pod1_2.slice".into(),
                "poda".into(),
            ],
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice" => vec![
                "kubelet-kubepods-burstable-pod3_4.slice".into(),
                "kubelet-kubepods-burstable-pod5.scope".into(),
            ],
            _ => Vec::new(),
        });
        assert_eq!(
            found,
            [
                (
                    "1-2".to_string(),
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod1_2.slice".to_string()
                ),
                (
                    "3-4".to_string(),
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod3_4.slice".to_string()
                ),
            ]
        );
    }

    #[test]
    fn without_cgroups_per_qos_pods_get_the_runtimes_default() {
        let l = layout(CgroupDriver::Cgroupfs, "/", false);
        assert_eq!(l.parent(QosTier::Burstable, UID), "");
        assert_eq!(l.qos(QosTier::Guaranteed), None);
    }

    #[test]
    fn a_uid_that_is_no_cgroup_name_gets_no_cgroup() {
        let l = layout(CgroupDriver::Cgroupfs, "/", true);
        for bad in ["../../etc", "a/b", "a_b"] {
            assert_eq!(l.pod(QosTier::Burstable, bad), None, "{bad}");
        }
    }
}
