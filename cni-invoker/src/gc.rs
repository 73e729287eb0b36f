//! GC (spec 1.1): let plugins drop resources of attachments that no longer
//! exist, and prune the result cache.

use serde_json::Value;

use crate::attachment::Attachment;
use crate::command::CniCommand;
use crate::config::NetworkConfigList;
use crate::error::CniError;
use crate::exec::PluginExec;
use crate::invoker::Invoker;
use crate::request::{Injected, plugin_env, plugin_stdin};
use crate::version::CniVersion;

/// The protocol key carrying the still valid attachments.
const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";

/// What a GC did. GC goes on after a plugin fails; the failures are collected.
#[derive(Debug, Default)]
pub struct GcOutcome {
    /// The plugins that were sent GC and succeeded.
    pub plugins_collected: Vec<String>,
    /// The plugins skipped because they (or the configuration) predate
    /// spec 1.1, or because the configuration sets `disableGC`.
    pub plugins_skipped: Vec<String>,
    /// The cache entries removed because their attachment is not valid.
    pub removed_from_cache: Vec<Attachment>,
    /// Every failure, in order.
    pub errors: Vec<CniError>,
}

impl<E: PluginExec> Invoker<E> {
    /// Garbage-collects `network`: `valid` lists the attachments that still
    /// exist (every pod sandbox's `(container id, ifname)`).
    ///
    /// 1. Unless `disableGC` is set, every plugin that reports 1.1.0 (when
    ///    the configuration allows 1.1.0) is sent GC with
    ///    `cni.dev/valid-attachments`.
    /// 2. The cache entries of this network not in `valid` are removed.
    ///
    /// Plugins before 1.1 cannot GC: DEL the attachments of
    /// [`Invoker::stale_attachments`] with [`Invoker::del_cached`] *before*
    /// calling this, or their IPAM reservations leak once the cache entry is
    /// gone. GC waits for running ADD/DEL/CHECK calls and blocks new ones
    /// until it is done.
    ///
    /// # Errors
    /// Never for plugin failures (see [`GcOutcome::errors`]); only when the
    /// cache cannot be listed.
    pub async fn gc(
        &self,
        network: &NetworkConfigList,
        valid: &[Attachment],
    ) -> Result<GcOutcome, CniError> {
        let _exclusive = self.gc_lock.write().await;
        let mut outcome = GcOutcome::default();
        let may_gc = !network.disable_gc() && network.allows_status_and_gc();
        let v11 = CniVersion::V1_1_0.to_string();
        let valid_json = Value::Array(
            valid
                .iter()
                .map(|a| serde_json::json!({"containerID": a.container_id, "ifname": a.ifname}))
                .collect(),
        );
        for plugin in network.plugins() {
            let name = plugin.plugin_type();
            if !may_gc {
                outcome.plugins_skipped.push(name.to_owned());
                continue;
            }
            let path = match self.exec.find(name, &self.config.bin_dirs) {
                Ok(path) => path,
                Err(e) => {
                    outcome.errors.push(e);
                    continue;
                }
            };
            match self.plugin_versions(name, &path).await {
                Ok(v) if v.supports(CniVersion::V1_1_0) => {}
                Ok(_) => {
                    outcome.plugins_skipped.push(name.to_owned());
                    continue;
                }
                Err(e) => {
                    outcome.errors.push(e);
                    continue;
                }
            }
            let stdin = plugin_stdin(
                network,
                plugin,
                Some(&v11),
                &Injected {
                    extra: vec![(VALID_ATTACHMENTS, valid_json.clone())],
                    ..Injected::default()
                },
            );
            let env = plugin_env(CniCommand::Gc, &self.config.bin_dirs, None);
            match self.invoke(CniCommand::Gc, name, &path, env, stdin).await {
                Ok(_) => outcome.plugins_collected.push(name.to_owned()),
                Err(e) => outcome.errors.push(e),
            }
        }

        for entry in self.cache.stale_attachments(network.name(), valid).await? {
            match self
                .cache
                .remove(&entry.network_name, &entry.attachment())
                .await
            {
                Ok(()) => outcome.removed_from_cache.push(entry.attachment()),
                Err(e) => outcome.errors.push(e),
            }
        }
        Ok(outcome)
    }
}
