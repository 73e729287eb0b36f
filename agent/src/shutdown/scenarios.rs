//! The manager against the recording logind and a pod double, in paused time: the inhibitor
//! taken and released, the pods ended band by band with kubelet's reason, message and grace,
//! a band that overstays its grace, a cancellation, a short logind delay raised (or not), a
//! lost bus, no logind at all.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::manager::{MESSAGE, Manager, REASON, run};
use super::record::StateFile;
use super::recording::RecordingLogind;
use crate::config::shutdown::{PriorityGrace, SYSTEM_CRITICAL_PRIORITY, ShutdownSettings};
use crate::events::{Events, RecordedEvents};
use crate::eviction::PodEvictor;
use crate::pods::lifecycle::Eviction;

/// Pods that stop as soon as they are asked, unless marked stuck.
#[derive(Default)]
struct FakePods {
    pods: Vec<Arc<Pod>>,
    stuck: HashSet<String>,
    asked: Mutex<Vec<(String, Eviction, Instant)>>,
}

impl PodEvictor for Arc<FakePods> {
    fn active_pods(&self) -> Vec<Arc<Pod>> {
        // A shutdown ends the running pods, terminating ones included: not these.
        Vec::new()
    }

    fn running_pods(&self) -> Vec<Arc<Pod>> {
        self.pods.clone()
    }

    fn evict(&self, uid: &str, eviction: Eviction) -> bool {
        self.asked
            .lock()
            .unwrap()
            .push((uid.to_string(), eviction, Instant::now()));
        true
    }

    fn stopped(&self, uid: &str) -> bool {
        !self.stuck.contains(uid) && self.asked.lock().unwrap().iter().any(|(u, ..)| u == uid)
    }
}

fn pod(name: &str, priority: Option<i32>) -> Arc<Pod> {
    let mut spec = json!({"containers": [{"name": "c", "image": "i"}]});
    if let Some(p) = priority {
        spec["priority"] = json!(p);
    }
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "uid": name}, "spec": spec}))
            .unwrap(),
    )
}

/// kubelet's two bands for shutdownGracePeriod 30s, shutdownGracePeriodCriticalPods 10s.
fn two_bands() -> ShutdownSettings {
    ShutdownSettings {
        bands: vec![
            PriorityGrace {
                priority: 0,
                grace: Duration::from_secs(20),
            },
            PriorityGrace {
                priority: SYSTEM_CRITICAL_PRIORITY,
                grace: Duration::from_secs(10),
            },
        ],
    }
}

struct Rig {
    logind: RecordingLogind,
    pods: Arc<FakePods>,
    shutting_down: watch::Receiver<bool>,
    events: RecordedEvents,
    state: StateFile,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

fn start(logind: RecordingLogind, pods: FakePods) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pods = Arc::new(pods);
    let (tx, shutting_down) = watch::channel(false);
    let (events, recorded) = Events::recording();
    let state = StateFile::under(dir.path());
    let m = Manager {
        settings: two_bands(),
        connector: logind.clone(),
        pods: pods.clone(),
        events,
        node_name: "n".into(),
        shutting_down: tx,
        state_file: state.clone(),
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(m, cancel.clone()));
    Rig {
        logind,
        pods,
        shutting_down,
        events: recorded,
        state,
        cancel,
        task,
        _dir: dir,
    }
}

/// Lets virtual time pass in 10 ms steps until `check` holds (at most a virtual minute).
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

