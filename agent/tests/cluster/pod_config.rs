//! What a container sees, checked from inside it: environment from every source, $(VAR)
//! expansion, security context, hostname and DNS, host network, sidecars, hooks and termination
//! messages. Each test runs its own agent against the real cluster. Serial.

use std::time::Duration;

use crate::common::pods::{
    busybox, condition, container, cri, events, init_container, output, phase, ready, running,
    setup, sh, wait_event, wait_pod,
};
use crate::common::{require_cluster, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

/// Runs `cmd` in the pod's container `c` and returns its stdout.
#[tokio::test]
async fn environment_comes_from_values_fields_resources_configmaps_and_secrets() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-cfg-env", "mkl-cfg-env").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "settings"}, "data": {"color": "blue", "size": "xl"}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    ns.pod(
        "env",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"),
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}},
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PLAIN", "value": "v1"},
                {"name": "EXPANDED", "value": "$(PLAIN)-and-$(CFG_color)-$$(PLAIN)"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "OPTIONAL", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}}
            ]}]}),
    )
    .await;
    let p = ready(&ns, "env").await;
    let env = output(&p, "c", &["env"]).await;
    let has = |line: &str| {
        assert!(
            env.lines().any(|l| l == line),
            "{line:?} missing in:\n{env}"
        );
    };
    has("PLAIN=v1");
    has("EXPANDED=v1-and-blue-$(PLAIN)");
    has("CFG_color=blue");
    has("CFG_size=xl");
    has("POD_NAME=env");
    has(&format!("NODE={}", agent.name));
    has(&format!(
        "POD_IP={}",
        p.status.clone().unwrap().pod_ip.unwrap()
    ));
    has("MEM_LIMIT=64");
    has("CPU_LIMIT=250");
    has("TOKEN=s3cr3t");
    assert!(
        !env.contains("OPTIONAL="),
        "an optional missing ref is skipped"
    );
    assert_eq!(p.status.unwrap().qos_class.as_deref(), Some("Guaranteed"));
}

#[tokio::test]
async fn security_context_hostname_and_dns_reach_the_container() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-sec", "mkl-cfg-sec").await;
    ns.pod(
        "secure",
        &agent.name,
        json!({"hostname": "custom-host",
               "dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.53"], "searches": ["example.test"], "options": [{"name": "ndots", "value": "2"}]},
               "securityContext": {"runAsUser": 1234, "runAsGroup": 5678, "supplementalGroups": [4321]},
               "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"),
                 "workingDir": "/tmp",
                 "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false}}]}),
    )
    .await;
    let p = ready(&ns, "secure").await;
    assert_eq!(output(&p, "c", &["id", "-u"]).await.trim(), "1234");
    assert_eq!(output(&p, "c", &["id", "-g"]).await.trim(), "5678");
    assert!(
        output(&p, "c", &["id", "-G"])
            .await
            .split_whitespace()
            .any(|g| g == "4321")
    );
    assert_eq!(output(&p, "c", &["hostname"]).await.trim(), "custom-host");
    assert_eq!(output(&p, "c", &["pwd"]).await.trim(), "/tmp");
    let resolv = output(&p, "c", &["cat", "/etc/resolv.conf"]).await;
    assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    assert!(resolv.contains("search example.test"), "{resolv}");
    assert!(resolv.contains("ndots:2"), "{resolv}");
    let status = output(&p, "c", &["cat", "/proc/self/status"]).await;
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{status}"
    );
    // A read-only root filesystem refuses writes.
    let id = container(&p, "c").unwrap().container_id.clone().unwrap();
    let out = cri()
        .await
        .exec_sync(
            id.split("://").last().unwrap(),
            vec!["touch".into(), "/x".into()],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_ne!(out.exit_code, 0, "writing / must fail");
}

#[tokio::test]
async fn services_of_the_namespace_reach_the_environment_also_one_created_just_before() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-cfg-svc", "mkl-cfg-svc").await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let service = |name: &str, port: i32| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]}}))
        .unwrap()
    };
    // One Service before the first pod, one created while the agent runs, right before the
    // second pod: the agent's Service cache has to have seen it.
    services
        .create(&PostParams::default(), &service("early", 8080))
        .await
        .unwrap();
    let first = json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]});
    ns.pod("first", &agent.name, first.clone()).await;
    let p = ready(&ns, "first").await;
    let early_ip = services
        .get("early")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let env = output(&p, "c", &["env"]).await;
    assert!(
        env.lines()
            .any(|l| l == format!("EARLY_SERVICE_HOST={early_ip}")),
        "{env}"
    );
    assert!(
        env.lines().any(|l| l == "EARLY_SERVICE_PORT_HTTP=8080"),
        "{env}"
    );
    assert!(
        env.lines()
            .any(|l| l == format!("EARLY_PORT=tcp://{early_ip}:8080")),
        "{env}"
    );

    services
        .create(&PostParams::default(), &service("late", 9090))
        .await
        .unwrap();
    ns.pod("second", &agent.name, first).await;
    let p = ready(&ns, "second").await;
    let late_ip = services
        .get("late")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let env = output(&p, "c", &["env"]).await;
    assert!(
        env.lines()
            .any(|l| l == format!("LATE_SERVICE_HOST={late_ip}")),
        "{env}"
    );
    assert!(env.lines().any(|l| l == "LATE_SERVICE_PORT=9090"), "{env}");
    assert!(
        env.lines()
            .any(|l| l == format!("EARLY_SERVICE_HOST={early_ip}")),
        "{env}"
    );
}

