//! Many nodes on one machine (`deploy/dev/bench-nodes N`): N agents as N nodes on the one
//! runtime, each with its own root dir, port, CNI socket and cgroup root; how long until all are
//! Ready, what each costs idle (RSS, CPU, API requests per node-minute), how long N x P pods
//! spread by the scheduler take to be Ready, and RSS after them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use crate::Res;
use crate::audit::{self, Window};
use crate::cluster::NodeApi;
use crate::figures::ms;
use crate::process::{AgentProc, Sample};
use crate::runtime::{self, Runtime};
use crate::wait::poll_until;

const NAMESPACE: &str = "mkl-sim";
const LABEL: &str = "bench.minikubelet.io/sim";

#[derive(clap::Args, Debug)]
pub struct NodesArgs {
    /// How many nodes.
    #[arg(long)]
    count: usize,
    /// Pods per node, created at once and placed by the scheduler.
    #[arg(long, default_value_t = 10)]
    pods_per_node: usize,
    /// The runtime every agent uses.
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "127.0.0.1:5000/busybox:1.35")]
    image: String,
    /// Node names are PREFIX-1 .. PREFIX-N.
    #[arg(long, default_value = "mkl-sim")]
    prefix: String,
    /// Node kubeconfigs: DIR/NAME.kubeconfig.
    #[arg(long)]
    kubeconfig_dir: PathBuf,
    /// The first agent's port; agent i gets PORT + i - 1.
    #[arg(long)]
    port_base: u16,
    /// Agents' logs: DIR/NAME.log; root dirs: DIR/NAME.
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    audit_log: PathBuf,
    #[arg(long, default_value_t = 20)]
    settle: u64,
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// Where the figures go (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The agent's command line; {node}, {port}, {root}, {kubeconfig}, {cgroup_root} and
    /// {label} are replaced per agent.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

