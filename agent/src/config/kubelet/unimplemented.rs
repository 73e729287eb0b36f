//! Every KubeletConfiguration field the agent accepts without acting on it, and when a value
//! deserves the warning. The rule follows Go's types: a plain field (string, number, duration,
//! map, list, struct) at its zero value is unset, so kubeadm's `cacheTTL: 0s` or `memorySwap: {}`
//! say nothing; a pointer field (`*bool`, `*int32`) that is present was chosen. A value that is
//! what the agent does anyway (`failSwapOn: false`) is quiet too.
//!
//! Fields that are honoured are not listed; a test checks that the two sets cover the type.
//! When a field becomes implemented, drop its line here.

use std::time::Duration;

use serde_yaml::Value;

use crate::config::Warning;
use crate::config::duration;

/// When a present field's value is quiet.
#[derive(Debug, Clone, Copy)]
pub enum Quiet {
    /// A plain field the agent ignores: quiet at its zero value.
    Zero,
    /// A pointer field the agent ignores: never quiet once present.
    Present,
    /// A plain field: quiet at zero or at this value, which is what the agent does.
    Is(&'static str),
    /// A pointer field: quiet at this value only.
    PtrIs(&'static str),
    /// A plain duration field: quiet at zero or at this duration (in milliseconds).
    Lasts(u64),
    /// A pointer duration field: quiet at this duration (in milliseconds) only.
    PtrLasts(u64),
}

/// The fields accepted but not implemented, by path. The values in `Is`/`Lasts` are the agent's
/// own behaviour: server/auth caches tokens 2m, allowed 5m, denied 30s; pods/ writes logs under
/// /var/log/pods, sets CFS quotas with a 100ms period; pods read the host's /etc/resolv.conf;
/// rustls serves TLS 1.2 and 1.3.
pub const FIELDS: &[(&str, Quiet)] = &[
    ("enableServer", Quiet::PtrIs("true")),
    ("podLogsDir", Quiet::Is("/var/log/pods")),
    ("httpCheckFrequency", Quiet::Zero),
    ("staticPodURL", Quiet::Zero),
    ("staticPodURLHeader", Quiet::Zero),
    ("readOnlyPort", Quiet::Zero),
    ("tlsCipherSuites", Quiet::Zero),
    ("tlsMinVersion", Quiet::Is("VersionTLS12")),
    ("authentication.webhook.cacheTTL", Quiet::Lasts(120_000)),
    (
        "authorization.webhook.cacheAuthorizedTTL",
        Quiet::Lasts(300_000),
    ),
    (
        "authorization.webhook.cacheUnauthorizedTTL",
        Quiet::Lasts(30_000),
    ),
    ("registryPullQPS", Quiet::Present),
    ("registryBurst", Quiet::Zero),
    ("imagePullCredentialsVerificationPolicy", Quiet::Zero),
    ("preloadedImagesVerificationAllowlist", Quiet::Zero),
    ("eventRecordQPS", Quiet::Present),
    ("eventBurst", Quiet::Zero),
    ("enableDebuggingHandlers", Quiet::PtrIs("true")),
    ("enableContentionProfiling", Quiet::Zero),
    ("oomScoreAdj", Quiet::Present),
    ("volumeStatsAggPeriod", Quiet::Zero),
    ("kubeletCgroups", Quiet::Zero),
    ("systemCgroups", Quiet::Zero),
    ("cpuManagerPolicy", Quiet::Is("none")),
    ("singleProcessOOMKill", Quiet::Present),
    ("cpuManagerPolicyOptions", Quiet::Zero),
    ("cpuManagerReconcilePeriod", Quiet::Zero),
    ("memoryManagerPolicy", Quiet::Is("None")),
    ("topologyManagerPolicy", Quiet::Is("none")),
    ("topologyManagerScope", Quiet::Is("container")),
    ("topologyManagerPolicyOptions", Quiet::Zero),
    ("qosReserved", Quiet::Zero),
    ("hairpinMode", Quiet::Zero),
    ("resolvConf", Quiet::PtrIs("/etc/resolv.conf")),
    ("runOnce", Quiet::Zero),
    ("cpuCFSQuota", Quiet::PtrIs("true")),
    ("cpuCFSQuotaPeriod", Quiet::PtrLasts(100)),
    ("nodeStatusMaxImages", Quiet::Present),
    ("maxOpenFiles", Quiet::Zero),
    ("contentType", Quiet::Zero),
    ("kubeAPIQPS", Quiet::Present),
    ("kubeAPIBurst", Quiet::Zero),
    ("serializeImagePulls", Quiet::Present),
    ("maxParallelImagePulls", Quiet::Present),
    ("podsPerCore", Quiet::Zero),
    ("enableControllerAttachDetach", Quiet::PtrIs("true")),
    ("protectKernelDefaults", Quiet::Zero),
    ("makeIPTablesUtilChains", Quiet::Present),
    ("iptablesMasqueradeBit", Quiet::Present),
    ("iptablesDropBit", Quiet::Present),
    ("featureGates", Quiet::Zero),
    ("failSwapOn", Quiet::PtrIs("false")),
    ("memorySwap", Quiet::Zero),
    ("containerLogMaxWorkers", Quiet::Present),
    ("containerLogMonitorInterval", Quiet::Present),
    ("configMapAndSecretChangeDetectionStrategy", Quiet::Zero),
    ("reservedSystemCPUs", Quiet::Zero),
    ("showHiddenMetricsForVersion", Quiet::Zero),
    ("systemReservedCgroup", Quiet::Zero),
    ("kubeReservedCgroup", Quiet::Zero),
    ("volumePluginDir", Quiet::Zero),
    ("providerID", Quiet::Zero),
    ("kernelMemcgNotification", Quiet::Zero),
    ("logging.flushFrequency", Quiet::Zero),
    ("logging.vmodule", Quiet::Zero),
    ("logging.options", Quiet::Zero),
    ("enableSystemLogHandler", Quiet::Present),
    ("enableSystemLogQuery", Quiet::Present),
    ("crashLoopBackOff", Quiet::Zero),
    ("reservedMemory", Quiet::Zero),
    ("enableProfilingHandler", Quiet::Present),
    ("enableDebugFlagsHandler", Quiet::Present),
    ("seccompDefault", Quiet::PtrIs("false")),
    ("memoryThrottlingFactor", Quiet::Present),
    ("registerNode", Quiet::PtrIs("true")),
    ("tracing", Quiet::Present),
    ("localStorageCapacityIsolation", Quiet::Present),
    ("imageServiceEndpoint", Quiet::Zero),
    ("failCgroupV1", Quiet::PtrIs("false")),
];

/// The value at a dotted path of a YAML mapping.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| v.get(key))
}

/// Go's zero value, as it reads in YAML: nothing, "", "0", "0s", 0, false, or a map or list
/// whose entries are all zero.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0) || n.as_u64() == Some(0),
        Value::String(s) => s.is_empty() || s == "0" || s == "0s",
        Value::Sequence(items) => items.is_empty(),
        Value::Mapping(m) => m.values().all(is_zero),
        Value::Tagged(t) => is_zero(&t.value),
    }
}

