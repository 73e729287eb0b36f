//! usageNanoCores from two samples of a cumulative cpu counter, as kubelet's CRI stats provider
//! computes it when the runtime does not: one previous sample per object (node, pod sandbox,
//! container), a rate only over at least [`MIN_WINDOW_NANOS`] so back-to-back scrapes do not
//! give noise, and the last rate repeated in between.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

/// The shortest window a new rate is computed over.
pub const MIN_WINDOW_NANOS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    usage: u64,
    rate: Option<u64>,
}

/// The previous sample (and last rate) per object key.
#[derive(Debug, Default)]
pub struct RateTracker {
    entries: HashMap<String, Entry>,
}

impl RateTracker {
    /// Records `usage` core-nanoseconds at `at` (ns since the epoch) for `key` and returns the
    /// rate in nanocores, once there is a previous sample far enough back. A counter that went
    /// backwards (a new container under an old key) starts over.
    pub fn update(&mut self, key: &str, at: i64, usage: u64) -> Option<u64> {
        let Some(prev) = self.entries.get(key).copied() else {
            self.entries.insert(
                key.to_string(),
                Entry {
                    at,
                    usage,
                    rate: None,
                },
            );
            return None;
        };
        if usage < prev.usage {
            self.entries.insert(
                key.to_string(),
                Entry {
                    at,
                    usage,
                    rate: None,
                },
            );
            return None;
        }
        let window = at - prev.at;
        if window < MIN_WINDOW_NANOS {
            return prev.rate;
        }
        let delta = u128::from(usage - prev.usage);
        let rate = u64::try_from(delta * 1_000_000_000 / u128::from(window.unsigned_abs()))
            .unwrap_or(u64::MAX);
        self.entries.insert(
            key.to_string(),
            Entry {
                at,
                usage,
                rate: Some(rate),
            },
        );
        Some(rate)
    }

    /// Forgets every key not in `live` (objects that are gone).
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.entries.retain(|k, _| live.contains(k));
    }
}

/// The process-wide tracker the endpoints share.
pub fn global() -> &'static Mutex<RateTracker> {
    static TRACKER: OnceLock<Mutex<RateTracker>> = OnceLock::new();
    TRACKER.get_or_init(Mutex::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn first_sample_has_no_rate_then_rate_is_delta_over_time() {
        let mut t = RateTracker::default();
        assert_eq!(t.update("c", 10 * S, 1_000), None);
        // 0.5 s of cpu in 2 s = 250 millicores
        assert_eq!(
            t.update("c", 12 * S, 1_000 + 500_000_000),
            Some(250_000_000)
        );
    }

    #[test]
    fn short_windows_repeat_the_last_rate() {
        let mut t = RateTracker::default();
        t.update("c", 0, 0);
        assert_eq!(t.update("c", S / 10, 50), None);
        assert_eq!(t.update("c", 2 * S, 2 * S as u64), Some(1_000_000_000));
        assert_eq!(
            t.update("c", 2 * S + 5, 2 * S as u64 + 5),
            Some(1_000_000_000)
        );
        // the sample kept is the 2 s one: 1 s more of cpu over 4 s
        assert_eq!(t.update("c", 6 * S, 3 * S as u64), Some(250_000_000));
    }

    #[test]
    fn counter_going_back_starts_over_and_gone_keys_are_forgotten() {
        let mut t = RateTracker::default();
        t.update("c", 0, 5 * S as u64);
        assert_eq!(t.update("c", 2 * S, 1), None);
        assert_eq!(t.update("c", 4 * S, 1 + S as u64 / 2), Some(250_000_000));
        t.update("gone", 0, 0);
        t.retain(&HashSet::from(["c".to_string()]));
        assert_eq!(t.update("gone", 10 * S, 10), None);
    }
}