/// Minimum, mean and maximum over the agents.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Spread {
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        if values.is_empty() {
            return Spread::default();
        }
        #[allow(clippy::cast_precision_loss)]
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        Spread {
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            mean,
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesResult {
    pub count: usize,
    pub pods: usize,
    /// All agents started -> all N Nodes Ready (ms).
    pub nodes_ready: f64,
    pub idle_secs: f64,
    /// Per agent, MiB and CPU-seconds over the idle window.
    pub rss_idle: Spread,
    pub cpu_idle: Spread,
    pub requests_per_node_minute: f64,
    /// First create -> last Ready (ms), and the pods per node the scheduler chose.
    pub pods_all_ready: f64,
    pub pods_per_node: Spread,
    /// All agents' CPU-seconds from the first create to the last Ready.
    pub cpu_pods_total: f64,
    pub rss_after: Spread,
    pub machine: String,
}

struct Agents {
    names: Vec<String>,
    procs: Vec<AgentProc>,
}

impl Agents {
    fn alive(&self) -> Res<()> {
        self.procs.iter().try_for_each(AgentProc::alive)
    }

    fn sample(&self) -> Res<Vec<Sample>> {
        self.procs.iter().map(AgentProc::sample).collect()
    }
}

pub async fn run(args: NodesArgs) -> Res<()> {
    if args.count == 0 || args.pods_per_node == 0 {
        return Err("--count and --pods-per-node must be at least 1".into());
    }
    let kube = crate::admin_client().await?;
    let api = NodeApi {
        kube,
        node: String::new(),
        namespace: NAMESPACE.to_string(),
        image: args.image.clone(),
        selector: Some((LABEL.to_string(), "1".to_string())),
    };
    let runtime = Runtime::connect(&args.endpoint, &args.image).await?;
    let names: Vec<String> = (1..=args.count)
        .map(|i| format!("{}-{i}", args.prefix))
        .collect();
    let mut agents = Agents {
        names,
        procs: Vec::new(),
    };
    let outcome = crate::until_interrupted(body(&args, &api, &runtime, &mut agents)).await;
    eprintln!("bench-nodes: cleaning up");
    let problems = cleanup(&api, &runtime, &mut agents).await;
    crate::conclude(outcome, &problems, args.out.as_deref(), |r| {
        report(std::slice::from_ref(r))
    })
}

async fn body(
    args: &NodesArgs,
    api: &NodeApi,
    runtime: &Runtime,
    agents: &mut Agents,
) -> Res<NodesResult> {
    api.delete_namespace().await?;
    runtime.remove_namespace_sandboxes(NAMESPACE).await?;
    for name in &agents.names {
        api.delete_named_node(name).await?;
    }
    runtime.pull(&[args.image.as_str()]).await?;
    api.create_namespace().await?;

    let started = Instant::now();
    for (i, name) in agents.names.iter().enumerate() {
        let command = agent_argv(args, i, name)?;
        let log = args.work_dir.join(format!("{name}.log"));
        agents.procs.push(AgentProc::spawn(&command, &log)?);
    }
    let n = args.count;
    eprintln!("bench-nodes: {n} agents started; waiting for {n} Ready nodes");
    let timeout = Duration::from_secs(120 + 5 * u64::try_from(n)?);
    poll_until(
        &format!("{n} nodes to be Ready"),
        timeout,
        || agents.alive(),
        || async move { Ok((api.ready_nodes(LABEL, "1").await? >= n).then_some(())) },
    )
    .await?;
    let nodes_ready = ms(started.elapsed());
    eprintln!(
        "bench-nodes: {n} nodes Ready after {nodes_ready:.0} ms; idle for {} s",
        args.idle
    );

    pause(args.settle, agents).await?;
    let (s0, w0) = (agents.sample()?, Window::start());
    pause(args.idle, agents).await?;
    let s1 = agents.sample()?;
    let idle = Window::until_now(w0);

    let pods = n * args.pods_per_node;
    eprintln!("bench-nodes: {pods} pods at once, placed by the scheduler");
    let timeout = Duration::from_secs(180 + u64::try_from(pods)?);
    let round = api
        .start_round("spread", pods, timeout, &|| agents.alive())
        .await?;
    let s2 = agents.sample()?;
    let placed = pods_per_node(api).await?;
    eprintln!(
        "bench-nodes: {pods} pods Ready in {:.0} ms; deleting them",
        ms(round.all_ready)
    );
    api.delete_pods(timeout, || agents.alive()).await?;
    poll_until(
        "the pods' sandboxes to be removed",
        timeout,
        || agents.alive(),
        || async move { Ok((runtime.count_ready_sandboxes(NAMESPACE).await? == 0).then_some(())) },
    )
    .await?;
    pause(args.settle, agents).await?;
    let s3 = agents.sample()?;

    let prefix = format!("system:node:{}-", args.prefix);
    let requests = audit::count_users(
        &args.audit_log,
        &prefix,
        |u| u.starts_with(&prefix),
        &[idle],
    )?;
    let total = requests.first().map_or(0, |r| r.total);
    #[allow(clippy::cast_precision_loss)]
    let per_node_minute = total as f64 / n as f64 / idle.secs() * 60.0;
    Ok(NodesResult {
        count: n,
        pods,
        nodes_ready,
        idle_secs: idle.secs(),
        rss_idle: Spread::of(&s1.iter().map(mib).collect::<Vec<_>>()),
        cpu_idle: Spread::of(&cpu_between(&s0, &s1)),
        requests_per_node_minute: per_node_minute,
        pods_all_ready: ms(round.all_ready),
        pods_per_node: Spread::of(&placed),
        cpu_pods_total: cpu_between(&s1, &s2).iter().sum(),
        rss_after: Spread::of(&s3.iter().map(mib).collect::<Vec<_>>()),
        machine: crate::machine(),
    })
}

fn agent_argv(args: &NodesArgs, i: usize, name: &str) -> Res<Vec<String>> {
    let port = u32::from(args.port_base) + u32::try_from(i)?;
    let root = args.work_dir.join(name);
    let kubeconfig = args.kubeconfig_dir.join(format!("{name}.kubeconfig"));
    if !kubeconfig.is_file() {
        return Err(format!("{} does not exist", kubeconfig.display()).into());
    }
    Ok(args
        .argv
        .iter()
        .map(|a| {
            a.replace("{node}", name)
                .replace("{port}", &port.to_string())
                .replace("{root}", &root.display().to_string())
                .replace("{kubeconfig}", &kubeconfig.display().to_string())
                .replace("{cgroup_root}", &format!("/{name}"))
                .replace("{label}", &format!("{LABEL}=1"))
        })
        .collect())
}

async fn pause(secs: u64, agents: &Agents) -> Res<()> {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    agents.alive()
}

#[allow(clippy::cast_precision_loss)]
fn mib(s: &Sample) -> f64 {
    s.rss_kib as f64 / 1024.0
}

fn cpu_between(a: &[Sample], b: &[Sample]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(x, y)| y.cpu_secs - x.cpu_secs)
        .collect()
}

