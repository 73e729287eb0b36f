//! Who is calling and may they: client certificates from --client-ca-file and bearer tokens
//! (TokenReview) authenticate; SubjectAccessReview on the node's subresources authorises, as
//! kubelet does. Both answers are cached briefly (kubelet: 2 min for tokens, 5 min allowed,
//! 30 s denied) so a busy dashboard does not load the apiserver; token answers as
//! [`super::tokens`] describes (unauthenticated tokens for 30 s too).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::cache::Cache;
use super::identity::Identity;
use super::tokens::{Answer, ReviewFailed, TokenCache};
use crate::apiserver::{ApiServer, Standalone};

const ALLOWED_TTL: Duration = Duration::from_secs(300);
const DENIED_TTL: Duration = Duration::from_secs(30);
const CACHE_LIMIT: usize = 4096;

/// What a request asks to do to the Node object, as kubelet maps its paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub verb: &'static str,
    pub subresource: &'static str,
}

/// kubelet's mapping: /stats -> nodes/stats, /metrics -> nodes/metrics, /logs -> nodes/log,
/// /spec -> nodes/spec, /checkpoint -> nodes/checkpoint, everything else (pods, exec, attach,
/// portForward, containerLogs, healthz, ...) -> nodes/proxy. The verb follows the method.
pub fn attributes(method: &axum::http::Method, path: &str) -> Attributes {
    let verb = match *method {
        axum::http::Method::POST => "create",
        axum::http::Method::PUT => "update",
        axum::http::Method::PATCH => "patch",
        axum::http::Method::DELETE => "delete",
        _ => "get",
    };
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let subresource = match first {
        "stats" => "stats",
        "metrics" => "metrics",
        "logs" => "log",
        "spec" => "spec",
        "checkpoint" => "checkpoint",
        _ => "proxy",
    };
    Attributes { verb, subresource }
}

/// Token and access-review checks against the apiserver, with caches.
pub struct Auth {
    api: ApiServer,
    node: String,
    tokens: Arc<TokenCache>,
    decisions: Cache<(Identity, Attributes), bool>,
}

impl Auth {
    pub fn new(api: ApiServer, node: &str) -> Auth {
        Auth {
            api,
            node: node.to_string(),
            tokens: TokenCache::new(),
            decisions: Cache::new(CACHE_LIMIT),
        }
    }

    /// The identity behind a bearer token, None if the apiserver does not know it.
    pub async fn authenticate_token(&self, token: &str) -> Answer {
        let Some(client) = self.api.connected().cloned() else {
            return Err(ReviewFailed::Apiserver(Standalone.to_string()));
        };
        self.tokens
            .authenticate(token, move |token| token_review(client, token))
            .await
    }

    /// Whether `who` may do `what` to this node (SubjectAccessReview).
    pub async fn authorize(&self, who: &Identity, what: &Attributes) -> Result<bool, String> {
        let key = (who.clone(), what.clone());
        if let Some(allowed) = self.decisions.get(&key) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.user.clone()),
                groups: Some(who.groups.clone()),
                uid: (!who.uid.is_empty()).then(|| who.uid.clone()),
                extra: (!who.extra.is_empty()).then(|| who.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(what.verb.to_string()),
                    resource: Some("nodes".to_string()),
                    subresource: Some(what.subresource.to_string()),
                    name: Some(self.node.clone()),
                    group: Some(String::new()),
                    version: Some("v1".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let client = self.api.client().map_err(|e| e.to_string())?;
        let answer = Api::<SubjectAccessReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| e.to_string())?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        self.decisions.put(key, allowed, ttl);
        Ok(allowed)
    }
}

/// One TokenReview: the caller's identity if the apiserver authenticates the token.
async fn token_review(client: kube::Client, token: String) -> Answer {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            audiences: None,
        },
        ..Default::default()
    };
    let answer = Api::<TokenReview>::all(client)
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| ReviewFailed::Apiserver(e.to_string()))?;
    review_answer(answer.status)
}

/// What a TokenReview's status says. An error the apiserver reports (its authenticator
/// failed), or "authenticated" without a user, is a failed review, never cached as a rejection.
fn review_answer(
    status: Option<k8s_openapi::api::authentication::v1::TokenReviewStatus>,
) -> Answer {
    let Some(s) = status else {
        return Ok(None);
    };
    if let Some(error) = s.error.filter(|e| !e.is_empty()) {
        return Err(ReviewFailed::Apiserver(error));
    }
    if s.authenticated != Some(true) {
        return Ok(None);
    }
    let Some(u) = s.user else {
        return Err(ReviewFailed::Apiserver(
            "authenticated without a user".to_string(),
        ));
    };
    Ok(Some(Identity {
        user: u.username.unwrap_or_default(),
        groups: u.groups.unwrap_or_default(),
        uid: u.uid.unwrap_or_default(),
        extra: u.extra.unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_that_reports_an_error_is_a_failure_not_a_rejection() {
        let status = |v: serde_json::Value| Some(serde_json::from_value(v).unwrap());
        assert!(matches!(
            review_answer(status(
                serde_json::json!({"authenticated": false, "error": "webhook down"})
            )),
            Err(ReviewFailed::Apiserver(_))
        ));
        assert!(matches!(
            review_answer(status(serde_json::json!({"authenticated": true}))),
            Err(ReviewFailed::Apiserver(_))
        ));
        assert!(matches!(
            review_answer(status(serde_json::json!({"authenticated": false}))),
            Ok(None)
        ));
        let ok = review_answer(status(
            serde_json::json!({"authenticated": true, "user": {"username": "u"}}),
        ));
        assert_eq!(ok.unwrap().unwrap().user, "u");
    }

    #[test]
    fn paths_map_to_kubelets_subresources() {
        let get = axum::http::Method::GET;
        assert_eq!(attributes(&get, "/stats/summary").subresource, "stats");
        assert_eq!(attributes(&get, "/metrics/resource").subresource, "metrics");
        assert_eq!(attributes(&get, "/metrics").subresource, "metrics");
        assert_eq!(attributes(&get, "/logs/").subresource, "log");
        assert_eq!(attributes(&get, "/pods").subresource, "proxy");
        assert_eq!(
            attributes(&get, "/containerLogs/a/b/c").subresource,
            "proxy"
        );
        let exec = attributes(&axum::http::Method::POST, "/exec/a/b/c");
        assert_eq!((exec.verb, exec.subresource), ("create", "proxy"));
    }
}
