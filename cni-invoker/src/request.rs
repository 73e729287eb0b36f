//! Deriving what one plugin execution receives: the request configuration
//! on stdin and the CNI environment variables.

use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::command::CniCommand;
use crate::config::{NetworkConfigList, PluginConfig};
use crate::runtime_config::CapabilityArgs;

/// Keys of a plugin configuration that only the runtime may set.
const RUNTIME_KEYS: &[&str] = &["capabilities", "runtimeConfig", "prevResult"];
/// Prefix of keys reserved for the protocol (e.g. `cni.dev/valid-attachments`).
const RESERVED_PREFIX: &str = "cni.dev/";

/// What the runtime adds to a plugin's configuration for one execution.
#[derive(Debug, Default)]
pub(crate) struct Injected<'a> {
    /// `prevResult` (ADD after the first plugin, DEL and CHECK).
    pub prev_result: Option<&'a Value>,
    /// Capability arguments, filtered into `runtimeConfig` (ADD, DEL, CHECK).
    pub capability_args: Option<&'a CapabilityArgs>,
    /// Extra protocol keys such as `cni.dev/valid-attachments` (GC).
    pub extra: Vec<(&'static str, Value)>,
}

/// The request configuration of `plugin`: its own keys unchanged, `name` and
/// `cniVersion` from the list, `capabilities` removed, and the injected keys.
/// `version` overrides the list's version (STATUS and GC speak 1.1.0).
pub(crate) fn plugin_stdin(
    network: &NetworkConfigList,
    plugin: &PluginConfig,
    version: Option<&str>,
    injected: &Injected<'_>,
) -> Vec<u8> {
    let mut conf: Map<String, Value> = plugin
        .raw()
        .iter()
        .filter(|(k, _)| !RUNTIME_KEYS.contains(&k.as_str()) && !k.starts_with(RESERVED_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    conf.insert("name".to_owned(), Value::String(network.name().to_owned()));
    conf.insert(
        "cniVersion".to_owned(),
        Value::String(version.map_or_else(|| network.cni_version().to_string(), str::to_owned)),
    );
    if let Some(prev) = injected.prev_result {
        conf.insert("prevResult".to_owned(), prev.clone());
    }
    if let Some(runtime_config) = injected
        .capability_args
        .and_then(|args| args.runtime_config_for(plugin))
    {
        conf.insert("runtimeConfig".to_owned(), Value::Object(runtime_config));
    }
    for (key, value) in &injected.extra {
        conf.insert((*key).to_owned(), value.clone());
    }
    // Serializing a map of JSON values cannot fail.
    serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
}

/// The per-attachment parameters passed as environment variables.
pub(crate) struct AttachmentEnv<'a> {
    pub container_id: &'a str,
    /// `CNI_NETNS`; empty when DEL runs after the netns is gone.
    pub netns: &'a str,
    pub ifname: &'a str,
    pub cni_args: &'a str,
}

/// The environment of a plugin execution: `CNI_COMMAND`, `CNI_PATH` and,
/// for ADD/DEL/CHECK, the attachment parameters.
pub(crate) fn plugin_env(
    command: CniCommand,
    bin_dirs: &[PathBuf],
    attachment: Option<&AttachmentEnv<'_>>,
) -> Vec<(String, String)> {
    let cni_path = bin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut env = vec![
        ("CNI_COMMAND".to_owned(), command.as_str().to_owned()),
        ("CNI_PATH".to_owned(), cni_path),
    ];
    if let Some(a) = attachment {
        env.extend([
            ("CNI_CONTAINERID".to_owned(), a.container_id.to_owned()),
            ("CNI_NETNS".to_owned(), a.netns.to_owned()),
            ("CNI_IFNAME".to_owned(), a.ifname.to_owned()),
            ("CNI_ARGS".to_owned(), a.cni_args.to_owned()),
        ]);
    }
    env
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn injects_name_version_prev_result_and_runtime_config() {
        let list = NetworkConfigList::from_value(
            json!({"cniVersion":"0.4.0","name":"net","plugins":[
                {"type":"portmap","name":"ignored","cniVersion":"9.9.9","snat":true,
                 "capabilities":{"portMappings":true},"runtimeConfig":{"stale":1},
                 "cni.dev/valid-attachments":[]}]}),
            None,
        )
        .unwrap();
        let prev = json!({"cniVersion":"0.4.0","ips":[]});
        let args = CapabilityArgs::new()
            .with("portMappings", json!([]))
            .with("bandwidth", json!({}));
        let stdin = plugin_stdin(
            &list,
            &list.plugins()[0],
            None,
            &Injected {
                prev_result: Some(&prev),
                capability_args: Some(&args),
                extra: Vec::new(),
            },
        );
        let conf: Value = serde_json::from_slice(&stdin).unwrap();
        assert_eq!(
            conf,
            json!({"type":"portmap","name":"net","cniVersion":"0.4.0","snat":true,
                   "prevResult":prev,"runtimeConfig":{"portMappings":[]}})
        );
    }

    #[test]
    fn env_has_attachment_parameters_only_when_given() {
        let dirs = vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")];
        let plain = plugin_env(CniCommand::Gc, &dirs, None);
        assert_eq!(
            plain,
            vec![
                ("CNI_COMMAND".to_owned(), "GC".to_owned()),
                (
                    "CNI_PATH".to_owned(),
                    "/opt/cni/bin:/usr/lib/cni".to_owned()
                ),
            ]
        );
        let full = plugin_env(
            CniCommand::Del,
            &dirs,
            Some(&AttachmentEnv {
                container_id: "c",
                netns: "",
                ifname: "eth0",
                cni_args: "A=1",
            }),
        );
        assert_eq!(full.len(), 6);
        assert!(full.contains(&("CNI_NETNS".to_owned(), String::new())));
    }
}
