//! The [`Invoker`]: configuration, plugin lookup, version negotiation and
//! the interpretation of one plugin execution. The operations themselves
//! live in `chain.rs` (ADD, DEL, CHECK), `status.rs` and `gc.rs`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::attachment::Attachment;
use crate::cache::{CachedAttachment, ResultCache};
use crate::command::CniCommand;
use crate::config::{NetworkConfigList, load_conf_dir};
use crate::error::{CniError, truncate};
use crate::exec::{ExecOutput, ExecRequest, PluginExec, ProcessExec};
use crate::request::plugin_env;
use crate::result::{CniResult, ResultParseError, parse_bytes};
use crate::version::{self, CniVersion, PluginVersions, SUPPORTED_VERSIONS};

/// Deadlines of plugin executions, per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// ADD of one plugin (default 30 s).
    pub add: Duration,
    /// DEL of one plugin (default 30 s).
    pub del: Duration,
    /// CHECK of one plugin (default 30 s).
    pub check: Duration,
    /// GC of one plugin (default 30 s).
    pub gc: Duration,
    /// VERSION of one plugin (default 10 s).
    pub version: Duration,
    /// STATUS of one plugin (default 10 s).
    pub status: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            add: Duration::from_secs(30),
            del: Duration::from_secs(30),
            check: Duration::from_secs(30),
            gc: Duration::from_secs(30),
            version: Duration::from_secs(10),
            status: Duration::from_secs(10),
        }
    }
}

impl Timeouts {
    /// The same deadline for every operation (handy in tests).
    #[must_use]
    pub fn uniform(limit: Duration) -> Self {
        Self {
            add: limit,
            del: limit,
            check: limit,
            gc: limit,
            version: limit,
            status: limit,
        }
    }

    /// The deadline of `command`.
    #[must_use]
    pub fn of(&self, command: CniCommand) -> Duration {
        match command {
            CniCommand::Add => self.add,
            CniCommand::Del => self.del,
            CniCommand::Check => self.check,
            CniCommand::Gc => self.gc,
            CniCommand::Version => self.version,
            CniCommand::Status => self.status,
        }
    }
}

/// Where the invoker finds configurations, plugins and its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokerConfig {
    /// The conf dir (e.g. `/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin directories in search order; also passed as `CNI_PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// The result cache root (e.g. `/var/lib/kubelet/cni`).
    pub cache_dir: PathBuf,
    /// Per-operation deadlines.
    pub timeouts: Timeouts,
}

impl InvokerConfig {
    /// A configuration with the default timeouts.
    #[must_use]
    pub fn new(
        conf_dir: impl Into<PathBuf>,
        bin_dirs: Vec<PathBuf>,
        cache_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            conf_dir: conf_dir.into(),
            bin_dirs,
            cache_dir: cache_dir.into(),
            timeouts: Timeouts::default(),
        }
    }
}

/// Told about every plugin execution (for metrics): the operation, the
/// plugin `type`, its wall time and its error, if any.
pub trait ExecObserver: Send + Sync {
    /// Called once per plugin execution, after it ended.
    fn observe(
        &self,
        command: CniCommand,
        plugin: &str,
        elapsed: Duration,
        error: Option<&CniError>,
    );
}

impl<F> ExecObserver for F
where
    F: Fn(CniCommand, &str, Duration, Option<&CniError>) + Send + Sync,
{
    fn observe(
        &self,
        command: CniCommand,
        plugin: &str,
        elapsed: Duration,
        error: Option<&CniError>,
    ) {
        self(command, plugin, elapsed, error);
    }
}

/// How long one plugin took in an ADD, DEL or CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTiming {
    /// The plugin `type`.
    pub plugin: String,
    /// Wall time of its execution.
    pub duration: Duration,
}

/// The identity of a plugin binary for the VERSION cache: a rewritten
/// binary gets asked again.
type Fingerprint = (SystemTime, u64);

/// Runs CNI plugin chains for one node.
///
/// The same container must not be operated on concurrently (the caller's
/// per-pod worker ensures that); different containers may be. GC waits for
/// running ADD/DEL/CHECK calls and holds new ones back until it is done, as
/// the spec requires.
pub struct Invoker<E: PluginExec = ProcessExec> {
    pub(crate) config: InvokerConfig,
    pub(crate) exec: E,
    pub(crate) cache: ResultCache,
    observer: Option<Arc<dyn ExecObserver>>,
    versions: Mutex<HashMap<PathBuf, (Fingerprint, Vec<String>)>>,
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
}

impl<E: PluginExec> fmt::Debug for Invoker<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invoker")
            .field("config", &self.config)
            .field("observer", &self.observer.as_ref().map(|_| "ExecObserver"))
            .finish_non_exhaustive()
    }
}

