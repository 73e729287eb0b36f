//! The file source: looks at the static pod directory at start, whenever inotify reports a
//! change in it ([`super::dir_watch`]), and every `--file-check-frequency` (kubelet: 20 s) as
//! the backstop, and turns what changed into pod worker updates, as kubelet's config source
//! and pod workers do:
//!
//! - a new manifest (a new UID) starts a pod; a manifest whose content changed has a new UID,
//!   so its old pod is stopped and the new one started once the old one has finished (kubelet
//!   never runs two static pods of one full name at once);
//! - a removed manifest stops its pod: the worker gets the pod marked deleted (grace from
//!   its spec, as kubelet's kill on REMOVE) and, once it is cleaned up, is told the pod is gone;
//! - a manifest that does not parse is one warning (once per file and reason) and changes
//!   nothing else; two manifests of one full name: the first in name order runs;
//! - a directory that cannot be read keeps the pods as they are; one that does not exist
//!   means no static pods.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::dir_watch::{Change, DirWatch};
use super::registry::full_name;
use super::scan::{self, Manifest};
use super::{CONFIG_SEEN, StaticPods};
use crate::pods::worker::Workers;

/// Where the file source hands pods to (the pod workers; a recording double in tests).
pub trait PodSink {
    fn update(&self, pod: Pod);
    fn gone(&self, uid: &str);
    fn contains(&self, uid: &str) -> bool;
}

impl PodSink for Workers {
    fn update(&self, pod: Pod) {
        Workers::update(self, pod);
    }
    fn gone(&self, uid: &str) {
        Workers::gone(self, uid);
    }
    fn contains(&self, uid: &str) -> bool {
        Workers::contains(self, uid)
    }
}

/// The source's memory between scans.
pub struct FileSource<S> {
    sink: S,
    statics: StaticPods,
    /// The pods the manifests ask for now, by UID.
    desired: BTreeMap<String, Pod>,
    /// Pods handed to a worker and not finished, by UID: their full name.
    started: HashMap<String, String>,
    /// Started pods being stopped.
    terminating: std::collections::HashSet<String>,
    /// The last warning given per file, so each is said once.
    warned: HashMap<PathBuf, String>,
}

impl<S: PodSink> FileSource<S> {
    pub fn new(sink: S, statics: StaticPods) -> Self {
        FileSource {
            sink,
            statics,
            desired: BTreeMap::new(),
            started: HashMap::new(),
            terminating: std::collections::HashSet::new(),
            warned: HashMap::new(),
        }
    }

    /// What one scan found: start, stop and replace pods accordingly.
    pub fn apply(&mut self, manifests: Vec<Manifest>) {
        let mut desired = BTreeMap::new();
        let mut names: HashMap<String, PathBuf> = HashMap::new();
        let mut seen_paths = Vec::new();
        for m in manifests {
            seen_paths.push(m.path.clone());
            let pod = match m.pod {
                Ok(pod) => pod,
                Err(why) => {
                    self.warn_once(&m.path, why);
                    continue;
                }
            };
            let name = full_name(&pod);
            if let Some(first) = names.get(&name) {
                let why = format!(
                    "duplicate pod name {name:?} (also in {}), ignoring",
                    first.display()
                );
                self.warn_once(&m.path, why);
                continue;
            }
            self.warned.remove(&m.path);
            names.insert(name, m.path);
            desired.insert(pod.metadata.uid.clone().unwrap_or_default(), pod);
        }
        self.warned.retain(|p, _| seen_paths.contains(p));
        self.desired = desired;
        self.reconcile();
    }

    /// Workers that finished since the last call: retire them, then start what waited.
    pub fn retire(&mut self, finished: Vec<String>) {
        for uid in finished {
            self.started.remove(&uid);
            self.terminating.remove(&uid);
            self.sink.gone(&uid);
        }
        self.reconcile();
    }

