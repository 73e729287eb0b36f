//! KubeletConfiguration files as kubeadm and kind write them, drop-ins, and flag precedence,
//! resolved end to end through [`Config::resolve`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::unimplemented::FIELDS;
use crate::cgroups::{CgroupDriver, CgroupName, PodCgroups, QosTier};
use crate::config::server::AuthorizationMode;
use crate::config::{Config, ConfigError, Flags, LogFormat, Warning};

const KUBEADM: &str = include_str!("testdata/kubeadm-v1.35.yaml");
const KIND: &str = include_str!("testdata/kind-v1.35.yaml");
const EVERY_FIELD: &str = include_str!("testdata/every-field.yaml");

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn resolve(args: &[&str]) -> Result<(Config, Vec<Warning>), ConfigError> {
    let flags = Flags::try_parse_from(
        ["minikubelet", "--hostname-override=node-a"]
            .iter()
            .chain(args),
    )
    .unwrap();
    Config::resolve(flags)
}

fn config_arg(path: &Path) -> String {
    format!("--config={}", path.display())
}

/// The fields named by NotImplemented warnings.
/// The flags of the IgnoredFlag warnings, in order.
fn ignored_flags(warnings: &[Warning]) -> Vec<String> {
    warnings
        .iter()
        .filter_map(|w| match w {
            Warning::IgnoredFlag { flag, .. } => Some(flag.clone()),
            _ => None,
        })
        .collect()
}

