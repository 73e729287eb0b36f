//! The kubelet plugin-registration v1 messages (service `pluginregistration.Registration`).

/// `InfoRequest`: empty.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct InfoRequest {}

/// `PluginInfo`: what a registrar announces about its plugin.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct PluginInfo {
    /// `CSIPlugin`, `DevicePlugin` or `DRAPlugin`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// The plugin name (for CSI: the driver name).
    #[prost(string, tag = "2")]
    pub name: String,
    /// The plugin's own socket; empty means the registration socket itself.
    #[prost(string, tag = "3")]
    pub endpoint: String,
    /// API versions the plugin supports (CSI: "1.0.0", ...).
    #[prost(string, repeated, tag = "4")]
    pub supported_versions: Vec<String>,
}

/// `RegistrationStatus`: the kubelet's answer to a registration.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RegistrationStatus {
    #[prost(bool, tag = "1")]
    pub plugin_registered: bool,
    #[prost(string, tag = "2")]
    pub error: String,
}

/// `RegistrationStatusResponse`: empty.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RegistrationStatusResponse {}

/// The `type` a CSI plugin announces.
pub const CSI_PLUGIN: &str = "CSIPlugin";
