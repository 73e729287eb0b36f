//! The CRI PodSandboxConfig for a pod, as kubelet builds it: metadata, kubelet's labels, hostname,
//! DNS from dnsPolicy/dnsConfig, host port mappings, cgroup parent by QoS class, sysctls,
//! namespaces and the pod-level security context, and the log directory /var/log/pods/NS_NAME_UID.

use std::collections::HashMap;
use std::path::Path;

use cri_client::api::{
    self, DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use k8s_openapi::api::core::v1::Pod;

use super::container::{QosClass, qos_class};
use super::labels;
use crate::cgroups::{PodCgroups, QosTier};

/// Facts from the node that shape sandboxes.
pub struct SandboxEnv<'a> {
    /// Where pod log directories live (/var/log/pods).
    pub log_root: &'a Path,
    /// The host's resolv.conf text, for dnsPolicy Default (and ClusterFirst without cluster DNS).
    pub host_resolv_conf: &'a str,
    /// Cluster DNS servers (--cluster-dns); empty when the cluster has none.
    pub cluster_dns: &'a [String],
    pub cluster_domain: &'a str,
    /// Where the pod's cgroup goes.
    pub cgroups: &'a PodCgroups,
    /// The pod's user namespace (`userns` module), when known.
    pub userns: Option<&'a api::UserNamespace>,
}

/// The pod's log directory: LOG_ROOT/NAMESPACE_NAME_UID.
pub fn log_directory(log_root: &Path, pod: &Pod) -> std::path::PathBuf {
    let m = &pod.metadata;
    log_root.join(format!(
        "{}_{}_{}",
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    ))
}

/// The pod's cgroup parent: its own cgroup below its QoS class's, in the driver's form.
pub fn cgroup_parent(cgroups: &PodCgroups, pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let tier = match qos_class(pod) {
        QosClass::Guaranteed => QosTier::Guaranteed,
        QosClass::Burstable => QosTier::Burstable,
        QosClass::BestEffort => QosTier::BestEffort,
    };
    cgroups.parent(tier, uid)
}

/// Kubelet's labels on every sandbox: the pod's own labels plus name, namespace and UID.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    let mut out: HashMap<String, String> =
        m.labels.clone().unwrap_or_default().into_iter().collect();
    out.insert(
        labels::POD_NAME.to_string(),
        m.name.clone().unwrap_or_default(),
    );
    out.insert(
        labels::POD_NAMESPACE.to_string(),
        m.namespace.clone().unwrap_or_default(),
    );
    out.insert(
        labels::POD_UID.to_string(),
        m.uid.clone().unwrap_or_default(),
    );
    out
}

/// Parses nameserver / search / options lines of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.servers.extend(words.next().map(str::to_string)),
            Some("search") => dns.searches = words.map(str::to_string).collect(),
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

/// DNS config from dnsPolicy and dnsConfig. ClusterFirst without cluster DNS falls back to the
/// host's config, as kubelet does (it also emits a MissingClusterDNS event: see `needs_cluster_dns`).
pub fn dns_config(pod: &Pod, env: &SandboxEnv<'_>) -> DnsConfig {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut dns = match policy {
        "None" => DnsConfig::default(),
        "ClusterFirstWithHostNet" | "ClusterFirst"
            if !env.cluster_dns.is_empty() && (!host_network || policy != "ClusterFirst") =>
        {
            let d = env.cluster_domain;
            DnsConfig {
                servers: env.cluster_dns.to_vec(),
                searches: vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_string()],
                options: vec!["ndots:5".to_string()],
            }
        }
        _ => parse_resolv_conf(env.host_resolv_conf),
    };
    if let Some(custom) = spec.and_then(|s| s.dns_config.as_ref()) {
        for s in custom.nameservers.iter().flatten() {
            if !dns.servers.contains(s) {
                dns.servers.push(s.clone());
            }
        }
        for s in custom.searches.iter().flatten() {
            if !dns.searches.contains(s) {
                dns.searches.push(s.clone());
            }
        }
        for o in custom.options.iter().flatten() {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = text.split(':').next().unwrap_or_default().to_string();
            dns.options
                .retain(|x| x.split(':').next() != Some(key.as_str()));
            dns.options.push(text);
        }
    }
    dns
}

/// True when the pod asks for cluster DNS the node does not have.
pub fn needs_cluster_dns(pod: &Pod, env: &SandboxEnv<'_>) -> bool {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    env.cluster_dns.is_empty() && matches!(policy, "ClusterFirst" | "ClusterFirstWithHostNet")
}

fn port_mappings(pod: &Pod) -> Vec<PortMapping> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp as i32,
                Some("SCTP") => Protocol::Sctp as i32,
                _ => Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The pod's namespaces (the containers' rules: [`super::container::security::namespace_options`])
/// and its user namespace.
fn namespace_options(pod: &Pod, userns: Option<&api::UserNamespace>) -> NamespaceOption {
    let mut options = super::container::security::namespace_options(pod);
    options.userns_options = userns.cloned();
    options
}

