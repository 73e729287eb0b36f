//! The pod's own cgroup, as kubelet's pod container manager makes it before the sandbox: below
//! its QoS class's cgroup, limited by what the pod asks (kubelet's `ResourceConfigForPod`):
//!
//! - cpu shares from the pod's cpu request, summed the way the scheduler sums it (containers
//!   and sidecars add up, an init container counts alone with the sidecars before it), plus the
//!   RuntimeClass overhead; pod-level `spec.resources` replaces the sum where it sets a value;
//! - Guaranteed: also the CFS quota from the summed cpu limit and the memory limit;
//! - Burstable: the quota only when every container has a cpu limit, the memory limit only
//!   when every container has a memory limit (or the pod sets one at pod level);
//! - BestEffort: the least cpu shares (2), nothing else;
//! - every class: pids.max from `podPidsLimit` / `--pod-max-pids` when it is positive.
//!
//! The cgroup is written with the cgroupfs driver only: under the systemd driver kubelet asks
//! systemd (over D-Bus) for a slice unit, which this agent does not do; the runtime then makes
//! the slice from the cgroup parent alone and the pod's limits are its containers'.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tracing::{info, warn};

use super::container::qos::{QosClass, qos_class};
use super::context::PodContext;
use crate::cgroups::{
    CPU_PERIOD_US, MIN_CPU_SHARES, ResourceConfig, milli_cpu_to_quota, milli_cpu_to_shares,
};
use crate::pod_resources::{self, CPU, MEMORY};

/// The limits of the pod's cgroup.
pub fn pod_limits(pod: &Pod) -> ResourceConfig {
    let class = qos_class(pod);
    if class == QosClass::BestEffort {
        return ResourceConfig {
            cpu_shares: Some(MIN_CPU_SHARES),
            ..ResourceConfig::default()
        };
    }
    let overhead = |name: &str| overhead(pod, name);
    let cpu_request = pod_amount(pod, CPU, Kind::Request).saturating_add(overhead(CPU));
    let cpu_limit = pod_amount(pod, CPU, Kind::Limit);
    let memory_limit = pod_amount(pod, MEMORY, Kind::Limit);
    let cpu_limited = limits_declared(pod, CPU);
    let memory_limited = limits_declared(pod, MEMORY);
    let shares = milli_cpu_to_shares(cpu_request);
    let quota = Some(milli_cpu_to_quota(
        cpu_limit.saturating_add(overhead(CPU)),
        CPU_PERIOD_US,
    ));
    let memory = Some(memory_limit.saturating_add(overhead(MEMORY)));
    let guaranteed = class == QosClass::Guaranteed;
    ResourceConfig {
        cpu_shares: Some(shares),
        cpu_quota_us: quota.filter(|_| guaranteed || cpu_limited),
        cpu_period_us: Some(CPU_PERIOD_US).filter(|_| guaranteed || cpu_limited),
        memory_bytes: memory.filter(|_| guaranteed || memory_limited),
        pids_max: None,
    }
}

/// The pod's RuntimeClass overhead of `name`.
fn overhead(pod: &Pod, name: &str) -> u64 {
    let list = pod.spec.as_ref().and_then(|s| s.overhead.as_ref());
    amount(name, list.and_then(|l| l.get(name)))
}

#[derive(Clone, Copy)]
enum Kind {
    Request,
    Limit,
}

/// The pod's request or limit of `name`: the pod-level value where `spec.resources` sets it,
/// else summed over the containers.
fn pod_amount(pod: &Pod, name: &str, kind: Kind) -> u64 {
    let read = |r: Option<&ResourceRequirements>| match kind {
        Kind::Request => amount(name, pod_resources::request(r, name)),
        Kind::Limit => amount(name, pod_resources::limit(r, name)),
    };
    let pod_level = read(pod_resources::pod_resources(pod));
    if pod_level > 0 {
        return pod_level;
    }
    pod_resources::aggregate(pod, |c: &Container| read(c.resources.as_ref()))
}

/// Whether every container (init containers included) limits `name`, or the pod does.
fn limits_declared(pod: &Pod, name: &str) -> bool {
    let limited = |r| amount(name, pod_resources::limit(r, name)) > 0;
    limited(pod_resources::pod_resources(pod))
        || pod_resources::containers(pod)
            .iter()
            .chain(pod_resources::init_containers(pod))
            .all(|c| limited(c.resources.as_ref()))
}

