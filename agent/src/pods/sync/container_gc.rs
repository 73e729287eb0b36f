//! kubelet's container garbage collection, for one running pod: of each container name's
//! exited instances older than `MinAge` (`--minimum-container-ttl-duration`, 0), across all
//! the pod's sandboxes, the newest `MaxPerPodContainer` stay
//! (`--maximum-dead-containers-per-container`, 1: its `lastState` and `kubectl logs
//! --previous`) and the older ones are removed with their log files (the CRI log path and its
//! rotated files); then sandboxes older than the newest that are no longer ready and hold no
//! container are removed. The node-wide limit (`--maximum-dead-containers`) is
//! [`crate::pods::dead_containers`]'s, over what [`evictable`] leaves. Everything of the pod
//! goes when the pod ends ([`crate::pods::kill`]).
//!
//! The log paths come from the runtime's status: files the runtime writes below the agent's
//! /var/log/pods, which no container mounts unless a hostPath pod mounts the host's logs.

use std::collections::HashSet;

use crate::config::container_gc::ContainerGcPolicy;
use std::path::Path;

use tracing::{debug, warn};

use super::super::context::PodContext;
use super::super::log_rotation::rotated_files;
use super::super::observe::{ContainerView, ObservedPod, SandboxView};

/// What the collection removes.
#[derive(Debug, Default)]
pub(super) struct Garbage<'a> {
    pub containers: Vec<&'a ContainerView>,
    pub sandboxes: Vec<&'a SandboxView>,
}

/// kubelet's evict units: the pod's exited instances created before `now_ns - min_age`, one
/// list per container name, newest first (as observed).
pub(crate) fn evictable<'a>(
    runtime: &'a ObservedPod,
    policy: &ContainerGcPolicy,
    now_ns: i64,
) -> Vec<Vec<&'a ContainerView>> {
    let min_age = i64::try_from(policy.min_age.as_nanos()).unwrap_or(i64::MAX);
    // With no minimum age every dead instance counts, whatever the two clocks say.
    let newest = if min_age == 0 {
        i64::MAX
    } else {
        now_ns.saturating_sub(min_age)
    };
    let mut units: Vec<Vec<&ContainerView>> = Vec::new();
    for c in runtime
        .containers
        .iter()
        .filter(|c| c.exited() && c.created_at <= newest)
    {
        match units.iter_mut().find(|u| u[0].name == c.name) {
            Some(u) => u.push(c),
            None => units.push(vec![c]),
        }
    }
    units
}

/// The dead instances and sandboxes `runtime` holds beyond what the pod keeps.
pub(super) fn garbage<'a>(
    runtime: &'a ObservedPod,
    policy: &ContainerGcPolicy,
    now_ns: i64,
) -> Garbage<'a> {
    let mut containers = Vec::new();
    if let Some(keep) = policy.max_per_container {
        for unit in evictable(runtime, policy, now_ns) {
            containers.extend(unit.into_iter().skip(keep));
        }
    }
    let removed: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
    let occupied: HashSet<&str> = runtime
        .containers
        .iter()
        .filter(|c| !removed.contains(c.id.as_str()))
        .map(|c| c.sandbox_id.as_str())
        .collect();
    let sandboxes = runtime
        .sandboxes
        .iter()
        .skip(1)
        .filter(|s| !s.ready && !occupied.contains(s.id.as_str()))
        .collect();
    Garbage {
        containers,
        sandboxes,
    }
}

/// Removes the pod's garbage; a failure is logged and tried again at the next sync.
pub(super) async fn collect(ctx: &PodContext, runtime: &ObservedPod) {
    let g = garbage(runtime, &ctx.container_gc, epoch_nanos(ctx.clock.now()));
    for c in g.containers {
        remove_container(ctx, c).await;
    }
    for s in g.sandboxes {
        debug!(sandbox = %s.id, "removing an old sandbox");
        if let Err(e) = ctx.cri.remove_pod_sandbox(&s.id).await
            && !e.is_not_found()
        {
            warn!(sandbox = %s.id, error = %e, "cannot remove an old sandbox");
        }
    }
}

