//! Resource usage as metrics-server and `kubectl top` read it: a pod spinning on a CPU limit of
//! 100m shows non-zero cpu in /stats/summary and /metrics/resource, and `kubectl top pod` shows
//! its figures once metrics-server (`deploy/dev/cluster start metrics-server`) scrapes the
//! agent. The endpoints are read over HTTPS with the admin client certificate (through the
//! agent's authentication and SubjectAccessReview): the API server's node proxy
//! (`kubectl get --raw /api/v1/nodes/N/proxy/...`) refuses nodes whose InternalIP is loopback
//! ("address not allowed"), which every test agent's is. Serial (`--test-threads=1`).

use std::process::Command;
use std::time::Duration;

use crate::common::pods::{TestNamespace, busybox, container, running, sh, wait_pod};
use crate::common::{admin, cluster, env, require_cluster, wait_for, wait_ready};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

/// `kubectl ARGS...`: Ok(stdout) or Err(stderr).
fn kubectl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .args(args)
        .output()
        .expect("run kubectl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// GET `path` from the agent's HTTPS API as the cluster admin (client certificate).
fn agent_get(port: u16, path: &str) -> Result<String, String> {
    let pki = format!("{}/pki", env("MKL_STATE_DIR"));
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--insecure"])
        .args(["--cert", &format!("{pki}/admin.crt")])
        .args(["--key", &format!("{pki}/admin.key")])
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn spinner() -> Value {
    json!({
        "containers": [{
            "name": "spin",
            "image": busybox(),
            "command": sh("while true; do :; done"),
            "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
        }],
        "terminationGracePeriodSeconds": 0,
    })
}

async fn spinning_pod(node: &str, ns: &str) -> (crate::common::Agent, TestNamespace) {
    // The harness starts agents as kubeadm configures kubelets: client certificates from the
    // cluster CA are accepted, so metrics-server's identity (system:metrics-server) gets in.
    let client = admin().await;
    let agent = crate::common::Agent::start(node, &[]);
    wait_ready(&client, node, "True", T).await;
    let ns = TestNamespace::create(&client, ns).await;
    ns.pod("spin", node, spinner()).await;
    wait_pod(
        &ns.pods(),
        "spin",
        "the spinning container running",
        T,
        |p| container(p, "spin").is_some_and(running),
    )
    .await;
    (agent, ns)
}

/// The value of the sample line `prefix VALUE TIMESTAMP`, with its timestamp.
fn sample(text: &str, prefix: &str) -> Option<(f64, Option<i64>)> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    let mut parts = line[prefix.len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    Some((value, parts.next().and_then(|t| t.parse().ok())))
}

#[tokio::test]
async fn spinning_pod_shows_cpu_in_summary_and_resource_metrics() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-stats-cpu";
    let (agent, ns) = spinning_pod(node, "stats-cpu").await;
    let port = agent.port;
    let nano_cores = wait_for("usageNanoCores of the spinning container", T, || async {
        let s: Value = serde_json::from_str(&agent_get(port, "/stats/summary").ok()?).ok()?;
        assert_eq!(s["node"]["nodeName"], node);
        assert!(s["node"]["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
        assert!(s["node"]["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
        let pod = s["pods"].as_array()?.iter().find(|p| {
            p["podRef"]["name"] == "spin" && p["podRef"]["namespace"] == ns.name.as_str()
        })?;
        assert!(!pod["podRef"]["uid"].as_str().unwrap().is_empty());
        let c = pod["containers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == "spin")?;
        assert!(c["memory"]["workingSetBytes"].as_u64().unwrap() > 0);
        assert!(c["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
        assert!(pod["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap() > 0);
        c["cpu"]["usageNanoCores"].as_u64().filter(|n| *n > 0)
    })
    .await;
    eprintln!(
        "spinning container at {} millicores",
        nano_cores / 1_000_000
    );
    // Limited to 100m: clearly busy, clearly throttled (generous bounds for a busy machine).
    assert!(
        (5_000_000..300_000_000).contains(&nano_cores),
        "usageNanoCores {nano_cores} outside 5m..300m"
    );

    let text = agent_get(port, "/metrics/resource").unwrap();
    let labels = format!(
        "{{container=\"spin\",namespace=\"{}\",pod=\"spin\"}}",
        ns.name
    );
    let (cpu, ts) = sample(
        &text,
        &format!("container_cpu_usage_seconds_total{labels} "),
    )
    .unwrap_or_else(|| panic!("no container cpu sample in\n{text}"));
    assert!(cpu > 0.0, "{text}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now_ms = i64::try_from(now_ms).unwrap();
    let ts = ts.expect("container cpu sample without a timestamp");
    assert!(
        (now_ms - ts).abs() < 60_000,
        "timestamp {ts} vs now {now_ms}"
    );
    let pod_labels = format!("{{namespace=\"{}\",pod=\"spin\"}}", ns.name);
    for prefix in [
        format!("container_memory_working_set_bytes{labels} "),
        format!("container_start_time_seconds{labels} "),
        format!("pod_cpu_usage_seconds_total{pod_labels} "),
        format!("pod_memory_working_set_bytes{pod_labels} "),
        "node_cpu_usage_seconds_total ".to_string(),
        "node_memory_working_set_bytes ".to_string(),
    ] {
        let (v, _) = sample(&text, &prefix).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        assert!(v > 0.0, "{prefix}: {v}");
    }
    assert_eq!(
        sample(&text, "resource_scrape_error ").map(|s| s.0),
        Some(0.0)
    );
}

/// metrics.k8s.io is served (metrics-server running behind an Available APIService).
fn metrics_api_available() -> Result<(), String> {
    let status = kubectl(&[
        "get",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status} {.status.conditions[?(@.type==\"Available\")].message}",
    ])?;
    if status.starts_with("True") {
        Ok(())
    } else {
        Err(status)
    }
}

#[tokio::test]
async fn kubectl_top_pod_shows_figures_when_metrics_server_runs() {
    if !require_cluster() {
        return;
    }
    cluster(&["start", "metrics-server"]);
    let available = wait_for_result(
        "the metrics.k8s.io APIService",
        Duration::from_secs(30),
        metrics_api_available,
    )
    .await;
    if let Err(why) = available {
        panic!(
            "metrics-server runs but the API server does not serve metrics.k8s.io ({why}). \
             The API server needs the aggregation-layer flags of deploy/dev/lib/components.sh: \
             run `deploy/dev/cluster restart kube-apiserver` (then `deploy/dev/cluster start metrics-server`)"
        );
    }
    let node = "mkl-stats-top";
    let (_agent, ns) = spinning_pod(node, "stats-top").await;
    // metrics-server needs two scrapes (15 s apart) before it has a rate.
    let line = wait_for("kubectl top pod spin", Duration::from_secs(120), || async {
        let out = kubectl(&["top", "pod", "spin", "-n", &ns.name, "--no-headers"]).ok()?;
        let line = out.lines().find(|l| l.starts_with("spin "))?.to_string();
        if line.is_empty() { None } else { Some(line) }
    })
    .await;
    eprintln!("kubectl top pod: {line}");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let cpu: u64 = fields[1].trim_end_matches('m').parse().unwrap();
    let memory = fields[2];
    assert!(cpu > 0, "{line}");
    assert!(memory.ends_with("Mi") || memory.ends_with("Ki"), "{line}");
    let node_line = wait_for("kubectl top node", T, || async {
        kubectl(&["top", "node", node, "--no-headers"]).ok()
    })
    .await;
    assert!(node_line.starts_with(node), "{node_line}");
}

/// Polls `check` until it is Ok or `timeout` passes; returns the last result.
async fn wait_for_result<F>(what: &str, timeout: Duration, check: F) -> Result<(), String>
where
    F: Fn() -> Result<(), String>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let r = check();
        if r.is_ok() || std::time::Instant::now() > deadline {
            if let Err(e) = &r {
                eprintln!("{what}: {e}");
            }
            return r;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
