//! A certificate and its private key as the agent holds them: PEM in (a pair file holds the
//! chain then the key, as kubelet's `kubelet-client-*.pem`), the leaf's subject, names and
//! validity out, and the rustls `CertifiedKey` that a TLS handshake presents.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;
use x509_parser::extensions::GeneralName;

/// Why PEM data is not a usable certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("no certificate in the PEM data")]
    NoCertificate,
    #[error("no private key in the PEM data")]
    NoKey,
    #[error("invalid PEM data: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("the private key does not fit the certificate: {0}")]
    Key(String),
}

/// What the agent reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Leaf {
    /// The whole validity period (zero for a certificate that ends before it starts).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }

    /// True when `now` is past notAfter (kubelet's `now.After(cert.NotAfter)`).
    pub fn expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }
}

/// A parsed certificate chain with its key.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The chain's PEM, leaf first, as it will be written.
    pub cert_pem: String,
    /// The private key's PEM.
    pub key_pem: String,
    pub leaf: Leaf,
    pub certified: Arc<CertifiedKey>,
}

fn time(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

/// The subject, names and validity of a DER certificate.
pub fn parse_leaf(der: &[u8]) -> Result<Leaf, PairError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PairError::Certificate(e.to_string()))?;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str().map(str::to_string).unwrap_or_default()
    };
    let subject = cert.subject();
    let mut leaf = Leaf {
        common_name: subject
            .iter_common_name()
            .next()
            .map(text)
            .unwrap_or_default(),
        organizations: subject.iter_organization().map(text).collect(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => leaf.dns_names.push((*d).to_string()),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        leaf.ip_addresses.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        leaf.ip_addresses.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(leaf)
}

/// Every certificate in PEM data (other sections are skipped).
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PairError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| PairError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PairError::NoCertificate);
    }
    Ok(certs)
}

/// PEM text of DER certificates.
fn certificates_pem(certs: &[CertificateDer<'_>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for c in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Parses a chain and a key (PKCS#8, SEC1 or PKCS#1 PEM) and checks they belong together.
pub fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Pair, PairError> {
    let certs = certificates(cert_pem)?;
    let leaf = parse_leaf(certs[0].as_ref())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => PairError::NoKey,
        other => PairError::Pem(other.to_string()),
    })?;
    let key_text = key_section(key_pem).ok_or(PairError::NoKey)?;
    let cert_text = certificates_pem(&certs);
    let certified = CertifiedKey::from_der(certs, key, &default_provider())
        .map_err(|e| PairError::Key(e.to_string()))?;
    Ok(Pair {
        cert_pem: cert_text,
        key_pem: key_text,
        leaf,
        certified: Arc::new(certified),
    })
}

/// Parses one PEM file holding both the chain and the key (kubelet's pair files).
pub fn parse_combined(pem: &[u8]) -> Result<Pair, PairError> {
    parse(pem, pem)
}

/// The first private-key PEM section of `pem`, verbatim.
fn key_section(pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(pem);
    for kind in ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"] {
        let begin = format!("-----BEGIN {kind}-----");
        let end = format!("-----END {kind}-----");
        if let Some(start) = text.find(&begin)
            && let Some(stop) = text[start..].find(&end)
        {
            let mut section = text[start..start + stop + end.len()].to_string();
            section.push('\n');
            return Some(section);
        }
    }
    None
}

#[cfg(test)]
pub mod testing {
    //! Certificates for tests: a CA and leaves it signs, with chosen names and validity.
    #![allow(clippy::missing_panics_doc)]
    use super::*;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

    pub struct Ca {
        pub params: CertificateParams,
        pub key: KeyPair,
        pub pem: String,
    }

    pub fn ca() -> Ca {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { params, key, pem }
    }

    /// A leaf for `cn` valid from `not_before` for `lifetime`, signed by `ca`, for `key`.
    pub fn leaf(
        ca: &Ca,
        key: &impl rcgen::PublicKeyData,
        cn: &str,
        names: &[SanType],
        not_before: SystemTime,
        lifetime: Duration,
    ) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        params.subject_alt_names = names.to_vec();
        params.not_before = not_before.into();
        params.not_after = (not_before + lifetime).into();
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        params.signed_by(key, &issuer).unwrap().pem()
    }

    /// A fresh key and a pair for it (PEM chain, PEM key).
    pub fn pair(ca: &Ca, cn: &str, not_before: SystemTime, lifetime: Duration) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = leaf(ca, &key, cn, &[], not_before, lifetime);
        (cert, key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_pair_parses_with_its_subject_and_validity() {
        let ca = ca();
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (cert, key) = pair(&ca, "system:node:n1", start, Duration::from_secs(3600));
        let p = parse(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(p.leaf.common_name, "system:node:n1");
        assert_eq!(p.leaf.organizations, vec!["system:nodes".to_string()]);
        assert_eq!(p.leaf.not_before, start);
        assert_eq!(p.leaf.lifetime(), Duration::from_secs(3600));
        let combined = format!("{}{}", p.cert_pem, p.key_pem);
        let again = parse_combined(combined.as_bytes()).unwrap();
        assert_eq!(again.leaf, p.leaf);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let ca = ca();
        let now = SystemTime::now();
        let (cert, _) = pair(&ca, "a", now, Duration::from_secs(60));
        let (_, other_key) = pair(&ca, "b", now, Duration::from_secs(60));
        let e = parse(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(matches!(e, PairError::Key(_)), "{e}");
        assert!(matches!(
            parse(cert.as_bytes(), b"").unwrap_err(),
            PairError::NoKey
        ));
        assert!(matches!(
            parse(b"junk", b"").unwrap_err(),
            PairError::NoCertificate
        ));
    }
}