fn not_implemented(warnings: &[Warning]) -> BTreeSet<String> {
    warnings
        .iter()
        .filter_map(|w| match w {
            Warning::NotImplemented { field, .. } => Some(field.clone()),
            _ => None,
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn kubeadm_v1_35_config_with_its_flags_parses_with_one_field_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.yaml", KUBEADM);
    // 10-kubeadm.conf's KUBELET_KUBECONFIG_ARGS and KUBELET_CONFIG_ARGS, then kubeadm-flags.env.
    let (c, warnings) = resolve(&[
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        &config_arg(&path),
        "--node-ip=192.0.2.10",
    ])
    .unwrap();
    assert_eq!(
        not_implemented(&warnings),
        set(&["resolvConf"]),
        "{warnings:#?}"
    );
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(c.cgroups.driver, CgroupDriver::Systemd);
    assert_eq!(c.cgroups.root, CgroupName::root());
    assert!(c.cgroups.per_qos);
    assert_eq!(
        c.kubeconfig,
        Some(PathBuf::from("/etc/kubernetes/kubelet.conf"))
    );
    assert_eq!(
        c.certificates.bootstrap_kubeconfig.as_deref(),
        Some(Path::new("/etc/kubernetes/bootstrap-kubelet.conf"))
    );
    assert_eq!(c.certificates.cert_dir, c.root_dir.join("pki"));
    assert_eq!(
        c.static_pod_path.as_deref(),
        Some(Path::new("/etc/kubernetes/manifests"))
    );
    assert!(c.certificates.rotate_certificates);
    assert!(!c.certificates.server_tls_bootstrap);
    assert_eq!(
        c.container_runtime_endpoint,
        "unix:///var/run/containerd/containerd.sock"
    );
    assert_eq!(c.cluster_dns, ["10.96.0.10"]);
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(
        c.node_ip.map(|ip| ip.to_string()).as_deref(),
        Some("192.0.2.10")
    );
    // kubelet's defaults for what kubeadm leaves at zero.
    assert_eq!(c.server.address.to_string(), "0.0.0.0");
    assert_eq!(c.port, 10250);
    assert_eq!(c.healthz_port, 10248);
    assert_eq!(c.healthz_bind_address.to_string(), "127.0.0.1");
    assert_eq!(c.node_status_update_frequency, Duration::from_secs(10));
    assert_eq!(c.node_status_report_frequency, Duration::from_secs(300));
    assert_eq!(c.sync_frequency, Duration::from_secs(60));
    assert_eq!(c.runtime_request_timeout, Duration::from_secs(120));
    assert_eq!(
        c.server.streaming_connection_idle_timeout,
        Duration::from_secs(4 * 3600)
    );
    assert_eq!(c.max_pods, 110);
    assert_eq!(
        c.server.client_ca_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
    assert!(c.server.authentication_token_webhook);
    assert!(!c.server.anonymous_auth);
    assert_eq!(c.server.authorization_mode, AuthorizationMode::Webhook);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.verbosity, 0);
}

#[test]
fn kinds_variant_with_its_flags_warns_for_what_kind_turns_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.yaml", KIND);
    // kind's kubeletExtraArgs in kubeadm-flags.env (older kubeadm also wrote the pause image).
    let (c, warnings) = resolve(&[
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        &config_arg(&path),
        "--node-ip=172.18.0.2",
        "--node-labels=",
        "--provider-id=kind://docker/kind/kind-worker",
        "--pod-infra-container-image=registry.k8s.io/pause:3.10",
    ])
    .unwrap();
    assert_eq!(
        not_implemented(&warnings),
        BTreeSet::new(),
        "failSwapOn: false is what the agent does, so it is quiet: {warnings:#?}"
    );
    assert_eq!(
        ignored_flags(&warnings),
        ["--pod-infra-container-image", "--provider-id"]
    );
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert_eq!(c.image_gc.high_percent, 100, "kind switches image GC off");
    assert!(
        c.eviction.thresholds.is_empty(),
        "kind switches every disk signal off and sets no memory one: {:?}",
        c.eviction
    );
    // kind's node cgroups: systemd slices below /kubelet (kind.sigs.k8s.io/kubelet.slice).
    let layout = PodCgroups::new(&c.cgroups, c.cgroups.driver).unwrap();
    assert_eq!(
        layout.parent(QosTier::Burstable, "u1"),
        "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/\
         kubelet-kubepods-burstable-podu1.slice"
    );
    assert!(c.node_labels.is_empty());
    assert_eq!(
        c.container_runtime_endpoint,
        "unix:///run/containerd/containerd.sock"
    );
}

#[test]
fn a_bad_duration_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        &KUBEADM.replace("cacheTTL: 0s", "cacheTTL: abc"),
    );
    let e = resolve(&["--kubeconfig=/k", &config_arg(&path)])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "invalid KubeletConfiguration: authentication.webhook.cacheTTL: \"abc\" is not a duration"
        ),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn unknown_fields_are_warnings_naming_their_path_as_kubelets_lenient_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let text = KUBEADM
        .replace("    cacheTTL: 0s", "    cacheTtl: 2m")
        .replace(
            "kind: KubeletConfiguration",
            "kind: KubeletConfiguration\nmetadata:\n  name: config",
        )
        + "registerWithTaints:\n- key: a\n  effect: NoSchedule\n  operator: Exists\n";
    let path = write(dir.path(), "config.yaml", &text);
    let (_, warnings) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    let unknown: Vec<String> = warnings
        .iter()
        .filter_map(|w| match w {
            Warning::UnknownField { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        unknown,
        [
            "authentication.webhook.cacheTtl",
            "metadata",
            "registerWithTaints[0].operator"
        ]
    );
    let line = warnings
        .iter()
        .find(|w| matches!(w, Warning::UnknownField { .. }))
        .unwrap()
        .to_string();
    assert!(line.contains(&path.display().to_string()), "{line}");
}

#[test]
fn a_wrong_type_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        &format!("{KUBEADM}maxPods: many\n"),
    );
    let e = resolve(&["--kubeconfig=/k", &config_arg(&path)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("maxPods") && e.contains("config.yaml"), "{e}");
}

