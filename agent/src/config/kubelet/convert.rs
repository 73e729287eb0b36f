//! The fields of a (merged) KubeletConfiguration that the agent honours, checked with their
//! paths and carried into the file layer ([`FileConfig`]) that flags override. A zero value is
//! unset, as kubelet's defaulting has it, except where kubelet's own default differs from the
//! project's flat format: `address` defaults to 0.0.0.0 here, and `nodeStatusReportFrequency`
//! to an explicitly set `nodeStatusUpdateFrequency` (kubelet's backward-compatible rule).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::types::{Authentication, Authorization, KubeletConfiguration, Logging, Taint};
use crate::config::file::{FileConfig, TaintSpec};
use crate::config::{ConfigError, duration, parse};

/// kubelet's v1beta1 default for `address`: every interface.
pub const DEFAULT_ADDRESS: &str = "0.0.0.0";

pub(super) fn bad(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Kubelet {
        path: path.into(),
        message: message.into(),
    }
}

/// A string field that is set (kubelet treats "" as unset).
pub(super) fn text(value: Option<&String>) -> Option<&str> {
    value.map(String::as_str).filter(|s| !s.is_empty())
}

/// A duration field: None when unset or zero (kubelet defaults both), else the parsed value.
pub(super) fn duration_at(
    path: &str,
    value: Option<&String>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = value else { return Ok(None) };
    let parsed =
        duration::parse(raw).map_err(|e| bad(path, format!("{raw:?} is not a duration ({e})")))?;
    Ok(Some(parsed).filter(|d| !d.is_zero()))
}

/// A duration field's text when it is set to a non-zero duration.
fn duration_text(path: &str, value: Option<&String>) -> Result<Option<String>, ConfigError> {
    Ok(duration_at(path, value)?.and(value.cloned()))
}

fn ip_at(path: &str, value: Option<&String>) -> Result<Option<String>, ConfigError> {
    match text(value) {
        Some(s) if s.parse::<IpAddr>().is_err() => {
            Err(bad(path, format!("{s:?} is not an IP address")))
        }
        other => Ok(other.map(str::to_string)),
    }
}

fn port_at(path: &str, value: i32, min: i32) -> Result<u16, ConfigError> {
    u16::try_from(value)
        .ok()
        .filter(|p| i32::from(*p) >= min)
        .ok_or_else(|| bad(path, format!("{value} must be between {min} and 65535")))
}

fn path_of(value: Option<&String>) -> Option<PathBuf> {
    text(value).map(PathBuf::from)
}

