//! Pod start benchmark (issue 3): how long minikubelet takes from a pod's creation to Ready,
//! next to the same work done with raw CRI calls on the same containerd, at the same concurrency.
//!
//! Run it through `deploy/dev/bench-pods [N...]`, which builds minikubelet and this example in
//! release mode with the dev cluster's environment. By hand:
//!
//! ```sh
//! eval "$(deploy/dev/cluster env)"
//! cargo build --release -p minikubelet --bins --example pod_start_bench
//! "$CARGO_TARGET_DIR/release/examples/pod_start_bench" 1 30 100
//! ```
//!
//! It starts its own minikubelet as node `mkl-bench` (own root dir, no healthz port, log in
//! `$MKL_STATE_DIR/logs/mkl-bench.log`), then for each N:
//! - creates N pods at once in namespace `mkl-bench`, bound to the node, and measures per pod the
//!   time from the client instant just before its create call to the first watch event showing
//!   it Ready, and the time from the first create until all N are Ready; deletes them and waits
//!   until they and their sandboxes are gone;
//! - runs N concurrent RunPodSandbox + CreateContainer + StartContainer sequences through
//!   `cri-client` (or `crictl` processes with `--crictl`) with an equivalent pod, and removes them.
//!
//! It prints p50/p90/p99 and totals for both, whether the issue's targets are met, and the
//! stage breakdown from the pods' `Ready` events. Everything it made is removed on every path
//! (also on Ctrl-C); the agent is stopped with SIGTERM.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use cri_client::{ClientOptions, CriClient, api};
use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use minikubelet::pods::NODE_LABEL;
use serde_json::json;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// The benchmark's node, namespace of its pods, and namespace of the raw baseline's sandboxes.
const NODE: &str = "mkl-bench";
const NAMESPACE: &str = "mkl-bench";
const RAW_NAMESPACE: &str = "mkl-bench-raw";
/// Label on the benchmark's pods: which round they belong to.
const ROUND_LABEL: &str = "bench.minikubelet.io/round";
/// Label on the raw baseline's sandboxes (so every one of them can be found and removed).
const RAW_LABEL: &str = "bench.minikubelet.io/raw";
/// cgroupfs parent of the raw baseline's sandboxes (minikubelet's are under /kubepods).
const RAW_CGROUP: &str = "mkl-bench-raw";
/// Where minikubelet keeps pod logs (its POD_LOG_ROOT).
const POD_LOG_ROOT: &str = "/var/log/pods";
/// The command of every container, in the pods and in the baseline.
const COMMAND: [&str; 3] = ["sh", "-c", "exec sleep 3600"];
/// The only fixed wait: the interval between two polls.
const POLL: Duration = Duration::from_millis(200);
const AGENT_READY_TIMEOUT: Duration = Duration::from_secs(180);
const AGENT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
const NAMESPACE_TIMEOUT: Duration = Duration::from_secs(180);
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// Pod start benchmark: minikubelet (API create -> Ready) against raw CRI
/// (RunPodSandbox + CreateContainer + StartContainer) on the dev cluster's containerd.
#[derive(Parser, Debug)]
#[command(name = "pod_start_bench")]
struct Args {
    /// Pod counts: one round of N pods created at once per value.
    #[arg(default_values_t = [1usize, 30, 100])]
    counts: Vec<usize>,

    /// Run the raw baseline with crictl processes (runp, create --no-pull, start with JSON
    /// configs) instead of the same CRI calls made from this process.
    #[arg(long)]
    crictl: bool,

    /// The minikubelet binary [default: $CARGO_TARGET_DIR/release/minikubelet].
    #[arg(long, value_name = "PATH")]
    minikubelet: Option<PathBuf>,

    /// Node kubeconfig for mkl-bench [default: `deploy/dev/cluster node-kubeconfig mkl-bench`].
    #[arg(long, value_name = "PATH")]
    node_kubeconfig: Option<PathBuf>,

    /// The agent's log file [default: $MKL_STATE_DIR/logs/mkl-bench.log].
    #[arg(long, value_name = "PATH")]
    agent_log: Option<PathBuf>,

