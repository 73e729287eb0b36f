//! The probe workers of one pod: started for each running container that declares probes,
//! stopped when that container stops. Their results flow into the pod worker's state (readiness,
//! started, restart requests) and every change wakes the pod worker.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::context::PodContext;
use super::probe::worker::instant_from_system_time;
use super::probe::{ProbeHandle, ProbeKind, ProbeState, ProbeTarget, ProbeWorker, StartedGate};
use super::runtime_exec::RuntimeExec;
use super::sync::PodState;

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
pub struct Probes {
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

impl Probes {
    pub fn new(wake: Arc<Notify>) -> Self {
        Probes {
            wake,
            entries: Vec::new(),
        }
    }

    pub fn stop_all(&mut self) {
        self.entries.clear();
    }

    /// Moves the workers' latest results into the pod state; emits Unhealthy events.
    pub fn collect(&mut self, ctx: &PodContext, pod: &Pod, state: &mut PodState) {
        for e in &mut self.entries {
            let current = e.rx.borrow().clone();
            let fresh = e.seen.as_ref() != Some(&current);
            match e.kind {
                ProbeKind::Readiness => {
                    state
                        .readiness
                        .insert(e.name.clone(), current.result == Some(true));
                }
                ProbeKind::Startup => {
                    state
                        .started
                        .insert(e.name.clone(), current.result == Some(true));
                    if current.result == Some(false) {
                        state.unhealthy.insert(e.container_id.clone());
                    }
                }
                ProbeKind::Liveness => {
                    if current.result == Some(false) {
                        state.unhealthy.insert(e.container_id.clone());
                    }
                }
            }
            if fresh && !current.last_message.is_empty() {
                // kubelet's two texts: a probe that ran and failed, and one that could not run
                // (its result is thrown away, so it neither passes nor counts as a failure).
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
    }

    /// Starts workers for newly running containers and stops those of stopped ones.
    pub fn reconcile(&mut self, ctx: &PodContext, pod: &Pod, state: &mut PodState) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let Some(status) = state.last_written.as_ref() else {
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

        let pod_ip = state.ips.as_ref().and_then(|(_, ips)| ips.first().cloned());
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
                pod_ip: pod_ip.clone(),
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
            if c.readiness_probe.is_none() {
                state.readiness.remove(&c.name);
            }
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