#[tokio::test]
async fn host_network_pods_report_the_host_ip() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-hostnet", "mkl-cfg-hostnet").await;
    ns.pod(
        "hostnet",
        &agent.name,
        json!({"hostNetwork": true, "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"),
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]}),
    )
    .await;
    let p = ready(&ns, "hostnet").await;
    let st = p.status.clone().unwrap();
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    // The downward API says the same as the status (containerd reports no IP for the sandbox).
    let env = output(&p, "c", &["env"]).await;
    assert!(env.lines().any(|l| l == "POD_IP=127.0.0.1"), "{env}");
    let links = output(&p, "c", &["ip", "link"]).await;
    assert!(links.contains("lo"), "{links}");
}

#[tokio::test]
async fn sidecars_keep_running_and_post_start_runs_before_the_pod_is_ready() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-sidecar", "mkl-cfg-sidecar").await;
    ns.pod(
        "sidecar",
        &agent.name,
        json!({"initContainers": [
                {"name": "side", "image": busybox(), "restartPolicy": "Always", "command": sh("exec sleep 3600")},
                {"name": "once", "image": busybox(), "command": sh("exit 0")}],
               "containers": [{"name": "main", "image": busybox(), "command": sh("exec sleep 3600"),
                 "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo started > /tmp/poststart"]}}}}]}),
    )
    .await;
    let p = ready(&ns, "sidecar").await;
    let side = init_container(&p, "side").unwrap();
    assert!(running(side), "the sidecar keeps running: {side:?}");
    let once = init_container(&p, "once").unwrap();
    assert_eq!(once.state.clone().unwrap().terminated.unwrap().exit_code, 0);
    assert_eq!(
        output(&p, "main", &["cat", "/tmp/poststart"]).await.trim(),
        "started"
    );
}

#[tokio::test]
async fn a_failing_post_start_hook_kills_the_container_with_an_event() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-cfg-hookfail", "mkl-cfg-hookfail").await;
    ns.pod(
        "hookfail",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"),
            "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 9"]}}}}]}),
    )
    .await;
    let e = wait_event(&client, &ns.name, "hookfail", "FailedPostStartHook", T).await;
    assert!(e.contains("exit"), "{e}");
    wait_pod(
        &ns.pods(),
        "hookfail",
        "restarted after the hook failed",
        T,
        |p| container(p, "c").is_some_and(|c| c.restart_count >= 1),
    )
    .await;
}

#[tokio::test]
async fn termination_messages_come_from_the_file_or_the_log_tail() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-termmsg", "mkl-cfg-termmsg").await;
    ns.pod(
        "from-file",
        &agent.name,
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": busybox(),
            "command": sh("echo 'all done here' > /dev/termination-log; exit 0")}]}),
    )
    .await;
    ns.pod(
        "from-logs",
        &agent.name,
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": busybox(),
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "command": sh("echo 'something broke'; exit 4")}]}),
    )
    .await;
    let pods = ns.pods();
    let terminated = |p: &Pod| container(p, "c").and_then(|c| c.state.clone()?.terminated);
    let p = wait_pod(&pods, "from-file", "Succeeded", T, |p| {
        phase(p) == "Succeeded"
    })
    .await;
    assert_eq!(
        terminated(&p).unwrap().message.as_deref().map(str::trim),
        Some("all done here")
    );
    let p = wait_pod(&pods, "from-logs", "Failed", T, |p| phase(p) == "Failed").await;
    let t = terminated(&p).unwrap();
    assert_eq!(t.exit_code, 4);
    assert_eq!(t.message.as_deref().map(str::trim), Some("something broke"));
}

#[tokio::test]
async fn a_huge_environment_gives_a_readable_error_and_the_agent_keeps_serving() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-huge", "mkl-cfg-huge").await;
    let huge = "x".repeat(4 * 1024 * 1024);
    let pods = ns.pods();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "huge"},
        "spec": {"nodeName": agent.name, "automountServiceAccountToken": false, "terminationGracePeriodSeconds": 1,
          "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600"), "env": [{"name": "BIG", "value": huge}]}]}}))
    .unwrap();
    // The API server may refuse an object this large itself; either way nothing may break.
    let created = pods.create(&PostParams::default(), &pod).await;
    if created.is_ok() {
        let p = wait_pod(&pods, "huge", "a waiting reason", T, |p| {
            container(p, "c").is_some_and(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    .is_some_and(|r| r != "ContainerCreating")
            }) || condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
        let c = container(&p, "c").unwrap();
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            assert!(w.message.as_deref().is_some_and(|m| !m.is_empty()), "{w:?}");
        }
    }
    ns.pod("after", &agent.name, json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}))
        .await;
    ready(&ns, "after").await;
}

