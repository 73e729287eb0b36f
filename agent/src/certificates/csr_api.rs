//! The seam over the certificates API: create a CertificateSigningRequest, read one back, and
//! wait until one is issued. The real implementation ([`super::kube_csr`]) talks to the API
//! server; tests use a recording double. [`progress`] is the rule both share for reading a
//! CSR's status, as client-go's `WaitForCertificate` reads it.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// A failure of the certificates API, or of the request itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// A CSR of that name exists already (the bootstrap's name is a digest of its key).
    #[error("certificate signing request {0} already exists")]
    AlreadyExists(String),
    #[error("certificate signing request is denied, reason: {reason}, message: {message}")]
    Denied { reason: String, message: String },
    #[error("certificate signing request failed, reason: {reason}, message: {message}")]
    Failed { reason: String, message: String },
    #[error("csr {0:?} was deleted")]
    Deleted(String),
    #[error("csr {0:?} changed UIDs")]
    ChangedUid(String),
    #[error("timed out after {0:?} waiting for the certificate to be issued")]
    Timeout(Duration),
    #[error("{0}")]
    Api(String),
}

/// The created object's name and UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub name: String,
    pub uid: String,
}

/// How far a CSR is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not approved yet, or approved and not signed yet.
    Pending,
    /// Approved and signed: the certificate's PEM.
    Issued(Vec<u8>),
}

/// The certificates API, as the agent uses it.
pub trait CsrApi: Send + Sync {
    /// Creates `csr`; a name clash is [`CsrError::AlreadyExists`].
    fn create<'a>(
        &'a self,
        csr: &'a CertificateSigningRequest,
    ) -> BoxFuture<'a, Result<Created, CsrError>>;

    /// Reads the CSR `name`.
    fn get<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<CertificateSigningRequest, CsrError>>;

    /// Waits (watching, never polling in a loop) until the CSR `created` is issued, and
    /// returns the certificate's PEM; a denial, failure, deletion or timeout is an error.
    fn wait_issued<'a>(
        &'a self,
        created: &'a Created,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, CsrError>>;
}

/// Reads a CSR's status: Denied and Failed end the wait with an error, Approved with a
/// certificate ends it with the certificate, anything else keeps waiting.
pub fn progress(csr: &CertificateSigningRequest, uid: &str) -> Result<Progress, CsrError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    if csr.metadata.uid.as_deref().is_some_and(|u| u != uid) {
        return Err(CsrError::ChangedUid(name));
    }
    let Some(status) = &csr.status else {
        return Ok(Progress::Pending);
    };
    let mut approved = false;
    for c in status.conditions.iter().flatten() {
        let reason = c.reason.clone().unwrap_or_default();
        let message = c.message.clone().unwrap_or_default();
        match c.type_.as_str() {
            "Denied" => return Err(CsrError::Denied { reason, message }),
            "Failed" => return Err(CsrError::Failed { reason, message }),
            "Approved" => approved = true,
            _ => {}
        }
    }
    match &status.certificate {
        Some(cert) if approved && !cert.0.is_empty() => Ok(Progress::Issued(cert.0.clone())),
        _ => Ok(Progress::Pending),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestStatus,
    };

    use super::*;

    fn csr(conditions: &[&str], cert: Option<&[u8]>) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.metadata.name = Some("csr-1".into());
        c.metadata.uid = Some("u1".into());
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(
                conditions
                    .iter()
                    .map(|t| CertificateSigningRequestCondition {
                        type_: (*t).to_string(),
                        status: "True".into(),
                        reason: Some(format!("{t}Reason")),
                        message: Some("by test".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            certificate: cert.map(|c| ByteString(c.to_vec())),
        });
        c
    }

    #[test]
    fn approval_without_a_certificate_keeps_waiting_and_with_one_ends_it() {
        assert_eq!(progress(&csr(&[], None), "u1"), Ok(Progress::Pending));
        assert_eq!(
            progress(&csr(&["Approved"], None), "u1"),
            Ok(Progress::Pending)
        );
        assert_eq!(
            progress(&csr(&["Approved"], Some(b"PEM")), "u1"),
            Ok(Progress::Issued(b"PEM".to_vec()))
        );
        // A certificate without approval is not taken.
        assert_eq!(
            progress(&csr(&[], Some(b"PEM")), "u1"),
            Ok(Progress::Pending)
        );
    }

    #[test]
    fn denial_failure_and_a_new_uid_are_errors() {
        let e = progress(&csr(&["Denied"], None), "u1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "certificate signing request is denied, reason: DeniedReason, message: by test"
        );
        assert!(matches!(
            progress(&csr(&["Approved", "Failed"], Some(b"x")), "u1"),
            Err(CsrError::Failed { .. })
        ));
        assert_eq!(
            progress(&csr(&[], None), "other"),
            Err(CsrError::ChangedUid("csr-1".into()))
        );
    }
}