    /// Seconds allowed for one round's pods to become Ready [default: 120 + 3 x N].
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pod_start_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Res<()> {
    if args.counts.is_empty() || args.counts.contains(&0) {
        return Err("pod counts must be at least 1".into());
    }
    let mut bench = Bench::new(&args).await?;
    let outcome = tokio::select! {
        r = bench.body(&args.counts) => r,
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Err("interrupted; cleaning up".into()),
            Err(e) => Err(format!("cannot wait for Ctrl-C: {e}").into()),
        },
    };
    if let Err(e) = &outcome {
        eprintln!("pod_start_bench: {e}");
    }
    eprintln!("cleaning up (pods, namespace {NAMESPACE}, baseline sandboxes, agent, Node, Lease)");
    let problems = bench.cleanup().await;
    for p in &problems {
        eprintln!("pod_start_bench: cleanup: {p}");
    }
    if !bench.rows.is_empty() {
        println!();
        println!("{}", bench.header);
        print_report(&bench.rows, args.crictl);
    }
    match (outcome, problems.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => Err("cleanup was incomplete (see above)".into()),
        // The cause was printed above, before the cleanup's lines.
        (Err(_), _) => Err(format!(
            "failed{} (agent log: {})",
            if bench.rows.is_empty() {
                ""
            } else {
                "; partial figures above"
            },
            bench.agent_log.display()
        )
        .into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

/// Latency figures of one side of one round.
#[derive(Debug, Clone, Copy)]
struct Stats {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    /// From the first create (or first RunPodSandbox) until the last pod is Ready (started).
    all: Duration,
}

impl Stats {
    fn new(mut latencies: Vec<Duration>, all: Duration) -> Stats {
        latencies.sort();
        Stats {
            p50: percentile(&latencies, 50),
            p90: percentile(&latencies, 90),
            p99: percentile(&latencies, 99),
            all,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// One N: both sides, and what the Ready events said.
struct Row {
    n: usize,
    mkl: Stats,
    raw: Stats,
    /// For N=1, the pod's Ready event; otherwise the median of each stage over the round.
    breakdown: String,
    /// Anything that makes this round's figures suspect.
    notes: Vec<String>,
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn triple(s: &Stats) -> String {
    format!("{}/{}/{}", ms(s.p50), ms(s.p90), ms(s.p99))
}

fn print_report(rows: &[Row], crictl: bool) {
    let baseline = if crictl {
        "through crictl processes\n    (runp, create --no-pull, start with JSON configs; includes process-spawn time)"
    } else {
        "through minikubelet's\n    cri-client (the same calls as `crictl runp/create/start`, without process-spawn noise)"
    };
    println!(
        "{:<5}{:<32}{:<17}{:<27}{:<19}{:<18}total ratio",
        "N",
        "minikubelet p50/p90/p99 (ms)",
        "all Ready (ms)",
        "raw CRI p50/p90/p99 (ms)",
        "all started (ms)",
        "median gap (ms)"
    );
    for r in rows {
        let sign = if r.mkl.p50 >= r.raw.p50 { '+' } else { '-' };
        let gap = format!("{sign}{}", ms(r.mkl.p50.abs_diff(r.raw.p50)));
        println!(
            "{:<5}{:<32}{:<17}{:<27}{:<19}{:<18}{}",
            r.n,
            triple(&r.mkl),
            ms(r.mkl.all),
            triple(&r.raw),
            ms(r.raw.all),
            gap,
            ratio(r.mkl.all, r.raw.all)
        );
    }
    println!();
    println!("targets:");
    let one = rows.iter().find(|r| r.n == 1);
    match one {
        Some(r) => {
            let gap = r.mkl.p50.saturating_sub(r.raw.p50);
            let met = gap <= Duration::from_millis(50);
            println!(
                "  one pod median within 50 ms of raw CRI: {} (gap {} ms at N=1)",
                if met { "met" } else { "NOT met" },
                ms(gap)
            );
        }
        None => println!("  one pod median within 50 ms of raw CRI: not measured (no N=1 round)"),
    }
    match rows.iter().find(|r| r.n == 100) {
        Some(r) => {
            let met = r.mkl.all.as_secs_f64() <= 1.2 * r.raw.all.as_secs_f64();
            println!(
                "  100 pods all Ready in <= 1.2x raw: {} ({}x at N=100)",
                if met { "met" } else { "NOT met" },
                ratio(r.mkl.all, r.raw.all)
            );
        }
        None => println!("  100 pods all Ready in <= 1.2x raw: not measured (no N=100 round)"),
    }
    println!();
    println!("Ready events (minikubelet's own breakdown of each pod's start):");
    for r in rows {
        println!("  N={}: {}", r.n, r.breakdown);
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("  N={}: {n}", r.n)))
        .collect();
    if !notes.is_empty() {
        println!();
        println!("notes:");
        for n in notes {
            println!("{n}");
        }
    }
    println!();
    println!("method:");
    println!(
        "  minikubelet: per pod, from the client instant just before its create call to the first"
    );
    println!(
        "    watch event showing Ready=True (creationTimestamp has 1 s resolution); all Ready ="
    );
    println!(
        "    first create -> last Ready. The client's connections are opened before the creates."
    );
    println!("  raw CRI: RunPodSandbox + CreateContainer + StartContainer per pod, {baseline},");
    println!(
        "    on the same containerd at the same concurrency, with the same image, command, log"
    );
    println!(
        "    directory and cgroup layout; all started = first RunPodSandbox -> last StartContainer."
    );
    println!(
        "  percentiles are nearest-rank; gap = minikubelet p50 - raw p50; ratio = all Ready / all started."
    );
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "-".to_string();
    }
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
}

/// Parses "Ready in 412 ms: admission 0, volumes 0, sandbox 150, ..." into (stage, ms) pairs,
/// "ready" first.
fn parse_breakdown(note: &str) -> Option<Vec<(String, u64)>> {
    let rest = note.strip_prefix("Ready in ")?;
    let (total, stages) = rest.split_once(" ms: ")?;
    let mut out = vec![("ready".to_string(), total.trim().parse().ok()?)];
    for part in stages.split(", ") {
        let (name, value) = part.rsplit_once(' ')?;
        out.push((name.to_string(), value.parse().ok()?));
    }
    Some(out)
}

/// The median of each stage over a round's Ready events.
fn stage_medians(notes: &[String], n: usize) -> String {
    let parsed: Vec<Vec<(String, u64)>> = notes.iter().filter_map(|n| parse_breakdown(n)).collect();
    let Some(first) = parsed.first() else {
        return format!("no Ready events found (0 of {n})");
    };
    let medians: Vec<String> = first
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let mut v: Vec<u64> = parsed
                .iter()
                .filter_map(|p| p.get(i).map(|(_, v)| *v))
                .collect();
            v.sort_unstable();
            let median = v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0);
            format!("{name} {median}")
        })
        .collect();
    format!(
        "stage medians over {} of {n} Ready events (ms): {}",
        parsed.len(),
        medians.join(", ")
    )
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Polls `check` every POLL until it yields Some or `timeout` passes. Errors from `check` count
/// as "not yet" (the API server or containerd may be restarting); the last one is reported on
/// timeout. `alive` is checked first on every poll and stops the wait at once.
async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    alive: impl Fn() -> Res<()>,
    mut check: F,
) -> Res<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        alive()?;
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            let last = last_error.map(|e| format!(" (last error: {e})"));
            return Err(format!(
                "timed out after {} s waiting for {what}{}",
                timeout.as_secs(),
                last.unwrap_or_default()
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (up to 60 s) for the pod watch's first sync.
async fn watch_synced(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Res<()> {
    let synced = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(seen) = rx.recv().await {
            if matches!(seen, Seen::Synced) {
                return true;
            }
        }
        false
    })
    .await;
    if synced != Ok(true) {
        return Err(format!("the watch on namespace {NAMESPACE} did not start within 60 s").into());
    }
    Ok(())
}

// A Result: the shape of poll_until's liveness check.
#[allow(clippy::unnecessary_wraps)]
fn always_alive() -> Res<()> {
    Ok(())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Ok for success and for 404.
fn ok_or_gone<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn label_filter(key: &str, value: &str) -> api::PodSandboxFilter {
    api::PodSandboxFilter {
        label_selector: [(key.to_string(), value.to_string())].into_iter().collect(),
        ..Default::default()
    }
}

/// The cgroup hierarchies: the v2 root and every v1 controller directory.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        out.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    out
}

/// Removes the (empty) cgroup directory `rel` in every hierarchy; true when none is left.
fn rmdir_cgroup(rel: &str) -> bool {
    let mut all_gone = true;
    for h in cgroup_hierarchies() {
        let dir = h.join(rel);
        if dir.is_dir() && std::fs::remove_dir(&dir).is_err() {
            all_gone = false;
        }
    }
    all_gone
}

/// Removes the raw baseline's cgroup parent and the (empty) pod cgroups under it in every
/// hierarchy; true when none is left.
fn remove_raw_cgroups() -> bool {
    let mut all_gone = true;
    for h in cgroup_hierarchies() {
        let dir = h.join(RAW_CGROUP);
        if !dir.is_dir() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.filter_map(Result::ok) {
                if child.path().is_dir() {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        if std::fs::remove_dir(&dir).is_err() {
            all_gone = false;
        }
    }
    all_gone
}

/// The last `n` lines of a file, indented (for a failure message).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .fold(String::new(), |mut out, l| {
            let _ = writeln!(out, "    {l}");
            out
        })
}

/// Aborts a spawned task when dropped (the round's watch ends with the round).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the round's watch reports.
enum Seen {
    /// The initial list is done: creates from now on are seen.
    Synced,
    /// A pod was first seen Ready, at this instant.
    Ready(String, Instant),
}

/// Watches the round's pods; reports each pod's first Ready once.
async fn watch_ready(
    api: Api<Pod>,
    selector: String,
    tx: mpsc::UnboundedSender<Seen>,
    errors: Arc<AtomicUsize>,
) {
    let stream =
        watcher::watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        let at = Instant::now();
        let pod = match event {
            Ok(Event::InitDone) => {
                if tx.send(Seen::Synced).is_err() {
                    return;
                }
                continue;
            }
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if !pod_ready(&pod) {
            continue;
        }
        let Some(name) = pod.metadata.name else {
            continue;
        };
        if seen.insert(name.clone()) && tx.send(Seen::Ready(name, at)).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object builders

fn bench_pod(name: &str, round: &str, image: &str) -> Res<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {ROUND_LABEL: round}},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "sleep",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": COMMAND,
            }],
        },
    }))?)
}

