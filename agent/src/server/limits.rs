//! Connection admission for the HTTPS API: separate slot pools for connections still in the
//! TLS handshake, connections without a verified client certificate (bearer token or
//! anonymous) and connections with one (the apiserver's logs/exec/port-forward), each with an
//! optional cap per source address. Separate pools are what keep a flood of unauthenticated
//! or slow clients from taking capacity away from certificate-authenticated streams: they can
//! only exhaust their own pool.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use prometheus::{IntCounterVec, Opts};
use tokio_util::sync::CancellationToken;

/// TLS handshakes in flight. A real client's handshake takes milliseconds, so this only has
/// to absorb bursts; when it is full the oldest handshake makes room (see [`Overflow`]).
pub const HANDSHAKES: usize = 256;
/// Handshakes in flight from one source: a burst of parallel connections from one client
/// fits, and one source holds at most a quarter of the pool.
pub const HANDSHAKES_PER_SOURCE: usize = 64;
/// Connections without a client certificate: metrics-server, Prometheus and other token
/// holders each need a few keep-alive connections.
pub const WITHOUT_CERT: usize = 128;
pub const WITHOUT_CERT_PER_SOURCE: usize = 32;
/// Connections with a verified client certificate. No cap per source: every user's exec,
/// attach, port-forward and log stream arrives from the few apiserver addresses, and each
/// long-lived stream holds its slot.
pub const WITH_CERT: usize = 512;
/// One source may hold three quarters of them, so a holder of some other certificate from the
/// client CA (another node's, say) cannot take every slot from the apiserver's addresses.
pub const WITH_CERT_PER_SOURCE: usize = 384;

/// What a pool does with a newcomer when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The newcomer is refused: for pools whose members are serving requests.
    Refuse,
    /// The oldest member is evicted: for handshakes, where the oldest is the likeliest to be a
    /// stalled client, and refusing would let a stalled flood lock everyone out until the
    /// handshake deadline.
    EvictOldest,
}

/// Why a connection was not admitted (the label of the refusal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerSource,
    Total,
}

/// A bounded set of connection slots.
#[derive(Debug)]
pub struct Pool {
    name: &'static str,
    total: usize,
    per_source: usize,
    overflow: Overflow,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    next: u64,
    /// Admission order: sequence number -> (source, the member's eviction signal).
    members: BTreeMap<u64, (IpAddr, CancellationToken)>,
    by_source: HashMap<IpAddr, BTreeSet<u64>>,
}

impl PoolState {
    fn remove(&mut self, seq: u64) -> Option<CancellationToken> {
        let (source, evicted) = self.members.remove(&seq)?;
        if let Some(set) = self.by_source.get_mut(&source) {
            set.remove(&seq);
            if set.is_empty() {
                self.by_source.remove(&source);
            }
        }
        Some(evicted)
    }

    fn count(&self, source: &IpAddr) -> usize {
        self.by_source.get(source).map_or(0, BTreeSet::len)
    }

    fn oldest_of(&self, source: &IpAddr) -> Option<u64> {
        self.by_source.get(source)?.first().copied()
    }

    /// The oldest member of the source holding the most slots: a full pool makes room at the
    /// expense of whoever fills it, so a flood from a few sources cannot push out a
    /// newcomer's handshake from elsewhere.
    fn oldest_of_heaviest(&self) -> Option<u64> {
        self.by_source
            .values()
            .max_by_key(|seqs| seqs.len())
            .and_then(|seqs| seqs.first().copied())
    }
}

impl Pool {
    /// A pool of `total` slots, at most `per_source` of them for one source.
    pub fn new(
        name: &'static str,
        total: usize,
        per_source: usize,
        overflow: Overflow,
    ) -> Arc<Pool> {
        show_refusals(name, overflow, per_source < total);
        Arc::new(Pool {
            name,
            total,
            per_source: per_source.min(total),
            overflow,
            state: Mutex::new(PoolState::default()),
        })
    }

