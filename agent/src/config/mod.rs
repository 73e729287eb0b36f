//! The agent's settings, resolved once at start-up into a validated [`Config`] with kubelet's
//! precedence: defaults < `--config` < `--config-dir` drop-ins (lexical order) < flags. The file
//! is a kubelet.config.k8s.io/v1beta1 KubeletConfiguration ([`kubelet`]) or the project's flat
//! format ([`FileConfig`]); what is accepted but not acted on comes back as [`Warning`]s.

pub mod container_gc;
pub mod duration;
pub mod eviction;
mod file;
mod flags;
pub mod image_gc;
pub mod kubelet;
pub mod parse;
pub mod server;
pub mod shutdown;
mod source;
pub mod user_namespaces;
mod warning;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::cgroups::{CgroupDriver, CgroupName, CgroupSettings};

pub use file::{FileConfig, TaintSpec};
pub use flags::{Flags, VersionFlag};
pub use parse::{Reserved, Taint};
pub use warning::Warning;

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
    /// A KubeletConfiguration field's value, named by its path (`authentication.webhook.cacheTTL`).
    #[error("invalid KubeletConfiguration: {path}: {message}")]
    Kubelet { path: String, message: String },
    #[error("invalid --config-dir {path}: {message}")]
    ConfigDir { path: PathBuf, message: String },
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
    /// None: standalone mode (no API server; only static pods run).
    pub kubeconfig: Option<PathBuf>,
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
    /// Static pod manifests: `--pod-manifest-path` / `staticPodPath`.
    pub static_pod_path: Option<PathBuf>,
    /// How often the static pod path is looked at: `--file-check-frequency` /
    /// `fileCheckFrequency`.
    pub file_check_frequency: Duration,
    /// The node's own certificates: TLS bootstrap and rotation (`certificates/`).
    pub certificates: Certificates,
    /// Where pods' cgroups go: driver, root, per-QoS layout (`cgroups/`).
    pub cgroups: CgroupSettings,
    /// Eviction thresholds and their companions (`--eviction-*`, `eviction*`).
    pub eviction: eviction::EvictionSettings,
    /// When unused images are removed (`imageGC*`, `--image-gc-*`).
    pub image_gc: image_gc::ImageGcPolicy,
    /// Dead container instances kept (`--maximum-dead-containers*`,
    /// `--minimum-container-ttl-duration`).
    pub container_gc: container_gc::ContainerGcPolicy,
    /// Graceful node shutdown's priority bands (`shutdownGracePeriod*`); none: off.
    pub shutdown: shutdown::ShutdownSettings,
    /// User and group IDs per `hostUsers: false` pod (`userNamespaces.idsPerPod`).
    pub user_namespace_ids_per_pod: u32,
}

/// `--port` (default 10250): 1-65535.
fn port(given: Option<u16>) -> Result<u16, ConfigError> {
    match given.unwrap_or(defaults::PORT) {
        0 => Err(invalid("--port")("must be 1-65535".into())),
        port => Ok(port),
    }
}

/// `--cgroup-driver`, `--cgroup-root`, `--cgroups-per-qos` over the file's fields.
fn cgroup_settings(flags: &Flags, file: &FileConfig) -> Result<CgroupSettings, ConfigError> {
    let driver = match flags
        .cgroup_driver
        .as_deref()
        .or(file.cgroup_driver.as_deref())
    {
        None => CgroupDriver::default(),
        Some(d) => CgroupDriver::parse(d).ok_or_else(|| {
            invalid("--cgroup-driver")(format!("{d:?} (expected cgroupfs or systemd)"))
        })?,
    };
    let root = flags.cgroup_root.as_deref().or(file.cgroup_root.as_deref());
    let root = CgroupName::parse_root(root.unwrap_or("/"))
        .map_err(|e| invalid("--cgroup-root")(e.to_string()))?;
    let enforced = enforce_node_allocatable(flags, file)?;
    Ok(CgroupSettings {
        driver,
        root,
        per_qos: flags
            .cgroups_per_qos
            .or(file.cgroups_per_qos)
            .unwrap_or(true),
        enforce_pods: enforced.iter().any(|v| v == "pods"),
        pod_pids_limit: flags
            .pod_max_pids
            .or(file.pod_pids_limit)
            .filter(|n| *n > 0),
    })
}

