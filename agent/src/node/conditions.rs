//! The Node's conditions, with kubelet's types, reasons and messages. Pure: the caller passes
//! what it observed and the conditions it reported last (to keep transition times).

use k8s_openapi::api::core::v1::NodeCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pressure::Pressure;
use crate::runtime::RuntimeHealth;

/// Everything the conditions are computed from.
pub struct Observed<'a> {
    pub runtime: &'a RuntimeHealth,
    pub pressure: Pressure,
    /// logind announced a shutdown ([`crate::shutdown_status`]): Ready goes False.
    pub shutting_down: bool,
}

struct Verdict {
    kind: &'static str,
    ok: bool,
    /// The status value when healthy: "False" for pressure conditions, "True" for Ready.
    status_when_ok: &'static str,
    reason: &'static str,
    message: String,
}

fn pressure_verdict(
    kind: &'static str,
    under: bool,
    reasons: (&'static str, &'static str),
    messages: (&'static str, &'static str),
) -> Verdict {
    Verdict {
        kind,
        ok: !under,
        status_when_ok: "False",
        reason: if under { reasons.1 } else { reasons.0 },
        message: (if under { messages.1 } else { messages.0 }).to_string(),
    }
}

/// The reasons the node is not ready, in kubelet's words; empty when it is ready.
pub fn not_ready_reasons(runtime: &RuntimeHealth) -> Vec<String> {
    match runtime {
        RuntimeHealth::Unknown => {
            vec!["container runtime status check may not have completed yet".to_string()]
        }
        RuntimeHealth::Down { error } => vec![format!("container runtime is down: {error}")],
        RuntimeHealth::Up { .. } => {
            let mut out = Vec::new();
            for (kind, label) in [
                ("RuntimeReady", "container runtime not ready"),
                ("NetworkReady", "container runtime network not ready"),
            ] {
                match runtime.condition(kind) {
                    Some(c) if c.status => {}
                    Some(c) => out.push(format!(
                        "{label}: {kind}=false reason:{} message:{}",
                        c.reason, c.message
                    )),
                    None => out.push(format!("{label}: {kind} not reported by the runtime")),
                }
            }
            out
        }
    }
}

