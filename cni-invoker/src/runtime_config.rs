//! Capability arguments and the `runtimeConfig` derived from them for each
//! plugin (CNI CONVENTIONS: `portMappings`, `bandwidth`, `ips`, `mac`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::PluginConfig;

/// Capability arguments of one attachment, keyed by capability name.
///
/// A plugin receives, in its `runtimeConfig`, exactly those entries whose
/// name it declares as `true` in its `capabilities` map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CapabilityArgs(BTreeMap<String, Value>);

/// One `portMappings` entry (a pod's `hostPort`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Port on the host.
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    /// Port in the container.
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Host address to bind to; all when `None`.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// The `bandwidth` capability: rates in bits per second, bursts in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Ingress rate limit.
    #[serde(rename = "ingressRate")]
    pub ingress_rate: u64,
    /// Ingress burst.
    #[serde(rename = "ingressBurst")]
    pub ingress_burst: u64,
    /// Egress rate limit.
    #[serde(rename = "egressRate")]
    pub egress_rate: u64,
    /// Egress burst.
    #[serde(rename = "egressBurst")]
    pub egress_burst: u64,
}

impl CapabilityArgs {
    /// No capability arguments.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `portMappings`.
    #[must_use]
    pub fn with_port_mappings(self, mappings: &[PortMapping]) -> Self {
        self.with(
            "portMappings",
            serde_json::to_value(mappings).unwrap_or(Value::Null),
        )
    }

    /// Adds `bandwidth`.
    #[must_use]
    pub fn with_bandwidth(self, bandwidth: Bandwidth) -> Self {
        self.with(
            "bandwidth",
            serde_json::to_value(bandwidth).unwrap_or(Value::Null),
        )
    }

    /// Adds `ips`: addresses as `ip[/prefix]` strings.
    #[must_use]
    pub fn with_ips<S: AsRef<str>>(self, ips: &[S]) -> Self {
        let ips = ips
            .iter()
            .map(|ip| Value::String(ip.as_ref().to_owned()))
            .collect();
        self.with("ips", Value::Array(ips))
    }

    /// Adds `mac`.
    #[must_use]
    pub fn with_mac(self, mac: impl Into<String>) -> Self {
        self.with("mac", Value::String(mac.into()))
    }

    /// Adds any capability by name (e.g. `dns`, `cgroupPath`, `deviceID`).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.0.insert(name.into(), value);
        self
    }

    /// The argument for capability `name`, if given.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Whether no argument is given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `runtimeConfig` for `plugin`: the arguments whose capability the
    /// plugin declares, or `None` when that is nothing.
    pub(crate) fn runtime_config_for(&self, plugin: &PluginConfig) -> Option<Map<String, Value>> {
        let selected: Map<String, Value> = plugin
            .capabilities()
            .filter_map(|name| self.0.get(name).map(|v| (name.to_owned(), v.clone())))
            .collect();
        (!selected.is_empty()).then_some(selected)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::NetworkConfigList;

    #[test]
    fn only_declared_capabilities_are_selected() {
        let list = NetworkConfigList::from_conflist_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}},
                {"type":"tuning","capabilities":{"mac":true,"custom":true}},
                {"type":"bridge"}]}"#,
            None,
        )
        .unwrap();
        let args = CapabilityArgs::new()
            .with_port_mappings(&[PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            }])
            .with_bandwidth(Bandwidth {
                ingress_rate: 1,
                ingress_burst: 2,
                egress_rate: 3,
                egress_burst: 4,
            })
            .with_mac("c2:11:22:33:44:55")
            .with("custom", json!({"k": "v"}));
        let p = list.plugins();
        assert_eq!(
            Value::Object(args.runtime_config_for(&p[0]).unwrap()),
            json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
        );
        assert_eq!(
            Value::Object(args.runtime_config_for(&p[1]).unwrap()),
            json!({"mac":"c2:11:22:33:44:55","custom":{"k":"v"}})
        );
        assert_eq!(args.runtime_config_for(&p[2]), None);
        assert_eq!(CapabilityArgs::new().runtime_config_for(&p[0]), None);
    }

    #[test]
    fn ips_and_bandwidth_use_convention_names() {
        let args = CapabilityArgs::new()
            .with_ips(&["10.0.0.5/24"])
            .with_bandwidth(Bandwidth {
                ingress_rate: 10,
                ingress_burst: 20,
                egress_rate: 30,
                egress_burst: 40,
            });
        assert_eq!(args.get("ips"), Some(&json!(["10.0.0.5/24"])));
        assert_eq!(
            args.get("bandwidth"),
            Some(&json!({"ingressRate":10,"ingressBurst":20,"egressRate":30,"egressBurst":40}))
        );
    }
}