/// Carries the honoured fields into a [`FileConfig`], checking each value with its path.
pub fn to_file_config(kc: &KubeletConfiguration) -> Result<FileConfig, ConfigError> {
    let mut file = FileConfig {
        static_pod_path: path_of(kc.static_pod_path.as_ref()),
        file_check_frequency: duration_text(
            "fileCheckFrequency",
            kc.file_check_frequency.as_ref(),
        )?,
        rotate_certificates: kc.rotate_certificates,
        server_tls_bootstrap: kc.server_tls_bootstrap,
        cgroup_driver: text(kc.cgroup_driver.as_ref()).map(str::to_string),
        cgroup_root: text(kc.cgroup_root.as_ref()).map(str::to_string),
        cgroups_per_qos: kc.cgroups_per_qos,
        enforce_node_allocatable: kc.enforce_node_allocatable.clone(),
        pod_pids_limit: kc.pod_pids_limit,
        container_runtime_endpoint: endpoint(kc.container_runtime_endpoint.as_ref())?,
        cluster_domain: text(kc.cluster_domain.as_ref()).map(str::to_string),
        cluster_dns: cluster_dns(kc.cluster_dns.as_ref())?,
        address: Some(
            ip_at("address", kc.address.as_ref())?.unwrap_or_else(|| DEFAULT_ADDRESS.into()),
        ),
        healthz_bind_address: ip_at("healthzBindAddress", kc.healthz_bind_address.as_ref())?,
        tls_cert_file: path_of(kc.tls_cert_file.as_ref()),
        tls_private_key_file: path_of(kc.tls_private_key_file.as_ref()),
        streaming_connection_idle_timeout: duration_text(
            "streamingConnectionIdleTimeout",
            kc.streaming_connection_idle_timeout.as_ref(),
        )?,
        sync_frequency: duration_text("syncFrequency", kc.sync_frequency.as_ref())?,
        runtime_request_timeout: duration_text(
            "runtimeRequestTimeout",
            kc.runtime_request_timeout.as_ref(),
        )?,
        pod_cidr: pod_cidr(kc.pod_cidr.as_ref())?,
        register_with_taints: taints(kc.register_with_taints.as_deref())?,
        allowed_unsafe_sysctls: unsafe_sysctls(kc.allowed_unsafe_sysctls.as_ref())?,
        kube_reserved: reserved("kubeReserved", kc.kube_reserved.as_ref())?,
        system_reserved: reserved("systemReserved", kc.system_reserved.as_ref())?,
        container_log_max_size: log_max_size(kc.container_log_max_size.as_ref())?,
        eviction_hard: kc.eviction_hard.clone(),
        eviction_soft: kc.eviction_soft.clone(),
        eviction_soft_grace_period: kc.eviction_soft_grace_period.clone(),
        eviction_minimum_reclaim: kc.eviction_minimum_reclaim.clone(),
        eviction_pressure_transition_period: duration_text(
            "evictionPressureTransitionPeriod",
            kc.eviction_pressure_transition_period.as_ref(),
        )?,
        eviction_max_pod_grace_period: kc.eviction_max_pod_grace_period.map(i64::from),
        merge_default_eviction_settings: kc.merge_default_eviction_settings,
        image_gc_high_threshold_percent: kc.image_gc_high_threshold_percent,
        image_gc_low_threshold_percent: kc.image_gc_low_threshold_percent,
        image_minimum_gc_age: duration_text("imageMinimumGCAge", kc.image_minimum_gc_age.as_ref())?,
        image_maximum_gc_age: duration_text("imageMaximumGCAge", kc.image_maximum_gc_age.as_ref())?,
        shutdown_grace_period: kc.shutdown_grace_period.clone(),
        shutdown_grace_period_critical_pods: kc.shutdown_grace_period_critical_pods.clone(),
        shutdown_grace_period_by_pod_priority: kc
            .shutdown_grace_period_by_pod_priority
            .as_ref()
            .map(|bands| {
                bands
                    .iter()
                    .map(|b| {
                        (
                            b.priority.unwrap_or_default(),
                            b.shutdown_grace_period_seconds.unwrap_or_default(),
                        )
                    })
                    .collect()
            }),
        user_namespaces_ids_per_pod: kc.user_namespaces.as_ref().and_then(|u| u.ids_per_pod),
        ..FileConfig::default()
    };
    node_status(kc, &mut file)?;
    counts(kc, &mut file)?;
    if let Some(a) = &kc.authentication {
        authentication(a, &mut file);
    }
    if let Some(a) = &kc.authorization {
        file.authorization_mode = authorization_mode(a)?;
    }
    if let Some(l) = &kc.logging {
        logging(l, &mut file)?;
    }
    Ok(file)
}

fn endpoint(value: Option<&String>) -> Result<Option<String>, ConfigError> {
    match text(value) {
        Some(e) if !(e.starts_with("unix://") || e.starts_with('/')) => Err(bad(
            "containerRuntimeEndpoint",
            format!("{e:?}: only unix sockets are supported (unix:///path)"),
        )),
        other => Ok(other.map(str::to_string)),
    }
}

fn cluster_dns(value: Option<&Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(servers) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    for (i, s) in servers.iter().enumerate() {
        if s.parse::<IpAddr>().is_err() {
            return Err(bad(
                format!("clusterDNS[{i}]"),
                format!("{s:?} is not an IP address"),
            ));
        }
    }
    Ok(Some(servers.clone()))
}

fn pod_cidr(value: Option<&String>) -> Result<Option<String>, ConfigError> {
    let Some(cidr) = text(value) else {
        return Ok(None);
    };
    crate::network::conflist::PodCidr::parse(cidr).map_err(|e| bad("podCIDR", e))?;
    Ok(Some(cidr.to_string()))
}

fn taints(value: Option<&[Taint]>) -> Result<Option<Vec<TaintSpec>>, ConfigError> {
    let Some(list) = value.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = |field: &str| format!("registerWithTaints[{i}].{field}");
        if t.time_added.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(at("timeAdded"), "must not be set"));
        }
        let key = text(t.key.as_ref()).ok_or_else(|| bad(at("key"), "is required"))?;
        let effect = text(t.effect.as_ref()).ok_or_else(|| bad(at("effect"), "is required"))?;
        let value = text(t.value.as_ref());
        parse::make_taint(key, value, effect)
            .map_err(|e| bad(format!("registerWithTaints[{i}]"), e))?;
        out.push(TaintSpec {
            key: key.to_string(),
            value: value.map(str::to_string),
            effect: effect.to_string(),
        });
    }
    Ok(Some(out))
}

