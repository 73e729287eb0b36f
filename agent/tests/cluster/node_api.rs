//! The kubelet HTTPS API against the real local cluster: `kubectl logs` (-f, --previous),
//! `kubectl exec` (a command and an interactive shell on a pty), `kubectl attach`,
//! `kubectl port-forward`, /metrics parsed by Prometheus' reference parser (promcheck, built by
//! `deploy/dev/cluster up`) with values that follow reality, and authentication/authorisation
//! (anonymous -> 401, a service account without nodes/proxy -> 403), bad requests -> 400/404.
//! Serial (`--test-threads=1`).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::pods::{TestNamespace, busybox, container, running, sh, wait_pod};
use crate::common::{Agent, admin, env, require_cluster, wait_for, wait_ready};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

fn pki(file: &str) -> String {
    format!("{}/pki/{file}", env("MKL_STATE_DIR"))
}

/// An agent (its API trusts the cluster CA, as the apiserver's kubelet client cert needs).
async fn start(node: &str, ns: &str) -> (kube::Client, Agent, TestNamespace) {
    let client = admin().await;
    // The harness starts every agent with --client-ca-file (the cluster CA).
    let agent = Agent::start(node, &[]);
    wait_ready(&client, node, "True", T).await;
    let ns = TestNamespace::create(&client, ns).await;
    (client, agent, ns)
}

fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl").args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// How a request to the agent's API authenticates.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    /// The apiserver's kubelet client certificate (group kubeadm:cluster-admins).
    ApiserverCert,
    Token(&'a str),
}

