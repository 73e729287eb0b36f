//! The node agent under test as a process: started from a command line, watched until it
//! exits, stopped by pid, and sampled from /proc (resident memory, CPU time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::watch;

use crate::Res;

const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running agent: its pid and its exit status once it exited (a task owns the child).
pub struct AgentProc {
    pub pid: u32,
    pub log: PathBuf,
    exited: watch::Receiver<Option<String>>,
}

/// One reading of the agent's /proc entries.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    /// VmRSS and VmHWM, in KiB.
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// User + system time of the agent and of its waited-for children (CNI plugins, mount
    /// helpers, ...), in seconds.
    pub cpu_secs: f64,
    pub threads: u64,
    /// Resident KiB by kind of mapping (see [`rss_by_kind`]).
    pub by_kind: BTreeMap<String, u64>,
}

impl AgentProc {
    /// Starts `argv` with stdout and stderr to `log`.
    pub fn spawn(argv: &[String], log: &Path) -> Res<AgentProc> {
        let (program, rest) = argv.split_first().ok_or("no agent command line given")?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let out = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new(program)
            .args(rest)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let pid = child.id().ok_or("the agent exited at once")?;
        let (tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            tx.send_replace(Some(status));
        });
        Ok(AgentProc {
            pid,
            log: log.to_path_buf(),
            exited,
        })
    }

    /// An error once the agent has exited.
    pub fn alive(&self) -> Res<()> {
        match self.exited.borrow().as_ref() {
            None => Ok(()),
            Some(status) => Err(format!(
                "the agent (pid {}) exited ({status}); log: {}",
                self.pid,
                self.log.display()
            )
            .into()),
        }
    }

    pub fn sample(&self) -> Res<Sample> {
        let at = Instant::now();
        let proc = procfs::process::Process::new(i32::try_from(self.pid)?)
            .map_err(|e| format!("cannot read /proc/{}: {e}", self.pid))?;
        let stat = proc.stat()?;
        let status = proc.status()?;
        let ticks = stat.utime + stat.stime + clamp(stat.cutime) + clamp(stat.cstime);
        #[allow(clippy::cast_precision_loss)]
        let cpu_secs = ticks as f64 / procfs::ticks_per_second() as f64;
        Ok(Sample {
            at,
            rss_kib: status.vmrss.unwrap_or(0),
            hwm_kib: status.vmhwm.unwrap_or(0),
            cpu_secs,
            threads: status.threads,
            by_kind: rss_by_kind(self.pid),
        })
    }

    /// SIGTERM by pid, then waits for the exit (SIGKILL after a timeout).
    pub async fn stop(&mut self) -> Res<()> {
        let mut exited = self.exited.clone();
        if exited.borrow().is_some() {
            return Ok(());
        }
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        if tokio::time::timeout(STOP_TIMEOUT, exited.wait_for(Option::is_some))
            .await
            .is_ok()
        {
            return Ok(());
        }
        let _ = Command::new("kill").args(["-KILL", &pid]).status().await;
        let _ =
            tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some)).await;
        Err(format!(
            "the agent (pid {pid}) did not exit within {} s of SIGTERM; killed it",
            STOP_TIMEOUT.as_secs()
        )
        .into())
    }

    /// The last `n` lines of the agent's log, indented (for a failure message).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .fold(String::new(), |mut out, l| {
                out.push_str("    ");
                out.push_str(l);
                out.push('\n');
                out
            })
    }
}

/// Where the resident memory is, from /proc/PID/smaps: "binary" (the executable's own
/// mappings: code and data), "libraries" (other files), "heap" ([heap]), "anonymous" (mmap'd
/// memory: allocator arenas and thread stacks), "stack" (the main thread's), "other".
pub fn rss_by_kind(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return out;
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let exe = exe.to_string_lossy().into_owned();
    let mut kind = "other";
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: address perms offset dev inode [pathname].
            let path = line.split_whitespace().nth(5).unwrap_or("");
            kind = match path {
                "" => "anonymous",
                "[heap]" => "heap",
                "[stack]" => "stack",
                p if p == exe => "binary",
                p if p.starts_with('/') => "libraries",
                _ => "other",
            };
        } else if let Some(kib) = line.strip_prefix("Rss:") {
            let kib: u64 = kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            *out.entry(kind.to_string()).or_default() += kib;
        }
    }
    out
}

fn clamp(ticks: i64) -> u64 {
    u64::try_from(ticks).unwrap_or(0)
}
