//! The node's certificates against the real local cluster: the TLS bootstrap with the dev
//! cluster's bootstrap token (kube-controller-manager approves and signs the node-csr), the
//! client certificate rotated in place before it expires (same process, heartbeats go on past
//! the old certificate's notAfter), and the serving certificate from a kubelet-serving CSR
//! that the test approves. Each test deletes its CSRs, its Node and its files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::{Agent, admin, env, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use x509_parser::prelude::FromDer;

const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The CN of a CSR's PEM request.
fn request_cn(csr: &CertificateSigningRequest) -> String {
    let der = pem_der(&csr.spec.request.0, "CERTIFICATE REQUEST").remove(0);
    let (_, req) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
    let info = &req.certification_request_info;
    info.subject
        .iter_common_name()
        .next()
        .map(|c| c.as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The DER bodies of every `kind` PEM section.
fn pem_der(pem: &[u8], kind: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let (begin, end) = (
        format!("-----BEGIN {kind}-----"),
        format!("-----END {kind}-----"),
    );
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let stop = rest[body_start..].find(&end).unwrap() + body_start;
        let body: String = rest[body_start..stop].split_whitespace().collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        );
        rest = &rest[stop + end.len()..];
    }
    out
}

/// A certificate's (CN, DNS SANs, IP SANs, notAfter).
fn describe(der: &[u8]) -> (String, Vec<String>, Vec<String>, i64) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push((*d).to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    ips.push(b.iter().map(u8::to_string).collect::<Vec<_>>().join("."));
                }
                _ => {}
            }
        }
    }
    (cn, dns, ips, cert.validity().not_after.timestamp())
}

/// The node's CSRs (by the CN of their request).
async fn node_csrs(client: &kube::Client, node: &str) -> Vec<CertificateSigningRequest> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let cn = format!("system:node:{node}");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| request_cn(c) == cn)
        .collect()
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    let status = csr.status.as_ref();
    let approved = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Approved" && c.status == "True")
        });
    approved
        && status
            .and_then(|s| s.certificate.as_ref())
            .is_some_and(|c| !c.0.is_empty())
}

/// Deletes the node's CSRs when dropped (blocking, like the Agent's own cleanup).
struct CsrCleanup(String);

impl Drop for CsrCleanup {
    fn drop(&mut self) {
        let node = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = admin().await;
                let api: Api<CertificateSigningRequest> = Api::all(client.clone());
                for csr in node_csrs(&client, &node).await {
                    let _ = api
                        .delete(&csr.metadata.name.unwrap(), &DeleteParams::default())
                        .await;
                }
            });
        })
        .join();
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn lease_renewed_after(
    client: &kube::Client,
    node: &str,
    after: SystemTime,
    timeout: Duration,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let after = k8s_openapi::jiff::Timestamp::try_from(after).unwrap();
    wait_for(
        &format!("lease {node} renewed after {after}"),
        timeout,
        || async {
            let lease = leases.get_opt(node).await.ok().flatten()?;
            (lease.spec?.renew_time?.0 > after).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn bootstrap_token_gets_an_issued_client_certificate_and_the_node_turns_ready() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let name = "mkl-it-bootstrap";
    let _csrs = CsrCleanup(name.into());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubelet.conf");
    let cert_dir = dir.path().join("pki");
    assert!(!kubeconfig.exists());
    let agent = Agent::start_in(
        name,
        dir,
        kubeconfig.to_str().unwrap(),
        &[
            &format!(
                "--bootstrap-kubeconfig={}/bootstrap.kubeconfig",
                env("MKL_STATE_DIR")
            ),
            &format!("--cert-dir={}", cert_dir.display()),
        ],
    );
    wait_ready(&client, name, "True", READY_TIMEOUT).await;

    let csrs = node_csrs(&client, name).await;
    assert_eq!(csrs.len(), 1, "{csrs:#?}");
    let csr = &csrs[0];
    assert!(
        csr.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("node-csr-")
    );
    assert_eq!(
        csr.spec.signer_name,
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert!(
        csr.spec
            .username
            .as_deref()
            .unwrap()
            .starts_with("system:bootstrap:"),
        "{:?}",
        csr.spec.username
    );
    assert!(issued(csr), "{:?}", csr.status);
    assert_eq!(
        csr.spec.usages.clone().unwrap(),
        vec!["digital signature".to_string(), "client auth".to_string()]
    );

    assert_eq!(mode(&kubeconfig), 0o600);
    let current = cert_dir.join("kubelet-client-current.pem");
    let target = std::fs::read_link(&current).unwrap();
    let file_name = target.file_name().unwrap().to_str().unwrap().to_string();
    // kubelet-client-YYYY-MM-DD-HH-MM-SS.pem
    let stamp = file_name
        .strip_prefix("kubelet-client-")
        .and_then(|s| s.strip_suffix(".pem"))
        .unwrap_or_default();
    let shaped = stamp.len() == 19
        && stamp.char_indices().all(|(i, c)| {
            if [4, 7, 10, 13, 16].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    assert!(shaped, "{file_name}");
    assert_eq!(mode(&target), 0o600);
    assert!(!cert_dir.join("kubelet-client.key.tmp").exists());
    let pem = std::fs::read(&current).unwrap();
    let (cn, _, _, _) = describe(&pem_der(&pem, "CERTIFICATE")[0]);
    assert_eq!(cn, format!("system:node:{name}"));
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        written.contains(&format!("client-certificate: {}", current.display())),
        "{written}"
    );

    // The node heartbeats with that identity (the Node authorizer only lets system:node:NAME
    // renew its own Lease).
    lease_renewed_after(&client, name, SystemTime::now(), Duration::from_secs(30)).await;
    drop(agent);
}

/// A client certificate for system:node:NODE signed by the cluster CA, valid from a few
/// seconds ago for `lifetime`: (cert PEM, key PEM, notAfter).
fn short_lived_client_cert(node: &str, lifetime: Duration) -> (String, String, SystemTime) {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    };
    let pki = PathBuf::from(env("MKL_STATE_DIR")).join("pki");
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).unwrap()).unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("system:node:{node}"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let start = SystemTime::now() - Duration::from_secs(5);
    params.not_before = start.into();
    params.not_after = (start + lifetime).into();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem(), start + lifetime)
}

/// A kubeconfig for the cluster (server and CA of the bootstrap kubeconfig) whose client
/// certificate and key are `pem`.
fn kubeconfig_for(pem: &Path) -> String {
    let bootstrap = kube::config::Kubeconfig::read_from(format!(
        "{}/bootstrap.kubeconfig",
        env("MKL_STATE_DIR")
    ))
    .unwrap();
    let cluster = bootstrap.clusters[0].cluster.clone().unwrap();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate: {p}\n    client-key: {p}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        cluster.server.unwrap(),
        cluster.certificate_authority_data.unwrap(),
        p = pem.display()
    )
}

