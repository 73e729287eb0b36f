//! Attachment parameters: which container, netns and interface an operation is for.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::CniError;
use crate::runtime_config::CapabilityArgs;

/// The identity of an attachment, `(CNI_CONTAINERID, CNI_IFNAME)`; also the
/// element of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    /// The container (pod sandbox) id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
}

impl Attachment {
    /// An attachment identity.
    #[must_use]
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Self {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }
}

/// The per-attachment parameters of ADD, DEL and CHECK.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentRequest {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the sandbox's network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`, e.g. `eth0`.
    pub ifname: String,
    /// `CNI_ARGS` pairs, e.g. `K8S_POD_NAMESPACE`, `K8S_POD_NAME`.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments, turned into each plugin's `runtimeConfig`.
    pub capability_args: CapabilityArgs,
}

impl AttachmentRequest {
    /// A request without `CNI_ARGS` or capability arguments.
    #[must_use]
    pub fn new(
        container_id: impl Into<String>,
        netns: impl Into<PathBuf>,
        ifname: impl Into<String>,
    ) -> Self {
        Self {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            cni_args: Vec::new(),
            capability_args: CapabilityArgs::new(),
        }
    }

    /// Sets the `CNI_ARGS` pairs.
    #[must_use]
    pub fn with_cni_args<K: Into<String>, V: Into<String>>(
        mut self,
        args: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.cni_args = args
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Sets the capability arguments.
    #[must_use]
    pub fn with_capability_args(mut self, args: CapabilityArgs) -> Self {
        self.capability_args = args;
        self
    }

    /// The attachment's identity.
    #[must_use]
    pub fn attachment(&self) -> Attachment {
        Attachment::new(self.container_id.clone(), self.ifname.clone())
    }

    /// Checks the container id, interface name and `CNI_ARGS` against the
    /// spec's rules; a netns is required unless `netns_optional` (DEL).
    pub(crate) fn validate(&self, netns_optional: bool) -> Result<(), CniError> {
        validate_identity(&self.container_id, &self.ifname)?;
        if !netns_optional && self.netns.as_os_str().is_empty() {
            return Err(invalid("netns path must not be empty"));
        }
        for (key, value) in &self.cni_args {
            if key.is_empty() || key.contains([';', '=']) || value.contains(';') {
                return Err(invalid(format!(
                    "CNI_ARGS pair {key:?}={value:?} cannot be encoded"
                )));
            }
        }
        Ok(())
    }

    /// `CNI_ARGS` as the plugin sees it: `K1=V1;K2=V2`.
    pub(crate) fn cni_args_string(&self) -> String {
        encode_cni_args(&self.cni_args)
    }
}

pub(crate) fn encode_cni_args(args: &[(String, String)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The spec's rules for `CNI_CONTAINERID` and `CNI_IFNAME`; both also end up
/// in cache file names, so they must be path-safe.
pub(crate) fn validate_identity(container_id: &str, ifname: &str) -> Result<(), CniError> {
    let mut chars = container_id.chars();
    let id_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !id_ok {
        return Err(invalid(format!(
            "container id {container_id:?} must start with a letter or digit and contain only letters, digits, '_', '.' or '-'"
        )));
    }
    let ifname_ok = !ifname.is_empty()
        && ifname.len() < 16
        && ifname != "."
        && ifname != ".."
        && !ifname
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if !ifname_ok {
        return Err(invalid(format!(
            "interface name {ifname:?} must be 1-15 bytes, not '.' or '..', without '/', ':' or whitespace"
        )));
    }
    Ok(())
}

fn invalid(reason: impl Into<String>) -> CniError {
    CniError::InvalidAttachment {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_cni_args() {
        let r = AttachmentRequest::new("abc", "/run/netns/x", "eth0")
            .with_cni_args([("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-0")]);
        assert_eq!(r.cni_args_string(), "IgnoreUnknown=1;K8S_POD_NAME=web-0");
        r.validate(false).unwrap();
    }

    #[test]
    fn refuses_unsafe_identities() {
        for (id, ifname) in [
            ("", "eth0"),
            ("../x", "eth0"),
            ("-abc", "eth0"),
            ("abc", ""),
            ("abc", "a/b"),
            ("abc", "0123456789abcdef"),
            ("abc", ".."),
            ("abc", "eth 0"),
        ] {
            assert!(
                matches!(
                    validate_identity(id, ifname),
                    Err(CniError::InvalidAttachment { .. })
                ),
                "{id:?} {ifname:?}"
            );
        }
        validate_identity("a1_b.c-d", "eth0").unwrap();
    }

    #[test]
    fn netns_is_required_except_for_del() {
        let r = AttachmentRequest::new("abc", "", "eth0");
        assert!(r.validate(false).is_err());
        r.validate(true).unwrap();
        let bad = AttachmentRequest::new("abc", "/n", "eth0").with_cni_args([("A;B", "1")]);
        assert!(bad.validate(false).is_err());
    }
}