impl Invoker<ProcessExec> {
    /// An invoker running plugins as child processes.
    #[must_use]
    pub fn new(config: InvokerConfig) -> Self {
        Self::with_exec(config, ProcessExec::new())
    }
}

impl<E: PluginExec> Invoker<E> {
    /// An invoker running plugins through `exec`.
    #[must_use]
    pub fn with_exec(config: InvokerConfig, exec: E) -> Self {
        let cache = ResultCache::new(config.cache_dir.clone());
        Self {
            config,
            exec,
            cache,
            observer: None,
            versions: Mutex::new(HashMap::new()),
            gc_lock: tokio::sync::RwLock::new(()),
        }
    }

    /// Reports every plugin execution to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ExecObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &InvokerConfig {
        &self.config
    }

    /// The result cache.
    #[must_use]
    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// Loads the network configuration of the conf dir (see [`load_conf_dir`]).
    ///
    /// # Errors
    /// As [`load_conf_dir`].
    pub async fn load_network(&self) -> Result<NetworkConfigList, CniError> {
        load_conf_dir(&self.config.conf_dir).await
    }

    /// The cached attachments of `network` not in `valid` (see
    /// [`ResultCache::stale_attachments`]); DEL them with
    /// [`Invoker::del_cached`] before [`Invoker::gc`].
    ///
    /// # Errors
    /// [`CniError::Io`] when the cache cannot be read.
    pub async fn stale_attachments(
        &self,
        network: &str,
        valid: &[Attachment],
    ) -> Result<Vec<CachedAttachment>, CniError> {
        self.cache.stale_attachments(network, valid).await
    }

    /// The binary of every plugin of `network`, in order.
    pub(crate) fn locate_all(&self, network: &NetworkConfigList) -> Result<Vec<PathBuf>, CniError> {
        network
            .plugins()
            .iter()
            .map(|p| self.exec.find(p.plugin_type(), &self.config.bin_dirs))
            .collect()
    }

    /// The versions `plugin` supports, from its VERSION answer (cached per
    /// binary until the file changes).
    pub(crate) async fn plugin_versions(
        &self,
        plugin: &str,
        path: &Path,
    ) -> Result<PluginVersions, CniError> {
        let fingerprint = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if let Some(fp) = fingerprint
            && let Some(supported) = self.cached_versions(path, fp)
        {
            return Ok(PluginVersions {
                plugin: plugin.to_owned(),
                supported,
            });
        }
        let newest = SUPPORTED_VERSIONS.last().copied().unwrap_or("1.1.0");
        let stdin = format!(r#"{{"cniVersion":"{newest}"}}"#).into_bytes();
        let env = plugin_env(CniCommand::Version, &self.config.bin_dirs, None);
        let (out, _) = self
            .invoke(CniCommand::Version, plugin, path, env, stdin)
            .await?;
        let supported = version::parse_version_output(plugin, &out.stdout)?;
        if let Some(fp) = fingerprint
            && let Ok(mut cache) = self.versions.lock()
        {
            cache.insert(path.to_path_buf(), (fp, supported.clone()));
        }
        Ok(PluginVersions {
            plugin: plugin.to_owned(),
            supported,
        })
    }

    fn cached_versions(&self, path: &Path, fingerprint: Fingerprint) -> Option<Vec<String>> {
        let cache = self.versions.lock().ok()?;
        cache
            .get(path)
            .filter(|(fp, _)| *fp == fingerprint)
            .map(|(_, v)| v.clone())
    }

    /// Finds every plugin, asks each for its versions and picks the highest
    /// version the list, this runtime and all plugins share. Returns the
    /// list pinned to that version, the binaries and the plugins' versions.
    pub(crate) async fn negotiate(
        &self,
        network: &NetworkConfigList,
    ) -> Result<(NetworkConfigList, Vec<PathBuf>, Vec<PluginVersions>), CniError> {
        let candidates =
            version::runtime_candidates(network.cni_version(), network.cni_versions())?;
        let paths = self.locate_all(network)?;
        let mut reported = Vec::with_capacity(paths.len());
        for (plugin, path) in network.plugins().iter().zip(&paths) {
            reported.push(self.plugin_versions(plugin.plugin_type(), path).await?);
        }
        let chosen = version::negotiate(&candidates, &reported)?;
        Ok((network.pinned_to(chosen), paths, reported))
    }

    /// Runs one plugin and turns a failed exit into [`CniError::Plugin`] or
    /// [`CniError::InvalidOutput`]. Reports the execution to the observer.
    pub(crate) async fn invoke(
        &self,
        command: CniCommand,
        plugin: &str,
        path: &Path,
        env: Vec<(String, String)>,
        stdin: Vec<u8>,
    ) -> Result<(ExecOutput, Duration), CniError> {
        let request = ExecRequest {
            plugin: plugin.to_owned(),
            path: path.to_path_buf(),
            command,
            env,
            stdin,
            timeout: self.config.timeouts.of(command),
        };
        let started = Instant::now();
        let outcome = self
            .exec
            .run(request)
            .await
            .and_then(|out| check_exit(plugin, out));
        let elapsed = started.elapsed();
        if let Some(observer) = &self.observer {
            observer.observe(command, plugin, elapsed, outcome.as_ref().err());
        }
        match &outcome {
            Ok(out) if !out.stderr.is_empty() => tracing::debug!(
                plugin,
                %command,
                ?elapsed,
                stderr = %truncate(&String::from_utf8_lossy(&out.stderr)),
                "CNI plugin finished"
            ),
            Ok(_) => tracing::debug!(plugin, %command, ?elapsed, "CNI plugin finished"),
            Err(error) => tracing::debug!(plugin, %command, ?elapsed, %error, "CNI plugin failed"),
        }
        outcome.map(|out| (out, elapsed))
    }
}