/// Builds MemoryPressure, DiskPressure, PIDPressure and Ready (kubelet's order).
pub fn build(
    previous: &[NodeCondition],
    observed: &Observed<'_>,
    now: &Time,
) -> Vec<NodeCondition> {
    let p = observed.pressure;
    let mut not_ready = not_ready_reasons(observed.runtime);
    if observed.shutting_down {
        not_ready.push(crate::shutdown_status::SHUTTING_DOWN.to_string());
    }
    let verdicts = [
        pressure_verdict(
            "MemoryPressure",
            p.memory,
            ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory"),
            (
                "kubelet has sufficient memory available",
                "kubelet has insufficient memory available",
            ),
        ),
        pressure_verdict(
            "DiskPressure",
            p.disk,
            ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
            ("kubelet has no disk pressure", "kubelet has disk pressure"),
        ),
        pressure_verdict(
            "PIDPressure",
            p.pid,
            ("KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
            (
                "kubelet has sufficient PID available",
                "kubelet has insufficient PID available",
            ),
        ),
        Verdict {
            kind: "Ready",
            ok: not_ready.is_empty(),
            status_when_ok: "True",
            reason: if not_ready.is_empty() {
                "KubeletReady"
            } else {
                "KubeletNotReady"
            },
            message: if not_ready.is_empty() {
                "kubelet is posting ready status".to_string()
            } else {
                not_ready.join(", ")
            },
        },
    ];
    verdicts
        .into_iter()
        .map(|v| {
            let status = match (v.ok, v.status_when_ok) {
                (true, s) => s,
                (false, "True") => "False",
                (false, _) => "True",
            };
            let transition = previous
                .iter()
                .find(|c| c.type_ == v.kind && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            NodeCondition {
                type_: v.kind.to_string(),
                status: status.to_string(),
                reason: Some(v.reason.to_string()),
                message: Some(v.message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// True when two condition lists differ in anything but heartbeat times.
pub fn changed(a: &[NodeCondition], b: &[NodeCondition]) -> bool {
    let key = |c: &NodeCondition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.last_transition_time.clone(),
        )
    };
    a.len() != b.len() || a.iter().zip(b).any(|(x, y)| key(x) != key(y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RuntimeCondition;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn up(network_ready: bool) -> RuntimeHealth {
        RuntimeHealth::Up {
            version: "containerd://1.6.20".into(),
            handlers: Vec::new(),
            conditions: vec![
                RuntimeCondition {
                    kind: "RuntimeReady".into(),
                    status: true,
                    reason: String::new(),
                    message: String::new(),
                },
                RuntimeCondition {
                    kind: "NetworkReady".into(),
                    status: network_ready,
                    reason: "NetworkPluginNotReady".into(),
                    message: "cni plugin not initialized".into(),
                },
            ],
        }
    }

    fn ready(conds: &[NodeCondition]) -> &NodeCondition {
        conds.iter().find(|c| c.type_ == "Ready").unwrap()
    }

    #[test]
    fn a_healthy_runtime_makes_the_node_ready() {
        let o = Observed {
            runtime: &up(true),
            pressure: Pressure::default(),
            shutting_down: false,
        };
        let c = build(&[], &o, &at(100));
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(ready(&c).status, "True");
        assert_eq!(ready(&c).reason.as_deref(), Some("KubeletReady"));
        assert!(c[..3].iter().all(|c| c.status == "False"));
    }

    #[test]
    fn runtime_down_or_network_not_ready_give_kubelets_reason() {
        let down = RuntimeHealth::Down {
            error: "connect: no such file".into(),
        };
        let c = build(
            &[],
            &Observed {
                runtime: &down,
                pressure: Pressure::default(),
                shutting_down: false,
            },
            &at(1),
        );
        assert_eq!(ready(&c).status, "False");
        assert_eq!(ready(&c).reason.as_deref(), Some("KubeletNotReady"));
        assert!(
            ready(&c)
                .message
                .as_deref()
                .unwrap()
                .contains("container runtime is down")
        );

        let c = build(
            &[],
            &Observed {
                runtime: &up(false),
                pressure: Pressure::default(),
                shutting_down: false,
            },
            &at(1),
        );
        let msg = ready(&c).message.clone().unwrap();
        assert!(
            msg.contains("NetworkReady=false reason:NetworkPluginNotReady"),
            "{msg}"
        );
    }

    #[test]
    fn a_shutdown_makes_the_node_not_ready_with_kubelets_message() {
        let o = Observed {
            runtime: &up(true),
            pressure: Pressure::default(),
            shutting_down: true,
        };
        let c = build(&[], &o, &at(1));
        assert_eq!(ready(&c).status, "False");
        assert_eq!(ready(&c).reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(ready(&c).message.as_deref(), Some("node is shutting down"));
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let healthy = Observed {
            runtime: &up(true),
            pressure: Pressure::default(),
            shutting_down: false,
        };
        let first = build(&[], &healthy, &at(100));
        let again = build(&first, &healthy, &at(200));
        assert_eq!(ready(&again).last_transition_time, Some(at(100)));
        assert_eq!(ready(&again).last_heartbeat_time, Some(at(200)));
        assert!(!changed(&first, &again), "only heartbeats moved");

        let pressured = Observed {
            runtime: &up(true),
            pressure: Pressure {
                memory: true,
                ..Pressure::default()
            },
            shutting_down: false,
        };
        let flipped = build(&again, &pressured, &at(300));
        assert_eq!(flipped[0].status, "True");
        assert_eq!(
            flipped[0].reason.as_deref(),
            Some("KubeletHasInsufficientMemory")
        );
        assert_eq!(flipped[0].last_transition_time, Some(at(300)));
        assert!(changed(&again, &flipped));
    }

    #[test]
    fn the_pod_networks_readiness_reaches_the_ready_condition() {
        let merged = crate::network::readiness::overlay(
            &up(true),
            &Err("Network plugin returns error: x".into()),
        );
        let reasons = not_ready_reasons(&merged);
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("NetworkReady=false reason:NetworkPluginNotReady")),
            "{reasons:?}"
        );
    }
}
