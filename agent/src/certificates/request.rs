//! What the node asks the certificates API for, as kubelet asks it: a fresh ECDSA P-256 key,
//! a PKCS#10 request with subject CN=system:node:NAME, O=system:nodes (and, for serving, the
//! node's hostname and IPs as SANs), the signer and usages of kubelet's two certificates, and
//! the bootstrap CSR's name `node-csr-HASH` (kubelet's digestedName).

use std::net::IpAddr;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType};

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("unable to generate a new private key: {0}")]
    Key(String),
    #[error("unable to generate certificate request: {0}")]
    Csr(String),
}

/// Which of kubelet's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The node's identity towards the API server.
    Client,
    /// The kubelet API's serving certificate.
    Serving,
}

impl Kind {
    /// The CSR's signerName.
    pub fn signer(self) -> &'static str {
        match self {
            Kind::Client => "kubernetes.io/kube-apiserver-client-kubelet",
            Kind::Serving => "kubernetes.io/kubelet-serving",
        }
    }

    /// kubelet's usages for an ECDSA key (no key encipherment: that is for RSA keys only).
    pub fn usages(self) -> [&'static str; 2] {
        match self {
            Kind::Client => ["digital signature", "client auth"],
            Kind::Serving => ["digital signature", "server auth"],
        }
    }

    /// The pair files' prefix in cert-dir.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Client => "kubelet-client",
            Kind::Serving => "kubelet-server",
        }
    }
}

/// What goes into the request (kubelet's template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub kind: Kind,
    pub node: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl Template {
    pub fn client(node: &str) -> Template {
        Template {
            kind: Kind::Client,
            node: node.to_string(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// The serving template from the node's addresses: its Hostname and its IPs, sorted and
    /// without duplicates as kubelet's addressesToHostnamesAndIPs gives them.
    pub fn serving(node: &str, hostname: &str, ips: &[IpAddr]) -> Template {
        let mut dns_names = vec![hostname.to_string()];
        let mut ip_addresses = ips.to_vec();
        if let Ok(ip) = hostname.parse::<IpAddr>() {
            dns_names.clear();
            ip_addresses.push(ip);
        }
        ip_addresses.sort_by_key(ToString::to_string);
        ip_addresses.dedup();
        Template {
            kind: Kind::Serving,
            node: node.to_string(),
            dns_names,
            ip_addresses,
        }
    }

    pub fn common_name(&self) -> String {
        format!("system:node:{}", self.node)
    }
}

/// A new key and its PEM request.
pub struct Request {
    pub key: KeyPair,
    pub csr_pem: String,
}

/// kubelet's key: ECDSA P-256.
pub fn generate_key() -> Result<KeyPair, RequestError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| RequestError::Key(e.to_string()))
}

/// The PKCS#10 request of `template` signed with `key`.
pub fn csr_pem(template: &Template, key: &KeyPair) -> Result<String, RequestError> {
    let fail = |e: rcgen::Error| RequestError::Csr(e.to_string());
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(DnType::CommonName, template.common_name());
    for name in &template.dns_names {
        let name = rcgen::string::Ia5String::try_from(name.as_str()).map_err(fail)?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &template.ip_addresses {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(fail)
}

/// A new key and the request for `template`.
pub fn new_request(template: &Template) -> Result<Request, RequestError> {
    let key = generate_key()?;
    let csr_pem = csr_pem(template, &key)?;
    Ok(Request { key, csr_pem })
}

/// kubelet's bootstrap CSR name: `node-csr-` + base64url(SHA-512/256) over the public key,
/// CN, organizations and usages, each base64url-encoded and followed by `|`.
pub fn bootstrap_name(key: &KeyPair, template: &Template) -> String {
    use base64::Engine;
    let encode = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let mut input = String::new();
    let mut write = |data: &[u8]| {
        input.push_str(&encode(data));
        input.push('|');
    };
    write(&key.subject_public_key_info());
    write(template.common_name().as_bytes());
    write(b"system:nodes");
    for usage in template.kind.usages() {
        write(usage.as_bytes());
    }
    let digest = ring::digest::digest(&ring::digest::SHA512_256, input.as_bytes());
    format!("node-csr-{}", encode(digest.as_ref()))
}

/// The CertificateSigningRequest object: named (the bootstrap's) or generateName `csr-`
/// (renewals, as client-go's certificate manager makes them).
pub fn object(
    template: &Template,
    csr_pem: &str,
    name: Option<String>,
) -> CertificateSigningRequest {
    let generate_name = name.is_none().then(|| "csr-".to_string());
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name,
            generate_name,
            ..ObjectMeta::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: template.kind.signer().to_string(),
            usages: Some(
                template
                    .kind
                    .usages()
                    .iter()
                    .map(|u| (*u).to_string())
                    .collect(),
            ),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::FromDer;

    use super::*;

    fn parsed(pem: &str) -> (String, Vec<String>, Vec<String>) {
        let der = rustls_pemfile_der(pem);
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
        let orgs = info
            .subject
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_string())
            .collect();
        let mut sans = Vec::new();
        for ext in req.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    sans.push(format!("{n}"));
                }
            }
        }
        (cn, orgs, sans)
    }

    fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    #[test]
    fn the_client_request_names_the_node_in_system_nodes_without_sans() {
        let t = Template::client("n1");
        let r = new_request(&t).unwrap();
        assert!(r.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let (cn, orgs, sans) = parsed(&r.csr_pem);
        assert_eq!(cn, "system:node:n1");
        assert_eq!(orgs, vec!["system:nodes"]);
        assert!(sans.is_empty(), "{sans:?}");
        let o = object(&t, &r.csr_pem, None);
        assert_eq!(
            o.spec.signer_name,
            "kubernetes.io/kube-apiserver-client-kubelet"
        );
        assert_eq!(
            o.spec.usages.unwrap(),
            vec!["digital signature".to_string(), "client auth".to_string()]
        );
        assert_eq!(o.metadata.generate_name.as_deref(), Some("csr-"));
        assert_eq!(o.metadata.name, None);
    }

    #[test]
    fn the_serving_request_carries_the_hostname_and_ips() {
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let t = Template::serving("n1", "n1", &ips);
        assert_eq!(t.ip_addresses.len(), 1, "duplicates dropped");
        let r = new_request(&t).unwrap();
        let (cn, _, sans) = parsed(&r.csr_pem);
        assert_eq!(cn, "system:node:n1");
        assert_eq!(
            sans,
            vec![
                "DNSName(n1)".to_string(),
                "IPAddress(0a:00:00:02)".to_string()
            ]
        );
        let o = object(&t, &r.csr_pem, Some("x".into()));
        assert_eq!(o.spec.signer_name, "kubernetes.io/kubelet-serving");
        assert_eq!(
            o.spec.usages.unwrap(),
            vec!["digital signature".to_string(), "server auth".to_string()]
        );
    }

    #[test]
    fn the_bootstrap_name_is_a_digest_of_key_subject_and_usages() {
        let t = Template::client("n1");
        let key = generate_key().unwrap();
        let a = bootstrap_name(&key, &t);
        assert!(a.starts_with("node-csr-"));
        // 32 digest bytes in unpadded base64url.
        assert_eq!(a.len(), "node-csr-".len() + 43);
        assert_eq!(a, bootstrap_name(&key, &t), "stable for the same key");
        assert_ne!(a, bootstrap_name(&key, &Template::client("n2")));
        assert_ne!(a, bootstrap_name(&generate_key().unwrap(), &t));
    }
}