fn raw_sandbox_config(name: &str, uid: &str, log_dir: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: RAW_NAMESPACE.to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.display().to_string(),
        labels: [(RAW_LABEL.to_string(), "1".to_string())]
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{RAW_CGROUP}/pod{uid}"),
            security_context: Some(api::LinuxSandboxSecurityContext::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn raw_container_config(image: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "sleep".to_string(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: COMMAND.iter().map(|s| (*s).to_string()).collect(),
        log_path: "sleep/0.log".to_string(),
        linux: Some(api::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// The same configs as JSON for crictl (field names as in the CRI protobuf).
fn raw_crictl_configs(name: &str, uid: &str, log_dir: &Path, image: &str) -> (String, String) {
    let pod = json!({
        "metadata": {"name": name, "uid": uid, "namespace": RAW_NAMESPACE, "attempt": 0},
        "hostname": name,
        "log_directory": log_dir.display().to_string(),
        "labels": {RAW_LABEL: "1"},
        "linux": {"cgroup_parent": format!("/{RAW_CGROUP}/pod{uid}"), "security_context": {}},
    });
    let ctr = json!({
        "metadata": {"name": "sleep", "attempt": 0},
        "image": {"image": image},
        "command": COMMAND,
        "log_path": "sleep/0.log",
        "linux": {},
    });
    (pod.to_string(), ctr.to_string())
}

// ---------------------------------------------------------------------------------------------
// The benchmark

/// The agent under test: its pid, its exit status once it exited (a task owns the child and
/// waits on it), its log and root dir.
struct AgentProc {
    pid: u32,
    exited: watch::Receiver<Option<String>>,
    _root: tempfile::TempDir,
}

struct Bench {
    kube: kube::Client,
    cri: CriClient,
    endpoint: String,
    image: String,
    pause_image: Option<String>,
    agent_bin: PathBuf,
    node_kubeconfig: PathBuf,
    agent_log: PathBuf,
    max_pods: usize,
    timeout: Option<u64>,
    crictl: bool,
    /// Raw baseline log dirs and crictl configs.
    work: tempfile::TempDir,
    agent: Option<AgentProc>,
    rounds: usize,
    rows: Vec<Row>,
    /// What was measured on what: binary, runtime, image, CPUs, load at the start.
    header: String,
}

fn env_var(name: &str) -> Res<String> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run through deploy/dev/bench-pods, or eval \"$(deploy/dev/cluster env)\" first").into()
    })
}

/// The repository root (this example lives in agent/).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl Bench {
    async fn new(args: &Args) -> Res<Bench> {
        env_var("KUBECONFIG")?;
        let endpoint = env_var("CONTAINER_RUNTIME_ENDPOINT")?;
        let image = std::env::var("MKL_BUSYBOX_IMAGE")
            .unwrap_or_else(|_| "127.0.0.1:5000/busybox:1.35".to_string());
        let pause_image = std::env::var("MKL_PAUSE_IMAGE").ok();
        let agent_bin = match &args.minikubelet {
            Some(p) => p.clone(),
            None => PathBuf::from(env_var("CARGO_TARGET_DIR")?).join("release/minikubelet"),
        };
        if !agent_bin.is_file() {
            return Err(format!(
                "{} does not exist: build it with `cargo build --release -p minikubelet`",
                agent_bin.display()
            )
            .into());
        }
        let node_kubeconfig = match &args.node_kubeconfig {
            Some(p) => p.clone(),
            None => mint_node_kubeconfig().await?,
        };
        let agent_log = match &args.agent_log {
            Some(p) => p.clone(),
            None => PathBuf::from(env_var("MKL_STATE_DIR")?).join("logs/mkl-bench.log"),
        };
        if let Some(dir) = agent_log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let kube = kube::Client::try_default()
            .await
            .map_err(|e| format!("cannot make an admin client from KUBECONFIG: {e}"))?;
        let cri = CriClient::connect(&endpoint, ClientOptions::default())
            .await
            .map_err(|e| format!("cannot reach containerd at {endpoint}: {e}"))?;
        let work = tempfile::Builder::new()
            .prefix("mkl-bench-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let max_n = args.counts.iter().copied().max().unwrap_or(1);
        Ok(Bench {
            kube,
            cri,
            endpoint,
            image,
            pause_image,
            agent_bin,
            node_kubeconfig,
            agent_log,
            max_pods: max_n.max(100) + 10,
            timeout: args.timeout,
            crictl: args.crictl,
            work,
            agent: None,
            rounds: 0,
            rows: Vec::new(),
            header: String::new(),
        })
    }

    async fn body(&mut self, counts: &[usize]) -> Res<()> {
        self.preflight().await?;
        self.start_agent().await?;
        self.create_namespace().await?;
        for &n in counts {
            let (mkl, breakdown, mut notes) = self.round_minikubelet(n).await?;
            let raw = self.round_raw(n).await?;
            eprintln!(
                "N={n}: raw CRI p50/p90/p99 {} ms, all started {} ms",
                triple(&raw),
                ms(raw.all)
            );
            if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
                let one = load.split_whitespace().next().unwrap_or("?").to_string();
                if one.parse::<f64>().is_ok_and(|l| l > 2.0) {
                    notes.push(format!(
                        "load average {one} after the round (2 cores): noisy"
                    ));
                }
            }
            self.rows.push(Row {
                n,
                mkl,
                raw,
                breakdown,
                notes,
            });
        }
        Ok(())
    }

    /// Refuses to run next to another benchmark; removes what a crashed run left; makes sure
    /// the images are present, so no pull is measured.
    async fn preflight(&mut self) -> Res<()> {
        let leases: Api<Lease> = Api::namespaced(self.kube.clone(), "kube-node-lease");
        let lease = leases
            .get_opt(NODE)
            .await
            .map_err(|e| format!("cannot reach the API server: {e}"))?;
        if let Some(renewed) = lease
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time)
            .map(|t| t.0)
        {
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(renewed);
            if age.as_secs() < 60 {
                return Err(format!(
                    "another benchmark seems to be running: Lease kube-node-lease/{NODE} was renewed {} s ago",
                    age.as_secs()
                )
                .into());
            }
        }
        // Leftovers of an earlier run that did not finish: its pods (no agent runs for them,
        // so they are deleted at once), its namespace, its sandboxes, its Node and Lease.
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        if namespaces.get_opt(NAMESPACE).await?.is_some() {
            eprintln!(
                "deleting namespace {NAMESPACE} (left by an earlier run) and waiting until it is gone"
            );
            let pods: Api<Pod> = Api::namespaced(self.kube.clone(), NAMESPACE);
            ok_or_gone(
                pods.delete_collection(
                    &DeleteParams::default().grace_period(0),
                    &ListParams::default(),
                )
                .await,
            )?;
            ok_or_gone(namespaces.delete(NAMESPACE, &DeleteParams::default()).await)?;
            let ns = &namespaces;
            poll_until(
                &format!("namespace {NAMESPACE} left by an earlier run to be deleted"),
                NAMESPACE_TIMEOUT,
                always_alive,
                || async move { Ok(ns.get_opt(NAMESPACE).await?.is_none().then_some(())) },
            )
            .await?;
        }
        let left = self.remove_node_sandboxes().await?;
        if left > 0 {
            eprintln!("removed {left} sandbox(es) of node {NODE} left by an earlier run");
        }
        self.remove_raw_sandboxes().await?;
        self.delete_node().await?;
        for image in std::iter::once(&self.image).chain(self.pause_image.as_ref()) {
            self.cri
                .pull_image(image, None, None)
                .await
                .map_err(|e| format!("containerd cannot pull {image}: {e}"))?;
        }
        let runtime = self.cri.version().await.map_or_else(
            |_| "unknown runtime".to_string(),
            |v| format!("{} {}", v.runtime_name, v.runtime_version),
        );
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        self.header = format!(
            "pod start benchmark: {} on {runtime}, image {}, {cpus} CPUs, load average at start {}",
            self.agent_bin.display(),
            self.image,
            load.split_whitespace().next().unwrap_or("?")
        );
        Ok(())
    }

    /// Starts minikubelet as node mkl-bench and waits until the Node is Ready.
    async fn start_agent(&mut self) -> Res<()> {
        let root = tempfile::Builder::new()
            .prefix("mkl-bench-root-")
            .tempdir()
            .map_err(|e| format!("cannot create the agent's root dir: {e}"))?;
        let log = std::fs::File::create(&self.agent_log)
            .map_err(|e| format!("cannot create {}: {e}", self.agent_log.display()))?;
        let mut child = Command::new(&self.agent_bin)
            .arg(format!("--kubeconfig={}", self.node_kubeconfig.display()))
            .arg(format!("--hostname-override={NODE}"))
            .arg("--node-ip=127.0.0.1")
            .arg(format!("--container-runtime-endpoint={}", self.endpoint))
            .arg(format!("--root-dir={}", root.path().join("root").display()))
            .arg("--healthz-port=0")
            .arg(format!("--max-pods={}", self.max_pods))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.agent_bin.display()))?;
        let pid = child.id().ok_or("minikubelet exited at once")?;
        let (tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            tx.send_replace(Some(status));
        });
        eprintln!(
            "started minikubelet (pid {pid}) as node {NODE}; log: {}",
            self.agent_log.display()
        );
        self.agent = Some(AgentProc {
            pid,
            exited,
            _root: root,
        });
        let nodes: Api<Node> = Api::all(self.kube.clone());
        let nodes = &nodes;
        let t0 = Instant::now();
        let waited = poll_until(
            &format!("node {NODE} to be Ready"),
            AGENT_READY_TIMEOUT,
            || self.agent_alive(),
            || async move { Ok(nodes.get_opt(NODE).await?.filter(node_ready).map(|_| ())) },
        )
        .await;
        if let Err(e) = waited {
            return Err(format!(
                "{e}; last lines of {}:\n{}",
                self.agent_log.display(),
                tail(&self.agent_log, 15)
            )
            .into());
        }
        eprintln!("node {NODE} Ready after {} ms", ms(t0.elapsed()));
        Ok(())
    }

    /// An error once the agent has exited.
    fn agent_alive(&self) -> Res<()> {
        match &self.agent {
            None => Err("minikubelet is not running".into()),
            Some(a) => match a.exited.borrow().as_ref() {
                None => Ok(()),
                Some(status) => Err(format!(
                    "minikubelet exited ({status}); log: {}",
                    self.agent_log.display()
                )
                .into()),
            },
        }
    }

    async fn create_namespace(&self) -> Res<()> {
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .map_err(|e| format!("cannot create namespace {NAMESPACE}: {e}"))?;
        // Pods are admitted only once the service-account controller made "default".
        let sa: Api<ServiceAccount> = Api::namespaced(self.kube.clone(), NAMESPACE);
        let sa = &sa;
        poll_until(
            &format!("service account {NAMESPACE}/default"),
            Duration::from_secs(60),
            always_alive,
            || async move { Ok(sa.get_opt("default").await?.map(|_| ())) },
        )
        .await
    }

    fn ready_timeout(&self, n: usize) -> Duration {
        Duration::from_secs(
            self.timeout
                .unwrap_or(120 + 3 * u64::try_from(n).unwrap_or(u64::MAX / 8)),
        )
    }

    /// One round through minikubelet: N pods created at once, each timed until Ready; then
    /// deleted. Returns the figures, the Ready-event breakdown and notes.
    async fn round_minikubelet(&mut self, n: usize) -> Res<(Stats, String, Vec<String>)> {
        self.rounds += 1;
        let round = format!("r{}-n{n}", self.rounds);
        let selector = format!("{ROUND_LABEL}={round}");
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), NAMESPACE);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watch_errors = Arc::new(AtomicUsize::new(0));
        let _watch = AbortOnDrop(tokio::spawn(watch_ready(
            pods.clone(),
            selector.clone(),
            tx,
            watch_errors.clone(),
        )));
        watch_synced(&mut rx).await?;

        let specs: Vec<(String, Pod)> = (0..n)
            .map(|i| {
                let name = format!("bench-{round}-{i}");
                bench_pod(&name, &round, &self.image).map(|p| (name, p))
            })
            .collect::<Res<_>>()?;
        // Open as many connections as there will be concurrent creates (kube's client speaks
        // HTTP/1.1), so the creates do not pay for TLS handshakes.
        let warm = ListParams::default().labels(&selector).limit(1);
        let _ = join_all((0..n).map(|_| pods.list_metadata(&warm))).await;

        eprintln!("N={n}: creating {n} pod(s) in namespace {NAMESPACE}");
        let post = PostParams::default();
        let created = join_all(specs.iter().map(|(name, pod)| {
            let (pods, post) = (&pods, &post);
            async move {
                let t0 = Instant::now();
                pods.create(post, pod)
                    .await
                    .map(|_| t0)
                    .map_err(|e| format!("creating pod {NAMESPACE}/{name} failed: {e}"))
            }
        }))
        .await;
        let mut started: HashMap<String, Instant> = HashMap::new();
        for ((name, _), t0) in specs.iter().zip(created) {
            started.insert(name.clone(), t0?);
        }
        let first = started.values().min().copied().unwrap_or_else(Instant::now);

        let timeout = self.ready_timeout(n);
        let deadline = first + timeout;
        let mut ready: HashMap<String, Instant> = HashMap::new();
        while ready.len() < n {
            match tokio::time::timeout(POLL, rx.recv()).await {
                Ok(Some(Seen::Ready(name, at))) => {
                    if started.contains_key(&name) {
                        ready.insert(name, at);
                    }
                }
                Ok(Some(Seen::Synced)) | Err(_) => {}
                Ok(None) => return Err("the pod watch ended unexpectedly".into()),
            }
            self.agent_alive()?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {} s: {} of {n} pods Ready (N={n}; agent log: {})",
                    timeout.as_secs(),
                    ready.len(),
                    self.agent_log.display()
                )
                .into());
            }
        }
        let latencies: Vec<Duration> = ready
            .iter()
            .filter_map(|(name, at)| {
                started
                    .get(name)
                    .map(|t0| at.saturating_duration_since(*t0))
            })
            .collect();
        let last = ready.values().max().copied().unwrap_or(first);
        let stats = Stats::new(latencies, last.saturating_duration_since(first));
        eprintln!(
            "N={n}: minikubelet p50/p90/p99 {} ms, all Ready {} ms",
            triple(&stats),
            ms(stats.all)
        );

        let mut notes = Vec::new();
        let errors = watch_errors.load(Ordering::Relaxed);
        if errors > 0 {
            notes.push(format!(
                "the pod watch failed {errors} time(s) during the round (API server restart?): figures are suspect"
            ));
        }
        let events = self.ready_events(&started, n).await;
        let breakdown = if n == 1 {
            match events.first() {
                Some(e) => format!("pod {}: {e}", specs.first().map_or("", |s| s.0.as_str())),
                None => "no Ready event found for the pod".to_string(),
            }
        } else {
            stage_medians(&events, n)
        };
        self.delete_round(&pods, &selector, n).await?;
        Ok((stats, breakdown, notes))
    }

    /// The notes of the Ready events of the round's pods (waits a little for all of them: the
    /// agent writes events asynchronously).
    async fn ready_events(&self, pods: &HashMap<String, Instant>, n: usize) -> Vec<String> {
        let api: Api<KubeEvent> = Api::namespaced(self.kube.clone(), NAMESPACE);
        let api = &api;
        let collect = || async move {
            let list = api.list(&ListParams::default()).await?;
            let notes: Vec<String> = list
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("Ready"))
                .filter(|e| {
                    e.regarding
                        .as_ref()
                        .and_then(|r| r.name.as_deref())
                        .is_some_and(|name| pods.contains_key(name))
                })
                .filter_map(|e| e.note)
                .collect();
            Ok::<_, BoxError>(notes)
        };
        let all = poll_until("Ready events", EVENT_TIMEOUT, always_alive, || async {
            let notes = collect().await?;
            Ok((notes.len() >= n).then_some(notes))
        })
        .await;
        match all {
            Ok(v) => v,
            Err(_) => collect().await.unwrap_or_default(),
        }
    }

    /// Deletes the round's pods and waits until they are gone from the API and their sandboxes
    /// from containerd.
    async fn delete_round(&self, pods: &Api<Pod>, selector: &str, n: usize) -> Res<()> {
        eprintln!("N={n}: deleting the pods");
        let lp = ListParams::default().labels(selector);
        pods.delete_collection(&DeleteParams::default(), &lp)
            .await
            .map_err(|e| format!("deleting the pods failed: {e}"))?;
        let lp = &lp;
        poll_until(
            &format!("{n} pod(s) to be deleted"),
            Duration::from_secs(120 + 2 * u64::try_from(n).unwrap_or(0)),
            || self.agent_alive(),
            || async move { Ok(pods.list_metadata(lp).await?.items.is_empty().then_some(())) },
        )
        .await?;
        let cri = &self.cri;
        poll_until(
            &format!("the sandboxes of node {NODE} to be removed"),
            Duration::from_secs(60),
            || self.agent_alive(),
            || async move {
                let left = cri
                    .list_pod_sandbox(Some(label_filter(NODE_LABEL, NODE)))
                    .await?;
                Ok(left.is_empty().then_some(()))
            },
        )
        .await
    }

    /// One raw CRI round: N concurrent RunPodSandbox + CreateContainer + StartContainer
    /// sequences; then every baseline sandbox is removed (also when one failed).
    async fn round_raw(&mut self, n: usize) -> Res<Stats> {
        self.rounds += 1;
        let round = format!("r{}-n{n}", self.rounds);
        eprintln!(
            "N={n}: raw CRI baseline ({})",
            if self.crictl { "crictl" } else { "cri-client" }
        );
        let results = {
            let this = &*self;
            join_all((0..n).map(|i| this.raw_sequence(&round, i))).await
        };
        let removed = self.remove_raw_sandboxes().await;
        let mut spans = Vec::with_capacity(n);
        for r in results {
            spans.push(r?);
        }
        removed?;
        let first = spans.iter().map(|(t0, _)| *t0).min();
        let last = spans.iter().map(|(_, t1)| *t1).max();
        let all = match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        let latencies = spans
            .iter()
            .map(|(t0, t1)| t1.saturating_duration_since(*t0))
            .collect();
        Ok(Stats::new(latencies, all))
    }

    /// One baseline sequence; returns its start and end instants.
    async fn raw_sequence(&self, round: &str, i: usize) -> Res<(Instant, Instant)> {
        let name = format!("raw-{round}-{i}");
        let uid = format!("mkl-bench-raw-{}-{round}-{i}", std::process::id());
        let log_dir = self.work.path().join(&name);
        if self.crictl {
            let (pod, ctr) = raw_crictl_configs(&name, &uid, &log_dir, &self.image);
            let pod_json = self.work.path().join(format!("{name}.pod.json"));
            let ctr_json = self.work.path().join(format!("{name}.ctr.json"));
            std::fs::write(&pod_json, pod)?;
            std::fs::write(&ctr_json, ctr)?;
            let (pod_json, ctr_json) = (
                pod_json.display().to_string(),
                ctr_json.display().to_string(),
            );
            let t0 = Instant::now();
            std::fs::create_dir_all(&log_dir)?;
            let id = self.crictl(&["runp", &pod_json]).await?;
            let cid = self
                .crictl(&["create", "--no-pull", &id, &ctr_json, &pod_json])
                .await?;
            self.crictl(&["start", &cid]).await?;
            return Ok((t0, Instant::now()));
        }
        let sandbox = raw_sandbox_config(&name, &uid, &log_dir);
        let container = raw_container_config(&self.image);
        let t0 = Instant::now();
        // minikubelet creates the pod's log directory too.
        std::fs::create_dir_all(&log_dir)?;
        let id = self
            .cri
            .run_pod_sandbox(sandbox.clone(), "")
            .await
            .map_err(|e| format!("raw CRI: RunPodSandbox {name} failed: {e}"))?;
        let cid = self
            .cri
            .create_container(&id, container, sandbox)
            .await
            .map_err(|e| format!("raw CRI: CreateContainer in {name} failed: {e}"))?;
        self.cri
            .start_container(&cid)
            .await
            .map_err(|e| format!("raw CRI: StartContainer in {name} failed: {e}"))?;
        Ok((t0, Instant::now()))
    }

    /// Runs crictl against the cluster's containerd; returns its trimmed stdout.
    async fn crictl(&self, args: &[&str]) -> Res<String> {
        let out = Command::new("crictl")
            .args(["--runtime-endpoint", &self.endpoint])
            .args(["--image-endpoint", &self.endpoint])
            .args(["--timeout", "120s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run crictl (is it on PATH?): {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "crictl {} failed ({}): {}",
                args.first().unwrap_or(&""),
                out.status,
                stderr.trim().lines().last().unwrap_or_default()
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops and removes every baseline sandbox (found by label), until none is left.
    async fn remove_raw_sandboxes(&self) -> Res<()> {
        let cri = &self.cri;
        poll_until(
            "the baseline sandboxes to be removed",
            Duration::from_secs(120),
            always_alive,
            || async move {
                let list = cri
                    .list_pod_sandbox(Some(label_filter(RAW_LABEL, "1")))
                    .await?;
                if list.is_empty() {
                    return Ok(Some(()));
                }
                let removed = join_all(list.iter().map(|sb| async move {
                    cri.stop_pod_sandbox(&sb.id).await?;
                    cri.remove_pod_sandbox(&sb.id).await
                }))
                .await;
                removed.into_iter().collect::<Result<Vec<()>, _>>()?;
                Ok(None)
            },
        )
        .await?;
        // The pod cgroups runc left (also of sequences cancelled half-way), then their parent.
        let cgroups = poll_until(
            &format!("the cgroups {RAW_CGROUP}/* to be removed"),
            Duration::from_secs(10),
            always_alive,
            || async { Ok(remove_raw_cgroups().then_some(())) },
        )
        .await;
        if let Err(e) = cgroups {
            eprintln!("pod_start_bench: warning: {e}");
        }
        Ok(())
    }

    /// Removes the sandboxes minikubelet made for node mkl-bench (only needed when the agent
    /// could not: it crashed, or an earlier run was killed), with what the agent would remove
    /// with them (pod cgroups, pod log directories). Returns how many there were.
    async fn remove_node_sandboxes(&self) -> Res<usize> {
        let cri = &self.cri;
        let timeout = Duration::from_secs(60);
        let deadline = Instant::now() + timeout;
        let mut pods: HashMap<String, api::PodSandboxMetadata> = HashMap::new();
        loop {
            let list = cri
                .list_pod_sandbox(Some(label_filter(NODE_LABEL, NODE)))
                .await
                .map_err(|e| format!("cannot list sandboxes in containerd: {e}"))?;
            if list.is_empty() {
                break;
            }
            // A container still starting cannot be removed yet: retry until the deadline.
            let results = join_all(list.iter().map(|sb| async move {
                cri.stop_pod_sandbox(&sb.id).await?;
                cri.remove_pod_sandbox(&sb.id).await
            }))
            .await;
            let mut last_error = None;
            for (sb, r) in list.iter().zip(results) {
                match r {
                    Ok(()) => {
                        if let Some(m) = &sb.metadata {
                            pods.insert(sb.id.clone(), m.clone());
                        }
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} sandbox(es) could not be removed within {} s (last error: {})",
                    list.len(),
                    timeout.as_secs(),
                    last_error.map(|e| e.to_string()).unwrap_or_default()
                )
                .into());
            }
            if last_error.is_some() {
                tokio::time::sleep(POLL).await;
            }
        }
        // What minikubelet removes with a pod: its cgroups (once runc emptied them) and logs.
        let removed = &pods;
        let cgroups = poll_until(
            "the removed pods' cgroups to be removed",
            Duration::from_secs(10),
            always_alive,
            || async move {
                let mut all_gone = true;
                for m in removed.values() {
                    for qos in ["kubepods", "kubepods/burstable", "kubepods/besteffort"] {
                        all_gone &= rmdir_cgroup(&format!("{qos}/pod{}", m.uid));
                    }
                }
                Ok(all_gone.then_some(()))
            },
        )
        .await;
        if let Err(e) = cgroups {
            eprintln!("pod_start_bench: warning: {e}");
        }
        for m in pods.values().filter(|m| m.namespace == NAMESPACE) {
            let dir = Path::new(POD_LOG_ROOT).join(format!("{}_{}_{}", m.namespace, m.name, m.uid));
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(pods.len())
    }

    async fn delete_node(&self) -> Res<()> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        ok_or_gone(nodes.delete(NODE, &DeleteParams::default()).await)
            .map_err(|e| format!("cannot delete Node {NODE}: {e}"))?;
        let leases: Api<Lease> = Api::namespaced(self.kube.clone(), "kube-node-lease");
        ok_or_gone(leases.delete(NODE, &DeleteParams::default()).await)
            .map_err(|e| format!("cannot delete Lease kube-node-lease/{NODE}: {e}"))?;
        Ok(())
    }

    /// SIGTERM by pid, then waits for the exit (SIGKILL after a timeout).
    async fn stop_agent(&mut self) -> Res<()> {
        let Some(agent) = self.agent.take() else {
            return Ok(());
        };
        let mut exited = agent.exited.clone();
        if exited.borrow().is_some() {
            return Ok(());
        }
        let pid = agent.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        let waited = tokio::time::timeout(AGENT_STOP_TIMEOUT, exited.wait_for(Option::is_some))
            .await
            .is_ok();
        if waited {
            return Ok(());
        }
        let _ = Command::new("kill").args(["-KILL", &pid]).status().await;
        let _ =
            tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some)).await;
        Err(format!(
            "minikubelet (pid {pid}) did not exit within {} s of SIGTERM; killed it",
            AGENT_STOP_TIMEOUT.as_secs()
        )
        .into())
    }

    /// Removes everything the benchmark made; returns what could not be removed.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.remove_raw_sandboxes().await {
            problems.push(format!("baseline sandboxes: {e}"));
        }
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), NAMESPACE);
        // Graceful deletion while the agent runs, so it removes their sandboxes itself.
        if self.agent_alive().is_ok() {
            let deleted = ok_or_gone(
                pods.delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await,
            );
            if let Err(e) = deleted {
                problems.push(format!("deleting pods: {e}"));
            }
            let pods = &pods;
            let gone = poll_until(
                "the pods to be deleted",
                Duration::from_secs(300),
                || self.agent_alive(),
                || async move {
                    match pods.list_metadata(&ListParams::default()).await {
                        Ok(l) => Ok(l.items.is_empty().then_some(())),
                        Err(e) if is_not_found(&e) => Ok(Some(())),
                        Err(e) => Err(e.into()),
                    }
                },
            )
            .await;
            if let Err(e) = gone {
                problems.push(e.to_string());
            }
        }
        if let Err(e) = self.stop_agent().await {
            problems.push(e.to_string());
        }
        // Whatever the agent did not get to.
        if let Err(e) = ok_or_gone(
            pods.delete_collection(
                &DeleteParams::default().grace_period(0),
                &ListParams::default(),
            )
            .await,
        ) {
            problems.push(format!("force-deleting pods: {e}"));
        }
        match self.remove_node_sandboxes().await {
            Ok(0) => {}
            Ok(k) => eprintln!("removed {k} sandbox(es) the agent left behind"),
            Err(e) => problems.push(format!("sandboxes of node {NODE}: {e}")),
        }
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        if let Err(e) = ok_or_gone(namespaces.delete(NAMESPACE, &DeleteParams::default()).await) {
            problems.push(format!("deleting namespace {NAMESPACE}: {e}"));
        }
        if let Err(e) = self.delete_node().await {
            problems.push(e.to_string());
        }
        problems
    }
}

