//! Bearer-token answers from TokenReview, cached so that neither a busy client nor a hostile one
//! turns each request into an apiserver call: keyed by the token's SHA-256 (the token itself is
//! never kept), "authenticated" for 2 min as kubelet does, "not authenticated" for 30 s, each in
//! its own bounded cache (a flood of bad tokens can only evict bad tokens). Concurrent requests
//! with the same uncached token share one TokenReview, reviews in flight are capped, and a
//! review that fails (apiserver unreachable, timeout) is not cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;

use super::cache::Cache;
use super::identity::Identity;

const KNOWN_TTL: Duration = Duration::from_secs(120);
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
const KNOWN_LIMIT: usize = 4096;
const UNKNOWN_LIMIT: usize = 1024;
/// Distinct tokens under review at once. Every connection without a client certificate can
/// have one request waiting on a review, but a client that hangs up leaves its review running,
/// so the cap is what bounds the load a stream of fresh tokens puts on the apiserver.
const MAX_IN_FLIGHT: usize = 64;
/// A review slower than this is an apiserver problem; it fails and frees its in-flight place.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// A token review that gave no answer; never cached.
#[derive(Debug, Clone, Error)]
pub enum ReviewFailed {
    #[error("too many TokenReviews in flight")]
    Busy,
    #[error("TokenReview timed out")]
    TimedOut,
    #[error("{0}")]
    Apiserver(String),
}

/// The identity behind a token (None: the apiserver does not authenticate it).
pub type Answer = Result<Option<Identity>, ReviewFailed>;

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// The caches and the reviews in flight.
pub struct TokenCache {
    known: Cache<Digest, Identity>,
    unknown: Cache<Digest, ()>,
    in_flight: Mutex<HashMap<Digest, watch::Receiver<Option<Answer>>>>,
}

impl TokenCache {
    pub fn new() -> Arc<TokenCache> {
        Arc::new(TokenCache {
            known: Cache::new(KNOWN_LIMIT),
            unknown: Cache::new(UNKNOWN_LIMIT),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// The cached answer for `key`, if any (only answers the apiserver gave are cached).
    fn cached(&self, key: &Digest) -> Option<Answer> {
        if let Some(id) = self.known.get(key) {
            return Some(Ok(Some(id)));
        }
        self.unknown.get(key).map(|()| Ok(None))
    }

    /// The answer for `token`: cached, or shared with a review already running, or from
    /// `review(token)` run in a task of its own (so that a caller hanging up neither cancels
    /// it for the others nor leaves it in flight for ever).
    pub async fn authenticate<F, Fut>(self: &Arc<Self>, token: &str, review: F) -> Answer
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let key = digest(token);
        let (answer, leader) = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(hit) = self.cached(&key) {
                return hit;
            }
            match in_flight.get(&key) {
                Some(rx) => (rx.clone(), None),
                None if in_flight.len() >= MAX_IN_FLIGHT => return Err(ReviewFailed::Busy),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(key, rx.clone());
                    (rx, Some(tx))
                }
            }
        };
        if let Some(tx) = leader {
            tokio::spawn(Arc::clone(self).review(key, review(token.to_string()), tx));
        }
        wait(answer).await
    }

    async fn review(
        self: Arc<Self>,
        key: Digest,
        review: impl Future<Output = Answer>,
        tx: watch::Sender<Option<Answer>>,
    ) {
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, review)
            .await
            .unwrap_or(Err(ReviewFailed::TimedOut));
        // Cache before leaving the in-flight map, under its lock, so that a request arriving
        // in between finds one or the other and never starts a second review.
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &answer {
            Ok(Some(id)) => self.known.put(key, id.clone(), KNOWN_TTL),
            Ok(None) => self.unknown.put(key, (), UNKNOWN_TTL),
            Err(_) => {}
        }
        in_flight.remove(&key);
        tx.send_replace(Some(answer));
    }
}

