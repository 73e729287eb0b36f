//! One probe of one container instance, run on its period until its handle is dropped.
//!
//! Timeline of a worker (kubelet's `prober/worker.go` rules):
//! - nothing runs before `initialDelaySeconds` have passed since the container started;
//! - liveness and readiness probes also wait for the [`StartedGate`] (kubelet's
//!   `ContainerStatus.started`: the startup probe succeeded, or there is none) and probe
//!   right away once it opens;
//! - then one attempt every `periodSeconds`, each bounded by `timeoutSeconds`; an attempt
//!   that could not run (an `Unknown` outcome) is retried up to 3 times and then ignored;
//! - a result is published once `successThreshold` successes or `failureThreshold` failures
//!   come in a row (liveness and startup always use a success threshold of 1);
//! - a startup probe stops once it is decided either way, a liveness probe once it failed:
//!   the container is restarted by the pod worker and a new container gets a new worker.
//!   A stopped worker keeps its last state published until its handle is dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ContainerExec, ProbeKind, ProbeOutcome, ProbeTarget, run_once};

/// Kubelet runs a probe that errored up to this many times per period.
const MAX_ATTEMPTS: usize = 3;

/// A probe's timing and thresholds with the API defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// A positive count of seconds or the default; the API server rejects anything else.
fn positive(value: Option<i32>, default: u32) -> u32 {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl ProbeTiming {
    pub fn of(probe: &Probe, kind: ProbeKind) -> Self {
        let success_threshold = match kind {
            ProbeKind::Readiness => positive(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        Self {
            initial_delay: Duration::from_secs(u64::from(positive(probe.initial_delay_seconds, 0))),
            period: Duration::from_secs(u64::from(positive(probe.period_seconds, 10))),
            timeout: Self::timeout_of(probe),
            success_threshold,
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }

    /// timeoutSeconds, 1 by default.
    pub fn timeout_of(probe: &Probe) -> Duration {
        Duration::from_secs(u64::from(positive(probe.timeout_seconds, 1)))
    }
}

/// What a worker has decided so far. Receivers are woken when `result` changes and after
/// every attempt that did not succeed or succeeded with a warning (so the caller can record
/// an `Unhealthy` or `ProbeWarning` event); a plain success that changes nothing updates the
/// value silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    /// The decision: `None` until a threshold is first reached. Readiness starts at
    /// `Some(false)`; liveness and startup start at `None` ("not known yet").
    pub result: Option<bool>,
    /// How many attempts in a row gave the latest verdict.
    pub consecutive: u32,
    /// The latest attempt's message: why it failed or errored, or its warning; empty after a
    /// plain success.
    pub last_message: String,
    /// The latest attempt succeeded with a warning (`last_message`).
    pub warned: bool,
    /// The latest attempt could not be run (kubelet's "probe errored"); it did not count.
    pub errored: bool,
    /// When `result` last changed (or the worker started).
    pub changed_at: Instant,
}

/// Whether the container counts as started (kubelet's `ContainerStatus.started`): liveness and
/// readiness workers do not probe until it does. Startup workers ignore it.
#[derive(Debug, Clone)]
pub struct StartedGate(Gate);

#[derive(Debug, Clone)]
enum Gate {
    Open,
    Flag(watch::Receiver<bool>),
    Startup(watch::Receiver<ProbeState>),
}

impl StartedGate {
    /// Started from the outset: the container has no startup probe.
    pub fn open() -> Self {
        Self(Gate::Open)
    }

    /// Started once `started` is true; the pod worker owns the flag.
    pub fn from_flag(started: watch::Receiver<bool>) -> Self {
        Self(Gate::Flag(started))
    }

    /// Started once this container's startup probe worker has decided success.
    pub fn after_startup(startup: watch::Receiver<ProbeState>) -> Self {
        Self(Gate::Startup(startup))
    }

    pub fn is_open(&self) -> bool {
        match &self.0 {
            Gate::Open => true,
            Gate::Flag(flag) => *flag.borrow(),
            Gate::Startup(startup) => startup.borrow().result == Some(true),
        }
    }

    /// Waits until the gate is open; `false` if it never can be (its sender is gone).
    async fn opened(&mut self) -> bool {
        match &mut self.0 {
            Gate::Open => true,
            Gate::Flag(flag) => flag.wait_for(|started| *started).await.is_ok(),
            Gate::Startup(startup) => startup
                .wait_for(|state| state.result == Some(true))
                .await
                .is_ok(),
        }
    }
}

impl From<watch::Receiver<bool>> for StartedGate {
    fn from(started: watch::Receiver<bool>) -> Self {
        Self::from_flag(started)
    }
}

/// Owns a running worker: dropping it (or [`ProbeHandle::cancel`]) stops the worker, an
/// attempt in flight included, and closes its state channel.
#[derive(Debug)]
pub struct ProbeHandle {
    task: JoinHandle<()>,
}

impl ProbeHandle {
    pub fn cancel(&self) {
        self.task.abort();
    }

    /// The worker has stopped: cancelled, or every receiver of its state is gone.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Converts a CRI start time to the clock workers use.
pub fn instant_from_system_time(at: SystemTime) -> Instant {
    let now = Instant::now();
    match SystemTime::now().duration_since(at) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(ahead) => now + ahead.duration(),
    }
}

/// Spawns probe workers.
#[derive(Debug, Clone, Copy)]
pub struct ProbeWorker;

/// The state of one running worker.
struct Worker<E> {
    probe: Probe,
    kind: ProbeKind,
    timing: ProbeTiming,
    target: ProbeTarget,
    exec: Arc<E>,
    container_started_at: Instant,
    gate: StartedGate,
    /// The verdict of the current run of equal verdicts.
    last_verdict: Option<bool>,
    run: u32,
}

impl ProbeWorker {
    /// Starts probing the container in `target` (which started at `container_started_at`,
    /// a `std` or Tokio `Instant`; see [`instant_from_system_time`] for CRI times) with
    /// `probe` as its `kind` probe. `started` gates liveness and readiness probes.
    /// Needs a Tokio runtime.
    pub fn spawn<E: ContainerExec>(
        probe: Probe,
        kind: ProbeKind,
        target: ProbeTarget,
        exec: Arc<E>,
        container_started_at: impl Into<Instant>,
        started: StartedGate,
    ) -> (ProbeHandle, watch::Receiver<ProbeState>) {
        let initial = ProbeState {
            result: (kind == ProbeKind::Readiness).then_some(false),
            consecutive: 0,
            last_message: String::new(),
            warned: false,
            errored: false,
            changed_at: Instant::now(),
        };
        let (tx, rx) = watch::channel(initial);
        let worker = Worker {
            timing: ProbeTiming::of(&probe, kind),
            probe,
            kind,
            target,
            exec,
            container_started_at: container_started_at.into(),
            gate: started,
            last_verdict: None,
            run: 0,
        };
        let task = tokio::spawn(worker.run(tx));
        (ProbeHandle { task }, rx)
    }
}

impl<E: ContainerExec> Worker<E> {
    async fn run(mut self, tx: watch::Sender<ProbeState>) {
        self.probe_until_decided(&tx).await;
        // Keep the last state readable until the handle is dropped or nobody listens.
        tx.closed().await;
    }

    async fn probe_until_decided(&mut self, tx: &watch::Sender<ProbeState>) {
        let Some(first) = self
            .container_started_at
            .checked_add(self.timing.initial_delay)
        else {
            return;
        };
        let mut next = first;
        loop {
            tokio::time::sleep_until(next).await;
            if tx.is_closed() {
                return;
            }
            if self.kind != ProbeKind::Startup && !self.gate.is_open() {
                if !self.gate.opened().await {
                    return;
                }
                tracing::debug!(kind = %self.kind, "container started: probing");
            }
            let attempt_started = Instant::now();
            let outcome = self.attempt().await;
            if self.record(tx, outcome) {
                return;
            }
            let Some(after_period) = attempt_started.checked_add(self.timing.period) else {
                return;
            };
            next = after_period;
        }
    }

    /// One attempt, retried while it could not run.
    async fn attempt(&self) -> ProbeOutcome {
        let mut outcome = run_once(&self.probe, &self.target, self.exec.as_ref()).await;
        for _ in 1..MAX_ATTEMPTS {
            if !matches!(outcome, ProbeOutcome::Unknown(_)) {
                break;
            }
            outcome = run_once(&self.probe, &self.target, self.exec.as_ref()).await;
        }
        outcome
    }

    /// Applies an outcome to the thresholds and publishes it; `true` when this worker is done.
    fn record(&mut self, tx: &watch::Sender<ProbeState>, outcome: ProbeOutcome) -> bool {
        let (verdict, message) = match outcome {
            ProbeOutcome::Success => (true, String::new()),
            ProbeOutcome::Warning(message) => (true, message),
            ProbeOutcome::Failure(message) => (false, message),
            ProbeOutcome::Unknown(message) => {
                tracing::debug!(kind = %self.kind, %message, "probe errored");
                tx.send_modify(|state| {
                    state.last_message = message;
                    state.errored = true;
                });
                return false;
            }
        };
        if self.last_verdict == Some(verdict) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last_verdict = Some(verdict);
            self.run = 1;
        }
        let threshold = if verdict {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        let decided = self.run >= threshold;
        let run = self.run;
        let warned = verdict && !message.is_empty();
        tx.send_if_modified(|state| {
            state.consecutive = run;
            state.last_message = message;
            state.warned = warned;
            state.errored = false;
            let changed = decided && state.result != Some(verdict);
            if changed {
                tracing::debug!(kind = %self.kind, healthy = verdict, "probe result changed");
                state.result = Some(verdict);
                state.changed_at = Instant::now();
            }
            // Failures and warnings wake the receiver (each becomes an event).
            changed || !verdict || warned
        });
        match self.kind {
            ProbeKind::Startup => decided,
            ProbeKind::Liveness => decided && !verdict,
            ProbeKind::Readiness => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{ExecAction, Probe};
    use tokio::sync::watch;
    use tokio::time::{Instant, sleep, sleep_until};

    use super::super::ProbeKind;
    use super::super::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::*;

    const OK: FakeExec = FakeExec::Exit(0, "", "");
    const FAIL: FakeExec = FakeExec::Exit(1, "", "not yet");

    fn probe(period: i32, failure_threshold: i32, success_threshold: i32) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(vec!["check".into()]),
            }),
            period_seconds: Some(period),
            failure_threshold: Some(failure_threshold),
            success_threshold: Some(success_threshold),
            ..Default::default()
        }
    }

    fn spawn(
        probe: Probe,
        kind: ProbeKind,
        exec: &Arc<ScriptedExec>,
        gate: StartedGate,
    ) -> (ProbeHandle, watch::Receiver<ProbeState>) {
        ProbeWorker::spawn(
            probe,
            kind,
            loopback_target(),
            exec.clone(),
            Instant::now(),
            gate,
        )
    }

    /// Sleeps until just after `secs` seconds from `t0`, so probes due then have run.
    async fn at(t0: Instant, secs: u64) {
        sleep_until(t0 + Duration::from_secs(secs) + Duration::from_millis(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_only_after_failure_threshold_failures_in_a_row() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(FAIL));
        let (_handle, rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Liveness,
            &exec,
            StartedGate::open(),
        );
        at(t0, 0).await;
        assert_eq!(rx.borrow().result, None);
        assert_eq!(rx.borrow().consecutive, 1);
        assert_eq!(
            rx.borrow().last_message,
            "command \"check\" exited with 1: not yet"
        );
        at(t0, 10).await;
        assert_eq!(rx.borrow().result, None);
        at(t0, 20).await;
        assert_eq!(rx.borrow().result, Some(false));
        assert_eq!(rx.borrow().consecutive, 3);
        assert_eq!(rx.borrow().changed_at, t0 + Duration::from_secs(20));
        // Decided: the worker stops probing and waits for the container to be replaced.
        at(t0, 100).await;
        assert_eq!(exec.call_count(), 3);
        assert_eq!(rx.borrow().result, Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_failure_count() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::new(vec![
            FAIL, FAIL, OK, FAIL, FAIL, OK, FAIL,
        ]));
        let (_handle, rx) = spawn(
            probe(1, 3, 1),
            ProbeKind::Liveness,
            &exec,
            StartedGate::open(),
        );
        at(t0, 1).await;
        assert_eq!(rx.borrow().result, None);
        at(t0, 2).await;
        assert_eq!(rx.borrow().result, Some(true));
        at(t0, 5).await;
        assert_eq!(
            rx.borrow().result,
            Some(true),
            "two failures are below the threshold"
        );
        // From t=6 the script keeps failing: decided at the third one.
        at(t0, 7).await;
        assert_eq!(rx.borrow().result, Some(true));
        at(t0, 8).await;
        assert_eq!(rx.borrow().result, Some(false));
        assert_eq!(rx.borrow().changed_at, t0 + Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_is_false_until_success_threshold_successes() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::new(vec![FAIL, OK, FAIL, OK, OK, FAIL]));
        let (_handle, rx) = spawn(
            probe(5, 3, 2),
            ProbeKind::Readiness,
            &exec,
            StartedGate::open(),
        );
        assert_eq!(rx.borrow().result, Some(false));
        at(t0, 15).await;
        assert_eq!(
            rx.borrow().result,
            Some(false),
            "successes were never two in a row"
        );
        at(t0, 20).await;
        assert_eq!(rx.borrow().result, Some(true));
        // Readiness keeps probing: one failure is below the threshold.
        at(t0, 25).await;
        assert_eq!(rx.borrow().result, Some(true));
        at(t0, 35).await;
        assert_eq!(rx.borrow().result, Some(false));
        assert_eq!(exec.call_count(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_ignores_a_success_threshold_above_one() {
        let exec = Arc::new(ScriptedExec::always(OK));
        let (_handle, mut rx) = spawn(
            probe(10, 3, 5),
            ProbeKind::Liveness,
            &exec,
            StartedGate::open(),
        );
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow().result, Some(true));
        assert_eq!(exec.call_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_runs_before_the_initial_delay() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(OK));
        let probe = Probe {
            initial_delay_seconds: Some(15),
            ..probe(10, 3, 1)
        };
        let (_handle, rx) = spawn(probe, ProbeKind::Readiness, &exec, StartedGate::open());
        sleep_until(t0 + Duration::from_millis(14_999)).await;
        assert_eq!(exec.call_count(), 0);
        assert_eq!(rx.borrow().result, Some(false));
        at(t0, 15).await;
        assert_eq!(exec.call_count(), 1);
        assert_eq!(rx.borrow().result, Some(true));
        at(t0, 25).await;
        assert_eq!(exec.call_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_initial_delay_counts_from_the_container_start() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(OK));
        let probe = Probe {
            initial_delay_seconds: Some(15),
            ..probe(10, 3, 1)
        };
        let (_handle, _rx) = ProbeWorker::spawn(
            probe,
            ProbeKind::Liveness,
            loopback_target(),
            exec.clone(),
            t0.checked_sub(Duration::from_secs(60)).unwrap(),
            StartedGate::open(),
        );
        at(t0, 0).await;
        assert_eq!(exec.call_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_and_liveness_wait_for_the_startup_probe() {
        let t0 = Instant::now();
        let startup_exec = Arc::new(ScriptedExec::new(vec![FAIL, FAIL, OK]));
        let ready_exec = Arc::new(ScriptedExec::always(OK));
        let live_exec = Arc::new(ScriptedExec::always(OK));
        let (_startup, startup_rx) = spawn(
            probe(2, 30, 1),
            ProbeKind::Startup,
            &startup_exec,
            StartedGate::open(),
        );
        let (_ready, ready_rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Readiness,
            &ready_exec,
            StartedGate::after_startup(startup_rx.clone()),
        );
        let (_live, live_rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Liveness,
            &live_exec,
            StartedGate::after_startup(startup_rx.clone()),
        );
        at(t0, 3).await;
        assert_eq!(startup_rx.borrow().result, None);
        assert_eq!(ready_exec.call_count() + live_exec.call_count(), 0);
        assert_eq!(ready_rx.borrow().result, Some(false));
        assert_eq!(live_rx.borrow().result, None);
        // Startup succeeds at t=4; the others probe at once, then on their own period.
        at(t0, 4).await;
        assert_eq!(startup_rx.borrow().result, Some(true));
        assert_eq!(ready_rx.borrow().result, Some(true));
        assert_eq!(ready_rx.borrow().changed_at, t0 + Duration::from_secs(4));
        assert_eq!(live_rx.borrow().result, Some(true));
        at(t0, 14).await;
        assert_eq!(ready_exec.call_count(), 2);
        // The startup probe stops once it succeeded.
        assert_eq!(startup_exec.call_count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flag_gate_opens_when_the_pod_worker_says_so() {
        let t0 = Instant::now();
        let (started_tx, started_rx) = watch::channel(false);
        let exec = Arc::new(ScriptedExec::always(OK));
        let (_handle, rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Readiness,
            &exec,
            started_rx.into(),
        );
        at(t0, 30).await;
        assert_eq!(exec.call_count(), 0);
        started_tx.send(true).unwrap();
        sleep(Duration::from_millis(1)).await;
        assert_eq!(exec.call_count(), 1);
        assert_eq!(rx.borrow().result, Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn startup_fails_after_its_threshold_and_stops() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(FAIL));
        let (_handle, rx) = spawn(
            probe(1, 5, 1),
            ProbeKind::Startup,
            &exec,
            StartedGate::open(),
        );
        at(t0, 3).await;
        assert_eq!(rx.borrow().result, None);
        at(t0, 4).await;
        assert_eq!(rx.borrow().result, Some(false));
        at(t0, 60).await;
        assert_eq!(exec.call_count(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_cannot_run_is_retried_and_does_not_count() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(FakeExec::Error("runtime down")));
        let (_handle, rx) = spawn(
            probe(10, 1, 1),
            ProbeKind::Liveness,
            &exec,
            StartedGate::open(),
        );
        at(t0, 50).await;
        assert_eq!(rx.borrow().result, None);
        assert!(rx.borrow().errored);
        assert_eq!(rx.borrow().last_message, "runtime down");
        assert_eq!(exec.call_count(), 6 * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_command_fails_by_timeout() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(FakeExec::Hang));
        let probe = Probe {
            timeout_seconds: Some(2),
            ..probe(5, 2, 1)
        };
        let (_handle, rx) = spawn(probe, ProbeKind::Liveness, &exec, StartedGate::open());
        at(t0, 2).await;
        assert_eq!(rx.borrow().consecutive, 1);
        assert_eq!(rx.borrow().last_message, "command \"check\" timed out");
        at(t0, 7).await;
        assert_eq!(rx.borrow().result, Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn unchanged_successes_do_not_wake_receivers_but_failures_do() {
        let exec = Arc::new(ScriptedExec::new(vec![OK, OK, OK, FAIL]));
        let (_handle, mut rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Readiness,
            &exec,
            StartedGate::open(),
        );
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update().result, Some(true));
        let woke = Instant::now();
        rx.changed().await.unwrap();
        assert_eq!(
            woke.elapsed(),
            Duration::from_secs(30),
            "woken by the failure only"
        );
        let state = rx.borrow_and_update().clone();
        assert_eq!(state.result, Some(true));
        assert_eq!(state.consecutive, 1);
        assert!(!state.last_message.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_handle_stops_the_worker() {
        let t0 = Instant::now();
        let exec = Arc::new(ScriptedExec::always(OK));
        let (handle, mut rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Readiness,
            &exec,
            StartedGate::open(),
        );
        at(t0, 10).await;
        assert_eq!(exec.call_count(), 2);
        drop(handle);
        at(t0, 100).await;
        assert_eq!(exec.call_count(), 2);
        rx.borrow_and_update();
        assert!(rx.changed().await.is_err(), "the state channel closes");
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_worker_in_the_middle_of_an_attempt() {
        let exec = Arc::new(ScriptedExec::always(FakeExec::Hang));
        let (handle, mut rx) = spawn(
            probe(10, 3, 1),
            ProbeKind::Liveness,
            &exec,
            StartedGate::open(),
        );
        sleep(Duration::from_millis(100)).await;
        assert_eq!(exec.call_count(), 1);
        handle.cancel();
        assert!(rx.changed().await.is_err());
        assert!(handle.is_finished());
    }

    #[test]
    fn defaults_follow_the_api() {
        let timing = ProbeTiming::of(&Probe::default(), ProbeKind::Readiness);
        assert_eq!(
            timing,
            ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn system_times_convert_to_instants() {
        let now = Instant::now();
        let ago = instant_from_system_time(SystemTime::now() - Duration::from_secs(30));
        let diff = now.duration_since(ago);
        assert!(
            diff >= Duration::from_secs(29) && diff <= Duration::from_secs(31),
            "{diff:?}"
        );
    }
}