    /// Takes a slot for a connection from `peer`, evicting or refusing as the pool's policy
    /// says when a cap is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let source = source_of(peer);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.count(&source) >= self.per_source {
            let oldest = state.oldest_of(&source);
            self.make_room(&mut state, oldest, Refusal::PerSource)?;
        }
        if state.members.len() >= self.total {
            let victim = state.oldest_of_heaviest();
            self.make_room(&mut state, victim, Refusal::Total)?;
        }
        let seq = state.next;
        state.next += 1;
        let evicted = CancellationToken::new();
        state.members.insert(seq, (source, evicted.clone()));
        state.by_source.entry(source).or_default().insert(seq);
        Ok(Slot {
            pool: Arc::clone(self),
            seq,
            evicted,
        })
    }

    fn make_room(
        &self,
        state: &mut PoolState,
        victim: Option<u64>,
        why: Refusal,
    ) -> Result<(), Refusal> {
        count_refusal(self.name, why, self.overflow);
        match (self.overflow, victim) {
            (Overflow::EvictOldest, Some(seq)) => {
                if let Some(evicted) = state.remove(seq) {
                    evicted.cancel();
                }
                Ok(())
            }
            _ => Err(why),
        }
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .members
            .len()
    }

    fn release(&self, seq: u64) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(seq);
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    pool: Arc<Pool>,
    seq: u64,
    evicted: CancellationToken,
}

impl Slot {
    /// Resolves when the pool evicted this member to make room for a newer one.
    pub async fn evicted(&self) {
        self.evicted.cancelled().await;
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.is_cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted slot is already gone from the pool; removing it again is a no-op.
        self.pool.release(self.seq);
    }
}

/// The address a per-source cap counts against: IPv6 clients usually own a whole /64, so
/// they count by /64; IPv4-mapped addresses count as their IPv4 address.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                IpAddr::V4(v4)
            } else {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }
    }
}

/// The API's three pools.
#[derive(Debug, Clone)]
pub struct Limits {
    pub handshakes: Arc<Pool>,
    pub without_cert: Arc<Pool>,
    pub with_cert: Arc<Pool>,
}

impl Limits {
    pub fn new() -> Limits {
        Limits {
            handshakes: Pool::new(
                "handshake",
                HANDSHAKES,
                HANDSHAKES_PER_SOURCE,
                Overflow::EvictOldest,
            ),
            without_cert: Pool::new(
                "without_cert",
                WITHOUT_CERT,
                WITHOUT_CERT_PER_SOURCE,
                Overflow::Refuse,
            ),
            with_cert: Pool::new(
                "with_cert",
                WITH_CERT,
                WITH_CERT_PER_SOURCE,
                Overflow::Refuse,
            ),
        }
    }

    /// The pool a connection belongs in once its handshake is done.
    pub fn after_handshake(&self, has_client_cert: bool) -> &Arc<Pool> {
        if has_client_cert {
            &self.with_cert
        } else {
            &self.without_cert
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new()
    }
}

/// `minikubelet_server_connections_refused_total{pool, reason}`, registered into the agent's
/// registry on first use (None if that fails: the refusal is still logged).
fn refused_counter() -> Option<&'static IntCounterVec> {
    static COUNTER: OnceLock<Option<IntCounterVec>> = OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let opts = Opts::new(
                "minikubelet_server_connections_refused_total",
                "Connections to the HTTPS API refused or evicted by the connection limits",
            );
            let counter = IntCounterVec::new(opts, &["pool", "reason"]).ok()?;
            let registry = &crate::metrics::global()?.registry;
            match registry.register(Box::new(counter.clone())) {
                Ok(()) => Some(counter),
                Err(error) => {
                    tracing::debug!(%error, "connection refusal counter not registered");
                    None
                }
            }
        })
        .as_ref()
}

fn reason(overflow: Overflow, why: Refusal) -> &'static str {
    match (overflow, why) {
        (Overflow::EvictOldest, Refusal::PerSource) => "evicted_per_source",
        (Overflow::EvictOldest, Refusal::Total) => "evicted_total",
        (Overflow::Refuse, Refusal::PerSource) => "per_source",
        (Overflow::Refuse, Refusal::Total) => "total",
    }
}

/// Creates the pool's series at zero, so that dashboards see them before the first refusal.
fn show_refusals(pool: &'static str, overflow: Overflow, capped_per_source: bool) {
    if let Some(c) = refused_counter() {
        c.with_label_values(&[pool, reason(overflow, Refusal::Total)]);
        if capped_per_source {
            c.with_label_values(&[pool, reason(overflow, Refusal::PerSource)]);
        }
    }
}