/// How many of the namespace's pods each node got.
async fn pods_per_node(api: &NodeApi) -> Res<Vec<f64>> {
    let pods: Api<Pod> = Api::namespaced(api.kube.clone(), NAMESPACE);
    let mut per: HashMap<String, f64> = HashMap::new();
    for p in pods.list(&ListParams::default()).await?.items {
        let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
        *per.entry(node).or_default() += 1.0;
    }
    Ok(per.into_values().collect())
}

async fn cleanup(api: &NodeApi, runtime: &Runtime, agents: &mut Agents) -> Vec<String> {
    let mut problems = Vec::new();
    if !agents.procs.is_empty()
        && agents.alive().is_ok()
        && let Err(e) = api
            .delete_pods(Duration::from_secs(600), || agents.alive())
            .await
    {
        problems.push(format!("deleting the pods: {e}"));
    }
    for p in &mut agents.procs {
        if let Err(e) = p.stop().await {
            problems.push(e.to_string());
        }
    }
    if let Err(e) = api.delete_namespace().await {
        problems.push(format!("deleting namespace {NAMESPACE}: {e}"));
    }
    match runtime.remove_namespace_sandboxes(NAMESPACE).await {
        Ok(0) => {}
        Ok(k) => eprintln!("bench-nodes: removed {k} sandbox(es) the agents left behind"),
        Err(e) => problems.push(e.to_string()),
    }
    for name in &agents.names {
        if !runtime::remove_cgroup_tree(name) {
            problems.push(format!("cgroups below /{name} are left (still in use?)"));
        }
        if let Err(e) = api.delete_named_node(name).await {
            problems.push(e.to_string());
        }
    }
    problems
}

/// Runs of several N side by side.
pub fn report(results: &[NodesResult]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(r) = results.first() {
        let _ = writeln!(out, "{} nodes on one machine ({})", r.count, r.machine);
    }
    let _ = writeln!(
        out,
        "{:<4} {:>14} {:>22} {:>22} {:>12} {:>6} {:>14} {:>14} {:>22}",
        "N",
        "all Ready (ms)",
        "RSS idle min/mean/max",
        "CPU idle s min/mean/max",
        "req/node-min",
        "pods",
        "pods Ready (ms)",
        "pods CPU (s)",
        "RSS after min/mean/max"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<4} {:>14.0} {:>22} {:>22} {:>12.1} {:>6} {:>14.0} {:>14.2} {:>22}",
            r.count,
            r.nodes_ready,
            spread(&r.rss_idle, 1),
            spread(&r.cpu_idle, 2),
            r.requests_per_node_minute,
            r.pods,
            r.pods_all_ready,
            r.cpu_pods_total,
            spread(&r.rss_after, 1)
        );
    }
    for r in results {
        let _ = writeln!(
            out,
            "N={}: pods per node {} (scheduler's spread), idle window {:.0} s",
            r.count,
            spread(&r.pods_per_node, 0),
            r.idle_secs
        );
    }
    out
}

fn spread(s: &Spread, digits: usize) -> String {
    format!(
        "{:.*}/{:.*}/{:.*}",
        digits, s.min, digits, s.mean, digits, s.max
    )
}
