//! Node agent benchmark (issue 14): one node agent (minikubelet or kubelet) measured on its own
//! runtime, next to that runtime's floor; `report` puts two runs side by side.
//!
//! Run it through `deploy/dev/bench-kubelet` (both agents, one after the other) or
//! `deploy/dev/bench-kubelet --only minikubelet`. One `run`:
//! 1. floor: the pod start sequence (RunPodSandbox, CreateContainer, StartContainer) from this
//!    process's persistent gRPC client on the agent's runtime, one at a time and in bursts at
//!    the agent's concurrency, before the agent runs (kubelet removes sandboxes it does not
//!    own);
//! 2. starts the agent from the command line after `--`, waits for its Node to be Ready, lets
//!    it settle, then samples it over an idle window (CPU, RSS, API requests);
//! 3. single pods, one lifecycle after another (create -> Ready -> delete -> gone);
//! 4. bursts of N pods created at once, each until all are Ready (CPU over that span), then
//!    deleted;
//! 5. RSS after the bursts and their deletion; the agent's own histograms (`--share-metric`);
//!    API requests by the node's user from the API server's audit log.
//!
//! Everything it made is removed on every path (also on Ctrl-C): pods, namespace, sandboxes,
//! cgroups below `--cgroup-root`, the agent (SIGTERM by pid), Node and Lease.

mod audit;
mod cluster;
mod figures;
mod nodes;
mod process;
mod runtime;
mod share;
mod wait;

use std::error::Error;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use audit::Window;
use cluster::NodeApi;
use figures::{ApiWindow, Burst, Memory, NodeResult, Stats, ms};
use process::{AgentProc, Sample};
use runtime::Runtime;
use wait::poll_until;

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

#[derive(Parser, Debug)]
#[command(name = "node_bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Measure one node agent (its command line after `--`).
    Run(Box<RunArgs>),
    /// Print the report of earlier runs side by side (ratios are first / second).
    Report { files: Vec<PathBuf> },
    /// Many agents as many nodes on one runtime.
    Nodes(Box<nodes::NodesArgs>),
    /// Print the reports of earlier `nodes` runs side by side.
    NodesReport { files: Vec<PathBuf> },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// What the agent is called in the report.
    #[arg(long)]
    agent: String,
    /// The node name the agent registers (also the namespace of its pods).
    #[arg(long)]
    node: String,
    /// The agent's CRI endpoint (the floor runs there).
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "127.0.0.1:5000/busybox:1.35")]
    image: String,
    /// The sandbox image, pulled beforehand like the pods' image.
    #[arg(long)]
    pause_image: Option<String>,
    /// The agent's log.
    #[arg(long)]
    log: PathBuf,
    /// Where the figures go (JSON, for `report`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Single-pod lifecycles, one after another.
    #[arg(long, default_value_t = 20)]
    singles: usize,
    /// Burst sizes.
    #[arg(long, value_delimiter = ',', default_values_t = [30usize, 100])]
    bursts: Vec<usize>,
    /// Seconds between Node Ready and the idle window, and before the last memory reading.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    /// Length of the idle window, in seconds.
    #[arg(long, default_value_t = 60)]
    idle: u64,
    /// The API server's audit log.
    #[arg(long)]
    audit_log: PathBuf,
    /// The agent's cgroup root (empty cgroups below it are removed at the end).
    #[arg(long)]
    cgroup_root: Option<String>,
    /// A histogram of the agent's /metrics to report (its own share of a pod start).
    #[arg(long, requires = "metrics_url")]
    share_metric: Option<String>,
    /// The agent's /metrics (read with curl and --client-cert/--client-key).
    #[arg(long, requires_all = ["client_cert", "client_key"])]
    metrics_url: Option<String>,
    #[arg(long)]
    client_cert: Option<PathBuf>,
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// The agent's command line.
    #[arg(last = true, required = true)]
    argv: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Run(args) => run(*args).await,
        Cmd::Report { files } => read_all(&files).map(|r| print!("{}", figures::report(&r))),
        Cmd::Nodes(args) => nodes::run(*args).await,
        Cmd::NodesReport { files } => read_all(&files).map(|r| print!("{}", nodes::report(&r))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_all<T: serde::de::DeserializeOwned>(files: &[PathBuf]) -> Res<Vec<T>> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()).into())
        })
        .collect()
}

