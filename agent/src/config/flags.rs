//! Command-line flags, named like kubelet's. Every flag is optional here so that a flag given on
//! the command line can be told apart from one left out: flags override the `--config` file, which
//! overrides the defaults (the same precedence as kubelet).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The values of `--version`, kubelet's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFlag {
    True,
    False,
    Raw,
}

/// minikubelet: a small Kubernetes node agent. It registers this machine as a Node, keeps its
/// Lease and status fresh, and runs the pods bound to it through a CRI runtime.
#[derive(Debug, Parser, Default)]
#[command(name = "minikubelet", about, long_about = None, disable_version_flag = true)]
pub struct Flags {
    /// Print the version and quit, as kubelet does: `--version` prints `Kubernetes VERSION`
    /// (the kubeletVersion the Node reports; kubeadm's preflight parses this line), and
    /// `--version=raw` prints the build's details.
    #[arg(long, value_name = "true|false|raw", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub version: Option<VersionFlag>,

    /// Config file: a kubelet.config.k8s.io/v1beta1 KubeletConfiguration (as kubeadm and kind
    /// write /var/lib/kubelet/config.yaml), or the project's flat YAML with the same settings as
    /// the flags (camelCase keys, e.g. `hostnameOverride`). Flags win over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Drop-in directory: every *.conf file below it, in lexical order, is a KubeletConfiguration
    /// merged over --config (maps and nested fields merge, lists and values replace). Flags win.
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// kubeconfig with the node's credentials (client cert CN=system:node:NAME, O=system:nodes).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// kubeconfig with a bootstrap token, for requesting the node's client certificate when
    /// --kubeconfig does not exist yet (kubelet's TLS bootstrap).
    #[arg(long, value_name = "FILE")]
    pub bootstrap_kubeconfig: Option<PathBuf>,

    /// Directory of the node's certificates (kubelet-client-current.pem and the serving pair).
    /// Default ROOT_DIR/pki.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,

    /// Renew the client certificate through the certificates API before it expires.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rotate_certificates: Option<bool>,

    /// Accepted for kubeadm: the container runtime's own sandbox (pause) image is used.
    #[arg(long, value_name = "IMAGE")]
    pub pod_infra_container_image: Option<String>,

    /// cgroupfs or systemd (deprecated flag; cgroupDriver in the config file): how pods'
    /// cgroups are named. A runtime that answers the CRI RuntimeConfig call names its own.
    #[arg(long, value_name = "DRIVER")]
    pub cgroup_driver: Option<String>,

    /// The cgroup below which kubepods lives (cgroupfs form, default /; cgroupRoot in the
    /// config file).
    #[arg(long, value_name = "PATH")]
    pub cgroup_root: Option<String>,

    /// Pods in per-QoS-class cgroups below ROOT/kubepods (default true; cgroupsPerQOS in the
    /// config file); false leaves pods in the runtime's default cgroup.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cgroups_per_qos: Option<bool>,

    /// What node allocatable is enforced on, comma-separated (default pods; none for nothing;
    /// system-reserved and kube-reserved are accepted and warn; enforceNodeAllocatable in the
    /// config file).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub enforce_node_allocatable: Option<Vec<String>>,

    /// The most processes a pod's cgroup may hold (pids.max; podPidsLimit in the config file;
    /// default -1, no limit).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pod_max_pids: Option<i64>,

    /// Hard eviction thresholds, `signal<value` pairs separated by commas (evictionHard in the
    /// config file), e.g. `memory.available<100Mi,nodefs.available<10%`. Default kubelet's:
    /// memory.available<100Mi, nodefs.available<10%, nodefs.inodesFree<5%,
    /// imagefs.available<15%, imagefs.inodesFree<5%. `0%` switches a signal off.
    #[arg(long, value_name = "SIGNAL<VALUE,...")]
    pub eviction_hard: Option<String>,

    /// Soft eviction thresholds, same syntax (evictionSoft); each needs a grace period.
    #[arg(long, value_name = "SIGNAL<VALUE,...")]
    pub eviction_soft: Option<String>,

    /// How long each soft threshold must hold before pods are evicted for it, `signal=duration`
    /// pairs (evictionSoftGracePeriod), e.g. `memory.available=1m30s`.
    #[arg(long, value_name = "SIGNAL=DURATION,...")]
    pub eviction_soft_grace_period: Option<String>,

    /// What an eviction must free beyond its threshold before it stops, `signal=value` pairs
    /// (evictionMinimumReclaim), e.g. `memory.available=0Mi,nodefs.available=500Mi`.
    #[arg(long, value_name = "SIGNAL=VALUE,...")]
    pub eviction_minimum_reclaim: Option<String>,

