//! A minimal websocket reader for the API server's streaming endpoints, as the e2e suite opens
//! them (`binary.k8s.io`): TLS with the admin client certificate, the HTTP upgrade, then the
//! server's frames (unmasked) until it closes. Only reading; the client never sends a frame.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, pki_types};

/// The API server's address and the admin credentials of the dev cluster.
fn admin_tls() -> rustls::ClientConfig {
    use pki_types::pem::PemObject;
    let pki = format!("{}/pki", super::env("MKL_STATE_DIR"));
    let mut roots = rustls::RootCertStore::empty();
    for ca in pki_types::CertificateDer::pem_file_iter(format!("{pki}/ca.crt")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let certs = pki_types::CertificateDer::pem_file_iter(format!("{pki}/admin.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = pki_types::PrivateKeyDer::from_pem_file(format!("{pki}/admin.key")).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap()
}

/// Opens `path` (with its query) on the API server at 127.0.0.1:6443 as a `binary.k8s.io`
/// websocket and returns the concatenated payloads of its binary frames until the close frame.
pub async fn read_binary(path: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect("127.0.0.1:6443")
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(admin_tls()));
    let name = pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:6443\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary.k8s.io\r\n\
         Origin: https://127.0.0.1:6443\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed during the upgrade: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
    let mut rest = buf[head_end..].to_vec();
    tls.read_to_end(&mut rest).await.ok();
    frames_payload(&rest)
}

/// The payloads of the binary frames in `bytes`, up to the close frame.
fn frames_payload(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, at) = match bytes[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(bytes[2..10].try_into().unwrap())).unwrap(),
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = &bytes[at..at + len];
        match opcode {
            0x8 => break,
            0x2 => out.extend_from_slice(payload),
            _ => {}
        }
        bytes = &bytes[at + len..];
    }
    out
}
