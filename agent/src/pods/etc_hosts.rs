//! The kubelet-managed /etc/hosts: written once the pod's IPs are known to
//! ROOT_DIR/pods/UID/etc-hosts and bind-mounted into every container that does not mount
//! /etc/hosts itself, with the pod's hostname (and FQDN when it has a subdomain) and its
//! hostAliases. hostNetwork pods get the node's own hosts file plus their hostAliases.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use cri_client::api;
use k8s_openapi::api::core::v1::{Container, Pod};

const HEADER: &str = "# Kubernetes-managed hosts file.\n";
const HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";
const DEFAULTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n";

/// The file's path for a pod.
pub fn path(root_dir: &Path, pod_uid: &str) -> PathBuf {
    root_dir.join("pods").join(pod_uid).join("etc-hosts")
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_ref())
        .filter(|a| !a.is_empty());
    let Some(aliases) = aliases else {
        return String::new();
    };
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.clone().unwrap_or_default().join("\t");
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}\t{}", a.ip, names);
    }
    out
}

/// The file's content, as kubelet writes it.
pub fn content(pod: &Pod, pod_ips: &[String], node_hosts: &str, cluster_domain: &str) -> String {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network) == Some(true) {
        return format!("{HEADER_HOST_NETWORK}{node_hosts}{}", host_aliases(pod));
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let hostname = spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    let hostname: String = hostname.chars().take(63).collect();
    let hostname = hostname.trim_end_matches(['-', '.']).to_string();
    let mut out = format!("{HEADER}{DEFAULTS}");
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    for ip in pod_ips {
        // Writing to a String cannot fail.
        let _ = match subdomain {
            Some(sub) => writeln!(
                out,
                "{ip}\t{hostname}.{sub}.{ns}.svc.{cluster_domain}\t{hostname}"
            ),
            None => writeln!(out, "{ip}\t{hostname}"),
        };
    }
    out.push_str(&host_aliases(pod));
    out
}

/// Whether the container gets the managed file: not when it mounts /etc/hosts itself, and
/// for pods on the pod network only once their IPs are known.
pub fn applies(pod: &Pod, c: &Container, mounts: &[api::Mount], pod_ips: &[String]) -> bool {
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let own = mounts.iter().any(|m| m.container_path == "/etc/hosts")
        || c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts");
    !own && (host_network || !pod_ips.is_empty())
}

/// Writes the file (atomically: a temporary file renamed over it) and returns the mount.
pub fn write(
    root_dir: &Path,
    pod: &Pod,
    pod_ips: &[String],
    cluster_domain: &str,
) -> std::io::Result<api::Mount> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let target = path(root_dir, uid);
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("etc-hosts path has no parent"))?;
    crate::volumes::layout::Layout::new(root_dir).create_pod_dir(uid)?;
    let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let text = content(pod, pod_ips, &node_hosts, cluster_domain);
    let tmp = dir.join(".etc-hosts.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    Ok(api::Mount {
        container_path: "/etc/hosts".to_string(),
        host_path: target.to_string_lossy().into_owned(),
        readonly: false,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: &serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn pod_network_file_has_defaults_hostname_fqdn_and_aliases() {
        let p = pod(
            &json!({"containers": [], "hostname": "web", "subdomain": "svc1",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]}]}),
        );
        let text = content(&p, &["10.244.0.5".into()], "", "cluster.local");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            text.contains("10.244.0.5\tweb.svc1.ns.svc.cluster.local\tweb\n"),
            "{text}"
        );
        assert!(text.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar\n"));
        let plain = content(
            &pod(&json!({"containers": []})),
            &["10.244.0.6".into()],
            "",
            "c",
        );
        assert!(plain.contains("10.244.0.6\tweb-0\n"));
    }

    #[test]
    fn host_network_pods_get_the_node_file() {
        let p = pod(&json!({"containers": [], "hostNetwork": true}));
        let text = content(&p, &[], "127.0.0.1 myhost\n", "cluster.local");
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 myhost\n"
        );
    }

    #[test]
    fn containers_mounting_their_own_hosts_file_keep_it() {
        let p = pod(&json!({"containers": []}));
        let c: Container = serde_json::from_value(json!({"name": "c",
            "volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}]}))
        .unwrap();
        assert!(!applies(&p, &c, &[], &["10.0.0.1".into()]));
        let plain: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        assert!(applies(&p, &plain, &[], &["10.0.0.1".into()]));
        assert!(!applies(&p, &plain, &[], &[]));
    }

    #[test]
    fn the_file_is_written_under_the_pod_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p = pod(&json!({"containers": []}));
        let m = write(dir.path(), &p, &["10.244.0.9".into()], "cluster.local").unwrap();
        assert_eq!(m.container_path, "/etc/hosts");
        let text = std::fs::read_to_string(&m.host_path).unwrap();
        assert!(text.contains("10.244.0.9\tweb-0"));
        assert_eq!(Path::new(&m.host_path), path(dir.path(), "u1"));
    }
}
