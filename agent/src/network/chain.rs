//! Runs the real chain (the agent's conflist) with cni-invoker for one delegated request, and
//! turns the outcome into what the delegate prints: the result, or a CNI error object.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cni_invoker::{
    AttachmentRequest, CapabilityArgs, CniCommand, CniError, CniVersion, Invoker, InvokerConfig,
    NetworkConfigList, ResultCache,
};
use serde_json::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use super::NetworkError;
use super::conflist::{self, PodCidr};
use super::wire::{self, Request, Response};

/// CNI's generic error code for failures that carry no plugin code.
const GENERIC_CODE: u32 = 999;

/// The agent's chain runner.
pub struct Chain {
    invoker: Invoker,
    conf_dir: PathBuf,
    pod_cidr: watch::Receiver<Option<PodCidr>>,
}

fn observe(command: CniCommand, plugin: &str, elapsed: Duration, error: Option<&CniError>) {
    if matches!(
        command,
        CniCommand::Add | CniCommand::Del | CniCommand::Check | CniCommand::Gc
    ) {
        crate::metrics::observe_cni(
            command.as_str(),
            plugin,
            elapsed.as_secs_f64(),
            error.is_none(),
        );
    }
}

impl Chain {
    pub fn new(
        conf_dir: PathBuf,
        bin_dirs: Vec<PathBuf>,
        cache_dir: PathBuf,
        pod_cidr: watch::Receiver<Option<PodCidr>>,
    ) -> Self {
        let invoker = Invoker::new(InvokerConfig::new(conf_dir.clone(), bin_dirs, cache_dir))
            .with_observer(Arc::new(observe));
        Chain {
            invoker,
            conf_dir,
            pod_cidr,
        }
    }

    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }

    /// The chain as configured now, rendered with the pod CIDR.
    pub fn network(&self) -> Result<NetworkConfigList, NetworkError> {
        let cidr = *self.pod_cidr.borrow();
        conflist::load(&self.conf_dir, cidr)
    }

    /// Handles one request from the delegate.
    pub async fn handle(&self, request: &Request) -> Response {
        let version = requested_version(&request.stdin);
        let command = request.var("CNI_COMMAND").unwrap_or_default().to_string();
        let outcome = match command.as_str() {
            "ADD" => self.add(request, &version).await,
            "DEL" => self.del(request).await.map(|()| Vec::new()),
            "CHECK" => self.check(request).await.map(|()| Vec::new()),
            "STATUS" => self.status().await.map(|()| Vec::new()),
            // The agent runs GC itself (see gc.rs); a runtime's GC request has nothing to add.
            "GC" => Ok(Vec::new()),
            other => Err(NetworkError::Request(format!(
                "unsupported CNI_COMMAND {other:?}"
            ))),
        };
        match outcome {
            Ok(stdout) => Response { code: 0, stdout },
            Err(e) => {
                let (code, details) = match &e {
                    NetworkError::Cni(CniError::Plugin { code, .. }) => (*code, String::new()),
                    NetworkError::NoPodCidr => (11, "waiting for Node.spec.podCIDR".to_string()),
                    _ => (GENERIC_CODE, String::new()),
                };
                let msg = format!("minikubelet: {e}");
                warn!(%command, container = request.var("CNI_CONTAINERID").unwrap_or_default(), error = %e, "CNI request failed");
                Response {
                    code: 1,
                    stdout: wire::error_json(&version, code, &msg, &details),
                }
            }
        }
    }

    async fn add(&self, request: &Request, version: &str) -> Result<Vec<u8>, NetworkError> {
        let network = self.network()?;
        let attach = attachment(request)?;
        let out = match self.invoker.add(&network, &attach).await {
            Ok(out) => out,
            Err(e) => {
                // Release whatever the chain got before it failed; the runtime DELs as well.
                if let Err(del) = self.invoker.del(&network, &attach).await {
                    warn!(error = %del, "DEL after a failed ADD failed");
                }
                return Err(e.into());
            }
        };
        let ips: Vec<String> = out
            .result
            .ips
            .iter()
            .map(|ip| ip.address.addr.to_string())
            .collect();
        let timings: Vec<String> = out
            .timings
            .iter()
            .map(|t| format!("{} {} ms", t.plugin, t.duration.as_millis()))
            .collect();
        info!(container = %attach.container_id, ?ips, timings = %timings.join(", "), "CNI ADD");
        let answer = CniVersion::parse(version).unwrap_or(out.cni_version);
        Ok(out.result.to_json(answer).to_string().into_bytes())
    }

    async fn del(&self, request: &Request) -> Result<(), NetworkError> {
        let attach = attachment(request)?;
        if let Some(dir) = request.var(wire::ORPHAN_CACHE_DIR_ENV) {
            return self.del_orphan(Path::new(dir), &attach).await;
        }
        // DEL must work even when the conf dir is broken: the cache holds what ADD used.
        let network = match self.network() {
            Ok(n) => n,
            Err(e) => match self.cached(&self.invoker.config().cache_dir, &attach).await {
                Some(entry) => {
                    self.invoker.del_cached(&entry).await?;
                    return Ok(());
                }
                None => return Err(e),
            },
        };
        let out = self.invoker.del(&network, &attach).await?;
        info!(container = %attach.container_id, cached = out.used_cache, "CNI DEL");
        Ok(())
    }

    /// DEL of a pod whose agent is gone, from that agent's cache.
    async fn del_orphan(&self, dir: &Path, attach: &AttachmentRequest) -> Result<(), NetworkError> {
        let Some(entry) = self.cached(dir, attach).await else {
            let network = self.network()?;
            self.invoker.del(&network, attach).await?;
            return Ok(());
        };
        self.invoker.del_cached(&entry).await?;
        ResultCache::new(dir)
            .remove(&entry.network_name, &entry.attachment())
            .await?;
        info!(container = %attach.container_id, cache = %dir.display(), "CNI DEL for a gone agent");
        Ok(())
    }

    async fn cached(
        &self,
        dir: &Path,
        attach: &AttachmentRequest,
    ) -> Option<cni_invoker::CachedAttachment> {
        let entries = ResultCache::new(dir).list(None).await.ok()?;
        entries
            .into_iter()
            .find(|e| e.container_id == attach.container_id && e.ifname == attach.ifname)
    }

    async fn check(&self, request: &Request) -> Result<(), NetworkError> {
        let network = self.network()?;
        self.invoker.check(&network, &attachment(request)?).await?;
        Ok(())
    }

    /// Whether the chain can serve ADD: config valid, every plugin present and answering.
    pub async fn status(&self) -> Result<(), NetworkError> {
        let network = self.network()?;
        self.invoker.status(&network).await?;
        Ok(())
    }
}

fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "1.0.0".to_string())
}

/// The attachment of a delegated request: ids and args from the environment, the capability
/// arguments (portMappings, bandwidth, ...) from the `runtimeConfig` the runtime injected.
pub fn attachment(request: &Request) -> Result<AttachmentRequest, NetworkError> {
    let var = |k: &str| request.var(k).unwrap_or_default();
    let args: Vec<(String, String)> = var("CNI_ARGS")
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut caps = CapabilityArgs::new();
    if let Ok(conf) = serde_json::from_slice::<Value>(&request.stdin)
        && let Some(Value::Object(rc)) = conf.get("runtimeConfig")
    {
        for (k, v) in rc {
            caps = caps.with(k.clone(), v.clone());
        }
    }
    if var("CNI_CONTAINERID").is_empty() {
        return Err(NetworkError::Request("CNI_CONTAINERID is empty".into()));
    }
    Ok(
        AttachmentRequest::new(var("CNI_CONTAINERID"), var("CNI_NETNS"), var("CNI_IFNAME"))
            .with_cni_args(args)
            .with_capability_args(caps),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_takes_env_and_runtime_config() {
        let request = Request {
            env: vec![
                ("CNI_COMMAND".into(), "ADD".into()),
                ("CNI_CONTAINERID".into(), "abc".into()),
                ("CNI_NETNS".into(), "/var/run/netns/cni-1".into()),
                ("CNI_IFNAME".into(), "eth0".into()),
                (
                    "CNI_ARGS".into(),
                    "IgnoreUnknown=1;K8S_POD_UID=u-1".into(),
                ),
            ],
            stdin: br#"{"cniVersion":"1.0.0","runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{"ingressRate":1000}}}"#.to_vec(),
        };
        let a = attachment(&request).unwrap();
        assert_eq!(a.container_id, "abc");
        assert_eq!(a.ifname, "eth0");
        assert!(a.cni_args.contains(&("K8S_POD_UID".into(), "u-1".into())));
        assert!(a.capability_args.get("portMappings").is_some());
        assert!(a.capability_args.get("bandwidth").is_some());
        assert_eq!(requested_version(&request.stdin), "1.0.0");
        assert!(attachment(&Request::default()).is_err());
    }
}
