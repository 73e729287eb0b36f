//! [`RegistrationClient`]: the kubelet side of the plugin-registration v1 protocol. A registrar
//! (node-driver-registrar) serves `pluginregistration.Registration` on a socket in the
//! kubelet's plugins_registry directory; the kubelet calls GetInfo, validates the plugin, and
//! reports the outcome with NotifyRegistrationStatus.

use std::time::Duration;

use tonic::transport::Channel;

use crate::CsiError;
use crate::proto::registration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use crate::transport::{lazy_channel, parse_endpoint, unary};

const SERVICE: &str = "pluginregistration.Registration";

/// A client for one registration socket.
#[derive(Clone, Debug)]
pub struct RegistrationClient {
    channel: Channel,
    timeout: Duration,
}

impl RegistrationClient {
    /// A lazy client for the registration socket at `socket`.
    ///
    /// # Errors
    /// [`CsiError::InvalidEndpoint`] for a malformed path or outside a Tokio runtime.
    pub fn new(socket: &str, timeout: Duration) -> Result<Self, CsiError> {
        let path = parse_endpoint(socket)?;
        Ok(Self {
            channel: lazy_channel(&path, timeout)?,
            timeout,
        })
    }

    /// GetInfo: the plugin's type, name, endpoint and supported versions.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn get_info(&self) -> Result<PluginInfo, CsiError> {
        unary(
            &self.channel,
            SERVICE,
            "GetInfo",
            InfoRequest {},
            self.timeout,
        )
        .await
    }

    /// NotifyRegistrationStatus: tells the registrar whether the kubelet accepted the plugin.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn notify_registration_status(
        &self,
        registered: bool,
        error: &str,
    ) -> Result<(), CsiError> {
        let req = RegistrationStatus {
            plugin_registered: registered,
            error: error.to_owned(),
        };
        let _: RegistrationStatusResponse = unary(
            &self.channel,
            SERVICE,
            "NotifyRegistrationStatus",
            req,
            self.timeout,
        )
        .await?;
        Ok(())
    }
}
