//! Crash-loop backoff, with kubelet's numbers: the first restart is immediate, then each restart
//! waits 10 s, 20 s, 40 s ... up to 5 min after the container finished; the backoff is forgotten
//! once 10 minutes pass without a restart. The [`KeyedBackoff`] of one pod's containers, keyed
//! by container name, under the names the pod's sync uses.

use std::time::{Duration, SystemTime};

use crate::backoff::KeyedBackoff;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// An entry older than this is forgotten (kubelet: 2 x the max backoff).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Backoff state of the containers of one pod, keyed by container name.
#[derive(Debug)]
pub struct RestartBackoff(KeyedBackoff<String, SystemTime>);

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff(KeyedBackoff::new(INITIAL, MAX))
    }
}

impl RestartBackoff {
    /// Time left to wait before restarting `name`, which finished at `finished_at`; None when it
    /// may restart now.
    pub fn remaining(
        &self,
        name: &str,
        finished_at: SystemTime,
        now: SystemTime,
    ) -> Option<Duration> {
        self.0.remaining_since(name, finished_at, now)
    }

    /// The current delay for `name` (for the CrashLoopBackOff message).
    pub fn delay(&self, name: &str) -> Duration {
        self.0.get(name).unwrap_or(INITIAL)
    }

    /// Records a restart of `name` now: the next restart waits longer.
    pub fn restarted(&mut self, name: &str, now: SystemTime) {
        self.0.next(name.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn kubelets_numbers() {
        assert_eq!(RESET_AFTER, MAX * 2, "client-go forgets after 2 x max");
        assert_eq!((INITIAL.as_secs(), MAX.as_secs()), (10, 300));
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

    #[test]
    fn containers_of_a_pod_back_off_independently() {
        let mut b = RestartBackoff::default();
        b.restarted("a", t(0));
        b.restarted("a", t(1));
        assert_eq!((b.delay("a"), b.delay("b")), (INITIAL * 2, INITIAL));
        assert_eq!(b.remaining("b", t(1), t(1)), None);
    }
}