#[test]
fn other_kinds_and_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n",
            "apiVersion",
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: CredentialProviderConfig\n",
            "kind",
        ),
        (
            "apiVersion: kubelet.config.k8s.io/v1beta1\nport: 1\n",
            "kind",
        ),
    ] {
        let path = write(dir.path(), "config.yaml", text);
        let e = resolve(&["--kubeconfig=/k", &config_arg(&path)])
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn a_drop_in_dir_with_two_files_merges_as_kubelet_does() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(
        dir.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         port: 20250\naddress: 192.168.0.1\nmaxPods: 100\nclusterDNS: [192.168.0.9, 192.168.0.8]\n\
         authentication: {webhook: {enabled: false}, x509: {clientCAFile: /etc/ca.crt}}\n\
         systemReserved: {cpu: 100m, memory: 100Mi}\n",
    );
    let d = dir.path().join("kubelet.conf.d");
    // Applied second: it wins where both set a field.
    write(
        &d,
        "20-site.conf",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         maxPods: 30\nclusterDNS: [10.0.0.10]\n",
    );
    write(
        &d,
        "10-node.conf",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         address: 192.168.0.8\nmaxPods: 50\nclusterDNS: [10.0.0.2, 10.0.0.3, 10.0.0.5]\n\
         authentication: {anonymous: {enabled: true}}\nsystemReserved: {memory: 1Gi}\n",
    );
    write(&d, "README", "not a drop-in");
    let (c, warnings) = resolve(&[
        "--kubeconfig=/k",
        &config_arg(&base),
        &format!("--config-dir={}", d.display()),
    ])
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.port, 20250, "fields no drop-in sets are kept");
    assert_eq!(c.server.address.to_string(), "192.168.0.8");
    assert_eq!(c.max_pods, 30, "the lexically last file wins");
    assert_eq!(c.cluster_dns, ["10.0.0.10"], "lists are replaced whole");
    assert!(c.server.anonymous_auth);
    assert!(
        !c.server.authentication_token_webhook,
        "nested structs merge field by field"
    );
    assert_eq!(
        c.server.client_ca_file.as_deref(),
        Some(Path::new("/etc/ca.crt"))
    );
    assert_eq!(c.system_reserved.cpu_millis, 100, "maps merge key by key");
    assert_eq!(c.system_reserved.memory_bytes, 1 << 30);
}

