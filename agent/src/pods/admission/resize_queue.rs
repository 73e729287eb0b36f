//! The resizes waiting for room, in kubelet's order (the allocation manager's
//! `sortPendingResizes`): resizes that raise no request first, then higher priority, then
//! Guaranteed before Burstable, then the one waiting longest. kubelet retries its queue in that
//! order, each resize taking its room before the next is judged; here each pod's worker judges
//! its own resize, so a judgement first lets every resize ahead of it that fits now take its
//! room ([`Queue::room_ahead`]). A Deferred resize of a low-priority pod therefore never takes
//! the room a higher-priority one was waiting for, whichever worker wakes first. Pure.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::Requests;

/// One resize waiting for room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// What the pod asks for now.
    pub want: Requests,
    /// Whether it raises a request above the pod's share.
    pub raises: bool,
    pub priority: i32,
    pub guaranteed: bool,
    /// When it joined the queue (a sequence number: earlier is smaller).
    pub since: u64,
}

/// kubelet's order: `Less` goes first.
fn order(a: &Waiting, b: &Waiting) -> Ordering {
    a.raises
        .cmp(&b.raises)
        .then(b.priority.cmp(&a.priority))
        .then(b.guaranteed.cmp(&a.guaranteed))
        .then(a.since.cmp(&b.since))
}

/// The resizes waiting for room, by pod UID.
#[derive(Debug, Default)]
pub struct Queue {
    waiting: HashMap<String, Waiting>,
    joined: u64,
}

impl Queue {
    /// Puts `uid`'s resize in the queue, or updates what it asks for (keeping its place in
    /// time).
    pub fn enter(&mut self, uid: &str, mut w: Waiting) {
        if let Some(old) = self.waiting.get(uid) {
            w.since = old.since;
        } else {
            self.joined = self.joined.wrapping_add(1);
            w.since = self.joined;
        }
        self.waiting.insert(uid.to_string(), w);
    }

    /// Takes `uid`'s resize out (accepted, given up, reverted, or the pod went).
    pub fn leave(&mut self, uid: &str) {
        self.waiting.remove(uid);
    }

    /// What the other pods hold, as `uid`'s resize is judged: their shares, each raised to
    /// what its waiting resize asks when that resize is ahead of `uid`'s and `fits` beside
    /// what is held then (`eligible` says whether the node would take it at all now: its
    /// pressure). `uid` must be in the queue.
    pub fn room_ahead(
        &self,
        uid: &str,
        shares: &HashMap<String, Requests>,
        eligible: impl Fn(&str) -> bool,
        fits: impl Fn(Requests, Requests) -> bool,
    ) -> Requests {
        let mut held: HashMap<&str, Requests> = shares
            .iter()
            .filter(|(u, _)| u.as_str() != uid)
            .map(|(u, r)| (u.as_str(), *r))
            .collect();
        let Some(me) = self.waiting.get(uid) else {
            return sum(held.values());
        };
        let mut ahead: Vec<(&str, &Waiting)> = self
            .waiting
            .iter()
            .filter(|(u, w)| u.as_str() != uid && order(w, me) == Ordering::Less)
            .map(|(u, w)| (u.as_str(), w))
            .collect();
        ahead.sort_by(|a, b| order(a.1, b.1));
        for (u, w) in ahead {
            if !eligible(u) {
                continue;
            }
            let own = held.get(u).copied().unwrap_or_default();
            let others = sum(held.iter().filter(|(k, _)| **k != u).map(|(_, r)| r));
            if fits(others, w.want) {
                held.insert(u, own.max(w.want));
            }
        }
        sum(held.values())
    }
}

fn sum<'a>(rs: impl Iterator<Item = &'a Requests>) -> Requests {
    rs.fold(Requests::default(), |a, r| a.plus(*r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(cpu: u64) -> Requests {
        Requests {
            cpu_millis: cpu,
            memory_bytes: 0,
        }
    }

    fn waiting(cpu: u64, priority: i32, guaranteed: bool) -> Waiting {
        Waiting {
            want: r(cpu),
            raises: true,
            priority,
            guaranteed,
            since: 0,
        }
    }

    /// A node of 1000 millicores.
    fn fits(used: Requests, want: Requests) -> bool {
        used.cpu_millis + want.cpu_millis <= 1000
    }

    fn shares(list: &[(&str, u64)]) -> HashMap<String, Requests> {
        list.iter()
            .map(|(u, c)| ((*u).to_string(), r(*c)))
            .collect()
    }

    #[test]
    fn kubelets_order_lowering_first_then_priority_then_guaranteed_then_the_oldest() {
        let mut q = Queue::default();
        q.enter("old-burstable", waiting(1, 0, false));
        q.enter("new-burstable", waiting(1, 0, false));
        q.enter("guaranteed", waiting(1, 0, true));
        q.enter("high", waiting(1, 100, false));
        q.enter(
            "lowering",
            Waiting {
                raises: false,
                ..waiting(1, -5, false)
            },
        );
        let mut all: Vec<(&String, &Waiting)> = q.waiting.iter().collect();
        all.sort_by(|a, b| order(a.1, b.1));
        let names: Vec<&str> = all.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(
            names,
            [
                "lowering",
                "high",
                "guaranteed",
                "old-burstable",
                "new-burstable"
            ]
        );
        // Updating a resize keeps its place in time.
        q.enter("old-burstable", waiting(2, 0, false));
        assert!(q.waiting["old-burstable"].since < q.waiting["new-burstable"].since);
    }

    #[test]
    fn a_resize_ahead_that_fits_takes_its_room_first() {
        // 400 free: "high" wants +300 (100 -> 400), "low" wants +300 too.
        let held = shares(&[("high", 100), ("low", 100), ("other", 400)]);
        let mut q = Queue::default();
        q.enter("low", waiting(400, 0, false));
        q.enter("high", waiting(400, 10, false));
        // Judged for "low": "high" goes first and holds 400, so "low" sees 800 held by others.
        let used = q.room_ahead("low", &held, |_| true, fits);
        assert_eq!(used, r(800));
        assert!(!fits(used, r(400)), "low waits");
        // Judged for "high": nothing is ahead of it.
        let used = q.room_ahead("high", &held, |_| true, fits);
        assert_eq!(used, r(500));
        assert!(fits(used, r(400)));
    }

    #[test]
    fn a_resize_ahead_that_does_not_fit_or_is_not_eligible_takes_nothing() {
        let held = shares(&[("big", 100), ("small", 100), ("other", 400)]);
        let mut q = Queue::default();
        // "big" cannot fit (+800 in 400 free): "small" behind it goes on.
        q.enter("big", waiting(900, 10, false));
        q.enter("small", waiting(200, 0, false));
        let used = q.room_ahead("small", &held, |_| true, fits);
        assert_eq!(used, r(500));
        // Nor does one the node's pressure holds back.
        q.enter("big", waiting(300, 10, false));
        assert_eq!(q.room_ahead("small", &held, |u| u != "big", fits), r(500));
        assert_eq!(q.room_ahead("small", &held, |_| true, fits), r(700));
        q.leave("big");
        assert!(!q.waiting.contains_key("big"));
        assert_eq!(q.room_ahead("small", &held, |_| true, fits), r(500));
    }
}
