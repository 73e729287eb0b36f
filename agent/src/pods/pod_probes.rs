//! The probe workers of one pod ([`PodProbes`]; how one probe runs is [`super::probe`]):
//! started for each running container that declares probes, stopped when that container stops. Every change wakes the pod worker, which takes a
//! [`ProbeResults`] snapshot before each sync: the probes never write into the worker's state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus, Probe};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::context::PodContext;
use super::observe::ObservedPod;
use super::probe::worker::instant_from_system_time;
use super::probe::{ProbeHandle, ProbeKind, ProbeState, ProbeTarget, ProbeWorker, StartedGate};
use super::runtime_exec::RuntimeExec;

struct Entry {
    name: String,
    container_id: String,
    kind: ProbeKind,
    rx: watch::Receiver<ProbeState>,
    _handle: ProbeHandle,
    forward: JoinHandle<()>,
    seen: Option<ProbeState>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.forward.abort();
    }
}

/// The probe workers of one pod.
pub struct PodProbes {
    wake: Arc<Notify>,
    entries: Vec<Entry>,
}

fn probe_of(c: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => c.startup_probe.as_ref(),
        ProbeKind::Liveness => c.liveness_probe.as_ref(),
        ProbeKind::Readiness => c.readiness_probe.as_ref(),
    }
}

impl PodProbes {
    pub fn new(wake: Arc<Notify>) -> Self {
        PodProbes {
            wake,
            entries: Vec::new(),
        }
    }

    pub fn stop_all(&mut self) {
        self.entries.clear();
    }

    /// The workers' latest results, for the sync about to run; emits Unhealthy events for
    /// results not seen before.
    pub fn collect(&mut self, ctx: &PodContext, pod: &Pod) -> ProbeResults {
        let mut results = ProbeResults::default();
        for e in &mut self.entries {
            let current = e.rx.borrow().clone();
            let fresh = e.seen.as_ref() != Some(&current);
            results.results.push(ProbeResult {
                container: e.name.clone(),
                container_id: e.container_id.clone(),
                kind: e.kind,
                success: current.result,
            });
            if fresh && !current.last_message.is_empty() {
                // kubelet's two texts: a probe that ran and failed, and one that could not run
                // (its result is thrown away, so it neither passes nor counts as a failure).
                if current.warned {
                    let message = format!("{} probe warning: {}", e.kind, current.last_message);
                    ctx.events
                        .warning(pod, Some(&e.name), "ProbeWarning", message);
                    e.seen = Some(current);
                    continue;
                }
                let message = if current.errored {
                    format!(
                        "{} probe errored and resulted in unknown state: {}",
                        e.kind, current.last_message
                    )
                } else {
                    format!("{} probe failed: {}", e.kind, current.last_message)
                };
                ctx.events.warning(pod, Some(&e.name), "Unhealthy", message);
            }
            e.seen = Some(current);
        }
        results
    }

    /// Starts workers for newly running containers and stops those of stopped ones.
    /// `status` is the one last written (the running containers and their start times);
    /// `pod_ip` is where HTTP, TCP and gRPC probes connect.
    pub fn reconcile(
        &mut self,
        ctx: &PodContext,
        pod: &Pod,
        status: Option<&PodStatus>,
        pod_ip: Option<&str>,
    ) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let Some(status) = status else {
            return;
        };
        // Running containers: name -> (id, started at).
        let mut running: HashMap<String, (String, SystemTime)> = HashMap::new();
        for cs in status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
        {
            let Some(r) = cs.state.as_ref().and_then(|s| s.running.as_ref()) else {
                continue;
            };
            let Some(id) = cs.container_id.as_deref() else {
                continue;
            };
            let id = id.split("://").nth(1).unwrap_or(id).to_string();
            let at = r
                .started_at
                .as_ref()
                .map_or(SystemTime::now(), |t| SystemTime::from(t.0));
            running.insert(cs.name.clone(), (id, at));
        }
        self.entries.retain(|e| {
            running
                .get(&e.name)
                .is_some_and(|(id, _)| *id == e.container_id)
        });