#[test]
fn drop_ins_alone_and_their_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("conf.d");
    write(
        &d,
        "10-a.conf",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 7\n",
    );
    let dir_arg = format!("--config-dir={}", d.display());
    let (c, _) = resolve(&["--kubeconfig=/k", &dir_arg]).unwrap();
    assert_eq!(
        c.max_pods, 7,
        "--config-dir works without --config, over the defaults"
    );

    write(&d, "20-b.conf", "maxPods: 8\n");
    let e = resolve(&["--kubeconfig=/k", &dir_arg])
        .unwrap_err()
        .to_string();
    assert!(e.contains("20-b.conf") && e.contains("kind"), "{e}");

    write(&d, "20-b.conf", "");
    let e = resolve(&["--kubeconfig=/k", &dir_arg])
        .unwrap_err()
        .to_string();
    assert!(e.contains("20-b.conf") && e.contains("empty"), "{e}");

    let flat = write(dir.path(), "flat.yaml", "maxPods: 3\n");
    let e = resolve(&["--kubeconfig=/k", &config_arg(&flat), &dir_arg])
        .unwrap_err()
        .to_string();
    assert!(e.contains("flat format"), "{e}");

    let e = resolve(&["--kubeconfig=/k", "--config-dir=/nonexistent/conf.d"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/conf.d"), "{e}");
}

#[test]
fn flags_override_the_file_and_the_drop_ins() {
    let dir = tempfile::tempdir().unwrap();
    let base = write(dir.path(), "config.yaml", KIND);
    let d = dir.path().join("conf.d");
    write(
        &d,
        "50-pods.conf",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         maxPods: 50\nport: 10260\nfailSwapOn: true\n",
    );
    let (c, warnings) = resolve(&[
        "--kubeconfig=/k",
        &config_arg(&base),
        &format!("--config-dir={}", d.display()),
        "--max-pods=20",
        "--cluster-dns=10.0.0.53",
        "--cgroup-driver=cgroupfs",
        "--fail-swap-on=false",
        "--rotate-certificates=false",
        "--v=3",
    ])
    .unwrap();
    assert_eq!(c.max_pods, 20);
    assert_eq!(c.cluster_dns, ["10.0.0.53"]);
    assert_eq!(
        c.port, 10260,
        "the drop-in beats the file where no flag is given"
    );
    assert!(!c.certificates.rotate_certificates);
    assert_eq!(c.verbosity, 3);
    let fields = not_implemented(&warnings);
    for overridden in ["cgroupDriver", "failSwapOn", "rotateCertificates"] {
        assert!(
            !fields.contains(overridden),
            "{overridden}: the flag decides: {warnings:#?}"
        );
    }
}

#[test]
fn kubeadm_flag_forms_parse() {
    let (c, warnings) = resolve(&[
        "--kubeconfig=/k",
        "--rotate-certificates",
        "--fail-swap-on",
        "--cgroup-driver=systemd",
        "--cert-dir=/var/lib/kubelet/pki",
        "-v=2",
    ])
    .unwrap();
    assert!(c.certificates.rotate_certificates);
    assert_eq!(
        c.certificates.cert_dir,
        PathBuf::from("/var/lib/kubelet/pki")
    );
    assert_eq!(c.verbosity, 2);
    let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["flag --fail-swap-on is accepted but not implemented: the agent does not check for swap",]
    );
    assert!(
        resolve(&["--kubeconfig=/k", "--cgroup-driver=cgroupfs"])
            .unwrap()
            .1
            .is_empty()
    );
    let e = resolve(&["--kubeconfig=/k", "--cgroup-driver=openrc"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--cgroup-driver"), "{e}");
}

#[test]
fn node_allocatable_is_enforced_on_pods_unless_told_otherwise() {
    let (c, warnings) = resolve(&["--kubeconfig=/k"]).unwrap();
    assert!(c.cgroups.enforce_pods, "kubelet's default: pods");
    assert!(warnings.is_empty());
    let (c, _) = resolve(&["--kubeconfig=/k", "--enforce-node-allocatable=none"]).unwrap();
    assert!(!c.cgroups.enforce_pods);
    let (c, warnings) = resolve(&[
        "--kubeconfig=/k",
        "--enforce-node-allocatable=pods,system-reserved",
    ])
    .unwrap();
    assert!(c.cgroups.enforce_pods);
    assert_eq!(
        warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "KubeletConfiguration field enforceNodeAllocatable is accepted but not implemented \
          (it is set to system-reserved)"
        ]
    );
    for bad in ["bogus", "none,pods"] {
        let e = resolve(&[
            "--kubeconfig=/k",
            &format!("--enforce-node-allocatable={bad}"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--enforce-node-allocatable"), "{bad}: {e}");
    }
}

#[test]
fn pod_pids_limit_comes_from_the_file_or_the_flag_and_minus_one_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\npodPidsLimit: 4096\n",
    );
    let (c, warnings) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    assert_eq!(c.cgroups.pod_pids_limit, Some(4096));
    assert!(warnings.is_empty(), "{warnings:#?}");
    let (c, _) = resolve(&["--kubeconfig=/k", &config_arg(&path), "--pod-max-pids=100"]).unwrap();
    assert_eq!(c.cgroups.pod_pids_limit, Some(100), "the flag decides");
    let (c, _) = resolve(&["--kubeconfig=/k", &config_arg(&path), "--pod-max-pids=-1"]).unwrap();
    assert_eq!(c.cgroups.pod_pids_limit, None);
}

#[test]
fn cgroup_flags_beat_the_file_and_bad_roots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.yaml", KIND);
    let (c, _) = resolve(&[
        "--kubeconfig=/k",
        &config_arg(&path),
        "--cgroup-driver=cgroupfs",
        "--cgroup-root=/nodes/n1",
        "--cgroups-per-qos=false",
    ])
    .unwrap();
    assert_eq!(c.cgroups.driver, CgroupDriver::Cgroupfs);
    assert_eq!(c.cgroups.pod_pids_limit, None, "kubelet's default: -1");
    assert_eq!(c.cgroups.root.to_cgroupfs(), "/nodes/n1");
    assert!(!c.cgroups.per_qos);
    let layout = PodCgroups::new(&c.cgroups, c.cgroups.driver).unwrap();
    assert_eq!(
        layout.parent(QosTier::BestEffort, "u1"),
        "",
        "without cgroupsPerQOS the runtime places the pod"
    );
    for bad in ["kubelet", "/a/../b", "/a_b"] {
        let e = resolve(&["--kubeconfig=/k", &format!("--cgroup-root={bad}")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cgroup-root"), "{bad}: {e}");
    }
}

#[test]
fn relative_paths_resolve_against_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         staticPodPath: manifests\nauthentication: {x509: {clientCAFile: pki/ca.crt}}\n",
    );
    let (c, _) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    assert_eq!(c.static_pod_path, Some(dir.path().join("manifests")));
    assert_eq!(c.server.client_ca_file, Some(dir.path().join("pki/ca.crt")));
}

#[test]
fn report_frequency_follows_an_explicit_update_frequency_as_in_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         nodeStatusUpdateFrequency: 1m0s\n",
    );
    let (c, _) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    assert_eq!(c.node_status_update_frequency, Duration::from_secs(60));
    assert_eq!(c.node_status_report_frequency, Duration::from_secs(60));
}

