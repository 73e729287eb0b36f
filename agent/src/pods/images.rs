//! Images for containers: imagePullPolicy (Always, IfNotPresent, Never), imagePullSecrets
//! (dockerconfigjson / dockercfg), and kubelet's per-pod, per-image pull backoff (10 s doubling
//! to 5 min) behind ErrImagePull / ImagePullBackOff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use cri_client::api::AuthConfig;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use serde::Deserialize;
use thiserror::Error;

use crate::runtime::PodRuntime;

/// Why a container's image is not available. `reason()` is kubelet's waiting reason.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PullError {
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error(
        "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": {reason}"
    )]
    InvalidName { image: String, reason: String },
    #[error("Back-off pulling image \"{image}\": {last}")]
    BackOff { image: String, last: String },
    #[error("Failed to pull image \"{image}\": {message}")]
    Failed { image: String, message: String },
}

impl PullError {
    /// The container's waiting reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::NeverPull(_) => "ErrImageNeverPull",
            PullError::InvalidName { .. } => super::image_ref::INVALID_REASON,
            PullError::BackOff { .. } => "ImagePullBackOff",
            PullError::Failed { .. } => "ErrImagePull",
        }
    }
}

/// What ensure_image did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// The image reference the runtime resolved (an image id or digest).
    pub image_ref: String,
    /// Some(duration) when a pull happened.
    pub pulled_in: Option<Duration>,
    /// The image as the runtime describes it (its user, for runAsNonRoot).
    pub image: Option<cri_client::api::Image>,
}

struct BackoffEntry {
    delay: Duration,
    until: Instant,
    last_error: String,
}

const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Pulls images for pods and remembers failed pulls per (pod UID, image).
#[derive(Default)]
pub struct Images {
    backoff: Mutex<HashMap<(String, String), BackoffEntry>>,
}

/// The registry host of an image reference ("docker.io" when the first component is not a host).
pub fn registry_host(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn strip_scheme(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `host` from pull secrets (dockerconfigjson or the older dockercfg), in the
/// order the secrets are listed.
pub fn credentials_for(host: &str, secrets: &[Secret]) -> Vec<AuthConfig> {
    let mut out = Vec::new();
    for secret in secrets {
        let data = secret.data.clone().unwrap_or_default();
        let auths: HashMap<String, DockerAuth> = if let Some(b) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<DockerConfigJson>(&b.0)
                .map(|c| c.auths)
                .unwrap_or_default()
        } else if let Some(b) = data.get(".dockercfg") {
            serde_json::from_slice(&b.0).unwrap_or_default()
        } else {
            continue;
        };
        for (key, entry) in auths {
            if strip_scheme(&key) != host {
                continue;
            }
            let (user, pass) = match (&entry.username, &entry.password, &entry.auth) {
                (Some(u), Some(p), _) => (u.clone(), p.clone()),
                (_, _, Some(a)) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .unwrap_or_default();
                    match decoded.split_once(':') {
                        Some((u, p)) => (u.to_string(), p.to_string()),
                        None => continue,
                    }
                }
                _ => continue,
            };
            // No server_address, as kubelet sends none for pull secrets: containerd parses a
            // set one as a URL and compares its host with the registry's, so "HOST:PORT" fails
            // to parse ("first path segment in URL cannot contain colon") and a bare "HOST"
            // silently drops the credentials. The secret's key was matched above instead.
            out.push(AuthConfig {
                username: user,
                password: pass,
                ..AuthConfig::default()
            });
        }
    }
    out
}

fn pull_policy(container: &Container) -> &str {
    container
        .image_pull_policy
        .as_deref()
        .unwrap_or("IfNotPresent")
}