#[tokio::test]
async fn http_and_tcp_probes_reach_a_real_server_in_the_pod_and_tty_stdin_are_set() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-probes", "mkl-cfg-probes").await;
    ns.pod(
        "web",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh("mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"),
            "ports": [{"name": "http", "containerPort": 8080}],
            "tty": true, "stdin": true,
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 2},
            "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}),
    )
    .await;
    let p = ready(&ns, "web").await;
    assert_eq!(container(&p, "c").unwrap().restart_count, 0);
    // The container got a terminal: its main process's stdin is a pseudo-terminal.
    let stdin = output(&p, "c", &["readlink", "/proc/1/fd/0"]).await;
    assert!(
        stdin.trim().starts_with("/dev/pts/"),
        "stdin of PID 1: {stdin}"
    );
    // Breaking the HTTP endpoint turns readiness off without a restart.
    output(&p, "c", &["rm", "/tmp/www/healthz"]).await;
    let p = wait_pod(
        &ns.pods(),
        "web",
        "not Ready",
        Duration::from_secs(20),
        |p| condition(p, "Ready").as_deref() == Some("False"),
    )
    .await;
    assert_eq!(container(&p, "c").unwrap().restart_count, 0);
}

#[tokio::test]
async fn an_invalid_probe_gives_an_event_and_the_pod_stays_unready_while_others_run() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-cfg-badprobe", "mkl-cfg-badprobe").await;
    // A named port the container does not declare: the API accepts it, the probe cannot run.
    ns.pod(
        "badprobe",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
            "readinessProbe": {"httpGet": {"path": "/", "port": "nope"}, "periodSeconds": 1}}]}),
    )
    .await;
    ns.pod(
        "fine",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    let message = wait_event(
        &client,
        &ns.name,
        "badprobe",
        "Unhealthy",
        Duration::from_secs(60),
    )
    .await;
    assert!(message.contains("Readiness probe errored"), "{message}");
    assert!(message.contains("\"nope\""), "{message}");
    let p = ns.pods().get("badprobe").await.unwrap();
    let c = container(&p, "c").unwrap();
    assert!(running(c), "the container runs: {c:?}");
    assert!(!c.ready);
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    ready(&ns, "fine").await;
}

#[tokio::test]
async fn grpc_probes_reach_a_real_grpc_health_server_in_the_pod() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup("mkl-cfg-grpc", "mkl-cfg-grpc").await;
    let registry = std::env::var("REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".to_string());
    // The project's grpc-health image serves grpc.health.v1: SERVING for 8 s, then NOT_SERVING.
    ns.pod(
        "grpc",
        &agent.name,
        json!({"containers": [{"name": "c", "image": format!("{registry}/grpc-health:1.0"),
            "args": ["-port=9090", "-healthy-for=8s"],
            "ports": [{"name": "grpc", "containerPort": 9090}],
            // The first probe waits for the server to listen (no "connection refused" noise).
            "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 1,
                "initialDelaySeconds": 2}}]}),
    )
    .await;
    ready(&ns, "grpc").await;
    let p = wait_pod(
        &ns.pods(),
        "grpc",
        "not Ready once the server reports NOT_SERVING",
        Duration::from_secs(40),
        |p| condition(p, "Ready").as_deref() == Some("False"),
    )
    .await;
    let c = container(&p, "c").unwrap();
    assert!(running(c) && c.restart_count == 0, "{c:?}");
    let message = wait_for(
        "an Unhealthy event saying NOT_SERVING",
        Duration::from_secs(20),
        || async {
            events(&client, &ns.name, "grpc")
                .await
                .into_iter()
                .find(|e| e.starts_with("Unhealthy: ") && e.contains("NOT_SERVING"))
        },
    )
    .await;
    assert!(message.contains("Readiness probe failed"), "{message}");
}

#[tokio::test]
async fn etc_hosts_is_managed_with_the_pod_ip_hostname_and_host_aliases() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-cfg-hosts", "mkl-cfg-hosts").await;
    ns.pod(
        "hosts",
        &agent.name,
        json!({"hostname": "web", "subdomain": "svc1",
            "hostAliases": [{"ip": "10.244.250.1", "hostnames": ["alias.local", "other"]}],
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    let p = ready(&ns, "hosts").await;
    let ip = p.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let hosts = output(&p, "c", &["cat", "/etc/hosts"]).await;
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file."),
        "{hosts}"
    );
    assert!(
        hosts.contains(&format!(
            "{ip}\tweb.svc1.{}.svc.cluster.local\tweb\n",
            ns.name
        )),
        "{hosts}"
    );
    assert!(
        hosts.contains("# Entries added by HostAliases.\n10.244.250.1\talias.local\tother\n"),
        "{hosts}"
    );
}
