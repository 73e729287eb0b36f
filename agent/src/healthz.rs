//! The local, unauthenticated /healthz endpoint (kubelet's 127.0.0.1:10248): "ok" while the
//! node status loop keeps cycling, 500 when it has stalled.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::node::status::Heartbeat;

#[derive(Clone)]
struct Health {
    heartbeat: Heartbeat,
    stall_after: Duration,
}

async fn healthz(State(h): State<Health>) -> (StatusCode, String) {
    match h.heartbeat.age() {
        // Not started yet (registration still retrying): alive, not stalled.
        None => (StatusCode::OK, "ok".to_string()),
        Some(age) if u64::try_from(age).unwrap_or(0) <= h.stall_after.as_secs() => {
            (StatusCode::OK, "ok".to_string())
        }
        Some(age) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("node status loop stalled: last cycle {age}s ago"),
        ),
    }
}

/// Binds the endpoint; an error here is a start-up error (port taken, bad address).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves /healthz until cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    heartbeat: Heartbeat,
    stall_after: Duration,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(Health {
            heartbeat,
            stall_after,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
