//! The pod's status computed from what the runtime holds and what the worker decided: phase,
//! conditions, container statuses, IPs and times, with kubelet's reasons. Pure.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::container::qos_class;
use super::observe::{ContainerView, ObservedPod};
use super::resize::Resize;

/// A waiting reason the worker set for a container (image pull errors, backoff, config errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// A pod-level verdict that ends it (admission refusal, deadline exceeded, failed init).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub phase: &'static str,
    pub reason: String,
    pub message: String,
    /// The agent ended it for the node's sake (a node-pressure eviction): the pod carries
    /// kubelet's DisruptionTarget condition (reason TerminationByKubelet) with the message.
    pub disruption_target: bool,
}

/// Everything the status is computed from.
pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a ObservedPod,
    pub runtime_name: &'a str,
    pub pod_ips: &'a [String],
    pub host_ip: &'a str,
    pub waiting: &'a HashMap<String, Waiting>,
    /// Readiness per container name, for containers with a readiness probe.
    pub readiness: &'a HashMap<String, bool>,
    /// Startup-probe outcome per container name, for containers with a startup probe.
    pub started: &'a HashMap<String, bool>,
    /// Termination messages read from the containers' message files, by container id.
    pub termination_messages: &'a HashMap<String, String>,
    pub terminal: Option<&'a Terminal>,
    /// The pod's resize state: its conditions and what its containers' cgroups hold.
    pub resize: &'a Resize,
    pub now: Timestamp,
}

/// Now, in the whole seconds the API stores: a transition or start time set now then equals
/// the API's copy of it, which the next sync keeps, so the status is not written again.
pub fn stored_now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn time(nanos: i64) -> Option<Time> {
    (nanos > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(nanos)).ok())
        .flatten()
        .map(Time)
}

fn container_id(runtime_name: &str, id: &str) -> String {
    format!("{runtime_name}://{id}")
}

fn terminated(
    c: &ContainerView,
    runtime_name: &str,
    messages: &HashMap<String, String>,
) -> ContainerStateTerminated {
    let reason = if c.reason.is_empty() {
        if c.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_string()
    } else {
        c.reason.clone()
    };
    let message = messages
        .get(&c.id)
        .cloned()
        .or_else(|| (!c.message.is_empty()).then(|| c.message.clone()));
    ContainerStateTerminated {
        exit_code: c.exit_code,
        reason: Some(reason),
        message,
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        container_id: Some(container_id(runtime_name, &c.id)),
        signal: None,
    }
}

/// The status of one container (regular or init).
fn container_status(i: &Inputs<'_>, spec: &Container, default_waiting: &str) -> ContainerStatus {
    let mut history = i.runtime.containers.iter().filter(|c| c.name == spec.name);
    let latest = history.next();
    let previous = history.next();
    let waiting = i.waiting.get(&spec.name);
    // A container the runtime no longer holds keeps the terminated status it was last given
    // (kubelet starts from the old status): the API refuses to take a terminated container
    // back to waiting, and what it ended with stays readable.
    if latest.is_none()
        && waiting.is_none()
        && let Some(kept) = last_terminated(i.pod, &spec.name)
    {
        return kept;
    }
    let running = latest.is_some_and(ContainerView::running);
    let state = match (latest, waiting) {
        (Some(c), _) if c.running() => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(c.started_at),
            }),
            ..ContainerState::default()
        },
        (_, Some(w)) => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(w.reason.clone()),
                message: (!w.message.is_empty()).then(|| w.message.clone()),
            }),
            ..ContainerState::default()
        },
        (Some(c), None) if c.exited() => ContainerState {
            terminated: Some(terminated(c, i.runtime_name, i.termination_messages)),
            ..ContainerState::default()
        },
        _ => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(default_waiting.to_string()),
                message: None,
            }),
            ..ContainerState::default()
        },
    };
    // While waiting to restart, the exited container is the last state.
    let last = match (latest, state.terminated.is_some()) {
        (Some(c), false) if c.exited() => Some(c),
        (_, _) => previous.filter(|c| c.exited()),
    };
    // Until its probe has answered, a container with a startup (readiness) probe is not
    // started (ready); one without the probe is as soon as it runs.
    let started = running
        && i.started
            .get(&spec.name)
            .copied()
            .unwrap_or(spec.startup_probe.is_none());
    let ready = running
        && started
        && i.readiness
            .get(&spec.name)
            .copied()
            .unwrap_or(spec.readiness_probe.is_none());
    ContainerStatus {
        name: spec.name.clone(),
        state: Some(state),
        last_state: Some(
            last.map_or_else(ContainerState::default, |c| ContainerState {
                terminated: Some(terminated(c, i.runtime_name, i.termination_messages)),
                ..ContainerState::default()
            }),
        ),
        ready,
        started: Some(started),
        restart_count: latest.map_or(0, |c| i32::try_from(c.restart_count).unwrap_or(i32::MAX)),
        image: spec.image.clone().unwrap_or_default(),
        image_id: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|c| container_id(i.runtime_name, &c.id)),
        ..resources(i, spec, latest)
    }
}