fn security_context(pod: &Pod, userns: Option<&api::UserNamespace>) -> LinuxSandboxSecurityContext {
    let spec = pod.spec.as_ref();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let privileged = spec.is_some_and(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
            .any(|c| {
                c.security_context
                    .as_ref()
                    .and_then(|sc| sc.privileged)
                    .unwrap_or(false)
            })
    });
    let mut groups: Vec<i64> = psc
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default();
    if let Some(fs_group) = psc.and_then(|p| p.fs_group) {
        groups.push(fs_group);
    }
    LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod, userns)),
        run_as_user: psc
            .and_then(|p| p.run_as_user)
            .map(|value| api::Int64Value { value }),
        run_as_group: psc
            .and_then(|p| p.run_as_group)
            .map(|value| api::Int64Value { value }),
        supplemental_groups: groups,
        privileged,
        ..LinuxSandboxSecurityContext::default()
    }
}

/// The sandbox config for attempt `attempt` of `pod`.
pub fn sandbox_config(pod: &Pod, attempt: u32, env: &SandboxEnv<'_>) -> PodSandboxConfig {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let hostname = if host_network {
        String::new()
    } else {
        let name = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| m.name.clone().unwrap_or_default());
        name.chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches(['-', '.'])
            .to_string()
    };
    let sysctls = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|p| p.sysctls.as_ref())
        .map(|list| {
            list.iter()
                .map(|s| (s.name.clone(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            attempt,
        }),
        hostname,
        log_directory: log_directory(env.log_root, pod).display().to_string(),
        dns_config: Some(dns_config(pod, env)),
        port_mappings: port_mappings(pod),
        labels: sandbox_labels(pod),
        annotations: m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(env.cgroups, pod),
            security_context: Some(security_context(pod, env.userns)),
            sysctls,
            ..LinuxPodSandboxConfig::default()
        }),
        windows: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: &serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "labels": {"app": "web"}},
            "spec": spec
        }))
        .unwrap()
    }

    static CGROUPS: std::sync::LazyLock<PodCgroups> = std::sync::LazyLock::new(PodCgroups::default);

    fn env(cluster_dns: &[String]) -> SandboxEnv<'_> {
        SandboxEnv {
            log_root: Path::new("/var/log/pods"),
            host_resolv_conf: "nameserver 192.0.2.53\nsearch example.test\noptions edns0\n",
            cluster_dns,
            cluster_domain: "cluster.local",
            cgroups: &CGROUPS,
            userns: None,
        }
    }

    #[test]
    fn config_carries_kubelets_labels_log_dir_and_ports() {
        let p = pod(&json!({"containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]}]}));
        let c = sandbox_config(&p, 2, &env(&[]));
        let md = c.metadata.unwrap();
        assert_eq!(
            (md.name.as_str(), md.namespace.as_str(), md.attempt),
            ("web", "ns1", 2)
        );
        assert_eq!(c.labels[labels::POD_UID], "u-1");
        assert_eq!(c.labels["app"], "web");
        assert_eq!(c.log_directory, "/var/log/pods/ns1_web_u-1");
        assert_eq!(c.hostname, "web");
        assert_eq!(
            c.port_mappings.len(),
            1,
            "only ports with a hostPort are mapped"
        );
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(
            c.linux.unwrap().cgroup_parent,
            "/kubepods/besteffort/podu-1"
        );
    }

    #[test]
    fn dns_follows_policy_and_custom_config() {
        let p = pod(
            &json!({"containers": [], "dnsConfig": {"nameservers": ["192.0.2.9"],
            "options": [{"name": "ndots", "value": "2"}]}}),
        );
        let none = [];
        let d = dns_config(&p, &env(&none));
        assert_eq!(d.servers, ["192.0.2.53", "192.0.2.9"]);
        assert!(d.options.contains(&"ndots:2".to_string()));
        let cluster = ["10.96.0.10".to_string()];
        let d = dns_config(&p, &env(&cluster));
        assert_eq!(d.servers[0], "10.96.0.10");
        assert_eq!(d.searches[0], "ns1.svc.cluster.local");
        assert_eq!(
            d.options.iter().filter(|o| o.starts_with("ndots")).count(),
            1
        );
        let p = pod(
            &json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1"]}}),
        );
        assert_eq!(dns_config(&p, &env(&cluster)).servers, ["192.0.2.1"]);
    }

    #[test]
    fn host_namespaces_and_sysctls() {
        let p = pod(
            &json!({"containers": [], "hostNetwork": true, "hostPID": true,
            "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}}),
        );
        let c = sandbox_config(&p, 0, &env(&[]));
        assert_eq!(c.hostname, "", "hostNetwork pods keep the node's hostname");
        let linux = c.linux.unwrap();
        assert_eq!(linux.sysctls["net.core.somaxconn"], "1024");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, api::NamespaceMode::Node as i32);
        assert_eq!(ns.pid, api::NamespaceMode::Node as i32);
        assert_eq!(ns.ipc, api::NamespaceMode::Pod as i32);
    }
}
