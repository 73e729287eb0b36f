//! The certificate a TLS handshake presents, swappable while connections run: a client
//! identity resolved by every new API connection (rustls `ResolvesClientCert`) and a serving
//! certificate resolved by every handshake on the kubelet port (`ResolvesServerCert`).
//!
//! Each replacement starts a new generation and cancels the old one's token: connections
//! opened under the old certificate watch that token and close (kubelet's closeAllConns after
//! a rotation), because the API server checks a client certificate's validity on every
//! request, so a connection made with the old one stops working when it expires.
//! Like client-go's manager, an expired certificate is not presented at all.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use tokio_rustls::rustls::SignatureScheme;
use tokio_rustls::rustls::client::ResolvesClientCert;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::pair::Pair;

#[derive(Debug)]
struct Current {
    key: Option<Arc<CertifiedKey>>,
    not_after: Option<SystemTime>,
    generation: CancellationToken,
}

/// The swappable certificate.
#[derive(Debug)]
pub struct Identity {
    current: RwLock<Current>,
}

impl Identity {
    /// An identity holding `pair`, or nothing yet (handshakes go without a certificate).
    pub fn new(pair: Option<&Pair>) -> Arc<Identity> {
        Arc::new(Identity {
            current: RwLock::new(Current {
                key: pair.map(|p| p.certified.clone()),
                not_after: pair.map(|p| p.leaf.not_after),
                generation: CancellationToken::new(),
            }),
        })
    }

    /// The certificate to present now: None when there is none or it has expired.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let c = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match c.not_after {
            Some(end) if SystemTime::now() > end => None,
            _ => c.key.clone(),
        }
    }

    /// The token a connection opened now watches: cancelled at the next replacement.
    pub fn generation(&self) -> CancellationToken {
        let c = self.current.read().unwrap_or_else(PoisonError::into_inner);
        c.generation.clone()
    }

    /// Presents `pair` from now on and closes the connections of the previous generation.
    pub fn replace(&self, pair: &Pair) {
        let old = {
            let mut c = self.current.write().unwrap_or_else(PoisonError::into_inner);
            c.key = Some(pair.certified.clone());
            c.not_after = Some(pair.leaf.not_after);
            std::mem::replace(&mut c.generation, CancellationToken::new())
        };
        old.cancel();
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for Identity {
    /// None fails the handshake: kubelet's "no serving certificate available for the kubelet".
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::pair::{self, testing};
    use super::*;

    fn pair(cn: &str, from: SystemTime, lifetime: Duration) -> Pair {
        let ca = testing::ca();
        let (c, k) = testing::pair(&ca, cn, from, lifetime);
        pair::parse(c.as_bytes(), k.as_bytes()).unwrap()
    }

    #[test]
    fn a_replacement_is_presented_and_ends_the_previous_generation() {
        let now = SystemTime::now();
        let id = Identity::new(None);
        assert!(id.current().is_none());
        let first = id.generation();
        let a = pair("a", now, Duration::from_secs(3600));
        id.replace(&a);
        assert!(first.is_cancelled());
        let second = id.generation();
        assert!(!second.is_cancelled());
        assert!(Arc::ptr_eq(&id.current().unwrap(), &a.certified));
        let b = pair("b", now, Duration::from_secs(3600));
        id.replace(&b);
        assert!(second.is_cancelled());
        assert!(Arc::ptr_eq(&id.current().unwrap(), &b.certified));
    }

    #[test]
    fn an_expired_certificate_is_not_presented() {
        let past = SystemTime::now() - Duration::from_secs(7200);
        let id = Identity::new(Some(&pair("old", past, Duration::from_secs(60))));
        assert!(id.current().is_none());
    }
}
