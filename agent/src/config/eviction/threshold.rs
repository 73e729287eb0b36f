//! Eviction thresholds as kubelet takes them: `evictionHard` and `evictionSoft` (flags
//! `--eviction-hard` / `--eviction-soft`, `signal<value` pairs), a grace period per soft
//! threshold (`evictionSoftGracePeriod`), a minimum reclaim per signal
//! (`evictionMinimumReclaim`), how long a pressure condition outlives its cause
//! (`evictionPressureTransitionPeriod`) and the longest grace a soft eviction gives a pod
//! (`evictionMaxPodGracePeriod`). A value is a quantity or a percentage of the signal's
//! capacity; `0%` and `100%` switch a signal off, as with kubelet. Without `evictionHard`
//! kubelet's defaults apply; `mergeDefaultEvictionSettings` fills the signals a given map
//! leaves out. With node allocatable enforced on pods, every hard memory.available threshold
//! also watches allocatableMemory.available.

use std::collections::BTreeMap;
use std::time::Duration;

use thiserror::Error;

use super::signal::Signal;

/// kubelet's default `evictionHard`.
pub const DEFAULT_HARD: [(&str, &str); 5] = [
    ("memory.available", "100Mi"),
    ("nodefs.available", "10%"),
    ("nodefs.inodesFree", "5%"),
    ("imagefs.available", "15%"),
    ("imagefs.inodesFree", "5%"),
];

/// kubelet's default `evictionPressureTransitionPeriod`.
pub const DEFAULT_PRESSURE_TRANSITION: Duration = Duration::from_secs(300);

/// A threshold's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// Bytes, inodes or processes.
    Quantity(u64),
    /// A fraction of the signal's capacity, 0 to 1.
    Fraction(f64),
}

impl Amount {
    /// The amount against `capacity`.
    pub fn of(self, capacity: u64) -> u64 {
        match self {
            Amount::Quantity(q) => q,
            // Truncation is kubelet's too (int64(float64(capacity) * percentage)).
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            Amount::Fraction(f) => (capacity as f64 * f) as u64,
        }
    }
}

/// One threshold: the signal is met while what is available is below `value` (plus
/// `min_reclaim` once eviction for it began).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: Amount,
    /// Zero for a hard threshold; how long a soft one must hold before it acts.
    pub grace: Duration,
    pub min_reclaim: Option<Amount>,
    /// The text it was given as (`100Mi`, `10%`), for messages.
    pub text: String,
}

impl Threshold {
    pub fn is_hard(&self) -> bool {
        self.grace.is_zero()
    }
}

/// The eviction manager's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EvictionSettings {
    pub thresholds: Vec<Threshold>,
    pub pressure_transition_period: Duration,
    /// The longest grace a soft eviction gives; 0 leaves each pod its own.
    pub max_pod_grace_period_seconds: i64,
}

impl Default for EvictionSettings {
    fn default() -> Self {
        let hard = defaults();
        // The defaults are valid: a failure here would be a typo above, which the tests catch.
        EvictionSettings {
            thresholds: statements(&hard).unwrap_or_default(),
            pressure_transition_period: DEFAULT_PRESSURE_TRANSITION,
            max_pod_grace_period_seconds: 0,
        }
    }
}

impl EvictionSettings {
    /// What the hard threshold of `signal` holds back of `capacity` (0 without one): node
    /// allocatable is reduced by it.
    pub fn hard_amount(&self, signal: Signal, capacity: u64) -> u64 {
        self.hard(signal).map_or(0, |t| t.value.of(capacity))
    }

    /// The hard threshold of `signal`, if one is set.
    pub fn hard(&self, signal: Signal) -> Option<&Threshold> {
        self.thresholds
            .iter()
            .find(|t| t.signal == signal && t.is_hard())
    }
}

/// A setting that cannot be used; displays as kubelet's message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ThresholdError {
    #[error("unsupported eviction signal {0:?}")]
    UnknownSignal(String),
    #[error("invalid eviction threshold {signal} {value:?}: {why}")]
    Value {
        signal: String,
        value: String,
        why: String,
    },
    #[error("grace period must be specified for the soft eviction threshold {0}")]
    MissingGrace(String),
    #[error("invalid eviction minimum reclaim for {signal}: {value:?} ({why})")]
    MinReclaim {
        signal: String,
        value: String,
        why: String,
    },
}

/// What the settings are made of: each map as the flag or the config file gave it (None when
/// neither did).
#[derive(Debug, Clone, Default)]
pub struct EvictionInputs {
    pub hard: Option<BTreeMap<String, String>>,
    pub soft: Option<BTreeMap<String, String>>,
    /// Grace periods of the soft thresholds (parsed by the caller, which names the setting).
    pub soft_grace: Option<BTreeMap<String, Duration>>,
    pub min_reclaim: Option<BTreeMap<String, String>>,
    pub pressure_transition_period: Option<Duration>,
    pub max_pod_grace_period_seconds: Option<i64>,
    pub merge_defaults: bool,
    /// enforceNodeAllocatable holds `pods`.
    pub enforce_pods: bool,
}