async fn run(args: RunArgs) -> Res<()> {
    if args.singles == 0 || args.bursts.contains(&0) {
        return Err("--singles and --bursts must be at least 1".into());
    }
    let kube = admin_client().await?;
    let api = NodeApi {
        kube,
        node: args.node.clone(),
        namespace: args.node.clone(),
        image: args.image.clone(),
        selector: None,
    };
    let runtime = Runtime::connect(&args.endpoint, &args.image).await?;
    let mut bench = Bench {
        args,
        api,
        runtime,
        agent: None,
    };
    let outcome = until_interrupted(bench.body()).await;
    eprintln!("{}: cleaning up", bench.args.agent);
    let problems = bench.cleanup().await;
    conclude(outcome, &problems, bench.args.out.as_deref(), |r| {
        figures::report(std::slice::from_ref(r))
    })
}

/// An admin client from KUBECONFIG.
pub async fn admin_client() -> Res<kube::Client> {
    // The agent's own client stack (TCP_NODELAY, pool): kube's default connector leaves
    // Nagle on, and a create on a new connection would wait 40 ms for a delayed ACK.
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot read KUBECONFIG: {e}"))?;
    minikubelet::certificates::client::plain_client(&config)
        .map_err(|e| format!("cannot make an admin client from KUBECONFIG: {e}").into())
}

/// `body`, unless Ctrl-C stops it first (the caller cleans up either way).
pub async fn until_interrupted<T>(body: impl Future<Output = Res<T>>) -> Res<T> {
    tokio::select! {
        r = body => r,
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Err("interrupted; cleaning up".into()),
            Err(e) => Err(format!("cannot wait for Ctrl-C: {e}").into()),
        },
    }
}

/// The end of a run, once it cleaned up: says what the cleanup could not remove; for a run
/// that succeeded, writes its figures to `out` (JSON) and prints `report` of them. Fails when
/// the run or the cleanup did.
pub fn conclude<T: serde::Serialize>(
    outcome: Res<T>,
    problems: &[String],
    out: Option<&Path>,
    report: impl Fn(&T) -> String,
) -> Res<()> {
    for p in problems {
        eprintln!("node_bench: cleanup: {p}");
    }
    let result = outcome?;
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    print!("{}", report(&result));
    if problems.is_empty() {
        Ok(())
    } else {
        Err("cleanup was incomplete (see above)".into())
    }
}

struct Bench {
    args: RunArgs,
    api: NodeApi,
    runtime: Runtime,
    agent: Option<AgentProc>,
}

impl Bench {
    fn alive(&self) -> Res<()> {
        self.agent.as_ref().map_or(Ok(()), AgentProc::alive)
    }

    fn sample(&self) -> Res<Sample> {
        self.agent
            .as_ref()
            .ok_or("the agent is not running")?
            .sample()
    }

    fn say(&self, what: &str) {
        eprintln!("{}: {what}", self.args.agent);
    }