/// A CNI error object, as printed on stdout by a failing plugin.
#[derive(Deserialize)]
struct ErrorOutput {
    code: u32,
    msg: String,
    #[serde(default)]
    details: Option<String>,
}

fn check_exit(plugin: &str, out: ExecOutput) -> Result<ExecOutput, CniError> {
    if out.status.success() {
        return Ok(out);
    }
    if let Ok(e) = serde_json::from_slice::<ErrorOutput>(&out.stdout) {
        return Err(CniError::Plugin {
            plugin: plugin.to_owned(),
            code: e.code,
            msg: e.msg,
            details: e.details.filter(|d| !d.is_empty()),
        });
    }
    Err(invalid_output(plugin, &out))
}

/// [`CniError::InvalidOutput`] with the plugin's stdout, or its stderr when
/// stdout is empty (a crashing plugin often only writes there).
pub(crate) fn invalid_output(plugin: &str, out: &ExecOutput) -> CniError {
    let text = if out.stdout.iter().all(u8::is_ascii_whitespace) && !out.stderr.is_empty() {
        format!(
            "(empty stdout) stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    CniError::InvalidOutput {
        plugin: plugin.to_owned(),
        output: truncate(text.trim()),
        exit_status: out.status,
    }
}

/// The result printed by a successful ADD.
pub(crate) fn parse_add_output(
    plugin: &str,
    out: &ExecOutput,
    version: CniVersion,
) -> Result<CniResult, CniError> {
    parse_bytes(&out.stdout, version).map_err(|e| match e {
        ResultParseError::NotJson => invalid_output(plugin, out),
        ResultParseError::Invalid(reason) => CniError::InvalidResult {
            plugin: plugin.to_owned(),
            reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn out(code: i32, stdout: &str, stderr: &str) -> ExecOutput {
        ExecOutput {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn error_json_becomes_a_plugin_error() {
        let err = check_exit(
            "bridge",
            out(
                1,
                r#"{"cniVersion":"1.0.0","code":11,"msg":"busy","details":""}"#,
                "",
            ),
        )
        .unwrap_err();
        match err {
            CniError::Plugin {
                plugin,
                code,
                msg,
                details,
            } => {
                assert_eq!(
                    (plugin.as_str(), code, msg.as_str(), details),
                    ("bridge", 11, "busy", None)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_becomes_invalid_output_with_stderr_when_stdout_is_empty() {
        match check_exit("p", out(2, "", "panic: boom\n")).unwrap_err() {
            CniError::InvalidOutput {
                output,
                exit_status,
                ..
            } => {
                assert_eq!(output, "(empty stdout) stderr: panic: boom");
                assert_eq!(exit_status.code(), Some(2));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(check_exit("p", out(0, "anything", "")).is_ok());
    }

    #[test]
    fn add_output_must_be_a_result() {
        let v = CniVersion::V1_0_0;
        assert!(matches!(
            parse_add_output("p", &out(0, "hello", ""), v),
            Err(CniError::InvalidOutput { .. })
        ));
        assert!(matches!(
            parse_add_output("p", &out(0, r#"{"ips":[{"address":"x"}]}"#, ""), v),
            Err(CniError::InvalidResult { .. })
        ));
    }

    #[test]
    fn timeouts_per_command() {
        let t = Timeouts::default();
        assert_eq!(t.of(CniCommand::Add), Duration::from_secs(30));
        assert_eq!(t.of(CniCommand::Version), Duration::from_secs(10));
        assert_eq!(
            Timeouts::uniform(Duration::from_secs(1)).of(CniCommand::Gc),
            Duration::from_secs(1)
        );
    }
}
