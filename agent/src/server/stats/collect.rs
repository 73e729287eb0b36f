//! Builds the [`Summary`] from the runtime and procfs: this node's ready sandboxes (by the
//! agent's node label), their running containers with `ListContainerStats`, pod figures from
//! `ListPodSandboxStats` where the runtime has them (else the sum of the pod's containers), and
//! usageNanoCores from the previous sample of each object.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use cri_client::CriClient;
use cri_client::api::{
    self, ContainerFilter, ContainerState, ContainerStateValue, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PodSandboxStatsFilter,
};

use super::model::{
    ContainerStats, CpuStats, FsStats, MemoryStats, MemoryValues, NetworkStats, NodeStats,
    PodReference, PodStats, Summary, time_from_nanos,
};
use super::procfs::{self, NodeReading};
use super::rate::RateTracker;
use crate::pods::container::labels::{CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID};
use crate::runtime::NODE_LABEL;
use crate::server::ServerError;

const NODE_KEY: &str = "node";

fn now_nanos() -> i64 {
    i64::try_from(k8s_openapi::jiff::Timestamp::now().as_nanosecond()).unwrap_or(0)
}

/// The node, from one procfs reading taken at `at`.
pub fn node_stats(node: &str, r: &NodeReading, at: i64, rates: &mut RateTracker) -> NodeStats {
    let time = time_from_nanos(at);
    let cpu = r.cpu_busy_nanos.map(|usage| CpuStats {
        time: time.clone(),
        usage_nano_cores: rates.update(NODE_KEY, at, usage),
        usage_core_nano_seconds: Some(usage),
    });
    let network = r.default_interface.as_ref().and_then(|name| {
        let default = r.interfaces.iter().find(|i| &i.name == name)?.clone();
        Some(NetworkStats {
            time: time.clone(),
            default,
            interfaces: r.interfaces.clone(),
        })
    });
    NodeStats {
        node_name: node.to_string(),
        start_time: r
            .boot_time
            .map(|s| time_from_nanos(s.saturating_mul(1_000_000_000))),
        cpu,
        memory: r.memory.clone().map(|values| MemoryStats {
            time: time.clone(),
            values,
        }),
        network,
        fs: r.fs.map(|f| FsStats {
            time: time.clone(),
            available_bytes: f.available,
            capacity_bytes: f.capacity,
            used_bytes: f.used,
            inodes_free: f.inodes_free,
            inodes: f.inodes,
            inodes_used: f.inodes.saturating_sub(f.inodes_free),
        }),
    }
}

fn value(v: Option<&api::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

/// CPU figures of a CRI sample; the runtime's usageNanoCores when it gives one, else ours.
pub fn cpu_of(key: &str, cpu: Option<&api::CpuUsage>, rates: &mut RateTracker) -> Option<CpuStats> {
    let cpu = cpu?;
    let usage = value(cpu.usage_core_nano_seconds.as_ref())?;
    let computed = rates.update(key, cpu.timestamp, usage);
    Some(CpuStats {
        time: time_from_nanos(cpu.timestamp),
        usage_nano_cores: value(cpu.usage_nano_cores.as_ref())
            .filter(|v| *v > 0)
            .or(computed),
        usage_core_nano_seconds: Some(usage),
    })
}

/// Memory figures of a CRI sample.
pub fn memory_of(m: Option<&api::MemoryUsage>) -> Option<MemoryStats> {
    let m = m?;
    Some(MemoryStats {
        time: time_from_nanos(m.timestamp),
        values: MemoryValues {
            available_bytes: value(m.available_bytes.as_ref()),
            usage_bytes: value(m.usage_bytes.as_ref()),
            working_set_bytes: value(m.working_set_bytes.as_ref()),
            rss_bytes: value(m.rss_bytes.as_ref()),
            page_faults: value(m.page_faults.as_ref()),
            major_page_faults: value(m.major_page_faults.as_ref()),
        },
    })
}

fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

/// A pod's figures as the sum of its containers' (when the runtime has no sandbox stats).
pub fn sum_containers(containers: &[ContainerStats]) -> (Option<CpuStats>, Option<MemoryStats>) {
    let mut cpu: Option<CpuStats> = None;
    let mut memory: Option<MemoryStats> = None;
    for c in containers {
        if let Some(x) = &c.cpu {
            cpu = Some(match cpu {
                None => x.clone(),
                Some(acc) => CpuStats {
                    time: if x.time.0 > acc.time.0 {
                        x.time.clone()
                    } else {
                        acc.time
                    },
                    usage_nano_cores: sum(acc.usage_nano_cores, x.usage_nano_cores),
                    usage_core_nano_seconds: sum(
                        acc.usage_core_nano_seconds,
                        x.usage_core_nano_seconds,
                    ),
                },
            });
        }
        if let Some(x) = &c.memory {
            memory = Some(match memory {
                None => x.clone(),
                Some(acc) => MemoryStats {
                    time: if x.time.0 > acc.time.0 {
                        x.time.clone()
                    } else {
                        acc.time
                    },
                    values: MemoryValues {
                        available_bytes: None,
                        usage_bytes: sum(acc.values.usage_bytes, x.values.usage_bytes),
                        working_set_bytes: sum(
                            acc.values.working_set_bytes,
                            x.values.working_set_bytes,
                        ),
                        rss_bytes: sum(acc.values.rss_bytes, x.values.rss_bytes),
                        page_faults: sum(acc.values.page_faults, x.values.page_faults),
                        major_page_faults: sum(
                            acc.values.major_page_faults,
                            x.values.major_page_faults,
                        ),
                    },
                },
            });
        }
    }
    (cpu, memory)
}

/// What the runtime holds for this node right now.
struct RuntimeView {
    sandboxes: Vec<api::PodSandbox>,
    containers: Vec<api::Container>,
    container_stats: HashMap<String, api::ContainerStats>,
    sandbox_stats: HashMap<String, api::PodSandboxStats>,
}

async fn runtime_view(cri: &CriClient, node: &str) -> Result<RuntimeView, ServerError> {
    let selector = HashMap::from([(NODE_LABEL.to_string(), node.to_string())]);
    let sandboxes = cri
        .list_pod_sandbox(Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: PodSandboxState::SandboxReady as i32,
            }),
            label_selector: selector.clone(),
            ..Default::default()
        }))
        .await
        .map_err(ServerError::runtime)?;
    let ids: HashSet<&str> = sandboxes.iter().map(|s| s.id.as_str()).collect();
    let containers: Vec<api::Container> = cri
        .list_containers(Some(ContainerFilter {
            state: Some(ContainerStateValue {
                state: ContainerState::ContainerRunning as i32,
            }),
            ..Default::default()
        }))
        .await
        .map_err(ServerError::runtime)?
        .into_iter()
        .filter(|c| ids.contains(c.pod_sandbox_id.as_str()))
        .collect();
    let container_stats = cri
        .list_container_stats(None)
        .await
        .map_err(ServerError::runtime)?
        .into_iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
        .collect();
    // Optional: runtimes without sandbox stats get the sum of the containers instead.
    let sandbox_stats = match cri
        .list_pod_sandbox_stats(Some(PodSandboxStatsFilter {
            label_selector: selector,
            ..Default::default()
        }))
        .await
    {
        Ok(all) => all
            .into_iter()
            .filter_map(|s| Some((s.attributes.as_ref()?.id.clone(), s)))
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "ListPodSandboxStats failed; summing container stats");
            HashMap::new()
        }
    };
    Ok(RuntimeView {
        sandboxes,
        containers,
        container_stats,
        sandbox_stats,
    })
}

