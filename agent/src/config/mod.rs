//! The agent's settings: flags (kubelet's names) over an optional YAML file over defaults,
//! resolved once at start-up into a validated [`Config`].

mod file;
mod flags;
pub mod parse;
pub mod server;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use file::{FileConfig, TaintSpec};
pub use flags::Flags;
pub use parse::{Reserved, Taint};

/// A setting that cannot be used. Each displays as one line naming the setting.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
    #[error("missing required setting {0} (flag or config file)")]
    Missing(&'static str),
}

fn invalid(setting: &'static str) -> impl Fn(String) -> ConfigError {
    move |message| ConfigError::Invalid { setting, message }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved, validated settings the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// None: detect from the default route's interface.
    pub node_ip: Option<IpAddr>,
    pub container_runtime_endpoint: String,
    pub root_dir: PathBuf,
    pub max_pods: u32,
    pub node_labels: BTreeMap<String, String>,
    pub register_with_taints: Vec<Taint>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    pub port: u16,
    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,
    pub server: server::ServerConfig,
    pub kube_reserved: Reserved,
    pub system_reserved: Reserved,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    /// How often API-backed volume contents (configMap, secret, projected) are refreshed.
    pub sync_frequency: Duration,
    pub node_lease_duration_seconds: u32,
    pub runtime_request_timeout: Duration,
    /// Container log rotation: size threshold in bytes and files kept per container.
    pub container_log_max_size: u64,
    pub container_log_max_files: usize,
    pub log_format: LogFormat,
    pub verbosity: u8,
    /// Pod networking: the chain's conf dir, plugins, cache, delegate socket, pod CIDR.
    pub network: crate::network::NetworkSettings,
    /// Unsafe sysctls (exact names or `prefix*` patterns) pods may set besides the safe set.
    pub allowed_unsafe_sysctls: Vec<String>,
}

/// Kubelet's defaults.
pub mod defaults {
    pub const ROOT_DIR: &str = "/var/lib/minikubelet";
    pub const CONTAINER_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";
    pub const MAX_PODS: u32 = 110;
    pub const PORT: u16 = 10250;
    pub const HEALTHZ_PORT: u16 = 10248;
    pub const NODE_STATUS_UPDATE_FREQUENCY: &str = "10s";
    pub const NODE_STATUS_REPORT_FREQUENCY: &str = "5m";
    pub const SYNC_FREQUENCY: &str = "1m";
    pub const NODE_LEASE_DURATION_SECONDS: u32 = 40;
    pub const RUNTIME_REQUEST_TIMEOUT: &str = "2m";
}

/// Reads the machine's hostname the way kubelet defaults the node name.
fn system_hostname() -> Result<String, ConfigError> {
    let name = rustix::system::uname();
    let host = name.nodename().to_string_lossy().trim().to_string();
    if host.is_empty() {
        return Err(ConfigError::Missing(
            "--hostname-override (the hostname is empty)",
        ));
    }
    Ok(host)
}

/// Normalises and validates a node name: lower-case DNS subdomain, like kubelet.
fn node_name(raw: &str) -> Result<String, ConfigError> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        });
    if ok {
        Ok(name)
    } else {
        Err(ConfigError::Invalid {
            setting: "--hostname-override",
            message: format!("{raw:?} is not a valid DNS subdomain name"),
        })
    }
}

impl Config {
    /// Resolves flags over the file (if `--config` names one) over defaults.
    pub fn resolve(flags: Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(flags, file)
    }

