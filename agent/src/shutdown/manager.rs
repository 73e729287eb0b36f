//! The shutdown manager's loop, kubelet's (the inhibitor pattern logind documents):
//!
//! 1. connect to logind; when its InhibitDelayMaxUSec is below the sum of the bands, write the
//!    drop-in that raises it, have logind reload, and read it again (backing off from 100 ms,
//!    five tries); still below: the manager cannot start;
//! 2. take a delay inhibitor and subscribe to PrepareForShutdown;
//! 3. PrepareForShutdown(true): the Node event Shutdown, the node is shutting down (Ready
//!    False "node is shutting down", admission refuses every pod), then the pods are ended
//!    band by band from the lowest priority, each band's pods at once with the band's grace
//!    (a pod's own shorter grace wins), phase Failed, reason Terminated, kubelet's message and
//!    DisruptionTarget; the next band starts when every pod of this one stopped or its grace
//!    ran out. The record and the gauges say when it started and ended. Then the inhibitor is
//!    released: logind goes on with the shutdown;
//! 4. PrepareForShutdown(false), a cancellation: the node is no longer shutting down and a new
//!    inhibitor is taken;
//! 5. when the bus connection ends, start again a second later, holding the old inhibitor
//!    until a new one is taken.
//!
//! If logind cannot be reached when the agent starts, that is said once and the node runs
//! without shutdown handling, as kubelet does.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::bands::{Band, group};
use super::logind::{Connector, InhibitLock, Logind, LogindError, ShutdownEvents};
use super::record::{ShutdownRecord, StateFile};
use crate::config::shutdown::ShutdownSettings;
use crate::events::Events;
use crate::eviction::PodEvictor;
use crate::pods::lifecycle::Eviction;

/// kubelet's status reason and message for a pod ended by a node shutdown.
pub const REASON: &str = "Terminated";
pub const MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
/// kubelet's dbusReconnectPeriod.
const RECONNECT: Duration = Duration::from_secs(1);
/// kubelet's floor for any termination's grace.
const MIN_GRACE: Duration = Duration::from_secs(1);
/// How often a band's pods are looked at while they stop.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Why the manager could not start, in kubelet's words.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Logind(#[from] LogindError),
    #[error(
        "node shutdown manager was timed out after {attempts} attempts waiting for logind InhibitDelayMaxSec to update to {requested:?} (ShutdownGracePeriod), current value is {current:?}"
    )]
    DelayTooShort {
        attempts: u32,
        requested: Duration,
        current: Duration,
    },
}

/// The manager and what it acts through.
pub struct Manager<C, P> {
    pub settings: ShutdownSettings,
    pub connector: C,
    pub pods: P,
    pub events: Events,
    pub node_name: String,
    pub shutting_down: watch::Sender<bool>,
    pub state_file: StateFile,
}

/// A connection that holds the inhibitor and hears PrepareForShutdown.
struct Session<B> {
    bus: B,
    lock: Option<InhibitLock>,
    events: ShutdownEvents,
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

impl<C: Connector, P: PodEvictor> Manager<C, P> {
    /// Steps 1 and 2.
    async fn start(&self) -> Result<Session<C::Bus>, StartError> {
        let bus = self.connector.connect().await?;
        let requested = self.settings.period_requested();
        let current = bus.inhibit_delay_max().await?;
        if requested > current {
            self.connector.override_inhibit_delay(requested)?;
            bus.reload().await?;
            let mut wait = Duration::from_millis(100);
            let mut attempts = 0;
            let mut updated = current;
            while attempts < 5 {
                tokio::time::sleep(wait).await;
                attempts += 1;
                updated = bus.inhibit_delay_max().await?;
                if updated >= requested {
                    break;
                }
                debug!(attempt = attempts, current = ?updated, requested = ?requested, "InhibitDelayMaxSec still less than requested, retrying");
                wait *= 2;
            }
            if updated < requested {
                return Err(StartError::DelayTooShort {
                    attempts,
                    requested,
                    current: updated,
                });
            }
        }
        let lock = bus.inhibit().await?;
        let events = bus.shutdown_events().await?;
        info!(delay = ?requested, "node shutdown manager holds a delay inhibitor");
        Ok(Session {
            bus,
            lock: Some(lock),
            events,
        })
    }