fn label(labels: &HashMap<String, String>, key: &str) -> String {
    labels.get(key).cloned().unwrap_or_default()
}

fn pod_stats(view: &RuntimeView, sandbox: &api::PodSandbox, rates: &mut RateTracker) -> PodStats {
    let mut containers: Vec<ContainerStats> = view
        .containers
        .iter()
        .filter(|c| c.pod_sandbox_id == sandbox.id)
        .map(|c| {
            let stats = view.container_stats.get(&c.id);
            ContainerStats {
                name: label(&c.labels, CONTAINER_NAME),
                start_time: time_from_nanos(c.created_at),
                cpu: cpu_of(&c.id, stats.and_then(|s| s.cpu.as_ref()), rates),
                memory: memory_of(stats.and_then(|s| s.memory.as_ref())),
            }
        })
        .collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let linux = view
        .sandbox_stats
        .get(&sandbox.id)
        .and_then(|s| s.linux.as_ref());
    let (summed_cpu, summed_memory) = sum_containers(&containers);
    let cpu = cpu_of(&sandbox.id, linux.and_then(|l| l.cpu.as_ref()), rates).or(summed_cpu);
    let memory = memory_of(linux.and_then(|l| l.memory.as_ref()))
        .filter(|m| m.values.working_set_bytes.is_some())
        .or(summed_memory);
    let network = linux.and_then(|l| l.network.as_ref()).and_then(|n| {
        let to = |i: &api::NetworkInterfaceUsage| super::model::InterfaceStats {
            name: i.name.clone(),
            rx_bytes: value(i.rx_bytes.as_ref()).unwrap_or(0),
            rx_errors: value(i.rx_errors.as_ref()).unwrap_or(0),
            tx_bytes: value(i.tx_bytes.as_ref()).unwrap_or(0),
            tx_errors: value(i.tx_errors.as_ref()).unwrap_or(0),
        };
        // containerd 1.6 leaves the network timestamp at zero: use the cpu sample's.
        let at = if n.timestamp > 0 {
            n.timestamp
        } else {
            linux
                .and_then(|l| l.cpu.as_ref())
                .map_or(0, |c| c.timestamp)
        };
        Some(NetworkStats {
            time: time_from_nanos(at),
            default: to(n.default_interface.as_ref()?),
            interfaces: n.interfaces.iter().map(to).collect(),
        })
    });
    PodStats {
        pod_ref: PodReference {
            name: label(&sandbox.labels, POD_NAME),
            namespace: label(&sandbox.labels, POD_NAMESPACE),
            uid: label(&sandbox.labels, POD_UID),
        },
        start_time: time_from_nanos(sandbox.created_at),
        containers,
        cpu,
        memory,
        network,
        volume: None,
    }
}