#[test]
fn invalid_values_are_refused_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    for (field, want) in [
        ("clusterDNS: [10.0.0.1, nope]", "clusterDNS[1]"),
        ("port: 70000", "port"),
        ("maxPods: -1", "maxPods"),
        ("authorization: {mode: RBAC}", "authorization.mode"),
        ("cgroupDriver: openrc", "cgroupDriver"),
        (
            "imageGCHighThresholdPercent: 101",
            "imageGCHighThresholdPercent",
        ),
        (
            "evictionHard: {memory.available: lots}",
            "evictionHard[memory.available]",
        ),
        (
            "evictionHard: {disk.available: 1Gi}",
            "evictionHard[disk.available]",
        ),
        (
            "evictionSoftGracePeriod: {memory.available: soon}",
            "evictionSoftGracePeriod[memory.available]",
        ),
        (
            "registerWithTaints: [{key: a, effect: Sometimes}]",
            "registerWithTaints[0]",
        ),
        ("logging: {format: xml}", "logging.format"),
        ("logging: {flushFrequency: often}", "logging.flushFrequency"),
        ("containerLogMaxFiles: 1", "containerLogMaxFiles"),
        ("shutdownGracePeriod: 1d", "shutdownGracePeriod"),
        (
            "containerRuntimeEndpoint: tcp://1.2.3.4:1",
            "containerRuntimeEndpoint",
        ),
    ] {
        let text = format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n{field}\n"
        );
        let path = write(dir.path(), "config.yaml", &text);
        let e = resolve(&["--kubeconfig=/k", &config_arg(&path)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("invalid KubeletConfiguration: {want}: ")),
            "{field}: {e}"
        );
    }
}

/// The KubeletConfiguration fields the agent honours (the rest are in `FIELDS`).
const HONOURED: &[&str] = &[
    "apiVersion",
    "kind",
    "syncFrequency",
    "address",
    "port",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "authentication",
    "authorization",
    "healthzPort",
    "healthzBindAddress",
    "clusterDomain",
    "clusterDNS",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "runtimeRequestTimeout",
    "maxPods",
    "podCIDR",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "systemReserved",
    "kubeReserved",
    "allowedUnsafeSysctls",
    "logging",
    "registerWithTaints",
    "containerRuntimeEndpoint",
    "staticPodPath",
    "fileCheckFrequency",
    "rotateCertificates",
    "serverTLSBootstrap",
    "cgroupDriver",
    "cgroupRoot",
    "cgroupsPerQOS",
    "enforceNodeAllocatable",
    "podPidsLimit",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "mergeDefaultEvictionSettings",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "userNamespaces",
];