impl Images {
    /// Makes sure `container`'s image is present, pulling as its policy says. `announce` is
    /// called with ("Pulling", message) before a pull starts so the caller can emit the event.
    pub async fn ensure(
        &self,
        cri: &dyn PodRuntime,
        pod: &Pod,
        container: &Container,
        secrets: &[Secret],
        announce: impl FnOnce(String),
    ) -> Result<Ensured, PullError> {
        let image = container.image.clone().unwrap_or_default();
        if let Err(reason) = super::image_ref::check(&image) {
            return Err(PullError::InvalidName { image, reason });
        }
        let policy = pull_policy(container);
        if policy != "Always" {
            let present = cri
                .image_status(&image, false)
                .await
                .ok()
                .and_then(|s| s.image);
            match present {
                Some(i) => {
                    return Ok(Ensured {
                        image_ref: i.id.clone(),
                        pulled_in: None,
                        image: Some(i),
                    });
                }
                None if policy == "Never" => return Err(PullError::NeverPull(image)),
                None => {}
            }
        }
        let key = (pod.metadata.uid.clone().unwrap_or_default(), image.clone());
        if let Some(e) = self.lock().get(&key)
            && Instant::now() < e.until
        {
            return Err(PullError::BackOff {
                image,
                last: e.last_error.clone(),
            });
        }
        announce(format!("Pulling image \"{image}\""));
        let started = Instant::now();
        let creds = credentials_for(registry_host(&image), secrets);
        let mut last = String::new();
        let attempts: Vec<Option<AuthConfig>> = if creds.is_empty() {
            vec![None]
        } else {
            creds.into_iter().map(Some).collect()
        };
        for auth in attempts {
            match cri.pull_image(&image, auth, None).await {
                Ok(image_ref) => {
                    self.lock().remove(&key);
                    let pulled_in = Some(started.elapsed());
                    let described = cri
                        .image_status(&image_ref, false)
                        .await
                        .ok()
                        .and_then(|s| s.image);
                    return Ok(Ensured {
                        image_ref,
                        pulled_in,
                        image: described,
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        let mut map = self.lock();
        let delay = map
            .get(&key)
            .map_or(BACKOFF_INITIAL, |e| (e.delay * 2).min(BACKOFF_MAX));
        map.insert(
            key,
            BackoffEntry {
                delay,
                until: Instant::now() + delay,
                last_error: last.clone(),
            },
        );
        Err(PullError::Failed {
            image,
            message: last,
        })
    }

    /// Time left before the next pull of `image` for `pod_uid` may be tried.
    pub fn backoff_remaining(&self, pod_uid: &str, image: &str) -> Option<Duration> {
        self.lock()
            .get(&(pod_uid.to_string(), image.to_string()))
            .and_then(|e| e.until.checked_duration_since(Instant::now()))
    }

    /// Forgets a pod's backoff entries (pod gone).
    pub fn forget_pod(&self, pod_uid: &str) {
        self.lock().retain(|(uid, _), _| uid != pod_uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), BackoffEntry>> {
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn registry_hosts() {
        assert_eq!(
            registry_host("127.0.0.1:5000/busybox:1.35"),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_host("localhost/x"), "localhost");
        assert_eq!(registry_host("library/busybox"), "docker.io");
        assert_eq!(registry_host("busybox"), "docker.io");
    }

    #[test]
    fn an_invalid_reference_reads_as_kubelets_message() {
        let e = PullError::InvalidName {
            image: "a b".into(),
            reason: "invalid reference format".into(),
        };
        assert_eq!(e.reason(), "InvalidImageName");
        assert_eq!(
            e.to_string(),
            r#"Failed to apply default image tag "a b": couldn't parse image name "a b": invalid reference format"#
        );
    }

    fn secret(key: &str, json: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(json.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn pull_secret_credentials_match_the_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let s = secret(
            ".dockerconfigjson",
            &format!(
                r#"{{"auths": {{"http://127.0.0.1:5001": {{"auth": "{auth}"}}, "other.example": {{"username": "u", "password": "p"}}}}}}"#
            ),
        );
        let c = credentials_for("127.0.0.1:5001", std::slice::from_ref(&s));
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].username.as_str(), c[0].password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(
            c[0].server_address, "",
            "containerd would parse it as a URL"
        );
        assert!(credentials_for("127.0.0.1:5000", &[s]).is_empty());

        let old = secret(
            ".dockercfg",
            r#"{"127.0.0.1:5001": {"username": "bob", "password": "pw"}}"#,
        );
        assert_eq!(credentials_for("127.0.0.1:5001", &[old])[0].username, "bob");
        assert!(
            credentials_for("127.0.0.1:5001", &[secret(".dockerconfigjson", "garbage")]).is_empty()
        );
    }

    #[test]
    fn reasons_match_kubelet() {
        assert_eq!(
            PullError::NeverPull("x".into()).reason(),
            "ErrImageNeverPull"
        );
        assert_eq!(
            PullError::Failed {
                image: "x".into(),
                message: "m".into()
            }
            .reason(),
            "ErrImagePull"
        );
        assert_eq!(
            PullError::BackOff {
                image: "x".into(),
                last: "m".into()
            }
            .reason(),
            "ImagePullBackOff"
        );
    }
}