fn defaults() -> BTreeMap<String, String> {
    DEFAULT_HARD
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// Resolves the settings, checking every value as kubelet does.
///
/// # Errors
/// An unknown signal, a value that is neither a positive quantity nor a percentage, a soft
/// threshold without its grace period, a negative grace period or minimum reclaim.
pub fn resolve(i: &EvictionInputs) -> Result<EvictionSettings, ThresholdError> {
    let hard = match &i.hard {
        None => defaults(),
        Some(given) if i.merge_defaults => {
            let mut merged = defaults();
            merged.extend(given.clone());
            merged
        }
        Some(given) => given.clone(),
    };
    let mut thresholds = statements(&hard)?;
    let graces = grace_periods(i.soft_grace.as_ref())?;
    for mut t in statements(i.soft.as_ref().unwrap_or(&BTreeMap::new()))? {
        let grace = graces
            .get(&t.signal)
            .copied()
            .filter(|g| !g.is_zero())
            .ok_or_else(|| ThresholdError::MissingGrace(t.signal.name().to_string()))?;
        t.grace = grace;
        thresholds.push(t);
    }
    let reclaims = min_reclaims(i.min_reclaim.as_ref())?;
    for t in &mut thresholds {
        t.min_reclaim = reclaims.get(&t.signal).copied();
    }
    if i.enforce_pods {
        let allocatable: Vec<Threshold> = thresholds
            .iter()
            .filter(|t| t.signal == Signal::MemoryAvailable && t.is_hard())
            .map(|t| Threshold {
                signal: Signal::AllocatableMemoryAvailable,
                ..t.clone()
            })
            .collect();
        thresholds.extend(allocatable);
    }
    Ok(EvictionSettings {
        thresholds,
        pressure_transition_period: i
            .pressure_transition_period
            .unwrap_or(DEFAULT_PRESSURE_TRANSITION),
        max_pod_grace_period_seconds: i.max_pod_grace_period_seconds.unwrap_or(0).max(0),
    })
}

fn signal(name: &str) -> Result<Signal, ThresholdError> {
    Signal::parse(name).ok_or_else(|| ThresholdError::UnknownSignal(name.to_string()))
}

/// A percentage (`10%`, `7.5%`) as a fraction, or a quantity.
fn amount(value: &str) -> Result<Option<Amount>, String> {
    let value = value.trim();
    if let Some(pct) = value.strip_suffix('%') {
        let p: f64 = pct
            .parse()
            .map_err(|_| "not a percentage".to_string())
            .and_then(|p: f64| {
                if p.is_finite() {
                    Ok(p)
                } else {
                    Err("not a percentage".to_string())
                }
            })?;
        if !(0.0..=100.0).contains(&p) {
            return Err("a percentage must be between 0% and 100%".to_string());
        }
        if p <= 0.0 || p >= 100.0 {
            // kubelet's way to switch a signal off.
            return Ok(None);
        }
        return Ok(Some(Amount::Fraction(p / 100.0)));
    }
    let q = crate::quantity::parse_units(value).map_err(|e| e.to_string())?;
    Ok(Some(Amount::Quantity(q)))
}

fn statements(map: &BTreeMap<String, String>) -> Result<Vec<Threshold>, ThresholdError> {
    let mut out = Vec::new();
    for (name, value) in map {
        let s = signal(name)?;
        let bad = |why: String| ThresholdError::Value {
            signal: name.clone(),
            value: value.clone(),
            why,
        };
        match amount(value).map_err(bad)? {
            None => {}
            Some(Amount::Quantity(0)) => {
                return Err(bad("must be positive".to_string()));
            }
            Some(a) => out.push(Threshold {
                signal: s,
                value: a,
                grace: Duration::ZERO,
                min_reclaim: None,
                text: value.trim().to_string(),
            }),
        }
    }
    Ok(out)
}

fn grace_periods(
    map: Option<&BTreeMap<String, Duration>>,
) -> Result<BTreeMap<Signal, Duration>, ThresholdError> {
    let mut out = BTreeMap::new();
    for (name, d) in map.into_iter().flatten() {
        out.insert(signal(name)?, *d);
    }
    Ok(out)
}

fn min_reclaims(
    map: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<Signal, Amount>, ThresholdError> {
    let mut out = BTreeMap::new();
    for (name, value) in map.into_iter().flatten() {
        let s = signal(name)?;
        let a = amount(value).map_err(|why| ThresholdError::MinReclaim {
            signal: name.clone(),
            value: value.clone(),
            why,
        })?;
        if let Some(a) = a {
            out.insert(s, a);
        }
    }
    Ok(out)
}

/// A flag's `k<v,k<v` (or `k=v,k=v`) pairs; an empty flag is an empty map.
///
/// # Errors
/// A pair without the separator, or a key given twice.
pub fn parse_pairs(text: &str, separator: char) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once(separator) else {
            return Err(format!(
                "{pair:?} is not of the form signal{separator}value"
            ));
        };
        if out
            .insert(k.trim().to_string(), v.trim().to_string())
            .is_some()
        {
            return Err(format!("{k:?} is given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn kubelets_defaults_without_a_hard_map() {
        let s = resolve(&EvictionInputs::default()).unwrap();
        assert_eq!(s, EvictionSettings::default());
        let names: Vec<&str> = s.thresholds.iter().map(|t| t.signal.name()).collect();
        assert_eq!(
            names,
            [
                "imagefs.available",
                "imagefs.inodesFree",
                "memory.available",
                "nodefs.available",
                "nodefs.inodesFree"
            ]
        );
        let memory = s.hard(Signal::MemoryAvailable).unwrap();
        assert_eq!(memory.value, Amount::Quantity(100 << 20));
        assert_eq!(
            s.hard(Signal::NodefsAvailable).unwrap().value,
            Amount::Fraction(0.1)
        );
        assert_eq!(s.pressure_transition_period, Duration::from_secs(300));
    }

    #[test]
    fn a_given_hard_map_replaces_the_defaults_unless_merged() {
        let given = map(&[("memory.available", "1Gi")]);
        let only = resolve(&EvictionInputs {
            hard: Some(given.clone()),
            ..EvictionInputs::default()
        })
        .unwrap();
        assert_eq!(only.thresholds.len(), 1);
        let merged = resolve(&EvictionInputs {
            hard: Some(given),
            merge_defaults: true,
            ..EvictionInputs::default()
        })
        .unwrap();
        assert_eq!(merged.thresholds.len(), 5);
        assert_eq!(
            merged.hard(Signal::MemoryAvailable).unwrap().value,
            Amount::Quantity(1 << 30)
        );
    }

    #[test]
    fn zero_and_hundred_percent_switch_a_signal_off() {
        let s = resolve(&EvictionInputs {
            hard: Some(map(&[
                ("nodefs.available", "0%"),
                ("imagefs.available", "100%"),
            ])),
            ..EvictionInputs::default()
        })
        .unwrap();
        assert!(s.thresholds.is_empty());
    }

    #[test]
    fn soft_thresholds_need_their_grace_period() {
        let soft = Some(map(&[("memory.available", "500Mi")]));
        let err = resolve(&EvictionInputs {
            soft: soft.clone(),
            ..EvictionInputs::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "grace period must be specified for the soft eviction threshold memory.available"
        );
        let s = resolve(&EvictionInputs {
            hard: Some(BTreeMap::new()),
            soft,
            soft_grace: Some(BTreeMap::from([(
                "memory.available".to_string(),
                Duration::from_secs(90),
            )])),
            min_reclaim: Some(map(&[("memory.available", "200Mi")])),
            ..EvictionInputs::default()
        })
        .unwrap();
        let t = &s.thresholds[0];
        assert!(!t.is_hard());
        assert_eq!(t.grace, Duration::from_secs(90));
        assert_eq!(t.min_reclaim, Some(Amount::Quantity(200 << 20)));
    }

    #[test]
    fn bad_values_are_refused_with_kubelets_words() {
        for (signal, value) in [
            ("memory.available", "-1Mi"),
            ("memory.available", "0"),
            ("nodefs.available", "120%"),
            ("nodefs.available", "x%"),
            ("nodefs.available", "NaN%"),
        ] {
            let r = resolve(&EvictionInputs {
                hard: Some(map(&[(signal, value)])),
                ..EvictionInputs::default()
            });
            assert!(
                matches!(r, Err(ThresholdError::Value { .. })),
                "{signal}={value}: {r:?}"
            );
        }
        let r = resolve(&EvictionInputs {
            hard: Some(map(&[("memory.free", "1Mi")])),
            ..EvictionInputs::default()
        });
        assert_eq!(
            r.unwrap_err().to_string(),
            "unsupported eviction signal \"memory.free\""
        );
    }

    #[test]
    fn enforced_allocatable_watches_the_pods_memory_too() {
        let s = resolve(&EvictionInputs {
            enforce_pods: true,
            ..EvictionInputs::default()
        })
        .unwrap();
        let a = s.hard(Signal::AllocatableMemoryAvailable).unwrap();
        assert_eq!(a.value, Amount::Quantity(100 << 20));
    }

    #[test]
    fn flag_pairs_split_on_their_separator() {
        assert_eq!(
            parse_pairs("memory.available<100Mi, nodefs.available<10%", '<').unwrap(),
            map(&[("memory.available", "100Mi"), ("nodefs.available", "10%")])
        );
        assert_eq!(parse_pairs("", '<').unwrap(), BTreeMap::new());
        assert!(parse_pairs("memory.available=1m", '<').is_err());
        assert!(parse_pairs("a<1,a<2", '<').is_err());
    }

    #[test]
    fn fractions_apply_to_the_capacity() {
        assert_eq!(Amount::Fraction(0.1).of(1000), 100);
        assert_eq!(Amount::Quantity(7).of(1000), 7);
    }
}