#[test]
fn every_field_of_the_type_is_honoured_or_warned() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "config.yaml", EVERY_FIELD);
    let (c, warnings) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    assert!(
        !warnings
            .iter()
            .any(|w| matches!(w, Warning::UnknownField { .. })),
        "every field of v1beta1 is known: {warnings:#?}"
    );
    let all: BTreeSet<String> = FIELDS.iter().map(|(f, _)| (*f).to_string()).collect();
    let quiet = set(&["runOnce"]); // true is refused: false is its only valid value
    let want: BTreeSet<String> = all.difference(&quiet).cloned().collect();
    assert_eq!(not_implemented(&warnings), want);
    assert_eq!(warnings.len(), want.len(), "one line per field");

    // The file's fields are exactly the honoured ones plus the listed ones.
    let doc: serde_yaml::Value = serde_yaml::from_str(EVERY_FIELD).unwrap();
    let top: BTreeSet<String> = doc
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let listed: BTreeSet<String> = FIELDS
        .iter()
        .map(|(f, _)| f.split('.').next().unwrap().to_string())
        .collect();
    let honoured = set(HONOURED);
    assert_eq!(
        top.len(),
        125,
        "123 fields of v0.35.4 plus apiVersion and kind"
    );
    assert_eq!(top, listed.union(&honoured).cloned().collect());

    // The honoured ones arrive.
    assert_eq!(c.port, 10260);
    assert_eq!(c.user_namespace_ids_per_pod, 131_072);
    assert_eq!(c.server.address.to_string(), "192.0.2.10");
    assert_eq!(c.server.authorization_mode, AuthorizationMode::AlwaysAllow);
    assert!(c.server.anonymous_auth && !c.server.authentication_token_webhook);
    assert_eq!(
        c.server.streaming_connection_idle_timeout,
        Duration::from_secs(9900)
    );
    assert_eq!(c.healthz_port, 10249);
    assert_eq!(
        c.shutdown.bands,
        [crate::config::shutdown::PriorityGrace {
            priority: 1000,
            grace: Duration::from_secs(20)
        }]
    );
    assert_eq!(c.cluster_domain, "example.local");
    assert_eq!(c.node_status_update_frequency, Duration::from_secs(20));
    assert_eq!(c.node_status_report_frequency, Duration::from_secs(60));
    assert_eq!(c.sync_frequency, Duration::from_secs(30));
    assert_eq!(c.node_lease_duration_seconds, 60);
    assert_eq!(c.runtime_request_timeout, Duration::from_secs(300));
    assert_eq!(c.max_pods, 50);
    assert_eq!(c.container_log_max_size, 20 << 20);
    assert_eq!(c.container_log_max_files, 3);
    assert_eq!(c.kube_reserved.cpu_millis, 200);
    assert_eq!(
        c.allowed_unsafe_sysctls,
        ["net.core.somaxconn", "kernel.msg*"]
    );
    assert_eq!(c.register_with_taints[0].value.as_deref(), Some("gpu"));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.verbosity, 3);
    assert!(c.network.pod_cidr.is_some());
    assert!(c.certificates.server_tls_bootstrap);
}

#[test]
fn the_flat_format_stays_an_alias_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "config.yaml",
        include_str!("../../../../deploy/systemd/config.yaml"),
    );
    let (c, warnings) = resolve(&[&config_arg(&path)]).unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.max_pods, 110);
    assert_eq!(c.server.address.to_string(), "192.0.2.10");
}

#[test]
fn the_shipped_kubelet_config_example_is_valid_and_fully_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "kubelet-config.yaml",
        include_str!("../../../../deploy/systemd/kubelet-config.yaml"),
    );
    let (c, warnings) = resolve(&["--kubeconfig=/k", &config_arg(&path)]).unwrap();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.register_with_taints.len(), 1);
    assert_eq!(
        c.server.client_ca_file.as_deref(),
        Some(Path::new("/etc/kubernetes/pki/ca.crt"))
    );
}

#[test]
fn a_manifest_url_flag_is_one_ignored_flag_warning_and_replaces_the_files_static_pod_url() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{KUBEADM}staticPodURL: http://127.0.0.1:1/pods\n");
    let path = write(dir.path(), "config.yaml", &text);
    let (_, warnings) = resolve(&[
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        &config_arg(&path),
        "--manifest-url=http://127.0.0.1:1/other",
    ])
    .unwrap();
    assert_eq!(
        ignored_flags(&warnings),
        ["--manifest-url"],
        "{warnings:#?}"
    );
    assert!(
        !not_implemented(&warnings).contains("staticPodURL"),
        "the flag replaces the field, so only the flag warns: {warnings:#?}"
    );
}
