//! The manager's passes against a host double and a pod double: who is evicted, in which
//! order, with which message and grace, and when the node reclaims instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::host::Host;
use super::local_storage::StorageUsage;
use super::manager::{IMMEDIATE_GRACE, Manager, PodEvictor};
use super::observation::{FsReading, NodeReading};
use super::rank::PodUsage;
use crate::config::eviction::{EvictionInputs, EvictionSettings, Resource, resolve};
use crate::events::Events;
use crate::pods::lifecycle::Eviction;
use crate::pressure::Pressure;

#[derive(Default)]
struct FakeHost {
    node: Mutex<NodeReading>,
    /// What the node reads after a reclaim, when set.
    after_reclaim: Mutex<Option<NodeReading>>,
    pods: Mutex<HashMap<String, (PodUsage, StorageUsage)>>,
    reclaims: Mutex<Vec<Resource>>,
}

impl Host for Arc<FakeHost> {
    fn node(&self) -> BoxFuture<'_, NodeReading> {
        let r = self.node.lock().unwrap().clone();
        async move { r }.boxed()
    }

    fn pod_usage<'a>(
        &'a self,
        pod: &'a Pod,
        storage: bool,
    ) -> BoxFuture<'a, (PodUsage, Option<StorageUsage>)> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (u, s) = self
            .pods
            .lock()
            .unwrap()
            .get(&uid)
            .cloned()
            .unwrap_or_default();
        async move { (u, storage.then_some(s)) }.boxed()
    }

    fn reclaim(&self, resource: Resource) -> BoxFuture<'_, ()> {
        self.reclaims.lock().unwrap().push(resource);
        if let Some(r) = self.after_reclaim.lock().unwrap().take() {
            *self.node.lock().unwrap() = r;
        }
        async {}.boxed()
    }
}

#[derive(Default)]
struct FakePods {
    pods: Mutex<Vec<Arc<Pod>>>,
    evicted: Mutex<Vec<(String, Eviction)>>,
}

impl PodEvictor for Arc<FakePods> {
    fn active_pods(&self) -> Vec<Arc<Pod>> {
        let evicted: Vec<String> = self
            .evicted
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _)| u.clone())
            .collect();
        self.pods
            .lock()
            .unwrap()
            .iter()
            .filter(|p| !evicted.contains(p.metadata.uid.as_ref().unwrap()))
            .cloned()
            .collect()
    }

    fn running_pods(&self) -> Vec<Arc<Pod>> {
        self.pods.lock().unwrap().clone()
    }

    fn evict(&self, uid: &str, eviction: Eviction) -> bool {
        self.evicted
            .lock()
            .unwrap()
            .push((uid.to_string(), eviction));
        true
    }

    fn stopped(&self, _uid: &str) -> bool {
        true
    }
}

fn pod(name: &str, spec: &serde_json::Value) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": spec}),
        )
        .unwrap(),
    )
}

fn requests(memory: &str) -> serde_json::Value {
    json!({"containers": [{"name": "c", "image": "i",
        "resources": {"requests": {"memory": memory}, "limits": {"memory": memory}}}]})
}

fn memory(available: u64) -> NodeReading {
    NodeReading {
        memory_capacity: 1 << 30,
        memory_available: Some(available),
        ..NodeReading::default()
    }
}

struct Rig {
    host: Arc<FakeHost>,
    pods: Arc<FakePods>,
    manager: Manager<Arc<FakeHost>, Arc<FakePods>>,
    pressure: watch::Receiver<Pressure>,
    events: crate::events::RecordedEvents,
}

fn rig(settings: EvictionSettings) -> Rig {
    let host = Arc::new(FakeHost::default());
    let pods = Arc::new(FakePods::default());
    let (tx, pressure) = watch::channel(Pressure::default());
    let (events, recorded) = Events::recording();
    let manager = Manager::new(settings, host.clone(), pods.clone(), events, "n".into(), tx);
    Rig {
        host,
        pods,
        manager,
        pressure,
        events: recorded,
    }
}

fn hard(pairs: &[(&str, &str)]) -> EvictionSettings {
    resolve(&EvictionInputs {
        hard: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        ),
        ..EvictionInputs::default()
    })
    .unwrap()
}

fn use_memory(r: &Rig, uid: &str, bytes: u64) {
    r.host.pods.lock().unwrap().insert(
        uid.into(),
        (
            PodUsage {
                memory: Some(bytes),
                // The pod's one container holds it all.
                container_memory: [("c".to_string(), bytes)].into(),
                ..PodUsage::default()
            },
            StorageUsage::default(),
        ),
    );
}

