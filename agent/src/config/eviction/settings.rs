//! The eviction settings from the flags over the config file: a flag's map replaces the file's
//! whole (kubelet's precedence for map flags); durations are parsed here, so that an error
//! names the flag or the field.

use std::collections::BTreeMap;
use std::time::Duration;

use super::threshold::{EvictionInputs, EvictionSettings, ThresholdError, parse_pairs, resolve};
use crate::config::{ConfigError, FileConfig, Flags, duration, invalid};

/// A map setting: the flag's pairs (`separator` between signal and value) over the file's map.
fn map(
    flag: Option<&str>,
    file: Option<&BTreeMap<String, String>>,
    separator: char,
    setting: &'static str,
) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
    match flag {
        Some(text) => parse_pairs(text, separator)
            .map(Some)
            .map_err(invalid(setting)),
        None => Ok(file.cloned()),
    }
}

fn graces(
    map: Option<BTreeMap<String, String>>,
    setting: &'static str,
) -> Result<Option<BTreeMap<String, Duration>>, ConfigError> {
    let Some(map) = map else { return Ok(None) };
    let mut out = BTreeMap::new();
    for (signal, text) in map {
        let d = duration::parse(&text)
            .map_err(|e| invalid(setting)(format!("{signal}: {text:?} is not a duration ({e})")))?;
        out.insert(signal, d);
    }
    Ok(Some(out))
}

/// Resolves `--eviction-*` over the file's eviction fields; `enforce_pods` when node
/// allocatable is enforced on pods.
///
/// # Errors
/// A value kubelet would refuse, named by its flag (or `evictionHard` and kin for the file).
pub fn from_flags_and_file(
    flags: &Flags,
    file: &FileConfig,
    enforce_pods: bool,
) -> Result<EvictionSettings, ConfigError> {
    let (hard_name, soft_name, grace_name, reclaim_name) = if flags.eviction_hard.is_some()
        || flags.eviction_soft.is_some()
        || flags.eviction_soft_grace_period.is_some()
        || flags.eviction_minimum_reclaim.is_some()
    {
        (
            "--eviction-hard",
            "--eviction-soft",
            "--eviction-soft-grace-period",
            "--eviction-minimum-reclaim",
        )
    } else {
        (
            "evictionHard",
            "evictionSoft",
            "evictionSoftGracePeriod",
            "evictionMinimumReclaim",
        )
    };
    let transition = flags
        .eviction_pressure_transition_period
        .as_deref()
        .or(file.eviction_pressure_transition_period.as_deref())
        .map(|t| {
            duration::parse(t).map_err(|e| {
                invalid("--eviction-pressure-transition-period")(format!(
                    "{t:?} is not a duration ({e})"
                ))
            })
        })
        .transpose()?;
    let max_grace = flags
        .eviction_max_pod_grace_period
        .or(file.eviction_max_pod_grace_period);
    let inputs = EvictionInputs {
        hard: map(
            flags.eviction_hard.as_deref(),
            file.eviction_hard.as_ref(),
            '<',
            hard_name,
        )?,
        soft: map(
            flags.eviction_soft.as_deref(),
            file.eviction_soft.as_ref(),
            '<',
            soft_name,
        )?,
        soft_grace: graces(
            map(
                flags.eviction_soft_grace_period.as_deref(),
                file.eviction_soft_grace_period.as_ref(),
                '=',
                grace_name,
            )?,
            grace_name,
        )?,
        min_reclaim: map(
            flags.eviction_minimum_reclaim.as_deref(),
            file.eviction_minimum_reclaim.as_ref(),
            '=',
            reclaim_name,
        )?,
        pressure_transition_period: transition,
        max_pod_grace_period_seconds: max_grace,
        merge_defaults: file.merge_default_eviction_settings.unwrap_or(false),
        enforce_pods,
    };
    resolve(&inputs).map_err(|e| {
        let setting = match e {
            ThresholdError::MissingGrace(_) => grace_name,
            ThresholdError::MinReclaim { .. } => reclaim_name,
            ThresholdError::UnknownSignal(_) | ThresholdError::Value { .. } => hard_name,
        };
        invalid(setting)(e.to_string())
    })
}
