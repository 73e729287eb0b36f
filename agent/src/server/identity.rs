//! Who a caller is: the identity a verified client certificate carries (CN the user, each O a
//! group), the one a TokenReview answers with, or the anonymous user. Below the accept loop,
//! the token cache and the authoriser, which all hand it on.

use std::collections::BTreeMap;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: String,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// A caller identified by a verified client certificate: CN is the user, each O a group.
    pub fn from_certificate(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())?
            .to_string();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_string))
            .collect();
        groups.push("system:authenticated".to_string());
        Some(Identity {
            user,
            groups,
            uid: String::new(),
            extra: BTreeMap::new(),
        })
    }

    /// The caller without credentials, where anonymous requests are allowed.
    pub fn anonymous() -> Identity {
        Identity {
            user: "system:anonymous".to_string(),
            groups: vec!["system:unauthenticated".to_string()],
            uid: String::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// The identity a verified client certificate carried, put on each request by the accept loop.
#[derive(Debug, Clone, Default)]
pub struct PeerIdentity(pub Option<Identity>);