/// Millicores of cpu, bytes of anything else.
fn amount(name: &str, q: Option<&Quantity>) -> u64 {
    if name == CPU {
        pod_resources::millis(q)
    } else {
        pod_resources::units(q)
    }
}

/// Makes the pod's cgroup with its limits before its sandbox runs (per-QoS cgroups on), and counts a Burstable pod's cpu request in its class's shares. Idempotent: a
/// pod adopted after a restart gets the same values again. Returns the limits written (None
/// where the agent writes no pod cgroup). Err is kubelet's message, for the
/// FailedCreatePodContainer event.
///
/// # Errors
/// The cgroup could not be made or a limit not written.
pub async fn ensure(ctx: &PodContext, pod: &Pod) -> Result<Option<ResourceConfig>, String> {
    let limits = ResourceConfig {
        pids_max: ctx.cgroups.pod_pids_limit(),
        ..pod_limits(pod)
    };
    write(ctx, pod, &limits)
        .await
        .map_err(|e| format!("unable to ensure pod container exists: {e}"))
}

/// Writes `limits` to the pod's cgroup and the pod's cpu request to the Burstable class's
/// shares: at creation, and for a resize. None where the agent writes no pod cgroup (no
/// cgroup parent). Under the systemd driver the host's cgroups make the slice through systemd.
///
/// # Errors
/// A cgroup file refused the value (the kernel's word).
pub async fn write(
    ctx: &PodContext,
    pod: &Pod,
    limits: &ResourceConfig,
) -> Result<Option<ResourceConfig>, String> {
    let path = super::sandbox::cgroup_parent(&ctx.cgroups, pod);
    if path.is_empty() {
        return Ok(None);
    }
    let burstable = (qos_class(pod) == QosClass::Burstable)
        .then(|| pod_amount(pod, CPU, Kind::Request).saturating_add(overhead(pod, CPU)));
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (fs, qos) = (ctx.cgroup_fs.clone(), ctx.qos_cgroups.clone());
    let written = limits.clone();
    let applied = tokio::task::spawn_blocking(move || {
        fs.apply(&path, &written)?;
        match burstable {
            Some(millis) => qos.burstable_pod(&uid, millis),
            None => Ok(()),
        }
    })
    .await;
    match applied {
        Ok(Ok(())) => Ok(Some(limits.clone())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => {
            warn!(error = %e, "writing the pod's cgroup did not finish");
            Err(e.to_string())
        }
    }
}

/// The pod cgroup's limits while its containers are resized from `current` to `target`: each
/// amount at the larger of the two (an increase applies before the containers grow, a decrease
/// after they shrank), an amount `target` leaves unset kept as it is.
pub fn raised(current: &ResourceConfig, target: &ResourceConfig) -> ResourceConfig {
    fn larger<T: Ord + Copy>(a: Option<T>, b: Option<T>, unlimited: T) -> Option<T> {
        // A quota or memory limit of "none" (-1 / 0 here) is larger than any value.
        let unbounded = |v: Option<T>| v.is_some_and(|v| v == unlimited);
        match (a, b) {
            (_, None) => None,
            (None, b) => b,
            (a, b) if unbounded(a) || unbounded(b) => Some(unlimited),
            (a, b) => a.max(b),
        }
    }
    ResourceConfig {
        cpu_shares: larger(current.cpu_shares, target.cpu_shares, i64::MAX),
        cpu_quota_us: larger(current.cpu_quota_us, target.cpu_quota_us, -1),
        cpu_period_us: target.cpu_period_us,
        memory_bytes: larger(current.memory_bytes, target.memory_bytes, 0),
        pids_max: target.pids_max,
    }
}

/// The limits to write after a resize: `target`, an amount it leaves unset kept as `current`
/// has it (kubelet never removes a pod limit in place).
pub fn settled(current: &ResourceConfig, target: &ResourceConfig) -> ResourceConfig {
    ResourceConfig {
        cpu_shares: target.cpu_shares.or(current.cpu_shares),
        cpu_quota_us: target.cpu_quota_us.or(current.cpu_quota_us),
        cpu_period_us: target.cpu_period_us.or(current.cpu_period_us),
        memory_bytes: target.memory_bytes.or(current.memory_bytes),
        pids_max: target.pids_max.or(current.pids_max),
    }
}

/// kubelet's orphaned pod cgroup cleanup: the cgroups of pods this node no longer has (`known`
/// says whether a UID has a worker or a sandbox), left when a pod went while the agent was
/// down, are removed where empty, and no longer count in the Burstable shares.
pub async fn remove_orphans(ctx: &PodContext, known: impl Fn(&str) -> bool) {
    let (fs, layout) = (ctx.cgroup_fs.clone(), ctx.cgroups.clone());
    let Ok(found) = tokio::task::spawn_blocking(move || layout.pods_in(|p| fs.children(p))).await
    else {
        return;
    };
    let orphans: Vec<(String, String)> = found.into_iter().filter(|(uid, _)| !known(uid)).collect();
    if orphans.is_empty() {
        return;
    }
    let (fs, qos) = (ctx.cgroup_fs.clone(), ctx.qos_cgroups.clone());
    let removed = tokio::task::spawn_blocking(move || {
        for (uid, path) in orphans {
            info!(%uid, cgroup = %path, "removing the cgroup of a pod this node no longer has");
            fs.remove(&path);
            if let Err(e) = qos.pod_gone(&uid) {
                warn!(%uid, error = %e, "the Burstable cgroup's shares were not updated");
            }
        }
    })
    .await;
    if let Err(e) = removed {
        warn!(error = %e, "removing orphaned pod cgroups did not finish");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::pod;
    use serde_json::json;

    fn limits_of(containers: &serde_json::Value) -> ResourceConfig {
        pod_limits(&pod(json!({ "containers": containers })))
    }

    #[test]
    fn guaranteed_pods_get_shares_quota_and_memory_summed_over_containers() {
        let r = json!({"limits": {"cpu": "250m", "memory": "64Mi"}});
        let c = limits_of(&json!([
            {"name": "a", "image": "i", "resources": r},
            {"name": "b", "image": "i", "resources": r},
        ]));
        assert_eq!(
            c,
            ResourceConfig {
                cpu_shares: Some(512),
                cpu_quota_us: Some(50_000),
                cpu_period_us: Some(100_000),
                memory_bytes: Some(128 << 20),
                pids_max: None,
            }
        );
    }

    #[test]
    fn burstable_pods_are_capped_only_where_every_container_declares_a_limit() {
        let c = limits_of(&json!([
            {"name": "a", "image": "i", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "32Mi"}}},
            {"name": "b", "image": "i", "resources": {"limits": {"cpu": "500m"}}},
        ]));
        assert_eq!(
            c.cpu_shares,
            Some(614),
            "100m + 500m (request defaults to limit)"
        );
        assert_eq!(c.cpu_quota_us, Some(150_000));
        assert_eq!(c.memory_bytes, None, "b has no memory limit");
        let c = limits_of(&json!([
            {"name": "a", "image": "i", "resources": {"requests": {"memory": "16Mi"}}},
        ]));
        assert_eq!(c.cpu_shares, Some(2));
        assert_eq!(
            (c.cpu_quota_us, c.cpu_period_us, c.memory_bytes),
            (None, None, None)
        );
    }

    #[test]
    fn best_effort_pods_get_the_least_shares_only() {
        let c = limits_of(&json!([{"name": "a", "image": "i"}]));
        assert_eq!(
            c,
            ResourceConfig {
                cpu_shares: Some(2),
                ..ResourceConfig::default()
            }
        );
    }

    #[test]
    fn init_containers_count_alone_and_overhead_adds_on() {
        let r = |cpu: &str| json!({"limits": {"cpu": cpu, "memory": "10Mi"}});
        let p = pod(json!({
            "initContainers": [{"name": "init", "image": "i", "resources": r("2")}],
            "containers": [{"name": "a", "image": "i", "resources": r("500m")}],
            "overhead": {"cpu": "100m", "memory": "1Mi"},
        }));
        let c = pod_limits(&p);
        assert_eq!(c.cpu_shares, Some(2150), "max(2, 0.5) + 0.1 cores");
        assert_eq!(c.cpu_quota_us, Some(210_000));
        assert_eq!(c.memory_bytes, Some(11 << 20));
    }

    #[test]
    fn pod_level_resources_replace_the_sum() {
        let p = pod(json!({
            "resources": {"limits": {"cpu": "1", "memory": "256Mi"}},
            "containers": [{"name": "a", "image": "i"}],
        }));
        let c = pod_limits(&p);
        assert_eq!(c.cpu_shares, Some(1024));
        assert_eq!(c.cpu_quota_us, Some(100_000));
        assert_eq!(c.memory_bytes, Some(256 << 20));
    }
}