#[tokio::test]
async fn a_short_lived_client_certificate_is_rotated_in_place_and_heartbeats_go_on_past_its_expiry()
{
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let name = "mkl-it-rotate";
    let _csrs = CsrCleanup(name.into());
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("pki");
    std::fs::create_dir(&cert_dir).unwrap();
    // The state kubelet leaves: a pair file, the current link to it, a kubeconfig using the link.
    let (cert, key, old_not_after) = short_lived_client_cert(name, Duration::from_secs(90));
    let first = cert_dir.join("kubelet-client-2000-01-01-00-00-00.pem");
    std::fs::write(&first, format!("{cert}{key}")).unwrap();
    std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o600)).unwrap();
    let current = cert_dir.join("kubelet-client-current.pem");
    std::os::unix::fs::symlink(&first, &current).unwrap();
    let kubeconfig = dir.path().join("kubelet.conf");
    std::fs::write(&kubeconfig, kubeconfig_for(&current)).unwrap();

    let mut agent = Agent::start_in(
        name,
        dir,
        kubeconfig.to_str().unwrap(),
        &[
            "--rotate-certificates",
            &format!("--cert-dir={}", cert_dir.display()),
        ],
    );
    let pid = agent.pid();
    wait_ready(&client, name, "True", READY_TIMEOUT).await;

    // Renewed at 70-90% of the 90 s: 63-81 s after notBefore.
    let renewed = wait_for(
        "the current link moved to a new pair",
        Duration::from_secs(120),
        || async {
            let target = std::fs::read_link(&current).ok()?;
            (target != first).then_some(target)
        },
    )
    .await;
    assert_eq!(mode(&renewed), 0o600);
    let (cn, _, _, new_not_after) =
        describe(&pem_der(&std::fs::read(&renewed).unwrap(), "CERTIFICATE")[0]);
    assert_eq!(cn, format!("system:node:{name}"));
    let old = old_not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        new_not_after > i64::try_from(old).unwrap(),
        "the new certificate lives longer"
    );
    let csrs = node_csrs(&client, name).await;
    assert_eq!(csrs.len(), 1, "{csrs:#?}");
    assert!(
        csrs[0]
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("csr-")
    );
    assert_eq!(
        csrs[0].spec.username.as_deref(),
        Some(format!("system:node:{name}").as_str())
    );
    assert!(issued(&csrs[0]), "{:?}", csrs[0].status);

    // Past the old certificate's end the same process still heartbeats.
    let past = old_not_after + Duration::from_secs(2);
    wait_for(
        "the old certificate's notAfter to pass",
        Duration::from_secs(120),
        || async { (SystemTime::now() > past).then_some(()) },
    )
    .await;
    lease_renewed_after(&client, name, past, Duration::from_secs(30)).await;
    assert_eq!(agent.pid(), pid);
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the agent is still running"
    );
    assert!(
        agent.log().contains("Certificate rotation detected"),
        "{}",
        agent.log()
    );
}

