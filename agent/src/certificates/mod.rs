//! The node's own certificates, as kubelet manages them: the TLS bootstrap of the client
//! certificate (`--bootstrap-kubeconfig`, `--kubeconfig`, `--cert-dir`), its rotation in place
//! (`rotateCertificates`), and the serving certificate from a `kubernetes.io/kubelet-serving`
//! CSR (`serverTLSBootstrap`). [`start`] is the one call the agent makes: it bootstraps when
//! needed and returns the API client every other part uses, plus the renewal tasks.
//!
//! - [`request`]: key, PKCS#10 request, signer, usages, the bootstrap CSR's name;
//! - [`csr_api`]: the seam over the certificates API (create, get, wait until issued) and the
//!   rule for reading a CSR's status; [`kube_csr`]: its implementation over the API server;
//! - [`issue`]: one certificate for one key (create or reuse, then wait);
//! - [`pair`]: PEM pairs parsed, their leaf's names and validity; [`store`]: the cert-dir
//!   files (`kubelet-client-*.pem`, the `-current.pem` link switched atomically);
//! - [`kubeconfig`]: whether --kubeconfig is still usable, and the one the bootstrap writes;
//! - [`bootstrap`]: the bootstrap flow; [`schedule`]: when to renew (70-90% of the validity);
//!   [`rotation`]: the renewal loop;
//! - [`identity`]: the swappable certificate behind the TLS resolvers; [`connector`] and
//!   [`client`]: the API client over it, whose connections close after a rotation.

pub mod bootstrap;
pub mod client;
pub mod connector;
pub mod csr_api;
#[cfg(test)]
mod fake_csr;
pub mod identity;
pub mod issue;
pub mod kube_csr;
pub mod kubeconfig;
pub mod pair;
pub mod request;
pub mod rotation;
pub mod schedule;
pub mod store;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio_rustls::rustls::server::ResolvesServerCert;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use identity::Identity;
use kube_csr::KubeCsr;
use pair::Pair;
use request::{Kind, Template};
use rotation::Rotation;
use store::PairStore;