/// `--enforce-node-allocatable` over `enforceNodeAllocatable` (default `pods`), checked as
/// kubelet checks it: known values only, `none` alone.
fn enforce_node_allocatable(flags: &Flags, file: &FileConfig) -> Result<Vec<String>, ConfigError> {
    let values = flags
        .enforce_node_allocatable
        .clone()
        .or_else(|| file.enforce_node_allocatable.clone())
        .unwrap_or_else(|| vec!["pods".to_string()]);
    let bad = invalid("--enforce-node-allocatable");
    for v in &values {
        if !ENFORCEMENT_KEYS.contains(&v.as_str()) {
            return Err(bad(format!(
                "{v:?} (expected pods, system-reserved, kube-reserved or none)"
            )));
        }
    }
    if values.len() > 1 && values.iter().any(|v| v == "none") {
        return Err(bad("none cannot be combined with other values".to_string()));
    }
    Ok(values)
}

/// kubelet's enforcement keys: `none`, `pods`, and the two reserved cgroups'.
const ENFORCEMENT_KEYS: [&str; 4] = ["none", "pods", "system-reserved", "kube-reserved"];

/// One warning per reserved cgroup named in enforceNodeAllocatable: the agent does not manage
/// the system- and kube-reserved cgroups.
fn reserved_enforcement_warnings(flags: &Flags, file: &FileConfig) -> Vec<Warning> {
    let values = enforce_node_allocatable(flags, file).unwrap_or_default();
    values
        .into_iter()
        .filter(|v| v.ends_with("-reserved"))
        .map(|v| Warning::NotImplemented {
            field: "enforceNodeAllocatable".to_string(),
            value: v,
        })
        .collect()
}

/// Where the node's certificates come from (kubelet's TLS bootstrap settings).
#[derive(Debug, Clone)]
pub struct Certificates {
    /// `--bootstrap-kubeconfig`: the bootstrap-token kubeconfig used while --kubeconfig is missing.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// `--cert-dir` (default ROOT_DIR/pki): where the node's certificates live.
    pub cert_dir: PathBuf,
    /// `rotateCertificates` / `--rotate-certificates`: renew the client certificate.
    pub rotate_certificates: bool,
    /// `serverTLSBootstrap`: get the serving certificate through a CSR.
    pub server_tls_bootstrap: bool,
}

fn certificates(flags: &Flags, file: &FileConfig, root_dir: &std::path::Path) -> Certificates {
    Certificates {
        bootstrap_kubeconfig: flags.bootstrap_kubeconfig.clone(),
        cert_dir: (flags.cert_dir.clone()).unwrap_or_else(|| root_dir.join("pki")),
        rotate_certificates: (flags.rotate_certificates)
            .or(file.rotate_certificates)
            .unwrap_or(false),
        server_tls_bootstrap: file.server_tls_bootstrap.unwrap_or(false),
    }
}

/// Kubelet's defaults.
pub mod defaults {
    pub const ROOT_DIR: &str = "/var/lib/kubelet";
    pub const CONTAINER_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";
    pub const MAX_PODS: u32 = 110;
    pub const PORT: u16 = 10250;
    pub const HEALTHZ_PORT: u16 = 10248;
    pub const NODE_STATUS_UPDATE_FREQUENCY: &str = "10s";
    pub const NODE_STATUS_REPORT_FREQUENCY: &str = "5m";
    pub const SYNC_FREQUENCY: &str = "1m";
    pub const NODE_LEASE_DURATION_SECONDS: u32 = 40;
    pub const RUNTIME_REQUEST_TIMEOUT: &str = "2m";
    pub const FILE_CHECK_FREQUENCY: &str = "20s";
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
    /// Resolves flags over the drop-ins over the file (if `--config` names one) over defaults,
    /// with one warning per setting accepted but not acted on, for the caller to log.
    pub fn resolve(flags: Flags) -> Result<(Self, Vec<Warning>), ConfigError> {
        let (file, mut warnings) = source::load(&flags)?;
        warnings.extend(source::flag_warnings(&flags));
        warnings.extend(reserved_enforcement_warnings(&flags, &file));
        Ok((Self::merge(flags, file)?, warnings))
    }

