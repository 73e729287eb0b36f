//! Running one lifecycle hook handler (postStart or preStop) with kubelet's semantics
//! (`lifecycle/handlers.go`); when hooks run is `pods/lifecycle_hooks.rs`:
//!
//! - exec: the command runs in the container; a non-zero exit or an error fails the hook,
//!   with the command's output in the message;
//! - httpGet: the probe's HTTP client with User-Agent `kube-lifecycle/1.35`; any HTTP response
//!   counts as success, whatever its status (kubelet only fails on transport errors; a status
//!   of 400 or more is logged). An HTTPS hook answered in plain HTTP is retried over HTTP
//!   without its Authorization header, as kubelet does;
//! - sleep: waits `seconds`, cut short (and failed) by the caller's timeout;
//! - tcpSocket: not a lifecycle handler (the API keeps the field for compatibility only):
//!   kubelet fails it at run time as an invalid handler, and so does this.
//!
//! Messages read like kubelet's event messages less the "for Container ... in Pod ..." part,
//! which the event's object already says. The caller bounds each hook with `timeout`; it turns
//! an `Err` into `FailedPostStartHook` / `FailedPreStopHook` events.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, LifecycleHandler};

use super::probe::exec::{self, ExecResult};
use super::probe::http::{self, HttpGet};
use super::probe::{ContainerExec, KUBE_VERSION, ProbeTarget};

/// Runs `handler` for the container in `target`, within `timeout`.
///
/// # Errors
/// Why the hook failed, worded for the event.
pub async fn run_handler(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    exec: &impl ContainerExec,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(action) = &handler.exec {
        run_exec(action, target, exec, timeout).await
    } else if let Some(action) = &handler.http_get {
        run_http(action, target, timeout).await.map_err(|e| {
            format!(
                "HTTP lifecycle hook ({}) failed - error: {e}",
                action.path.as_deref().unwrap_or_default()
            )
        })
    } else if let Some(action) = &handler.sleep {
        run_sleep(action.seconds, timeout).await
    } else if handler.tcp_socket.is_some() {
        tracing::warn!("tcpSocket is not supported as a lifecycle handler");
        Err("Cannot run handler: invalid handler: tcpSocket is not supported as a lifecycle handler"
            .to_owned())
    } else {
        Err("Cannot run handler: invalid handler: no action set".to_owned())
    }
}

async fn run_exec(
    action: &ExecAction,
    target: &ProbeTarget,
    runtime: &impl ContainerExec,
    timeout: Duration,
) -> Result<(), String> {
    let cmd = action.command.as_deref().unwrap_or_default();
    let failed = |error: String, output: &str| {
        format!(
            "Exec lifecycle hook ([{}]) failed - error: {error}, message: {output:?}",
            cmd.join(" ")
        )
    };
    if cmd.is_empty() {
        return Err(failed("no command".to_owned(), ""));
    }
    let line = exec::command_line(cmd);
    match exec::run(runtime, target, cmd, timeout).await {
        ExecResult::Exited(output) if output.exit_code == 0 => Ok(()),
        ExecResult::Exited(output) => Err(failed(
            format!(
                "command '{line}' exited with {}: {}",
                output.exit_code,
                String::from_utf8_lossy(&output.stderr)
            ),
            &exec::combined_output(&output),
        )),
        ExecResult::TimedOut => Err(failed(
            format!("command '{line}' timed out after {timeout:?}"),
            "",
        )),
        ExecResult::Error(message) => Err(failed(message, "")),
    }
}

async fn run_http(
    action: &HTTPGetAction,
    target: &ProbeTarget,
    timeout: Duration,
) -> Result<(), String> {
    let user_agent = format!("kube-lifecycle/{KUBE_VERSION}");
    let request = HttpGet::for_action(action, target, &user_agent)?;
    let response = match http::get(&request, timeout).await {
        Ok(response) => response,
        Err(e) if e.plain_http_on_tls && request.is_https() => {
            tracing::warn!(
                url = %request.url(),
                "HTTPS request to lifecycle hook got HTTP response, retrying with HTTP"
            );
            // Kubelet reports a successful fallback as a LifecycleHTTPFallback event; the
            // first error is the one that counts if the retry fails too.
            http::get(&request.over_plain_http(), timeout)
                .await
                .map_err(|_| e.message)?
        }
        Err(e) => return Err(e.message),
    };
    if response.status >= 400 {
        tracing::warn!(
            url = %response.url,
            status = response.status,
            "lifecycle hook got an error status; kubelet counts any response as success"
        );
    }
    Ok(())
}

