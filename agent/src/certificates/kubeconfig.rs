//! The kubeconfig files of the TLS bootstrap, as kubelet treats them: whether --kubeconfig
//! still holds a usable client certificate (isClientConfigStillValid: a missing file, an
//! unreadable one, no certificate or an expired one all mean "bootstrap"), the identity it
//! names, and the kubeconfig written after the bootstrap: the bootstrap kubeconfig's server
//! and CA, with `client-certificate` and `client-key` both pointing at
//! `CERT_DIR/kubelet-client-current.pem` (mode 0600, kubelet's cluster/user/context names).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use kube::config::{AuthInfo, Cluster, KubeConfigOptions, Kubeconfig};
use secrecy::ExposeSecret;
use tracing::warn;

use super::CertError;
use super::pair::{self, Pair};
use super::store;

fn read_error(path: &Path, e: impl std::fmt::Display) -> CertError {
    CertError::Kubeconfig {
        path: path.to_path_buf(),
        message: format!("{e:#}").replace('\n', " "),
    }
}

/// Reads a kubeconfig file.
pub fn read(path: &Path) -> Result<Kubeconfig, CertError> {
    Kubeconfig::read_from(path).map_err(|e| read_error(path, e))
}

/// The kube client settings of a kubeconfig file.
pub async fn client_config(path: &Path) -> Result<kube::Config, CertError> {
    let kubeconfig = read(path)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| CertError::KubeconfigInvalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The current context's cluster and user.
fn current(k: &Kubeconfig) -> (Option<&Cluster>, Option<&AuthInfo>) {
    let context = k
        .current_context
        .as_ref()
        .and_then(|name| k.contexts.iter().find(|c| &c.name == name))
        .and_then(|c| c.context.as_ref());
    let Some(context) = context else {
        return (None, None);
    };
    let cluster = k
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref());
    let user = context.user.as_ref().and_then(|u| {
        k.auth_infos
            .iter()
            .find(|a| &a.name == u)
            .and_then(|a| a.auth_info.as_ref())
    });
    (cluster, user)
}

/// Where a kubeconfig's client certificate comes from.
#[derive(Debug)]
pub enum Source {
    /// `client-certificate` / `client-key` files.
    Files { cert: PathBuf, key: PathBuf },
    /// `client-certificate-data` / `client-key-data` inline.
    Inline,
}

/// The kubeconfig's client certificate and key, and where they come from; None when it has
/// no client certificate (a token, say).
pub fn identity(k: &Kubeconfig) -> Result<Option<(Pair, Source)>, String> {
    use base64::Engine;
    let Some(user) = current(k).1 else {
        return Ok(None);
    };
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| format!("invalid base64: {e}"))
    };
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let (cert, key, source) = match (
        &user.client_certificate_data,
        &user.client_key_data,
        &user.client_certificate,
        &user.client_key,
    ) {
        (Some(c), Some(k), _, _) => (decode(c)?, decode(k.expose_secret())?, Source::Inline),
        (None, None, Some(c), Some(k)) => (
            read(c)?,
            read(k)?,
            Source::Files {
                cert: PathBuf::from(c),
                key: PathBuf::from(k),
            },
        ),
        (None, None, None, None) => return Ok(None),
        _ => return Err("client certificate and key must both be files or both be data".into()),
    };
    let pair = pair::parse(&cert, &key).map_err(|e| e.to_string())?;
    Ok(Some((pair, source)))
}

/// kubelet's isClientConfigStillValid: false (bootstrap) when the file is missing, cannot be
/// read, has no client certificate or an expired one; an error only when it cannot be
/// looked at.
pub fn still_valid(path: &Path, now: SystemTime) -> Result<bool, CertError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(CertError::Kubeconfig {
                path: path.to_path_buf(),
                message: format!("error reading existing bootstrap kubeconfig: {e}"),
            });
        }
        Ok(_) => {}
    }
    let why = match read(path).map(|k| identity(&k)) {
        Err(e) => e.to_string(),
        Ok(Err(e)) => format!("unable to load TLS certificates: {e}"),
        Ok(Ok(None)) => "it has no client certificate".to_string(),
        Ok(Ok(Some((pair, _)))) if pair.leaf.expired_at(now) => format!(
            "the client certificate is expired: {}",
            k8s_openapi::jiff::Timestamp::try_from(pair.leaf.not_after)
                .map(|t| t.to_string())
                .unwrap_or_default()
        ),
        Ok(Ok(Some(_))) => return Ok(true),
    };
    warn!(kubeconfig = %path.display(), reason = %why, "the kubeconfig is not usable; bootstrapping a new client certificate");
    Ok(false)
}

