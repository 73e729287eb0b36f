//! Checks on the fields the agent accepts without acting on them, so that a value kubelet would
//! refuse is refused here too, naming its path: every duration parses, numbers are in kubelet's
//! ranges, enumerations hold one of kubelet's values, eviction maps name known signals with
//! quantities or percentages. (The honoured fields are checked in [`super::convert`].)
//! Checks that depend on feature gates are left out.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::convert::{bad, duration_at, text};
use super::types::KubeletConfiguration;
use crate::config::{ConfigError, duration};

/// Eviction signals kubelet knows (pkg/kubelet/eviction/api).
const EVICTION_SIGNALS: [&str; 9] = [
    "memory.available",
    "allocatableMemory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

fn one_of(path: &str, value: Option<&String>, allowed: &[&str]) -> Result<(), ConfigError> {
    match text(value) {
        Some(v) if !allowed.contains(&v) => Err(bad(
            path,
            format!("{v:?} must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(
    path: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if v < min || v > max => {
            Err(bad(path, format!("{v} must be between {min} and {max}")))
        }
        _ => Ok(()),
    }
}

fn not_negative<T: PartialOrd + std::fmt::Display + Copy + Default>(
    path: &str,
    value: Option<T>,
) -> Result<(), ConfigError> {
    match value {
        Some(v) if v < T::default() => Err(bad(path, format!("{v} must not be negative"))),
        _ => Ok(()),
    }
}

/// Checks every field the agent does not honour itself.
pub fn check(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    durations(kc)?;
    numbers(kc)?;
    enumerations(kc)?;
    eviction(kc)?;
    logging(kc)
}

fn durations(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    let fields = [
        ("fileCheckFrequency", &kc.file_check_frequency),
        ("httpCheckFrequency", &kc.http_check_frequency),
        ("imageMinimumGCAge", &kc.image_minimum_gc_age),
        ("imageMaximumGCAge", &kc.image_maximum_gc_age),
        ("volumeStatsAggPeriod", &kc.volume_stats_agg_period),
        (
            "cpuManagerReconcilePeriod",
            &kc.cpu_manager_reconcile_period,
        ),
        ("cpuCFSQuotaPeriod", &kc.cpu_cfs_quota_period),
        (
            "evictionPressureTransitionPeriod",
            &kc.eviction_pressure_transition_period,
        ),
        (
            "containerLogMonitorInterval",
            &kc.container_log_monitor_interval,
        ),
        ("shutdownGracePeriod", &kc.shutdown_grace_period),
        (
            "shutdownGracePeriodCriticalPods",
            &kc.shutdown_grace_period_critical_pods,
        ),
    ];
    for (path, value) in fields {
        duration_at(path, value.as_ref())?;
    }
    if let Some(a) = &kc.authentication
        && let Some(w) = &a.webhook
    {
        duration_at("authentication.webhook.cacheTTL", w.cache_ttl.as_ref())?;
    }
    if let Some(a) = &kc.authorization
        && let Some(w) = &a.webhook
    {
        duration_at(
            "authorization.webhook.cacheAuthorizedTTL",
            w.cache_authorized_ttl.as_ref(),
        )?;
        duration_at(
            "authorization.webhook.cacheUnauthorizedTTL",
            w.cache_unauthorized_ttl.as_ref(),
        )?;
    }
    if let Some(c) = &kc.crash_loop_back_off {
        duration_at(
            "crashLoopBackOff.maxContainerRestartPeriod",
            c.max_container_restart_period.as_ref(),
        )?;
    }
    Ok(())
}

fn numbers(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    within("readOnlyPort", kc.read_only_port, 0, 65535)?;
    within(
        "imageGCHighThresholdPercent",
        kc.image_gc_high_threshold_percent,
        0,
        100,
    )?;
    within(
        "imageGCLowThresholdPercent",
        kc.image_gc_low_threshold_percent,
        0,
        100,
    )?;
    if let (Some(low), Some(high)) = (
        kc.image_gc_low_threshold_percent,
        kc.image_gc_high_threshold_percent,
    ) && low > high
    {
        return Err(bad(
            "imageGCLowThresholdPercent",
            format!("{low} must not be above imageGCHighThresholdPercent {high}"),
        ));
    }
    within("oomScoreAdj", kc.oom_score_adj, -1000, 1000)?;
    within("iptablesMasqueradeBit", kc.iptables_masquerade_bit, 0, 31)?;
    within("iptablesDropBit", kc.iptables_drop_bit, 0, 31)?;
    within(
        "nodeStatusMaxImages",
        kc.node_status_max_images,
        -1,
        i32::MAX,
    )?;
    within(
        "memoryThrottlingFactor",
        kc.memory_throttling_factor,
        f64::MIN_POSITIVE,
        1.0,
    )?;
    within(
        "containerLogMaxWorkers",
        kc.container_log_max_workers,
        1,
        i32::MAX,
    )?;
    within(
        "maxParallelImagePulls",
        kc.max_parallel_image_pulls,
        1,
        i32::MAX,
    )?;
    for (path, value) in [
        ("registryPullQPS", kc.registry_pull_qps),
        ("registryBurst", kc.registry_burst),
        ("eventRecordQPS", kc.event_record_qps),
        ("eventBurst", kc.event_burst),
        ("kubeAPIQPS", kc.kube_api_qps),
        ("kubeAPIBurst", kc.kube_api_burst),
        ("podsPerCore", kc.pods_per_core),
        (
            "evictionMaxPodGracePeriod",
            kc.eviction_max_pod_grace_period,
        ),
    ] {
        not_negative(path, value)?;
    }
    not_negative("maxOpenFiles", kc.max_open_files)?;
    if kc.run_once == Some(true) {
        return Err(bad(
            "runOnce",
            "kubelet refuses it: run-once mode is deprecated",
        ));
    }
    Ok(())
}

fn enumerations(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    one_of(
        "cgroupDriver",
        kc.cgroup_driver.as_ref(),
        &["cgroupfs", "systemd"],
    )?;
    one_of(
        "hairpinMode",
        kc.hairpin_mode.as_ref(),
        &["promiscuous-bridge", "hairpin-veth", "none"],
    )?;
    one_of(
        "cpuManagerPolicy",
        kc.cpu_manager_policy.as_ref(),
        &["none", "static"],
    )?;
    one_of(
        "memoryManagerPolicy",
        kc.memory_manager_policy.as_ref(),
        &["None", "Static"],
    )?;
    one_of(
        "topologyManagerPolicy",
        kc.topology_manager_policy.as_ref(),
        &["none", "best-effort", "restricted", "single-numa-node"],
    )?;
    one_of(
        "topologyManagerScope",
        kc.topology_manager_scope.as_ref(),
        &["container", "pod"],
    )?;
    one_of(
        "configMapAndSecretChangeDetectionStrategy",
        kc.config_map_and_secret_change_detection_strategy.as_ref(),
        &["Get", "Cache", "Watch"],
    )?;
    one_of(
        "tlsMinVersion",
        kc.tls_min_version.as_ref(),
        &[
            "VersionTLS10",
            "VersionTLS11",
            "VersionTLS12",
            "VersionTLS13",
        ],
    )?;
    one_of(
        "imagePullCredentialsVerificationPolicy",
        kc.image_pull_credentials_verification_policy.as_ref(),
        &[
            "NeverVerify",
            "NeverVerifyPreloadedImages",
            "NeverVerifyAllowlistedImages",
            "AlwaysVerify",
        ],
    )?;
    if let Some(s) = &kc.memory_swap {
        one_of(
            "memorySwap.swapBehavior",
            s.swap_behavior.as_ref(),
            &["NoSwap", "LimitedSwap"],
        )?;
    }
    Ok(())
}

/// A threshold: a percentage (0-100%) or a quantity.
fn threshold(path: &str, value: &str) -> Result<(), ConfigError> {
    if let Some(pct) = value.strip_suffix('%') {
        return match pct.parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(()),
            _ => Err(bad(
                path,
                format!("{value:?} is not a percentage between 0% and 100%"),
            )),
        };
    }
    crate::quantity::parse_units(value).map(drop).map_err(|e| {
        bad(
            path,
            format!("{value:?} is neither a percentage nor a quantity ({e})"),
        )
    })
}

fn signals(
    field: &str,
    map: Option<&BTreeMap<String, String>>,
    value_ok: fn(&str, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    for (signal, value) in map.into_iter().flatten() {
        let path = format!("{field}[{signal}]");
        if !EVICTION_SIGNALS.contains(&signal.as_str()) {
            return Err(bad(path, format!("unknown eviction signal {signal:?}")));
        }
        value_ok(&path, value)?;
    }
    Ok(())
}

fn eviction(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    signals("evictionHard", kc.eviction_hard.as_ref(), threshold)?;
    signals("evictionSoft", kc.eviction_soft.as_ref(), threshold)?;
    signals(
        "evictionMinimumReclaim",
        kc.eviction_minimum_reclaim.as_ref(),
        threshold,
    )?;
    signals(
        "evictionSoftGracePeriod",
        kc.eviction_soft_grace_period.as_ref(),
        |path, v| {
            duration::parse(v)
                .map(drop)
                .map_err(|e| bad(path, format!("{v:?} is not a duration ({e})")))
        },
    )
}

fn logging(kc: &KubeletConfiguration) -> Result<(), ConfigError> {
    let Some(l) = &kc.logging else { return Ok(()) };
    match &l.flush_frequency {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        Some(Value::String(s)) => {
            duration::parse(s).map_err(|e| {
                bad(
                    "logging.flushFrequency",
                    format!("{s:?} is not a duration ({e})"),
                )
            })?;
        }
        Some(other) => {
            return Err(bad(
                "logging.flushFrequency",
                format!("{other:?} is neither a duration nor a number of nanoseconds"),
            ));
        }
    }
    let routes = l
        .options
        .iter()
        .flat_map(|o| [("text", &o.text), ("json", &o.json)]);
    for (name, route) in routes {
        let size = route.as_ref().and_then(|r| r.info_buffer_size.as_ref());
        let ok = match size {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_u64().is_some(),
            Some(Value::String(s)) => crate::quantity::parse_units(s).is_ok(),
            Some(_) => false,
        };
        if !ok {
            return Err(bad(
                format!("logging.options.{name}.infoBufferSize"),
                "is not a quantity",
            ));
        }
    }
    Ok(())
}
