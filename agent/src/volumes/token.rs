//! Service-account tokens for projected volumes through the TokenRequest API, bound to the pod
//! (audience, expirationSeconds), cached per pod and refreshed once 80% of their life has
//! passed (or after 24 hours), as kubelet's token manager does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

use super::plugin::MountError;

/// kubelet refreshes a token this old whatever its expiry.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pod_uid: String,
    service_account: String,
    audience: String,
    expiration_seconds: i64,
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    issued: Instant,
    ttl: Duration,
}

/// When a token issued `age` ago with lifetime `ttl` must be refreshed: after 80% of its life,
/// at most after [`MAX_AGE`]. Zero when already due.
pub fn refresh_in(ttl: Duration, age: Duration) -> Duration {
    (ttl.mul_f64(0.8)).min(MAX_AGE).saturating_sub(age)
}

/// The token cache, shared by all pods.
#[derive(Default)]
pub struct Tokens {
    cache: Mutex<HashMap<Key, Cached>>,
}

impl Tokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A token for the pod's service account; returns it and how long until it is due for
    /// refresh.
    pub async fn get(
        &self,
        client: &kube::Client,
        pod: &Pod,
        audience: Option<&str>,
        expiration_seconds: i64,
    ) -> Result<(String, Duration), MountError> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sa = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default");
        let key = Key {
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            service_account: sa.to_string(),
            audience: audience.unwrap_or_default().to_string(),
            expiration_seconds,
        };
        if let Some(c) = self.lock().get(&key) {
            let left = refresh_in(c.ttl, c.issued.elapsed());
            if !left.is_zero() {
                return Ok((c.token.clone(), left));
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience
                    .filter(|a| !a.is_empty())
                    .map(|a| vec![a.to_string()])
                    .unwrap_or_default(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".to_string()),
                    kind: Some("Pod".to_string()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..TokenRequest::default()
        };
        let issued = Instant::now();
        let answer = Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create_token_request(sa, &PostParams::default(), &request)
            .await
            .map_err(|e| MountError::Failed(format!("failed to fetch token: {e}")))?;
        let status = answer
            .status
            .ok_or_else(|| MountError::Failed("failed to fetch token: empty status".into()))?;
        let ttl = status
            .expiration_timestamp
            .0
            .duration_since(k8s_openapi::jiff::Timestamp::now());
        let ttl = Duration::try_from(ttl)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1));
        self.lock().insert(
            key,
            Cached {
                token: status.token.clone(),
                issued,
                ttl,
            },
        );
        Ok((status.token, refresh_in(ttl, Duration::ZERO)))
    }

    /// Drops the tokens of a pod that is gone.
    pub fn forget_pod(&self, uid: &str) {
        self.lock().retain(|k, _| k.pod_uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshed_at_eighty_percent_of_life_and_within_a_day() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_in(hour, Duration::ZERO), Duration::from_secs(2880));
        assert_eq!(
            refresh_in(hour, Duration::from_secs(2000)),
            Duration::from_secs(880)
        );
        assert!(refresh_in(hour, Duration::from_secs(2880)).is_zero());
        assert_eq!(refresh_in(hour * 48, Duration::ZERO), MAX_AGE);
    }
}
