//! Graceful node shutdown settings, kubelet's (KubeletConfiguration only; kubelet has no flags
//! for them): `shutdownGracePeriod` with `shutdownGracePeriodCriticalPods`, or
//! `shutdownGracePeriodByPodPriority`. Either way they become priority bands, lowest first:
//! the first form is kubelet's migration, two bands (priority 0 gets the period minus the
//! critical pods' share, SystemCriticalPriority gets that share). No band: shutdown handling is
//! off, as kubelet's default.

use std::time::Duration;

use super::{ConfigError, FileConfig, duration};

/// kubelet's `scheduling.SystemCriticalPriority`: system-cluster-critical and above.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// One band: pods with a priority from `priority` up to the next band's get `grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityGrace {
    pub priority: i32,
    pub grace: Duration,
}

/// The bands, sorted by priority from low to high; empty when shutdown handling is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownSettings {
    pub bands: Vec<PriorityGrace>,
}

impl ShutdownSettings {
    pub fn enabled(&self) -> bool {
        !self.bands.is_empty()
    }

    /// The whole delay asked of logind: the sum of the bands (each is bounded, see
    /// [`from_file`], so this cannot overflow).
    pub fn period_requested(&self) -> Duration {
        self.bands.iter().map(|b| b.grace).sum()
    }
}

/// The longest band accepted: a day. logind's InhibitDelayMaxSec is meant for seconds to
/// minutes; the bound keeps every sum and deadline far from overflow.
const MAX_BAND: Duration = Duration::from_secs(24 * 60 * 60);

fn bad(path: &str, message: String) -> ConfigError {
    ConfigError::Kubelet {
        path: path.to_string(),
        message,
    }
}

/// Go's `%v` of a duration for whole seconds and milliseconds ("30s", "1m0s", "500ms").
fn go_text(d: Duration) -> String {
    let s = d.as_secs();
    let ms = d.subsec_millis();
    match (s / 60, s % 60) {
        (0, 0) if ms > 0 => format!("{ms}ms"),
        (0, sec) => format!("{sec}s"),
        (m, sec) if m < 60 => format!("{m}m{sec}s"),
        (m, sec) => format!("{}h{}m{sec}s", m / 60, m % 60),
    }
}

fn period(path: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    let Some(t) = text else {
        return Ok(Duration::ZERO);
    };
    let d = duration::parse(t).map_err(|e| bad(path, format!("{t:?} is not a duration ({e})")))?;
    if d > Duration::ZERO && d < Duration::from_secs(1) {
        return Err(bad(
            path,
            format!("{} must be either zero or otherwise >= 1 sec", go_text(d)),
        ));
    }
    if d > MAX_BAND {
        return Err(bad(path, format!("{} must be at most 24h", go_text(d))));
    }
    Ok(d)
}