fn count_refusal(pool: &'static str, why: Refusal, overflow: Overflow) {
    let reason = reason(overflow, why);
    tracing::debug!(pool, reason, "connection limit reached");
    if let Some(c) = refused_counter() {
        c.with_label_values(&[pool, reason]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refusing_pool_counts_per_source_and_total_and_frees_on_drop() {
        let pool = Pool::new("t", 3, 2, Overflow::Refuse);
        let a1 = pool.admit(ip("10.0.0.1")).unwrap();
        let _a2 = pool.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(pool.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerSource);
        let _b1 = pool.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(pool.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        assert_eq!(pool.in_use(), 3);
        drop(a1);
        assert_eq!(pool.in_use(), 2);
        let _a3 = pool.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(pool.in_use(), 3);
    }

    #[test]
    fn evicting_pool_drops_the_oldest_of_the_source_then_of_the_heaviest_source() {
        let pool = Pool::new("t", 3, 2, Overflow::EvictOldest);
        let a1 = pool.admit(ip("10.0.0.1")).unwrap();
        let b1 = pool.admit(ip("10.0.0.2")).unwrap();
        let a2 = pool.admit(ip("10.0.0.1")).unwrap();
        // 10.0.0.1 is at its cap: its own oldest goes, not 10.0.0.2's.
        let a3 = pool.admit(ip("10.0.0.1")).unwrap();
        assert!(a1.is_evicted() && !b1.is_evicted() && !a2.is_evicted());
        assert_eq!(pool.in_use(), 3);
        // The pool is full: the oldest of the source holding most (a2 of 10.0.0.1) goes, not
        // the older b1 of a source with one slot.
        let c1 = pool.admit(ip("10.0.0.3")).unwrap();
        assert!(a2.is_evicted() && !b1.is_evicted() && !a3.is_evicted());
        // Dropping an evicted slot does not free a live one.
        drop(a1);
        drop(a2);
        assert_eq!(pool.in_use(), 3);
        drop((b1, a3, c1));
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn eviction_wakes_the_evicted_member() {
        let pool = Pool::new("t", 1, 1, Overflow::EvictOldest);
        let old = pool.admit(ip("10.0.0.1")).unwrap();
        let _new = pool.admit(ip("10.0.0.2")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), old.evicted())
            .await
            .unwrap();
    }

    #[test]
    fn a_certificate_connection_is_admitted_while_the_other_pools_are_full() {
        let limits = Limits::new();
        let attacker = ip("127.0.0.1");
        let mut held = Vec::new();
        // The attacker opens far more connections than any pool holds, from the same address
        // as the apiserver, both stalled in the handshake and past it without a certificate.
        for _ in 0..1000 {
            if let Ok(s) = limits.handshakes.admit(attacker) {
                held.push(s);
            }
            if let Ok(s) = limits.after_handshake(false).admit(attacker) {
                held.push(s);
            }
        }
        assert_eq!(limits.without_cert.in_use(), WITHOUT_CERT_PER_SOURCE);
        assert!(limits.after_handshake(false).admit(attacker).is_err());
        // The apiserver's new connection still gets a handshake slot (the oldest stalled one
        // is evicted) and, with its certificate, a connection slot.
        let handshake = limits.handshakes.admit(attacker).unwrap();
        assert!(!handshake.is_evicted());
        let apiserver = limits.after_handshake(true).admit(attacker);
        assert!(apiserver.is_ok());
        drop(handshake);
        // Established certificate connections are never evicted by newcomers of any kind.
        let established: Vec<Slot> = (0..10)
            .map(|_| limits.with_cert.admit(attacker).unwrap())
            .collect();
        for _ in 0..1000 {
            held.push(limits.handshakes.admit(attacker).unwrap());
            let _ = limits.without_cert.admit(attacker);
        }
        assert!(established.iter().all(|s| !s.is_evicted()));
        assert_eq!(limits.with_cert.in_use(), 11);
    }

    #[test]
    fn per_source_caps_count_ipv6_by_slash_64() {
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(source_of(ip("10.1.2.3")), ip("10.1.2.3"));
        let pool = Pool::new("t", 10, 1, Overflow::Refuse);
        let _a = pool.admit(ip("2001:db8::1")).unwrap();
        assert!(pool.admit(ip("2001:db8::2")).is_err());
        assert!(pool.admit(ip("2001:db8:0:1::1")).is_ok());
    }
}