fn asked(r: &Rig) -> Vec<(String, Eviction, Instant)> {
    r.pods.asked.lock().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_ends_the_pods_band_by_band_then_lets_logind_go_on() {
    let pods = FakePods {
        pods: vec![
            pod("dns", Some(SYSTEM_CRITICAL_PRIORITY)),
            pod("app", None),
            pod("batch", Some(-10)),
        ],
        ..FakePods::default()
    };
    let mut r = start(RecordingLogind::with_delay(Duration::from_secs(60)), pods);
    until("the inhibitor is held", || r.logind.held() == 1).await;
    assert_eq!(
        r.logind.calls(),
        ["connect", "delay", "inhibit", "subscribe"]
    );
    assert!(!*r.shutting_down.borrow());

    r.logind.announce(true);
    until("the inhibitor is released", || r.logind.held() == 0).await;
    assert!(*r.shutting_down.borrow(), "the node is shutting down");
    let asked = asked(&r);
    let order: Vec<&str> = asked.iter().map(|(u, ..)| u.as_str()).collect();
    assert_eq!(order, ["app", "batch", "dns"], "the lowest band first");
    for (uid, e, _) in &asked {
        assert_eq!(e.reason, REASON);
        assert_eq!(e.message, MESSAGE);
        assert!(e.disruption_target);
        let want = if uid == "dns" { 10 } else { 20 };
        assert_eq!(e.grace, Duration::from_secs(want), "{uid}");
    }
    let said = r.events.take();
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].reason, "Shutdown");
    assert_eq!(said[0].message, "Shutdown manager detected shutdown event");
    assert!(!said[0].warning);
    let record = r.state.load().unwrap();
    assert!(record.start.is_some() && record.end >= record.start);

    // A cancellation: the node is back and holds a new inhibitor.
    r.logind.announce(false);
    until("a new inhibitor", || r.logind.held() == 1).await;
    assert!(!*r.shutting_down.borrow());
    let said = r.events.take();
    assert_eq!(
        said[0].message,
        "Shutdown manager detected shutdown cancellation"
    );
    r.cancel.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_band_that_does_not_stop_is_left_when_its_grace_runs_out() {
    let pods = FakePods {
        pods: vec![
            pod("stuck", None),
            pod("dns", Some(SYSTEM_CRITICAL_PRIORITY)),
        ],
        stuck: ["stuck".to_string()].into(),
        ..FakePods::default()
    };
    let r = start(RecordingLogind::with_delay(Duration::from_secs(30)), pods);
    until("the inhibitor is held", || r.logind.held() == 1).await;
    r.logind.announce(true);
    until("the inhibitor is released", || r.logind.held() == 0).await;
    let asked = asked(&r);
    assert_eq!(asked.len(), 2);
    let waited = asked[1].2 - asked[0].2;
    assert!(
        waited >= Duration::from_secs(20) && waited < Duration::from_secs(21),
        "the critical band starts when the first band's 20 s ran out: {waited:?}"
    );
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_short_logind_delay_is_raised_by_the_dropin_and_a_reload() {
    let logind =
        RecordingLogind::with_delay(Duration::from_secs(5)).reloads_to(Duration::from_secs(30));
    let r = start(logind, FakePods::default());
    until("the inhibitor is held", || r.logind.held() == 1).await;
    assert_eq!(
        r.logind.calls(),
        [
            "connect",
            "delay",
            "override 30s",
            "reload",
            "delay",
            "inhibit",
            "subscribe"
        ]
    );
    r.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_delay_logind_will_not_raise_stops_the_manager_without_an_inhibitor() {
    let r = start(
        RecordingLogind::with_delay(Duration::from_secs(5)),
        FakePods::default(),
    );
    r.task.await.unwrap();
    let calls = r.logind.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "delay").count(),
        6,
        "{calls:?}"
    );
    assert!(!calls.contains(&"inhibit".to_string()), "{calls:?}");
    assert_eq!(r.logind.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn without_logind_the_manager_says_so_and_stops() {
    let r = start(RecordingLogind::unreachable(), FakePods::default());
    r.task.await.unwrap();
    assert_eq!(r.logind.calls(), ["connect"], "one try, no retries");
    assert!(!*r.shutting_down.borrow());
}

#[tokio::test(start_paused = true)]
async fn a_lost_bus_is_reconnected_and_the_inhibitor_taken_again() {
    let r = start(
        RecordingLogind::with_delay(Duration::from_secs(60)),
        FakePods::default(),
    );
    until("the inhibitor is held", || r.logind.held() == 1).await;
    r.logind.hang_up();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.logind.held(),
        1,
        "the old inhibitor is kept until a new one is held"
    );
    until("a second connection", || {
        r.logind.calls().iter().filter(|c| *c == "connect").count() == 2
    })
    .await;
    until("a second inhibitor", || {
        r.logind.calls().iter().filter(|c| *c == "inhibit").count() == 2
    })
    .await;
    until("only the new one held", || r.logind.held() == 1).await;
    r.cancel.cancel();
    r.task.await.unwrap();
}