fn unsafe_sysctls(value: Option<&Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = value.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    for (i, p) in list.iter().enumerate() {
        parse::validate_sysctl_pattern(p)
            .map_err(|e| bad(format!("allowedUnsafeSysctls[{i}]"), e))?;
    }
    Ok(Some(list.clone()))
}

fn reserved(
    path: &str,
    value: Option<&std::collections::BTreeMap<String, String>>,
) -> Result<Option<std::collections::BTreeMap<String, String>>, ConfigError> {
    let Some(map) = value.filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    parse::parse_reserved(map).map_err(|e| bad(path, e))?;
    Ok(Some(map.clone()))
}

fn log_max_size(value: Option<&String>) -> Result<Option<String>, ConfigError> {
    let Some(size) = text(value) else {
        return Ok(None);
    };
    match crate::quantity::parse_units(size) {
        Ok(0) => Err(bad("containerLogMaxSize", "must be greater than zero")),
        Ok(_) => Ok(Some(size.to_string())),
        Err(e) => Err(bad("containerLogMaxSize", e.to_string())),
    }
}

/// The node status periods, with kubelet's rule for an unset report frequency.
fn node_status(kc: &KubeletConfiguration, file: &mut FileConfig) -> Result<(), ConfigError> {
    let update = duration_text(
        "nodeStatusUpdateFrequency",
        kc.node_status_update_frequency.as_ref(),
    )?;
    let report = duration_text(
        "nodeStatusReportFrequency",
        kc.node_status_report_frequency.as_ref(),
    )?;
    file.node_status_report_frequency = report.or_else(|| update.clone());
    file.node_status_update_frequency = update;
    Ok(())
}

/// The integer fields: 0 is unset, negatives are refused.
fn counts(kc: &KubeletConfiguration, file: &mut FileConfig) -> Result<(), ConfigError> {
    file.max_pods = match kc.max_pods.unwrap_or(0) {
        0 => None,
        n => Some(
            u32::try_from(n).map_err(|_| bad("maxPods", format!("{n} must not be negative")))?,
        ),
    };
    file.port = match kc.port.unwrap_or(0) {
        0 => None,
        p => Some(port_at("port", p, 1)?),
    };
    file.healthz_port = kc
        .healthz_port
        .map(|p| port_at("healthzPort", p, 0))
        .transpose()?;
    file.node_lease_duration_seconds = match kc.node_lease_duration_seconds.unwrap_or(0) {
        0 => None,
        n => Some(u32::try_from(n).map_err(|_| {
            bad(
                "nodeLeaseDurationSeconds",
                format!("{n} must be greater than 0"),
            )
        })?),
    };
    file.container_log_max_files = kc
        .container_log_max_files
        .map(|n| {
            usize::try_from(n).ok().filter(|n| *n > 1).ok_or_else(|| {
                bad(
                    "containerLogMaxFiles",
                    format!("{n} must be greater than 1"),
                )
            })
        })
        .transpose()?;
    Ok(())
}

fn authentication(a: &Authentication, file: &mut FileConfig) {
    file.client_ca_file = a
        .x509
        .as_ref()
        .and_then(|x| path_of(x.client_ca_file.as_ref()));
    file.authentication_token_webhook = a.webhook.as_ref().and_then(|w| w.enabled);
    file.anonymous_auth = a.anonymous.as_ref().and_then(|w| w.enabled);
}

fn authorization_mode(a: &Authorization) -> Result<Option<String>, ConfigError> {
    match text(a.mode.as_ref()) {
        Some(m @ ("Webhook" | "AlwaysAllow")) => Ok(Some(m.to_string())),
        Some(other) => Err(bad(
            "authorization.mode",
            format!("{other:?} (expected Webhook or AlwaysAllow)"),
        )),
        None => Ok(None),
    }
}

fn logging(l: &Logging, file: &mut FileConfig) -> Result<(), ConfigError> {
    file.log_format = match text(l.format.as_ref()) {
        Some(f @ ("text" | "json")) => Some(f.to_string()),
        Some(other) => {
            return Err(bad(
                "logging.format",
                format!("{other:?} (expected text or json)"),
            ));
        }
        None => None,
    };
    file.verbosity = l.verbosity.map(|v| u8::try_from(v).unwrap_or(u8::MAX));
    Ok(())
}
