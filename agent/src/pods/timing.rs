//! Where a pod's start went: each stage timed (admission, sandbox incl. network, image pulls,
//! create, start, first Ready) so the breakdown can go to the log and to metrics. kubelet has no
//! such breakdown; minikubelet reports it once, when the pod first turns Ready. The agent's own
//! share of that start is timed too: from the watch event to the first CRI call, and from the
//! last StartContainer reply to the status write that shows the pod Ready.

use std::time::{Duration, Instant};

/// A stage of a pod's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Admission,
    Volumes,
    Sandbox,
    Image,
    Create,
    Start,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Admission,
        Stage::Volumes,
        Stage::Sandbox,
        Stage::Image,
        Stage::Create,
        Stage::Start,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Admission => "admission",
            Stage::Volumes => "volumes",
            Stage::Sandbox => "sandbox",
            Stage::Image => "image",
            Stage::Create => "create",
            Stage::Start => "start",
        }
    }
}

/// Accumulated stage durations of one pod's start.
#[derive(Debug, Clone)]
pub struct Timings {
    began: Instant,
    stages: [Duration; 6],
    reported: bool,
    /// The first CRI call was made (RunPodSandbox).
    first_cri: bool,
    /// When the last StartContainer reply came.
    last_cri_reply: Option<Instant>,
}

impl Default for Timings {
    fn default() -> Self {
        Timings::since(Instant::now())
    }
}

impl Timings {
    /// A start that began at `seen` (the watch event that brought the pod).
    pub fn since(seen: Instant) -> Timings {
        Timings {
            began: seen,
            stages: [Duration::ZERO; 6],
            reported: false,
            first_cri: false,
            last_cri_reply: None,
        }
    }

    /// The pod's RunPodSandbox is about to be sent; the first time, observes the agent's share
    /// before it.
    pub fn cri_call(&mut self) {
        if !self.first_cri && !self.reported {
            self.first_cri = true;
            crate::metrics::observe_pod_start_agent("watch_to_first_cri", self.began.elapsed());
        }
    }

    /// A StartContainer reply came.
    pub fn cri_replied(&mut self) {
        self.last_cri_reply = Some(Instant::now());
    }

    pub fn add(&mut self, stage: Stage, d: Duration) {
        if let Some(i) = Stage::ALL.iter().position(|s| *s == stage) {
            self.stages[i] += d;
        }
    }

    pub fn get(&self, stage: Stage) -> Duration {
        Stage::ALL
            .iter()
            .position(|s| *s == stage)
            .map_or(Duration::ZERO, |i| self.stages[i])
    }

    /// Marks the pod Ready (its status write was sent at `sent`); returns the one-line breakdown
    /// the first time only.
    pub fn ready(&mut self, sent: Instant) -> Option<String> {
        if self.reported {
            return None;
        }
        self.reported = true;
        if let Some(reply) = self.last_cri_reply {
            crate::metrics::observe_pod_start_agent(
                "last_cri_to_status",
                sent.saturating_duration_since(reply),
            );
        }
        let total = self.began.elapsed();
        crate::metrics::observe_pod_start(total);
        for stage in Stage::ALL {
            crate::metrics::observe_pod_start_stage(stage.name(), self.get(stage));
        }
        crate::metrics::observe_pod_start_stage("ready", total);
        let parts: Vec<String> = Stage::ALL
            .iter()
            .map(|s| format!("{} {}", s.name(), self.get(*s).as_millis()))
            .collect();
        Some(format!(
            "Ready in {} ms: {}",
            total.as_millis(),
            parts.join(", ")
        ))
    }

    /// Suppresses the breakdown (a pod adopted after a restart was not started by us).
    pub fn mark_reported(&mut self) {
        self.reported = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_is_reported_once_with_every_stage() {
        let mut t = Timings::default();
        t.add(Stage::Sandbox, Duration::from_millis(150));
        t.add(Stage::Start, Duration::from_millis(40));
        t.add(Stage::Start, Duration::from_millis(50));
        let line = t.ready(Instant::now()).unwrap();
        assert!(line.starts_with("Ready in "), "{line}");
        assert!(
            line.contains("sandbox 150, image 0, create 0, start 90"),
            "{line}"
        );
        assert_eq!(t.ready(Instant::now()), None);
    }
}