    /// Merges already-loaded flags and file settings; flags win. One flat mapping of every
    /// setting, hence long.
    #[allow(clippy::too_many_lines)]
    pub fn merge(flags: Flags, file: FileConfig) -> Result<Self, ConfigError> {
        let server = server::resolve(&flags, &file)?;
        let root_dir = flags
            .root_dir
            .clone()
            .or(file.root_dir.clone())
            .unwrap_or_else(|| PathBuf::from(defaults::ROOT_DIR));
        let network = network_settings(&flags, &file, &root_dir)?;
        let certificates = certificates(&flags, &file, &root_dir);
        let cgroups = cgroup_settings(&flags, &file)?;
        let eviction = eviction::from_flags_and_file(&flags, &file, cgroups.enforce_pods)?;
        let image_gc = image_gc::from_flags_and_file(&flags, &file)?;
        let shutdown = shutdown::from_file(&file)?;
        let container_gc = container_gc::from_flags(&flags)?;
        let user_namespace_ids_per_pod =
            user_namespaces::ids_per_pod(file.user_namespaces_ids_per_pod)?;
        let healthz_bind_address = healthz_bind_address(&flags, &file)?;
        let Periods {
            node_status_update_frequency,
            node_status_report_frequency,
            sync_frequency,
            runtime_request_timeout,
            node_lease_duration_seconds,
            file_check_frequency,
        } = periods(&flags, &file)?;
        let kubeconfig = flags.kubeconfig.or(file.kubeconfig);
        if kubeconfig.is_none() && certificates.bootstrap_kubeconfig.is_some() {
            // Standalone mode has no API server to bootstrap against; kubelet writes the
            // bootstrapped credentials to --kubeconfig, so one is needed.
            return Err(invalid("--bootstrap-kubeconfig")(
                "needs --kubeconfig, the path the bootstrapped kubeconfig is written to".into(),
            ));
        }
        let node_name = match flags.hostname_override.or(file.hostname_override) {
            Some(n) => node_name(&n)?,
            None => node_name(&system_hostname()?)?,
        };
        let max_pods = at_least(
            "--max-pods",
            flags
                .max_pods
                .or(file.max_pods)
                .unwrap_or(defaults::MAX_PODS),
            1,
        )?;
        let container_log_max_files = at_least(
            "--container-log-max-files",
            flags
                .container_log_max_files
                .or(file.container_log_max_files)
                .unwrap_or(5),
            2,
        )?;
        Ok(Config {
            image_gc,
            shutdown,
            user_namespace_ids_per_pod,
            container_gc,
            eviction,
            cgroups,
            static_pod_path: flags.pod_manifest_path.or(file.static_pod_path),
            file_check_frequency,
            certificates,
            network,
            kubeconfig,
            node_name,
            node_ip: (flags.node_ip.or(file.node_ip))
                .map(|s| ip("--node-ip", &s))
                .transpose()?,
            container_runtime_endpoint: runtime_endpoint(
                flags
                    .container_runtime_endpoint
                    .or(file.container_runtime_endpoint),
            )?,
            root_dir,
            max_pods,
            cluster_dns: cluster_dns(flags.cluster_dns, file.cluster_dns)?,
            cluster_domain: flags
                .cluster_domain
                .or(file.cluster_domain)
                .unwrap_or_else(|| "cluster.local".to_string()),
            node_labels: node_labels(flags.node_labels, file.node_labels)?,
            register_with_taints: taints(flags.register_with_taints, file.register_with_taints)?,
            port: port(flags.port.or(file.port))?,
            healthz_port: flags
                .healthz_port
                .or(file.healthz_port)
                .unwrap_or(defaults::HEALTHZ_PORT),
            healthz_bind_address,
            server,
            kube_reserved: reserved(flags.kube_reserved, file.kube_reserved, "--kube-reserved")?,
            system_reserved: reserved(
                flags.system_reserved,
                file.system_reserved,
                "--system-reserved",
            )?,
            node_status_update_frequency,
            node_status_report_frequency,
            sync_frequency,
            node_lease_duration_seconds,
            runtime_request_timeout,
            container_log_max_size: log_max_size(
                flags.container_log_max_size.or(file.container_log_max_size),
            )?,
            container_log_max_files,
            log_format: log_format(flags.log_format.or(file.log_format).as_deref())?,
            verbosity: flags.verbosity.or(file.verbosity).unwrap_or(0),
            allowed_unsafe_sysctls: unsafe_sysctls(
                flags.allowed_unsafe_sysctls,
                file.allowed_unsafe_sysctls,
            )?,
        })
    }
}

