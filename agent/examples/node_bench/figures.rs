//! What one run measured on one node (written as JSON, so runs of two agents can be put side
//! by side), and the side-by-side report with the targets.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::Requests;

/// Latencies of one set of pods, in milliseconds (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stats {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn new(mut latencies: Vec<Duration>) -> Stats {
        latencies.sort();
        let at = |p: usize| {
            let rank = (p * latencies.len()).div_ceil(100).max(1);
            latencies.get(rank - 1).copied().map_or(0.0, ms)
        };
        Stats {
            count: latencies.len(),
            p50: at(50),
            p90: at(90),
            p99: at(99),
            max: latencies.last().copied().map_or(0.0, ms),
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// N pods created at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Burst {
    pub n: usize,
    pub latencies: Stats,
    /// First create (or RunPodSandbox) -> last Ready (or StartContainer), in ms.
    pub all: f64,
    /// The agent's CPU time over that span (None for the floor).
    pub cpu_secs: Option<f64>,
}

/// The agent's memory at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
    /// Resident KiB by kind of mapping (binary, libraries, heap, anonymous, stack).
    #[serde(default)]
    pub by_kind: std::collections::BTreeMap<String, u64>,
}

/// API requests of the node's user in one window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ApiWindow {
    pub secs: f64,
    pub requests: Requests,
}

/// One histogram of the agent's own /metrics: p50 and p99 as bucket upper bounds, in ms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Share {
    pub series: String,
    /// Which pods the histogram held when it was read.
    #[serde(default)]
    pub over: String,
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
}

/// Everything one run measured on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeResult {
    pub agent: String,
    pub node: String,
    pub runtime: String,
    pub machine: String,
    pub floor_single: Stats,
    pub floor_bursts: Vec<Burst>,
    /// Agent start -> Node Ready, in ms.
    pub node_ready: f64,
    pub single: Stats,
    pub bursts: Vec<Burst>,
    pub idle_cpu_secs: f64,
    pub idle_secs: f64,
    pub idle_memory: Memory,
    pub after_memory: Memory,
    pub api_idle: ApiWindow,
    /// The single-pod lifecycles (create -> Ready -> delete -> gone), one after another.
    pub api_lifecycles: ApiWindow,
    pub lifecycles: usize,
    pub share: Vec<Share>,
    pub notes: Vec<String>,
}

impl NodeResult {
    /// Requests per idle node-minute.
    pub fn idle_per_minute(&self) -> f64 {
        self.api_idle.requests.rate(self.api_idle.secs) * 60.0
    }

    /// Requests per pod lifecycle, the idle rate over the lifecycles' window taken out.
    pub fn per_lifecycle(&self) -> f64 {
        let idle_rate = self.api_idle.requests.rate(self.api_idle.secs);
        #[allow(clippy::cast_precision_loss)]
        let total = self.api_lifecycles.requests.total as f64;
        #[allow(clippy::cast_precision_loss)]
        let n = self.lifecycles.max(1) as f64;
        (total - idle_rate * self.api_lifecycles.secs).max(0.0) / n
    }

    fn burst(&self, n: usize) -> Option<&Burst> {
        self.bursts.iter().find(|b| b.n == n)
    }

    fn floor_burst(&self, n: usize) -> Option<&Burst> {
        self.floor_bursts.iter().find(|b| b.n == n)
    }
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_string()
    }
}

/// One row: a figure of each agent, their ratio, and each one's relation to its floor.
struct Row {
    what: String,
    values: Vec<String>,
    ratio: String,
    floors: Vec<String>,
}

