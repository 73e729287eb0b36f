//! The API side of the benchmark: the namespace of one node's pods, the node itself, and rounds
//! of pods created at once and timed from their create call to the watch event showing Ready.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::sync::mpsc;

use crate::Res;
use crate::wait::{AbortOnDrop, always, ok_or_gone, poll_until};

/// Label on the benchmark's pods: which round they belong to.
const ROUND_LABEL: &str = "bench.minikubelet.io/round";
/// The command of every container, in the pods and in the floor: exits at once on SIGTERM, so
/// deletions do not wait out a grace period.
pub const COMMAND: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(180);

/// One node's side of the cluster: its Node, Lease and the namespace of its pods. Pods are
/// bound to the node, or left to the scheduler with a node selector.
pub struct NodeApi {
    pub kube: kube::Client,
    pub node: String,
    pub namespace: String,
    pub image: String,
    /// Label (key, value) the pods select nodes by; None: bound to `node`.
    pub selector: Option<(String, String)>,
}

/// One round: when each pod was created and first seen Ready.
pub struct Round {
    pub latencies: Vec<Duration>,
    pub all_ready: Duration,
    /// Watch errors during the round (figures are suspect when not 0).
    pub watch_errors: usize,
}

impl NodeApi {
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.kube.clone(), self.namespace())
    }

    /// Refuses to run while another run of the same node renews its Lease.
    pub async fn check_not_running(&self) -> Res<()> {
        let leases: Api<Lease> = Api::namespaced(self.kube.clone(), "kube-node-lease");
        let lease = leases
            .get_opt(&self.node)
            .await
            .map_err(|e| format!("cannot reach the API server: {e}"))?;
        let renewed = lease.and_then(|l| l.spec).and_then(|s| s.renew_time);
        if let Some(renewed) = renewed {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(renewed.0);
            if age.as_secs() < 60 {
                return Err(format!(
                    "another benchmark seems to be running: Lease kube-node-lease/{} was renewed {} s ago",
                    self.node,
                    age.as_secs()
                )
                .into());
            }
        }
        Ok(())
    }

    /// Deletes the namespace (its pods at once: no agent runs for them) and waits until it is
    /// gone.
    pub async fn delete_namespace(&self) -> Res<()> {
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        if namespaces.get_opt(self.namespace()).await?.is_none() {
            return Ok(());
        }
        let force = DeleteParams::default().grace_period(0);
        ok_or_gone(
            self.pods()
                .delete_collection(&force, &ListParams::default())
                .await,
        )?;
        ok_or_gone(
            namespaces
                .delete(self.namespace(), &DeleteParams::default())
                .await,
        )?;
        let (ns, name) = (&namespaces, self.namespace());
        poll_until(
            &format!("namespace {name} to be deleted"),
            NAMESPACE_TIMEOUT,
            always,
            || async move { Ok(ns.get_opt(name).await?.is_none().then_some(())) },
        )
        .await
    }

    /// Creates the namespace and waits for its default service account (pods are admitted only
    /// once the service-account controller made it).
    pub async fn create_namespace(&self) -> Res<()> {
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": self.namespace()}}))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| format!("cannot create namespace {}: {e}", self.namespace()))?;
        let sa: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), self.namespace());
        let sa = &sa;
        poll_until(
            "the namespace's default service account",
            Duration::from_secs(60),
            always,
            || async move { Ok(sa.get_opt("default").await?.map(|_| ())) },
        )
        .await
    }

    pub async fn wait_node_ready(&self, timeout: Duration, alive: impl Fn() -> Res<()>) -> Res<()> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        let (nodes, name) = (&nodes, self.node.as_str());
        poll_until(
            &format!("node {name} to be Ready"),
            timeout,
            alive,
            || async move { Ok(nodes.get_opt(name).await?.filter(node_ready).map(|_| ())) },
        )
        .await
    }

    pub async fn delete_node(&self) -> Res<()> {
        self.delete_named_node(&self.node).await
    }

    /// Creates `n` pods at once and waits until all are Ready (the pods stay).
    pub async fn start_round(
        &self,
        round: &str,
        n: usize,
        timeout: Duration,
        alive: &impl Fn() -> Res<()>,
    ) -> Res<Round> {
        let selector = format!("{ROUND_LABEL}={round}");
        let pods = self.pods();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let errors = Arc::new(AtomicUsize::new(0));
        let _watch = AbortOnDrop(tokio::spawn(watch_ready(
            pods.clone(),
            selector.clone(),
            tx,
            errors.clone(),
        )));
        wait_synced(&mut rx).await?;
        let specs: Vec<(String, Pod)> = (0..n)
            .map(|i| {
                let name = format!("{round}-{i}");
                self.pod(&name, round).map(|p| (name, p))
            })
            .collect::<Res<_>>()?;
        // As many open connections as concurrent creates (kube's client speaks HTTP/1.1), so
        // the creates do not pay for TLS handshakes.
        let warm = ListParams::default().labels(&selector).limit(1);
        let _ = join_all((0..n).map(|_| pods.list_metadata(&warm))).await;
        let post = PostParams::default();
        let created = join_all(specs.iter().map(|(name, pod)| {
            let (pods, post) = (&pods, &post);
            async move {
                let t0 = Instant::now();
                pods.create(post, pod)
                    .await
                    .map(|_| t0)
                    .map_err(|e| format!("creating pod {name} failed: {e}"))
            }
        }))
        .await;
        let mut started: HashMap<String, Instant> = HashMap::new();
        for ((name, _), t0) in specs.iter().zip(created) {
            started.insert(name.clone(), t0?);
        }
        let first_create = started.values().min().copied().unwrap_or_else(Instant::now);
        let deadline = first_create + timeout;
        let mut ready: HashMap<String, Instant> = HashMap::new();
        while ready.len() < n {
            match tokio::time::timeout(crate::wait::POLL, rx.recv()).await {
                Ok(Some(Seen::Ready(name, at))) if started.contains_key(&name) => {
                    ready.insert(name, at);
                }
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => return Err("the pod watch ended unexpectedly".into()),
            }
            alive()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {} s: {} of {n} pods Ready",
                    timeout.as_secs(),
                    ready.len()
                )
                .into());
            }
        }
        let latencies = ready
            .iter()
            .filter_map(|(name, at)| {
                started
                    .get(name)
                    .map(|t0| at.saturating_duration_since(*t0))
            })
            .collect();
        let last = ready.values().max().copied().unwrap_or(first_create);
        Ok(Round {
            latencies,
            all_ready: last.saturating_duration_since(first_create),
            watch_errors: errors.load(Ordering::Relaxed),
        })
    }

    /// Deletes every pod of the namespace (gracefully: the agent stops them) and waits until
    /// they are gone from the API.
    pub async fn delete_pods(&self, timeout: Duration, alive: impl Fn() -> Res<()>) -> Res<()> {
        let pods = self.pods();
        ok_or_gone(
            pods.delete_collection(&DeleteParams::default(), &ListParams::default())
                .await,
        )
        .map_err(|e| format!("deleting the pods failed: {e}"))?;
        let pods = &pods;
        poll_until("the pods to be deleted", timeout, alive, || async move {
            let left = pods.list_metadata(&ListParams::default()).await?;
            Ok(left.items.is_empty().then_some(()))
        })
        .await
    }

    fn pod(&self, name: &str, round: &str) -> Res<Pod> {
        let placement = match &self.selector {
            Some((k, v)) => json!({"nodeSelector": {k: v}}),
            None => json!({"nodeName": self.node}),
        };
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace(), "labels": {ROUND_LABEL: round}},
            "spec": {
                "automountServiceAccountToken": false,
                "enableServiceLinks": false,
                "terminationGracePeriodSeconds": 5,
                "containers": [{
                    "name": "sleep",
                    "image": self.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": COMMAND,
                }],
            },
        });
        if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), placement.as_object()) {
            spec.extend(extra.clone());
        }
        Ok(serde_json::from_value(pod)?)
    }

    /// How many nodes with label `key=value` are Ready.
    pub async fn ready_nodes(&self, key: &str, value: &str) -> Res<usize> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        let list = nodes
            .list(&ListParams::default().labels(&format!("{key}={value}")))
            .await?;
        Ok(list.items.iter().filter(|n| node_ready(n)).count())
    }

    /// Deletes the Node and Lease named `name`.
    pub async fn delete_named_node(&self, name: &str) -> Res<()> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        ok_or_gone(nodes.delete(name, &DeleteParams::default()).await)
            .map_err(|e| format!("cannot delete Node {name}: {e}"))?;
        let leases: Api<Lease> = Api::namespaced(self.kube.clone(), "kube-node-lease");
        ok_or_gone(leases.delete(name, &DeleteParams::default()).await)
            .map_err(|e| format!("cannot delete Lease kube-node-lease/{name}: {e}"))?;
        Ok(())
    }
}

fn pod_ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_ready(n: &Node) -> bool {
    let conditions = n.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What a round's watch reports.
enum Seen {
    /// The initial list is done: creates from now on are seen.
    Synced,
    /// A pod was first seen Ready, at this instant.
    Ready(String, Instant),
}

async fn wait_synced(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Res<()> {
    let synced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(seen) = rx.recv().await {
            if matches!(seen, Seen::Synced) {
                return true;
            }
        }
        false
    })
    .await;
    if synced != Ok(true) {
        return Err("the pod watch did not start within 60 s".into());
    }
    Ok(())
}

/// Watches a round's pods; reports each pod's first Ready once.
async fn watch_ready(
    api: Api<Pod>,
    selector: String,
    tx: mpsc::UnboundedSender<Seen>,
    errors: Arc<AtomicUsize>,
) {
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        let at = Instant::now();
        let pod = match event {
            Ok(Event::InitDone) => {
                if tx.send(Seen::Synced).is_err() {
                    return;
                }
                continue;
            }
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        if pod_ready(&pod) && seen.insert(name.clone()) && tx.send(Seen::Ready(name, at)).is_err() {
            return;
        }
    }
}