async fn wait(mut answer: watch::Receiver<Option<Answer>>) -> Answer {
    answer
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|a| a.clone())
        .unwrap_or_else(|| {
            Err(ReviewFailed::Apiserver(
                "the TokenReview was abandoned".into(),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn alice() -> Identity {
        Identity {
            user: "alice".into(),
            groups: vec!["system:authenticated".into()],
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }

    /// A review that counts its calls and answers `answer` after `delay`.
    fn reviewer(
        calls: &Arc<AtomicUsize>,
        answer: Answer,
        delay: Duration,
    ) -> impl FnOnce(String) -> std::pin::Pin<Box<dyn Future<Output = Answer> + Send>> + use<> {
        let calls = Arc::clone(calls);
        move |_token| {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                answer
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_token_is_cached_for_30_seconds() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let a = cache
                .authenticate("bad", reviewer(&calls, Ok(None), Duration::ZERO))
                .await;
            assert!(matches!(a, Ok(None)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(UNKNOWN_TTL).await;
        let a = cache
            .authenticate("bad", reviewer(&calls, Ok(None), Duration::ZERO))
            .await;
        assert!(matches!(a, Ok(None)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_token_is_cached_for_2_minutes() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let ok = || reviewer(&calls, Ok(Some(alice())), Duration::ZERO);
        assert_eq!(cache.authenticate("t", ok()).await.unwrap(), Some(alice()));
        tokio::time::advance(KNOWN_TTL.saturating_sub(Duration::from_secs(1))).await;
        assert_eq!(cache.authenticate("t", ok()).await.unwrap(), Some(alice()));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        cache.authenticate("t", ok()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_and_timed_out_reviews_are_not_cached() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let down = Err(ReviewFailed::Apiserver("connection refused".into()));
        let a = cache
            .authenticate("t", reviewer(&calls, down, Duration::ZERO))
            .await;
        assert!(matches!(a, Err(ReviewFailed::Apiserver(_))));
        let a = cache
            .authenticate("t", reviewer(&calls, Ok(None), REVIEW_TIMEOUT * 2))
            .await;
        assert!(matches!(a, Err(ReviewFailed::TimedOut)));
        let a = cache
            .authenticate("t", reviewer(&calls, Ok(Some(alice())), Duration::ZERO))
            .await;
        assert_eq!(a.unwrap(), Some(alice()));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(cache.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_with_one_token_share_one_review() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = || reviewer(&calls, Ok(None), Duration::from_secs(1));
        let answers =
            futures::future::join_all((0..20).map(|_| cache.authenticate("same", slow()))).await;
        assert!(answers.iter().all(|a| matches!(a, Ok(None))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_outlives_the_caller_that_started_it() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = reviewer(&calls, Ok(None), Duration::from_secs(1));
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), cache.authenticate("t", slow)).await;
        assert!(gave_up.is_err());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(cache.in_flight.lock().unwrap().is_empty());
        let again = reviewer(&calls, Ok(None), Duration::ZERO);
        assert!(matches!(cache.authenticate("t", again).await, Ok(None)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reviews_in_flight_are_capped() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut pending = Vec::new();
        for i in 0..MAX_IN_FLIGHT {
            let c = Arc::clone(&cache);
            let r = reviewer(&calls, Ok(None), Duration::from_secs(5));
            pending.push(tokio::spawn(async move {
                c.authenticate(&format!("t{i}"), r).await
            }));
        }
        tokio::task::yield_now().await;
        while cache.in_flight.lock().unwrap().len() < MAX_IN_FLIGHT {
            tokio::task::yield_now().await;
        }
        let extra = reviewer(&calls, Ok(None), Duration::ZERO);
        assert!(matches!(
            cache.authenticate("one more", extra).await,
            Err(ReviewFailed::Busy)
        ));
        for p in pending {
            assert!(matches!(p.await.unwrap(), Ok(None)));
        }
        let extra = reviewer(&calls, Ok(None), Duration::ZERO);
        assert!(matches!(
            cache.authenticate("one more", extra).await,
            Ok(None)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_bad_tokens_stays_bounded_and_keeps_good_ones() {
        let cache = TokenCache::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let good = reviewer(&calls, Ok(Some(alice())), Duration::ZERO);
        cache.authenticate("good", good).await.unwrap();
        for i in 0..3 * UNKNOWN_LIMIT {
            let bad = reviewer(&calls, Ok(None), Duration::ZERO);
            cache.authenticate(&format!("bad{i}"), bad).await.unwrap();
        }
        assert_eq!(cache.unknown.len(), UNKNOWN_LIMIT);
        assert_eq!(cache.known.len(), 1);
        let before = calls.load(Ordering::SeqCst);
        let good = reviewer(&calls, Ok(Some(alice())), Duration::ZERO);
        assert_eq!(
            cache.authenticate("good", good).await.unwrap(),
            Some(alice())
        );
        assert_eq!(calls.load(Ordering::SeqCst), before);
    }

    #[test]
    fn keys_are_sha256_digests_not_tokens() {
        let d = digest("abc");
        assert_eq!(
            d[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256(\"abc\") starts ba7816bf"
        );
        assert_ne!(digest("abc"), digest("abd"));
    }
}
