//! The plugin execution boundary: finding a plugin binary and running it
//! with an environment, stdin and a deadline.
//!
//! [`PluginExec`] is the trait the chain logic uses; [`ProcessExec`] is the
//! real implementation (a child process per call, killed with its process
//! group on timeout). Tests can substitute a recording double.

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::command::CniCommand;
use crate::error::CniError;

/// The `PATH` given to plugins when the agent itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How often spawning is retried when the binary is being written
/// (`ETXTBSY`), and the pause between tries.
const SPAWN_TRIES: u32 = 5;
const SPAWN_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// One execution of a plugin binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The plugin `type`, for errors and logs.
    pub plugin: String,
    /// The binary to run.
    pub path: PathBuf,
    /// The operation (also present in `env` as `CNI_COMMAND`).
    pub command: CniCommand,
    /// The CNI environment (`CNI_COMMAND`, `CNI_CONTAINERID`, ...).
    pub env: Vec<(String, String)>,
    /// The request configuration, written to the plugin's stdin.
    pub stdin: Vec<u8>,
    /// Deadline of the whole execution.
    pub timeout: Duration,
}

/// What a plugin execution produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// How the plugin exited.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr (logs).
    pub stderr: Vec<u8>,
}

/// Finds and runs plugin binaries.
pub trait PluginExec: Send + Sync {
    /// The binary for `plugin_type`: the first executable file of that name
    /// in `bin_dirs`.
    ///
    /// # Errors
    /// [`CniError::MissingPlugin`] naming the type and the dirs.
    fn find(&self, plugin_type: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, CniError>;

    /// Runs `request` to completion or until its timeout.
    ///
    /// # Errors
    /// [`CniError::Spawn`] when the binary cannot be started,
    /// [`CniError::Timeout`] when it had to be killed, [`CniError::Io`] when
    /// its pipes fail. A non-zero exit is *not* an error here.
    fn run(
        &self,
        request: ExecRequest,
    ) -> impl Future<Output = Result<ExecOutput, CniError>> + Send;
}

/// Runs plugins as child processes.
///
/// The child's environment is cleared: it gets `PATH` (the agent's, or a
/// default) and the CNI variables of the request, nothing else. Each child
/// leads its own process group, so that a timeout kills the plugin together
/// with any delegated plugin it started.
#[derive(Debug, Clone)]
pub struct ProcessExec {
    path_env: OsString,
}

impl ProcessExec {
    /// An executor passing the agent's `PATH` (or a standard one) to plugins.
    #[must_use]
    pub fn new() -> Self {
        Self {
            path_env: std::env::var_os("PATH")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| DEFAULT_PATH.into()),
        }
    }

    async fn spawn(&self, request: &ExecRequest) -> Result<Child, CniError> {
        let mut tries = 0;
        loop {
            let mut cmd = Command::new(&request.path);
            cmd.env_clear()
                .env("PATH", &self.path_env)
                .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            match cmd.spawn() {
                Ok(child) => return Ok(child),
                // The binary is open for writing somewhere (being installed,
                // or held by a concurrent fork): wait and try again.
                Err(e) if is_text_file_busy(&e) && tries + 1 < SPAWN_TRIES => {
                    tries += 1;
                    tokio::time::sleep(SPAWN_RETRY_PAUSE * tries).await;
                }
                Err(source) => {
                    return Err(CniError::Spawn {
                        plugin: request.plugin.clone(),
                        path: request.path.clone(),
                        source,
                    });
                }
            }
        }
    }
}

impl Default for ProcessExec {
    fn default() -> Self {
        Self::new()
    }
}

impl PluginExec for ProcessExec {
    fn find(&self, plugin_type: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
        find_in_dirs(plugin_type, bin_dirs)
    }

