//! The agent's chain configuration: the first `*.conflist`, `*.conf` or `*.json` of
//! `--cni-conf-dir` (lexical order, as containerd and kubelet pick), rendered with the node's pod
//! CIDR. Like containerd's `conf_template`, the file may use `{{.PodCIDR}}` (e.g.
//! `10.244.3.0/24`), `{{.PodCIDRRangeStart}}` and `{{.PodCIDRRangeEnd}}` (its second and
//! second-to-last addresses, e.g. for host-local `rangeStart`/`rangeEnd` inside the cluster
//! subnet, leaving `.1` of the first /24 to the bridge gateway).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cni_invoker::{CniError, NetworkConfigList};

use super::NetworkError;

const EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// A node's IPv4 pod CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl PodCidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a CIDR (ADDRESS/PREFIX)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{text:?}: only IPv4 pod CIDRs are supported"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| (8..=30).contains(l))
            .ok_or_else(|| format!("{text:?}: prefix length must be 8-30"))?;
        let mask = u32::MAX << (32 - u32::from(prefix_len));
        Ok(PodCidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix_len,
        })
    }

    fn broadcast(self) -> u32 {
        u32::from(self.network) | (u32::MAX >> u32::from(self.prefix_len))
    }

    pub fn range_start(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 2)
    }

    pub fn range_end(self) -> Ipv4Addr {
        Ipv4Addr::from(self.broadcast() - 1)
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & !(u32::MAX >> u32::from(self.prefix_len))) == u32::from(self.network)
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Whether `text` needs a pod CIDR.
pub fn is_template(text: &str) -> bool {
    text.contains("{{.PodCIDR")
}

/// Substitutes the pod CIDR placeholders.
pub fn render(text: &str, cidr: PodCidr) -> String {
    text.replace("{{.PodCIDRRangeStart}}", &cidr.range_start().to_string())
        .replace("{{.PodCIDRRangeEnd}}", &cidr.range_end().to_string())
        .replace("{{.PodCIDR}}", &cidr.to_string())
}

/// The file the chain comes from.
pub fn pick(dir: &Path) -> Result<PathBuf, NetworkError> {
    let entries = std::fs::read_dir(dir).map_err(|_| CniError::NoConfig {
        dir: dir.to_path_buf(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    files.into_iter().next().ok_or_else(|| {
        NetworkError::Cni(CniError::NoConfig {
            dir: dir.to_path_buf(),
        })
    })
}

/// Loads and renders the chain of `dir`.
pub fn load(dir: &Path, cidr: Option<PodCidr>) -> Result<NetworkConfigList, NetworkError> {
    let path = pick(dir)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        NetworkError::Cni(CniError::Config {
            file: path.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    let text = if is_template(&text) {
        render(&text, cidr.ok_or(NetworkError::NoPodCidr)?)
    } else {
        text
    };
    let list = if path.extension().is_some_and(|e| e == "conflist") {
        NetworkConfigList::from_conflist_bytes(text.as_bytes(), Some(&path))
    } else {
        NetworkConfigList::from_conf_bytes(text.as_bytes(), Some(&path))
    };
    list.map_err(NetworkError::Cni)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidr_ranges() {
        let c = PodCidr::parse("10.244.3.7/24").unwrap();
        assert_eq!(c.to_string(), "10.244.3.0/24");
        assert_eq!(c.range_start().to_string(), "10.244.3.2");
        assert_eq!(c.range_end().to_string(), "10.244.3.254");
        assert!(c.contains("10.244.3.200".parse().unwrap()));
        assert!(!c.contains("10.244.4.1".parse().unwrap()));
        assert!(PodCidr::parse("fd00::/64").is_err());
        assert!(PodCidr::parse("10.0.0.0").is_err());
        assert!(PodCidr::parse("10.0.0.0/31").is_err());
    }

    #[test]
    fn templates_render_and_need_a_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge",
            "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/16",
            "rangeStart":"{{.PodCIDRRangeStart}}","rangeEnd":"{{.PodCIDRRangeEnd}}"}]]}}]}"#;
        std::fs::write(dir.path().join("20-b.conflist"), "garbage").unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), text).unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "x").unwrap();
        assert!(matches!(
            load(dir.path(), None),
            Err(NetworkError::NoPodCidr)
        ));
        let list = load(dir.path(), Some(PodCidr::parse("10.244.5.0/24").unwrap())).unwrap();
        let json = list.to_json().to_string();
        assert!(
            json.contains("10.244.5.2") && json.contains("10.244.5.254"),
            "{json}"
        );
    }

    #[test]
    fn a_malformed_or_missing_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("no CNI network config"), "{e}");
        std::fs::write(dir.path().join("10-a.conflist"), "{not json").unwrap();
        let e = load(dir.path(), None).unwrap_err().to_string();
        assert!(e.contains("invalid CNI config"), "{e}");
    }
}