    /// Merges already-loaded flags and file settings; flags win.
    pub fn merge(flags: Flags, file: FileConfig) -> Result<Self, ConfigError> {
        let server = server::resolve(&flags, &file)?;
        let root_dir = flags
            .root_dir
            .clone()
            .or(file.root_dir.clone())
            .unwrap_or_else(|| PathBuf::from(defaults::ROOT_DIR));
        let network = network_settings(&flags, &file, &root_dir)?;
        let kubeconfig = flags
            .kubeconfig
            .or(file.kubeconfig)
            .ok_or(ConfigError::Missing("--kubeconfig"))?;
        let node_name = match flags.hostname_override.or(file.hostname_override) {
            Some(n) => node_name(&n)?,
            None => node_name(&system_hostname()?)?,
        };
        let node_ip = flags
            .node_ip
            .or(file.node_ip)
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| invalid("--node-ip")(format!("{s:?} is not an IP address")))
            })
            .transpose()?;
        let endpoint = flags
            .container_runtime_endpoint
            .or(file.container_runtime_endpoint)
            .unwrap_or_else(|| defaults::CONTAINER_RUNTIME_ENDPOINT.to_string());
        if !(endpoint.starts_with("unix://") || endpoint.starts_with('/')) {
            return Err(invalid("--container-runtime-endpoint")(format!(
                "{endpoint:?}: only unix sockets are supported (unix:///path)"
            )));
        }
        let node_labels = match flags.node_labels {
            Some(text) => parse::parse_label_list(&text).map_err(invalid("--node-labels"))?,
            None => {
                let labels = file.node_labels.unwrap_or_default();
                parse::validate_labels(&labels).map_err(invalid("nodeLabels"))?;
                labels
            }
        };
        let register_with_taints = match flags.register_with_taints {
            Some(text) => {
                parse::parse_taint_list(&text).map_err(invalid("--register-with-taints"))?
            }
            None => file
                .register_with_taints
                .unwrap_or_default()
                .iter()
                .map(|t| parse::make_taint(&t.key, t.value.as_deref(), &t.effect))
                .collect::<Result<_, _>>()
                .map_err(invalid("registerWithTaints"))?,
        };
        let reserved = |flag: Option<String>, from_file: Option<BTreeMap<String, String>>, name| {
            let map = match flag {
                Some(text) => parse::parse_kv_list(&text).map_err(invalid(name))?,
                None => from_file.unwrap_or_default(),
            };
            parse::parse_reserved(&map).map_err(invalid(name))
        };
        let kube_reserved = reserved(flags.kube_reserved, file.kube_reserved, "--kube-reserved")?;
        let system_reserved = reserved(
            flags.system_reserved,
            file.system_reserved,
            "--system-reserved",
        )?;
        let duration = |v: Option<String>, d: &str, name| {
            parse::parse_duration(v.as_deref().unwrap_or(d)).map_err(invalid(name))
        };
        let node_status_update_frequency = duration(
            flags
                .node_status_update_frequency
                .or(file.node_status_update_frequency),
            defaults::NODE_STATUS_UPDATE_FREQUENCY,
            "--node-status-update-frequency",
        )?;
        let node_status_report_frequency = duration(
            flags
                .node_status_report_frequency
                .or(file.node_status_report_frequency),
            defaults::NODE_STATUS_REPORT_FREQUENCY,
            "--node-status-report-frequency",
        )?;
        let sync_frequency = duration(
            flags.sync_frequency.or(file.sync_frequency),
            defaults::SYNC_FREQUENCY,
            "--sync-frequency",
        )?;
        let runtime_request_timeout = duration(
            flags
                .runtime_request_timeout
                .or(file.runtime_request_timeout),
            defaults::RUNTIME_REQUEST_TIMEOUT,
            "--runtime-request-timeout",
        )?;
        if node_status_update_frequency.is_zero() || runtime_request_timeout.is_zero() {
            return Err(invalid("durations")("must be greater than zero".into()));
        }
        let allowed_unsafe_sysctls: Vec<String> = match flags.allowed_unsafe_sysctls.clone() {
            Some(text) => parse::comma_list(&text).map(str::to_string).collect(),
            None => file.allowed_unsafe_sysctls.clone().unwrap_or_default(),
        };
        for pattern in &allowed_unsafe_sysctls {
            parse::validate_sysctl_pattern(pattern).map_err(invalid("--allowed-unsafe-sysctls"))?;
        }
        let node_lease_duration_seconds = flags
            .node_lease_duration_seconds
            .or(file.node_lease_duration_seconds)
            .unwrap_or(defaults::NODE_LEASE_DURATION_SECONDS);
        if node_lease_duration_seconds < 4 {
            return Err(invalid("--node-lease-duration-seconds")(
                "must be at least 4".into(),
            ));
        }
        let max_pods = flags
            .max_pods
            .or(file.max_pods)
            .unwrap_or(defaults::MAX_PODS);
        if max_pods == 0 {
            return Err(invalid("--max-pods")("must be at least 1".into()));
        }
        let cluster_dns: Vec<String> = match flags.cluster_dns {
            Some(text) => parse::comma_list(&text).map(str::to_string).collect(),
            None => file.cluster_dns.unwrap_or_default(),
        };
        if let Some(bad) = cluster_dns.iter().find(|s| s.parse::<IpAddr>().is_err()) {
            return Err(invalid("--cluster-dns")(format!(
                "{bad:?} is not an IP address"
            )));
        }
        let port = flags.port.or(file.port).unwrap_or(defaults::PORT);
        if port == 0 {
            return Err(invalid("--port")("must be 1-65535".into()));
        }
        let healthz_bind = flags
            .healthz_bind_address
            .or(file.healthz_bind_address)
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let healthz_bind_address = healthz_bind.parse::<IpAddr>().map_err(|_| {
            invalid("--healthz-bind-address")(format!("{healthz_bind:?} is not an IP address"))
        })?;
        let size = flags
            .container_log_max_size
            .or(file.container_log_max_size)
            .unwrap_or_else(|| "10Mi".to_string());
        let container_log_max_size = crate::quantity::parse_units(&size)
            .map_err(|e| invalid("--container-log-max-size")(e.to_string()))?;
        if container_log_max_size == 0 {
            return Err(invalid("--container-log-max-size")(
                "must be greater than zero".into(),
            ));
        }
        let container_log_max_files = flags
            .container_log_max_files
            .or(file.container_log_max_files)
            .unwrap_or(5);
        if container_log_max_files < 2 {
            return Err(invalid("--container-log-max-files")(
                "must be at least 2".into(),
            ));
        }
        let log_format = match flags
            .log_format
            .or(file.log_format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid("--log-format")(format!(
                    "{other:?} (expected text or json)"
                )));
            }
        };
        Ok(Config {
            network,
            kubeconfig,
            node_name,
            node_ip,
            container_runtime_endpoint: endpoint,
            root_dir,
            max_pods,
            cluster_dns,
            cluster_domain: flags
                .cluster_domain
                .or(file.cluster_domain)
                .unwrap_or_else(|| "cluster.local".to_string()),
            node_labels,
            register_with_taints,
            port,
            healthz_port: flags
                .healthz_port
                .or(file.healthz_port)
                .unwrap_or(defaults::HEALTHZ_PORT),
            healthz_bind_address,
            server,
            kube_reserved,
            system_reserved,
            node_status_update_frequency,
            node_status_report_frequency,
            sync_frequency,
            node_lease_duration_seconds,
            runtime_request_timeout,
            container_log_max_size,
            container_log_max_files,
            log_format,
            verbosity: flags.verbosity.or(file.verbosity).unwrap_or(0),
            allowed_unsafe_sysctls,
        })
    }
}