        let host_network = spec.host_network.unwrap_or(false);
        let containers = spec.containers.iter().chain(
            spec.init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always")),
        );
        for c in containers {
            let Some((id, started_at)) = running.get(&c.name) else {
                continue;
            };
            let target = ProbeTarget {
                pod_ip: pod_ip.map(str::to_string),
                host_ip: ctx.node.host_ip.clone(),
                container_id: id.clone(),
                ports: c.ports.clone().unwrap_or_default(),
                host_network,
            };
            let started = instant_from_system_time(*started_at);
            let startup_rx = self.ensure(
                ctx,
                c,
                id,
                ProbeKind::Startup,
                &target,
                started,
                StartedGate::open(),
            );
            let gate = || {
                startup_rx
                    .clone()
                    .map_or_else(StartedGate::open, StartedGate::after_startup)
            };
            self.ensure(ctx, c, id, ProbeKind::Liveness, &target, started, gate());
            self.ensure(ctx, c, id, ProbeKind::Readiness, &target, started, gate());
        }
    }

    /// Makes sure a worker runs for (container, kind) if the container declares that probe.
    #[allow(clippy::too_many_arguments)]
    fn ensure(
        &mut self,
        ctx: &PodContext,
        c: &Container,
        id: &str,
        kind: ProbeKind,
        target: &ProbeTarget,
        started: tokio::time::Instant,
        gate: StartedGate,
    ) -> Option<watch::Receiver<ProbeState>> {
        let probe = probe_of(c, kind)?;
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| e.container_id == id && e.kind == kind)
        {
            return Some(e.rx.clone());
        }
        let (handle, rx) = ProbeWorker::spawn(
            probe.clone(),
            kind,
            target.clone(),
            Arc::new(RuntimeExec(ctx.cri.clone())),
            started,
            gate,
        );
        let mut watch_rx = rx.clone();
        let wake = self.wake.clone();
        let forward = tokio::spawn(async move {
            while watch_rx.changed().await.is_ok() {
                wake.notify_one();
            }
        });
        self.entries.push(Entry {
            name: c.name.clone(),
            container_id: id.to_string(),
            kind,
            rx: rx.clone(),
            _handle: handle,
            forward,
            seen: None,
        });
        Some(rx)
    }
}

/// One probe's latest verdict on one container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProbeResult {
    container: String,
    container_id: String,
    kind: ProbeKind,
    /// None until the probe has answered (or while its result is unknown).
    success: Option<bool>,
}

/// What the probes said, taken before a sync. Results belong to a container instance (its
/// id): a restarted container is not ready on the word of its predecessor's probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeResults {
    results: Vec<ProbeResult>,
}

impl ProbeResults {
    /// The probe (liveness or startup) that failed on the container `id`, which is then
    /// restarted; None when none did.
    pub fn wants_restart(&self, id: &str) -> Option<ProbeKind> {
        self.results
            .iter()
            .find(|r| {
                r.container_id == id
                    && matches!(r.kind, ProbeKind::Liveness | ProbeKind::Startup)
                    && r.success == Some(false)
            })
            .map(|r| r.kind)
    }

    /// Whether the container instance `id` has passed its startup probe; false while the
    /// probe has not answered (kubelet's startup manager has no Success for it).
    pub fn startup_passed(&self, id: &str) -> bool {
        self.results.iter().any(|r| {
            r.container_id == id && r.kind == ProbeKind::Startup && r.success == Some(true)
        })
    }

    /// The verdicts of `kind` by container name, for the containers of `runtime` that run now
    /// (a container with the probe and no verdict yet counts as failing).
    pub fn by_name(&self, kind: ProbeKind, runtime: &ObservedPod) -> HashMap<String, bool> {
        self.results
            .iter()
            .filter(|r| r.kind == kind)
            .filter(|r| {
                runtime
                    .containers
                    .iter()
                    .any(|c| c.id == r.container_id && c.running())
            })
            .map(|r| (r.container.clone(), r.success == Some(true)))
            .collect()
    }
}

#[cfg(test)]
impl ProbeResults {
    /// Results as a probe worker would report them (scenario tests).
    #[must_use]
    pub fn with(mut self, container: &str, id: &str, kind: ProbeKind, success: bool) -> Self {
        self.results.push(ProbeResult {
            container: container.to_string(),
            container_id: id.to_string(),
            kind,
            success: Some(success),
        });
        self
    }
}
