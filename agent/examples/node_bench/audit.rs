//! API requests counted from the API server's audit log (one JSON line per request stage; the
//! dev cluster's policy logs nodes only): distinct requests of one user received within a
//! window, and what they were (verb and resource).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::Res;

/// A stretch of wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    pub fn start() -> Timestamp {
        Timestamp::now()
    }

    pub fn until_now(from: Timestamp) -> Window {
        Window {
            from,
            to: Timestamp::now(),
        }
    }

    pub fn secs(&self) -> f64 {
        self.to.duration_since(self.from).as_secs_f64()
    }

    fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

/// The requests of one window: how many, and how many of each kind ("get nodes", "patch
/// pods/status", "watch pods", ...).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Requests {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// When the first and the last of them were received.
    #[serde(default)]
    pub first: Option<Timestamp>,
    #[serde(default)]
    pub last: Option<Timestamp>,
}

impl Requests {
    /// Requests per second over a window of `secs`. With three or more, from their own
    /// spacing ((n - 1) over first-to-last): a request every 10.2 s falls 5 or 6 times into
    /// a 60 s window depending on where the window starts, and the count alone would say 5.0
    /// or 6.0 per minute for the same agent.
    pub fn rate(&self, secs: f64) -> f64 {
        if let (Some(first), Some(last)) = (self.first, self.last)
            && self.total >= 3
        {
            let span = last.duration_since(first).as_secs_f64();
            if span > 0.0 {
                #[allow(clippy::cast_precision_loss)]
                return (self.total - 1) as f64 / span;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let total = self.total as f64;
        if secs > 0.0 { total / secs } else { 0.0 }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    #[serde(rename = "auditID")]
    audit_id: String,
    verb: String,
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    request_received_timestamp: String,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: Option<String>,
}

/// Counts `user`'s requests received in each window. A request is one auditID (a watch logs
/// ResponseStarted and ResponseComplete; both are one request).
pub fn count(log: &Path, user: &str, windows: &[Window]) -> Res<Vec<Requests>> {
    count_users(log, user, |u| u == user, windows)
}

/// Counts the requests of every user `is_ours` picks (`hint`: a substring of their names, a
/// cheap filter before parsing a line) received in each window.
pub fn count_users(
    log: &Path,
    hint: &str,
    is_ours: impl Fn(&str) -> bool,
    windows: &[Window],
) -> Res<Vec<Requests>> {
    let file = std::fs::File::open(log).map_err(|e| {
        format!(
            "cannot open the API server's audit log {}: {e} (is the dev cluster's API server started with it? `deploy/dev/cluster up`)",
            log.display()
        )
    })?;
    let mut out = vec![Requests::default(); windows.len()];
    let mut seen: Vec<HashSet<String>> = vec![HashSet::new(); windows.len()];
    for line in BufReader::new(file).lines() {
        let line = line?;
        // Cheap filter first: most lines are other nodes'.
        if !line.contains(hint) {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        if !is_ours(&event.user.username) {
            continue;
        }
        let Ok(at) = event.request_received_timestamp.parse::<Timestamp>() else {
            continue;
        };
        for (i, w) in windows.iter().enumerate() {
            if w.contains(at) && seen[i].insert(event.audit_id.clone()) {
                let r = &mut out[i];
                r.total += 1;
                *r.by_kind.entry(kind(&event)).or_default() += 1;
                r.first = Some(r.first.map_or(at, |f| f.min(at)));
                r.last = Some(r.last.map_or(at, |l| l.max(at)));
            }
        }
    }
    Ok(out)
}

fn kind(e: &Line) -> String {
    match &e.object_ref {
        Some(o) => match &o.subresource {
            Some(sub) => format!("{} {}/{sub}", e.verb, o.resource),
            None => format!("{} {}", e.verb, o.resource),
        },
        None => e.verb.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, user: &str, stage: &str, at: &str, verb: &str, sub: Option<&str>) -> String {
        let object = match sub {
            Some(s) => serde_json::json!({"resource": "pods", "subresource": s}),
            None => serde_json::json!({"resource": "pods"}),
        };
        serde_json::json!({
            "auditID": id, "stage": stage, "verb": verb, "user": {"username": user},
            "objectRef": object, "requestReceivedTimestamp": at,
        })
        .to_string()
    }

    #[test]
    fn a_periodic_request_has_the_same_rate_wherever_the_window_starts() {
        let at = |secs: f64| -> Timestamp {
            let base: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
            base.checked_add(std::time::Duration::from_secs_f64(secs))
                .unwrap()
        };
        // A Lease every 10.2 s: 6 of them in [0, 60), 5 in [10.5, 70.5).
        let renewals: Vec<f64> = (0..8).map(|i| f64::from(i) * 10.2).collect();
        let rate_in = |from: f64| {
            let inside: Vec<f64> = renewals
                .iter()
                .copied()
                .filter(|t| *t >= from && *t < from + 60.0)
                .collect();
            let r = Requests {
                total: inside.len() as u64,
                by_kind: BTreeMap::new(),
                first: inside.first().map(|t| at(*t)),
                last: inside.last().map(|t| at(*t)),
            };
            (inside.len(), r.rate(60.0) * 60.0)
        };
        let (n0, r0) = rate_in(0.0);
        let (n8, r8) = rate_in(10.5);
        assert_eq!((n0, n8), (6, 5));
        for r in [r0, r8] {
            assert!((r - 60.0 / 10.2).abs() < 1e-6, "{r}");
        }
        // Fewer than three: the plain count over the window.
        let two = Requests {
            total: 2,
            by_kind: BTreeMap::new(),
            first: Some(at(0.0)),
            last: Some(at(1.0)),
        };
        assert!((two.rate(60.0) - 2.0 / 60.0).abs() < 1e-9);
    }

    #[test]
    fn counts_each_request_of_the_user_once_per_window() {
        let node = "system:node:a";
        let lines = [
            line(
                "1",
                node,
                "ResponseComplete",
                "2026-12-03T10:00:01Z",
                "patch",
                Some("status"),
            ),
            // A watch: two stages, one request.
            line(
                "2",
                node,
                "ResponseStarted",
                "2026-12-03T10:00:02Z",
                "watch",
                None,
            ),
            line(
                "2",
                node,
                "ResponseComplete",
                "2026-12-03T10:00:02Z",
                "watch",
                None,
            ),
            // Another node's, and one outside the window.
            line(
                "3",
                "system:node:ab",
                "ResponseComplete",
                "2026-12-03T10:00:03Z",
                "get",
                None,
            ),
            line(
                "4",
                node,
                "ResponseComplete",
                "2026-12-03T10:00:09Z",
                "get",
                None,
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, lines.join("\n") + "\nnot json\n").unwrap();
        let window = Window {
            from: "2026-12-03T10:00:00Z".parse().unwrap(),
            to: "2026-12-03T10:00:05Z".parse().unwrap(),
        };
        let counts = count(&log, node, &[window]).unwrap();
        assert_eq!(counts[0].total, 2);
        assert_eq!(counts[0].by_kind.get("patch pods/status"), Some(&1));
        assert_eq!(counts[0].by_kind.get("watch pods"), Some(&1));
        let all = count_users(
            &log,
            "system:node:",
            |u| u.starts_with("system:node:"),
            &[window],
        )
        .unwrap();
        assert_eq!(all[0].total, 3);
    }
}