/// A TLS handshake with 127.0.0.1:PORT trusting only the cluster CA and checking the server
/// name `name`; the presented chain, or why the handshake failed.
async fn handshake(port: u16, name: &str) -> Result<Vec<Vec<u8>>, String> {
    use tokio_rustls::rustls::{self, pki_types::ServerName};
    let ca = std::fs::read(format!("{}/pki/ca.crt", env("MKL_STATE_DIR"))).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for der in pem_der(&ca, "CERTIFICATE") {
        roots.add(der.into()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server = ServerName::try_from(name.to_string()).unwrap();
    let tls = connector
        .connect(server, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
    Ok(certs.iter().map(|c| c.as_ref().to_vec()).collect())
}

#[tokio::test]
async fn server_tls_bootstrap_serves_the_approved_kubelet_serving_certificate() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let name = "mkl-it-serving";
    let _csrs = CsrCleanup(name.into());
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\naddress: 127.0.0.1\nserverTLSBootstrap: true\n",
    )
    .unwrap();
    let agent = Agent::start(name, &[&format!("--config={}", config.display())]);
    wait_ready(&client, name, "True", READY_TIMEOUT).await;

    let csr = wait_for("a kubelet-serving CSR", Duration::from_secs(30), || async {
        node_csrs(&client, name)
            .await
            .into_iter()
            .find(|c| c.spec.signer_name == "kubernetes.io/kubelet-serving")
    })
    .await;
    assert_eq!(
        csr.spec.username.as_deref(),
        Some(format!("system:node:{name}").as_str())
    );
    assert_eq!(
        csr.spec.usages.clone().unwrap(),
        vec!["digital signature".to_string(), "server auth".to_string()]
    );
    // Not auto-approved; until it is, handshakes fail (kubelet serves no certificate).
    assert!(!issued(&csr));
    let e = handshake(agent.port, name).await.unwrap_err();
    assert!(!e.is_empty());

    let csr_name = csr.metadata.name.clone().unwrap();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let approval = serde_json::json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "TestApproved", "message": "approved by the test"}]}});
    api.patch_approval(&csr_name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .unwrap();

    let chain = wait_for(
        "the issued serving certificate on the HTTPS port",
        Duration::from_secs(60),
        || async { handshake(agent.port, name).await.ok() },
    )
    .await;
    let (cn, dns, ips, _) = describe(&chain[0]);
    assert_eq!(cn, format!("system:node:{name}"));
    assert_eq!(dns, vec![name.to_string()]);
    assert_eq!(ips, vec!["127.0.0.1".to_string()]);
    // Verified against the cluster CA for the IP too.
    handshake(agent.port, "127.0.0.1").await.unwrap();
    let current = agent.dir.path().join("root/pki/kubelet-server-current.pem");
    assert_eq!(mode(&std::fs::read_link(&current).unwrap()), 0o600);
}

#[tokio::test]
async fn a_wrong_bootstrap_token_is_one_clear_line_per_attempt_and_is_retried() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let name = "mkl-it-bootstrap-bad-token";
    let dir = tempfile::tempdir().unwrap();
    // The dev cluster's bootstrap kubeconfig with a token the API server does not know.
    let good =
        std::fs::read_to_string(format!("{}/bootstrap.kubeconfig", env("MKL_STATE_DIR"))).unwrap();
    let token =
        std::fs::read_to_string(format!("{}/pki/bootstrap-token", env("MKL_STATE_DIR"))).unwrap();
    let bad = good.replace(token.trim(), "abcdef.0123456789abcdef");
    assert_ne!(bad, good, "the token is in the bootstrap kubeconfig");
    let bootstrap = dir.path().join("bootstrap.kubeconfig");
    std::fs::write(&bootstrap, bad).unwrap();
    let kubeconfig = dir.path().join("kubelet.conf");
    let mut agent = Agent::start_in(
        name,
        dir,
        kubeconfig.to_str().unwrap(),
        &[&format!("--bootstrap-kubeconfig={}", bootstrap.display())],
    );
    // Two attempts (2 s apart), each one line naming the cause; the agent keeps trying.
    let lines = wait_for("two failed bootstrap attempts", READY_TIMEOUT, || async {
        let lines: Vec<String> = agent
            .log()
            .lines()
            .filter(|l| l.contains("TLS bootstrap: no client certificate yet"))
            .map(str::to_string)
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await;
    assert!(
        lines
            .iter()
            .all(|l| l.contains("Unauthorized") || l.contains("401")),
        "{lines:#?}"
    );
    let still_running = agent.child.as_mut().unwrap().try_wait().unwrap().is_none();
    assert!(still_running && !agent.log().contains("panicked"));
    assert!(!kubeconfig.exists(), "no kubeconfig without a certificate");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client);
    assert!(
        nodes.get_opt(name).await.unwrap().is_none(),
        "no Node registered"
    );
}