async fn run_sleep(seconds: i64, timeout: Duration) -> Result<(), String> {
    let wanted = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    if wanted <= timeout {
        tokio::time::sleep(wanted).await;
        Ok(())
    } else {
        tokio::time::sleep(timeout).await;
        Err(format!(
            "Sleep lifecycle hook ({seconds}) failed - error: container terminated before sleep hook finished"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{
        ExecAction, HTTPGetAction, LifecycleHandler, SleepAction, TCPSocketAction,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use tokio::net::TcpListener;
    use tokio::time::Instant;

    use super::super::probe::http::test_server::{Reply, TestServer};
    use super::super::probe::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::run_handler;

    const LONG: Duration = Duration::from_secs(30);

    fn exec_handler(cmd: &[&str]) -> LifecycleHandler {
        LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
            }),
            ..Default::default()
        }
    }

    fn http_handler(port: u16, path: &str) -> LifecycleHandler {
        LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(i32::from(port)),
                path: Some(path.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn no_exec() -> ScriptedExec {
        ScriptedExec::always(FakeExec::Error("exec must not be called"))
    }

    #[tokio::test]
    async fn an_exec_hook_that_exits_zero_succeeds() {
        let exec = ScriptedExec::always(FakeExec::Exit(0, "done", ""));
        let handler = exec_handler(&["/bin/warm-up", "--fast"]);
        assert_eq!(
            run_handler(&handler, &loopback_target(), &exec, LONG).await,
            Ok(())
        );
        let calls = exec.calls.lock().unwrap();
        assert_eq!(calls[0].0, "c0ffee");
        assert_eq!(calls[0].1, ["/bin/warm-up", "--fast"]);
        assert_eq!(calls[0].2, LONG);
    }

    #[tokio::test]
    async fn a_failing_exec_hook_reports_the_command_and_its_output() {
        let exec = ScriptedExec::always(FakeExec::Exit(2, "starting\n", "boom\n"));
        let handler = exec_handler(&["sh", "-c", "exit 2"]);
        let error = run_handler(&handler, &loopback_target(), &exec, LONG)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "Exec lifecycle hook ([sh -c exit 2]) failed - error: command 'sh -c exit 2' exited \
             with 2: boom\n, message: \"starting\\nboom\\n\""
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_exec_hook_that_hangs_fails_at_the_timeout() {
        let exec = ScriptedExec::always(FakeExec::Hang);
        let started = Instant::now();
        let error = run_handler(
            &exec_handler(&["sleep", "1d"]),
            &loopback_target(),
            &exec,
            LONG,
        )
        .await
        .unwrap_err();
        assert_eq!(started.elapsed(), LONG);
        assert!(
            error.contains("command 'sleep 1d' timed out after 30s"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_exec_error_fails_the_hook() {
        let exec =
            ScriptedExec::always(FakeExec::Error("CRI exec_sync: not found: container gone"));
        let error = run_handler(&exec_handler(&["true"]), &loopback_target(), &exec, LONG)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "Exec lifecycle hook ([true]) failed - error: CRI exec_sync: not found: container gone, \
             message: \"\""
        );
    }

    #[tokio::test]
    async fn an_http_hook_gets_the_path_with_kubelets_user_agent() {
        let server = TestServer::start(|_, _| Reply::status(200)).await;
        let handler = http_handler(server.port, "/shutdown");
        assert_eq!(
            run_handler(&handler, &loopback_target(), &no_exec(), LONG).await,
            Ok(())
        );
        let head = server.request(0);
        assert!(head.starts_with("GET /shutdown HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains("User-Agent: kube-lifecycle/1.35\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_http_hook_succeeds_on_any_response_as_in_kubelet() {
        let server = TestServer::start(|_, _| Reply::status(500)).await;
        let handler = http_handler(server.port, "/shutdown");
        assert_eq!(
            run_handler(&handler, &loopback_target(), &no_exec(), LONG).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn an_http_hook_on_a_closed_port_fails_with_the_transport_error() {
        let closed = crate::pods::probe::testing::closed_port();
        let port = closed.port;
        let error = run_handler(
            &http_handler(port, "/stop"),
            &loopback_target(),
            &no_exec(),
            LONG,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error,
            format!(
                "HTTP lifecycle hook (/stop) failed - error: Get \"http://127.0.0.1:{port}/stop\": \
                 dial tcp 127.0.0.1:{port}: connect: connection refused"
            )
        );
    }

    #[tokio::test]
    async fn an_https_hook_answered_in_plain_http_is_retried_over_http() {
        let server = TestServer::start(|_, _| Reply::status(200)).await;
        let mut handler = http_handler(server.port, "/stop");
        if let Some(action) = handler.http_get.as_mut() {
            action.scheme = Some("HTTPS".into());
        }
        assert_eq!(
            run_handler(&handler, &loopback_target(), &no_exec(), LONG).await,
            Ok(())
        );
        let last = server.request(server.request_count() - 1);
        assert!(last.starts_with("GET /stop HTTP/1.1\r\n"), "{last}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_hook_waits_its_seconds() {
        let handler = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 5 }),
            ..Default::default()
        };
        let started = Instant::now();
        assert_eq!(
            run_handler(&handler, &loopback_target(), &no_exec(), LONG).await,
            Ok(())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_hook_is_cut_short_by_the_timeout() {
        let handler = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 600 }),
            ..Default::default()
        };
        let started = Instant::now();
        let error = run_handler(&handler, &loopback_target(), &no_exec(), LONG)
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), LONG);
        assert_eq!(
            error,
            "Sleep lifecycle hook (600) failed - error: container terminated before sleep hook finished"
        );
    }

    #[tokio::test]
    async fn a_tcp_socket_hook_is_an_invalid_handler_and_touches_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::Int(i32::from(port)),
            }),
            ..Default::default()
        };
        let exec = no_exec();
        let error = run_handler(&handler, &loopback_target(), &exec, LONG)
            .await
            .unwrap_err();
        assert!(
            error.starts_with("Cannot run handler: invalid handler"),
            "{error}"
        );
        assert_eq!(exec.call_count(), 0);
        // Nothing connected to the listener.
        let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err());
    }
}
