//! Container probes (startup, liveness, readiness) with kubelet's semantics.
//!
//! - [`run_once`] runs one probe attempt (exec, httpGet, tcpSocket or grpc) and words its
//!   outcome as kubelet does, so events read the same;
//! - [`worker`] runs one probe of one container on its period, applies the thresholds and
//!   publishes the decision on a watch channel; it never restarts or kills anything.
//!
//! The transports live one per file ([`exec`], [`http`], [`tcp`], [`grpc`]); lifecycle hooks
//! ([`super::hook_handler`]) reuse the exec and HTTP ones.

pub(crate) mod exec;
mod grpc;
pub(crate) mod http;
pub(crate) mod tcp;
pub mod worker;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub use worker::{ProbeHandle, ProbeState, ProbeTiming, ProbeWorker, StartedGate};

/// The Kubernetes version probes and hooks announce in their `User-Agent`.
pub(crate) const KUBE_VERSION: &str = "1.35";

/// Which of a container's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl fmt::Display for ProbeKind {
    /// As kubelet capitalises it in events: "Liveness probe failed: ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        })
    }
}

/// The outcome of one probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The container answered as healthy.
    Success,
    /// Healthy, with a warning for the pod's events (kubelet's `probe.Warning`: an HTTP
    /// redirect to another host, not followed).
    Warning(String),
    /// The container answered as unhealthy, or not in time; counts towards failureThreshold.
    Failure(String),
    /// The probe could not be run (bad port, no pod IP, runtime error); kubelet throws such a
    /// result away, so it counts neither way.
    Unknown(String),
}

/// Runs a command in a running container: the CRI `ExecSync` boundary, behind a trait so
/// probes and hooks are tested without a runtime.
pub trait ContainerExec: Send + Sync + 'static {
    /// Runs `cmd` in the container and waits at most `timeout` for it to exit.
    /// An `Err` means the command could not be run at all (not a non-zero exit).
    fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<ExecOutput, String>> + Send;
}

/// What an exec'd command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl From<cri_client::api::ExecSyncResponse> for ExecOutput {
    fn from(r: cri_client::api::ExecSyncResponse) -> ExecOutput {
        ExecOutput {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
        }
    }
}

impl ContainerExec for cri_client::CriClient {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, String> {
        cri_client::CriClient::exec_sync(self, container_id, cmd, timeout)
            .await
            .map(ExecOutput::from)
            .map_err(|e| e.to_string())
    }
}

/// Where a container's probes and hooks go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeTarget {
    /// The pod's IP, once its sandbox has one.
    pub pod_ip: Option<String>,
    /// The node's IP: the probe host of a hostNetwork pod.
    pub host_ip: String,
    /// The CRI id of the container that exec probes and hooks run in.
    pub container_id: String,
    /// The container's declared ports, to resolve named probe ports.
    pub ports: Vec<ContainerPort>,
    pub host_network: bool,
}

impl ProbeTarget {
    /// The host a probe without its own `host` goes to: the pod IP, or the node's IP for a
    /// hostNetwork pod.
    pub(crate) fn default_host(&self) -> Result<&str, String> {
        if self.host_network && !self.host_ip.is_empty() {
            return Ok(&self.host_ip);
        }
        match self.pod_ip.as_deref() {
            Some(ip) if !ip.is_empty() => Ok(ip),
            _ => Err("pod has no IP address yet".to_owned()),
        }
    }

    /// Resolves a probe or hook port: a number, a name from the container's ports, or a number
    /// written as a string (as kubelet's `ResolveContainerPort`).
    pub(crate) fn resolve_port(&self, port: &IntOrString) -> Result<u16, String> {
        let number = match port {
            IntOrString::Int(n) => *n,
            IntOrString::String(name) => self
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .or_else(|| name.parse().ok())
                .ok_or_else(|| format!("port {name:?} not found in the container's ports"))?,
        };
        u16::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid port number: {number}"))
    }
}

/// Runs one attempt of `probe` against `target`, bounded by the probe's timeoutSeconds.
/// Handlers are tried in kubelet's order: exec, httpGet, tcpSocket, grpc.
pub async fn run_once(
    probe: &Probe,
    target: &ProbeTarget,
    exec: &impl ContainerExec,
) -> ProbeOutcome {
    let timeout = ProbeTiming::timeout_of(probe);
    if let Some(action) = &probe.exec {
        exec::probe(action, target, exec, timeout).await
    } else if let Some(action) = &probe.http_get {
        http::probe(action, target, timeout).await
    } else if let Some(action) = &probe.tcp_socket {
        tcp::probe(action, target, timeout).await
    } else if let Some(action) = &probe.grpc {
        grpc::probe(action, target, timeout).await
    } else {
        ProbeOutcome::Unknown("missing probe handler".to_owned())
    }
}

