//! `/metrics/resource`: kubelet's resource metrics in Prometheus text format, with kubelet's
//! names, labels, help texts and a millisecond timestamp on each usage sample (the time the
//! figure was read), which metrics-server needs to compute rates.

use std::fmt::Write;

use super::model::{CpuStats, MemoryStats, Summary, nanos_of};

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<String>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64, timestamp_ms: Option<i64>) {
        let mut line = self.name.to_string();
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(line, "{{{}}}", pairs.join(","));
        }
        let _ = write!(line, " {value}");
        if let Some(ms) = timestamp_ms {
            let _ = write!(line, " {ms}");
        }
        self.samples.push(line);
    }

    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for s in &self.samples {
            out.push_str(s);
            out.push('\n');
        }
    }
}

/// Prometheus label-value escaping: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn millis(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    nanos_of(time) / 1_000_000
}

fn cpu_sample(f: &mut Family, labels: &[(&str, &str)], cpu: Option<&CpuStats>) {
    if let Some(cpu) = cpu
        && let Some(usage) = cpu.usage_core_nano_seconds
    {
        f.push(labels, usage as f64 / 1e9, Some(millis(&cpu.time)));
    }
}

fn memory_sample(f: &mut Family, labels: &[(&str, &str)], memory: Option<&MemoryStats>) {
    if let Some(m) = memory
        && let Some(ws) = m.values.working_set_bytes
    {
        f.push(labels, ws as f64, Some(millis(&m.time)));
    }
}

/// Renders the summary (or, with `None`, a failed scrape: only the error gauges, set to 1).
pub fn render(summary: Option<&Summary>) -> String {
    let mut container_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    let mut container_memory = Family::new(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        "gauge",
    );
    let mut container_start = Family::new(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        "gauge",
    );
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        "counter",
    );
    let mut node_memory = Family::new(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        "gauge",
    );
    let mut pod_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    let mut pod_memory = Family::new(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        "gauge",
    );
    let mut resource_scrape_error = Family::new(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    let mut scrape_error = Family::new(
        "scrape_error",
        "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    let error = if summary.is_some() { 0.0 } else { 1.0 };
    resource_scrape_error.push(&[], error, None);
    scrape_error.push(&[], error, None);
    if let Some(s) = summary {
        cpu_sample(&mut node_cpu, &[], s.node.cpu.as_ref());
        memory_sample(&mut node_memory, &[], s.node.memory.as_ref());
        for pod in &s.pods {
            let (name, ns) = (pod.pod_ref.name.as_str(), pod.pod_ref.namespace.as_str());
            for c in &pod.containers {
                let labels = [
                    ("container", c.name.as_str()),
                    ("namespace", ns),
                    ("pod", name),
                ];
                cpu_sample(&mut container_cpu, &labels, c.cpu.as_ref());
                memory_sample(&mut container_memory, &labels, c.memory.as_ref());
                let start = nanos_of(&c.start_time);
                if start > 0 {
                    container_start.push(&labels, start as f64 / 1e9, None);
                }
            }
            let labels = [("namespace", ns), ("pod", name)];
            cpu_sample(&mut pod_cpu, &labels, pod.cpu.as_ref());
            memory_sample(&mut pod_memory, &labels, pod.memory.as_ref());
        }
    }
    let mut out = String::new();
    for f in [
        &container_cpu,
        &container_memory,
        &container_start,
        &node_cpu,
        &node_memory,
        &pod_cpu,
        &pod_memory,
        &resource_scrape_error,
        &scrape_error,
    ] {
        f.render(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::*;
    use super::*;

    fn t(ms: i64) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        time_from_nanos(ms * 1_000_000)
    }

    #[test]
    fn renders_kubelet_names_labels_and_timestamps() {
        let cpu = |ms, ns| {
            Some(CpuStats {
                time: t(ms),
                usage_nano_cores: None,
                usage_core_nano_seconds: Some(ns),
            })
        };
        let mem = |ms, ws| {
            Some(MemoryStats {
                time: t(ms),
                values: MemoryValues {
                    working_set_bytes: Some(ws),
                    ..MemoryValues::default()
                },
            })
        };
        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                start_time: None,
                cpu: cpu(1_700_000_000_123, 2_500_000_000),
                memory: mem(1_700_000_000_124, 1024),
                network: None,
                fs: None,
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                start_time: t(1_600_000_000_000),
                containers: vec![ContainerStats {
                    name: "c\"q".into(),
                    start_time: t(1_600_000_000_500),
                    cpu: cpu(1_700_000_000_200, 1_000_000),
                    memory: mem(1_700_000_000_201, 4096),
                }],
                cpu: cpu(1_700_000_000_300, 1_000_000),
                memory: mem(1_700_000_000_301, 8192),
                network: None,
                volume: None,
            }],
        };
        let text = render(Some(&summary));
        for line in [
            "# TYPE container_cpu_usage_seconds_total counter",
            "container_cpu_usage_seconds_total{container=\"c\\\"q\",namespace=\"ns\",pod=\"p\"} 0.001 1700000000200",
            "container_memory_working_set_bytes{container=\"c\\\"q\",namespace=\"ns\",pod=\"p\"} 4096 1700000000201",
            "container_start_time_seconds{container=\"c\\\"q\",namespace=\"ns\",pod=\"p\"} 1600000000.5",
            "node_cpu_usage_seconds_total 2.5 1700000000123",
            "node_memory_working_set_bytes 1024 1700000000124",
            "pod_cpu_usage_seconds_total{namespace=\"ns\",pod=\"p\"} 0.001 1700000000300",
            "pod_memory_working_set_bytes{namespace=\"ns\",pod=\"p\"} 8192 1700000000301",
            "resource_scrape_error 0",
            "scrape_error 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn failed_scrape_sets_the_error_gauges_only() {
        let text = render(None);
        assert!(text.contains("\nresource_scrape_error 1\n"));
        assert!(text.contains("\nscrape_error 1\n"));
        assert!(!text.contains("node_cpu_usage_seconds_total"));
    }
}
