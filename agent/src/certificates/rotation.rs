//! Renewal of a certificate in use (client-go's certificate manager, for the client and the
//! serving certificate alike). Timeline of one certificate:
//!
//! - notBefore ... 70-90% of the validity (a random point, [`schedule::deadline`]): wait;
//!   at once when there is no certificate or it no longer fits the template;
//! - then: a new ECDSA P-256 key, a CSR (generateName `csr-`, the current identity's
//!   credentials), a watch until it is issued (15 minutes at most, client-go's
//!   certificateWaitTimeout);
//! - issued: the pair is stored (`PREFIX-STAMP.pem`, the current link switched), the
//!   [`Identity`] replaced (new handshakes present it, old connections close), the TTL gauge
//!   set, and the next deadline computed from the new certificate;
//! - failed (create refused, denied, timed out, not storable): the renew-errors counter goes
//!   up and the renewal is tried again after 2 s, doubling to 32 s (client-go: 2 s x2 for five
//!   steps, then every 32 s); the certificate in use stays in use meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::CertError;
use super::csr_api::CsrApi;
use super::identity::Identity;
use super::issue::{self, Naming};
use super::pair::{Leaf, Pair};
use super::request::{self, Kind, Template};
use super::schedule;
use super::store::PairStore;
use crate::backoff::RetryBackoff;
use crate::metrics::certificates::{self as metrics, Which};
use crate::runtime::WallClock;

/// client-go's certificateWaitTimeout.
pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// At least this long between two renewals (client-go runs its rotation loop with a 1 s
/// period), so a signer that issues certificates already due cannot make the loop spin.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

fn which(kind: Kind) -> Which {
    match kind {
        Kind::Client => Which::Client,
        Kind::Serving => Which::Server,
    }
}

/// One managed certificate.
pub struct Rotation {
    pub api: Arc<dyn CsrApi>,
    pub store: PairStore,
    pub identity: Arc<Identity>,
    pub template: Template,
    pub clock: WallClock,
    /// The certificate in use (None: none yet).
    pub current: Option<Leaf>,
    /// Renew at once whatever the certificate (kubeadm's inline kubeconfig certificate).
    pub force: bool,
    /// Where in the 70-90% window (tests fix it; the agent draws it per certificate).
    pub fraction: fn() -> f64,
}

impl Rotation {
    pub fn new(
        api: Arc<dyn CsrApi>,
        store: PairStore,
        identity: Arc<Identity>,
        template: Template,
        current: Option<Leaf>,
    ) -> Rotation {
        Rotation {
            api,
            store,
            identity,
            template,
            clock: WallClock::System,
            current,
            force: false,
            fraction: schedule::random_fraction,
        }
    }

    /// One renewal: request, wait, store, present.
    async fn renew(&self) -> Result<Pair, CertError> {
        let key = request::generate_key()?;
        let issued = issue::obtain(
            self.api.as_ref(),
            &self.template,
            &key,
            Naming::Generated,
            ISSUE_TIMEOUT,
        )
        .await?;
        let pair = self.store.update(
            &issued.cert_pem,
            key.serialize_pem().as_bytes(),
            self.clock.now(),
        )?;
        self.identity.replace(&pair);
        info!(
            csr = %issued.csr_name,
            signer = self.template.kind.signer(),
            path = %self.store.current_path().display(),
            "Certificate rotation detected, shutting down client connections to start using new credentials"
        );
        Ok(pair)
    }