/// A scalar as text, for comparing with the agent's behaviour.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn lasts(v: &Value, millis: u64) -> bool {
    v.as_str()
        .and_then(|s| duration::parse(s).ok())
        .is_some_and(|d| d == Duration::from_millis(millis))
}

fn is_quiet(v: &Value, rule: Quiet) -> bool {
    match rule {
        Quiet::Zero => is_zero(v),
        Quiet::Present => v.is_null(),
        Quiet::Is(same) => is_zero(v) || scalar(v).as_deref() == Some(same),
        Quiet::PtrIs(same) => v.is_null() || scalar(v).as_deref() == Some(same),
        Quiet::Lasts(ms) => is_zero(v) || lasts(v, ms),
        Quiet::PtrLasts(ms) => v.is_null() || lasts(v, ms),
    }
}

/// A value on one line: scalars as they are, maps and lists as JSON.
fn one_line(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => scalar(other)
            .or_else(|| serde_json::to_string(other).ok())
            .unwrap_or_else(|| "a value".into()),
    }
}

/// One warning per listed field whose value in the merged configuration is not quiet, except
/// fields whose flag was given (the flag wins and is judged on its own).
pub fn warnings(merged: &Value, overridden_by_flags: &[&str]) -> Vec<Warning> {
    FIELDS
        .iter()
        .filter(|(path, _)| !overridden_by_flags.contains(path))
        .filter_map(|(path, rule)| {
            let value = lookup(merged, path)?;
            (!is_quiet(value, *rule)).then(|| Warning::NotImplemented {
                field: (*path).to_string(),
                value: one_line(value),
            })
        })
        .collect()
}
