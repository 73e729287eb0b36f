//! ADD, DEL and CHECK of one attachment over a network configuration list.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::attachment::AttachmentRequest;
use crate::cache::CachedAttachment;
use crate::command::CniCommand;
use crate::config::NetworkConfigList;
use crate::error::CniError;
use crate::exec::PluginExec;
use crate::invoker::{Invoker, PluginTiming, parse_add_output};
use crate::request::{AttachmentEnv, Injected, plugin_env, plugin_stdin};
use crate::result::CniResult;
use crate::runtime_config::CapabilityArgs;
use crate::version::CniVersion;

/// What a successful ADD produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AddOutcome {
    /// The final plugin's result, in the 1.x shape.
    pub result: CniResult,
    /// The version the chain ran at (negotiated with the plugins).
    pub cni_version: CniVersion,
    /// Each plugin's ADD time, in execution order.
    pub timings: Vec<PluginTiming>,
}

/// What a successful DEL did.
#[derive(Debug, Clone, PartialEq)]
pub struct DelOutcome {
    /// Whether the cached ADD (configuration, result, arguments) was used.
    pub used_cache: bool,
    /// Each plugin's DEL time, in execution (reverse) order.
    pub timings: Vec<PluginTiming>,
}

/// What a successful CHECK did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// Why no plugin was run, if none was.
    pub skipped: Option<CheckSkipped>,
    /// Each plugin's CHECK time, in execution order.
    pub timings: Vec<PluginTiming>,
}

/// Why CHECK ran no plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckSkipped {
    /// The configuration sets `disableCheck`.
    Disabled,
    /// The chain ran at a version before 0.4.0, which has no CHECK.
    VersionWithoutCheck,
}

/// One plugin execution of a chain: everything but the plugin.
struct ChainRun<'a> {
    command: CniCommand,
    network: &'a NetworkConfigList,
    env: Vec<(String, String)>,
    prev_result: Option<&'a Value>,
    capability_args: &'a CapabilityArgs,
}

impl<E: PluginExec> Invoker<E> {
    /// Attaches a container: runs every plugin's ADD in order, each getting
    /// the previous plugin's result as `prevResult`, and caches the final
    /// result with the configuration used.
    ///
    /// On error nothing is cached; the caller should then [`Invoker::del`]
    /// the attachment, which runs DEL on every plugin.
    ///
    /// # Errors
    /// [`CniError::InvalidAttachment`], [`CniError::MissingPlugin`],
    /// [`CniError::UnsupportedVersion`], or the first plugin failure
    /// ([`CniError::Plugin`], [`CniError::InvalidOutput`],
    /// [`CniError::InvalidResult`], [`CniError::Timeout`], ...).
    pub async fn add(
        &self,
        network: &NetworkConfigList,
        request: &AttachmentRequest,
    ) -> Result<AddOutcome, CniError> {
        request.validate(false)?;
        let _no_gc = self.gc_lock.read().await;
        let (pinned, paths, _) = self.negotiate(network).await?;
        let version = pinned.cni_version();
        let netns = request.netns.to_string_lossy();
        let cni_args = request.cni_args_string();
        let env = attachment_env(self, CniCommand::Add, request, &netns, &cni_args);

        let mut timings = Vec::with_capacity(paths.len());
        let mut prev: Option<Value> = None;
        let mut last: Option<CniResult> = None;
        for (plugin, path) in pinned.plugins().iter().zip(&paths) {
            let stdin = plugin_stdin(
                &pinned,
                plugin,
                None,
                &Injected {
                    prev_result: prev.as_ref(),
                    capability_args: Some(&request.capability_args),
                    extra: Vec::new(),
                },
            );
            let (out, elapsed) = self
                .invoke(
                    CniCommand::Add,
                    plugin.plugin_type(),
                    path,
                    env.clone(),
                    stdin,
                )
                .await?;
            timings.push(PluginTiming {
                plugin: plugin.plugin_type().to_owned(),
                duration: elapsed,
            });
            let result = parse_add_output(plugin.plugin_type(), &out, version)?;
            prev = Some(result.to_json(version));
            last = Some(result);
        }
        let result = last.unwrap_or_default();
        self.cache
            .write(&CachedAttachment::new(&pinned, request, &result))
            .await?;
        Ok(AddOutcome {
            result,
            cni_version: version,
            timings,
        })
    }

    /// Detaches a container: runs every plugin's DEL in reverse order, then
    /// drops the cached result.
    ///
    /// When the ADD was cached, DEL uses its configuration (even if the conf
    /// dir changed since), its result as `prevResult`, and its `CNI_ARGS`
    /// and capability arguments. Without a cache entry (ADD failed or never
    /// ran), DEL runs `network` without `prevResult`. When the netns no
    /// longer exists, `CNI_NETNS` is passed empty, as DEL allows.
    ///
    /// # Errors
    /// The first plugin failure; the cache entry is then kept for a retry.
    pub async fn del(
        &self,
        network: &NetworkConfigList,
        request: &AttachmentRequest,
    ) -> Result<DelOutcome, CniError> {
        request.validate(true)?;
        let cached = match self.cache.read(network.name(), &request.attachment()).await {
            Ok(entry) => entry,
            Err(error) => {
                tracing::warn!(%error, "ignoring unreadable CNI cache entry for DEL");
                None
            }
        };
        if let Some(entry) = cached {
            return self.del_cached_with(&entry, Some(&request.netns)).await;
        }
        let _no_gc = self.gc_lock.read().await;
        let (pinned, paths, _) = self.negotiate(network).await?;
        let timings = self.run_del(&pinned, &paths, request, None).await?;
        Ok(DelOutcome {
            used_cache: false,
            timings,
        })
    }

