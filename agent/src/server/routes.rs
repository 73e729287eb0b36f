//! The router: every route behind the authentication/authorisation guard, plus the small
//! endpoints (/healthz, /pods, /metrics).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::auth;
use super::identity::{Identity, PeerIdentity};
use super::tokens::ReviewFailed;
use super::{ServerState, Shared, logs, stream};
use crate::config::server::AuthorizationMode;

/// Builds the router.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/metrics", get(metrics))
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route("/exec/{ns}/{pod}/{container}", any(stream::exec))
        .route("/exec/{ns}/{pod}/{uid}/{container}", any(stream::exec))
        .route("/attach/{ns}/{pod}/{container}", any(stream::attach))
        .route("/attach/{ns}/{pod}/{uid}/{container}", any(stream::attach))
        .route("/portForward/{ns}/{pod}", any(stream::port_forward))
        .route("/portForward/{ns}/{pod}/{uid}", any(stream::port_forward))
        .merge(super::stats::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response()
}

/// Authenticates and authorises every request (kubelet's filter), and counts it.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = check_then_run(&state, req, next).await;
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    crate::metrics::observe_http(
        method.as_str(),
        &format!("/{first}"),
        response.status().as_u16(),
    );
    response
}

async fn check_then_run(state: &ServerState, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<PeerIdentity>()
        .and_then(|p| p.0.clone());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let who = match (peer, bearer) {
        (Some(id), _) => id,
        (None, Some(token)) if state.settings.authentication_token_webhook => {
            match state.auth.authenticate_token(&token).await {
                Ok(Some(id)) => id,
                Ok(None) => return unauthorized(),
                // Busy only happens under a flood of fresh tokens: a line per request would
                // be the flood's amplifier.
                Err(e @ ReviewFailed::Busy) => {
                    tracing::debug!(error = %e, "TokenReview not attempted");
                    return unauthorized();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TokenReview failed");
                    return unauthorized();
                }
            }
        }
        _ if state.settings.anonymous_auth => Identity::anonymous(),
        _ => return unauthorized(),
    };
    if state.settings.authorization_mode == AuthorizationMode::Webhook {
        let what = auth::attributes(req.method(), req.uri().path());
        let allowed = match state.auth.authorize(&who, &what).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "SubjectAccessReview failed");
                false
            }
        };
        if !allowed {
            let msg = format!(
                "Forbidden (user={}, verb={}, resource=nodes, subresource={})\n",
                who.user, what.verb, what.subresource
            );
            return (StatusCode::FORBIDDEN, msg).into_response();
        }
    }
    next.run(req).await
}

/// /pods: the pods bound to this node, as a v1 PodList: from the API, or in standalone mode
/// the static pods with the status their workers computed.
async fn pods(State(state): State<Shared>) -> Response {
    let listed = match state.api.connected() {
        Some(client) => {
            let api: Api<Pod> = Api::all(client.clone());
            let lp = ListParams::default().fields(&format!("spec.nodeName={}", state.node));
            api.list(&lp).await.map(|l| l.items)
        }
        None => Ok(state.statics.pods_with_status()),
    };
    match listed {
        Ok(items) => {
            let body = serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// /metrics: the registry, with the runtime gauges refreshed first.
async fn metrics(State(state): State<Shared>) -> Response {
    crate::metrics::snapshot::refresh(&state.cri, &state.node).await;
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::encode(),
    )
        .into_response()
}

/// Shared-state constructor for tests and the accept loop.
pub fn shared(state: ServerState) -> Shared {
    Arc::new(state)
}
