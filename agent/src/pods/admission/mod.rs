//! Admission: a pod bound to this node runs only if kubelet's admit handlers would let it, in
//! kubelet's order: the node's pressure allows it (Evicted: under memory pressure only
//! BestEffort pods that do not tolerate the memory-pressure taint are refused, under disk or
//! pid pressure every pod; critical pods always pass), its OS is this node's (PodOSNotSupported), its sysctls are allowed
//! (SysctlForbidden, [`super::sysctls`]), its requests plus its overhead fit what is left of
//! allocatable and the node is below max-pods (OutOfcpu, OutOfmemory, OutOfpods), and a pending
//! pod's AppArmor profiles can be enforced (AppArmor). Quantities that do not parse refuse the
//! pod; sums saturate, so no spec can wrap them into a small number. A resize is judged by the
//! same handlers again, its turn taken in kubelet's order ([`resize_queue`]).

mod resize_queue;

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::config_source;
use super::container::apparmor;
use super::container::qos::{QosClass, qos_class};
use super::sysctls::{self, Allowlist};
use crate::node_facts::NodeFacts;
use crate::pressure::{Pressure, PressureWatch};
use crate::quantity::parse_scaled;
use crate::shutdown_status::ShutdownWatch;
use resize_queue::{Queue, Waiting};

/// Requests that count against allocatable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Requests {
    fn plus(self, other: Requests) -> Requests {
        Requests {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    fn max(self, other: Requests) -> Requests {
        Requests {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
        }
    }
}

/// Reads cpu and memory from `list` (requests, or limits when no request is given).
fn amounts(
    requests: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
    limits: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Result<Requests, String> {
    let get = |name: &str| {
        requests
            .and_then(|m| m.get(name))
            .or_else(|| limits.and_then(|m| m.get(name)))
            .map(|q| q.0.as_str())
    };
    // A valid quantity too large for u64 counts as u64::MAX: it fits no node.
    let read = |name: &str, scale: u128| match get(name) {
        Some(q) => parse_scaled(q, scale)
            .map(|v| u64::try_from(v).unwrap_or(u64::MAX))
            .map_err(|_| format!("invalid {name} quantity {q:?}")),
        None => Ok(0),
    };
    Ok(Requests {
        cpu_millis: read("cpu", 1000)?,
        memory_bytes: read("memory", 1)?,
    })
}

fn container_requests(c: &Container) -> Result<Requests, String> {
    let r = c.resources.as_ref();
    amounts(
        r.and_then(|r| r.requests.as_ref()),
        r.and_then(|r| r.limits.as_ref()),
    )
}

/// The pod's effective requests: the sum over containers (and sidecars), or the largest init
/// container, whichever is larger, per resource; plus the pod's overhead (its RuntimeClass's).
pub fn pod_requests(pod: &Pod) -> Result<Requests, String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Requests::default());
    };
    let mut sum = Requests::default();
    for c in spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always")),
    ) {
        sum = sum.plus(container_requests(c)?);
    }
    for c in spec.init_containers.iter().flatten() {
        sum = sum.max(container_requests(c)?);
    }
    let overhead = amounts(spec.overhead.as_ref(), None)?;
    Ok(sum.plus(overhead))
}

/// A refusal: kubelet's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    pub message: String,
}

