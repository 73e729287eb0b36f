//! Parsers and validators for the textual settings: label lists, taints, reserved resources and
//! Go-style durations. Pure functions, each returning a message fit for one error line.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::quantity;

/// A validated taint to register with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Labels under kubernetes.io / k8s.io that kubelet may set on its own Node (NodeRestriction
/// refuses the others).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// A label value or the name part of a key: at most 63 characters, alphanumerics at both ends.
fn valid_name(s: &str) -> bool {
    s.len() <= 63
        && s.chars().all(is_name_char)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Checks a qualified name (`[prefix/]name`) as used by label and taint keys.
pub fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !valid_dns_subdomain(p)
    {
        return Err(format!("{key:?}: prefix must be a DNS subdomain"));
    }
    if name.is_empty() || !valid_name(name) {
        return Err(format!(
            "{key:?}: name must be 1-63 characters of [A-Za-z0-9-_.], alphanumeric at both ends"
        ));
    }
    Ok(())
}

/// Checks a label value (may be empty).
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || valid_name(value) {
        Ok(())
    } else {
        Err(format!(
            "{value:?}: a label value must be at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends"
        ))
    }
}

fn in_namespace(prefix: &str, namespace: &str) -> bool {
    prefix == namespace || prefix.ends_with(&format!(".{namespace}"))
}

/// Refuses labels in the kubernetes.io / k8s.io namespaces that kubelet may not set itself,
/// exactly as kubelet does at start-up.
fn check_label_allowed(key: &str) -> Result<(), String> {
    let Some((prefix, _)) = key.split_once('/') else {
        return Ok(());
    };
    let restricted = in_namespace(prefix, "kubernetes.io") || in_namespace(prefix, "k8s.io");
    if !restricted
        || KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|ns| in_namespace(prefix, ns))
    {
        return Ok(());
    }
    Err(format!(
        "{key:?}: labels in the kubernetes.io or k8s.io namespaces are limited to those a kubelet may set \
         (e.g. node.kubernetes.io/*, kubelet.kubernetes.io/*, topology.kubernetes.io/zone)"
    ))
}

/// Validates a label map (key syntax, value syntax, kubelet's namespace rule).
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in labels {
        validate_qualified_name(k)?;
        validate_label_value(v)?;
        check_label_allowed(k)?;
    }
    Ok(())
}

/// Parses `k=v,k2=v2` without judging the keys.
pub fn parse_kv_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for item in comma_list(text) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected key=value"))?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(map)
}

/// Parses and validates a `k=v,k2=v2` label list.
pub fn parse_label_list(text: &str) -> Result<BTreeMap<String, String>, String> {
    let labels = parse_kv_list(text)?;
    validate_labels(&labels)?;
    Ok(labels)
}

/// Validates one taint's parts.
pub fn make_taint(key: &str, value: Option<&str>, effect: &str) -> Result<Taint, String> {
    validate_qualified_name(key)?;
    if let Some(v) = value {
        validate_label_value(v)?;
    }
    if !TAINT_EFFECTS.contains(&effect) {
        return Err(format!(
            "taint {key:?}: effect {effect:?} is not one of NoSchedule, PreferNoSchedule, NoExecute"
        ));
    }
    Ok(Taint {
        key: key.to_string(),
        value: value.filter(|v| !v.is_empty()).map(str::to_string),
        effect: effect.to_string(),
    })
}

/// The non-empty, trimmed items of a comma-separated flag value.
pub fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses `key[=value]:Effect,...` as kubelet's --register-with-taints.
pub fn parse_taint_list(text: &str) -> Result<Vec<Taint>, String> {
    comma_list(text)
        .map(|item| {
            let (kv, effect) = item
                .rsplit_once(':')
                .ok_or_else(|| format!("taint {item:?}: expected key[=value]:Effect"))?;
            match kv.split_once('=') {
                Some((k, v)) => make_taint(k, Some(v), effect),
                None => make_taint(kv, None, effect),
            }
        })
        .collect()
}

/// Resources that may be reserved, parsed: cpu in millicores, the others in bytes / counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pids: u64,
}

