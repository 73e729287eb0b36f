//! Crash-loop backoff, with kubelet's numbers: the first restart is immediate, then each restart
//! waits 10 s, 20 s, 40 s ... up to 5 min after the container finished; the backoff is forgotten
//! once 10 minutes pass without a restart.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// An entry older than this is forgotten (kubelet: 2 x the max backoff).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
struct Entry {
    delay: Duration,
    updated: SystemTime,
}

/// Backoff state of the containers of one pod, keyed by container name.
#[derive(Debug, Default)]
pub struct RestartBackoff {
    entries: HashMap<String, Entry>,
}

impl RestartBackoff {
    /// Time left to wait before restarting `name`, which finished at `finished_at`; None when it
    /// may restart now.
    pub fn remaining(
        &mut self,
        name: &str,
        finished_at: SystemTime,
        now: SystemTime,
    ) -> Option<Duration> {
        let entry = self.entries.get(name)?;
        if now.duration_since(entry.updated).unwrap_or_default() > RESET_AFTER {
            self.entries.remove(name);
            return None;
        }
        let since_finish = now.duration_since(finished_at).unwrap_or_default();
        entry
            .delay
            .checked_sub(since_finish)
            .filter(|d| !d.is_zero())
    }

    /// The current delay for `name` (for the CrashLoopBackOff message).
    pub fn delay(&self, name: &str) -> Duration {
        self.entries.get(name).map_or(INITIAL, |e| e.delay)
    }

    /// Records a restart of `name` now: the next restart waits longer.
    pub fn restarted(&mut self, name: &str, now: SystemTime) {
        let delay = match self.entries.get(name) {
            Some(e) if now.duration_since(e.updated).unwrap_or_default() <= RESET_AFTER => {
                (e.delay * 2).min(MAX)
            }
            _ => INITIAL,
        };
        self.entries.insert(
            name.to_string(),
            Entry {
                delay,
                updated: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_five_minutes() {
        let mut b = RestartBackoff::default();
        assert_eq!(
            b.remaining("c", t(0), t(0)),
            None,
            "first restart is immediate"
        );
        b.restarted("c", t(0));
        // Second exit at t=1: wait 10 s from the finish.
        assert_eq!(b.remaining("c", t(1), t(1)), Some(Duration::from_secs(10)));
        assert_eq!(b.remaining("c", t(1), t(6)), Some(Duration::from_secs(5)));
        assert_eq!(b.remaining("c", t(1), t(11)), None);
        b.restarted("c", t(11));
        assert_eq!(b.delay("c"), Duration::from_secs(20));
        let mut now = 11;
        for expected in [40, 80, 160, 300, 300] {
            now += 1;
            b.restarted("c", t(now));
            assert_eq!(b.delay("c").as_secs(), expected);
        }
    }

    #[test]
    fn backoff_resets_after_ten_quiet_minutes() {
        let mut b = RestartBackoff::default();
        b.restarted("c", t(0));
        b.restarted("c", t(20));
        assert_eq!(b.delay("c"), Duration::from_secs(20));
        assert_eq!(b.remaining("c", t(700), t(700)), None);
        b.restarted("c", t(700));
        assert_eq!(b.delay("c"), INITIAL);
    }
}
