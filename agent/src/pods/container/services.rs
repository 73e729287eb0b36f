//! Service environment variables (`KUBERNETES_SERVICE_HOST` and friends), as kubelet injects
//! them: for the `kubernetes` service of the `default` namespace always, and for every service
//! of the pod's namespace when `enableServiceLinks` is on (the default).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// The namespace and name of the API server's own service.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICE: &str = "kubernetes";

/// Picks the services a pod in `namespace` sees: `default/kubernetes` from `default_services`,
/// and, when `links` is on, all of `namespace_services` (which win on a name clash). Services
/// without a cluster IP (headless, ExternalName) are left out. Sorted by name.
pub(super) fn visible_services(
    namespace: &str,
    links: bool,
    default_services: Vec<Service>,
    namespace_services: Vec<Service>,
) -> Vec<Service> {
    let mut chosen: BTreeMap<String, Service> = BTreeMap::new();
    for s in default_services {
        let name = s.metadata.name.clone().unwrap_or_default();
        if name == MASTER_SERVICE && cluster_ip(&s).is_some() {
            chosen.insert(name, s);
        }
    }
    if links {
        for s in namespace_services {
            let same_ns = s
                .metadata
                .namespace
                .as_deref()
                .is_none_or(|ns| ns == namespace);
            if same_ns && cluster_ip(&s).is_some() {
                chosen.insert(s.metadata.name.clone().unwrap_or_default(), s);
            }
        }
    }
    chosen.into_values().collect()
}

/// Whether the pod's namespace is the one holding the API server's service.
pub(super) fn is_master_namespace(namespace: &str) -> bool {
    namespace == MASTER_NAMESPACE
}

fn cluster_ip(s: &Service) -> Option<&str> {
    s.spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// `my-svc` -> `MY_SVC`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables for `services`, in order: per service `{SVC}_SERVICE_HOST`,
/// `{SVC}_SERVICE_PORT`, `{SVC}_SERVICE_PORT_{PORT_NAME}` for named ports, then the
/// Docker-link style `{SVC}_PORT` and `{SVC}_PORT_{port}_{PROTO}[_PROTO|_PORT|_ADDR]`.
pub fn service_env(services: &[Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in services {
        let (Some(ip), Some(ports)) = (
            cluster_ip(s),
            s.spec.as_ref().and_then(|sp| sp.ports.as_deref()),
        ) else {
            continue;
        };
        let Some(first) = ports.first() else {
            continue;
        };
        let prefix = env_name(s.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let port_var = format!("{prefix}_SERVICE_PORT");
        out.push((port_var.clone(), first.port.to_string()));
        for p in ports {
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((format!("{port_var}_{}", env_name(name)), p.port.to_string()));
            }
        }
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        for (i, p) in ports.iter().enumerate() {
            let proto = p
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{host}:{}", p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((pp.clone(), url));
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: &serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn kubernetes_service_variables() {
        let s = svc(
            "default",
            "kubernetes",
            "10.96.0.1",
            &json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        );
        let env = service_env(&[s]);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(
            get(&env, "KUBERNETES_PORT_443_TCP"),
            Some("tcp://10.96.0.1:443")
        );
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(env.len(), 8);
    }

    #[test]
    fn names_ipv6_and_protocols() {
        let s = svc(
            "ns",
            "my-dns",
            "fd00::a",
            &json!([{"port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]),
        );
        let env = service_env(&[s]);
        assert_eq!(get(&env, "MY_DNS_SERVICE_PORT"), Some("53"));
        assert_eq!(get(&env, "MY_DNS_SERVICE_PORT_DNS_TCP"), Some("53"));
        assert_eq!(get(&env, "MY_DNS_PORT"), Some("udp://[fd00::a]:53"));
        assert_eq!(get(&env, "MY_DNS_PORT_53_TCP"), Some("tcp://[fd00::a]:53"));
    }

    #[test]
    fn visibility_rules() {
        let master = svc(
            "default",
            "kubernetes",
            "10.96.0.1",
            &json!([{"port": 443}]),
        );
        let other_default = svc("default", "other", "10.96.0.2", &json!([{"port": 80}]));
        let mine = svc("ns", "db", "10.96.0.3", &json!([{"port": 5432}]));
        let headless = svc("ns", "headless", "None", &json!([{"port": 1}]));
        let names = |v: Vec<Service>| {
            v.into_iter()
                .map(|s| s.metadata.name.unwrap())
                .collect::<Vec<_>>()
        };

        let seen = visible_services(
            "ns",
            true,
            vec![master.clone(), other_default.clone()],
            vec![mine.clone(), headless.clone()],
        );
        assert_eq!(names(seen), ["db", "kubernetes"]);

        let seen = visible_services(
            "ns",
            false,
            vec![master.clone(), other_default],
            vec![mine, headless],
        );
        assert_eq!(
            names(seen),
            ["kubernetes"],
            "service links off: only the master service"
        );

        let shadow = svc("ns", "kubernetes", "10.0.0.9", &json!([{"port": 1}]));
        let seen = visible_services("ns", true, vec![master], vec![shadow]);
        assert_eq!(
            seen[0].spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("10.0.0.9"),
            "the pod's namespace wins"
        );
    }
}