    async fn run(&self, request: ExecRequest) -> Result<ExecOutput, CniError> {
        let mut child = self.spawn(&request).await?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let input = request.stdin.as_slice();

        let io = async {
            let write = async move {
                if let Some(mut pipe) = stdin {
                    // A plugin may exit without reading its stdin (VERSION does).
                    match pipe.write_all(input).await {
                        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                        _ => {}
                    }
                }
                Ok(())
            };
            let (written, out, err, status) =
                tokio::join!(write, read_all(stdout), read_all(stderr), child.wait());
            written?;
            Ok::<_, io::Error>(ExecOutput {
                status: status?,
                stdout: out?,
                stderr: err?,
            })
        };
        let outcome = tokio::time::timeout(request.timeout, io).await;
        match outcome {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(source)) => {
                kill(pid, &mut child).await;
                Err(CniError::io(
                    format!(
                        "talking to CNI plugin {:?} ({})",
                        request.plugin,
                        request.path.display()
                    ),
                    source,
                ))
            }
            Err(_elapsed) => {
                kill(pid, &mut child).await;
                Err(CniError::Timeout {
                    plugin: request.plugin,
                    command: request.command,
                    timeout: request.timeout,
                })
            }
        }
    }
}

/// Kills the child's process group (the plugin and whatever it started),
/// then the child itself, and reaps it.
async fn kill(pid: Option<u32>, child: &mut Child) {
    if let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        // The group may already be gone; the direct kill below still reaps.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    if let Err(e) = child.kill().await {
        tracing::warn!(error = %e, "failed to kill CNI plugin");
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

fn is_text_file_busy(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error())
}

/// The first executable regular file named `plugin_type` in `bin_dirs`.
pub(crate) fn find_in_dirs(plugin_type: &str, bin_dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    let missing = || CniError::MissingPlugin {
        plugin: plugin_type.to_owned(),
        dirs: bin_dirs.to_vec(),
    };
    if plugin_type.is_empty() || plugin_type.contains('/') {
        return Err(missing());
    }
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(missing)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn request(path: PathBuf, timeout: Duration) -> ExecRequest {
        ExecRequest {
            plugin: "p".into(),
            path,
            command: CniCommand::Add,
            env: vec![("CNI_COMMAND".into(), "ADD".into())],
            stdin: b"{\"hello\":1}".to_vec(),
            timeout,
        }
    }

    #[test]
    fn finds_the_first_executable_in_dir_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("p"), "not executable").unwrap();
        let wanted = script(b.path(), "p", "true");
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_in_dirs("p", &dirs).unwrap(), wanted);
        match find_in_dirs("q", &dirs).unwrap_err() {
            CniError::MissingPlugin {
                plugin,
                dirs: searched,
            } => {
                assert_eq!(plugin, "q");
                assert_eq!(searched, dirs);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn passes_stdin_and_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = script(dir.path(), "p", "cat; echo; env | sort >&2; exit 3");
        let out = ProcessExec::new()
            .run(request(path, Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"{\"hello\":1}\n");
        let env = String::from_utf8(out.stderr).unwrap();
        let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        // sh itself adds PWD (and may add SHLVL or `_`); nothing comes from the agent but PATH.
        assert!(names.contains(&"CNI_COMMAND"));
        assert!(names.contains(&"PATH"));
        assert!(
            !names
                .iter()
                .any(|n| ["HOME", "USER", "CARGO", "RUST_BACKTRACE"].contains(n)),
            "{env}"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The shell forks `sleep` and waits: killing only the shell would leave it behind.
        let path = script(
            dir.path(),
            "p",
            &format!("sleep 30 & echo $! > {}; wait", pidfile.display()),
        );
        let started = Instant::now();
        let err = ProcessExec::new()
            .run(request(path, Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
        assert!(wait_gone(&pid).await, "grandchild {pid} still running");
    }

    /// Whether process `pid` exits (or is a zombie) within a few seconds.
    pub(crate) async fn wait_gone(pid: &str) -> bool {
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|s| s.trim_start().starts_with('Z')) =>
                {
                    return true;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        false
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let err = ProcessExec::new()
            .run(request("/nonexistent/p".into(), Duration::from_secs(1)))
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::Spawn { .. }), "{err:?}");
    }
}
