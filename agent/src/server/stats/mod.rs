//! Resource usage for metrics-server and monitoring: `/stats/summary` (kubelet's Summary API)
//! and `/metrics/resource` (kubelet's resource metrics), both built from the runtime's
//! `ListContainerStats` / `ListPodSandboxStats` and procfs for the node. Both sit behind the
//! API's guard (nodes/stats and nodes/metrics).
//!
//! - [`model`]: the Summary API types; [`procfs`]: the node's figures;
//! - [`rate`]: usageNanoCores from successive samples;
//! - [`collect`]: runtime + procfs -> summary; [`resource`]: summary -> Prometheus text
//!   (the `prometheus` crate's encoder).

pub mod collect;
pub mod model;
pub mod procfs;
pub mod rate;
pub mod resource;
pub mod volumes;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{ServerError, Shared};

/// The stats routes, to merge into the API's router (inside its guard).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/stats/summary", get(summary))
        .route("/stats/summary/", get(summary))
        .route("/metrics/resource", get(resource_metrics))
}

#[derive(Debug, Default, Deserialize)]
struct SummaryQuery {
    only_cpu_and_memory: Option<String>,
}

/// /stats/summary[?only_cpu_and_memory=true]
async fn summary(
    State(state): State<Shared>,
    Query(q): Query<SummaryQuery>,
) -> Result<Response, ServerError> {
    let mut s = collect::summary(&state.cri, &state.node).await?;
    let cpu_and_memory_only = q.only_cpu_and_memory.as_deref() == Some("true");
    if let (Some(csi), false) = (&state.csi, cpu_and_memory_only) {
        let now = model::time_from_nanos(
            i64::try_from(k8s_openapi::jiff::Timestamp::now().as_nanosecond()).unwrap_or(0),
        );
        for p in &mut s.pods {
            let v = volumes::csi_volumes(&state.root_dir, csi, &p.pod_ref.uid, &now).await;
            p.volume = (!v.is_empty()).then_some(v);
        }
    }
    if cpu_and_memory_only {
        s.node.network = None;
        s.node.fs = None;
        for p in &mut s.pods {
            p.network = None;
        }
    }
    let body = serde_json::to_string(&s).map_err(|e| ServerError::Runtime(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// /metrics/resource
async fn resource_metrics(State(state): State<Shared>) -> Result<Response, ServerError> {
    let rendered = match collect::summary(&state.cri, &state.node).await {
        Ok(s) => resource::render(Some(&s)),
        Err(error) => {
            tracing::warn!(%error, "collecting resource metrics failed");
            resource::render(None)
        }
    };
    let body = rendered.map_err(|e| ServerError::Runtime(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response())
}
