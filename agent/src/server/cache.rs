//! A bounded cache with a time to live per entry, for the authentication and authorisation
//! answers. It never grows past its limit: expired entries go first, then the one closest to
//! expiry. Time is tokio's, so tests can pause it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub struct Cache<K, V> {
    limit: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        Cache {
            limit,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The live value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (until, value) = entries.get(key)?;
        if *until > Instant::now() {
            return Some(value.clone());
        }
        entries.remove(key);
        None
    }

    /// Stores `value` under `key` for `ttl`, making room first if the cache is full.
    pub fn put(&self, key: K, value: V, ttl: Duration) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= self.limit {
            entries.retain(|_, (until, _)| *until > now);
            // A linear scan, but only on an insert into a full cache, and every insert follows
            // a round trip to the apiserver that costs far more.
            while entries.len() >= self.limit {
                let Some(soonest) = soonest_to_expire(&entries) else {
                    break;
                };
                entries.remove(&soonest);
            }
        }
        entries.insert(key, (now + ttl, value));
    }

    /// Entries held, live or not yet swept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn soonest_to_expire<K: Clone, V>(entries: &HashMap<K, (Instant, V)>) -> Option<K> {
    entries
        .iter()
        .min_by_key(|(_, (until, _))| *until)
        .map(|(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_their_ttl() {
        let c: Cache<&str, bool> = Cache::new(10);
        c.put("a", true, MINUTE);
        c.put("b", true, Duration::ZERO);
        assert_eq!(c.get(&"a"), Some(true));
        assert_eq!(c.get(&"b"), None);
        tokio::time::advance(MINUTE).await;
        assert_eq!(c.get(&"a"), None);
        assert_eq!(c.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_expired_entries_then_the_one_closest_to_expiry() {
        let c: Cache<u32, ()> = Cache::new(3);
        c.put(1, (), MINUTE);
        c.put(2, (), 3 * MINUTE);
        c.put(3, (), 2 * MINUTE);
        c.put(4, (), 5 * MINUTE);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&1), None);
        assert!(c.get(&2).is_some() && c.get(&3).is_some() && c.get(&4).is_some());
        // Replacing a present key makes no room.
        c.put(2, (), MINUTE);
        assert_eq!(c.len(), 3);
        tokio::time::advance(2 * MINUTE).await;
        c.put(5, (), MINUTE);
        c.put(6, (), MINUTE);
        assert_eq!(c.len(), 3);
        assert!(c.get(&4).is_some() && c.get(&5).is_some() && c.get(&6).is_some());
        for i in 0..10_000 {
            c.put(100 + i, (), MINUTE);
        }
        assert_eq!(c.len(), 3);
    }
}