    async fn body(&mut self) -> Res<NodeResult> {
        self.preflight().await?;
        let (floor_single, floor_bursts) = self.floor().await?;
        self.api.create_namespace().await?;
        let node_ready = self.start_agent().await?;

        self.pause(self.args.settle).await?;
        let (s0, w0) = (self.sample()?, Window::start());
        self.say(&format!("idle for {} s", self.args.idle));
        self.pause(self.args.idle).await?;
        let s1 = self.sample()?;
        let idle_window = Window::until_now(w0);

        let w1 = Window::start();
        let singles = self.singles().await?;
        let lifecycle_window = Window::until_now(w1);
        let mut notes = Vec::new();
        let mut share = self.share("the single pods", &mut notes).await;
        let bursts = self.bursts(&mut notes).await?;

        self.pause(self.args.settle).await?;
        let s2 = self.sample()?;
        share.extend(self.share("every pod, bursts included", &mut notes).await);
        let user = format!("system:node:{}", self.args.node);
        let counts = audit::count(
            &self.args.audit_log,
            &user,
            &[idle_window, lifecycle_window],
        )
        .unwrap_or_else(|e| {
            notes.push(format!("no API request counts: {e}"));
            Vec::new()
        });
        let mut counts = counts.into_iter();
        let api_idle = counts.next().unwrap_or_default();
        let api_lifecycles = counts.next().unwrap_or_default();
        if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
            let load: Vec<&str> = load.split_whitespace().take(3).collect();
            notes.push(format!("load average at the end: {}", load.join(" ")));
        }
        Ok(NodeResult {
            agent: self.args.agent.clone(),
            node: self.args.node.clone(),
            runtime: format!(
                "{} at {}",
                self.runtime.describe().await,
                self.runtime.endpoint
            ),
            machine: machine(),
            floor_single,
            floor_bursts,
            node_ready,
            single: Stats::new(singles),
            bursts,
            idle_cpu_secs: s1.cpu_secs - s0.cpu_secs,
            idle_secs: s1.at.duration_since(s0.at).as_secs_f64(),
            idle_memory: memory(&s1),
            after_memory: memory(&s2),
            api_idle: ApiWindow {
                secs: idle_window.secs(),
                requests: api_idle,
            },
            api_lifecycles: ApiWindow {
                secs: lifecycle_window.secs(),
                requests: api_lifecycles,
            },
            lifecycles: self.args.singles,
            share,
            notes,
        })
    }

    /// Starts the agent and waits for its Node to be Ready; returns how long that took (ms).
    async fn start_agent(&mut self) -> Res<f64> {
        let started = Instant::now();
        let agent = AgentProc::spawn(&self.args.argv, &self.args.log)?;
        self.say(&format!(
            "started (pid {}), log {}",
            agent.pid,
            self.args.log.display()
        ));
        self.agent = Some(agent);
        let ready = self
            .api
            .wait_node_ready(Duration::from_secs(180), || self.alive())
            .await;
        if let Err(e) = ready {
            let tail = self
                .agent
                .as_ref()
                .map(|a| a.log_tail(15))
                .unwrap_or_default();
            return Err(format!("{e}; the agent log ends:\n{tail}").into());
        }
        let took = ms(started.elapsed());
        self.say(&format!("node {} Ready after {took:.0} ms", self.args.node));
        Ok(took)
    }

    /// Single pods, one lifecycle after another; returns their start latencies.
    async fn singles(&self) -> Res<Vec<Duration>> {
        self.say(&format!("{} single-pod lifecycles", self.args.singles));
        let mut latencies = Vec::with_capacity(self.args.singles);
        for i in 0..self.args.singles {
            let round = self
                .api
                .start_round(&format!("single-{i}"), 1, Duration::from_secs(120), &|| {
                    self.alive()
                })
                .await?;
            latencies.extend(round.latencies);
            self.remove_pods(1).await?;
        }
        Ok(latencies)
    }

    /// Each burst: N pods at once until all are Ready (the agent's CPU over that span), then
    /// deleted.
    async fn bursts(&self, notes: &mut Vec<String>) -> Res<Vec<Burst>> {
        let mut bursts = Vec::new();
        for &n in &self.args.bursts {
            self.say(&format!("{n} pods at once"));
            let before = self.sample()?;
            let timeout = Duration::from_secs(120 + 3 * u64::try_from(n)?);
            let round = self
                .api
                .start_round(&format!("burst-{n}"), n, timeout, &|| self.alive())
                .await?;
            let after = self.sample()?;
            if round.watch_errors > 0 {
                notes.push(format!(
                    "the pod watch failed {} time(s) in the {n}-pod burst",
                    round.watch_errors
                ));
            }
            let all = ms(round.all_ready);
            self.say(&format!("{n} pods all Ready in {all:.0} ms"));
            bursts.push(Burst {
                n,
                latencies: Stats::new(round.latencies),
                all,
                cpu_secs: Some(after.cpu_secs - before.cpu_secs),
            });
            self.remove_pods(n).await?;
        }
        Ok(bursts)
    }

    /// The agent's own histograms, when asked for (a failure becomes a note).
    async fn share(&self, over: &str, notes: &mut Vec<String>) -> Vec<figures::Share> {
        let a = &self.args;
        let (Some(name), Some(url), Some(cert), Some(key)) = (
            &a.share_metric,
            &a.metrics_url,
            &a.client_cert,
            &a.client_key,
        ) else {
            return Vec::new();
        };
        share::scrape(url, cert, key, name, over)
            .await
            .unwrap_or_else(|e| {
                notes.push(format!("no {name}: {e}"));
                Vec::new()
            })
    }

    /// What a crashed earlier run left, then the images.
    async fn preflight(&self) -> Res<()> {
        self.api.check_not_running().await?;
        self.api.delete_namespace().await?;
        let left = self
            .runtime
            .remove_namespace_sandboxes(self.api.namespace())
            .await?;
        if left > 0 {
            self.say(&format!("removed {left} sandbox(es) an earlier run left"));
        }
        self.runtime.remove_floor().await?;
        self.api.delete_node().await?;
        let mut images = vec![self.args.image.as_str()];
        images.extend(self.args.pause_image.as_deref());
        self.runtime.pull(&images).await
    }

    async fn floor(&self) -> Res<(Stats, Vec<Burst>)> {
        self.say(&format!(
            "runtime floor: {} single sequences, bursts {:?}",
            self.args.singles, self.args.bursts
        ));
        let mut singles = Vec::new();
        for i in 0..self.args.singles {
            singles.extend(
                self.runtime
                    .floor_round(&format!("s{i}"), 1)
                    .await?
                    .latencies,
            );
        }
        let mut bursts = Vec::new();
        for &n in &self.args.bursts {
            let r = self.runtime.floor_round(&format!("b{n}"), n).await?;
            bursts.push(Burst {
                n,
                latencies: Stats::new(r.latencies),
                all: ms(r.all_started),
                cpu_secs: None,
            });
        }
        Ok((Stats::new(singles), bursts))
    }

    /// Sleeps `secs` (a measurement window, not a wait for a condition); fails if the agent
    /// exited meanwhile.
    async fn pause(&self, secs: u64) -> Res<()> {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.alive()
    }

    /// Deletes the namespace's pods and waits until the API and the runtime hold none.
    async fn remove_pods(&self, n: usize) -> Res<()> {
        let timeout = Duration::from_secs(120 + 2 * u64::try_from(n)?);
        self.api.delete_pods(timeout, || self.alive()).await?;
        let (rt, ns) = (&self.runtime, self.api.namespace());
        poll_until(
            "the pods' sandboxes to be removed",
            timeout,
            || self.alive(),
            || async move { Ok((rt.count_ready_sandboxes(ns).await? == 0).then_some(())) },
        )
        .await
    }

    /// Removes everything the run made; returns what could not be removed.
    async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        // Graceful deletion while the agent runs, so it removes their sandboxes itself.
        if self.agent.is_some()
            && self.alive().is_ok()
            && let Err(e) = self
                .api
                .delete_pods(Duration::from_secs(300), || self.alive())
                .await
        {
            problems.push(format!("deleting the pods: {e}"));
        }
        if let Some(agent) = self.agent.as_mut()
            && let Err(e) = agent.stop().await
        {
            problems.push(e.to_string());
        }
        if let Err(e) = self.api.delete_namespace().await {
            problems.push(format!("deleting namespace {}: {e}", self.api.namespace()));
        }
        match self
            .runtime
            .remove_namespace_sandboxes(self.api.namespace())
            .await
        {
            Ok(0) => {}
            Ok(k) => self.say(&format!("removed {k} sandbox(es) the agent left behind")),
            Err(e) => problems.push(e.to_string()),
        }
        if let Err(e) = self.runtime.remove_floor().await {
            problems.push(format!("floor sandboxes: {e}"));
        }
        if let Some(root) = &self.args.cgroup_root
            && !runtime::remove_cgroup_tree(root)
        {
            problems.push(format!("cgroups below {root} are left (still in use?)"));
        }
        if let Err(e) = self.api.delete_node().await {
            problems.push(e.to_string());
        }
        problems
    }
}

fn memory(s: &Sample) -> Memory {
    Memory {
        rss_kib: s.rss_kib,
        hwm_kib: s.hwm_kib,
        threads: s.threads,
        by_kind: s.by_kind.clone(),
    }
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs ({model})")
}