    fn reconcile(&mut self) {
        let stale: Vec<String> = (self.started.keys())
            .filter(|uid| !self.desired.contains_key(*uid) && !self.terminating.contains(*uid))
            .cloned()
            .collect();
        for uid in stale {
            self.stop(&uid);
        }
        for (uid, pod) in &self.desired {
            if self.started.contains_key(uid) || self.sink.contains(uid) {
                continue;
            }
            let name = full_name(pod);
            if self.started.values().any(|n| *n == name) {
                // The old pod of this name is still stopping; start this one after it.
                continue;
            }
            let mut pod = pod.clone();
            let now = Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
                .to_string();
            pod.metadata
                .annotations
                .get_or_insert_default()
                .insert(CONFIG_SEEN.to_string(), now);
            info!(pod = %name, %uid, "static pod found");
            self.statics.put(Arc::new(pod.clone()), false);
            self.sink.update(pod);
            self.started.insert(uid.clone(), name);
        }
    }

    /// Stops a started pod whose manifest is gone or changed.
    fn stop(&mut self, uid: &str) {
        let Some(current) = self
            .statics
            .all()
            .into_iter()
            .find(|p| p.pod.metadata.uid.as_deref() == Some(uid))
        else {
            // Never registered (cannot happen) or already finished: nothing runs.
            self.started.remove(uid);
            return;
        };
        let mut pod = (*current.pod).clone();
        pod.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        info!(pod = %full_name(&pod), %uid, "static pod manifest removed or changed; stopping the pod");
        self.statics.put(Arc::new(pod.clone()), true);
        self.sink.update(pod);
        self.terminating.insert(uid.to_string());
    }

    fn warn_once(&mut self, path: &Path, why: String) {
        if self.warned.get(path) != Some(&why) {
            warn!(path = %path.display(), error = %why, "could not process static pod manifest");
            self.warned.insert(path.to_path_buf(), why);
        }
    }
}

/// Runs the file source on `dir` until cancelled; `listed` turns true after the first look.
pub async fn run(
    dir: PathBuf,
    period: Duration,
    node: String,
    workers: Workers,
    statics: StaticPods,
    listed: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let wake = statics.source_wake.clone();
    let mut source = FileSource::new(workers, statics.clone());
    let mut missing_said = false;
    let mut watch: Option<DirWatch> = None;
    let mut watch_error_said = false;
    loop {
        // Watch before looking, so a change between the look and the watch is not missed.
        if watch.is_none() {
            match DirWatch::new(&dir) {
                Ok(w) => {
                    watch = Some(w);
                    watch_error_said = false;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if !watch_error_said => {
                    warn!(path = %dir.display(), error = %e, "cannot watch the static pod path; looking every file-check-frequency only");
                    watch_error_said = true;
                }
                Err(_) => {}
            }
        }
        let (d, n) = (dir.clone(), node.clone());
        match tokio::task::spawn_blocking(move || scan::scan(&d, &n)).await {
            Ok(Ok(manifests)) => {
                missing_said = false;
                source.apply(manifests);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                if !missing_said {
                    warn!(path = %dir.display(), "static pod path does not exist, ignoring");
                    missing_said = true;
                }
                source.apply(Vec::new());
            }
            Ok(Err(e)) => {
                warn!(path = %dir.display(), error = %e, "unable to read static pod path");
            }
            Err(e) => warn!(error = %e, "static pod scan failed"),
        }
        listed.send_replace(true);
        let next = tokio::time::sleep(period);
        tokio::pin!(next);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = &mut next => break,
                () = wake.notified() => source.retire(statics.take_finished()),
                change = changed(watch.as_mut()) => {
                    if !matches!(change, Ok(Change::Entries)) {
                        watch = None; // gone or failed: made again before the next look
                    }
                    // An editor's save is several events; let them settle into one look.
                    tokio::time::sleep(SETTLE).await;
                    break;
                }
            }
        }
    }
}

/// How long a change may keep arriving before the directory is looked at.
const SETTLE: Duration = Duration::from_millis(100);

/// The watch's next change; never, without a watch.
async fn changed(watch: Option<&mut DirWatch>) -> std::io::Result<Change> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}