    /// How long a pressure condition stays after its threshold no longer holds (default 5m;
    /// evictionPressureTransitionPeriod).
    #[arg(long, value_name = "DURATION")]
    pub eviction_pressure_transition_period: Option<String>,

    /// The longest grace period a soft eviction gives a pod, in seconds (0: the pod's own;
    /// evictionMaxPodGracePeriod).
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub eviction_max_pod_grace_period: Option<i64>,

    /// The image filesystem's usage (percent) at which unused images are removed; 100 switches
    /// image garbage collection off (default 85; imageGCHighThresholdPercent).
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub image_gc_high_threshold: Option<i32>,

    /// The usage (percent) image garbage collection frees down to (default 80;
    /// imageGCLowThresholdPercent).
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub image_gc_low_threshold: Option<i32>,

    /// How old an unused image must be before it may be removed (default 2m;
    /// imageMinimumGCAge).
    #[arg(long, value_name = "DURATION")]
    pub minimum_image_ttl_duration: Option<String>,

    /// Dead container instances younger than this (by creation) are kept (default 0; deprecated
    /// in kubelet).
    #[arg(long, value_name = "DURATION")]
    pub minimum_container_ttl_duration: Option<String>,

    /// Dead instances kept per container of a pod (default 1; negative: no limit; deprecated in
    /// kubelet).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub maximum_dead_containers_per_container: Option<i32>,

    /// Dead container instances kept on the node (default -1: no limit; deprecated in kubelet).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub maximum_dead_containers: Option<i32>,

    /// Accepted for kubeadm: the agent does not check for swap (true warns).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub fail_swap_on: Option<bool>,

    /// Accepted for kind: the Node's spec.providerID is not set (a value warns).
    #[arg(long, value_name = "ID")]
    pub provider_id: Option<String>,

    /// Accepted as kubelet's (staticPodURL): static pods from a URL are not run (a value warns).
    #[arg(long, value_name = "URL")]
    pub manifest_url: Option<String>,

    /// Node name to register instead of the machine's hostname (lower-cased, like kubelet).
    #[arg(long, value_name = "NAME")]
    pub hostname_override: Option<String>,

    /// IP address reported as the Node's InternalIP. Default: the first IPv4 address of the
    /// interface that holds the default route, else 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<String>,

    /// CRI endpoint of the container runtime, e.g. unix:///run/containerd/containerd.sock.
    #[arg(long, value_name = "ENDPOINT")]
    pub container_runtime_endpoint: Option<String>,

    /// Directory for the agent's own state (pods, volumes, plugins). Default /var/lib/kubelet, as
    /// kubelet.
    #[arg(long, value_name = "DIR")]
    pub root_dir: Option<PathBuf>,

    /// Number of pods this node can run (the `pods` capacity). Default 110.
    #[arg(long, value_name = "N")]
    pub max_pods: Option<u32>,

    /// Labels added to the Node at registration: key=value pairs separated by commas. Labels in the
    /// kubernetes.io and k8s.io namespaces are limited to those kubelet may set itself.
    #[arg(long, value_name = "K=V,...")]
    pub node_labels: Option<String>,

    /// Taints the Node registers with: key[=value]:Effect separated by commas
    /// (Effect is NoSchedule, PreferNoSchedule or NoExecute).
    #[arg(long, value_name = "K=V:EFFECT,...")]
    pub register_with_taints: Option<String>,

    /// DNS server IPs for pods with dnsPolicy ClusterFirst, comma-separated. Without it such pods
    /// fall back to the node's resolv.conf (with a MissingClusterDNS event), as in kubelet.
    #[arg(long, value_name = "IP,...")]
    pub cluster_dns: Option<String>,

    /// The cluster's DNS domain, for pods' DNS search paths. Default cluster.local.
    #[arg(long, value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,

    /// Port of the agent's HTTPS API, advertised in the Node's daemonEndpoints. Default 10250.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// IP address the HTTPS API binds to. Default 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub address: Option<String>,

    /// Serving certificate of the HTTPS API (PEM). Without it a self-signed one is generated
    /// under ROOT_DIR/pki, as kubelet does.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key of --tls-cert-file (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    /// CA bundle that signs client certificates accepted by the HTTPS API (the cluster CA, which
    /// signs the apiserver's kubelet client certificate).
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Let unauthenticated requests through as system:anonymous. Default false (they get 401).
    #[arg(long, value_name = "BOOL")]
    pub anonymous_auth: Option<bool>,

    /// Authenticate bearer tokens with the apiserver's TokenReview API. Default true.
    #[arg(long, value_name = "BOOL")]
    pub authentication_token_webhook: Option<bool>,

