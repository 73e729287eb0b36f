//! Waiting on conditions: the benchmark's only fixed wait is the interval between two polls.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::Res;

/// The interval between two polls.
pub const POLL: Duration = Duration::from_millis(200);

/// Polls `check` every POLL until it yields Some or `timeout` passes. Errors from `check` count
/// as "not yet" (the API server or containerd may be busy); the last one is reported on
/// timeout. `alive` is checked first on every poll and stops the wait at once.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    alive: impl Fn() -> Res<()>,
    mut check: F,
) -> Res<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Res<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        alive()?;
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if Instant::now() >= deadline {
            let last = last_error.map(|e| format!(" (last error: {e})"));
            return Err(format!(
                "timed out after {} s waiting for {what}{}",
                timeout.as_secs(),
                last.unwrap_or_default()
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A liveness check that never fails (for waits that do not depend on the agent).
#[allow(clippy::unnecessary_wraps)]
pub fn always() -> Res<()> {
    Ok(())
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// Ok for success and for 404.
pub fn ok_or_gone<T>(r: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Aborts a spawned task when dropped (a round's watch ends with the round).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
