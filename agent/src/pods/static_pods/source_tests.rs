//! The file source's rules on a recording sink: a manifest added, changed, removed or broken.

use std::cell::RefCell;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;

use super::StaticPods;
use super::scan::Manifest;
use super::source::{FileSource, PodSink};

#[derive(Debug, Clone, PartialEq)]
enum Call {
    /// A pod handed to its worker: (uid, deleted?).
    Update(String, bool),
    Gone(String),
}

#[derive(Default)]
struct Sink {
    calls: RefCell<Vec<Call>>,
}

impl PodSink for &Sink {
    fn update(&self, pod: Pod) {
        let uid = pod.metadata.uid.clone().unwrap();
        let deleted = pod.metadata.deletion_timestamp.is_some();
        self.calls.borrow_mut().push(Call::Update(uid, deleted));
    }
    fn gone(&self, uid: &str) {
        self.calls.borrow_mut().push(Call::Gone(uid.to_string()));
    }
    fn contains(&self, _uid: &str) -> bool {
        false
    }
}

impl Sink {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut self.calls.borrow_mut())
    }
}

fn manifest(file: &str, name: &str, image: &str) -> Manifest {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\n\
         spec: {{containers: [{{name: c, image: {image}}}]}}\n"
    );
    let path = PathBuf::from(format!("/m/{file}"));
    let pod = super::manifest::parse(text.as_bytes(), &path, "n").map_err(|e| e.to_string());
    Manifest { path, pod }
}

fn uid(m: &Manifest) -> String {
    m.pod.as_ref().unwrap().metadata.uid.clone().unwrap()
}

fn broken(file: &str) -> Manifest {
    Manifest {
        path: PathBuf::from(format!("/m/{file}")),
        pod: Err("couldn't parse".into()),
    }
}

#[test]
fn an_added_manifest_starts_its_pod_once_with_the_seen_annotation() {
    let (sink, statics) = (Sink::default(), StaticPods::default());
    let mut source = FileSource::new(&sink, statics.clone());
    let web = manifest("web.yaml", "web", "i");
    let web_uid = uid(&web);
    source.apply(vec![web, broken("bad.yaml")]);
    assert_eq!(sink.take(), vec![Call::Update(web_uid.clone(), false)]);
    let registered = statics.all();
    assert_eq!(registered.len(), 1);
    let seen = registered[0].pod.metadata.annotations.as_ref().unwrap()[super::CONFIG_SEEN].clone();
    assert!(
        seen.ends_with('Z') && seen.len() == 30,
        "RFC 3339, nanoseconds: {seen}"
    );
    source.apply(vec![manifest("web.yaml", "web", "i"), broken("bad.yaml")]);
    assert_eq!(sink.take(), vec![], "an unchanged manifest changes nothing");
}

#[test]
fn a_changed_manifest_stops_the_old_pod_and_starts_the_new_one_after_it() {
    let (sink, statics) = (Sink::default(), StaticPods::default());
    let mut source = FileSource::new(&sink, statics.clone());
    let old = manifest("web.yaml", "web", "i");
    let old_uid = uid(&old);
    source.apply(vec![old]);
    sink.take();
    let new = manifest("web.yaml", "web", "j");
    let new_uid = uid(&new);
    assert_ne!(old_uid, new_uid);
    source.apply(vec![new]);
    assert_eq!(
        sink.take(),
        vec![Call::Update(old_uid.clone(), true)],
        "the new pod waits while the old one of the same name stops"
    );
    assert!(statics.all()[0].removing);
    // The old worker cleans up: the writer's delete finishes it.
    statics.finish(&old_uid);
    source.retire(statics.take_finished());
    assert_eq!(
        sink.take(),
        vec![Call::Gone(old_uid), Call::Update(new_uid.clone(), false)]
    );
    assert_eq!(statics.all().len(), 1);
    assert_eq!(
        statics.all()[0].pod.metadata.uid.as_deref(),
        Some(new_uid.as_str())
    );
}

#[test]
fn a_removed_manifest_stops_its_pod_and_a_broken_one_stops_nothing_else() {
    let (sink, statics) = (Sink::default(), StaticPods::default());
    let mut source = FileSource::new(&sink, statics.clone());
    let (a, b) = (manifest("a.yaml", "a", "i"), manifest("b.yaml", "b", "i"));
    let (a_uid, b_uid) = (uid(&a), uid(&b));
    source.apply(vec![a, b]);
    sink.take();
    source.apply(vec![manifest("a.yaml", "a", "i"), broken("b.yaml")]);
    assert_eq!(
        sink.take(),
        vec![Call::Update(b_uid.clone(), true)],
        "a file that no longer parses no longer defines a pod (kubelet's listing)"
    );
    source.apply(vec![manifest("a.yaml", "a", "i")]);
    assert_eq!(sink.take(), vec![], "a stopping pod is not stopped twice");
    statics.finish(&b_uid);
    source.retire(statics.take_finished());
    assert_eq!(sink.take(), vec![Call::Gone(b_uid)]);
    assert!(statics.contains(&a_uid));
}

#[test]
fn two_manifests_of_one_name_run_the_first_only() {
    let (sink, statics) = (Sink::default(), StaticPods::default());
    let mut source = FileSource::new(&sink, statics);
    let first = manifest("a.yaml", "web", "i");
    let first_uid = uid(&first);
    source.apply(vec![first, manifest("b.yaml", "web", "j")]);
    assert_eq!(sink.take(), vec![Call::Update(first_uid, false)]);
}