/// Why the node's credentials could not be set up. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    #[error("cannot use kubeconfig {path}: {message}")]
    KubeconfigInvalid { path: PathBuf, message: String },
    #[error("cannot build the API client: {0}")]
    Client(String),
    #[error(transparent)]
    Request(#[from] request::RequestError),
    #[error(transparent)]
    Csr(#[from] csr_api::CsrError),
    #[error("certificate store: {0}")]
    Store(#[from] store::StoreError),
    #[error("retrieved csr is not compatible: {0}")]
    Incompatible(String),
}

/// The API client and the renewals to run beside it.
pub struct NodeCredentials {
    /// The client every part of the agent uses (its certificate rotates in place when
    /// rotation is on).
    pub client: kube::Client,
    rotations: Vec<Rotation>,
}

async fn plain_client(path: &std::path::Path) -> Result<kube::Client, CertError> {
    let config = kubeconfig::client_config(path).await?;
    client::plain_client(&config).map_err(|e| CertError::KubeconfigInvalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The client pair to start rotating from, and whether to renew it at once: the store's
/// current pair, else the kubeconfig's own (an inline one is copied into the store and renewed
/// at once, as kubelet does with kubeadm's kubeconfig).
fn starting_pair(
    store: &PairStore,
    kubeconfig: &kube::config::Kubeconfig,
    now: SystemTime,
) -> (Option<Pair>, bool) {
    match store.current() {
        Ok(Some(p)) if !p.leaf.expired_at(now) => return (Some(p), false),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "the current client certificate cannot be read"),
    }
    match kubeconfig::identity(kubeconfig) {
        Ok(Some((p, kubeconfig::Source::Inline))) => {
            if let Err(e) = store.update(p.cert_pem.as_bytes(), p.key_pem.as_bytes(), now) {
                warn!(error = %e, "cannot copy the kubeconfig's client certificate into the cert dir");
            }
            (Some(p), true)
        }
        Ok(Some((p, kubeconfig::Source::Files { .. }))) => (Some(p), false),
        Ok(None) => (None, true),
        Err(e) => {
            warn!(error = %e, "the kubeconfig's client certificate cannot be read");
            (None, true)
        }
    }
}

/// Bootstraps the client certificate when `kubeconfig` (--kubeconfig) needs one (and a
/// bootstrap kubeconfig is given), then builds the API client: a rotating one with
/// `rotateCertificates`.
pub async fn start(config: &Config, kubeconfig: &Path) -> Result<NodeCredentials, CertError> {
    let settings = &config.certificates;
    let now = SystemTime::now();
    let store = PairStore::new(&settings.cert_dir, Kind::Client.prefix());
    if let Some(path) = &settings.bootstrap_kubeconfig
        && !kubeconfig::still_valid(kubeconfig, now)?
    {
        info!(bootstrap_kubeconfig = %path.display(), "Using bootstrap kubeconfig to generate TLS client cert, key and kubeconfig file");
        let bootstrap = kubeconfig::read(path)?;
        let api = KubeCsr::new(plain_client(path).await?);
        bootstrap::load_client_cert(
            &api,
            &bootstrap,
            kubeconfig,
            &store,
            &config.node_name,
            crate::runtime::WallClock::System,
        )
        .await?;
    }
    if !settings.rotate_certificates {
        let client = plain_client(kubeconfig).await?;
        return Ok(NodeCredentials {
            client,
            rotations: Vec::new(),
        });
    }
    let kubeconfig_doc = kubeconfig::read(kubeconfig)?;
    let (pair, force) = starting_pair(&store, &kubeconfig_doc, now);
    let Some(pair) = pair else {
        warn!(kubeconfig = %kubeconfig.display(), "client certificate rotation needs a client certificate in the kubeconfig; not rotating");
        let client = plain_client(kubeconfig).await?;
        return Ok(NodeCredentials {
            client,
            rotations: Vec::new(),
        });
    };
    let identity = Identity::new(Some(&pair));
    let client = client::rotating_client(
        kubeconfig::client_config(kubeconfig).await?,
        identity.clone(),
    )?;
    info!(expires = ?pair.leaf.not_after, "client certificate rotation is on");
    let api = Arc::new(KubeCsr::new(client.clone()));
    let mut rotation = Rotation::new(
        api,
        store,
        identity,
        Template::client(&config.node_name),
        Some(pair.leaf),
    );
    rotation.force = force;
    Ok(NodeCredentials {
        client,
        rotations: vec![rotation],
    })
}

impl NodeCredentials {
    /// With `serverTLSBootstrap`, the serving certificate's resolver for the HTTPS API (no
    /// certificate until a kubelet-serving CSR is approved and issued: handshakes fail until
    /// then, as kubelet's); None otherwise (the files or the self-signed pair are served).
    pub fn serving(
        &mut self,
        config: &Config,
        node_ip: IpAddr,
    ) -> Option<Arc<dyn ResolvesServerCert>> {
        if !config.certificates.server_tls_bootstrap {
            return None;
        }
        let mut store = PairStore::new(&config.certificates.cert_dir, Kind::Serving.prefix());
        if let (Some(c), Some(k)) = (
            &config.server.tls_cert_file,
            &config.server.tls_private_key_file,
        ) {
            store.fallback = Some((c.clone(), k.clone()));
        }
        let current = match store.current() {
            Ok(p) => p.filter(|p| !p.leaf.expired_at(SystemTime::now())),
            Err(e) => {
                warn!(error = %e, "the current serving certificate cannot be read");
                None
            }
        };
        let identity = Identity::new(current.as_ref());
        let template = Template::serving(&config.node_name, &config.node_name, &[node_ip]);
        let api = Arc::new(KubeCsr::new(self.client.clone()));
        self.rotations.push(Rotation::new(
            api,
            store,
            identity.clone(),
            template,
            current.map(|p| p.leaf),
        ));
        Some(identity)
    }

    /// Starts the renewals.
    pub fn spawn(self, tasks: &mut tokio::task::JoinSet<()>, cancel: &CancellationToken) {
        for rotation in self.rotations {
            tasks.spawn(rotation.run(cancel.clone()));
        }
    }
}