/// `allocatedResources` (the allocated requests) and `resources` (the allocation, with what
/// the running container's cgroup holds): for a container the runtime has, as kubelet reports
/// them. The spec is the pod's with its allocation in place.
fn resources(i: &Inputs<'_>, spec: &Container, latest: Option<&ContainerView>) -> ContainerStatus {
    let Some(latest) = latest else {
        return ContainerStatus::default();
    };
    let allocated = spec.resources.clone().unwrap_or_default();
    let reported = match i.resize.actuated.get(&spec.name) {
        Some(applied) if latest.running() => applied.report(&allocated),
        _ => allocated.clone(),
    };
    ContainerStatus {
        allocated_resources: allocated.requests.clone().filter(|r| !r.is_empty()),
        resources: Some(reported),
        ..ContainerStatus::default()
    }
}

/// The status the API has for container `name`, when it says the container terminated.
fn last_terminated(pod: &Pod, name: &str) -> Option<ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .chain(status.container_statuses.iter())
        .flatten()
        .find(|s| s.name == name)
        .filter(|s| s.state.as_ref().is_some_and(|st| st.terminated.is_some()))
        .cloned()
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn succeeded(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

fn failed(s: &ContainerStatus) -> bool {
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .is_some_and(|t| t.exit_code != 0)
}

fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn has_run(s: &ContainerStatus) -> bool {
    s.last_state
        .as_ref()
        .is_some_and(|st| st.terminated.is_some())
}

/// kubelet's phase rules for the regular containers, given that init containers are done.
fn phase(restart_policy: &str, statuses: &[ContainerStatus], init_done: bool) -> &'static str {
    if !init_done || statuses.is_empty() {
        return "Pending";
    }
    let (mut run, mut wait, mut ok, mut bad) = (0, 0, 0, 0);
    for s in statuses {
        if running(s) {
            run += 1;
        } else if succeeded(s) {
            ok += 1;
        } else if failed(s) {
            bad += 1;
        } else if has_run(s) {
            // Waiting to restart after having run: counts as running (restarting).
            run += 1;
        } else {
            wait += 1;
        }
    }
    if wait > 0 {
        return if run > 0 || ok > 0 || bad > 0 {
            "Running"
        } else {
            "Pending"
        };
    }
    if run > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if bad > 0 => "Running",
        "Never" if bad > 0 => "Failed",
        _ => "Succeeded",
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        ..PodCondition::default()
    }
}

