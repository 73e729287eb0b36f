//! Which thresholds hold, as kubelet's eviction manager decides it on every pass, kept pure so
//! the clock is the caller's:
//!
//! 1. a threshold is met while what is available is below its value; one that led to an
//!    eviction stays met until its minimum reclaim is freed as well;
//! 2. each met threshold remembers when it was first seen; a soft one acts only once it has
//!    held for its grace period, a hard one at once;
//! 3. the node conditions of the met thresholds (grace or not) are reported, and each stays
//!    reported for the pressure transition period after it was last seen, so that a condition
//!    does not flap with every reading;
//! 4. of the thresholds that act, memory comes first: that is the one to reclaim.

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::observation::Observations;
use crate::config::eviction::{Condition, EvictionSettings, Signal, Threshold};

/// The manager's memory between passes; thresholds are named by their index in the settings.
#[derive(Debug, Default)]
pub struct Tracker {
    first_seen: BTreeMap<usize, Instant>,
    condition_seen: BTreeMap<Condition, Instant>,
    /// Thresholds that acted on the last pass (their minimum reclaim is still owed).
    acting: BTreeSet<usize>,
}

/// The outcome of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The node conditions to report.
    pub conditions: BTreeSet<Condition>,
    /// The thresholds that act (grace periods over), memory first.
    pub acting: Vec<Threshold>,
}

impl Verdict {
    /// The threshold to reclaim for, if any.
    pub fn to_reclaim(&self) -> Option<&Threshold> {
        self.acting.first()
    }
}

/// True when `t` holds for `obs` (with its minimum reclaim on top when `reclaiming`). A signal
/// that could not be observed holds no threshold.
pub fn holds(t: &Threshold, obs: &Observations, reclaiming: bool) -> bool {
    let Some(o) = obs.get(&t.signal) else {
        return false;
    };
    let mut wanted = t.value.of(o.capacity);
    if reclaiming && let Some(r) = t.min_reclaim {
        wanted = wanted.saturating_add(r.of(o.capacity));
    }
    o.available < wanted
}

impl Tracker {
    /// One pass over `obs` at `now`.
    pub fn pass(&mut self, s: &EvictionSettings, obs: &Observations, now: Instant) -> Verdict {
        let met: BTreeSet<usize> = s
            .thresholds
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                holds(t, obs, false) || (self.acting.contains(i) && holds(t, obs, true))
            })
            .map(|(i, _)| i)
            .collect();
        self.first_seen.retain(|i, _| met.contains(i));
        for i in &met {
            self.first_seen.entry(*i).or_insert(now);
        }
        for i in &met {
            self.condition_seen
                .insert(s.thresholds[*i].signal.condition(), now);
        }
        let period = s.pressure_transition_period;
        self.condition_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < period || *seen == now);
        let conditions = self.condition_seen.keys().copied().collect();
        self.acting = met
            .iter()
            .copied()
            .filter(|i| {
                let since = self.first_seen.get(i).copied().unwrap_or(now);
                now.saturating_duration_since(since) >= s.thresholds[*i].grace
            })
            .collect();
        let mut acting: Vec<Threshold> = self
            .acting
            .iter()
            .map(|i| s.thresholds[*i].clone())
            .collect();
        acting.sort_by_key(|t| !is_memory(t.signal));
        Verdict { conditions, acting }
    }
}

fn is_memory(s: Signal) -> bool {
    s.condition() == Condition::Memory
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::eviction::{EvictionInputs, resolve};
    use crate::eviction::observation::Observation;

    fn settings(hard: &[(&str, &str)], soft: &[(&str, &str, &str)]) -> EvictionSettings {
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let soft_values: Vec<(&str, &str)> = soft.iter().map(|(k, v, _)| (*k, *v)).collect();
        let graces: BTreeMap<String, Duration> = soft
            .iter()
            .map(|(k, _, g)| ((*k).to_string(), crate::config::duration::parse(g).unwrap()))
            .collect();
        resolve(&EvictionInputs {
            hard: Some(m(hard)),
            soft: Some(m(&soft_values)),
            soft_grace: Some(graces),
            min_reclaim: Some(m(&[("memory.available", "50")])),
            pressure_transition_period: Some(Duration::from_secs(30)),
            ..EvictionInputs::default()
        })
        .unwrap()
    }

    fn memory(available: u64) -> Observations {
        Observations::from([(
            Signal::MemoryAvailable,
            Observation {
                available,
                capacity: 1000,
            },
        )])
    }

    #[tokio::test(start_paused = true)]
    async fn a_hard_threshold_acts_at_once_and_stays_until_its_reclaim_is_freed() {
        let s = settings(&[("memory.available", "100")], &[]);
        let mut t = Tracker::default();
        let now = Instant::now();
        assert_eq!(t.pass(&s, &memory(500), now).conditions.len(), 0);
        let v = t.pass(&s, &memory(90), now);
        assert_eq!(v.conditions, BTreeSet::from([Condition::Memory]));
        assert_eq!(v.to_reclaim().unwrap().signal, Signal::MemoryAvailable);
        // 120 is above the threshold but not above threshold + minimum reclaim (150).
        assert!(t.pass(&s, &memory(120), now).to_reclaim().is_some());
        assert!(t.pass(&s, &memory(160), now).to_reclaim().is_none());
        assert!(
            t.pass(&s, &memory(120), now).to_reclaim().is_none(),
            "the reclaim is owed only while the threshold acts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_soft_threshold_waits_for_its_grace_period_but_raises_the_condition_at_once() {
        let s = settings(&[], &[("memory.available", "300", "1m")]);
        let mut t = Tracker::default();
        let start = Instant::now();
        let v = t.pass(&s, &memory(200), start);
        assert_eq!(v.conditions, BTreeSet::from([Condition::Memory]));
        assert!(v.to_reclaim().is_none());
        let v = t.pass(&s, &memory(200), start + Duration::from_secs(59));
        assert!(v.to_reclaim().is_none());
        let v = t.pass(&s, &memory(200), start + Duration::from_secs(60));
        assert!(!v.to_reclaim().unwrap().is_hard());
        // Recovery resets the clock.
        t.pass(&s, &memory(900), start + Duration::from_secs(61));
        let v = t.pass(&s, &memory(200), start + Duration::from_secs(62));
        assert!(v.to_reclaim().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_condition_outlives_its_cause_for_the_transition_period() {
        let s = settings(&[("memory.available", "100")], &[]);
        let mut t = Tracker::default();
        let start = Instant::now();
        t.pass(&s, &memory(10), start);
        let later = |secs| start + Duration::from_secs(secs);
        assert_eq!(t.pass(&s, &memory(900), later(29)).conditions.len(), 1);
        assert!(t.pass(&s, &memory(900), later(29)).to_reclaim().is_none());
        assert_eq!(t.pass(&s, &memory(900), later(30)).conditions.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_reclaimed_before_disk_and_unread_signals_hold_nothing() {
        let s = settings(
            &[("memory.available", "100"), ("nodefs.available", "50%")],
            &[],
        );
        let mut obs = memory(10);
        obs.insert(
            Signal::NodefsAvailable,
            Observation {
                available: 1,
                capacity: 100,
            },
        );
        let mut t = Tracker::default();
        let v = t.pass(&s, &obs, Instant::now());
        assert_eq!(
            v.conditions,
            BTreeSet::from([Condition::Memory, Condition::Disk])
        );
        assert_eq!(v.to_reclaim().unwrap().signal, Signal::MemoryAvailable);
        let v = t.pass(&s, &Observations::new(), Instant::now());
        assert!(v.acting.is_empty());
    }
}