/// (status, body) of an HTTPS request to the agent, through curl.
fn api(port: u16, path: &str, cred: Cred<'_>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "--max-time", "20", "-w", "\n%{http_code}"]);
    match cred {
        Cred::None => {}
        Cred::ApiserverCert => {
            cmd.args([
                "--cert",
                &pki("apiserver-kubelet-client.crt"),
                "--key",
                &pki("apiserver-kubelet-client.key"),
            ]);
        }
        Cred::Token(t) => {
            cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

async fn running_pod(ns: &TestNamespace, node: &str, name: &str, spec: Value) {
    ns.pod(name, node, spec).await;
    wait_pod(&ns.pods(), name, "running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
}

#[tokio::test]
async fn kubectl_logs_follows_and_shows_the_previous_instance() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-api-logs";
    let (_client, _agent, ns) = start(node, "mkl-api-logs").await;
    // Prints three lines a little apart, then exits; restartPolicy Never.
    ns.pod(
        "ticker",
        node,
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": busybox(),
            "command": sh("sleep 2; for i in 1 2 3 4 5; do echo tick-$i; sleep 0.3; done")}]}),
    )
    .await;
    wait_pod(&ns.pods(), "ticker", "running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    let started = Instant::now();
    let follow = kubectl(&["-n", &ns.name, "logs", "-f", "ticker"]);
    assert!(follow.status.success(), "{follow:?}");
    assert_eq!(
        stdout(&follow),
        "tick-1\ntick-2\ntick-3\ntick-4\ntick-5\n",
        "kubectl logs -f streams every line and ends when the container exits"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let tail = kubectl(&["-n", &ns.name, "logs", "--tail=2", "--timestamps", "ticker"]);
    let lines: Vec<String> = stdout(&tail).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].ends_with(" tick-5") && lines[1].contains('T'),
        "{lines:?}"
    );

    // A container that exits and is restarted: --previous shows the first instance's log.
    ns.pod(
        "crasher",
        node,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh("echo instance-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 3")}]}),
    )
    .await;
    wait_pod(
        &ns.pods(),
        "crasher",
        "restarted and running",
        Duration::from_secs(120),
        |p| container(p, "c").is_some_and(|c| c.restart_count >= 1 && running(c)),
    )
    .await;
    let previous = kubectl(&["-n", &ns.name, "logs", "--previous", "crasher"]);
    let current = kubectl(&["-n", &ns.name, "logs", "crasher"]);
    assert!(previous.status.success(), "{previous:?}");
    assert!(stdout(&previous).starts_with("instance-"), "{previous:?}");
    assert!(stdout(&current).starts_with("instance-"), "{current:?}");
    assert_ne!(stdout(&previous), stdout(&current));
    // Over a websocket through the API server, as the e2e suite reads them: whole (the relay
    // drops a last read that comes with EOF, so the agent must stream, as kubelet does).
    let over_websocket = crate::common::websocket::read_binary(&format!(
        "/api/v1/namespaces/{}/pods/ticker/log?container=c",
        ns.name
    ))
    .await;
    assert_eq!(
        String::from_utf8_lossy(&over_websocket),
        "tick-1\ntick-2\ntick-3\ntick-4\ntick-5\n"
    );
    // An exited container's last output without a newline is its last line (kubelet sends a
    // partial entry as it is).
    ns.pod(
        "unfinished",
        node,
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": busybox(),
            "command": sh("printf 'first\\nno-newline'")}]}),
    )
    .await;
    wait_pod(&ns.pods(), "unfinished", "succeeded", T, |p| {
        crate::common::pods::phase(p) == "Succeeded"
    })
    .await;
    let unfinished = kubectl(&["-n", &ns.name, "logs", "unfinished"]);
    assert_eq!(stdout(&unfinished), "first\nno-newline", "{unfinished:?}");
    let never_restarted = kubectl(&["-n", &ns.name, "logs", "--previous", "ticker"]);
    assert!(!never_restarted.status.success());
    assert!(
        String::from_utf8_lossy(&never_restarted.stderr).contains("previous terminated container"),
        "{never_restarted:?}"
    );
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn kubectl_exec_attach_and_port_forward() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-api-exec";
    let (_client, _agent, ns) = start(node, "mkl-api-exec").await;
    running_pod(
        &ns,
        node,
        "web",
        json!({"containers": [{"name": "c", "image": busybox(), "stdin": true,
            "command": sh("mkdir -p /www; echo served-by-web > /www/index.html; httpd -p 8080 -h /www; while read line; do echo got:$line; done")}]}),
    )
    .await;

    // A command: stdout, stderr and the exit code come back separately.
    let out = kubectl(&[
        "-n",
        &ns.name,
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(stdout(&out), "out\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("err"), "{err}");
    assert!(err.contains("exit code 7"), "{err}");

    // An interactive shell on a pty (script(1) gives kubectl a terminal).
    let mut child = Command::new("script")
        .args([
            "-q",
            "-c",
            &format!("kubectl -n {} exec -it web -- sh", ns.name),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"tty; echo pty-$((6*7)); exit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out).replace('\r', "");
    assert!(
        text.contains("/dev/pts/"),
        "a pty inside the container: {text}"
    );
    assert!(text.contains("pty-42"), "{text}");

    // attach: stdin reaches the container's main process, its output comes back.
    let mut child = Command::new("kubectl")
        .args(["-n", &ns.name, "attach", "-i", "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout_pipe).lines();
        lines.find_map(|l| l.ok().filter(|l| l.contains("got:hello-attach")))
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        let _ = stdin.write_all(b"hello-attach\n");
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(reader.join().unwrap().is_some(), "attach saw no echo");

    // port-forward: the pod's port 8080 on a local port.
    let port = crate::common::free_port();
    let mut pf = Command::new("kubectl")
        .args([
            "-n",
            &ns.name,
            "port-forward",
            "pod/web",
            &format!("{port}:8080"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let body = wait_for(
        "port-forward serves the page",
        Duration::from_secs(30),
        || async {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "--max-time",
                    "3",
                    &format!("http://127.0.0.1:{port}/index.html"),
                ])
                .output()
                .ok()?;
            let text = stdout(&out);
            (!text.is_empty()).then_some(text)
        },
    )
    .await;
    let _ = pf.kill();
    let _ = pf.wait();
    assert_eq!(body, "served-by-web\n");
}

/// Samples of /metrics as parsed by promcheck (Prometheus' reference text parser).
fn parse_metrics(text: &str) -> Vec<Value> {
    let mut child = Command::new("promcheck")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promcheck on PATH (built by `deploy/dev/cluster up`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not valid Prometheus text: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sample(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
}

#[tokio::test]
async fn metrics_parse_and_follow_reality() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-api-metrics";
    let (_client, agent, ns) = start(node, "mkl-api-metrics").await;
    for i in 0..3 {
        ns.pod(
            &format!("p{i}"),
            node,
            json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
        )
        .await;
    }
    for i in 0..3 {
        wait_pod(&ns.pods(), &format!("p{i}"), "running", T, |p| {
            container(p, "c").is_some_and(running)
        })
        .await;
    }
    let (code, text) = api(agent.port, "/metrics", Cred::ApiserverCert);
    assert_eq!(code, 200, "{text}");
    let samples = parse_metrics(&text);
    assert_eq!(sample(&samples, "kubelet_running_pods", &[]), Some(3.0));
    assert_eq!(
        sample(
            &samples,
            "kubelet_running_containers",
            &[("container_state", "running")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&samples, "kubelet_node_name", &[("node", node)]),
        Some(1.0)
    );
    let created = sample(
        &samples,
        "kubelet_runtime_operations_total",
        &[("operation_type", "create_container")],
    );
    assert!(created.is_some_and(|n| n >= 3.0), "{created:?}");
    assert!(
        sample(
            &samples,
            "kubelet_runtime_operations_duration_seconds",
            &[("operation_type", "run_podsandbox")]
        )
        .is_some_and(|n| n >= 3.0)
    );
    assert!(sample(&samples, "kubelet_pod_start_duration_seconds", &[]).is_some_and(|n| n >= 3.0));
    // The agent's own share of each start, both spans, one observation per pod at least.
    for span in ["watch_to_first_cri", "last_cri_to_status"] {
        let n = sample(
            &samples,
            "minikubelet_pod_start_agent_seconds",
            &[("span", span)],
        );
        assert!(n.is_some_and(|n| n >= 3.0), "{span}: {n:?}");
    }
    assert!(
        sample(
            &samples,
            "kubelet_pod_worker_duration_seconds",
            &[("operation_type", "create")]
        )
        .is_some_and(|n| n >= 3.0)
    );
    assert!(sample(&samples, "process_resident_memory_bytes", &[]).is_some_and(|n| n > 0.0));

    // One pod deleted: the gauge follows.
    ns.pods()
        .delete("p2", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    wait_for("kubelet_running_pods 2", T, || async {
        let (_, text) = api(agent.port, "/metrics", Cred::ApiserverCert);
        (sample(&parse_metrics(&text), "kubelet_running_pods", &[]) == Some(2.0)).then_some(())
    })
    .await;
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn unauthenticated_and_unauthorised_callers_are_refused() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-api-auth";
    let (_client, agent, ns) = start(node, "mkl-api-auth").await;
    let (code, body) = api(agent.port, "/pods", Cred::None);
    assert_eq!((code, body.trim()), (401, "Unauthorized"));
    assert_eq!(
        api(agent.port, "/metrics", Cred::Token("not-a-token")).0,
        401
    );

    // A service account without nodes/proxy: authenticated, then forbidden.
    let sa = kubectl(&["-n", &ns.name, "create", "serviceaccount", "viewer"]);
    assert!(sa.status.success(), "{sa:?}");
    let token = kubectl(&["-n", &ns.name, "create", "token", "viewer"]);
    let token = stdout(&token).trim().to_string();
    let (code, body) = api(agent.port, "/pods", Cred::Token(&token));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!("user=system:serviceaccount:{}:viewer", ns.name)),
        "{body}"
    );
    assert!(body.contains("subresource=proxy"), "{body}");

    // Granted nodes/metrics only: /metrics works, /pods still does not.
    let role = kubectl(&[
        "create",
        "clusterrole",
        "mkl-api-auth-metrics",
        "--verb=get",
        "--resource=nodes/metrics",
    ]);
    assert!(
        role.status.success() || stdout(&role).is_empty(),
        "{role:?}"
    );
    let subject = format!("--serviceaccount={}:viewer", ns.name);
    let binding = kubectl(&[
        "create",
        "clusterrolebinding",
        "mkl-api-auth-metrics",
        "--clusterrole=mkl-api-auth-metrics",
        &subject,
    ]);
    wait_for("metrics allowed", T, || async {
        let (code, _) = api(agent.port, "/metrics", Cred::Token(&token));
        (code == 200).then_some(())
    })
    .await;
    assert_eq!(api(agent.port, "/pods", Cred::Token(&token)).0, 403);
    let _ = kubectl(&["delete", "clusterrolebinding", "mkl-api-auth-metrics"]);
    let _ = kubectl(&["delete", "clusterrole", "mkl-api-auth-metrics"]);
    assert!(binding.status.success(), "{binding:?}");

    // The apiserver's client certificate may use /pods; the list holds this node's pods.
    running_pod(
        &ns,
        node,
        "one",
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    let (code, body) = api(agent.port, "/pods", Cred::ApiserverCert);
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "PodList");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["metadata"]["name"] == "one")
    );

    // Bad requests: unknown pod/container -> 404, invalid parameters -> 400, unknown path -> 404.
    let base = format!("/containerLogs/{}/one", ns.name);
    let (code, body) = api(
        agent.port,
        &format!("/containerLogs/{}/nope/c", ns.name),
        Cred::ApiserverCert,
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("nope"), "{body}");
    assert_eq!(
        api(agent.port, &format!("{base}/nope"), Cred::ApiserverCert).0,
        404
    );
    let (code, body) = api(
        agent.port,
        &format!("{base}/c?tailLines=-3"),
        Cred::ApiserverCert,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("tailLines"), "{body}");
    assert_eq!(
        api(
            agent.port,
            &format!("{base}/c?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z"),
            Cred::ApiserverCert
        )
        .0,
        400
    );
    assert_eq!(
        api(
            agent.port,
            &format!("{base}/c?limitBytes=abc"),
            Cred::ApiserverCert
        )
        .0,
        400
    );
    let (code, body) = api(
        agent.port,
        &format!("{base}/c?tailLines=99999999999&limitBytes=4"),
        Cred::ApiserverCert,
    );
    assert_eq!(
        code, 200,
        "absurd tail values are bounded, not errors: {body}"
    );
    assert_eq!(api(agent.port, "/no/such/path", Cred::ApiserverCert).0, 404);
    assert_eq!(
        api(
            agent.port,
            &format!("/exec/{}/one/c", ns.name),
            Cred::ApiserverCert
        )
        .0,
        400
    );
}