/// The summary of this node now. Fails only when the runtime cannot list sandboxes,
/// containers or container stats.
pub async fn summary(cri: &CriClient, node: &str) -> Result<Summary, ServerError> {
    let view = runtime_view(cri, node).await?;
    // procfs and statvfs are blocking calls, kept off the runtime's threads.
    let reading = tokio::task::spawn_blocking(|| procfs::read(Path::new("/")))
        .await
        .unwrap_or_default();
    let at = now_nanos();
    let mut rates = super::rate::global()
        .lock()
        .map_err(|_| ServerError::Runtime("stats rate cache poisoned".to_string()))?;
    let node_stats = node_stats(node, &reading, at, &mut rates);
    let mut pods: Vec<PodStats> = view
        .sandboxes
        .iter()
        .map(|s| pod_stats(&view, s, &mut rates))
        .collect();
    pods.sort_by(|a, b| {
        (&a.pod_ref.namespace, &a.pod_ref.name).cmp(&(&b.pod_ref.namespace, &b.pod_ref.name))
    });
    let mut live: HashSet<String> = view.sandboxes.iter().map(|s| s.id.clone()).collect();
    live.extend(view.containers.iter().map(|c| c.id.clone()));
    live.insert(NODE_KEY.to_string());
    rates.retain(&live);
    Ok(Summary {
        node: node_stats,
        pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::model::{InterfaceStats, nanos_of};

    const S: i64 = 1_000_000_000;

    fn container(name: &str, cores: Option<u64>, usage: u64, ws: u64, at: i64) -> ContainerStats {
        ContainerStats {
            name: name.into(),
            start_time: time_from_nanos(0),
            cpu: Some(CpuStats {
                time: time_from_nanos(at),
                usage_nano_cores: cores,
                usage_core_nano_seconds: Some(usage),
            }),
            memory: Some(MemoryStats {
                time: time_from_nanos(at),
                values: MemoryValues {
                    working_set_bytes: Some(ws),
                    ..MemoryValues::default()
                },
            }),
        }
    }

    #[test]
    fn pod_figures_sum_the_containers_at_the_latest_time() {
        let (cpu, memory) = sum_containers(&[
            container("a", Some(10), 100, 1000, 5 * S),
            container("b", Some(20), 200, 2000, 6 * S),
        ]);
        let (cpu, memory) = (cpu.unwrap(), memory.unwrap());
        assert_eq!(cpu.usage_nano_cores, Some(30));
        assert_eq!(cpu.usage_core_nano_seconds, Some(300));
        assert_eq!(nanos_of(&cpu.time), 6 * S);
        assert_eq!(memory.values.working_set_bytes, Some(3000));
        assert_eq!(
            sum_containers(&[]).0.map(|c| c.usage_core_nano_seconds),
            None
        );
    }

    #[test]
    fn cpu_rate_comes_from_the_previous_sample_unless_the_runtime_gives_one() {
        let mut rates = RateTracker::default();
        let sample = |at: i64, usage: u64, cores: Option<u64>| api::CpuUsage {
            timestamp: at,
            usage_core_nano_seconds: Some(api::UInt64Value { value: usage }),
            usage_nano_cores: cores.map(|value| api::UInt64Value { value }),
        };
        let first = cpu_of("c", Some(&sample(S, 0, None)), &mut rates).unwrap();
        assert_eq!(first.usage_nano_cores, None);
        let second = cpu_of("c", Some(&sample(3 * S, S as u64, None)), &mut rates).unwrap();
        assert_eq!(second.usage_nano_cores, Some(500_000_000));
        let runtime = cpu_of("c", Some(&sample(4 * S, S as u64, Some(7))), &mut rates).unwrap();
        assert_eq!(runtime.usage_nano_cores, Some(7));
        assert!(cpu_of("c", None, &mut rates).is_none());
    }

    #[test]
    fn node_stats_name_the_default_interface_and_rate_the_cpu() {
        let eth0 = InterfaceStats {
            name: "eth0".into(),
            rx_bytes: 5,
            ..InterfaceStats::default()
        };
        let reading = NodeReading {
            cpu_busy_nanos: Some(10 * S as u64),
            boot_time: Some(1_700_000_000),
            default_interface: Some("eth0".into()),
            interfaces: vec![eth0.clone()],
            ..NodeReading::default()
        };
        let mut rates = RateTracker::default();
        let first = node_stats("n", &reading, 100 * S, &mut rates);
        assert_eq!(first.cpu.unwrap().usage_nano_cores, None);
        assert_eq!(first.network.unwrap().default, eth0);
        assert_eq!(nanos_of(&first.start_time.unwrap()), 1_700_000_000 * S);
        let later = NodeReading {
            cpu_busy_nanos: Some(12 * S as u64),
            ..reading
        };
        let second = node_stats("n", &later, 102 * S, &mut rates);
        assert_eq!(second.cpu.unwrap().usage_nano_cores, Some(S as u64));
        assert!(second.memory.is_none() && second.fs.is_none());
    }
}