/// `t` in nanoseconds since the epoch, as the runtime reports creation times.
pub(crate) fn epoch_nanos(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// kubelet's node-wide limit over every pod's evict units (each newest first): when they hold
/// more than `max`, each unit keeps `max / units` (at least 1), and if that is still too many
/// the oldest of the rest go.
pub(crate) fn beyond_node_limit(
    units: Vec<Vec<&ContainerView>>,
    max: usize,
) -> Vec<&ContainerView> {
    let total: usize = units.iter().map(Vec::len).sum();
    if total <= max {
        return Vec::new();
    }
    let per_unit = (max / units.len().max(1)).max(1);
    let (mut kept, mut removed) = (Vec::new(), Vec::new());
    for unit in units {
        for (i, c) in unit.into_iter().enumerate() {
            if i < per_unit {
                kept.push(c);
            } else {
                removed.push(c);
            }
        }
    }
    if kept.len() > max {
        kept.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        removed.extend(kept.drain(max..));
    }
    removed
}

/// Removes a dead instance and then its log files (kubelet's removeContainer).
pub(crate) async fn remove_container(ctx: &PodContext, c: &ContainerView) {
    debug!(container = %c.name, id = %c.id, "removing a dead container instance");
    if let Err(e) = ctx.cri.remove_container(&c.id).await
        && !e.is_not_found()
    {
        warn!(container = %c.name, error = %e, "cannot remove a dead container instance");
        return;
    }
    let log = Path::new(&c.log_path).to_path_buf();
    if !below(&log, &ctx.log_root) {
        if !c.log_path.is_empty() {
            warn!(container = %c.name, path = %c.log_path, "a log path outside the pod log root is left alone");
        }
        return;
    }
    let removed = tokio::task::spawn_blocking(move || remove_logs(&log)).await;
    if let Ok(Err(e)) = removed {
        warn!(container = %c.name, error = %e, "cannot remove the logs of a removed container");
    }
}

/// Whether `path` is an absolute path strictly below `root` with no `..` or `.` in it.
fn below(path: &Path, root: &Path) -> bool {
    use std::path::Component;
    path.is_absolute()
        && path.starts_with(root)
        && path != root
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// The log file and its rotated files; a file already gone is no error.
fn remove_logs(log: &Path) -> std::io::Result<()> {
    let mut files = rotated_files(log).unwrap_or_default();
    files.push(log.to_path_buf());
    for f in files {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_client::api::ContainerState;

    fn container(id: &str, name: &str, sandbox: &str, state: ContainerState) -> ContainerView {
        ContainerView {
            id: id.into(),
            name: name.into(),
            sandbox_id: sandbox.into(),
            restart_count: 0,
            hash: String::new(),
            state,
            created_at: 0,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            image: String::new(),
            image_ref: String::new(),
            log_path: String::new(),
        }
    }

    fn sandbox(id: &str, ready: bool) -> SandboxView {
        SandboxView {
            id: id.into(),
            attempt: 0,
            ready,
            created_at: 0,
        }
    }

    fn ids<T>(items: &[&T], id: impl Fn(&T) -> &str) -> Vec<String> {
        items.iter().map(|x| id(x).to_string()).collect()
    }

    #[test]
    fn one_exited_instance_per_name_stays_across_sandboxes() {
        use ContainerState::{ContainerExited as Exited, ContainerRunning as Running};
        let runtime = ObservedPod {
            sandboxes: vec![
                sandbox("s2", true),
                sandbox("s1", false),
                sandbox("s0", false),
            ],
            containers: vec![
                container("app-3", "app", "s2", Running),
                container("app-2", "app", "s2", Exited),
                container("app-1", "app", "s1", Exited),
                container("app-0", "app", "s0", Exited),
                container("init-0", "init", "s0", Exited),
                container("side-0", "side", "s1", Running),
            ],
        };
        let g = garbage(&runtime, &ContainerGcPolicy::default(), 0);
        assert_eq!(ids(&g.containers, |c| &c.id), ["app-1", "app-0"]);
        assert!(
            g.sandboxes.is_empty(),
            "s1 runs a sidecar still, s0 holds the init container's last instance"
        );
    }

    #[test]
    fn an_old_sandbox_left_empty_goes_and_the_newest_stays() {
        use ContainerState::ContainerExited as Exited;
        let runtime = ObservedPod {
            sandboxes: vec![
                sandbox("s2", false),
                sandbox("s1", false),
                sandbox("s0", true),
            ],
            containers: vec![
                container("app-2", "app", "s2", Exited),
                container("app-1", "app", "s1", Exited),
            ],
        };
        let g = garbage(&runtime, &ContainerGcPolicy::default(), 0);
        assert_eq!(ids(&g.containers, |c| &c.id), ["app-1"]);
        assert_eq!(
            ids(&g.sandboxes, |s| &s.id),
            ["s1"],
            "s2 is the newest; s0 is ready (a runtime oddity, left alone)"
        );
    }

    fn exited_at(id: &str, name: &str, created: i64) -> ContainerView {
        ContainerView {
            created_at: created,
            ..container(id, name, "s", ContainerState::ContainerExited)
        }
    }

    #[test]
    fn min_age_and_max_per_container_are_kubelets() {
        let runtime = ObservedPod {
            sandboxes: vec![sandbox("s", true)],
            containers: vec![
                exited_at("a-3", "a", 300),
                exited_at("a-2", "a", 200),
                exited_at("a-1", "a", 100),
                exited_at("b-1", "b", 150),
            ],
        };
        let keep_two = ContainerGcPolicy {
            max_per_container: Some(2),
            ..ContainerGcPolicy::default()
        };
        let g = garbage(&runtime, &keep_two, 1000);
        assert_eq!(ids(&g.containers, |c| &c.id), ["a-1"]);
        // Younger than the minimum age (created after now - 750 = 250): not even counted.
        let young = ContainerGcPolicy {
            min_age: std::time::Duration::from_nanos(750),
            max_per_container: Some(0),
            max_containers: None,
        };
        let g = garbage(&runtime, &young, 1000);
        assert_eq!(ids(&g.containers, |c| &c.id), ["a-2", "a-1", "b-1"]);
        let unlimited = ContainerGcPolicy {
            max_per_container: None,
            ..ContainerGcPolicy::default()
        };
        assert!(garbage(&runtime, &unlimited, 1000).containers.is_empty());
    }

    #[test]
    fn the_node_limit_keeps_an_equal_share_then_the_newest() {
        let (a2, a1, b1, c1) = (
            exited_at("a-2", "a", 200),
            exited_at("a-1", "a", 100),
            exited_at("b-1", "b", 150),
            exited_at("c-1", "c", 50),
        );
        let units = || vec![vec![&a2, &a1], vec![&b1], vec![&c1]];
        assert!(
            beyond_node_limit(units(), 4).is_empty(),
            "4 held, 4 allowed"
        );
        // 3 allowed over 3 units: one each, so a's older instance goes.
        assert_eq!(ids(&beyond_node_limit(units(), 3), |c| &c.id), ["a-1"]);
        // 1 allowed: one each is still 3, so the oldest two of those go as well.
        let removed = beyond_node_limit(units(), 1);
        let mut got = ids(&removed, |c| &c.id);
        got.sort();
        assert_eq!(got, ["a-1", "b-1", "c-1"], "a-2, the newest, stays");
        assert_eq!(beyond_node_limit(units(), 0).len(), 4);
    }

    #[test]
    fn only_log_paths_below_the_log_root_are_touched() {
        let root = Path::new("/var/log/pods");
        assert!(below(Path::new("/var/log/pods/ns_p_u/app/0.log"), root));
        assert!(!below(Path::new("/var/log/pods"), root));
        assert!(!below(Path::new("/var/log/pods/../../etc/passwd"), root));
        assert!(!below(Path::new("/var/log/podsx/a.log"), root));
        assert!(!below(Path::new("app/0.log"), root));
        assert!(!below(Path::new(""), root));
    }

    #[test]
    fn logs_go_with_their_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        for f in ["0.log", "0.log.20261203-010203", "1.log"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        remove_logs(&log).unwrap();
        remove_logs(&log).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["1.log"]);
    }
}