/// The bands from the file's fields, checked as kubelet's validation checks them.
///
/// # Errors
/// A period that does not parse, between 0 and 1 s, or above a day; the critical pods' period
/// above the whole; both forms at once; a negative or over-a-day band.
pub fn from_file(file: &FileConfig) -> Result<ShutdownSettings, ConfigError> {
    let whole = period("shutdownGracePeriod", file.shutdown_grace_period.as_deref())?;
    let critical = period(
        "shutdownGracePeriodCriticalPods",
        file.shutdown_grace_period_critical_pods.as_deref(),
    )?;
    if critical > whole {
        return Err(bad(
            "shutdownGracePeriodCriticalPods",
            format!(
                "{} must be <= shutdownGracePeriod {}",
                go_text(critical),
                go_text(whole)
            ),
        ));
    }
    let by_priority = file
        .shutdown_grace_period_by_pod_priority
        .as_deref()
        .unwrap_or_default();
    if !by_priority.is_empty() && (whole > Duration::ZERO || critical > Duration::ZERO) {
        return Err(bad(
            "shutdownGracePeriodByPodPriority",
            "Cannot specify both shutdownGracePeriodByPodPriority and shutdownGracePeriod at the same time".into(),
        ));
    }
    let mut bands = Vec::with_capacity(by_priority.len().max(2));
    for (i, &(priority, seconds)) in by_priority.iter().enumerate() {
        let grace = u64::try_from(seconds)
            .ok()
            .map(Duration::from_secs)
            .filter(|g| *g <= MAX_BAND)
            .ok_or_else(|| {
                bad(
                    &format!("shutdownGracePeriodByPodPriority[{i}].shutdownGracePeriodSeconds"),
                    format!("{seconds} must be between 0 and 86400"),
                )
            })?;
        bands.push(PriorityGrace { priority, grace });
    }
    if bands.is_empty() && whole > Duration::ZERO {
        // kubelet's migrateConfig: the whole period split into two bands of whole seconds
        // (the remainder's fraction dropped, so logind's whole-second delay covers them).
        let default = whole.saturating_sub(critical);
        bands.push(PriorityGrace {
            priority: 0,
            grace: Duration::from_secs(default.as_secs()),
        });
        bands.push(PriorityGrace {
            priority: SYSTEM_CRITICAL_PRIORITY,
            grace: Duration::from_secs(whole.saturating_sub(default).as_secs()),
        });
    }
    bands.sort_by_key(|b| b.priority);
    Ok(ShutdownSettings { bands })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(
        whole: Option<&str>,
        critical: Option<&str>,
        by: Option<Vec<(i32, i64)>>,
    ) -> FileConfig {
        FileConfig {
            shutdown_grace_period: whole.map(str::to_string),
            shutdown_grace_period_critical_pods: critical.map(str::to_string),
            shutdown_grace_period_by_pod_priority: by,
            ..FileConfig::default()
        }
    }

    fn err(f: &FileConfig) -> String {
        from_file(f).unwrap_err().to_string()
    }

    #[test]
    fn off_unless_a_period_is_given() {
        let s = from_file(&FileConfig::default()).unwrap();
        assert!(!s.enabled());
        assert!(!from_file(&file(Some("0s"), None, None)).unwrap().enabled());
    }

    #[test]
    fn the_two_periods_become_kubelets_two_bands() {
        let s = from_file(&file(Some("30s"), Some("10s"), None)).unwrap();
        assert_eq!(
            s.bands,
            [
                PriorityGrace {
                    priority: 0,
                    grace: Duration::from_secs(20)
                },
                PriorityGrace {
                    priority: SYSTEM_CRITICAL_PRIORITY,
                    grace: Duration::from_secs(10)
                },
            ]
        );
        assert_eq!(s.period_requested(), Duration::from_secs(30));
    }

    #[test]
    fn fractions_of_a_second_are_dropped_as_kubelet_drops_them() {
        let s = from_file(&file(Some("10.4s"), Some("2.7s"), None)).unwrap();
        let secs: Vec<u64> = s.bands.iter().map(|b| b.grace.as_secs()).collect();
        assert_eq!(secs, [7, 2]);
        assert!(s.bands.iter().all(|b| b.grace.subsec_nanos() == 0));
    }

    #[test]
    fn bands_by_priority_are_sorted_low_to_high() {
        let s = from_file(&file(
            None,
            None,
            Some(vec![(100_000, 5), (0, 20), (10, 7)]),
        ))
        .unwrap();
        let order: Vec<i32> = s.bands.iter().map(|b| b.priority).collect();
        assert_eq!(order, [0, 10, 100_000]);
        assert_eq!(s.period_requested(), Duration::from_secs(32));
    }

    #[test]
    fn kubelets_validation_messages() {
        assert_eq!(
            err(&file(Some("10s"), Some("20s"), None)),
            "invalid KubeletConfiguration: shutdownGracePeriodCriticalPods: 20s must be <= shutdownGracePeriod 10s"
        );
        assert_eq!(
            err(&file(Some("500ms"), None, None)),
            "invalid KubeletConfiguration: shutdownGracePeriod: 500ms must be either zero or otherwise >= 1 sec"
        );
        assert!(err(&file(Some("10s"), None, Some(vec![(0, 5)]))).contains(
            "Cannot specify both shutdownGracePeriodByPodPriority and shutdownGracePeriod"
        ));
        assert!(err(&file(Some("1d"), None, None)).contains("is not a duration"));
    }

    #[test]
    fn numbers_that_would_reach_a_clock_are_bounded() {
        assert!(
            err(&file(None, None, Some(vec![(0, -1)])))
                .contains("shutdownGracePeriodByPodPriority[0].shutdownGracePeriodSeconds: -1")
        );
        assert!(err(&file(None, None, Some(vec![(0, i64::MAX)]))).contains("between 0 and 86400"));
        assert!(err(&file(Some("25h"), None, None)).contains("at most 24h"));
        // Many bands at the bound still sum without overflow.
        let many = vec![(0, 86_400); 1000];
        let s = from_file(&file(None, None, Some(many))).unwrap();
        assert_eq!(s.period_requested(), Duration::from_secs(86_400_000));
    }

    #[test]
    fn go_text_is_gos() {
        assert_eq!(go_text(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_text(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_text(Duration::from_millis(250)), "250ms");
    }
}
