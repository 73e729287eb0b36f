//! The OS boundary of cgroups: writing a cgroup's limits and removing an empty cgroup, behind
//! [`CgroupFs`] so that the pod workers' scenarios run against a recording double while the
//! agent writes the host's hierarchies ([`Hierarchy`]).
//!
//! Paths handed in are cgroup names in a driver's form ([`super::CgroupName`] built them from
//! checked components), so they never leave the cgroup mount. The cgroup filesystems are the
//! kernel's: no container writes the host's hierarchies, so there is no link to refuse there.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::limits::ResourceConfig;
use super::version::{CgroupVersion, Hierarchy};

#[derive(Debug, Error)]
#[error("{path}: {source}")]
pub struct ApplyError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |source| ApplyError {
        path: path.to_path_buf(),
        source,
    }
}

/// Where cgroups are written and removed.
pub trait CgroupFs: Send + Sync + std::fmt::Debug {
    fn version(&self) -> CgroupVersion;

    /// Creates the cgroup at `path` (and its parents) where missing and writes `config`.
    ///
    /// # Errors
    /// A directory that cannot be created or a value the kernel refuses.
    fn apply(&self, path: &str, config: &ResourceConfig) -> Result<(), ApplyError>;

    /// Removes the cgroup at `path` where it exists and is empty; what cannot go stays.
    fn remove(&self, path: &str);

    /// The names of the child cgroups of `path` in any hierarchy, sorted, each once.
    fn children(&self, path: &str) -> Vec<String>;

    /// The contents of `file` of the cgroup at `path` in `controller`'s hierarchy (v1; the one
    /// hierarchy on v2), None where it does not exist or cannot be read.
    fn read(&self, path: &str, controller: &str, file: &str) -> Option<String>;
}

impl CgroupFs for Hierarchy {
    fn version(&self) -> CgroupVersion {
        Hierarchy::version(self)
    }

    fn apply(&self, path: &str, config: &ResourceConfig) -> Result<(), ApplyError> {
        let relative = path.trim_start_matches('/');
        let settings = config.settings(self.version());
        if self.version() == CgroupVersion::V2 {
            let controllers: Vec<&str> = ["cpu", "memory", "pids"]
                .into_iter()
                .filter(|c| settings.iter().any(|s| s.file.starts_with(c)))
                .collect();
            enable_controllers(self.mount(), relative, &controllers)?;
        }
        for s in &settings {
            let dir = if s.controller.is_empty() {
                self.mount().join(relative)
            } else {
                self.mount().join(s.controller).join(relative)
            };
            std::fs::create_dir_all(&dir).map_err(at(&dir))?;
            let file = dir.join(s.file);
            write_value(&file, &s.value).map_err(at(&file))?;
        }
        Ok(())
    }

    fn remove(&self, path: &str) {
        Hierarchy::remove(self, path);
    }

    fn children(&self, path: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs_of(path)
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn read(&self, path: &str, controller: &str, file: &str) -> Option<String> {
        let relative = path.trim_start_matches('/');
        let dir = if self.version() == CgroupVersion::V2 {
            self.mount().join(relative)
        } else {
            self.mount().join(controller).join(relative)
        };
        std::fs::read_to_string(dir.join(file)).ok()
    }
}

/// v2: a controller's files exist in a cgroup only when every ancestor delegates it in
/// `cgroup.subtree_control`; each ancestor of `relative` (the mount included) gets the ones
/// the limits need, creating the ancestors that are missing.
fn enable_controllers(
    mount: &Path,
    relative: &str,
    controllers: &[&str],
) -> Result<(), ApplyError> {
    if controllers.is_empty() {
        return Ok(());
    }
    let enable = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut dir = mount.to_path_buf();
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts {
        std::fs::create_dir_all(&dir).map_err(at(&dir))?;
        let control = dir.join("cgroup.subtree_control");
        write_value(&control, &enable).map_err(at(&control))?;
        dir.push(part);
    }
    Ok(())
}

/// Writes `value` to an existing cgroup file (never creates one: a missing file is a
/// controller the hierarchy does not have, an error).
fn write_value(file: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)?;
    f.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::limits::CPU_PERIOD_US;

    fn limits() -> ResourceConfig {
        ResourceConfig {
            cpu_shares: Some(256),
            cpu_quota_us: Some(25_000),
            cpu_period_us: Some(CPU_PERIOD_US),
            memory_bytes: Some(32 << 20),
            pids_max: None,
        }
    }

    /// A recorded tree: the kernel creates a new cgroup's files; here they are made up front.
    fn touch(dir: &Path, files: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn v1_limits_land_in_each_controllers_hierarchy() {
        let tree = tempfile::tempdir().unwrap();
        let pod = "kubepods/burstable/podu1";
        touch(
            &tree.path().join("cpu").join(pod),
            &["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"],
        );
        touch(
            &tree.path().join("memory").join(pod),
            &["memory.limit_in_bytes"],
        );
        let h = Hierarchy::new(tree.path(), CgroupVersion::V1);
        h.apply(&format!("/{pod}"), &limits()).unwrap();
        let cpu = tree.path().join("cpu").join(pod);
        assert_eq!(read(cpu.join("cpu.shares")), "256");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(
            read(
                tree.path()
                    .join("memory")
                    .join(pod)
                    .join("memory.limit_in_bytes")
            ),
            "33554432"
        );
    }

    #[test]
    fn v2_delegates_the_controllers_down_to_the_pod_and_writes_the_unified_files() {
        let tree = tempfile::tempdir().unwrap();
        let slices = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podu1.slice";
        for dir in [
            "",
            "kubepods.slice",
            "kubepods.slice/kubepods-burstable.slice",
        ] {
            touch(&tree.path().join(dir), &["cgroup.subtree_control"]);
        }
        touch(
            &tree.path().join(slices),
            &["cpu.weight", "cpu.max", "memory.max"],
        );
        let h = Hierarchy::new(tree.path(), CgroupVersion::V2);
        h.apply(&format!("/{slices}"), &limits()).unwrap();
        for dir in [
            "",
            "kubepods.slice",
            "kubepods.slice/kubepods-burstable.slice",
        ] {
            assert_eq!(
                read(tree.path().join(dir).join("cgroup.subtree_control")),
                "+cpu +memory",
                "{dir:?}"
            );
        }
        let pod = tree.path().join(slices);
        assert_eq!(read(pod.join("cpu.weight")), "10");
        assert_eq!(read(pod.join("cpu.max")), "25000 100000");
        assert_eq!(read(pod.join("memory.max")), "33554432");
    }

    #[test]
    fn children_are_listed_once_over_the_hierarchies() {
        let tree = tempfile::tempdir().unwrap();
        for dir in [
            "cpu/kubepods/poda",
            "memory/kubepods/poda",
            "memory/kubepods/podb",
        ] {
            std::fs::create_dir_all(tree.path().join(dir)).unwrap();
        }
        std::fs::write(tree.path().join("memory/kubepods/memory.stat"), "").unwrap();
        let h = Hierarchy::new(tree.path(), CgroupVersion::V1);
        assert_eq!(h.children("/kubepods"), ["poda", "podb"]);
        assert!(h.children("/missing").is_empty());
    }

    #[test]
    fn a_file_the_hierarchy_lacks_is_an_error_naming_it() {
        let tree = tempfile::tempdir().unwrap();
        let h = Hierarchy::new(tree.path(), CgroupVersion::V1);
        let e = h.apply("/kubepods/podu1", &limits()).unwrap_err();
        assert!(e.path.ends_with("cpu/kubepods/podu1/cpu.shares"), "{e}");
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
    }
}