/// Writes the kubeconfig kubelet writes after the bootstrap (clientcmd's layout and names).
pub fn write_bootstrapped(
    bootstrap: &Kubeconfig,
    path: &Path,
    pem: &Path,
) -> Result<(), CertError> {
    let cluster = current(bootstrap).0.ok_or_else(|| CertError::Kubeconfig {
        path: path.to_path_buf(),
        message: "the bootstrap kubeconfig has no current cluster".into(),
    })?;
    let mut cluster_entry = serde_json::Map::new();
    cluster_entry.insert(
        "server".into(),
        cluster.server.clone().unwrap_or_default().into(),
    );
    if cluster.insecure_skip_tls_verify == Some(true) {
        cluster_entry.insert("insecure-skip-tls-verify".into(), true.into());
    }
    match (
        &cluster.certificate_authority,
        &cluster.certificate_authority_data,
    ) {
        (Some(file), _) => {
            cluster_entry.insert("certificate-authority".into(), file.clone().into());
        }
        (None, Some(data)) => {
            cluster_entry.insert("certificate-authority-data".into(), data.clone().into());
        }
        (None, None) => {}
    }
    let pem = pem.to_string_lossy();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster_entry}],
        "users": [{"name": "default-auth", "user": {"client-certificate": pem, "client-key": pem}}],
        "contexts": [{"name": "default-context", "context": {
            "cluster": "default-cluster", "user": "default-auth", "namespace": "default"}}],
        "current-context": "default-context",
        "preferences": {},
    });
    let text = serde_yaml::to_string(&doc).map_err(|e| read_error(path, e))?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        store::ensure_private_dir(dir)?;
    }
    store::write_private(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::super::pair::testing;
    use super::*;

    const BOOTSTRAP: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: Q0E=\nusers:\n- name: b\n  user:\n    token: abc.def\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: b\ncurrent-context: x\n";

    #[test]
    fn a_missing_tokened_or_expired_kubeconfig_needs_a_bootstrap_and_a_valid_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let kc = dir.path().join("kubeconfig");
        assert!(!still_valid(&kc, now).unwrap(), "missing");
        std::fs::write(&kc, BOOTSTRAP).unwrap();
        assert!(!still_valid(&kc, now).unwrap(), "a token, no certificate");
        std::fs::write(&kc, "this: [is not").unwrap();
        assert!(!still_valid(&kc, now).unwrap(), "unreadable");

        let ca = testing::ca();
        let bootstrap = Kubeconfig::from_yaml(BOOTSTRAP).unwrap();
        let pem = dir.path().join("kubelet-client-current.pem");
        write_bootstrapped(&bootstrap, &kc, &pem).unwrap();
        assert_eq!(
            std::fs::metadata(&kc).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (c, k) = testing::pair(
            &ca,
            "system:node:n",
            now - Duration::from_secs(120),
            Duration::from_secs(60),
        );
        std::fs::write(&pem, format!("{c}{k}")).unwrap();
        assert!(!still_valid(&kc, now).unwrap(), "expired");
        let (c, k) = testing::pair(&ca, "system:node:n", now, Duration::from_secs(600));
        std::fs::write(&pem, format!("{c}{k}")).unwrap();
        assert!(still_valid(&kc, now).unwrap());
    }

    #[test]
    fn the_written_kubeconfig_has_the_bootstrap_server_and_ca_and_the_pair_file() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("sub/kubeconfig");
        let pem = Path::new("/var/lib/kubelet/pki/kubelet-client-current.pem");
        write_bootstrapped(&Kubeconfig::from_yaml(BOOTSTRAP).unwrap(), &kc, pem).unwrap();
        let back = read(&kc).unwrap();
        let (cluster, user) = current(&back);
        let cluster = cluster.unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("Q0E="));
        let user = user.unwrap();
        assert_eq!(
            user.client_certificate.as_deref(),
            Some(pem.to_str().unwrap())
        );
        assert_eq!(user.client_key.as_deref(), Some(pem.to_str().unwrap()));
        assert!(user.token.is_none());
        assert_eq!(back.current_context.as_deref(), Some("default-context"));
    }
}