    /// Detaches a cached attachment using only what the cache holds (its
    /// configuration, result, netns and arguments): the way to DEL
    /// attachments found by [`Invoker::stale_attachments`].
    ///
    /// # Errors
    /// As [`Invoker::del`].
    pub async fn del_cached(&self, entry: &CachedAttachment) -> Result<DelOutcome, CniError> {
        self.del_cached_with(entry, None).await
    }

    async fn del_cached_with(
        &self,
        entry: &CachedAttachment,
        netns: Option<&Path>,
    ) -> Result<DelOutcome, CniError> {
        let _no_gc = self.gc_lock.read().await;
        let network = entry.network_config()?;
        let paths = self.locate_all(&network)?;
        let mut request = entry.request();
        if let Some(netns) = netns.filter(|n| !n.as_os_str().is_empty()) {
            request.netns = netns.to_path_buf();
        }
        let timings = self
            .run_del(&network, &paths, &request, Some(&entry.result))
            .await?;
        self.cache
            .remove(&entry.network_name, &entry.attachment())
            .await?;
        Ok(DelOutcome {
            used_cache: true,
            timings,
        })
    }

    /// Runs DEL over `network` in reverse order.
    async fn run_del(
        &self,
        network: &NetworkConfigList,
        paths: &[PathBuf],
        request: &AttachmentRequest,
        prev_result: Option<&Value>,
    ) -> Result<Vec<PluginTiming>, CniError> {
        let netns = existing_netns(&request.netns).await;
        let cni_args = request.cni_args_string();
        let run = ChainRun {
            command: CniCommand::Del,
            network,
            env: attachment_env(self, CniCommand::Del, request, &netns, &cni_args),
            prev_result,
            capability_args: &request.capability_args,
        };
        let order: Vec<usize> = (0..paths.len()).rev().collect();
        let (timings, outcome) = self.run_each(&run, paths, &order).await;
        outcome.map(|()| timings)
    }

    /// Checks an attachment: runs every plugin's CHECK in order with the
    /// cached ADD result and configuration.
    ///
    /// # Errors
    /// [`CniError::NotAdded`] without a cached ADD, else the first plugin failure.
    pub async fn check(
        &self,
        network: &NetworkConfigList,
        request: &AttachmentRequest,
    ) -> Result<CheckOutcome, CniError> {
        request.validate(false)?;
        let _no_gc = self.gc_lock.read().await;
        let entry = self
            .cache
            .read(network.name(), &request.attachment())
            .await?
            .ok_or_else(|| CniError::NotAdded {
                network: network.name().to_owned(),
                container_id: request.container_id.clone(),
                ifname: request.ifname.clone(),
            })?;
        let cached_network = entry.network_config()?;
        if network.disable_check() || cached_network.disable_check() {
            return Ok(CheckOutcome {
                skipped: Some(CheckSkipped::Disabled),
                timings: Vec::new(),
            });
        }
        if !cached_network.cni_version().has_check() {
            return Ok(CheckOutcome {
                skipped: Some(CheckSkipped::VersionWithoutCheck),
                timings: Vec::new(),
            });
        }
        let paths = self.locate_all(&cached_network)?;
        let mut cached_request = entry.request();
        cached_request.netns.clone_from(&request.netns);
        let netns = cached_request.netns.to_string_lossy();
        let cni_args = cached_request.cni_args_string();
        let run = ChainRun {
            command: CniCommand::Check,
            network: &cached_network,
            env: attachment_env(self, CniCommand::Check, &cached_request, &netns, &cni_args),
            prev_result: Some(&entry.result),
            capability_args: &cached_request.capability_args,
        };
        let order: Vec<usize> = (0..paths.len()).collect();
        let (timings, outcome) = self.run_each(&run, &paths, &order).await;
        outcome?;
        Ok(CheckOutcome {
            skipped: None,
            timings,
        })
    }

    /// Runs `run.command` on the plugins at `order`, stopping at the first
    /// failure. Returns the timings of the plugins that ran either way.
    async fn run_each(
        &self,
        run: &ChainRun<'_>,
        paths: &[PathBuf],
        order: &[usize],
    ) -> (Vec<PluginTiming>, Result<(), CniError>) {
        let mut timings = Vec::with_capacity(order.len());
        for &i in order {
            let (Some(plugin), Some(path)) = (run.network.plugins().get(i), paths.get(i)) else {
                continue;
            };
            let stdin = plugin_stdin(
                run.network,
                plugin,
                None,
                &Injected {
                    prev_result: run.prev_result,
                    capability_args: Some(run.capability_args),
                    extra: Vec::new(),
                },
            );
            match self
                .invoke(
                    run.command,
                    plugin.plugin_type(),
                    path,
                    run.env.clone(),
                    stdin,
                )
                .await
            {
                Ok((_, elapsed)) => timings.push(PluginTiming {
                    plugin: plugin.plugin_type().to_owned(),
                    duration: elapsed,
                }),
                Err(e) => return (timings, Err(e)),
            }
        }
        (timings, Ok(()))
    }
}

fn attachment_env<E: PluginExec>(
    invoker: &Invoker<E>,
    command: CniCommand,
    request: &AttachmentRequest,
    netns: &str,
    cni_args: &str,
) -> Vec<(String, String)> {
    plugin_env(
        command,
        &invoker.config.bin_dirs,
        Some(&AttachmentEnv {
            container_id: &request.container_id,
            netns,
            ifname: &request.ifname,
            cni_args,
        }),
    )
}

/// `CNI_NETNS` for DEL: the path if it still exists, else empty.
async fn existing_netns(netns: &Path) -> String {
    if netns.as_os_str().is_empty() || !tokio::fs::try_exists(netns).await.unwrap_or(false) {
        return String::new();
    }
    netns.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests;