/// `deploy/dev/cluster node-kubeconfig mkl-bench`: the path of a fresh node kubeconfig.
async fn mint_node_kubeconfig() -> Res<PathBuf> {
    let script = repo_root().join("deploy/dev/cluster");
    let out = Command::new(&script)
        .args(["node-kubeconfig", NODE])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "deploy/dev/cluster node-kubeconfig {NODE} failed: {}",
            stderr.trim().lines().last().unwrap_or_default()
        )
        .into());
    }
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match path.lines().last() {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(format!("deploy/dev/cluster node-kubeconfig {NODE} printed no path").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 90), Duration::from_millis(90));
        assert_eq!(percentile(&v, 99), Duration::from_millis(99));
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 99), Duration::from_millis(7));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn breakdown_parses_and_medians() {
        let notes = [
            "Ready in 400 ms: admission 0, volumes 0, sandbox 150, image 0, create 15, start 90"
                .to_string(),
            "Ready in 500 ms: admission 1, volumes 0, sandbox 250, image 2, create 25, start 80"
                .to_string(),
            "Ready in 600 ms: admission 2, volumes 0, sandbox 350, image 4, create 35, start 70"
                .to_string(),
        ];
        assert_eq!(
            stage_medians(&notes, 3),
            "stage medians over 3 of 3 Ready events (ms): ready 500, admission 1, volumes 0, \
             sandbox 250, image 2, create 25, start 80"
        );
        assert!(parse_breakdown("Started container").is_none());
    }
}
