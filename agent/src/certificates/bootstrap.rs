//! The TLS bootstrap (kubelet's `LoadClientCert`): with --bootstrap-kubeconfig, when
//! --kubeconfig has no usable client certificate, request one with the bootstrap token's
//! credentials and write the kubeconfig that uses it. Steps:
//!
//! 1. the key: the one of the current pair if it parses, else the one cached in
//!    `CERT_DIR/kubelet-client.key.tmp` (0600), else a new ECDSA P-256 key cached there, so a
//!    restart during the wait finds its own CSR again (the name is a digest of the key);
//! 2. a CSR `node-csr-HASH` for CN=system:node:NODE, O=system:nodes, signer
//!    kubernetes.io/kube-apiserver-client-kubelet, usages digital signature + client auth;
//! 3. a watch until it is approved and issued (one hour at most, as kubelet);
//! 4. the pair into `kubelet-client-STAMP.pem` with the `kubelet-client-current.pem` link,
//!    the cached key removed, and the kubeconfig written pointing at the link.
//!
//! kubelet exits when the CSR is denied; this agent logs the denial and tries again with a
//! new key (a denied name cannot be reused), waiting 2 s doubling to 32 s between attempts.

use std::path::Path;
use std::time::Duration;

use kube::config::Kubeconfig;
use rcgen::KeyPair;
use tracing::{error, info};

use super::CertError;
use super::csr_api::CsrApi;
use super::issue::{self, Naming};
use super::kubeconfig;
use super::pair::Pair;
use super::request::{self, Template};
use super::store::{self, PairStore};
use crate::backoff::RetryBackoff;
use crate::runtime::WallClock;

/// kubelet waits this long for its bootstrap CSR to be issued.
pub const ISSUE_TIMEOUT: Duration = Duration::from_secs(3600);
/// The cached key's name, as kubelet's.
pub const TMP_KEY: &str = "kubelet-client.key.tmp";

/// The key to request with: the current pair's, else the cached one, else a new one (cached).
fn load_or_generate_key(store: &PairStore) -> Result<KeyPair, CertError> {
    if let Ok(Some(pair)) = store.current()
        && let Ok(key) = KeyPair::from_pem(&pair.key_pem)
    {
        return Ok(key);
    }
    let cached = store.dir.join(TMP_KEY);
    if let Ok(text) = std::fs::read_to_string(&cached)
        && let Ok(key) = KeyPair::from_pem(&text)
    {
        return Ok(key);
    }
    let key = request::generate_key()?;
    store::ensure_private_dir(&store.dir)?;
    store::write_private(&cached, key.serialize_pem().as_bytes())?;
    Ok(key)
}

/// Whether an error burns the CSR's name, so the next attempt needs a new key.
fn needs_new_key(e: &CertError) -> bool {
    use super::csr_api::CsrError;
    matches!(
        e,
        CertError::Csr(CsrError::Denied { .. } | CsrError::Failed { .. } | CsrError::Deleted(_))
            | CertError::Incompatible(_)
    )
}

/// One attempt: request, wait, store.
async fn attempt(
    api: &dyn CsrApi,
    store: &PairStore,
    template: &Template,
    clock: WallClock,
) -> Result<Pair, CertError> {
    let key = load_or_generate_key(store)?;
    let issued = issue::obtain(api, template, &key, Naming::Digest, ISSUE_TIMEOUT).await?;
    let pair = store.update(
        &issued.cert_pem,
        key.serialize_pem().as_bytes(),
        clock.now(),
    )?;
    info!(csr = %issued.csr_name, path = %store.current_path().display(), "client certificate issued and stored");
    Ok(pair)
}

