//! One exponential backoff for every "wait longer after each failure" in the agent, with the
//! semantics of client-go's `flowcontrol.Backoff` (kubelet's crash loops and image pulls):
//!
//! - Each key has an entry {backoff, last update}. [`KeyedBackoff::next`] records a failure: a
//!   new key starts at `initial`, a known key doubles, up to `max`.
//! - A key quiet for longer than `reset_after` (kubelet: 2 x `max`) is forgotten: its next
//!   failure starts at `initial` again, and it is no longer in backoff.
//! - [`KeyedBackoff::remaining_since`] is kubelet's `IsInBackOffSince` (the wait runs from an
//!   event, such as a container's finish); [`KeyedBackoff::remaining_since_update`] is
//!   `IsInBackOffSinceUpdate` (the wait runs from the last failure). Both return the time left.
//! - Time is an argument, never read here: the caller passes `now` from the clock it uses (the
//!   wall clock for runtime timestamps, `Instant` for monotonic waits, tokio's for paused tests).
//!   No caller asks for jitter, so there is none.
//!
//! [`RetryBackoff`] is the single-key use: retrying one peer until it answers.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, SystemTime};

/// A point in time that the backoff can measure from.
pub trait Moment: Copy {
    /// Time from `earlier` to `self`; zero when `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for std::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Moment for tokio::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Moment for SystemTime {
    fn since(self, earlier: Self) -> Duration {
        self.duration_since(earlier).unwrap_or_default()
    }
}

/// What is left of `backoff` after `waited`; None when nothing is.
fn left(backoff: Duration, waited: Duration) -> Option<Duration> {
    backoff.checked_sub(waited).filter(|d| !d.is_zero())
}

#[derive(Debug, Clone)]
struct Entry<T> {
    backoff: Duration,
    last_update: T,
}

/// Per-key doubling delays from `initial` to `max` (client-go's `flowcontrol.Backoff`).
#[derive(Debug, Clone)]
pub struct KeyedBackoff<K, T> {
    initial: Duration,
    max: Duration,
    /// An entry not updated for longer than this is forgotten; None: never.
    reset_after: Option<Duration>,
    entries: HashMap<K, Entry<T>>,
}

impl<K: Eq + Hash, T: Moment> KeyedBackoff<K, T> {
    /// Delays from `initial` doubling to `max`, forgotten after 2 x `max` without a failure.
    pub fn new(initial: Duration, max: Duration) -> Self {
        KeyedBackoff {
            initial,
            max,
            reset_after: Some(max.saturating_mul(2)),
            entries: HashMap::new(),
        }
    }

    /// The same, but an entry is kept until [`reset`](Self::reset): for retry loops, where only
    /// a success ends the backoff (client-go's `HasExpiredFunc` set to "never").
    #[must_use]
    pub fn never_forgotten(mut self) -> Self {
        self.reset_after = None;
        self
    }

    fn expired(&self, entry: &Entry<T>, at: T) -> bool {
        self.reset_after
            .is_some_and(|quiet| at.since(entry.last_update) > quiet)
    }

    /// Records a failure of `key` at `now` and returns its new backoff: `initial` for a new or
    /// forgotten key, else twice the last one, up to `max` (kubelet's `Next`).
    pub fn next(&mut self, key: K, now: T) -> Duration {
        let backoff = match self.entries.get(&key) {
            Some(e) if !self.expired(e, now) => e.backoff.saturating_mul(2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key,
            Entry {
                backoff,
                last_update: now,
            },
        );
        backoff
    }

    /// The current backoff of `key`; None when it has none (kubelet's `Get`).
    pub fn get<Q>(&self, key: &Q) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// Time left at `now` of the backoff of `key` counted from `event_time`; None when `key`
    /// may be tried again (kubelet's `IsInBackOffSince`: not in backoff when the event came
    /// more than `reset_after` after the last failure).
    pub fn remaining_since<Q>(&self, key: &Q, event_time: T, now: T) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entry = self.entries.get(key)?;
        if self.expired(entry, event_time) {
            return None;
        }
        left(entry.backoff, now.since(event_time))
    }

    /// Time left at `now` of the backoff of `key` counted from its last failure; None when it
    /// may be tried again (kubelet's `IsInBackOffSinceUpdate`).
    pub fn remaining_since_update<Q>(&self, key: &Q, now: T) -> Option<Duration>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entry = self.entries.get(key)?;
        if self.expired(entry, now) {
            return None;
        }
        left(entry.backoff, now.since(entry.last_update))
    }

    /// Forgets `key` (a success; kubelet's `Reset`).
    pub fn reset<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.remove(key);
    }

    /// Keeps only the keys for which `keep` is true (the pod or the socket is gone).
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }

    /// Drops the entries quiet for longer than `reset_after` at `now` (kubelet's `GC`).
    pub fn gc(&mut self, now: T) {
        let Some(quiet) = self.reset_after else {
            return;
        };
        self.entries
            .retain(|_, e| now.since(e.last_update) <= quiet);
    }

    /// How many keys have an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Retrying one peer: each failure waits twice as long as the one before, up to a cap, and a
