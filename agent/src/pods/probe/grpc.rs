//! gRPC probes: `grpc.health.v1.Health/Check` on the pod IP over plaintext HTTP/2;
//! `SERVING` is healthy. Messages follow kubelet's gRPC prober.

use std::error::Error as StdError;
use std::time::Duration;

use k8s_openapi::api::core::v1::GRPCAction;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::tcp::join_host_port;
use super::{KUBE_VERSION, ProbeOutcome, ProbeTarget};

pub(super) async fn probe(
    action: &GRPCAction,
    target: &ProbeTarget,
    timeout: Duration,
) -> ProbeOutcome {
    let host = match target.default_host() {
        Ok(host) => host,
        Err(e) => return ProbeOutcome::Unknown(e),
    };
    let Some(port) = u16::try_from(action.port).ok().filter(|p| *p > 0) else {
        return ProbeOutcome::Unknown(format!("invalid port number: {}", action.port));
    };
    let address = join_host_port(host, port);
    let deadline = Instant::now() + timeout;

    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .and_then(|e| e.user_agent(format!("kube-probe/{KUBE_VERSION}")));
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint.connect_timeout(timeout),
        Err(e) => return ProbeOutcome::Unknown(format!("invalid gRPC address {address:?}: {e}")),
    };
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            return ProbeOutcome::Failure(format!(
                "error: failed to connect service at {address:?}: {}",
                error_chain(&e)
            ));
        }
        Err(_elapsed) => {
            return ProbeOutcome::Failure(format!(
                "timeout: failed to connect service {address:?} within {timeout:?}: context deadline exceeded"
            ));
        }
    };

    let mut request = tonic::Request::new(HealthCheckRequest {
        service: action.service.clone().unwrap_or_default(),
    });
    request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    let rpc_timed_out = || {
        ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        ))
    };
    let mut client = HealthClient::new(channel);
    match tokio::time::timeout_at(deadline, client.check(request)).await {
        Err(_elapsed) => rpc_timed_out(),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unimplemented => ProbeOutcome::Failure(format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            )),
            tonic::Code::DeadlineExceeded => rpc_timed_out(),
            code => ProbeOutcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {code:?} desc = {}",
                status.message()
            )),
        },
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => ProbeOutcome::Success,
            other => ProbeOutcome::Failure(format!(
                "service unhealthy (responded with {:?})",
                other.as_str_name()
            )),
        },
    }
}

fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{GRPCAction, Probe};
    use tokio::net::TcpListener;
    use tonic::transport::Server;
    use tonic::transport::server::TcpIncoming;
    use tonic_health::ServingStatus as Status;

    use super::super::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::super::{ProbeOutcome, run_once};

    /// A tonic health server on 127.0.0.1: "" and "svc" report `overall` and `svc`.
    async fn health_server(overall: Status, svc: Status) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("", overall).await;
        reporter.set_service_status("svc", svc).await;
        tokio::spawn(async move {
            // Keep the reporter alive as long as the server.
            let _reporter = reporter;
            let _ = Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
        });
        port
    }

    async fn outcome(port: u16, service: Option<&str>) -> ProbeOutcome {
        let probe = Probe {
            grpc: Some(GRPCAction {
                port: i32::from(port),
                service: service.map(str::to_owned),
            }),
            // Well above kubelet's default of 1 s: a loaded CI machine must not turn these
            // answers into timeouts (the timeout paths have tests of their own).
            timeout_seconds: Some(10),
            ..Default::default()
        };
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        run_once(&probe, &loopback_target(), &exec).await
    }

    #[tokio::test]
    async fn serving_is_healthy() {
        let port = health_server(Status::Serving, Status::NotServing).await;
        assert_eq!(outcome(port, None).await, ProbeOutcome::Success);
    }

    #[tokio::test]
    async fn the_service_name_is_sent_and_not_serving_fails() {
        let port = health_server(Status::Serving, Status::NotServing).await;
        assert_eq!(
            outcome(port, Some("svc")).await,
            ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".to_owned())
        );
    }

    #[tokio::test]
    async fn an_unknown_service_fails_with_the_rpc_error() {
        let port = health_server(Status::Serving, Status::Serving).await;
        assert_eq!(
            outcome(port, Some("other")).await,
            ProbeOutcome::Failure(
                "error: health rpc probe failed: rpc error: code = NotFound desc = service not registered"
                    .to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_closed_port_fails_to_connect() {
        let closed = crate::pods::probe::testing::closed_port();
        let port = closed.port;
        let ProbeOutcome::Failure(message) = outcome(port, None).await else {
            panic!("expected a failure");
        };
        assert!(
            message.starts_with(&format!(
                "error: failed to connect service at \"127.0.0.1:{port}\""
            )),
            "{message}"
        );
    }
}