/// The report: the figures of each run side by side (the first is the one the ratios are of),
/// then the targets of issue 14 for the first.
pub fn report(results: &[NodeResult]) -> String {
    let mut out = String::new();
    for r in results {
        let _ = writeln!(
            out,
            "{} as node {}: {}; {}",
            r.agent, r.node, r.runtime, r.machine
        );
    }
    let _ = writeln!(out);
    out.push_str(&table(results, rows(results)));
    let _ = writeln!(out);
    out.push_str(&details(results));
    if let Some(first) = results.first() {
        let _ = writeln!(out);
        out.push_str(&targets(first, results.get(1)));
    }
    let notes: Vec<String> = results
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("  {}: {n}", r.agent)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\nnotes:");
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

fn rows(results: &[NodeResult]) -> Vec<Row> {
    let mut rows = Vec::new();
    let ratio_of = |f: &dyn Fn(&NodeResult) -> f64| match results {
        [a, b, ..] => ratio(f(a), f(b)),
        _ => "-".to_string(),
    };
    let single = |p: &dyn Fn(&Stats) -> f64, name: &str| Row {
        what: format!("single pod start {name} (ms)"),
        values: results
            .iter()
            .map(|r| format!("{:.0}", p(&r.single)))
            .collect(),
        ratio: ratio_of(&|r| p(&r.single)),
        floors: results
            .iter()
            .map(|r| format!("{:+.0} ms", p(&r.single) - p(&r.floor_single)))
            .collect(),
    };
    rows.push(single(&|s| s.p50, "p50"));
    rows.push(single(&|s| s.p99, "p99"));
    for n in burst_sizes(results) {
        let all = |r: &NodeResult| r.burst(n).map_or(0.0, |b| b.all);
        rows.push(Row {
            what: format!("{n} pods, all Ready (ms)"),
            values: results.iter().map(|r| format!("{:.0}", all(r))).collect(),
            ratio: ratio_of(&all),
            floors: results
                .iter()
                .map(|r| {
                    format!(
                        "{}x",
                        ratio(all(r), r.floor_burst(n).map_or(0.0, |b| b.all))
                    )
                })
                .collect(),
        });
        let cpu = |r: &NodeResult| r.burst(n).and_then(|b| b.cpu_secs).unwrap_or(0.0);
        rows.push(plain(
            &format!("{n} pods, agent CPU (s)"),
            results,
            &cpu,
            2,
            &ratio_of(&cpu),
        ));
    }
    let node_ready = |r: &NodeResult| r.node_ready;
    rows.push(plain(
        "agent start -> Node Ready (ms)",
        results,
        &node_ready,
        0,
        &ratio_of(&node_ready),
    ));
    let idle = |r: &NodeResult| mib(r.idle_memory.rss_kib);
    rows.push(plain(
        "RSS idle after start (MiB)",
        results,
        &idle,
        1,
        &ratio_of(&idle),
    ));
    let after = |r: &NodeResult| mib(r.after_memory.rss_kib);
    rows.push(plain(
        "RSS after the bursts, pods deleted (MiB)",
        results,
        &after,
        1,
        &ratio_of(&after),
    ));
    let peak = |r: &NodeResult| mib(r.after_memory.hwm_kib);
    rows.push(plain("RSS peak (MiB)", results, &peak, 1, &ratio_of(&peak)));
    #[allow(clippy::cast_precision_loss)]
    let threads = |r: &NodeResult| r.after_memory.threads as f64;
    rows.push(plain("threads", results, &threads, 0, &ratio_of(&threads)));
    let cpu_idle = |r: &NodeResult| r.idle_cpu_secs;
    let idle_secs = results.first().map_or(0.0, |r| r.idle_secs);
    rows.push(plain(
        &format!("CPU idle over {idle_secs:.0} s (s)"),
        results,
        &cpu_idle,
        2,
        &ratio_of(&cpu_idle),
    ));
    let lifecycle = NodeResult::per_lifecycle;
    rows.push(plain(
        "API requests per pod lifecycle",
        results,
        &lifecycle,
        1,
        &ratio_of(&lifecycle),
    ));
    let minute = NodeResult::idle_per_minute;
    rows.push(plain(
        "API requests per idle node-minute",
        results,
        &minute,
        1,
        &ratio_of(&minute),
    ));

    rows
}

fn table(results: &[NodeResult], rows: Vec<Row>) -> String {
    let mut header: Vec<String> = vec!["figure".to_string()];
    header.extend(results.iter().map(|r| r.agent.clone()));
    if results.len() > 1 {
        header.push("ratio".to_string());
    }
    header.extend(results.iter().map(|r| format!("{} vs floor", r.agent)));
    let mut table = vec![header];
    for r in rows {
        let mut line = vec![r.what];
        line.extend(r.values);
        if results.len() > 1 {
            line.push(r.ratio);
        }
        line.extend(r.floors);
        table.push(line);
    }
    format_table(&table)
}

/// The floors, the agents' own histograms and what their API requests were.
fn details(results: &[NodeResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "runtime floor (in-process CRI client, same concurrency, each agent's own runtime):"
    );
    for r in results {
        let bursts: Vec<String> = r
            .floor_bursts
            .iter()
            .map(|b| format!("{} pods {:.0} ms", b.n, b.all))
            .collect();
        let _ = writeln!(
            out,
            "  {}: single p50 {:.0} / p99 {:.0} ms; {}",
            r.agent,
            r.floor_single.p50,
            r.floor_single.p99,
            bursts.join(", ")
        );
    }
    for r in results.iter().filter(|r| !r.share.is_empty()) {
        let _ = writeln!(
            out,
            "{}'s own share of a pod start (from its /metrics):",
            r.agent
        );
        for s in &r.share {
            let _ = writeln!(
                out,
                "  {} over {}: {} observations, p50 <= {} ms, p99 <= {} ms",
                s.series, s.over, s.count, s.p50, s.p99
            );
        }
    }
    for r in results {
        for (when, m) in [
            ("idle", &r.idle_memory),
            ("after the bursts", &r.after_memory),
        ] {
            let parts: Vec<String> = m
                .by_kind
                .iter()
                .map(|(k, v)| format!("{k} {:.1}", mib(*v)))
                .collect();
            let _ = writeln!(
                out,
                "{}'s RSS {when} by mapping (MiB): {}",
                r.agent,
                parts.join(", ")
            );
        }
    }
    for r in results {
        for (window, api) in [("lifecycles", &r.api_lifecycles), ("idle", &r.api_idle)] {
            let _ = writeln!(
                out,
                "{}'s API requests, {window} window ({:.0} s): {}",
                r.agent,
                api.secs,
                breakdown(&api.requests.by_kind)
            );
        }
    }
    out
}

fn plain(
    what: &str,
    results: &[NodeResult],
    f: &dyn Fn(&NodeResult) -> f64,
    digits: usize,
    ratio: &str,
) -> Row {
    Row {
        what: what.to_string(),
        values: results
            .iter()
            .map(|r| format!("{:.*}", digits, f(r)))
            .collect(),
        ratio: ratio.to_string(),
        floors: results.iter().map(|_| String::new()).collect(),
    }
}

fn burst_sizes(results: &[NodeResult]) -> Vec<usize> {
    let mut sizes: Vec<usize> = results
        .iter()
        .flat_map(|r| r.bursts.iter().map(|b| b.n))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn breakdown(by_kind: &std::collections::BTreeMap<String, u64>) -> String {
    let mut kinds: Vec<(&String, &u64)> = by_kind.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn format_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// Issue 14's targets for `a`, against `b` (kubelet) where one was measured.
fn targets(a: &NodeResult, b: Option<&NodeResult>) -> String {
    let mut out = format!("targets for {}:\n", a.agent);
    let mut line = |met: Option<bool>, text: String| {
        let verdict = match met {
            Some(true) => "met    ",
            Some(false) => "NOT met",
            None => "n/a    ",
        };
        let _ = writeln!(out, "  {verdict}  {text}");
    };
    let gap = a.single.p50 - a.floor_single.p50;
    line(
        Some(gap <= 25.0),
        format!("single pod p50 <= floor + 25 ms (floor {gap:+.0} ms)"),
    );
    for n in [30, 100] {
        if let (Some(x), Some(f)) = (a.burst(n), a.floor_burst(n)) {
            line(
                Some(x.all <= 1.05 * f.all),
                format!(
                    "{n} pods all Ready <= 1.05x floor ({}x)",
                    ratio(x.all, f.all)
                ),
            );
            match b.and_then(|b| b.burst(n)) {
                Some(k) => line(
                    Some(x.all <= 0.6 * k.all),
                    format!(
                        "{n} pods all Ready <= 0.6x {} ({}x)",
                        k_name(b),
                        ratio(x.all, k.all)
                    ),
                ),
                None => line(
                    None,
                    format!("{n} pods all Ready <= 0.6x kubelet (not measured)"),
                ),
            }
        }
    }
    let idle = mib(a.idle_memory.rss_kib);
    line(
        Some(idle <= 16.0),
        format!("RSS idle <= 16 MiB ({idle:.1})"),
    );
    let after = mib(a.after_memory.rss_kib);
    line(
        Some(after <= 24.0),
        format!("RSS after the bursts and deletion <= 24 MiB ({after:.1})"),
    );
    for s in &a.share {
        line(
            Some(s.p99 <= 5.0),
            format!(
                "own share p99 <= 5 ms: {} over {} (p99 <= {} ms)",
                s.series, s.over, s.p99
            ),
        );
    }
    match b {
        Some(k) => {
            line(
                Some(at_most(a.per_lifecycle(), k.per_lifecycle())),
                format!(
                    "API requests per pod lifecycle <= {} ({:.1} vs {:.1})",
                    k.agent,
                    a.per_lifecycle(),
                    k.per_lifecycle()
                ),
            );
            line(
                Some(at_most(a.idle_per_minute(), k.idle_per_minute())),
                format!(
                    "API requests per idle node-minute <= {} ({:.1} vs {:.1})",
                    k.agent,
                    a.idle_per_minute(),
                    k.idle_per_minute()
                ),
            );
            line(
                Some(a.idle_cpu_secs <= 0.2 * k.idle_cpu_secs),
                format!(
                    "idle CPU <= 0.2x {} ({}x)",
                    k.agent,
                    ratio(a.idle_cpu_secs, k.idle_cpu_secs)
                ),
            );
        }
        None => line(
            None,
            "API requests and idle CPU against kubelet (no kubelet run)".to_string(),
        ),
    }
    out
}

/// `a <= b` for request rates measured over windows of slightly different lengths: equal to
/// the printed precision (0.1) counts as not more.
fn at_most(a: f64, b: f64) -> bool {
    a <= b + 0.05
}

fn k_name(b: Option<&NodeResult>) -> &str {
    b.map_or("kubelet", |b| b.agent.as_str())
}
