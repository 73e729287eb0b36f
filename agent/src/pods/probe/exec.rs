//! Exec probes: run the command in the container; exit 0 is healthy.

use std::time::Duration;

use k8s_openapi::api::core::v1::ExecAction;

use super::{ContainerExec, ExecOutput, ProbeOutcome, ProbeTarget, truncated_text};

/// Kubelet keeps at most 10 KiB of a probe command's output.
const MAX_OUTPUT: usize = 10 * 1024;

/// How one exec in a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExecResult {
    Exited(ExecOutput),
    /// The command did not exit within the timeout.
    TimedOut,
    /// The command could not be run.
    Error(String),
}

/// Runs `cmd` in the target container, waiting at most `timeout` for it. The runtime gets the
/// same timeout; the local one also covers a runtime that never answers.
pub(crate) async fn run(
    exec: &impl ContainerExec,
    target: &ProbeTarget,
    cmd: &[String],
    timeout: Duration,
) -> ExecResult {
    let call = exec.exec_sync(&target.container_id, cmd.to_vec(), timeout);
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(output)) => ExecResult::Exited(output),
        Ok(Err(message)) => ExecResult::Error(message),
        Err(_elapsed) => ExecResult::TimedOut,
    }
}

/// The command as kubelet quotes it in messages: the words joined by spaces.
pub(crate) fn command_line(cmd: &[String]) -> String {
    cmd.join(" ")
}

/// stdout then stderr, as kubelet collects a probe's output, cut at 10 KiB.
pub(crate) fn combined_output(output: &ExecOutput) -> String {
    let mut bytes = output.stdout.clone();
    bytes.extend_from_slice(&output.stderr);
    truncated_text(&bytes, MAX_OUTPUT)
}

pub(super) async fn probe(
    action: &ExecAction,
    target: &ProbeTarget,
    exec: &impl ContainerExec,
    timeout: Duration,
) -> ProbeOutcome {
    let cmd = action.command.as_deref().unwrap_or_default();
    if cmd.is_empty() {
        return ProbeOutcome::Unknown("exec probe has no command".to_owned());
    }
    match run(exec, target, cmd, timeout).await {
        ExecResult::Exited(output) if output.exit_code == 0 => ProbeOutcome::Success,
        ExecResult::Exited(output) => ProbeOutcome::Failure(format!(
            "command {:?} exited with {}: {}",
            command_line(cmd),
            output.exit_code,
            combined_output(&output)
        )),
        ExecResult::TimedOut => {
            ProbeOutcome::Failure(format!("command {:?} timed out", command_line(cmd)))
        }
        ExecResult::Error(message) => ProbeOutcome::Unknown(message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{ExecAction, Probe};

    use super::super::testing::{FakeExec, ScriptedExec, loopback_target};
    use super::super::{ProbeOutcome, run_once};

    fn exec_probe(cmd: &[&str], timeout_seconds: Option<i32>) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
            }),
            timeout_seconds,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exit_zero_is_success_and_the_runtime_gets_the_probe_timeout() {
        let exec = ScriptedExec::always(FakeExec::Exit(0, "ok", ""));
        let outcome = run_once(
            &exec_probe(&["cat", "/tmp/healthy"], Some(3)),
            &loopback_target(),
            &exec,
        )
        .await;
        assert_eq!(outcome, ProbeOutcome::Success);
        let calls = exec.calls.lock().unwrap();
        assert_eq!(calls[0].0, "c0ffee");
        assert_eq!(calls[0].1, ["cat", "/tmp/healthy"]);
        assert_eq!(calls[0].2, Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_nonzero_exit_fails_with_the_command_and_its_output() {
        let exec = ScriptedExec::always(FakeExec::Exit(
            1,
            "",
            "cat: /tmp/x: No such file or directory\n",
        ));
        let outcome = run_once(
            &exec_probe(&["cat", "/tmp/x"], None),
            &loopback_target(),
            &exec,
        )
        .await;
        assert_eq!(
            outcome,
            ProbeOutcome::Failure(
                "command \"cat /tmp/x\" exited with 1: cat: /tmp/x: No such file or directory\n"
                    .to_owned()
            )
        );
    }

    #[tokio::test]
    async fn long_output_is_cut_at_ten_kib() {
        let long: &'static str = Box::leak("y".repeat(20 * 1024).into_boxed_str());
        let exec = ScriptedExec::always(FakeExec::Exit(2, long, "tail"));
        let ProbeOutcome::Failure(message) =
            run_once(&exec_probe(&["yes"], None), &loopback_target(), &exec).await
        else {
            panic!("expected a failure");
        };
        let output = message
            .strip_prefix("command \"yes\" exited with 2: ")
            .unwrap();
        assert_eq!(output.len(), 10 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_hangs_fails_after_the_timeout() {
        let exec = ScriptedExec::always(FakeExec::Hang);
        let started = tokio::time::Instant::now();
        let outcome = run_once(
            &exec_probe(&["sleep", "100"], Some(2)),
            &loopback_target(),
            &exec,
        )
        .await;
        assert_eq!(
            outcome,
            ProbeOutcome::Failure("command \"sleep 100\" timed out".to_owned())
        );
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_runtime_error_is_unknown() {
        let exec = ScriptedExec::always(FakeExec::Error(
            "CRI exec_sync: not found: no such container",
        ));
        let outcome = run_once(&exec_probe(&["true"], None), &loopback_target(), &exec).await;
        assert_eq!(
            outcome,
            ProbeOutcome::Unknown("CRI exec_sync: not found: no such container".to_owned())
        );
    }

    #[tokio::test]
    async fn an_empty_command_is_unknown_and_never_reaches_the_runtime() {
        let exec = ScriptedExec::always(FakeExec::Exit(0, "", ""));
        let outcome = run_once(&exec_probe(&[], None), &loopback_target(), &exec).await;
        assert!(matches!(outcome, ProbeOutcome::Unknown(_)));
        assert_eq!(exec.call_count(), 0);
    }
}
