//! Which sysctls a pod may set, as kubelet's sysctl admission decides: the safe set (namespaced
//! and unable to affect other pods or the node) is always allowed; anything else only when
//! listed in --allowed-unsafe-sysctls, and only when the sysctl is namespaced; a `net.*`
//! sysctl is never allowed with hostNetwork, nor an IPC one with hostIPC (it would change the
//! node's own value). A refusal is kubelet's SysctlForbidden.

use k8s_openapi::api::core::v1::Pod;

/// kubelet's safe sysctls (Kubernetes 1.35; every one is in the network or IPC namespace).
pub const SAFE: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// kubelet's reason for a pod refused for its sysctls.
pub const FORBIDDEN_REASON: &str = "SysctlForbidden";

/// The kernel namespace a sysctl lives in, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Net,
    Ipc,
}

impl Namespace {
    fn of(name: &str) -> Option<Namespace> {
        if name.starts_with("net.") {
            Some(Namespace::Net)
        } else if name.starts_with("kernel.shm")
            || name.starts_with("kernel.msg")
            || name == "kernel.sem"
            || name.starts_with("fs.mqueue.")
        {
            Some(Namespace::Ipc)
        } else {
            None
        }
    }

    /// The namespace's name in kubelet's messages.
    fn label(self) -> &'static str {
        match self {
            Namespace::Net => "Net",
            Namespace::Ipc => "IPC",
        }
    }
}

/// kubelet's NormalizeName: a name written with `/` first (`net/ipv4/conf/eth0.100/forwarding`)
/// has `.` and `/` swapped, so it reads as `net.ipv4.conf.eth0/100.forwarding`; a name written
/// with `.` first is kept as it is.
fn normalize(name: &str) -> String {
    match name.find(['.', '/']) {
        Some(i) if name.as_bytes()[i] == b'/' => name
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                other => other,
            })
            .collect(),
        _ => name.to_string(),
    }
}

/// The sysctls this node lets pods set.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    /// Exact names and `prefix*` patterns from --allowed-unsafe-sysctls.
    unsafe_allowed: Vec<String>,
}

impl Allowlist {
    /// The safe set plus `unsafe_allowed` (names or `prefix*` patterns). An unsafe sysctl that is
    /// not namespaced cannot be allowed: kubelet refuses to start with one, so does this.
    pub fn new(unsafe_allowed: &[String]) -> Result<Allowlist, String> {
        for pattern in unsafe_allowed {
            let name = normalize(pattern.trim_end_matches('*'));
            if Namespace::of(&name).is_none() {
                return Err(format!(
                    "the sysctls {pattern:?} are not known to be namespaced"
                ));
            }
        }
        Ok(Allowlist {
            unsafe_allowed: unsafe_allowed.iter().map(|p| normalize(p)).collect(),
        })
    }

    fn allowed(&self, name: &str) -> bool {
        SAFE.contains(&name)
            || self
                .unsafe_allowed
                .iter()
                .any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => p == name,
                })
    }

    /// Checks every sysctl of `pod`; the error is kubelet's message.
    pub fn check(&self, pod: &Pod) -> Result<(), String> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(());
        };
        let sysctls = spec
            .security_context
            .as_ref()
            .and_then(|s| s.sysctls.as_deref())
            .unwrap_or_default();
        for s in sysctls {
            let name = normalize(&s.name);
            if !self.allowed(&name) {
                return Err(format!("forbidden sysctl: \"{name}\" not allowlisted"));
            }
            let host = match Namespace::of(&name) {
                Some(Namespace::Net) => spec.host_network == Some(true),
                Some(Namespace::Ipc) => spec.host_ipc == Some(true),
                None => false,
            };
            if let Some(ns) = Namespace::of(&name).filter(|_| host) {
                return Err(format!(
                    "forbidden sysctl: \"{name}\" not allowed with host {} enabled",
                    ns.label()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(sysctls: &serde_json::Value, host_network: bool) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "hostNetwork": host_network, "containers": [],
            "securityContext": {"sysctls": sysctls}}}))
        .unwrap()
    }

    #[test]
    fn safe_sysctls_pass_and_unsafe_ones_are_forbidden() {
        let a = Allowlist::new(&[]).unwrap();
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "kernel.shm_rmid_forced", "value": "1"}]),
                false
            )),
            Ok(())
        );
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "net/ipv4/tcp_syncookies", "value": "1"}]),
                false
            )),
            Ok(())
        );
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "kernel.msgmax", "value": "1"}]),
                false
            )),
            Err("forbidden sysctl: \"kernel.msgmax\" not allowlisted".to_string())
        );
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "vm.swappiness", "value": "1"}]),
                false
            )),
            Err("forbidden sysctl: \"vm.swappiness\" not allowlisted".to_string())
        );
    }

    #[test]
    fn allowed_unsafe_patterns_and_host_namespaces() {
        let a =
            Allowlist::new(&["kernel.msg*".to_string(), "net.core.somaxconn".to_string()]).unwrap();
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "kernel.msgmax", "value": "1"}]),
                false
            )),
            Ok(())
        );
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "net.core.somaxconn", "value": "1"}]),
                false
            )),
            Ok(())
        );
        assert_eq!(
            a.check(&pod(
                &json!([{"name": "net.core.somaxconn", "value": "1"}]),
                true
            )),
            Err(
                "forbidden sysctl: \"net.core.somaxconn\" not allowed with host Net enabled"
                    .to_string()
            )
        );
        assert!(
            a.check(&pod(
                &json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}]),
                true
            ))
            .is_err(),
            "even a safe net sysctl would change the node's value"
        );
    }

    #[test]
    fn names_are_normalized_as_kubelet_does() {
        assert_eq!(
            normalize("net/ipv4/conf/eth0.100/forwarding"),
            "net.ipv4.conf.eth0/100.forwarding"
        );
        assert_eq!(
            normalize("net.ipv4.conf.eth0/100.forwarding"),
            "net.ipv4.conf.eth0/100.forwarding"
        );
        assert_eq!(
            normalize("kernel.shm_rmid_forced"),
            "kernel.shm_rmid_forced"
        );
    }

    #[test]
    fn a_node_wide_sysctl_cannot_be_allowed() {
        let e = Allowlist::new(&["vm.*".to_string()]).unwrap_err();
        assert!(e.contains("not known to be namespaced"), "{e}");
    }
}