/// Keeps at most `limit` bytes of command output or a response body, as text.
pub(crate) fn truncated_text(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test doubles shared by the probe and hook tests.

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::{ContainerExec, ExecOutput, ProbeTarget};
    use std::time::Duration;

    /// What the fake runtime does with the next exec.
    #[derive(Debug, Clone)]
    pub enum FakeExec {
        Exit(i32, &'static str, &'static str),
        Hang,
        Error(&'static str),
    }

    /// A `ContainerExec` that answers from a script (the last step repeats) and records calls.
    #[derive(Debug)]
    pub struct ScriptedExec {
        script: Vec<FakeExec>,
        next: AtomicUsize,
        pub calls: Mutex<Vec<(String, Vec<String>, Duration)>>,
    }

    impl ScriptedExec {
        pub fn new(script: Vec<FakeExec>) -> Self {
            Self {
                script,
                next: AtomicUsize::new(0),
                calls: Mutex::new(Vec::new()),
            }
        }

        pub fn always(step: FakeExec) -> Self {
            Self::new(vec![step])
        }

        pub fn call_count(&self) -> usize {
            self.calls.lock().unwrap().len()
        }
    }

    impl ContainerExec for ScriptedExec {
        async fn exec_sync(
            &self,
            container_id: &str,
            cmd: Vec<String>,
            timeout: Duration,
        ) -> Result<ExecOutput, String> {
            self.calls
                .lock()
                .unwrap()
                .push((container_id.to_owned(), cmd, timeout));
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let step = self.script[i.min(self.script.len() - 1)].clone();
            match step {
                FakeExec::Exit(exit_code, stdout, stderr) => Ok(ExecOutput {
                    exit_code,
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: stderr.as_bytes().to_vec(),
                }),
                FakeExec::Hang => std::future::pending().await,
                FakeExec::Error(message) => Err(message.to_owned()),
            }
        }
    }

    pub fn loopback_target() -> ProbeTarget {
        ProbeTarget {
            pod_ip: Some("127.0.0.1".to_owned()),
            host_ip: "127.0.0.1".to_owned(),
            container_id: "c0ffee".to_owned(),
            ports: Vec::new(),
            host_network: false,
        }
    }

    /// A loopback port nothing listens on, held for as long as the value lives: its socket is
    /// bound and never listens, so a connection is refused and no other test is given the port.
    pub struct ClosedPort {
        pub port: u16,
        _socket: tokio::net::TcpSocket,
    }

    pub fn closed_port() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let port = socket.local_addr().unwrap().port();
        ClosedPort {
            port,
            _socket: socket,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::loopback_target;
    use super::*;

    fn port(name: &str, number: i32) -> ContainerPort {
        ContainerPort {
            name: Some(name.to_owned()),
            container_port: number,
            ..Default::default()
        }
    }

    #[test]
    fn named_ports_resolve_from_the_container_and_numbers_pass_through() {
        let target = ProbeTarget {
            ports: vec![port("http", 8080)],
            ..loopback_target()
        };
        assert_eq!(target.resolve_port(&IntOrString::Int(9000)), Ok(9000));
        assert_eq!(
            target.resolve_port(&IntOrString::String("http".into())),
            Ok(8080)
        );
        assert_eq!(
            target.resolve_port(&IntOrString::String("8443".into())),
            Ok(8443)
        );
        assert!(
            target
                .resolve_port(&IntOrString::String("grpc".into()))
                .is_err()
        );
        assert_eq!(
            target.resolve_port(&IntOrString::Int(70000)),
            Err("invalid port number: 70000".to_owned())
        );
        assert!(target.resolve_port(&IntOrString::Int(0)).is_err());
    }

    #[test]
    fn host_network_pods_are_probed_on_the_node_ip() {
        let mut target = ProbeTarget {
            pod_ip: Some("10.244.0.5".into()),
            host_ip: "192.0.2.10".into(),
            ..Default::default()
        };
        assert_eq!(target.default_host(), Ok("10.244.0.5"));
        target.host_network = true;
        assert_eq!(target.default_host(), Ok("192.0.2.10"));
        target.host_network = false;
        target.pod_ip = None;
        assert!(target.default_host().is_err());
    }

    #[tokio::test]
    async fn a_probe_without_a_handler_is_unknown() {
        let exec = testing::ScriptedExec::always(testing::FakeExec::Exit(0, "", ""));
        let outcome = run_once(&Probe::default(), &loopback_target(), &exec).await;
        assert!(matches!(outcome, ProbeOutcome::Unknown(_)));
    }

    #[test]
    fn kinds_read_as_in_kubelet_events() {
        assert_eq!(
            format!("{} probe failed", ProbeKind::Liveness),
            "Liveness probe failed"
        );
    }
}
