//! Where a pod is in its life on this node, as one value the compiler checks: kubelet's
//! pod_workers timeline (syncing -> terminating -> terminated -> cleaned up) with admission in
//! front. The worker's header ([`super::worker`]) states the rules; [`super::sync`] has one
//! file per phase and moves a pod along with the transitions below, which are pure.
//!
//! ```text
//!  Admitting ──admitted──► Syncing ──deleted / deadline──► Terminating ──stopped──► Terminated
//!      │                      │                                ▲                       │
//!      ├──refused─────────────┼────────────────────────────────┘                       ▼
//!      │                      └──containers ended for good───────────► Terminated   CleanedUp
//!      └──already ended when seen (agent restart)────────────────────► Terminated
//! ```
//!
//! A pod never moves backwards: once terminating it is never synced to run again.

use tokio::time::Instant;

use super::status::Terminal;

/// A request to end the pod for the node's sake, kubelet's TerminatePodAbnormally: the
/// eviction manager's (reason Evicted) or the shutdown manager's (reason Terminated). It ends
/// Failed with `reason` and `message`, its containers stopped within `grace` at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub reason: &'static str,
    pub message: String,
    pub grace: std::time::Duration,
    /// Node-pressure evictions and shutdowns mark the pod with the DisruptionTarget condition.
    pub disruption_target: bool,
}

/// How the pod ended, which decides what its final status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its containers ended it (restartPolicy), or it was deleted: the status says what the
    /// containers did.
    Containers,
    /// The agent ended it (refused at admission, activeDeadlineSeconds): the status says why.
    Verdict(Terminal),
    /// It had ended before this worker saw it (an agent restart): the API's status stands and
    /// is never rewritten.
    Recorded,
}

/// One pod's place on the timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Lifecycle {
    /// Seen, not admitted yet: the first sync decides.
    #[default]
    Admitting,
    /// Admitted: the sandbox and containers are driven towards the spec.
    Syncing,
    /// Its containers are being stopped within the grace period counted from `since` (kept
    /// across syncs, so a termination cut short and resumed keeps its deadline).
    Terminating { since: Instant, ending: Ending },
    /// Nothing of it runs: sandbox, volumes and the node's resources are to be released and
    /// the final status written.
    Terminated { ending: Ending },
    /// Everything is released. A deleted pod's object deletion was sent when
    /// `object_deleted`; the worker then only waits for the object to go.
    CleanedUp {
        ending: Ending,
        object_deleted: bool,
    },
}

impl Lifecycle {
    /// The agent's verdict on the pod, if it ended it.
    pub fn verdict(&self) -> Option<&Terminal> {
        match self.ending() {
            Some(Ending::Verdict(t)) => Some(t),
            _ => None,
        }
    }

    /// How the pod ended, once it is ending.
    pub fn ending(&self) -> Option<&Ending> {
        match self {
            Lifecycle::Admitting | Lifecycle::Syncing => None,
            Lifecycle::Terminating { ending, .. }
            | Lifecycle::Terminated { ending }
            | Lifecycle::CleanedUp { ending, .. } => Some(ending),
        }
    }

    /// True once the pod is on its way out (terminating or later).
    pub fn is_ending(&self) -> bool {
        self.ending().is_some()
    }

    /// Terminated or cleaned up: nothing of the pod runs any more.
    pub fn nothing_runs(&self) -> bool {
        matches!(
            self,
            Lifecycle::Terminated { .. } | Lifecycle::CleanedUp { .. }
        )
    }

    /// The pod is to stop: deleted, refused, or past its deadline. A pod already ending keeps
    /// its start time and ending; one that is terminated or later stays where it is.
    #[must_use]
    pub fn terminate(self, now: Instant, ending: Ending) -> Lifecycle {
        match self {
            Lifecycle::Admitting | Lifecycle::Syncing => {
                Lifecycle::Terminating { since: now, ending }
            }
            ending_already => ending_already,
        }
    }

    /// Nothing runs any more.
    #[must_use]
    pub fn stopped(self) -> Lifecycle {
        match self {
            Lifecycle::Terminating { ending, .. } => Lifecycle::Terminated { ending },
            other => other,
        }
    }

    /// Its containers ended for good while it was syncing; or it had ended before it was seen.
    #[must_use]
    pub fn ended(self, ending: Ending) -> Lifecycle {
        match self {
            Lifecycle::Admitting | Lifecycle::Syncing => Lifecycle::Terminated { ending },
            other => other,
        }
    }

    /// Released; `object_deleted` when the deletion of the pod object was sent.
    #[must_use]
    pub fn cleaned_up(self, object_deleted: bool) -> Lifecycle {
        match self {
            Lifecycle::Terminated { ending } => Lifecycle::CleanedUp {
                ending,
                object_deleted,
            },
            Lifecycle::CleanedUp {
                ending,
                object_deleted: before,
            } => Lifecycle::CleanedUp {
                ending,
                object_deleted: before || object_deleted,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict() -> Ending {
        Ending::Verdict(Terminal {
            phase: "Failed",
            reason: "DeadlineExceeded".into(),
            message: "late".into(),
            disruption_target: false,
        })
    }

    #[test]
    fn a_pod_moves_forward_through_every_phase() {
        let t0 = Instant::now();
        let l = Lifecycle::default();
        assert_eq!(l, Lifecycle::Admitting);
        let l = l.terminate(t0, Ending::Containers);
        assert_eq!(
            l,
            Lifecycle::Terminating {
                since: t0,
                ending: Ending::Containers
            }
        );
        let l = l.stopped();
        assert_eq!(
            l,
            Lifecycle::Terminated {
                ending: Ending::Containers
            }
        );
        let l = l.cleaned_up(true);
        assert!(matches!(
            l,
            Lifecycle::CleanedUp {
                object_deleted: true,
                ..
            }
        ));
    }

    #[test]
    fn a_second_termination_keeps_the_first_start_and_ending() {
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_secs(5);
        let l = Lifecycle::Syncing.terminate(t0, verdict());
        let again = l.clone().terminate(later, Ending::Containers);
        assert_eq!(
            again, l,
            "a deletion during a deadline kill keeps its deadline"
        );
        assert_eq!(
            again.verdict().map(|t| t.reason.as_str()),
            Some("DeadlineExceeded")
        );
    }

    #[test]
    fn an_ending_pod_never_goes_back_to_syncing() {
        let t0 = Instant::now();
        for l in [
            Lifecycle::Terminating {
                since: t0,
                ending: Ending::Containers,
            },
            Lifecycle::Terminated {
                ending: Ending::Recorded,
            },
            Lifecycle::CleanedUp {
                ending: Ending::Containers,
                object_deleted: false,
            },
        ] {
            assert!(l.is_ending());
            assert_eq!(l.clone().ended(Ending::Containers), l);
            assert_eq!(l.clone().terminate(t0, verdict()), l);
        }
    }

    #[test]
    fn the_object_deletion_once_sent_stays_sent() {
        let l = Lifecycle::CleanedUp {
            ending: Ending::Containers,
            object_deleted: true,
        };
        assert!(matches!(
            l.cleaned_up(false),
            Lifecycle::CleanedUp {
                object_deleted: true,
                ..
            }
        ));
    }

    #[test]
    fn only_a_verdict_is_reported_as_the_agents() {
        assert_eq!(Lifecycle::Syncing.verdict(), None);
        assert_eq!(
            Lifecycle::Terminated {
                ending: Ending::Containers
            }
            .verdict(),
            None
        );
        assert!(
            Lifecycle::Terminated { ending: verdict() }
                .verdict()
                .is_some()
        );
    }
}