/// `--healthz-bind-address`, default 127.0.0.1.
fn healthz_bind_address(flags: &Flags, file: &FileConfig) -> Result<IpAddr, ConfigError> {
    let address = (flags.healthz_bind_address.as_deref())
        .or(file.healthz_bind_address.as_deref())
        .unwrap_or("127.0.0.1");
    ip("--healthz-bind-address", address)
}

fn ip(setting: &'static str, text: &str) -> Result<IpAddr, ConfigError> {
    text.parse::<IpAddr>()
        .map_err(|_| invalid(setting)(format!("{text:?} is not an IP address")))
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    setting: &'static str,
    value: T,
    min: T,
) -> Result<T, ConfigError> {
    if value < min {
        return Err(invalid(setting)(format!("must be at least {min}")));
    }
    Ok(value)
}

/// `--container-runtime-endpoint`: a unix socket (the only transport supported).
fn runtime_endpoint(endpoint: Option<String>) -> Result<String, ConfigError> {
    let endpoint = endpoint.unwrap_or_else(|| defaults::CONTAINER_RUNTIME_ENDPOINT.to_string());
    if !(endpoint.starts_with("unix://") || endpoint.starts_with('/')) {
        return Err(invalid("--container-runtime-endpoint")(format!(
            "{endpoint:?}: only unix sockets are supported (unix:///path)"
        )));
    }
    Ok(endpoint)
}

/// `--node-labels` (`k=v,...`) or else the file's `nodeLabels`, validated.
fn node_labels(
    flag: Option<String>,
    file: Option<BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    if let Some(text) = flag {
        return parse::parse_label_list(&text).map_err(invalid("--node-labels"));
    }
    let labels = file.unwrap_or_default();
    parse::validate_labels(&labels).map_err(invalid("nodeLabels"))?;
    Ok(labels)
}

/// `--register-with-taints` (`k=v:Effect,...`) or else the file's `registerWithTaints`.
fn taints(flag: Option<String>, file: Option<Vec<TaintSpec>>) -> Result<Vec<Taint>, ConfigError> {
    if let Some(text) = flag {
        return parse::parse_taint_list(&text).map_err(invalid("--register-with-taints"));
    }
    file.unwrap_or_default()
        .iter()
        .map(|t| parse::make_taint(&t.key, t.value.as_deref(), &t.effect))
        .collect::<Result<_, _>>()
        .map_err(invalid("registerWithTaints"))
}

/// `--kube-reserved` / `--system-reserved` (`cpu=100m,...`) or else the file's map.
fn reserved(
    flag: Option<String>,
    file: Option<BTreeMap<String, String>>,
    setting: &'static str,
) -> Result<Reserved, ConfigError> {
    let map = match flag {
        Some(text) => parse::parse_kv_list(&text).map_err(invalid(setting))?,
        None => file.unwrap_or_default(),
    };
    parse::parse_reserved(&map).map_err(invalid(setting))
}

/// A Go-style duration (`10s`, `5m`), `default` when unset.
fn duration(
    value: Option<&str>,
    default: &str,
    setting: &'static str,
) -> Result<Duration, ConfigError> {
    parse::parse_duration(value.unwrap_or(default)).map_err(invalid(setting))
}

/// The node's periods and timeouts.
struct Periods {
    node_status_update_frequency: Duration,
    node_status_report_frequency: Duration,
    sync_frequency: Duration,
    runtime_request_timeout: Duration,
    node_lease_duration_seconds: u32,
    file_check_frequency: Duration,
}