    /// Step 3: ends the pods, band by band, and records when.
    pub async fn process_shutdown(&self) {
        let started = Timestamp::now();
        let mut record = ShutdownRecord {
            start: Some(started),
            end: None,
        };
        self.keep(&record);
        for band in group(&self.settings.bands, self.pods.running_pods()) {
            if !band.pods.is_empty() {
                self.end_band(&band).await;
            }
        }
        record.end = Some(Timestamp::now());
        self.keep(&record);
        info!("Shutdown manager completed processing shutdown event, node will shutdown shortly");
    }

    fn keep(&self, record: &ShutdownRecord) {
        if let Err(e) = self.state_file.store(record) {
            warn!(path = %self.state_file.path.display(), error = %e, "Failed to store graceful shutdown state");
        }
        record.publish();
    }

    async fn end_band(&self, band: &Band) {
        let mut asked = Vec::with_capacity(band.pods.len());
        for pod in &band.pods {
            info!(pod = ?pod.metadata.name, grace = ?band.grace, "Shutdown manager killing pod with gracePeriod");
            let eviction = Eviction {
                reason: REASON,
                message: MESSAGE.to_string(),
                // kubelet never gives less than a second (its pod workers' floor).
                grace: band.grace.max(MIN_GRACE),
                disruption_target: true,
            };
            if self.pods.evict(uid(pod), eviction) {
                asked.push(uid(pod).to_string());
            }
        }
        let deadline = Instant::now() + band.grace;
        loop {
            if asked.iter().all(|u| self.pods.stopped(u)) {
                debug!(
                    priority = band.priority,
                    "Done waiting for all pods in group to terminate"
                );
                return;
            }
            if Instant::now() >= deadline {
                info!(priority = band.priority, grace = ?band.grace, "Shutdown manager pod killing time out");
                return;
            }
            tokio::time::sleep(STOP_POLL.min(deadline - Instant::now())).await;
        }
    }

    /// Steps 3 and 4 until the connection ends (false) or `cancel` fires (true).
    async fn follow(&self, s: &mut Session<C::Bus>, cancel: &CancellationToken) -> bool {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return true,
                e = s.events.next() => e,
            };
            match event {
                None => {
                    warn!("Ended to watching the node for shutdown events");
                    return false;
                }
                Some(true) => {
                    info!("Shutdown manager detected new shutdown event");
                    self.events.node(
                        &self.node_name,
                        "Shutdown",
                        "Shutdown manager detected shutdown event".to_string(),
                    );
                    self.shutting_down.send_replace(true);
                    tokio::select! {
                        () = cancel.cancelled() => return true,
                        () = self.process_shutdown() => {}
                    }
                    // Closing the descriptor lets logind go on.
                    drop(s.lock.take());
                }
                Some(false) => {
                    info!("Shutdown manager detected shutdown cancellation");
                    self.events.node(
                        &self.node_name,
                        "Shutdown",
                        "Shutdown manager detected shutdown cancellation".to_string(),
                    );
                    self.shutting_down.send_replace(false);
                    match s.bus.inhibit().await {
                        // The new one is held before the old one (if any) is let go.
                        Ok(lock) => s.lock = Some(lock),
                        Err(e) => warn!(error = %e, "cannot take the inhibitor again"),
                    }
                }
            }
        }
    }
}

/// Runs the manager until `cancel` fires.
pub async fn run<C: Connector, P: PodEvictor>(m: Manager<C, P>, cancel: CancellationToken) {
    if let Some(record) = m.state_file.load() {
        record.publish();
    }
    let mut session = match m.start().await {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "Failed to start node shutdown manager: the node shuts down without ending its pods first");
            return;
        }
    };
    let mut failing = false;
    loop {
        if m.follow(&mut session, &cancel).await {
            return;
        }
        // As kubelet, the inhibitor outlives its connection: it is let go of once a new one
        // is held, so no shutdown slips through the reconnection.
        let mut held = session.lock.take();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(RECONNECT) => {}
            }
            debug!("Restarting watch for node shutdown events");
            match m.start().await {
                Ok(s) => {
                    session = s;
                    drop(held.take());
                    failing = false;
                    break;
                }
                Err(e) if !failing => {
                    warn!(error = %e, "Unable to watch the node for shutdown events");
                    failing = true;
                }
                Err(e) => debug!(error = %e, "Unable to watch the node for shutdown events"),
            }
        }
    }
}
