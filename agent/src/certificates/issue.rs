//! One certificate from the certificates API: send the request for a key and wait until it
//! is issued. A bootstrap CSR's name is a digest of its key, so after a restart the same key
//! finds its earlier CSR (AlreadyExists) and that one is waited for instead, once checked to
//! be of the same signer and key (client-go's `ensureCompatible`).

use std::time::Duration;

use rcgen::{KeyPair, PublicKeyData};
use tracing::info;
use x509_parser::prelude::FromDer;

use super::CertError;
use super::csr_api::{Created, CsrApi, CsrError};
use super::request::{self, Template};

/// What the API issued for a key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub csr_name: String,
    pub cert_pem: Vec<u8>,
}

/// How the CSR is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `node-csr-HASH` (the bootstrap's, as kubelet names it).
    Digest,
    /// generateName `csr-` (renewals).
    Generated,
}

/// The DER SubjectPublicKeyInfo inside a PEM CSR.
fn csr_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).ok()?;
    Some(req.certification_request_info.subject_pki.raw.to_vec())
}

/// Checks that an existing CSR of our name was made by this key for this signer.
async fn reuse(
    api: &dyn CsrApi,
    name: &str,
    key: &KeyPair,
    template: &Template,
) -> Result<Created, CertError> {
    info!(csr = name, "csr for this node already exists, reusing");
    let existing = api.get(name).await?;
    if existing.spec.signer_name != template.kind.signer() {
        return Err(CertError::Incompatible(format!(
            "csr signerNames differ: new {:?}, orig: {:?}",
            existing.spec.signer_name,
            template.kind.signer()
        )));
    }
    if csr_public_key(&existing.spec.request.0) != Some(key.subject_public_key_info()) {
        return Err(CertError::Incompatible(
            "the existing csr was not made with this key".into(),
        ));
    }
    Ok(Created {
        name: name.to_string(),
        uid: existing.metadata.uid.unwrap_or_default(),
    })
}

/// Requests a certificate for `template` with `key` and waits up to `timeout` for it.
pub async fn obtain(
    api: &dyn CsrApi,
    template: &Template,
    key: &KeyPair,
    naming: Naming,
    timeout: Duration,
) -> Result<Issued, CertError> {
    let csr_pem = request::csr_pem(template, key)?;
    let name = (naming == Naming::Digest).then(|| request::bootstrap_name(key, template));
    let object = request::object(template, &csr_pem, name.clone());
    let created = match (api.create(&object).await, name) {
        (Ok(created), _) => created,
        (Err(CsrError::AlreadyExists(_)), Some(name)) => reuse(api, &name, key, template).await?,
        (Err(e), _) => return Err(e.into()),
    };
    info!(
        csr = %created.name,
        signer = template.kind.signer(),
        "waiting for the certificate signing request to be approved and issued"
    );
    let cert_pem = api.wait_issued(&created, timeout).await?;
    Ok(Issued {
        csr_name: created.name,
        cert_pem,
    })
}