    /// Renews until it works; false when cancelled first.
    async fn renew_until_done(&mut self, cancel: &CancellationToken) -> bool {
        let mut backoff = RetryBackoff::new(Duration::from_secs(2), Duration::from_secs(32));
        loop {
            let result = tokio::select! {
                r = self.renew() => r,
                () = cancel.cancelled() => return false,
            };
            match result {
                Ok(pair) => {
                    metrics::set_expiry(which(self.template.kind), Some(pair.leaf.not_after));
                    self.current = Some(pair.leaf);
                    return true;
                }
                Err(e) => {
                    metrics::count_renew_error(which(self.template.kind));
                    let delay = backoff.next_delay();
                    error!(error = %e, signer = self.template.kind.signer(), retry_in = ?delay, "certificate renewal failed");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = cancel.cancelled() => return false,
                    }
                }
            }
        }
    }

    /// Keeps the certificate renewed until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        metrics::set_expiry(
            which(self.template.kind),
            self.current.as_ref().map(|l| l.not_after),
        );
        let mut floor = Duration::ZERO;
        loop {
            let now = self.clock.now();
            let at = if std::mem::take(&mut self.force) {
                now
            } else {
                schedule::next_renewal(
                    self.current.as_ref(),
                    &self.template,
                    (self.fraction)(),
                    now,
                )
            };
            let wait = schedule::until(at, now).max(std::mem::replace(&mut floor, MIN_PERIOD));
            info!(
                signer = self.template.kind.signer(),
                deadline = %k8s_openapi::jiff::Timestamp::try_from(at).map(|t| t.to_string()).unwrap_or_default(),
                sleep = ?wait,
                "Waiting for next certificate rotation"
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return,
            }
            if !self.renew_until_done(&cancel).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake_csr::{FakeCsr, Outcome};
    use super::super::pair;
    use super::*;

    /// The identity's key if it presents the stored certificate.
    fn stored_key(
        identity: &Identity,
        stored: &Pair,
    ) -> Arc<tokio_rustls::rustls::sign::CertifiedKey> {
        let current = identity.current().unwrap();
        assert_eq!(
            current.cert, stored.certified.cert,
            "the stored certificate is presented"
        );
        current
    }

    async fn wait_created(api: &FakeCsr, n: usize) {
        while api.created().len() < n {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn start(
        api: &Arc<FakeCsr>,
        dir: &std::path::Path,
        kind: Kind,
        lifetime: Duration,
    ) -> (Rotation, Arc<Identity>) {
        let clock = api.clock;
        let template = match kind {
            Kind::Client => Template::client("n1"),
            Kind::Serving => Template::serving("n1", "n1", &["10.0.0.1".parse().unwrap()]),
        };
        let key = request::generate_key().unwrap();
        let cert = super::super::pair::testing::leaf(
            &api.ca,
            &key,
            "system:node:n1",
            &[],
            clock.now(),
            lifetime,
        );
        let first = pair::parse(cert.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let identity = Identity::new(Some(&first));
        let store = PairStore::new(dir, kind.prefix());
        let mut r = Rotation::new(
            api.clone(),
            store,
            identity.clone(),
            template,
            Some(first.leaf),
        );
        r.clock = clock;
        (r, identity)
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_certificate_is_renewed_within_70_to_90_percent_and_presented() {
        let dir = tempfile::tempdir().unwrap();
        let issue = |s| Outcome::Issue {
            lifetime: Duration::from_secs(s),
            delay: Duration::from_secs(1),
        };
        let api = Arc::new(FakeCsr::new(
            WallClock::tokio(),
            vec![issue(1000), issue(1000)],
        ));
        let (rotation, identity) = start(&api, dir.path(), Kind::Client, Duration::from_secs(100));
        let generation = identity.generation();
        let started = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(rotation.run(cancel.clone()));
        wait_created(&api, 1).await;
        // 70-90% of 100 s after notBefore, which X.509 keeps in whole seconds (up to 1 s
        // before the certificate was made).
        let first = api.created_at.lock().unwrap()[0] - started;
        assert!(
            first > Duration::from_secs(69) && first <= Duration::from_secs(90),
            "{first:?}"
        );
        let csr = &api.created()[0];
        assert_eq!(csr.metadata.generate_name.as_deref(), Some("csr-"));
        assert_eq!(
            csr.spec.signer_name,
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        // Issued a second later: stored, linked, presented, old connections told to close.
        while !generation.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stored = PairStore::new(dir.path(), "kubelet-client")
            .current()
            .unwrap()
            .unwrap();
        assert_eq!(stored.leaf.lifetime(), Duration::from_secs(1000));
        assert!(Arc::ptr_eq(
            &identity.current().unwrap(),
            &stored_key(&identity, &stored)
        ));
        assert_eq!(
            std::fs::read_link(dir.path().join("kubelet-client-current.pem"))
                .unwrap()
                .parent(),
            Some(dir.path())
        );
        // The next one comes at 70-90% of the new certificate.
        wait_created(&api, 2).await;
        let second = (api.created_at.lock().unwrap()[1] - started)
            .checked_sub(first + Duration::from_secs(1))
            .unwrap();
        assert!(
            second > Duration::from_secs(699) && second <= Duration::from_secs(900),
            "{second:?}"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn certificates_issued_already_due_are_renewed_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let due = || Outcome::Issue {
            lifetime: Duration::ZERO,
            delay: Duration::ZERO,
        };
        let api = Arc::new(FakeCsr::new(WallClock::tokio(), vec![due(), due(), due()]));
        let (mut rotation, _identity) =
            start(&api, dir.path(), Kind::Client, Duration::from_secs(100));
        rotation.fraction = || 0.5;
        let started = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(rotation.run(cancel.clone()));
        wait_created(&api, 3).await;
        let at: Vec<Duration> = api
            .created_at
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - started)
            .collect();
        // The first at 80% (notBefore is whole seconds, so up to a second earlier), then
        // each renewal of an already-due certificate a second after the one before.
        assert!(
            at[0] > Duration::from_secs(79) && at[0] <= Duration::from_secs(80),
            "{at:?}"
        );
        assert_eq!(
            at[1].checked_sub(at[0]).unwrap(),
            Duration::from_secs(1),
            "{at:?}"
        );
        assert_eq!(
            at[2].checked_sub(at[1]).unwrap(),
            Duration::from_secs(1),
            "{at:?}"
        );
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_renewal_is_retried_with_backoff_and_the_old_certificate_stays() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Outcome::Issue {
            lifetime: Duration::from_secs(1000),
            delay: Duration::ZERO,
        };
        let api = Arc::new(FakeCsr::new(
            WallClock::tokio(),
            vec![Outcome::Deny, Outcome::Deny, ok],
        ));
        let (mut rotation, identity) =
            start(&api, dir.path(), Kind::Serving, Duration::from_secs(100));
        rotation.fraction = || 0.5;
        let before = identity.current().unwrap();
        let started = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(rotation.run(cancel.clone()));
        wait_created(&api, 2).await;
        assert!(
            Arc::ptr_eq(&identity.current().unwrap(), &before),
            "the old certificate stays in use"
        );
        wait_created(&api, 3).await;
        let at: Vec<Duration> = api
            .created_at
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - started)
            .collect();
        // The first certificate lacks the template's SANs: renewed at once, then after 2 s and 4 s.
        assert_eq!(
            at,
            vec![
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(6)
            ]
        );
        let csr = &api.created()[2];
        assert_eq!(csr.spec.signer_name, "kubernetes.io/kubelet-serving");
        while Arc::ptr_eq(&identity.current().unwrap(), &before) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let presented = identity.current().unwrap();
        let leaf = pair::parse_leaf(presented.cert[0].as_ref()).unwrap();
        assert_eq!(
            leaf.ip_addresses,
            vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(leaf.dns_names, vec!["n1".to_string()]);
        cancel.cancel();
        task.await.unwrap();
    }
}