/// Each period's flag or else its file setting or else kubelet's default.
fn periods(flags: &Flags, file: &FileConfig) -> Result<Periods, ConfigError> {
    let node_status_update_frequency = duration(
        (flags.node_status_update_frequency.as_deref())
            .or(file.node_status_update_frequency.as_deref()),
        defaults::NODE_STATUS_UPDATE_FREQUENCY,
        "--node-status-update-frequency",
    )?;
    let node_status_report_frequency = duration(
        (flags.node_status_report_frequency.as_deref())
            .or(file.node_status_report_frequency.as_deref()),
        defaults::NODE_STATUS_REPORT_FREQUENCY,
        "--node-status-report-frequency",
    )?;
    let sync_frequency = duration(
        (flags.sync_frequency.as_deref()).or(file.sync_frequency.as_deref()),
        defaults::SYNC_FREQUENCY,
        "--sync-frequency",
    )?;
    let runtime_request_timeout = duration(
        (flags.runtime_request_timeout.as_deref()).or(file.runtime_request_timeout.as_deref()),
        defaults::RUNTIME_REQUEST_TIMEOUT,
        "--runtime-request-timeout",
    )?;
    if node_status_update_frequency.is_zero() || runtime_request_timeout.is_zero() {
        return Err(invalid("durations")("must be greater than zero".into()));
    }
    let file_check_frequency = duration(
        (flags.file_check_frequency.as_deref()).or(file.file_check_frequency.as_deref()),
        defaults::FILE_CHECK_FREQUENCY,
        "--file-check-frequency",
    )?;
    if file_check_frequency.is_zero() {
        return Err(invalid("--file-check-frequency")(
            "must be greater than zero".into(),
        ));
    }
    let node_lease_duration_seconds = at_least(
        "--node-lease-duration-seconds",
        flags
            .node_lease_duration_seconds
            .or(file.node_lease_duration_seconds)
            .unwrap_or(defaults::NODE_LEASE_DURATION_SECONDS),
        4,
    )?;
    Ok(Periods {
        node_status_update_frequency,
        node_status_report_frequency,
        sync_frequency,
        runtime_request_timeout,
        node_lease_duration_seconds,
        file_check_frequency,
    })
}

/// `--allowed-unsafe-sysctls` (comma-separated) or else the file's list, each a valid pattern.
fn unsafe_sysctls(
    flag: Option<String>,
    file: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let patterns: Vec<String> = match flag {
        Some(text) => parse::comma_list(&text).map(str::to_string).collect(),
        None => file.unwrap_or_default(),
    };
    for pattern in &patterns {
        parse::validate_sysctl_pattern(pattern).map_err(invalid("--allowed-unsafe-sysctls"))?;
    }
    Ok(patterns)
}

/// `--cluster-dns` (comma-separated) or else the file's list, each an IP address.
fn cluster_dns(
    flag: Option<String>,
    file: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let servers: Vec<String> = match flag {
        Some(text) => parse::comma_list(&text).map(str::to_string).collect(),
        None => file.unwrap_or_default(),
    };
    if let Some(bad) = servers.iter().find(|s| s.parse::<IpAddr>().is_err()) {
        return Err(invalid("--cluster-dns")(format!(
            "{bad:?} is not an IP address"
        )));
    }
    Ok(servers)
}

/// `--container-log-max-size` (a quantity, default 10Mi), in bytes; more than zero.
fn log_max_size(size: Option<String>) -> Result<u64, ConfigError> {
    let size = size.unwrap_or_else(|| "10Mi".to_string());
    let bytes = crate::quantity::parse_units(&size)
        .map_err(|e| invalid("--container-log-max-size")(e.to_string()))?;
    if bytes == 0 {
        return Err(invalid("--container-log-max-size")(
            "must be greater than zero".into(),
        ));
    }
    Ok(bytes)
}

/// `--log-format`: text (the default) or json.
fn log_format(format: Option<&str>) -> Result<LogFormat, ConfigError> {
    match format.unwrap_or("text") {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid("--log-format")(format!(
            "{other:?} (expected text or json)"
        ))),
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
        assert_eq!(c.kubeconfig, Some(PathBuf::from("/k")));
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

        let mut f = flags();
        f.kubeconfig = None;
        f.pod_manifest_path = Some("/etc/kubernetes/manifests".into());
        f.file_check_frequency = Some("2s".into());
        let c = Config::merge(f, FileConfig::default()).unwrap();
        assert_eq!(c.kubeconfig, None, "no kubeconfig: standalone");
        let mut b = flags();
        b.kubeconfig = None;
        b.bootstrap_kubeconfig = Some("/etc/kubernetes/bootstrap-kubelet.conf".into());
        let e = Config::merge(b, FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("needs --kubeconfig"), "{e}");
        assert_eq!(
            c.static_pod_path,
            Some(PathBuf::from("/etc/kubernetes/manifests"))
        );
        assert_eq!(c.file_check_frequency, Duration::from_secs(2));
        assert_eq!(
            Config::merge(flags(), FileConfig::default())
                .unwrap()
                .file_check_frequency,
            Duration::from_secs(20),
            "kubelet's default"
        );
        let mut f = flags();
        f.file_check_frequency = Some("0s".into());
        let e = Config::merge(f, FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("--file-check-frequency"), "{e}");
    }
}
