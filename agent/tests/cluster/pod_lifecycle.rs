//! The pod lifecycle against the real local cluster and containerd: each test runs its own agent
//! under its own node name, binds pods to it and checks what kubelet would show. Serial
//! (`--test-threads=1`).

use std::time::{Duration, Instant};

use crate::common::pods::{
    busybox, condition, container, events, exec_in, init_container, output, phase, ready, running,
    sandboxes_of, setup, sh, wait_event, wait_pod, waiting_reason,
};
use crate::common::require_cluster;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PatchParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

#[tokio::test]
async fn a_pod_runs_and_reports_kubelets_status_and_events() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-run", "mkl-pod-run").await;
    ns.pod(
        "web",
        &agent.name,
        json!({"containers": [{"name": "app", "image": busybox(), "command": sh("echo hello; exec sleep 3600"),
            "env": [{"name": "GREETING", "value": "hi"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "web", "Ready", T, |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let st = p.status.clone().unwrap();
    assert_eq!(phase(&p), "Running");
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    let ip = st.pod_ip.clone().unwrap();
    assert!(
        ip.starts_with("10.244."),
        "pod IP {ip} from the project's bridge"
    );
    assert!(st.start_time.is_some());
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert_eq!(condition(&p, kind).as_deref(), Some("True"), "{kind}");
    }
    let c = container(&p, "app").unwrap();
    assert!(running(c) && c.ready && c.started == Some(true));
    assert_eq!(c.restart_count, 0);
    assert!(
        c.container_id
            .as_deref()
            .unwrap()
            .starts_with("containerd://")
    );
    assert!(!c.image_id.is_empty());
    for reason in ["Pulled", "Created", "Started"] {
        wait_event(&client, &ns.name, "web", reason, T).await;
    }
    // The start's breakdown is in the agent's log, in the pod's span.
    let deadline = std::time::Instant::now() + T;
    let ready = loop {
        let log = agent.log();
        let line = log
            .lines()
            .find(|l| l.contains("Ready in ") && l.contains("sandbox ") && l.contains("/web"));
        if let Some(line) = line {
            break line.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no start breakdown for pod web in the agent log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    eprintln!("{ready}");
}

#[tokio::test]
async fn crash_loop_backoff_waits_10s_then_20s_between_restarts() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-crash", "mkl-pod-crash").await;
    ns.pod(
        "crash",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exit 3")}]}),
    )
    .await;
    let pods = ns.pods();
    // Record the moment each restart count is first seen.
    let start = Instant::now();
    let mut seen: Vec<(i32, Duration)> = Vec::new();
    let mut saw_backoff = false;
    while seen.last().is_none_or(|(n, _)| *n < 3) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "restarts so far: {seen:?}"
        );
        if let Some(p) = pods.get_opt("crash").await.unwrap()
            && let Some(c) = container(&p, "c")
        {
            if seen.last().is_none_or(|(n, _)| *n != c.restart_count) {
                seen.push((c.restart_count, start.elapsed()));
            }
            saw_backoff |= waiting_reason(c) == Some("CrashLoopBackOff");
            let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            if c.restart_count > 0 {
                assert_eq!(
                    last.map(|t| t.exit_code),
                    Some(3),
                    "lastState keeps the exit code"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_backoff, "CrashLoopBackOff was reported");
    let at = |n: i32| seen.iter().find(|(c, _)| *c == n).map(|(_, t)| *t).unwrap();
    let gap2 = at(2).saturating_sub(at(1));
    let gap3 = at(3).saturating_sub(at(2));
    eprintln!("restart times: {seen:?}");
    assert!(
        gap2 >= Duration::from_secs(9) && gap2 < Duration::from_secs(16),
        "second restart after ~10 s: {gap2:?}"
    );
    assert!(
        gap3 >= Duration::from_secs(19) && gap3 < Duration::from_secs(27),
        "third restart after ~20 s: {gap3:?}"
    );
}

#[tokio::test]
async fn on_failure_restarts_only_failures_and_never_does_not_restart() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-policy", "mkl-pod-policy").await;
    let spec = |policy: &str, code: i32| json!({"restartPolicy": policy, "containers": [{"name": "c", "image": busybox(), "command": sh(&format!("exit {code}"))}]});
    ns.pod("onfailure-ok", &agent.name, spec("OnFailure", 0))
        .await;
    ns.pod("onfailure-bad", &agent.name, spec("OnFailure", 1))
        .await;
    ns.pod("never-bad", &agent.name, spec("Never", 1)).await;
    ns.pod("never-ok", &agent.name, spec("Never", 0)).await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "onfailure-ok", "Succeeded", T, |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(container(&p, "c").unwrap().restart_count, 0);
    let p = wait_pod(&pods, "never-bad", "Failed", T, |p| phase(p) == "Failed").await;
    let c = container(&p, "c").unwrap();
    assert_eq!(c.restart_count, 0);
    let t = c.state.clone().unwrap().terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (1, Some("Error")));
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    wait_pod(&pods, "never-ok", "Succeeded", T, |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let p = wait_pod(&pods, "onfailure-bad", "restarted", T, |p| {
        container(p, "c").is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    assert_eq!(
        phase(&p),
        "Running",
        "a restarting OnFailure pod is Running"
    );
}

#[tokio::test]
async fn init_containers_run_in_order_and_a_failing_one_fails_the_pod() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-init", "mkl-pod-init").await;
    ns.pod(
        "ordered",
        &agent.name,
        json!({"initContainers": [
                {"name": "first", "image": busybox(), "command": sh("exit 0")},
                {"name": "second", "image": busybox(), "command": sh("exit 0")}],
               "containers": [{"name": "main", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    ns.pod(
        "broken",
        &agent.name,
        json!({"restartPolicy": "Never",
               "initContainers": [{"name": "bad", "image": busybox(), "command": sh("exit 7")}],
               "containers": [{"name": "main", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "ordered", "Ready", T, |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let first = init_container(&p, "first")
        .unwrap()
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    let second = init_container(&p, "second")
        .unwrap()
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert!(
        first.finished_at.unwrap().0 <= second.started_at.unwrap().0,
        "init containers ran in order"
    );
    assert_eq!(condition(&p, "Initialized").as_deref(), Some("True"));

    let p = wait_pod(&pods, "broken", "Failed", T, |p| phase(p) == "Failed").await;
    let bad = init_container(&p, "bad")
        .unwrap()
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(bad.exit_code, 7);
    let main = container(&p, "main").unwrap();
    assert!(
        !running(main) && main.container_id.is_none(),
        "main never started"
    );
    assert_eq!(condition(&p, "Initialized").as_deref(), Some("False"));
}

#[tokio::test]
async fn deletion_runs_prestop_then_stops_within_the_grace_period_and_removes_the_pod() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-delete", "mkl-pod-delete").await;
    // preStop httpGet goes from the agent to this listener on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hook = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let at = Instant::now();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        at
    });
    ns.pod(
        "graceful",
        &agent.name,
        json!({"terminationGracePeriodSeconds": 20,
               "containers": [{"name": "c", "image": busybox(),
                 "command": sh("trap 'sleep 2; exit 0' TERM; while true; do sleep 0.2; done"),
                 "lifecycle": {"preStop": {"httpGet": {"host": "127.0.0.1", "port": port, "path": "/prestop"}}}}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "graceful", "Running", T, |p| phase(p) == "Running").await;
    let uid = p.metadata.uid.clone().unwrap();
    let deleted_at = Instant::now();
    pods.delete("graceful", &DeleteParams::default())
        .await
        .unwrap();
    crate::common::wait_gone(&pods, "graceful", Duration::from_secs(30)).await;
    let took = deleted_at.elapsed();
    let hook_at = tokio::time::timeout(Duration::from_secs(1), hook)
        .await
        .expect("preStop was called")
        .unwrap();
    assert!(hook_at >= deleted_at, "preStop ran after the delete");
    assert!(
        took >= Duration::from_secs(2),
        "the container's TERM handler (2 s) was waited for: {took:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "it did not wait for the whole grace period: {took:?}"
    );
    wait_event(&client, &ns.name, "graceful", "Killing", T).await;
    // Nothing of the pod is left in the runtime.
    let left = sandboxes_of(&uid).await;
    assert!(left.is_empty(), "sandboxes left: {left:?}");
}

#[tokio::test]
async fn readiness_probe_flips_the_ready_condition() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-ready", "mkl-pod-ready").await;
    ns.pod(
        "probed",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"),
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "probed", "Running", T, |p| phase(p) == "Running").await;
    assert_eq!(
        condition(&p, "Ready").as_deref(),
        Some("False"),
        "not ready before the probe succeeds"
    );
    let id = container(&p, "c").unwrap().container_id.clone().unwrap();
    exec_in(&id, &["touch", "/tmp/ready"]).await;
    wait_pod(&pods, "probed", "Ready", Duration::from_secs(20), |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    exec_in(&id, &["rm", "/tmp/ready"]).await;
    let p = wait_pod(&pods, "probed", "not Ready", Duration::from_secs(20), |p| {
        condition(p, "Ready").as_deref() == Some("False")
    })
    .await;
    assert!(!container(&p, "c").unwrap().ready);
    assert!(
        running(container(&p, "c").unwrap()),
        "readiness never restarts a container"
    );
}

#[tokio::test]
async fn liveness_failure_restarts_the_container() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-live", "mkl-pod-live").await;
    ns.pod(
        "live",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("touch /tmp/alive; exec sleep 3600"),
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2}}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "live", "Running", T, |p| phase(p) == "Running").await;
    let id = container(&p, "c").unwrap().container_id.clone().unwrap();
    exec_in(&id, &["rm", "/tmp/alive"]).await;
    wait_pod(&pods, "live", "restarted", T, |p| {
        container(p, "c").is_some_and(|c| c.restart_count == 1 && running(c))
    })
    .await;
    let unhealthy = wait_event(&client, &ns.name, "live", "Unhealthy", T).await;
    assert!(unhealthy.contains("Liveness probe failed"), "{unhealthy}");
}

#[tokio::test]
async fn bad_input_gives_waiting_reasons_and_events_while_other_pods_run() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-bad", "mkl-pod-bad").await;
    let one = |image: String, cmd: serde_json::Value| json!({"containers": [{"name": "c", "image": image, "command": cmd}]});
    ns.pod("good", &agent.name, one(busybox(), sh("exec sleep 3600")))
        .await;
    ns.pod(
        "bad-name",
        &agent.name,
        one("127.0.0.1:5000/Bad Name".to_string(), sh("true")),
    )
    .await;
    ns.pod(
        "missing-image",
        &agent.name,
        one("127.0.0.1:5000/does-not-exist:1".to_string(), sh("true")),
    )
    .await;
    ns.pod(
        "no-command",
        &agent.name,
        one(busybox(), json!(["/no/such/binary"])),
    )
    .await;
    ns.pod(
        "missing-config",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}]}),
    )
    .await;
    ns.pod(
        "never-pull",
        &agent.name,
        json!({"containers": [{"name": "c", "image": "127.0.0.1:5000/absent:2", "imagePullPolicy": "Never"}]}),
    )
    .await;
    let pods = ns.pods();
    let reason_of = |p: &Pod| {
        container(p, "c")
            .and_then(waiting_reason)
            .map(str::to_string)
    };
    let expect = [
        ("bad-name", vec!["InvalidImageName"]),
        ("missing-image", vec!["ErrImagePull", "ImagePullBackOff"]),
        ("no-command", vec!["RunContainerError", "CrashLoopBackOff"]),
        ("missing-config", vec!["CreateContainerConfigError"]),
        ("never-pull", vec!["ErrImageNeverPull"]),
    ];
    for (name, reasons) in expect {
        let p = wait_pod(&pods, name, &format!("waiting {reasons:?}"), T, |p| {
            reason_of(p).is_some_and(|r| reasons.contains(&r.as_str()))
        })
        .await;
        let msg = container(&p, "c")
            .unwrap()
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap()
            .message;
        assert!(
            msg.is_some_and(|m| !m.is_empty()),
            "{name}: a readable message"
        );
        assert!(
            !events(&client, &ns.name, name).await.is_empty(),
            "{name}: events"
        );
    }
    let missing = wait_event(&client, &ns.name, "missing-config", "Failed", T).await;
    assert!(
        missing.contains("configmap \"nope\" not found"),
        "{missing}"
    );
    let p = wait_pod(&pods, "good", "Ready", T, |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    assert_eq!(container(&p, "c").unwrap().restart_count, 0);
}

#[tokio::test]
async fn pods_exceeding_allocatable_fail_admission_with_kubelets_reason() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-admit", "mkl-pod-admit").await;
    ns.pod(
        "huge",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
            "resources": {"requests": {"cpu": "500"}}}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "huge", "Failed", T, |p| phase(p) == "Failed").await;
    assert_eq!(p.status.unwrap().reason.as_deref(), Some("OutOfcpu"));
    wait_event(&client, &ns.name, "huge", "OutOfcpu", T).await;
}

#[tokio::test]
async fn active_deadline_fails_the_pod() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-deadline", "mkl-pod-deadline").await;
    ns.pod(
        "deadline",
        &agent.name,
        json!({"activeDeadlineSeconds": 3, "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "deadline", "Failed", T, |p| phase(p) == "Failed").await;
    assert_eq!(
        p.status.unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
}

#[tokio::test]
async fn agent_killed_with_sigkill_adopts_running_pods_without_restarts_or_duplicates() {
    if !require_cluster() {
        return;
    }
    let (_client, mut agent, ns) = setup("mkl-pod-adopt", "mkl-pod-adopt").await;
    for i in 0..3 {
        ns.pod(&format!("p{i}"), &agent.name, json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}))
            .await;
    }
    let pods = ns.pods();
    let mut before = Vec::new();
    for i in 0..3 {
        let p = wait_pod(&pods, &format!("p{i}"), "Ready", T, |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
        before.push(container(&p, "c").unwrap().container_id.clone().unwrap());
    }
    agent.signal_and_wait("KILL", Duration::from_secs(10));
    agent.restart(&[]);
    crate::common::wait_for("restarted agent listed its pods", T, || async {
        agent
            .log()
            .contains("pods bound to this node listed pods=3")
            .then_some(())
    })
    .await;
    // Nothing must happen: observe a few relist periods (1 s each) of the restarted agent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, before) in before.iter().enumerate() {
        let p = pods.get(&format!("p{i}")).await.unwrap();
        let c = container(&p, "c").unwrap();
        assert!(running(c));
        assert_eq!(c.restart_count, 0);
        assert_eq!(
            c.container_id.as_ref(),
            Some(before),
            "the same container keeps running"
        );
        let uid = p.metadata.uid.clone().unwrap();
        let sandboxes = sandboxes_of(&uid).await;
        assert_eq!(sandboxes.len(), 1, "no duplicate sandbox");
    }
    assert!(!agent.log().contains("panicked"));
}

#[tokio::test]
async fn a_deployment_scales_to_10_and_back_to_0() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-deploy", "mkl-pod-deploy").await;
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), &ns.name);
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": agent.name}, "automountServiceAccountToken": false,
              "terminationGracePeriodSeconds": 2,
              "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let started = Instant::now();
    crate::common::wait_for("10 ready replicas", Duration::from_secs(180), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.ready_replicas? == 10).then_some(())
    })
    .await;
    eprintln!("10 replicas Ready after {:?}", started.elapsed());
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let pods = ns.pods();
    crate::common::wait_for("all pods gone", Duration::from_secs(180), || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    eprintln!("scaled to 0 after {:?}", started.elapsed());
}

#[tokio::test]
async fn sandboxes_of_a_pod_deleted_while_the_agent_was_down_are_removed_at_restart() {
    if !require_cluster() {
        return;
    }
    let (_client, mut agent, ns) = setup("mkl-pod-orphan", "mkl-pod-orphan").await;
    ns.pod(
        "orphan",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let pods = ns.pods();
    let p = wait_pod(&pods, "orphan", "Running", T, |p| phase(p) == "Running").await;
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(sandboxes_of(&uid).await.len(), 1);
    agent.signal_and_wait("KILL", Duration::from_secs(10));
    // Force-delete while no agent runs: only the runtime still has the pod.
    pods.delete(
        "orphan",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    crate::common::wait_gone(&pods, "orphan", T).await;
    assert_eq!(
        sandboxes_of(&uid).await.len(),
        1,
        "the sandbox outlived the pod object"
    );
    agent.restart(&[]);
    crate::common::wait_for("orphaned sandbox removed", T, || async {
        sandboxes_of(&uid).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn host_users_false_runs_in_a_user_namespace_of_its_own_where_the_runtime_has_them() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-pod-userns", "mkl-pod-userns").await;
    // The node says what its runtime's handlers support (containerd 2: user namespaces;
    // containerd 1.6 reports no handlers at all).
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let node = nodes.get(&agent.name).await.unwrap();
    let handlers = node.status.unwrap().runtime_handlers.unwrap_or_default();
    let supported = handlers
        .iter()
        .find(|h| h.name.as_deref().unwrap_or_default().is_empty())
        .and_then(|h| h.features.as_ref()?.user_namespaces)
        .unwrap_or(false);
    let spec = |script: &str| {
        json!({"hostUsers": false, "containers": [{"name": "c", "image": busybox(),
            "command": sh(script), "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]})
    };
    ns.pod(
        "own",
        &agent.name,
        spec("echo x > /scratch/f; exec sleep 3600"),
    )
    .await;
    if !supported {
        let failed = wait_event(&client, &ns.name, "own", "FailedCreatePodSandBox", T).await;
        assert!(
            failed.contains(
                "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
            ),
            "{failed}"
        );
        return;
    }
    let p = ready(&ns, "own").await;
    // Root in the pod is a range of unprivileged IDs on the host, 65536 of them.
    let map = output(&p, "c", &["cat", "/proc/self/uid_map"]).await;
    let fields: Vec<u64> = map.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(fields.len(), 3, "{map}");
    assert_eq!((fields[0], fields[2]), (0, 65536), "{map}");
    assert!(
        fields[1] >= 65536 && fields[1].is_multiple_of(65536),
        "{map}"
    );
    assert_eq!(output(&p, "c", &["cat", "/proc/self/gid_map"]).await, map);
    assert_eq!(output(&p, "c", &["id", "-u"]).await.trim(), "0");
    // The mount is ID-mapped: the pod's root wrote the file, and it is readable back.
    assert_eq!(output(&p, "c", &["cat", "/scratch/f"]).await, "x\n");
    // A second pod gets another range; the range is kept in the pod's directory.
    ns.pod("other", &agent.name, spec("exec sleep 3600")).await;
    let q = ready(&ns, "other").await;
    let other = output(&q, "c", &["cat", "/proc/self/uid_map"]).await;
    assert_ne!(
        other.split_whitespace().nth(1),
        map.split_whitespace().nth(1)
    );
    let uid = p.metadata.uid.clone().unwrap();
    let file = agent.dir.path().join("root/pods").join(&uid).join("userns");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains(&format!("\"hostId\":{}", fields[1])),
        "{saved}"
    );
}
