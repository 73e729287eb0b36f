//! A [`CgroupFs`] that writes nothing and records what it was asked, for the pod workers'
//! scenarios on the fake runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::fs::{ApplyError, CgroupFs};
use super::limits::ResourceConfig;
use super::version::CgroupVersion;

/// One call made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupOp {
    Apply(String, ResourceConfig),
    Remove(String),
}

#[derive(Debug)]
pub struct RecordingCgroupFs {
    version: CgroupVersion,
    ops: Mutex<Vec<CgroupOp>>,
    /// The cgroups applied and not removed, by parent path.
    children: Mutex<BTreeMap<String, Vec<String>>>,
    /// Files a test put there for [`CgroupFs::read`], by (path, controller, file).
    files: Mutex<BTreeMap<(String, String, String), String>>,
}

impl RecordingCgroupFs {
    pub fn new(version: CgroupVersion) -> Self {
        RecordingCgroupFs {
            version,
            ops: Mutex::default(),
            children: Mutex::default(),
            files: Mutex::default(),
        }
    }

    /// Makes `read(path, controller, file)` return `contents`, as the kernel's file would.
    pub fn put(&self, path: &str, controller: &str, file: &str, contents: &str) {
        if let Ok(mut files) = self.files.lock() {
            files.insert(
                (path.to_string(), controller.to_string(), file.to_string()),
                contents.to_string(),
            );
        }
    }

    /// The calls so far, in order.
    pub fn ops(&self) -> Vec<CgroupOp> {
        self.ops.lock().map(|o| o.clone()).unwrap_or_default()
    }

    fn record(&self, op: CgroupOp) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }
}

impl CgroupFs for RecordingCgroupFs {
    fn version(&self) -> CgroupVersion {
        self.version
    }

    fn apply(&self, path: &str, config: &ResourceConfig) -> Result<(), ApplyError> {
        self.record(CgroupOp::Apply(path.to_string(), config.clone()));
        // As on a host, the cgroup now exists (once) below its parent.
        if let Some((parent, name)) = path.rsplit_once('/')
            && let Ok(mut children) = self.children.lock()
        {
            let list = children.entry(parent.to_string()).or_default();
            if !list.iter().any(|c| c == name) {
                list.push(name.to_string());
            }
        }
        Ok(())
    }

    fn remove(&self, path: &str) {
        self.record(CgroupOp::Remove(path.to_string()));
        if let (Some((parent, name)), Ok(mut children)) =
            (path.rsplit_once('/'), self.children.lock())
            && let Some(list) = children.get_mut(parent)
        {
            list.retain(|c| c != name);
        }
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.children
            .lock()
            .ok()
            .and_then(|c| c.get(path).cloned())
            .unwrap_or_default()
    }

    fn read(&self, path: &str, controller: &str, file: &str) -> Option<String> {
        let key = (path.to_string(), controller.to_string(), file.to_string());
        self.files.lock().ok()?.get(&key).cloned()
    }
}