/// success starts over. The single-key use of [`KeyedBackoff`].
#[derive(Debug, Clone)]
pub struct RetryBackoff {
    inner: KeyedBackoff<(), tokio::time::Instant>,
}

impl RetryBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        RetryBackoff {
            inner: KeyedBackoff::new(initial, max).never_forgotten(),
        }
    }

    /// The delay to wait after a failure now; the following one is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        self.inner.next((), tokio::time::Instant::now())
    }

    /// Back to the initial delay after a success.
    pub fn reset(&mut self) {
        self.inner.reset(&());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// Seconds after an arbitrary origin, on the wall clock.
    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + s(1_000_000 + secs)
    }

    /// kubelet's crash-loop and image-pull numbers.
    fn kubelet() -> KeyedBackoff<&'static str, SystemTime> {
        KeyedBackoff::new(s(10), s(300))
    }

    #[test]
    fn failures_wait_10s_doubling_to_5_minutes() {
        let mut b = kubelet();
        assert_eq!(b.get("c"), None, "no failure, no backoff");
        assert_eq!(b.remaining_since_update("c", t(0)), None);
        let got: Vec<u64> = (0..8).map(|i| b.next("c", t(i)).as_secs()).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.get("c"), Some(s(300)));
    }

    #[test]
    fn keys_back_off_independently() {
        let mut b = kubelet();
        b.next("a", t(0));
        b.next("a", t(1));
        b.next("b", t(1));
        assert_eq!((b.get("a"), b.get("b")), (Some(s(20)), Some(s(10))));
        b.reset("a");
        assert_eq!((b.get("a"), b.get("b")), (None, Some(s(10))));
        assert_eq!(b.next("a", t(2)), s(10), "a success starts over");
    }

    #[test]
    fn the_wait_runs_from_the_event_or_from_the_last_failure() {
        let mut b = kubelet();
        b.next("c", t(100));
        // From an event (a container that finished at t=101): 10 s from then.
        assert_eq!(b.remaining_since("c", t(101), t(101)), Some(s(10)));
        assert_eq!(b.remaining_since("c", t(101), t(106)), Some(s(5)));
        assert_eq!(b.remaining_since("c", t(101), t(111)), None);
        // From the failure itself (an image pull at t=100).
        assert_eq!(b.remaining_since_update("c", t(100)), Some(s(10)));
        assert_eq!(b.remaining_since_update("c", t(109)), Some(s(1)));
        assert_eq!(b.remaining_since_update("c", t(110)), None);
    }

    #[test]
    fn ten_quiet_minutes_forget_the_backoff() {
        let mut b = kubelet();
        b.next("c", t(0));
        assert_eq!(b.next("c", t(20)), s(20));
        // 600 s after the last failure it still counts, 601 s after it is forgotten.
        assert_eq!(b.next("c", t(620)), s(40));
        assert_eq!(b.remaining_since("c", t(1221), t(1221)), None);
        assert_eq!(b.remaining_since_update("c", t(1221)), None);
        assert_eq!(b.next("c", t(1221)), s(10));
    }

    #[test]
    fn gc_drops_only_quiet_entries() {
        let mut b = kubelet();
        b.next("old", t(0));
        b.next("new", t(500));
        b.gc(t(600));
        assert_eq!(b.len(), 2);
        b.gc(t(601));
        assert_eq!((b.get("old"), b.get("new")), (None, Some(s(10))));
        b.retain(|k| *k != "new");
        assert!(b.is_empty());
    }

    #[test]
    fn a_never_forgotten_backoff_keeps_its_cap() {
        let mut b: KeyedBackoff<(), SystemTime> = KeyedBackoff::new(s(2), s(30)).never_forgotten();
        let got: Vec<u64> = (0..6).map(|i| b.next((), t(i * 1000)).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 16, 30, 30]);
        b.gc(t(1_000_000));
        assert_eq!(b.get(&()), Some(s(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_double_to_the_cap_and_reset() {
        let mut b = RetryBackoff::new(Duration::from_millis(200), s(1));
        let mut got = Vec::new();
        for _ in 0..5 {
            let d = b.next_delay();
            got.push(d.as_millis());
            // Long quiet periods do not reset a retry loop; only a success does.
            tokio::time::sleep(d + s(3600)).await;
        }
        assert_eq!(got, [200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(200));
    }
}