#[tokio::test(start_paused = true)]
async fn a_memory_hog_goes_before_a_guaranteed_pod_and_a_critical_one_never() {
    let mut r = rig(hard(&[("memory.available", "100Mi")]));
    *r.pods.pods.lock().unwrap() = vec![
        pod("guaranteed", &requests("64Mi")),
        pod(
            "hog",
            &json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"memory": "10Mi"}}}]}),
        ),
        pod(
            "critical",
            &json!({"priority": 2_000_000_000, "containers": [{"name": "c", "image": "i"}]}),
        ),
    ];
    use_memory(&r, "guaranteed", 32 << 20);
    use_memory(&r, "hog", 700 << 20);
    use_memory(&r, "critical", 900 << 20);

    *r.host.node.lock().unwrap() = memory(500 << 20);
    assert!(r.manager.pass(Instant::now()).await.is_empty());
    assert!(!r.pressure.borrow().memory);

    *r.host.node.lock().unwrap() = memory(60 << 20);
    assert_eq!(r.manager.pass(Instant::now()).await, ["hog"]);
    assert!(r.pressure.borrow().memory);
    let (uid, e) = r.pods.evicted.lock().unwrap()[0].clone();
    assert_eq!(uid, "hog");
    assert_eq!(
        e.message,
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi. \
         Container c was using 700Mi, request is 10Mi, has larger consumption of memory. "
    );
    assert_eq!(e.grace, IMMEDIATE_GRACE);
    assert!(e.disruption_target);
    let events = r.events.take();
    assert!(
        events.iter().any(|e| e.warning
            && e.reason == "EvictionThresholdMet"
            && e.message == "Attempting to reclaim memory"),
        "{events:?}"
    );
    let evicted = events
        .iter()
        .find(|e| e.warning && e.reason == "Evicted")
        .unwrap_or_else(|| panic!("{events:?}"));
    let annotation = |k: &str| evicted.annotations.get(k).map(String::as_str);
    assert_eq!(annotation("offending_containers"), Some("c"));
    assert_eq!(annotation("offending_containers_usage"), Some("700Mi"));
    assert_eq!(annotation("starved_resource"), Some("memory"));
    assert!(
        r.host.reclaims.lock().unwrap().is_empty(),
        "memory has nothing to reclaim first"
    );

    // Still short: the guaranteed pod is next; the critical one never.
    assert_eq!(r.manager.pass(Instant::now()).await, ["guaranteed"]);
    assert!(r.manager.pass(Instant::now()).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pod_over_its_empty_dir_limit_is_evicted_without_any_pressure() {
    let mut r = rig(hard(&[("memory.available", "100Mi")]));
    *r.pods.pods.lock().unwrap() = vec![pod(
        "writer",
        &json!({"containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]}),
    )];
    *r.host.node.lock().unwrap() = memory(900 << 20);
    let storage = StorageUsage {
        empty_dirs: [("scratch".to_string(), 2 << 20)].into(),
        ..StorageUsage::default()
    };
    r.host
        .pods
        .lock()
        .unwrap()
        .insert("writer".into(), (PodUsage::default(), storage));
    assert_eq!(r.manager.pass(Instant::now()).await, ["writer"]);
    let (_, e) = r.pods.evicted.lock().unwrap()[0].clone();
    assert_eq!(
        e.message,
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
    );
    assert!(!e.disruption_target);
    assert_eq!(e.grace, IMMEDIATE_GRACE);
    assert!(!r.pressure.borrow().any());
}

#[tokio::test(start_paused = true)]
async fn disk_pressure_reclaims_images_first_and_evicts_only_if_that_was_not_enough() {
    let disk = |available| NodeReading {
        nodefs: Some(FsReading {
            capacity_bytes: 1000,
            available_bytes: available,
            inodes: 100,
            inodes_free: 100,
        }),
        ..NodeReading::default()
    };
    let mut r = rig(hard(&[("nodefs.available", "10%")]));
    *r.pods.pods.lock().unwrap() = vec![pod(
        "p",
        &json!({"containers": [{"name": "c", "image": "i"}]}),
    )];
    *r.host.node.lock().unwrap() = disk(50);
    *r.host.after_reclaim.lock().unwrap() = Some(disk(500));
    assert!(r.manager.pass(Instant::now()).await.is_empty());
    assert_eq!(
        *r.host.reclaims.lock().unwrap(),
        [Resource::EphemeralStorage]
    );
    assert!(
        r.pressure.borrow().disk,
        "the condition holds for the transition period"
    );

    *r.host.node.lock().unwrap() = disk(50);
    assert_eq!(r.manager.pass(Instant::now()).await, ["p"]);
    let (_, e) = r.pods.evicted.lock().unwrap()[0].clone();
    assert_eq!(
        e.message,
        "The node was low on resource: ephemeral-storage. Threshold quantity: 100, available: 50. "
    );
}

#[tokio::test(start_paused = true)]
async fn a_soft_threshold_waits_and_gives_at_most_the_max_pod_grace() {
    let s = resolve(&EvictionInputs {
        hard: Some(std::collections::BTreeMap::default()),
        soft: Some([("memory.available".to_string(), "200Mi".to_string())].into()),
        soft_grace: Some([("memory.available".to_string(), Duration::from_secs(30))].into()),
        max_pod_grace_period_seconds: Some(10),
        ..EvictionInputs::default()
    })
    .unwrap();
    let mut r = rig(s);
    *r.pods.pods.lock().unwrap() = vec![pod(
        "slow",
        &json!({"terminationGracePeriodSeconds": 60, "containers": [{"name": "c", "image": "i"}]}),
    )];
    use_memory(&r, "slow", 1);
    *r.host.node.lock().unwrap() = memory(100 << 20);
    let start = Instant::now();
    assert!(r.manager.pass(start).await.is_empty());
    assert!(r.pressure.borrow().memory);
    assert!(
        r.manager
            .pass(start + Duration::from_secs(29))
            .await
            .is_empty()
    );
    assert_eq!(
        r.manager.pass(start + Duration::from_secs(30)).await,
        ["slow"]
    );
    let (_, e) = r.pods.evicted.lock().unwrap()[0].clone();
    assert_eq!(e.grace, Duration::from_secs(10));
}
