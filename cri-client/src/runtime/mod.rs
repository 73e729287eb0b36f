//! `RuntimeService` RPCs as methods of [`crate::CriClient`], one file per
//! kind of object they act on.

mod container;
pub(crate) mod events;
mod exec;
mod node;
mod sandbox;
mod stats;

use std::time::Duration;

/// A duration as the whole seconds CRI timeouts are given in, rounded up so
/// that a sub-second timeout does not become "no timeout" (0).
pub(crate) fn whole_seconds(duration: Duration) -> i64 {
    let rounded = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_rounds_up() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }
}
