//! TCP probes: healthy when a connection opens within the timeout. Also the dialer the HTTP
//! prober uses, with errors worded as Go's `net.Dial` words them (`dial tcp 10.0.0.1:80:
//! connect: connection refused`), since those words end up in events.

use std::io;
use std::time::Duration;

use k8s_openapi::api::core::v1::TCPSocketAction;
use tokio::net::TcpStream;

use super::{ProbeOutcome, ProbeTarget};

/// `host:port`, with IPv6 literals bracketed.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An io error as Go's syscall package words it: lower case, no "(os error N)".
pub(crate) fn go_error_text(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        io::ErrorKind::HostUnreachable => "no route to host".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network is unreachable".to_owned(),
        io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".to_owned(),
        _ => {
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_owned();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect::<String>()
            })
        }
    }
}

/// Opens a TCP connection to `host:port` (resolving a name if needed), trying each address
/// in turn. No timeout: callers bound it.
pub(crate) async fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let resolved = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("dial tcp: lookup {host}: {}", go_error_text(&e)))?;
    let mut last_error = format!("dial tcp: lookup {host}: no such host");
    for socket_address in resolved {
        match TcpStream::connect(socket_address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last_error = format!("dial tcp {socket_address}: connect: {}", go_error_text(&e));
            }
        }
    }
    Err(last_error)
}

pub(super) async fn probe(
    action: &TCPSocketAction,
    target: &ProbeTarget,
    timeout: Duration,
) -> ProbeOutcome {
    let port = match target.resolve_port(&action.port) {
        Ok(port) => port,
        Err(e) => return ProbeOutcome::Unknown(e),
    };
    let host = match action.host.as_deref().filter(|h| !h.is_empty()) {
        Some(host) => host,
        None => match target.default_host() {
            Ok(host) => host,
            Err(e) => return ProbeOutcome::Unknown(e),
        },
    };
    match tokio::time::timeout(timeout, dial(host, port)).await {
        // The connection is closed right away: only its opening is the probe.
        Ok(Ok(_stream)) => ProbeOutcome::Success,
        Ok(Err(message)) => ProbeOutcome::Failure(message),
        Err(_elapsed) => ProbeOutcome::Failure(format!(
            "dial tcp {}: i/o timeout",
            join_host_port(host, port)
        )),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ContainerPort, Probe, TCPSocketAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use tokio::net::TcpListener;

    use super::super::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::super::{ProbeOutcome, ProbeTarget, run_once};
    use super::*;

    fn tcp_probe(port: IntOrString) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction { host: None, port }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_open_port_is_healthy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        let outcome = run_once(
            &tcp_probe(IntOrString::Int(i32::from(port))),
            &loopback_target(),
            &exec,
        )
        .await;
        assert_eq!(outcome, ProbeOutcome::Success);
    }

    #[tokio::test]
    async fn a_named_port_is_resolved_from_the_container() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = ProbeTarget {
            ports: vec![ContainerPort {
                name: Some("db".into()),
                container_port: i32::from(port),
                ..Default::default()
            }],
            ..loopback_target()
        };
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        let outcome = run_once(&tcp_probe(IntOrString::String("db".into())), &target, &exec).await;
        assert_eq!(outcome, ProbeOutcome::Success);
    }

    #[tokio::test]
    async fn a_closed_port_fails_as_go_words_it() {
        let closed = crate::pods::probe::testing::closed_port();
        let port = closed.port;
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        let outcome = run_once(
            &tcp_probe(IntOrString::Int(i32::from(port))),
            &loopback_target(),
            &exec,
        )
        .await;
        assert_eq!(
            outcome,
            ProbeOutcome::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn an_unknown_named_port_is_unknown() {
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        let outcome = run_once(
            &tcp_probe(IntOrString::String("nope".into())),
            &loopback_target(),
            &exec,
        )
        .await;
        assert!(matches!(outcome, ProbeOutcome::Unknown(_)));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert_eq!(join_host_port("10.0.0.1", 80), "10.0.0.1:80");
    }
}
