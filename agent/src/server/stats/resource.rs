//! `/metrics/resource`: kubelet's resource metrics in Prometheus text format, with kubelet's
//! names, labels, help texts and a millisecond timestamp on each usage sample (the time the
//! figure was read), which metrics-server needs to compute rates. Each scrape builds const
//! metric families from the summary and encodes them with the `prometheus` crate's
//! `TextEncoder`, which writes a sample's `timestamp_ms` when it is set; kubelet's collector
//! does the same (`NewLazyMetricWithTimestamp`), so no registry holds state between scrapes.

use prometheus::TextEncoder;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::model::{CpuStats, MemoryStats, Summary, nanos_of};

/// One family of the scrape, filled sample by sample.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Family(family)
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64, timestamp_ms: Option<i64>) {
        let mut metric = Metric::default();
        metric.set_label(
            labels
                .iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name((*name).to_owned());
                    pair.set_value((*value).to_owned());
                    pair
                })
                .collect(),
        );
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        if let Some(ms) = timestamp_ms {
            metric.set_timestamp_ms(ms);
        }
        self.0.mut_metric().push(metric);
    }
}

fn millis(time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    nanos_of(time) / 1_000_000
}

/// `n` as the f64 of a sample; past 2^53 it rounds, as every Prometheus value does.
#[allow(clippy::cast_precision_loss)]
fn sample(n: u64) -> f64 {
    n as f64
}

fn cpu_sample(f: &mut Family, labels: &[(&str, &str)], cpu: Option<&CpuStats>) {
    if let Some(cpu) = cpu
        && let Some(usage) = cpu.usage_core_nano_seconds
    {
        f.push(labels, sample(usage) / 1e9, Some(millis(&cpu.time)));
    }
}

fn memory_sample(f: &mut Family, labels: &[(&str, &str)], memory: Option<&MemoryStats>) {
    if let Some(m) = memory
        && let Some(ws) = m.values.working_set_bytes
    {
        f.push(labels, sample(ws), Some(millis(&m.time)));
    }
}

/// Renders the summary (or, with `None`, a failed scrape: only the error gauges, set to 1).
pub fn render(summary: Option<&Summary>) -> Result<String, prometheus::Error> {
    let mut container_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        MetricType::COUNTER,
    );
    let mut container_memory = Family::new(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        MetricType::GAUGE,
    );
    let mut container_start = Family::new(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        MetricType::GAUGE,
    );
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        MetricType::COUNTER,
    );
    let mut node_memory = Family::new(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        MetricType::GAUGE,
    );
    let mut pod_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        MetricType::COUNTER,
    );
    let mut pod_memory = Family::new(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        MetricType::GAUGE,
    );
    let mut resource_scrape_error = Family::new(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        MetricType::GAUGE,
    );
    let mut scrape_error = Family::new(
        "scrape_error",
        "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
        MetricType::GAUGE,
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
                    container_start.push(&labels, sample(start.unsigned_abs()) / 1e9, None);
                }
            }
            let labels = [("namespace", ns), ("pod", name)];
            cpu_sample(&mut pod_cpu, &labels, pod.cpu.as_ref());
            memory_sample(&mut pod_memory, &labels, pod.memory.as_ref());
        }
    }
    let families: Vec<MetricFamily> = [
        container_cpu,
        container_memory,
        container_start,
        node_cpu,
        node_memory,
        pod_cpu,
        pod_memory,
        resource_scrape_error,
        scrape_error,
    ]
    .into_iter()
    .map(|f| f.0)
    // A family without samples is left out, as kubelet leaves it out.
    .filter(|f| !f.get_metric().is_empty())
    .collect();
    let mut out = String::new();
    TextEncoder::new().encode_utf8(&families, &mut out)?;
    Ok(out)
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
        let text = render(Some(&summary)).unwrap();
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
        let text = render(None).unwrap();
        assert!(text.contains("\nresource_scrape_error 1\n"));
        assert!(text.contains("\nscrape_error 1\n"));
        assert!(!text.contains("node_cpu_usage_seconds_total"));
    }
}
