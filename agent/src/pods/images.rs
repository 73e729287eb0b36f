//! Images for containers: imagePullPolicy (Always, IfNotPresent, Never), imagePullSecrets
//! (dockerconfigjson / dockercfg), and kubelet's per-pod, per-image pull backoff (10 s doubling
//! to 5 min, forgotten after 10 quiet minutes) behind ErrImagePull / ImagePullBackOff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use cri_client::api::AuthConfig;
use k8s_openapi::api::core::v1::{Container, ImageVolumeSource, Pod, Secret};
use serde::Deserialize;
use thiserror::Error;

use crate::backoff::KeyedBackoff;
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

const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A pull is keyed by (pod UID, image), as kubelet's image manager keys its backoff.
type PullKey = (String, String);

/// Failed pulls: kubelet's pull backoff, and the last error of each (kubelet's prevPullErrMsg).
struct PullFailures {
    backoff: KeyedBackoff<PullKey, Instant>,
    last_error: HashMap<PullKey, String>,
}

impl Default for PullFailures {
    fn default() -> Self {
        PullFailures {
            backoff: KeyedBackoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            last_error: HashMap::new(),
        }
    }
}

impl PullFailures {
    /// The last error of `key` while its backoff lasts at `now`.
    fn in_backoff(&self, key: &PullKey, now: Instant) -> Option<&str> {
        self.backoff.remaining_since_update(key, now)?;
        self.last_error.get(key).map(String::as_str)
    }

    /// Records a failed pull at `now`; returns the backoff that follows.
    fn failed(&mut self, key: PullKey, error: String, now: Instant) -> Duration {
        self.backoff.gc(now);
        let backoff = &self.backoff;
        self.last_error.retain(|k, _| backoff.get(k).is_some());
        self.last_error.insert(key.clone(), error);
        self.backoff.next(key, now)
    }

    fn succeeded(&mut self, key: &PullKey) {
        self.backoff.reset(key);
        self.last_error.remove(key);
    }
}

/// Pulls images for pods and remembers failed pulls per (pod UID, image).
#[derive(Default)]
pub struct Images {
    failures: Mutex<PullFailures>,
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

/// An image to make present: a container's, or an image volume's (`volumes[].image`).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub image: &'a str,
    /// Always, IfNotPresent (the default) or Never.
    pub pull_policy: Option<&'a str>,
}

impl<'a> Wanted<'a> {
    pub fn container(c: &'a Container) -> Wanted<'a> {
        Wanted {
            image: c.image.as_deref().unwrap_or_default(),
            pull_policy: c.image_pull_policy.as_deref(),
        }
    }

    pub fn volume(v: &'a ImageVolumeSource) -> Wanted<'a> {
        Wanted {
            image: v.reference.as_deref().unwrap_or_default(),
            pull_policy: v.pull_policy.as_deref(),
        }
    }
}

impl Images {
    /// Makes sure `wanted` is present, pulling as its policy says. `announce` is called with
    /// ("Pulling", message) before a pull starts so the caller can emit the event.
    pub async fn ensure(
        &self,
        cri: &dyn PodRuntime,
        pod: &Pod,
        wanted: Wanted<'_>,
        secrets: &[Secret],
        announce: impl FnOnce(String),
    ) -> Result<Ensured, PullError> {
        let image = wanted.image.to_string();
        if let Err(reason) = super::image_ref::check(&image) {
            return Err(PullError::InvalidName { image, reason });
        }
        let policy = wanted.pull_policy.unwrap_or("IfNotPresent");
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
        if let Some(last) = self.lock().in_backoff(&key, Instant::now()) {
            return Err(PullError::BackOff {
                image,
                last: last.to_string(),
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
                    self.lock().succeeded(&key);
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
        self.lock().failed(key, last.clone(), Instant::now());
        Err(PullError::Failed {
            image,
            message: last,
        })
    }

    /// Time left before the next pull of `image` for `pod_uid` may be tried.
    pub fn backoff_remaining(&self, pod_uid: &str, image: &str) -> Option<Duration> {
        self.lock()
            .backoff
            .remaining_since_update(&(pod_uid.to_string(), image.to_string()), Instant::now())
    }

    /// Forgets a pod's backoff entries (pod gone).
    pub fn forget_pod(&self, pod_uid: &str) {
        let mut failures = self.lock();
        failures.backoff.retain(|(uid, _)| uid != pod_uid);
        failures.last_error.retain(|(uid, _), _| uid != pod_uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PullFailures> {
        self.failures
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
    fn failed_pulls_back_off_10s_doubling_to_5_minutes_per_pod_and_image() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let key = |uid: &str| (uid.to_string(), "busybox".to_string());
        let mut f = PullFailures::default();
        assert_eq!(
            f.in_backoff(&key("a"), at(0)),
            None,
            "the first pull is tried"
        );
        let mut now = 0;
        let mut waits = Vec::new();
        for i in 0..7 {
            let wait = f.failed(key("a"), format!("error {i}"), at(now));
            assert_eq!(
                f.in_backoff(&key("a"), at(now)),
                Some(format!("error {i}").as_str())
            );
            assert!(
                f.in_backoff(&key("a"), at(now + wait.as_secs() - 1))
                    .is_some()
            );
            assert_eq!(f.in_backoff(&key("a"), at(now + wait.as_secs())), None);
            waits.push(wait.as_secs());
            now += wait.as_secs();
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(f.in_backoff(&key("b"), at(now)), None, "another pod's pull");
        // Ten quiet minutes after a failure forget the backoff; a success forgets it at once.
        let last = now - 300;
        assert_eq!(f.failed(key("a"), "e".into(), at(last + 600)), BACKOFF_MAX);
        assert_eq!(
            f.failed(key("a"), "e".into(), at(last + 1201)),
            BACKOFF_INITIAL
        );
        f.succeeded(&key("a"));
        assert_eq!(f.in_backoff(&key("a"), at(last + 1201)), None);
        assert!(f.last_error.is_empty());
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
