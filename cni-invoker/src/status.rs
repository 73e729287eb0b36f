//! STATUS (spec 1.1): is the network ready to serve ADD requests?

use crate::command::CniCommand;
use crate::config::NetworkConfigList;
use crate::error::CniError;
use crate::exec::PluginExec;
use crate::invoker::Invoker;
use crate::request::{Injected, plugin_env, plugin_stdin};
use crate::version::CniVersion;

/// The readiness of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStatus {
    /// The plugin `type`.
    pub plugin: String,
    /// What STATUS found.
    pub readiness: PluginReadiness,
}

/// How a plugin's readiness was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginReadiness {
    /// The plugin answered STATUS with success.
    Ready,
    /// The plugin (or the network configuration) predates spec 1.1 and has
    /// no STATUS; it is present and speaks the chain's version, so it is
    /// taken as ready.
    AssumedReady,
}

impl<E: PluginExec> Invoker<E> {
    /// Asks every plugin of `network` whether it can serve ADD requests.
    ///
    /// Every plugin binary must exist and share a version with the list
    /// (else ADD could not work). STATUS itself is sent, at 1.1.0, to the
    /// plugins that report 1.1.0 when the configuration allows 1.1.0 (in
    /// `cniVersion` or `cniVersions`); the others are [`PluginReadiness::AssumedReady`].
    ///
    /// # Errors
    /// [`CniError::MissingPlugin`], [`CniError::UnsupportedVersion`], or the
    /// first plugin's STATUS failure (codes 50 and 51 mean "not available").
    pub async fn status(&self, network: &NetworkConfigList) -> Result<Vec<PluginStatus>, CniError> {
        let (_, paths, versions) = self.negotiate(network).await?;
        let allows_status = network.allows_status_and_gc();
        let v11 = CniVersion::V1_1_0.to_string();
        let mut statuses = Vec::with_capacity(paths.len());
        for ((plugin, path), reported) in network.plugins().iter().zip(&paths).zip(&versions) {
            let readiness = if allows_status && reported.supports(CniVersion::V1_1_0) {
                let stdin = plugin_stdin(network, plugin, Some(&v11), &Injected::default());
                let env = plugin_env(CniCommand::Status, &self.config.bin_dirs, None);
                self.invoke(CniCommand::Status, plugin.plugin_type(), path, env, stdin)
                    .await?;
                PluginReadiness::Ready
            } else {
                PluginReadiness::AssumedReady
            };
            statuses.push(PluginStatus {
                plugin: plugin.plugin_type().to_owned(),
                readiness,
            });
        }
        Ok(statuses)
    }
}
