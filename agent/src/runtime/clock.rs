//! The wall clock compared with the runtime's timestamps (a container's finish,
//! for crash-loop backoff). The agent reads the system clock; scenario tests read one that
//! advances with tokio's paused clock, so a test can drive a backoff to the millisecond.

use std::time::SystemTime;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum WallClock {
    /// `SystemTime::now()`.
    #[default]
    System,
    /// `epoch` plus the tokio time elapsed since `started` (paused in tests).
    #[cfg(test)]
    Tokio {
        epoch: SystemTime,
        started: tokio::time::Instant,
    },
}

impl WallClock {
    /// A clock that starts at the system's now and advances only with tokio's clock.
    #[cfg(test)]
    pub fn tokio() -> WallClock {
        WallClock::Tokio {
            epoch: SystemTime::now(),
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> SystemTime {
        match self {
            WallClock::System => SystemTime::now(),
            #[cfg(test)]
            WallClock::Tokio { epoch, started } => *epoch + started.elapsed(),
        }
    }
}