/// The `--cni-*` and `--pod-cidr` settings.
fn network_settings(
    flags: &Flags,
    file: &FileConfig,
    root_dir: &std::path::Path,
) -> Result<crate::network::NetworkSettings, ConfigError> {
    use crate::network::defaults as net;
    let bin_dirs = flags
        .cni_bin_dir
        .clone()
        .or(file.cni_bin_dir.clone())
        .unwrap_or_else(|| net::BIN_DIRS.to_string());
    let pod_cidr = flags
        .pod_cidr
        .clone()
        .or(file.pod_cidr.clone())
        .filter(|c| !c.trim().is_empty())
        .map(|c| crate::network::conflist::PodCidr::parse(&c))
        .transpose()
        .map_err(invalid("--pod-cidr"))?;
    Ok(crate::network::NetworkSettings {
        conf_dir: flags
            .cni_conf_dir
            .clone()
            .or(file.cni_conf_dir.clone())
            .unwrap_or_else(|| PathBuf::from(net::CONF_DIR)),
        bin_dirs: parse::comma_list(&bin_dirs).map(PathBuf::from).collect(),
        cache_dir: flags
            .cni_cache_dir
            .clone()
            .or(file.cni_cache_dir.clone())
            .unwrap_or_else(|| root_dir.join(net::CACHE_SUBDIR)),
        socket: flags
            .cni_socket
            .clone()
            .or(file.cni_socket.clone())
            .unwrap_or_else(|| root_dir.join(net::SOCKET_SUBPATH)),
        routes_dir: flags
            .cni_routes_dir
            .clone()
            .or(file.cni_routes_dir.clone())
            .unwrap_or_else(|| PathBuf::from(net::ROUTES_DIR)),
        pod_cidr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            kubeconfig: Some("/k".into()),
            hostname_override: Some("Node-A".into()),
            ..Flags::default()
        }
    }

    #[test]
    fn defaults_match_kubelet() {
        let c = Config::merge(flags(), FileConfig::default()).unwrap();
        assert_eq!(c.node_name, "node-a", "names are lower-cased like kubelet");
        assert_eq!(c.max_pods, 110);
        assert_eq!(c.port, 10250);
        assert_eq!(c.healthz_port, 10248);
        assert_eq!(c.node_status_update_frequency, Duration::from_secs(10));
        assert_eq!(c.node_status_report_frequency, Duration::from_secs(300));
        assert_eq!(c.node_lease_duration_seconds, 40);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.container_log_max_size, 10 << 20);
        assert_eq!(c.container_log_max_files, 5);
    }

    #[test]
    fn flags_override_the_file() {
        let file = FileConfig::parse(
            "kubeconfig: /from-file\nmaxPods: 20\nport: 11000\nnodeLabels: {a: b}\n\
             registerWithTaints: [{key: k, value: v, effect: NoSchedule}]\n",
        )
        .unwrap();
        let mut f = flags();
        f.max_pods = Some(30);
        let c = Config::merge(f, file).unwrap();
        assert_eq!(c.kubeconfig, PathBuf::from("/k"));
        assert_eq!(c.max_pods, 30);
        assert_eq!(c.port, 11000);
        assert_eq!(c.node_labels["a"], "b");
        assert_eq!(c.register_with_taints[0].effect, "NoSchedule");
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../../deploy/systemd/config.yaml");
        let file = FileConfig::parse(text).unwrap();
        let c = Config::merge(Flags::default(), file).unwrap();
        assert_eq!(c.node_name, "worker-1");
        assert_eq!(c.register_with_taints.len(), 1);
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let e = FileConfig::parse("maxPod: 3\n").unwrap_err();
        assert!(e.contains("maxPod"), "{e}");
    }

    #[test]
    fn invalid_settings_name_the_setting() {
        let mut f = flags();
        f.node_ip = Some("not-an-ip".into());
        let e = Config::merge(f, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--node-ip"), "{e}");

        let mut f = flags();
        f.container_runtime_endpoint = Some("tcp://1.2.3.4:1".into());
        assert!(Config::merge(f, FileConfig::default()).is_err());

        let mut f = flags();
        f.hostname_override = Some("under_score".into());
        assert!(Config::merge(f, FileConfig::default()).is_err());

        let e = Config::merge(Flags::default(), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("--kubeconfig"));
    }
}