/// Pods admitted and not yet terminated, with their requests (as allocated: a resize changes
/// them).
pub struct Admission {
    admitted: Mutex<HashMap<String, Requests>>,
    sysctls: Allowlist,
    apparmor_enabled: bool,
    pressure: PressureWatch,
    /// Whether logind announced a shutdown: every pod is refused meanwhile.
    shutdown: ShutdownWatch,
    /// Counts the times a pod's share shrank or went, with kubelet's name for the cause
    /// (pods_removed, pod_resized): deferred resizes try again then.
    room: tokio::sync::watch::Sender<(u64, &'static str)>,
    /// Resizes waiting for room, and their pods (locked after `admitted`, never before).
    waiting: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    queue: Queue,
    pods: HashMap<String, Pod>,
}

fn refusal(reason: &str, message: String) -> Refusal {
    Refusal {
        reason: reason.to_string(),
        message,
    }
}

/// kubelet's "Node didn't have enough resource" refusal.
fn refuse(res: &str, requested: u64, used: u64, capacity: u64) -> Refusal {
    refusal(
        &format!("OutOf{res}"),
        format!(
            "Node didn't have enough resource: {res}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    )
}

/// Whether `want` fits beside `used` in the node's allocatable cpu and memory.
fn check_fit(used: Requests, want: Requests, node: &NodeFacts) -> Result<(), Refusal> {
    if used.cpu_millis.saturating_add(want.cpu_millis) > node.allocatable_cpu_millis {
        return Err(refuse(
            "cpu",
            want.cpu_millis,
            used.cpu_millis,
            node.allocatable_cpu_millis,
        ));
    }
    if used.memory_bytes.saturating_add(want.memory_bytes) > node.allocatable_memory_bytes {
        return Err(refuse(
            "memory",
            want.memory_bytes,
            used.memory_bytes,
            node.allocatable_memory_bytes,
        ));
    }
    Ok(())
}

/// kubelet's eviction admit handler: the refusal the node's pressure makes, if any.
fn under_pressure(pod: &Pod, p: Pressure) -> Option<Refusal> {
    if !p.any() || config_source::is_critical(pod) {
        return None;
    }
    if p.memory && !p.disk && !p.pid {
        let tolerated = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_ref())
            .is_some_and(|ts| ts.iter().any(tolerates_memory_pressure));
        if qos_class(pod) != QosClass::BestEffort || tolerated {
            return None;
        }
    }
    Some(refusal(
        "Evicted",
        format!("The node had condition: [{}]. ", p.types().join(" ")),
    ))
}

/// Whether `t` tolerates the taint node.kubernetes.io/memory-pressure:NoSchedule.
fn tolerates_memory_pressure(t: &k8s_openapi::api::core::v1::Toleration) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == "NoSchedule");
    let key = t.key.as_deref().unwrap_or_default();
    let exists = t.operator.as_deref() == Some("Exists");
    let key_ok = key == "node.kubernetes.io/memory-pressure" || (key.is_empty() && exists);
    let value_ok = exists || t.value.as_deref().unwrap_or_default().is_empty();
    effect_ok && key_ok && value_ok
}

impl Refusal {
    /// The pod's status message: kubelet's rejectPod prefixes the event's message.
    pub fn status_message(&self) -> String {
        format!("Pod was rejected: {}", self.message)
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(Allowlist::default(), false)
    }
}

impl Admission {
    /// Admission with the node's sysctl allowlist, on a host with or without AppArmor.
    pub fn new(sysctls: Allowlist, apparmor_enabled: bool) -> Admission {
        Admission {
            admitted: Mutex::default(),
            sysctls,
            apparmor_enabled,
            pressure: crate::pressure::none(),
            shutdown: crate::shutdown_status::never(),
            room: tokio::sync::watch::Sender::new((0, "")),
            waiting: Mutex::default(),
        }
    }

    /// Refuses pods by the node's pressure as `pressure` says it.
    #[must_use]
    pub fn with_pressure(self, pressure: PressureWatch) -> Admission {
        Admission { pressure, ..self }
    }

    /// Refuses every pod while `shutdown` says the node is shutting down.
    #[must_use]
    pub fn with_shutdown(self, shutdown: ShutdownWatch) -> Admission {
        Admission { shutdown, ..self }
    }