fn names(statuses: &[&ContainerStatus]) -> String {
    format!(
        "[{}]",
        statuses
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The pod's conditions, kubelet's four. Each keeps the transition time `previous` has for it
/// while its status stays the same.
fn conditions(
    i: &Inputs<'_>,
    spec: &PodSpec,
    previous: &PodStatus,
    statuses: &[ContainerStatus],
    incomplete: &[&ContainerStatus],
    terminal: bool,
) -> Vec<PodCondition> {
    let init_done = incomplete.is_empty();
    let unready: Vec<&ContainerStatus> = statuses.iter().filter(|s| !s.ready).collect();
    let containers_ready = unready.is_empty() && !terminal;
    let gates_ok = spec.readiness_gates.iter().flatten().all(|g| {
        previous
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == g.condition_type && c.status == "True")
    });
    let unready_msg = Some(format!(
        "containers with unready status: {}",
        names(&unready)
    ));
    let sandbox_ready = i.runtime.ready_sandbox().is_some();
    let mut conditions = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None),
        condition(
            "Initialized",
            init_done,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                names(incomplete)
            )),
        ),
        condition(
            "ContainersReady",
            containers_ready,
            Some(if terminal {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            if terminal { None } else { unready_msg.clone() },
        ),
        condition(
            "Ready",
            containers_ready && gates_ok,
            Some(if terminal {
                "PodCompleted"
            } else if containers_ready {
                "ReadinessGatesNotReady"
            } else {
                "ContainersNotReady"
            }),
            if terminal { None } else { unready_msg },
        ),
    ];
    if let Some(t) = i.terminal.filter(|t| t.disruption_target) {
        conditions.push(PodCondition {
            reason: Some("TerminationByKubelet".to_string()),
            message: Some(t.message.clone()),
            ..condition("DisruptionTarget", true, None, None)
        });
    }
    let now = Time(i.now);
    for c in &mut conditions {
        let kept = previous
            .conditions
            .iter()
            .flatten()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .and_then(|p| p.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or_else(|| now.clone()));
        c.observed_generation = i.pod.metadata.generation;
    }
    conditions.extend(i.resize.conditions());
    conditions
}