/// Parses a reserved-resources map (`cpu`, `memory`, `ephemeral-storage`, `pid`).
pub fn parse_reserved(map: &BTreeMap<String, String>) -> Result<Reserved, String> {
    let mut r = Reserved::default();
    for (name, value) in map {
        let bad = |e: quantity::QuantityError| format!("{name}: {e}");
        match name.as_str() {
            "cpu" => r.cpu_millis = quantity::parse_millis(value).map_err(bad)?,
            "memory" => r.memory_bytes = quantity::parse_units(value).map_err(bad)?,
            "ephemeral-storage" => {
                r.ephemeral_storage_bytes = quantity::parse_units(value).map_err(bad)?;
            }
            "pid" => r.pids = quantity::parse_units(value).map_err(bad)?,
            other => {
                return Err(format!(
                    "unknown reserved resource {other:?} (cpu, memory, ephemeral-storage, pid)"
                ));
            }
        }
    }
    Ok(r)
}

/// Parses a Go-style duration ("10s", "5m", "1m30s", "500ms", "2h") for a flag or file setting.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    super::duration::parse(text.trim())
        .map_err(|e| format!("invalid duration {text:?}: {e} (examples: 10s, 5m, 1m30s, 500ms)"))
}

/// A sysctl name (`kernel.msgmax`, `net/ipv4/ip_forward`) or a pattern ending in `*`
/// (`kernel.msg*`), as kubelet's --allowed-unsafe-sysctls takes them.
pub fn validate_sysctl_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    let ok_segment = |seg: &str| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    };
    let segments: Vec<&str> = name.split(['.', '/']).collect();
    let trailing_dot = pattern.ends_with('*') && (name.ends_with('.') || name.ends_with('/'));
    let body = if trailing_dot {
        &segments[..segments.len() - 1]
    } else {
        &segments[..]
    };
    if pattern.len() > 253 || body.is_empty() || !body.iter().all(|s| ok_segment(s)) {
        return Err(format!(
            "{pattern:?} is not a sysctl name or a pattern ending in '*'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sysctl_patterns() {
        for ok in [
            "kernel.msgmax",
            "kernel.msg*",
            "net.core.*",
            "net/ipv4/ip_forward",
            "a*",
        ] {
            assert_eq!(super::validate_sysctl_pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["", "*", "kernel..x", "kernel.m*sg", "kernel msg", ".x"] {
            assert!(super::validate_sysctl_pattern(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn label_lists_parse_and_validate() {
        let l = parse_label_list("a=b, example.com/tier=gold,node.kubernetes.io/pool=x").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l["example.com/tier"], "gold");
        assert!(parse_label_list("novalue").is_err());
        assert!(parse_label_list("bad key=v").is_err());
        assert!(parse_label_list("k=-bad").is_err());
    }

    #[test]
    fn restricted_label_namespaces_are_refused_like_kubelet() {
        assert!(parse_label_list("node-role.kubernetes.io/worker=").is_err());
        assert!(parse_label_list("foo.k8s.io/x=y").is_err());
        assert!(parse_label_list("node-restriction.kubernetes.io/x=y").is_err());
        assert!(parse_label_list("topology.kubernetes.io/zone=z1").is_ok());
        assert!(parse_label_list("a.node.kubernetes.io/x=y").is_ok());
        assert!(parse_label_list("kubelet.kubernetes.io/x=y").is_ok());
    }

    #[test]
    fn taints_parse_with_and_without_values() {
        let t = parse_taint_list("dedicated=gpu:NoSchedule,maint:NoExecute").unwrap();
        assert_eq!(t[0].key, "dedicated");
        assert_eq!(t[0].value.as_deref(), Some("gpu"));
        assert_eq!(t[1].value, None);
        assert_eq!(t[1].effect, "NoExecute");
        assert!(parse_taint_list("k=v:Sometimes").is_err());
        assert!(parse_taint_list("k=v").is_err());
    }

    #[test]
    fn reserved_resources_parse() {
        let m: BTreeMap<_, _> = [("cpu", "100m"), ("memory", "1Gi")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let r = parse_reserved(&m).unwrap();
        assert_eq!(r.cpu_millis, 100);
        assert_eq!(r.memory_bytes, 1 << 30);
        let bad: BTreeMap<_, _> = [("gpu".to_string(), "1".to_string())].into_iter().collect();
        assert!(parse_reserved(&bad).is_err());
    }

    #[test]
    fn durations_parse_go_style() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "10", "s", "10x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