    /// Admits `pod` (idempotent per UID) or says why not.
    pub fn admit(&self, pod: &Pod, node: &NodeFacts) -> Result<(), Refusal> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.lock().contains_key(&uid) {
            return Ok(());
        }
        if let Some(refused) = under_pressure(pod, *self.pressure.borrow()) {
            return Err(refused);
        }
        let os = pod
            .spec
            .as_ref()
            .and_then(|s| s.os.as_ref())
            .map(|o| o.name.as_str());
        if os.is_some_and(|os| os != "linux") {
            return Err(Refusal {
                reason: "PodOSNotSupported".to_string(),
                message: "Failed to admit pod as the OS field doesn't match node OS".to_string(),
            });
        }
        self.sysctls
            .check(pod)
            .map_err(|m| refusal(sysctls::FORBIDDEN_REASON, m))?;
        let want = pod_requests(pod).map_err(|m| refusal("UnexpectedAdmissionError", m))?;
        self.fits(&uid, want, node)?;
        let pending = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_none_or(|p| p == "Pending");
        if pending && let Err(m) = apparmor::check(pod, self.apparmor_enabled) {
            self.release(&uid);
            return Err(Refusal {
                reason: apparmor::REFUSED_REASON.to_string(),
                message: m,
            });
        }
        // kubelet's last admit handler, the node shutdown manager's.
        if *self.shutdown.borrow() {
            self.release(&uid);
            return Err(refusal(
                "NodeShutdown",
                "Pod was rejected as the node is shutting down.".to_string(),
            ));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Requests>> {
        self.admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `want` for `uid` when it fits beside the pods admitted already.
    fn fits(&self, uid: &str, want: Requests, node: &NodeFacts) -> Result<(), Refusal> {
        let mut map = self.lock();
        let used = map.values().fold(Requests::default(), |a, r| a.plus(*r));
        if map.len() as u64 >= u64::from(node.max_pods) {
            return Err(refuse(
                "pods",
                1,
                map.len() as u64,
                u64::from(node.max_pods),
            ));
        }
        check_fit(used, want, node)?;
        map.insert(uid.to_string(), want);
        Ok(())
    }

    /// Releases a pod's share (terminated or gone).
    pub fn release(&self, uid: &str) {
        let released = self.lock().remove(uid).is_some();
        self.forget_resize(uid);
        if released {
            self.made_room("pods_removed");
        }
    }

    /// A resize of the admitted pod `pod` to `want`, judged as kubelet's admit handlers judge
    /// it again for the resized pod: the node's pressure allows it, and it fits beside the
    /// other admitted pods and beside the resizes ahead of it in kubelet's order that fit now
    /// ([`resize_queue`]). Accepted, the pod's share is the larger of the old one and `want`
    /// until [`Admission::settle`] (the cgroups still hold the old amounts). Refused, it waits
    /// in the queue until accepted, [`Admission::forget_resize`]d, or the pod is released.
    ///
    /// # Errors
    /// The refusal, which defers the resize.
    pub fn resize(&self, pod: &Pod, want: Requests, node: &NodeFacts) -> Result<(), Refusal> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pressure = *self.pressure.borrow();
        let mut map = self.lock();
        let mut waiting = self.waiters();
        let own = map.get(&uid).copied().unwrap_or_default();
        let entry = Waiting {
            want,
            raises: want.cpu_millis > own.cpu_millis || want.memory_bytes > own.memory_bytes,
            priority: pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
            guaranteed: qos_class(pod) == QosClass::Guaranteed,
            since: 0,
        };
        waiting.queue.enter(&uid, entry);
        waiting.pods.insert(uid.clone(), pod.clone());
        if let Some(refused) = under_pressure(pod, pressure) {
            return Err(refused);
        }
        let used = waiting.queue.room_ahead(
            &uid,
            &map,
            |u| {
                waiting
                    .pods
                    .get(u)
                    .is_some_and(|p| under_pressure(p, pressure).is_none())
            },
            |used, want| check_fit(used, want, node).is_ok(),
        );
        check_fit(used, want, node)?;
        waiting.queue.leave(&uid);
        waiting.pods.remove(&uid);
        map.insert(uid, own.max(want));
        Ok(())
    }

    /// The pod's resize waits no more (reverted, infeasible, or the pod ends).
    pub fn forget_resize(&self, uid: &str) {
        let mut waiting = self.waiters();
        waiting.queue.leave(uid);
        waiting.pods.remove(uid);
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pod's resize is applied: its share is `applied` now.
    pub fn settle(&self, uid: &str, applied: Requests) {
        let shrank = {
            let mut map = self.lock();
            match map.get_mut(uid) {
                Some(share) if *share != applied => {
                    let shrank = applied.cpu_millis < share.cpu_millis
                        || applied.memory_bytes < share.memory_bytes;
                    *share = applied;
                    shrank
                }
                _ => false,
            }
        };
        if shrank {
            self.made_room("pod_resized");
        }
    }

    /// Changes whenever a pod's share shrinks or goes; holds what made the last room.
    pub fn room(&self) -> tokio::sync::watch::Receiver<(u64, &'static str)> {
        self.room.subscribe()
    }

    fn made_room(&self, trigger: &'static str) {
        self.room
            .send_modify(|(n, why)| (*n, *why) = (n.wrapping_add(1), trigger));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "n".into(),
            host_ip: "127.0.0.1".into(),
            allocatable_cpu_millis: 1000,
            allocatable_memory_bytes: 1 << 30,
            absolute_allocatable_cpu_millis: 1000,
            absolute_allocatable_memory_bytes: 1 << 30,
            memory_capacity_bytes: 2 << 30,
            max_pods: 2,
        }
    }

    fn pod(uid: &str, cpu: &str, mem: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"uid": uid, "name": uid},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}))
        .unwrap()
    }

    #[test]
    fn refuses_with_kubelets_reasons() {
        let a = Admission::default();
        assert_eq!(a.admit(&pod("a", "600m", "100Mi"), &node()), Ok(()));
        let e = a.admit(&pod("b", "600m", "100Mi"), &node()).unwrap_err();
        assert_eq!(e.reason, "OutOfcpu");
        assert!(
            e.message
                .contains("requested: 600, used: 600, capacity: 1000"),
            "{}",
            e.message
        );
        let e = a.admit(&pod("b", "100m", "2Gi"), &node()).unwrap_err();
        assert_eq!(e.reason, "OutOfmemory");
        assert_eq!(a.admit(&pod("b", "100m", "100Mi"), &node()), Ok(()));
        assert_eq!(
            a.admit(&pod("c", "0", "0"), &node()).unwrap_err().reason,
            "OutOfpods"
        );
        a.release("a");
        assert_eq!(a.admit(&pod("c", "0", "0"), &node()), Ok(()));
        assert_eq!(
            a.admit(&pod("c", "0", "0"), &node()),
            Ok(()),
            "idempotent per UID"
        );
    }

    #[test]
    fn init_containers_count_as_their_maximum() {
        let p: Pod = serde_json::from_value(json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "500m"}}},
                           {"name": "b", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}}]}}))
        .unwrap();
        let r = pod_requests(&p).unwrap();
        assert_eq!(r.cpu_millis, 2000);
        assert_eq!(r.memory_bytes, 1 << 30);
    }

    #[test]
    fn overhead_counts_and_huge_requests_saturate_instead_of_wrapping() {
        let p: Pod = serde_json::from_value(json!({"spec": {
            "overhead": {"cpu": "250m", "memory": "64Mi"},
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]}}))
        .unwrap();
        let r = pod_requests(&p).unwrap();
        assert_eq!(r.cpu_millis, 1250);
        assert_eq!(r.memory_bytes, (1 << 30) + (64 << 20));
        let huge: Pod =
            serde_json::from_value(json!({"metadata": {"uid": "h", "name": "h"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"memory": "8E"}}},
                           {"name": "b", "resources": {"requests": {"memory": "8E"}}},
                           {"name": "c", "resources": {"requests": {"memory": "8E"}}}]}}))
            .unwrap();
        assert_eq!(pod_requests(&huge).unwrap().memory_bytes, u64::MAX);
        let e = Admission::default().admit(&huge, &node()).unwrap_err();
        assert_eq!(e.reason, "OutOfmemory");
    }

    #[test]
    fn unparseable_quantities_refuse_the_pod() {
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"uid": "q", "name": "q"}, "spec": {
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "lots"}}}]}}))
            .unwrap();
        let e = Admission::default().admit(&p, &node()).unwrap_err();
        assert_eq!(e.reason, "UnexpectedAdmissionError");
        assert!(
            e.message.contains("invalid cpu quantity \"lots\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_shutting_down_node_refuses_every_pod_and_keeps_no_share() {
        let (tx, rx) = tokio::sync::watch::channel(true);
        let a = Admission::default().with_shutdown(rx);
        let e = a.admit(&pod("p", "100m", "1"), &node()).unwrap_err();
        assert_eq!(e.reason, "NodeShutdown");
        assert_eq!(
            e.status_message(),
            "Pod was rejected: Pod was rejected as the node is shutting down."
        );
        assert!(a.lock().is_empty(), "a refused pod holds no share");
        tx.send_replace(false);
        assert_eq!(a.admit(&pod("p", "100m", "1"), &node()), Ok(()));
    }

    #[test]
    fn pressure_refuses_what_kubelets_eviction_handler_refuses() {
        let (tx, rx) = tokio::sync::watch::channel(Pressure {
            memory: true,
            ..Pressure::default()
        });
        let a = Admission::default().with_pressure(rx);
        let best_effort = |uid: &str, tolerations: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"uid": uid, "name": uid},
                "spec": {"containers": [{"name": "c"}], "tolerations": tolerations}}))
            .unwrap()
        };
        let e = a.admit(&best_effort("be", json!([])), &node()).unwrap_err();
        assert_eq!(e.reason, "Evicted");
        assert_eq!(e.message, "The node had condition: [MemoryPressure]. ");
        let tolerant = json!([{"key": "node.kubernetes.io/memory-pressure",
            "operator": "Exists", "effect": "NoSchedule"}]);
        assert_eq!(a.admit(&best_effort("tolerant", tolerant), &node()), Ok(()));
        a.release("tolerant");
        let wrong = json!([{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}]);
        assert!(a.admit(&best_effort("wrong", wrong), &node()).is_err());
        assert_eq!(a.admit(&pod("burstable", "1m", "1"), &node()), Ok(()));
        a.release("burstable");
        tx.send_replace(Pressure {
            memory: true,
            disk: true,
            pid: false,
        });
        let e = a.admit(&pod("any", "1m", "1"), &node()).unwrap_err();
        assert_eq!(
            e.message,
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
        let critical: Pod = serde_json::from_value(json!({"metadata": {"uid": "c", "name": "c"},
            "spec": {"priority": 2_000_001_000, "containers": [{"name": "c"}]}}))
        .unwrap();
        assert_eq!(a.admit(&critical, &node()), Ok(()));
        tx.send_replace(Pressure::default());
        assert_eq!(a.admit(&best_effort("later", json!([])), &node()), Ok(()));
    }

    #[test]
    fn os_sysctls_and_apparmor_are_checked_with_kubelets_reasons() {
        let a = Admission::new(Allowlist::new(&[]).unwrap(), false);
        let windows: Pod = serde_json::from_value(json!({"metadata": {"uid": "w", "name": "w"},
            "spec": {"os": {"name": "windows"}, "containers": []}}))
        .unwrap();
        assert_eq!(
            a.admit(&windows, &node()).unwrap_err().reason,
            "PodOSNotSupported"
        );
        let sysctl: Pod = serde_json::from_value(json!({"metadata": {"uid": "s", "name": "s"},
            "spec": {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
                "containers": []}}))
        .unwrap();
        let e = a.admit(&sysctl, &node()).unwrap_err();
        assert_eq!(e.reason, "SysctlForbidden");
        assert_eq!(
            e.message,
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        assert_eq!(
            e.status_message(),
            "Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        let armored: Pod = serde_json::from_value(json!({"metadata": {"uid": "a", "name": "a"},
            "spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c"}]}}))
        .unwrap();
        let e = a.admit(&armored, &node()).unwrap_err();
        assert_eq!(e.reason, "AppArmor");
        assert_eq!(
            a.admit(&armored, &node()).unwrap_err().reason,
            "AppArmor",
            "nothing was kept"
        );
        assert_eq!(a.admit(&pod("ok", "1m", "1"), &node()), Ok(()));
    }
}