/// Computes the status. `previous` (the status the API has) keeps start time and transition times.
pub fn compute(i: &Inputs<'_>) -> PodStatus {
    let pod = i.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let previous = pod.status.clone().unwrap_or_default();
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");

    let init_specs = spec.init_containers.clone().unwrap_or_default();
    // An init container that completed is ready (kubelet's prober manager says so); a sidecar
    // is ready by its probe, as a regular container.
    let init_statuses: Vec<ContainerStatus> = init_specs
        .iter()
        .map(|c| {
            let mut s = container_status(i, c, "PodInitializing");
            if !is_sidecar(c) {
                s.ready = succeeded(&s);
            }
            s
        })
        .collect();
    let incomplete: Vec<&ContainerStatus> = init_specs
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| {
            if is_sidecar(c) {
                s.started != Some(true)
            } else {
                !succeeded(s)
            }
        })
        .map(|(_, s)| s)
        .collect();
    let init_done = incomplete.is_empty();
    let default_waiting = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(i, c, default_waiting))
        .collect();

    let init_failed_for_good = restart_policy == "Never"
        && init_specs
            .iter()
            .zip(&init_statuses)
            .any(|(c, s)| !is_sidecar(c) && failed(s));
    let (phase, reason, message) = match i.terminal {
        Some(t) => (t.phase, Some(t.reason.clone()), Some(t.message.clone())),
        None if init_failed_for_good => ("Failed", None, None),
        None => (phase(restart_policy, &statuses, init_done), None, None),
    };
    let terminal = matches!(phase, "Succeeded" | "Failed");

    // Readiness is judged over the sidecars (restartable init containers) and the containers,
    // in that order, as kubelet's ContainersReady does.
    let judged: Vec<ContainerStatus> = init_specs
        .iter()
        .zip(&init_statuses)
        .filter(|(c, _)| is_sidecar(c))
        .map(|(_, s)| s.clone())
        .chain(statuses.iter().cloned())
        .collect();
    let conditions = conditions(i, &spec, &previous, &judged, &incomplete, terminal);

    // Ephemeral containers: their own list, never ready (no probes), outside phase and readiness.
    let ephemeral_statuses: Vec<ContainerStatus> = super::ephemeral::of(pod)
        .iter()
        .map(|e| ContainerStatus {
            ready: false,
            started: None,
            ..container_status(i, &e.container, "ContainerCreating")
        })
        .collect();

    let host_network = spec.host_network.unwrap_or(false);
    let ips: Vec<String> = if host_network {
        vec![i.host_ip.to_string()]
    } else {
        i.pod_ips.to_vec()
    };
    PodStatus {
        phase: Some(phase.to_string()),
        reason,
        message,
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        host_ip: Some(i.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: i.host_ip.to_string(),
        }]),
        pod_ip: ips.first().cloned(),
        pod_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: previous.start_time.or(Some(Time(i.now))),
        qos_class: Some(qos_class(pod).as_str().to_string()),
        observed_generation: pod.metadata.generation,
        ..PodStatus::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! Phase and conditions for each stage of a pod's life, one table row each.

    use super::*;
    use crate::pods::observe::SandboxView;
    use cri_client::api::ContainerState as Cri;
    use serde_json::json;

    /// What the runtime holds for one container in a row.
    #[derive(Clone, Copy)]
    enum Held {
        Nothing,
        Running,
        Exited(i32),
    }

    struct Row {
        name: &'static str,
        restart_policy: &'static str,
        init: Held,
        app: Held,
        /// The readiness probe's verdict on "app" (None: no probe).
        app_ready: Option<bool>,
        waiting: Option<&'static str>,
        terminal: Option<Terminal>,
        phase: &'static str,
        /// PodReadyToStartContainers, Initialized, ContainersReady, Ready.
        conditions: [&'static str; 4],
    }

    fn view(name: &str, held: Held) -> Option<ContainerView> {
        let (state, exit_code) = match held {
            Held::Nothing => return None,
            Held::Running => (Cri::ContainerRunning, 0),
            Held::Exited(code) => (Cri::ContainerExited, code),
        };
        Some(ContainerView {
            id: format!("id-{name}"),
            name: name.to_string(),
            sandbox_id: "s".into(),
            restart_count: 0,
            hash: String::new(),
            state,
            created_at: 1,
            started_at: 1_000_000_000,
            finished_at: if matches!(held, Held::Exited(_)) {
                2_000_000_000
            } else {
                0
            },
            exit_code,
            reason: String::new(),
            message: String::new(),
            image: "i".into(),
            image_ref: "sha256:i".into(),
            log_path: String::new(),
        })
    }

    /// The status of `pod` over `runtime`, with no pod IP, probe verdicts, waiting reasons or
    /// termination messages.
    fn status_of(pod: &Pod, runtime: &ObservedPod) -> PodStatus {
        compute(&Inputs {
            pod,
            runtime,
            runtime_name: "containerd",
            pod_ips: &[],
            host_ip: "192.0.2.1",
            waiting: &HashMap::new(),
            readiness: &HashMap::new(),
            started: &HashMap::new(),
            termination_messages: &HashMap::new(),
            terminal: None,
            resize: &Resize::default(),
            now: Timestamp::now(),
        })
    }

    fn check(row: &Row) {
        let mut spec = json!({
            "restartPolicy": row.restart_policy,
            "containers": [{"name": "app", "image": "i"}],
        });
        if !matches!(row.init, Held::Nothing) {
            spec["initContainers"] = json!([{"name": "init", "image": "i"}]);
        }
        if row.app_ready.is_some() {
            spec["containers"][0]["readinessProbe"] = json!({"exec": {"command": ["true"]}});
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
        let runtime = ObservedPod {
            sandboxes: vec![SandboxView {
                id: "s".into(),
                attempt: 0,
                ready: row.terminal.is_none(),
                created_at: 1,
            }],
            containers: [view("init", row.init), view("app", row.app)]
                .into_iter()
                .flatten()
                .collect(),
        };
        let waiting: HashMap<String, Waiting> = row
            .waiting
            .map(|reason| {
                let w = Waiting {
                    reason: reason.into(),
                    message: String::new(),
                };
                HashMap::from([("app".to_string(), w)])
            })
            .unwrap_or_default();
        let readiness: HashMap<String, bool> = row
            .app_ready
            .map(|r| HashMap::from([("app".to_string(), r)]))
            .unwrap_or_default();
        let status = compute(&Inputs {
            pod: &pod,
            runtime: &runtime,
            runtime_name: "containerd",
            pod_ips: &["10.0.0.1".to_string()],
            host_ip: "192.0.2.1",
            waiting: &waiting,
            readiness: &readiness,
            started: &HashMap::new(),
            termination_messages: &HashMap::new(),
            terminal: row.terminal.as_ref(),
            resize: &Resize::default(),
            now: Timestamp::now(),
        });
        assert_eq!(
            status.phase.as_deref(),
            Some(row.phase),
            "{}: phase",
            row.name
        );
        let got: Vec<(String, String)> = status
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        let kinds = [
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ];
        let want: Vec<(String, String)> = kinds
            .iter()
            .zip(row.conditions)
            .map(|(k, s)| (k.to_string(), s.to_string()))
            .collect();
        assert_eq!(got, want, "{}: conditions", row.name);
        if let Some(t) = &row.terminal {
            assert_eq!(
                status.reason.as_deref(),
                Some(t.reason.as_str()),
                "{}",
                row.name
            );
        }
    }

    fn row(name: &'static str) -> Row {
        Row {
            name,
            restart_policy: "Always",
            init: Held::Nothing,
            app: Held::Nothing,
            app_ready: None,
            waiting: None,
            terminal: None,
            phase: "Pending",
            conditions: ["True", "True", "False", "False"],
        }
    }

    #[test]
    fn phase_and_conditions_through_a_pods_life() {
        let rows = [
            Row {
                waiting: Some("ContainerCreating"),
                ..row("pending with a waiting container")
            },
            Row {
                app: Held::Running,
                phase: "Running",
                conditions: ["True", "True", "True", "True"],
                ..row("running and ready")
            },
            Row {
                app: Held::Running,
                app_ready: Some(false),
                phase: "Running",
                conditions: ["True", "True", "False", "False"],
                ..row("running, readiness probe failing")
            },
            Row {
                init: Held::Running,
                conditions: ["True", "False", "False", "False"],
                ..row("init container still running")
            },
            Row {
                init: Held::Exited(0),
                app: Held::Running,
                phase: "Running",
                conditions: ["True", "True", "True", "True"],
                ..row("init container completed, app running")
            },
            Row {
                restart_policy: "Never",
                app: Held::Exited(0),
                phase: "Succeeded",
                conditions: ["True", "True", "False", "False"],
                ..row("succeeded")
            },
            Row {
                restart_policy: "Never",
                app: Held::Exited(2),
                phase: "Failed",
                conditions: ["True", "True", "False", "False"],
                ..row("failed")
            },
            Row {
                restart_policy: "Never",
                init: Held::Exited(1),
                phase: "Failed",
                conditions: ["True", "False", "False", "False"],
                ..row("init container failed for good")
            },
            Row {
                terminal: Some(Terminal {
                    phase: "Failed",
                    reason: "SysctlForbidden".into(),
                    message: "forbidden sysctl".into(),
                    disruption_target: false,
                }),
                phase: "Failed",
                conditions: ["False", "True", "False", "False"],
                ..row("terminal set by admission")
            },
        ];
        for r in &rows {
            check(r);
        }
    }

    #[test]
    fn a_sidecar_whose_readiness_probe_fails_keeps_the_pod_unready() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "side", "image": "i", "restartPolicy": "Always",
                "readinessProbe": {"exec": {"command": ["false"]}}}],
            "containers": [{"name": "app", "image": "i"}],
        }}))
        .unwrap();
        let runtime = ObservedPod {
            sandboxes: vec![SandboxView {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
            }],
            containers: [view("side", Held::Running), view("app", Held::Running)]
                .into_iter()
                .flatten()
                .collect(),
        };
        let status_with = |side_ready: bool| {
            compute(&Inputs {
                pod: &pod,
                runtime: &runtime,
                runtime_name: "containerd",
                pod_ips: &["10.0.0.1".to_string()],
                host_ip: "192.0.2.1",
                waiting: &HashMap::new(),
                readiness: &HashMap::from([("side".to_string(), side_ready)]),
                started: &HashMap::new(),
                termination_messages: &HashMap::new(),
                terminal: None,
                resize: &Resize::default(),
                now: Timestamp::now(),
            })
        };
        let ready = |s: &PodStatus, kind: &str| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == kind)
                .map(|c| (c.status.clone(), c.message.clone()))
        };
        let failing = status_with(false);
        assert_eq!(
            ready(&failing, "Ready"),
            Some((
                "False".to_string(),
                Some("containers with unready status: [side]".to_string())
            ))
        );
        assert_eq!(
            ready(&failing, "ContainersReady").map(|r| r.0).as_deref(),
            Some("False")
        );
        let passing = status_with(true);
        assert_eq!(
            ready(&passing, "Ready").map(|r| r.0).as_deref(),
            Some("True")
        );
    }

    #[test]
    fn a_completed_init_container_is_ready_and_a_failed_one_is_not() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": "i"}],
            "containers": [{"name": "app", "image": "i"}],
        }}))
        .unwrap();
        let init_ready = |held: Held| {
            let runtime = ObservedPod {
                sandboxes: vec![SandboxView {
                    id: "s".into(),
                    attempt: 0,
                    ready: true,
                    created_at: 1,
                }],
                containers: view("init", held).into_iter().collect(),
            };
            let status = status_of(&pod, &runtime);
            status.init_container_statuses.unwrap()[0].ready
        };
        assert!(init_ready(Held::Exited(0)));
        assert!(!init_ready(Held::Exited(1)));
        assert!(!init_ready(Held::Running));
    }

    #[test]
    fn an_ephemeral_container_has_its_own_status_and_no_say_in_phase_or_readiness() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "i"}],
            "ephemeralContainers": [
                {"name": "debugger", "image": "d", "targetContainerName": "app"},
                {"name": "later", "image": "d"},
            ],
        }}))
        .unwrap();
        let runtime = ObservedPod {
            sandboxes: vec![SandboxView {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
            }],
            containers: [
                view("app", Held::Running),
                view("debugger", Held::Exited(1)),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let status = status_of(&pod, &runtime);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.as_str());
        assert_eq!(ready, Some("True"));
        assert_eq!(status.container_statuses.as_ref().unwrap().len(), 1);
        let eph = status.ephemeral_container_statuses.unwrap();
        let names: Vec<&str> = eph.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["debugger", "later"]);
        let debugger = eph[0].state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(debugger.exit_code, 1);
        assert!(!eph[0].ready);
        let later = eph[1].state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(later.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn a_terminated_container_the_runtime_no_longer_holds_keeps_its_status() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": "i"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "app", "image": "i",
                "imageID": "sha256:1", "ready": false, "restartCount": 0, "started": false,
                "containerID": "containerd://gone",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}))
        .unwrap();
        let status = status_of(&pod, &ObservedPod::default());
        let app = &status.container_statuses.unwrap()[0];
        let ended = app.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (ended.exit_code, ended.reason.as_deref()),
            (0, Some("Completed"))
        );
        assert_eq!(app.container_id.as_deref(), Some("containerd://gone"));
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    }
}
