//! The HTTPS API's TLS: the serving certificate (given, or self-signed under --cert-dir as
//! kubelet does, or with serverTLSBootstrap whatever the caller's resolver holds at each
//! handshake) and, with --client-ca-file, client certificates verified against that CA but
//! not required (bearer tokens authenticate the rest).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::{
    self, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ResolvesServerCert, WebPkiClientVerifier},
};

use super::ServerError;
use crate::config::server::ServerConfig as Settings;

/// Where the self-signed certificate goes, as kubelet names it.
fn self_signed_paths(cert_dir: &Path) -> (PathBuf, PathBuf) {
    (cert_dir.join("kubelet.crt"), cert_dir.join("kubelet.key"))
}

fn tls_error(path: &Path, message: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{}: {message}", path.display()))
}

/// Writes a self-signed certificate for `node` (names: the node name, localhost, the node IP)
/// unless one is there already.
fn ensure_self_signed(
    cert_dir: &Path,
    node: &str,
    node_ip: &str,
) -> Result<(PathBuf, PathBuf), ServerError> {
    let (cert, key) = self_signed_paths(cert_dir);
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let names = vec![
        node.to_string(),
        "localhost".to_string(),
        node_ip.to_string(),
    ];
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Tls(format!("generating a self-signed certificate: {e}")))?;
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).map_err(|e| tls_error(dir, e))?;
    }
    std::fs::write(&cert, generated.cert.pem()).map_err(|e| tls_error(&cert, e))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| tls_error(path, e))?;
    f.write_all(bytes).map_err(|e| tls_error(path, e))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_error(path, e))?
        .collect();
    let certs = certs.map_err(|e| tls_error(path, e))?;
    if certs.is_empty() {
        return Err(tls_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Builds the rustls configuration from the settings; `serving` (serverTLSBootstrap) replaces
/// the certificate files.
pub fn server_config(
    settings: &Settings,
    cert_dir: &Path,
    node: &str,
    node_ip: &str,
    serving: Option<Arc<dyn ResolvesServerCert>>,
) -> Result<Arc<ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match &settings.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| tls_error(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| tls_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = if let Some(resolver) = serving {
        builder.with_cert_resolver(resolver)
    } else {
        let (cert_path, key_path) = match (&settings.tls_cert_file, &settings.tls_private_key_file)
        {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            _ => ensure_self_signed(cert_dir, node, node_ip)?,
        };
        let certs = load_certs(&cert_path)?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| tls_error(&key_path, e))?;
        builder
            .with_single_cert(certs, key)
            .map_err(|e| tls_error(&cert_path, e))?
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::server::AuthorizationMode;

    fn settings() -> Settings {
        Settings {
            address: "127.0.0.1".parse().unwrap(),
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            anonymous_auth: false,
            authentication_token_webhook: true,
            authorization_mode: AuthorizationMode::Webhook,
            streaming_connection_idle_timeout: std::time::Duration::from_secs(4 * 3600),
        }
    }

    #[test]
    fn self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&settings(), dir.path(), "n1", "127.0.0.1", None).unwrap();
        let (cert, key) = self_signed_paths(dir.path());
        let first = std::fs::read(&cert).unwrap();
        server_config(&settings(), dir.path(), "n1", "127.0.0.1", None).unwrap();
        assert_eq!(first, std::fs::read(&cert).unwrap());
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_client_ca_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings();
        s.client_ca_file = Some(dir.path().join("nope.crt"));
        let e = server_config(&s, dir.path(), "n1", "127.0.0.1", None).unwrap_err();
        assert!(e.to_string().contains("nope.crt"), "{e}");
    }
}
