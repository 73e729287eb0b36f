//! Bad input at start-up: each gives one clear error line on stderr and a non-zero exit, never a
//! panic or a backtrace.

use std::process::Command;

struct Outcome {
    code: i32,
    stderr: String,
}

fn run(args: &[&str]) -> Outcome {
    let out = Command::new(crate::common::binary())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_one_line_error(o: &Outcome, expect: &str) {
    assert_ne!(o.code, 0, "must fail: {}", o.stderr);
    let lines: Vec<_> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one error line, got:\n{}", o.stderr);
    assert!(lines[0].starts_with("minikubelet: "), "{}", lines[0]);
    assert!(
        lines[0].contains(expect),
        "{:?} should mention {expect:?}",
        lines[0]
    );
    assert!(!o.stderr.contains("panicked") && !o.stderr.contains("backtrace"));
}

fn tmp_file(contents: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), contents).unwrap();
    f
}

#[test]
fn bootstrap_kubeconfig_without_kubeconfig_is_one_line() {
    // Without --kubeconfig the agent runs standalone (static pods only); a bootstrap
    // kubeconfig then has nowhere to write the node's credentials.
    let o = run(&[
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--hostname-override=x",
    ]);
    assert_one_line_error(&o, "--bootstrap-kubeconfig");
    assert!(o.stderr.contains("--kubeconfig"), "{}", o.stderr);
}

#[test]
fn missing_kubeconfig_file_is_one_line() {
    let o = run(&[
        "--kubeconfig=/nonexistent/kubeconfig",
        "--hostname-override=x",
    ]);
    assert_one_line_error(&o, "/nonexistent/kubeconfig");
}

#[test]
fn unreadable_kubeconfig_is_one_line() {
    let f = tmp_file("this: [is not: a kubeconfig");
    let path = f.path().display().to_string();
    let o = run(&[&format!("--kubeconfig={path}"), "--hostname-override=x"]);
    assert_one_line_error(&o, &path);
}

#[test]
fn unreachable_cri_socket_is_one_line() {
    // A syntactically valid kubeconfig; the runtime check fails before any API call.
    let kc = tmp_file(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {token: t}\n",
    );
    let o = run(&[
        &format!("--kubeconfig={}", kc.path().display()),
        "--hostname-override=x",
        "--container-runtime-endpoint=unix:///nonexistent/cri.sock",
    ]);
    assert_one_line_error(&o, "unix:///nonexistent/cri.sock");
    assert!(o.stderr.contains("container runtime"), "{}", o.stderr);
}

#[test]
fn invalid_flags_are_one_line_with_exit_2() {
    let o = run(&["--no-such-flag"]);
    assert_one_line_error(&o, "--no-such-flag");
    assert_eq!(o.code, 2);
    let o = run(&["--kubeconfig=/k", "--max-pods=lots"]);
    assert_one_line_error(&o, "lots");
    let o = run(&[
        "--kubeconfig=/k",
        "--hostname-override=x",
        "--node-labels=node-role.kubernetes.io/master=",
    ]);
    assert_one_line_error(&o, "--node-labels");
    let o = run(&[
        "--kubeconfig=/k",
        "--hostname-override=x",
        "--register-with-taints=a=b:Never",
    ]);
    assert_one_line_error(&o, "Never");
}

#[test]
fn invalid_config_file_is_one_line() {
    let f = tmp_file("kubeconfig: /k\nmaxPod: 3\n");
    let path = f.path().display().to_string();
    let o = run(&[&format!("--config={path}"), "--hostname-override=x"]);
    assert_one_line_error(&o, "maxPod");
    let o = run(&["--config=/nonexistent/config.yaml"]);
    assert_one_line_error(&o, "/nonexistent/config.yaml");
}

#[test]
fn help_explains_every_kubelet_flag() {
    let out = Command::new(crate::common::binary())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--hostname-override",
        "--node-ip",
        "--container-runtime-endpoint",
        "--root-dir",
        "--max-pods",
        "--node-labels",
        "--register-with-taints",
        "--port",
        "--config",
        "--log-format",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn version_is_kubelets_line_and_a_bad_value_is_one_line() {
    // kubeadm's preflight runs `kubelet --version` and parses exactly this shape.
    let out = Command::new(crate::common::binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version = line
        .strip_prefix("Kubernetes v")
        .unwrap_or_else(|| panic!("{line:?}"));
    let core = version.split('+').next().unwrap();
    let parts: Vec<u32> = core.split('.').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts.len(), 3, "{line:?}");
    assert_eq!(parts[0], 1, "{line:?}");
    let raw = Command::new(crate::common::binary())
        .arg("--version=raw")
        .output()
        .unwrap();
    assert!(raw.status.success());
    assert!(String::from_utf8_lossy(&raw.stdout).starts_with("minikubelet "));
    assert_one_line_error(&run(&["--version=maybe"]), "--version");
}
