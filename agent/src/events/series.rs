//! Which events are repeats. kubelet's recorder counts an event as a repeat of an earlier one
//! only when everything but the time matches: the object (kind, namespace, name, uid, field
//! path), the type, the reason and the message. A repeat bumps the earlier event's count; an
//! event with the same reason and a new message is news and gets its own object, so a
//! FailedMount whose cause changed shows the new cause. Entries age out after six minutes and
//! the cache holds at most 4096, the oldest going first, as client-go's LRU does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;

const TTL: Duration = Duration::from_secs(6 * 60);
const CAPACITY: usize = 4096;

/// What makes two events the same event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    api_version: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    field_path: Option<String>,
    warning: bool,
    reason: String,
    action: String,
    note: String,
}

impl Key {
    /// The key of an event about `regarding`; its resourceVersion does not count.
    pub(super) fn new(
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Key {
        Key {
            api_version: regarding.api_version.clone(),
            kind: regarding.kind.clone(),
            namespace: regarding.namespace.clone(),
            name: regarding.name.clone(),
            uid: regarding.uid.clone(),
            field_path: regarding.field_path.clone(),
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note: note.to_owned(),
        }
    }
}

/// How an event relates to what was sent before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seen {
    /// News: create an event object.
    First,
    /// A repeat of the event object `name`: this is occurrence number `count`.
    Again { name: String, count: i32 },
}

#[derive(Debug)]
struct Entry {
    name: String,
    count: i32,
    last: Instant,
}

/// The events sent recently, by [`Key`].
#[derive(Debug, Default)]
pub(super) struct Series {
    entries: HashMap<Key, Entry>,
}

impl Series {
    /// Classifies an event seen at `now`. A repeat is counted here; a first sighting is
    /// remembered only through [`Series::created`], once its object exists.
    pub(super) fn observe(&mut self, key: &Key, now: Instant) -> Seen {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last) < TTL);
        match self.entries.get_mut(key) {
            Some(e) => {
                e.count = e.count.saturating_add(1);
                e.last = now;
                Seen::Again {
                    name: e.name.clone(),
                    count: e.count,
                }
            }
            None => Seen::First,
        }
    }

    /// Remembers that the event `key` now has the object `name` (count 1).
    pub(super) fn created(&mut self, key: Key, name: String, now: Instant) {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(
            key,
            Entry {
                name,
                count: 1,
                last: now,
            },
        );
    }

    /// Forgets `key`: its object is gone (deleted by the API server's TTL or by someone).
    pub(super) fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resource_version: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some("ns".into()),
            name: Some("p".into()),
            uid: Some("u1".into()),
            resource_version: Some(resource_version.into()),
            ..ObjectReference::default()
        }
    }

    fn key(regarding: &ObjectReference, note: &str) -> Key {
        Key::new(regarding, true, "FailedMount", "FailedMount", note)
    }

    #[test]
    fn the_same_message_again_is_a_repeat_of_the_first_object_even_at_a_new_resource_version() {
        let mut s = Series::default();
        let t = Instant::now();
        let k = key(&pod("1"), "a");
        assert_eq!(s.observe(&k, t), Seen::First);
        s.created(k, "p.1".into(), t);
        let again = key(&pod("2"), "a");
        assert_eq!(
            s.observe(&again, t + Duration::from_secs(1)),
            Seen::Again {
                name: "p.1".into(),
                count: 2
            }
        );
        assert_eq!(
            s.observe(&again, t + Duration::from_secs(2)),
            Seen::Again {
                name: "p.1".into(),
                count: 3
            }
        );
    }

    #[test]
    fn a_new_message_with_the_same_reason_is_news() {
        let mut s = Series::default();
        let t = Instant::now();
        let k = key(
            &pod("1"),
            "no relationship found between node and this object",
        );
        s.observe(&k, t);
        s.created(k, "p.1".into(), t);
        let real = key(&pod("1"), r#"configmap "nope" not found"#);
        assert_eq!(s.observe(&real, t), Seen::First);
    }

    #[test]
    fn another_container_or_type_is_another_event() {
        let mut s = Series::default();
        let t = Instant::now();
        let k = key(&pod("1"), "a");
        s.created(k, "p.1".into(), t);
        let mut c = pod("1");
        c.field_path = Some("spec.containers{c}".into());
        assert_eq!(s.observe(&key(&c, "a"), t), Seen::First);
        let normal = Key::new(&pod("1"), false, "FailedMount", "FailedMount", "a");
        assert_eq!(s.observe(&normal, t), Seen::First);
    }

    #[test]
    fn entries_age_out_after_six_minutes() {
        let mut s = Series::default();
        let t = Instant::now();
        let k = key(&pod("1"), "a");
        s.created(k.clone(), "p.1".into(), t);
        assert_eq!(s.observe(&k, t + TTL), Seen::First);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_its_oldest_entry() {
        let mut s = Series::default();
        let t = Instant::now();
        for i in 0..CAPACITY {
            let at = t + Duration::from_millis(u64::try_from(i).unwrap_or(0));
            s.created(key(&pod("1"), &i.to_string()), format!("p.{i}"), at);
        }
        let later = t + Duration::from_secs(10);
        s.created(key(&pod("1"), "new"), "p.new".into(), later);
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s.observe(&key(&pod("1"), "0"), later), Seen::First);
        assert!(matches!(
            s.observe(&key(&pod("1"), "1"), later),
            Seen::Again { .. }
        ));
    }

    #[test]
    fn a_forgotten_event_is_news_again() {
        let mut s = Series::default();
        let t = Instant::now();
        let k = key(&pod("1"), "a");
        s.created(k.clone(), "p.1".into(), t);
        s.forget(&k);
        assert_eq!(s.observe(&k, t), Seen::First);
    }
}
