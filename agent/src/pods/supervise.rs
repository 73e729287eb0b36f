//! A pod worker must never die quietly: a panic inside one sync would otherwise leave its pod
//! unsynced forever while the rest of the agent looks healthy. [`supervise`] runs the worker as
//! its own task, and when that task panics it logs, counts the panic in
//! `minikubelet_pod_worker_panics_total` and starts a fresh worker after a growing delay (the
//! fresh worker adopts the pod from the runtime, as after an agent restart).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error};

/// First delay before a panicked worker is started again; it doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(60);

/// The delay before restart number `restarts` (1-based).
fn restart_delay(restarts: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1u32 << restarts.saturating_sub(1).min(16))
        .min(MAX_DELAY)
}

/// Runs the worker that `start` makes until it ends normally, restarting it after each panic.
/// `start` returns None when there is nothing left to run (the pod's worker was removed).
/// Returns the number of panics seen.
pub async fn supervise<F, Fut>(cancel: CancellationToken, mut start: F) -> u32
where
    F: FnMut() -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut panics = 0u32;
    loop {
        let Some(worker) = start() else {
            return panics;
        };
        let outcome = tokio::spawn(worker.in_current_span()).await;
        match outcome {
            Err(e) if e.is_panic() => {
                panics = panics.saturating_add(1);
                crate::metrics::count_pod_worker_panic();
                let delay = restart_delay(panics);
                error!(
                    panics,
                    restart_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "pod worker panicked; starting a fresh one"
                );
                tokio::select! {
                    () = cancel.cancelled() => return panics,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Ok(()) | Err(_) => return panics,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn restart_delays_double_to_a_cap() {
        assert_eq!(restart_delay(1), Duration::from_millis(500));
        assert_eq!(restart_delay(2), Duration::from_secs(1));
        assert_eq!(restart_delay(4), Duration::from_secs(4));
        assert_eq!(restart_delay(40), MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicked_worker_is_started_again_until_it_ends() {
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let panics = supervise(CancellationToken::new(), move || {
            let runs = counter.clone();
            Some(async move {
                let earlier_runs = runs.fetch_add(1, Ordering::SeqCst);
                assert!(
                    earlier_runs >= 2,
                    "a sync went wrong (the first two runs panic)"
                );
            })
        })
        .await;
        assert_eq!(panics, 2);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_to_start_ends_supervision() {
        let panics = supervise(CancellationToken::new(), || None::<std::future::Ready<()>>).await;
        assert_eq!(panics, 0);
    }
}
