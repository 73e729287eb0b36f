//! A recording logind for the scenarios: it answers the delay it was given (and another one
//! after a reload, if told), hands out inhibitors as the write end of a pipe (so whether the
//! manager still holds one is read off the pipe, as logind reads it), records every call, and
//! sends PrepareForShutdown when the scenario says.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::logind::{Connector, InhibitLock, Logind, LogindError, ShutdownEvents};

#[derive(Default)]
struct Inner {
    delay: Duration,
    delay_after_reload: Option<Duration>,
    unreachable: bool,
    calls: Vec<String>,
    /// The read ends of the inhibitors handed out.
    locks: Vec<OwnedFd>,
    /// The current connection's PrepareForShutdown sender.
    signals: Option<mpsc::UnboundedSender<bool>>,
}

/// The double; clones share it.
#[derive(Clone, Default)]
pub struct RecordingLogind {
    inner: Arc<Mutex<Inner>>,
}

impl RecordingLogind {
    /// A logind whose InhibitDelayMaxUSec is `delay`.
    pub fn with_delay(delay: Duration) -> Self {
        let l = RecordingLogind::default();
        l.lock().delay = delay;
        l
    }

    /// After a reload, the delay reads `delay`.
    pub fn reloads_to(self, delay: Duration) -> Self {
        self.lock().delay_after_reload = Some(delay);
        self
    }

    /// No bus to connect to.
    pub fn unreachable() -> Self {
        let l = RecordingLogind::default();
        l.lock().unreachable = true;
        l
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn record(&self, call: String) {
        self.lock().calls.push(call);
    }

    /// How many inhibitors the manager holds now (their write end still open).
    pub fn held(&self) -> usize {
        use std::os::fd::AsFd;
        let inner = self.lock();
        inner
            .locks
            .iter()
            .filter(|fd| !super::logind::released(fd.as_fd()))
            .count()
    }

    /// Sends PrepareForShutdown(`active`) on the current connection.
    pub fn announce(&self, active: bool) {
        if let Some(tx) = &self.lock().signals {
            let _ = tx.send(active);
        }
    }

    /// Ends the current connection's signal stream (the bus went away).
    pub fn hang_up(&self) {
        self.lock().signals = None;
    }
}

impl Connector for RecordingLogind {
    type Bus = RecordingLogind;

    async fn connect(&self) -> Result<RecordingLogind, LogindError> {
        self.record("connect".into());
        if self.lock().unreachable {
            return Err(LogindError::Connect("no such file or directory".into()));
        }
        Ok(self.clone())
    }

    fn override_inhibit_delay(&self, delay: Duration) -> Result<(), LogindError> {
        self.record(format!("override {delay:?}"));
        Ok(())
    }
}

impl Logind for RecordingLogind {
    async fn inhibit_delay_max(&self) -> Result<Duration, LogindError> {
        self.record("delay".into());
        Ok(self.lock().delay)
    }

    async fn inhibit(&self) -> Result<InhibitLock, LogindError> {
        self.record("inhibit".into());
        let (read, write) =
            rustix::pipe::pipe().map_err(|e| LogindError::Inhibit(e.to_string()))?;
        self.lock().locks.push(read);
        Ok(InhibitLock(write))
    }

    async fn reload(&self) -> Result<(), LogindError> {
        self.record("reload".into());
        let mut inner = self.lock();
        if let Some(d) = inner.delay_after_reload {
            inner.delay = d;
        }
        Ok(())
    }

    async fn shutdown_events(&self) -> Result<ShutdownEvents, LogindError> {
        self.record("subscribe".into());
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.lock().signals = Some(tx);
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }
}