    /// Webhook (SubjectAccessReview, the default) or AlwaysAllow.
    #[arg(long, value_name = "MODE")]
    pub authorization_mode: Option<String>,

    /// Longest time an exec, attach or port-forward stream may stay idle before it is closed
    /// (e.g. 4h0m0s, kubelet's default).
    #[arg(long, value_name = "DURATION")]
    pub streaming_connection_idle_timeout: Option<String>,

    /// Unsafe sysctls (or patterns ending in `*`) that pods may set besides kubelet's safe set,
    /// comma-separated, e.g. `kernel.msg*,net.core.somaxconn`.
    #[arg(long, value_name = "NAME,...")]
    pub allowed_unsafe_sysctls: Option<String>,

    /// Port of the local, unauthenticated /healthz endpoint. 0 disables it. Default 10248.
    #[arg(long, value_name = "PORT")]
    pub healthz_port: Option<u16>,

    /// Address the /healthz endpoint binds to. Default 127.0.0.1.
    #[arg(long, value_name = "IP")]
    pub healthz_bind_address: Option<String>,

    /// Resources reserved for Kubernetes daemons, e.g. cpu=100m,memory=100Mi,ephemeral-storage=1Gi.
    #[arg(long, value_name = "RES=QTY,...")]
    pub kube_reserved: Option<String>,

    /// Resources reserved for the operating system, same syntax as --kube-reserved.
    #[arg(long, value_name = "RES=QTY,...")]
    pub system_reserved: Option<String>,

    /// How often the Node's status is computed and, when it changed, written (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub node_status_update_frequency: Option<String>,

    /// Longest time between two Node status writes when nothing changed (e.g. 5m).
    #[arg(long, value_name = "DURATION")]
    pub node_status_report_frequency: Option<String>,

    /// Directory of static pod manifests (one Pod per YAML or JSON file, dot files skipped):
    /// run as pods on this node, mirrored to the API server when there is one.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,

    /// How often the static pod directory is looked at for changes (default 20s).
    #[arg(long, value_name = "DURATION")]
    pub file_check_frequency: Option<String>,

    /// How often configMap, secret, downwardAPI and projected volume contents are refreshed
    /// in running pods (e.g. 1m).
    #[arg(long, value_name = "DURATION")]
    pub sync_frequency: Option<String>,

    /// Duration of the node Lease in kube-node-lease; it is renewed every quarter of it.
    #[arg(long, value_name = "SECONDS")]
    pub node_lease_duration_seconds: Option<u32>,

    /// Timeout of every CRI request except long-running ones (e.g. 2m).
    #[arg(long, value_name = "DURATION")]
    pub runtime_request_timeout: Option<String>,

    /// Size at which a container's log file is rotated (a quantity, e.g. 10Mi).
    #[arg(long, value_name = "QUANTITY")]
    pub container_log_max_size: Option<String>,

    /// Log files kept per container, the current one included (at least 2).
    #[arg(long, value_name = "N")]
    pub container_log_max_files: Option<usize>,

    /// Directory holding the pod network's CNI config (the chain the agent runs; containerd's
    /// own CNI config names only the minikubelet-cni delegate). Default /etc/minikubelet/cni/net.d.
    #[arg(long, value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,

    /// Directories searched for CNI plugins, comma-separated. Default /opt/cni/bin,/usr/lib/cni.
    #[arg(long, value_name = "DIR,...")]
    pub cni_bin_dir: Option<String>,

    /// Where CNI ADD results are cached for DEL, CHECK and GC. Default ROOT_DIR/cni/cache.
    #[arg(long, value_name = "DIR")]
    pub cni_cache_dir: Option<PathBuf>,

    /// Unix socket the minikubelet-cni delegate forwards CNI requests to.
    /// Default ROOT_DIR/cni/minikubelet.sock.
    #[arg(long, value_name = "PATH")]
    pub cni_socket: Option<PathBuf>,

    /// Directory of per-pod route files telling the delegate which agent owns a pod (shared by
    /// all agents using one containerd). Default /run/minikubelet/cni/routes.
    #[arg(long, value_name = "DIR")]
    pub cni_routes_dir: Option<PathBuf>,

    /// The node's pod subnet, used while Node.spec.podCIDR is empty (no CIDR allocation).
    #[arg(long, value_name = "CIDR")]
    pub pod_cidr: Option<String>,

    /// Log format: text (human-readable) or json.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,

    /// Log verbosity like kubelet's -v: 0-1 info, 2-3 debug, 4 and more trace.
    /// RUST_LOG, when set, overrides it.
    #[arg(long = "v", short = 'v', value_name = "LEVEL")]
    pub verbosity: Option<u8>,
}
