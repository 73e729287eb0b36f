//! A recording double of the certificates API for tests: it keeps every CSR created, answers
//! each wait from a script (issue a certificate signed by a test CA for the request's key,
//! deny, fail to create), and issues after an optional delay on tokio's (paused) clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SignatureAlgorithm};
use x509_parser::prelude::FromDer;

use super::csr_api::{Created, CsrApi, CsrError};
use super::pair::testing::{self, Ca};
use crate::runtime::WallClock;

/// What the API does with the next CSR.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Approve and sign for this long, after `delay`.
    Issue {
        lifetime: Duration,
        delay: Duration,
    },
    Deny,
    CreateFails,
}

pub struct FakeCsr {
    pub ca: Ca,
    pub clock: WallClock,
    script: Mutex<VecDeque<Outcome>>,
    /// Every CSR object created, in order.
    pub created: Mutex<Vec<CertificateSigningRequest>>,
    /// The tokio instants of each create.
    pub created_at: Mutex<Vec<tokio::time::Instant>>,
}

struct RawKey(Vec<u8>);

impl PublicKeyData for RawKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl FakeCsr {
    pub fn new(clock: WallClock, script: Vec<Outcome>) -> FakeCsr {
        FakeCsr {
            ca: testing::ca(),
            clock,
            script: Mutex::new(script.into()),
            created: Mutex::new(Vec::new()),
            created_at: Mutex::new(Vec::new()),
        }
    }

    pub fn created(&self) -> Vec<CertificateSigningRequest> {
        self.created.lock().unwrap().clone()
    }

    /// A certificate for the request in `csr`, with its CN and SANs.
    fn sign(&self, csr: &CertificateSigningRequest, lifetime: Duration) -> Vec<u8> {
        use base64::Engine;
        let text = String::from_utf8_lossy(&csr.spec.request.0).to_string();
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        let info = &req.certification_request_info;
        let cn = info
            .subject
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        let key = RawKey(info.subject_pki.subject_public_key.data.to_vec());
        let mut sans = Vec::new();
        for ext in req.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            sans.push(SanType::DnsName((*d).try_into().unwrap()));
                        }
                        x509_parser::extensions::GeneralName::IPAddress(b) => {
                            let ip: [u8; 4] = (*b).try_into().unwrap();
                            sans.push(SanType::IpAddress(ip.into()));
                        }
                        _ => {}
                    }
                }
            }
        }
        testing::leaf(&self.ca, &key, &cn, &sans, self.clock.now(), lifetime).into_bytes()
    }
}

impl CsrApi for FakeCsr {
    fn create<'a>(
        &'a self,
        csr: &'a CertificateSigningRequest,
    ) -> BoxFuture<'a, Result<Created, CsrError>> {
        async move {
            let mut created = self.created.lock().unwrap();
            self.created_at
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            let name = csr
                .metadata
                .name
                .clone()
                .unwrap_or_else(|| format!("csr-{}", created.len()));
            if matches!(
                self.script.lock().unwrap().front(),
                Some(Outcome::CreateFails)
            ) {
                self.script.lock().unwrap().pop_front();
                return Err(CsrError::Api("the API server is away".into()));
            }
            if created
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(&name))
            {
                return Err(CsrError::AlreadyExists(name));
            }
            let mut stored = csr.clone();
            stored.metadata.name = Some(name.clone());
            stored.metadata.uid = Some(format!("uid-{name}"));
            created.push(stored);
            Ok(Created {
                uid: format!("uid-{name}"),
                name,
            })
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<CertificateSigningRequest, CsrError>> {
        async move {
            let created = self.created.lock().unwrap();
            let found = created
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some(name));
            found
                .cloned()
                .ok_or_else(|| CsrError::Api(format!("{name} not found")))
        }
        .boxed()
    }

    fn wait_issued<'a>(
        &'a self,
        created: &'a Created,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, CsrError>> {
        async move {
            let next = self.script.lock().unwrap().pop_front();
            let csr = self.get(&created.name).await?;
            match next {
                Some(Outcome::Issue { lifetime, delay }) => {
                    if delay > timeout {
                        tokio::time::sleep(timeout).await;
                        return Err(CsrError::Timeout(timeout));
                    }
                    tokio::time::sleep(delay).await;
                    Ok(self.sign(&csr, lifetime))
                }
                Some(Outcome::Deny) => Err(CsrError::Denied {
                    reason: "TestDenied".into(),
                    message: "denied by the test".into(),
                }),
                Some(Outcome::CreateFails) | None => {
                    tokio::time::sleep(timeout).await;
                    Err(CsrError::Timeout(timeout))
                }
            }
        }
        .boxed()
    }
}