/// Gets a client certificate through the bootstrap and writes `kubeconfig_path` for it;
/// retries until it succeeds.
pub async fn load_client_cert(
    api: &dyn CsrApi,
    bootstrap: &Kubeconfig,
    kubeconfig_path: &Path,
    store: &PairStore,
    node: &str,
    clock: WallClock,
) -> Result<Pair, CertError> {
    let template = Template::client(node);
    let mut backoff = RetryBackoff::new(Duration::from_secs(2), Duration::from_secs(32));
    loop {
        match attempt(api, store, &template, clock).await {
            Ok(pair) => {
                let _ = std::fs::remove_file(store.dir.join(TMP_KEY));
                kubeconfig::write_bootstrapped(bootstrap, kubeconfig_path, &store.current_path())?;
                info!(kubeconfig = %kubeconfig_path.display(), "wrote the kubeconfig of the bootstrapped client certificate");
                return Ok(pair);
            }
            Err(e) => {
                if needs_new_key(&e) {
                    let _ = std::fs::remove_file(store.dir.join(TMP_KEY));
                }
                let delay = backoff.next_delay();
                crate::metrics::certificates::count_renew_error(
                    crate::metrics::certificates::Which::Client,
                );
                error!(error = %e, retry_in = ?delay, "TLS bootstrap: no client certificate yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::fake_csr::{FakeCsr, Outcome};
    use super::*;

    const BOOTSTRAP: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\nusers:\n- name: b\n  user:\n    token: abc.def\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: b\ncurrent-context: x\n";

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test(start_paused = true)]
    async fn a_bootstrap_requests_a_node_csr_and_writes_the_pair_and_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let clock = WallClock::tokio();
        let api = FakeCsr::new(
            clock,
            vec![Outcome::Issue {
                lifetime: Duration::from_secs(3600),
                delay: Duration::from_secs(5),
            }],
        );
        let store = PairStore::new(&dir.path().join("pki"), "kubelet-client");
        let kc = dir.path().join("kubeconfig");
        let bootstrap = Kubeconfig::from_yaml(BOOTSTRAP).unwrap();
        let pair = load_client_cert(&api, &bootstrap, &kc, &store, "n1", clock)
            .await
            .unwrap();
        assert_eq!(pair.leaf.common_name, "system:node:n1");
        let created = api.created();
        assert_eq!(created.len(), 1);
        let name = created[0].metadata.name.clone().unwrap();
        assert!(name.starts_with("node-csr-"), "{name}");
        assert_eq!(
            created[0].spec.signer_name,
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        assert_eq!(mode(&kc), 0o600);
        assert_eq!(mode(&store.current_path()), 0o600);
        assert!(
            !store.dir.join(TMP_KEY).exists(),
            "the cached key is removed"
        );
        assert!(kubeconfig::still_valid(&kc, clock.now()).unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_denied_csr_is_an_error_and_a_new_key_is_tried_after_a_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let clock = WallClock::tokio();
        let issue = Outcome::Issue {
            lifetime: Duration::from_secs(3600),
            delay: Duration::ZERO,
        };
        let api = FakeCsr::new(clock, vec![Outcome::Deny, Outcome::CreateFails, issue]);
        let store = PairStore::new(dir.path(), "kubelet-client");
        let bootstrap = Kubeconfig::from_yaml(BOOTSTRAP).unwrap();
        let start = tokio::time::Instant::now();
        load_client_cert(
            &api,
            &bootstrap,
            &dir.path().join("kc"),
            &store,
            "n1",
            clock,
        )
        .await
        .unwrap();
        let at: Vec<Duration> = api
            .created_at
            .lock()
            .unwrap()
            .iter()
            .map(|t| *t - start)
            .collect();
        // Denied at 0, the create failing at 2 s, the third attempt 4 s later.
        assert_eq!(
            at,
            vec![
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(6)
            ]
        );
        let created = api.created();
        assert_eq!(created.len(), 2, "the failed create made nothing");
        assert_ne!(
            created[0].metadata.name, created[1].metadata.name,
            "a denied name is not reused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_during_the_wait_finds_its_own_csr_again() {
        let dir = tempfile::tempdir().unwrap();
        let clock = WallClock::tokio();
        let store = PairStore::new(dir.path(), "kubelet-client");
        let key = load_or_generate_key(&store).unwrap();
        assert_eq!(mode(&dir.path().join(TMP_KEY)), 0o600);
        let template = Template::client("n1");
        let api = FakeCsr::new(
            clock,
            vec![Outcome::Issue {
                lifetime: Duration::from_secs(60),
                delay: Duration::ZERO,
            }],
        );
        // The CSR of the first run exists already.
        let earlier = request::object(
            &template,
            &request::csr_pem(&template, &key).unwrap(),
            Some(request::bootstrap_name(&key, &template)),
        );
        api.create(&earlier).await.unwrap();
        let bootstrap = Kubeconfig::from_yaml(BOOTSTRAP).unwrap();
        load_client_cert(
            &api,
            &bootstrap,
            &dir.path().join("kc"),
            &store,
            "n1",
            clock,
        )
        .await
        .unwrap();
        assert_eq!(api.created().len(), 1, "the existing CSR was reused");
    }
}
