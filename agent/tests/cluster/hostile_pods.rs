//! A tenant's pods against the node, on the real local cluster: each case is a pod an ordinary
//! user could submit, and each asserts what the node and the agent look like afterwards: host
//! paths untouched (a canary directory), the pod's files unreadable by an unprivileged local
//! user, the agent still the same process with no dead pod worker in its metrics, a bystander
//! pod still Running, the node Ready. Serial (`--test-threads=1`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::pods::{
    TestNamespace, busybox, container, phase, ready, running, sh, wait_event, wait_pod,
    waiting_reason,
};
use crate::common::{Agent, admin, agent_metrics, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

/// A host directory no pod may touch; removed at the end of the test.
struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::Builder::new()
            .prefix("mkl-canary-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("precious"), "do not touch\n").unwrap();
        Canary { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Exactly the one file it started with, unchanged.
    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["precious"], "the canary directory changed");
        assert_eq!(
            std::fs::read_to_string(self.path().join("precious")).unwrap(),
            "do not touch\n"
        );
    }
}

/// The node survived: same agent process, no pod worker died, the bystander runs, node Ready.
async fn assert_node_unharmed(
    client: &kube::Client,
    agent: &mut Agent,
    pid: i32,
    ns: &TestNamespace,
) {
    assert_eq!(agent.pid(), pid, "the agent is the same process");
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the agent is alive\n{}",
        agent.log()
    );
    let text = agent_metrics(agent.port);
    assert!(
        text.lines()
            .any(|l| l == "minikubelet_pod_worker_panics_total 0"),
        "no pod worker died:\n{}",
        text.lines()
            .filter(|l| l.contains("panics"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
    let bystander = ns.pods().get("bystander").await.unwrap();
    assert!(
        container(&bystander, "c").is_some_and(running),
        "the bystander pod still runs"
    );
    wait_ready(client, &agent.name, "True", Duration::from_secs(15)).await;
}

/// An agent of the test's own, a namespace, and a bystander pod Running on the node.
async fn start(node: &str, extra: &[&str]) -> (kube::Client, Agent, i32, TestNamespace) {
    let client = admin().await;
    let agent = Agent::start(node, extra);
    wait_ready(&client, node, "True", T).await;
    let ns = TestNamespace::create(&client, node).await;
    ns.pod(
        "bystander",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    ready(&ns, "bystander").await;
    let pid = agent.pid();
    (client, agent, pid, ns)
}

/// Exit code and stdout of `cmd` in container `c` of pod `p` (CRI ExecSync).
async fn exec(p: &Pod, c: &str, cmd: &[&str]) -> (i32, String) {
    let id = container(p, c).unwrap().container_id.clone().unwrap();
    let id = id.split("://").last().unwrap().to_string();
    let out = crate::common::pods::cri()
        .await
        .exec_sync(
            &id,
            cmd.iter().map(|s| (*s).to_string()).collect(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    (
        out.exit_code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn exec_code(p: &Pod, c: &str, cmd: &[&str]) -> i32 {
    exec(p, c, cmd).await.0
}

/// True when an unprivileged local user (nobody) can read `path`.
fn readable_by_nobody(path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn pod_dir(agent: &Agent, p: &Pod) -> PathBuf {
    agent
        .dir
        .path()
        .join("root/pods")
        .join(p.metadata.uid.as_deref().unwrap())
}

#[tokio::test]
async fn api_volumes_are_read_only_private_and_a_replaced_data_link_reaches_nothing() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-volumes";
    // Volume contents are refreshed every 2 s, so the writer runs again soon after the link
    // is replaced.
    let (client, mut agent, pid, ns) = start(node, &["--sync-frequency=2s"]).await;
    let canary = Canary::new();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "sec"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    // The pod asks for writable mounts everywhere; it must not get them for API data.
    let mounts = json!([
        {"name": "cfg", "mountPath": "/cfg", "readOnly": false},
        {"name": "sec", "mountPath": "/sec", "readOnly": false},
        {"name": "down", "mountPath": "/down"},
        {"name": "proj", "mountPath": "/proj"}]);
    ns.pod(
        "tenant",
        node,
        json!({
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
                "volumeMounts": mounts}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "down", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "proj", "projected": {"sources": [
                    {"configMap": {"name": "cfg"}}, {"secret": {"name": "sec"}}]}}]
        }),
    )
    .await;
    let p = ready(&ns, "tenant").await;
    for dir in ["/cfg", "/sec", "/down", "/proj"] {
        let planted = format!("ln -sfn {} {dir}/..data", canary.path().display());
        for script in [
            format!("echo x > {dir}/new"),
            format!("rm -rf {dir}/..data"),
            planted,
            format!("mkdir {dir}/d"),
        ] {
            assert_ne!(
                exec_code(&p, "c", &["sh", "-c", &script]).await,
                0,
                "{script} must fail: API data is mounted read-only"
            );
        }
    }

    // Files private to root: no local user reads a pod's secrets. The test's temporary dir is
    // opened up first, so that only the agent's own modes stand in the way.
    std::fs::set_permissions(agent.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = agent.dir.path().join("root");
    let pod_dir = pod_dir(&agent, &p);
    assert_eq!(mode(&root), 0o750, "root dir");
    assert_eq!(mode(&root.join("pods")), 0o750, "pods dir");
    assert_eq!(mode(&pod_dir), 0o750, "pod dir");
    let secret_file = pod_dir.join("volumes/kubernetes.io~secret/sec/password");
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), "hunter2");
    assert!(
        !readable_by_nobody(&secret_file),
        "a local user reads the secret"
    );
    let token_like = pod_dir.join("volumes/kubernetes.io~projected/proj/password");
    assert!(!readable_by_nobody(&token_like));

    // Even a writable volume cannot be turned against the host: replace `..data` from the host
    // side (as a container with a writable volume could) with an absolute link to the canary,
    // then change the ConfigMap so the agent rewrites the volume.
    let vol = pod_dir.join("volumes/kubernetes.io~configmap/cfg");
    let data = vol.join("..data");
    std::fs::remove_file(&data).unwrap();
    std::os::unix::fs::symlink(canary.path(), &data).unwrap();
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    // Until the rewrite the container sees a dangling link (the canary path is not in it).
    wait_for("the configMap rewritten", T, || async {
        (exec(&p, "c", &["cat", "/cfg/a"]).await == (0, "2".to_string())).then_some(())
    })
    .await;
    canary.assert_untouched();
    let target = std::fs::read_link(&data).unwrap();
    assert!(
        target.is_relative() && target.to_string_lossy().starts_with(".."),
        "..data points at the writer's own directory again: {target:?}"
    );
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn subpath_symlinks_planted_in_an_empty_dir_cannot_escape() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-subpath";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    let canary = Canary::new();
    let c = canary.path().display().to_string();
    // The init container plants links; the main container asks for subPaths through them.
    let plant = format!(
        "ln -s {c} /data/abs && ln -s ../../../../../../../../.. /data/up && \
         mkdir -p /data/in/ok && ln -s in /data/rel && ln -s loop1 /data/loop2 && \
         ln -s loop2 /data/loop1"
    );
    let pod = |sub: &str| {
        json!({
            "initContainers": [{"name": "plant", "image": busybox(), "command": sh(&plant),
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
                "volumeMounts": [{"name": "data", "mountPath": "/sub", "subPath": sub}]}],
            "volumes": [{"name": "data", "emptyDir": {}}],
        })
    };
    let cases = [
        ("abs", "abs/created-by-agent".to_string()),
        ("up", format!("up{c}/created-by-agent")),
        ("loop", "loop1/x".to_string()),
    ];
    for (name, sub) in &cases {
        ns.pod(name, node, pod(sub)).await;
    }
    for (name, _) in &cases {
        let p = wait_pod(&ns.pods(), name, "CreateContainerConfigError", T, |p| {
            container(p, "c").and_then(waiting_reason) == Some("CreateContainerConfigError")
        })
        .await;
        let message = container(&p, "c")
            .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.message.clone())
            .unwrap_or_default();
        assert!(message.contains("subPath"), "{name}: {message}");
    }
    // A link that stays inside the volume is fine.
    ns.pod("inside", node, pod("rel/ok/deeper")).await;
    let p = ready(&ns, "inside").await;
    assert_eq!(exec_code(&p, "c", &["sh", "-c", "test -d /sub"]).await, 0);
    canary.assert_untouched();
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn absolute_and_dotdot_item_paths_never_reach_the_node() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-items";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    for path in ["/etc/evil", "../evil", "a/../../evil", "..data"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "items", "namespace": ns.name},
            "spec": {"nodeName": node, "automountServiceAccountToken": false,
                "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 1")}],
                "volumes": [{"name": "v", "downwardAPI": {"items": [
                    {"path": path, "fieldRef": {"fieldPath": "metadata.name"}}]}}]}
        }))
        .unwrap();
        let e = ns
            .pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect_err(path);
        assert!(e.to_string().contains("path"), "{path}: {e}");
    }
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn a_grace_period_at_int64_max_and_the_longest_deadline_neither_panic_nor_stall() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-clock";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    let p = ns
        .pod(
            "forever",
            node,
            json!({"terminationGracePeriodSeconds": i64::MAX,
                // The API caps the deadline at int32 max (68 years); the grace period is int64.
                "activeDeadlineSeconds": i32::MAX,
                "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
        )
        .await;
    ready(&ns, "forever").await;
    // Deleted with its own grace period: the stop begins and must wait, not panic.
    ns.pods()
        .delete("forever", &DeleteParams::default())
        .await
        .unwrap();
    wait_event(&client, &ns.name, "forever", "Killing", T).await;
    let still = ns.pods().get("forever").await.unwrap();
    assert_eq!(still.metadata.deletion_grace_period_seconds, Some(i64::MAX));
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
    // A shorter grace period ends it at once, although the first stop is still waiting.
    let began = Instant::now();
    ns.pods()
        .delete(
            "forever",
            &DeleteParams {
                grace_period_seconds: Some(1),
                ..DeleteParams::default()
            },
        )
        .await
        .unwrap();
    wait_for("the pod gone", T, || async {
        ns.pods()
            .get_opt("forever")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(began.elapsed() < Duration::from_secs(60));
    let uid = p.metadata.uid.unwrap();
    assert!(crate::common::pods::sandboxes_of(&uid).await.is_empty());
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn a_fork_bomb_is_held_at_pod_max_pids_and_the_node_runs_on() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-forks";
    let (client, mut agent, pid, ns) = start(node, &["--pod-max-pids=24"]).await;
    // A subshell forks until the kernel refuses (ash gives up on "can't fork"); the shell then
    // reads that with builtins only (no fork is left for it) and says so.
    ns.pod(
        "bomb",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh(
            "( n=0; while [ $n -lt 200 ]; do sleep 600 & n=$((n+1)); done ) 2>/tmp/err; \
             while read -r line; do case \"$line\" in *fork*) echo refused; break;; esac; \
             done </tmp/err; exec sleep 3600"
        )}]}),
    )
    .await;
    let p = ready(&ns, "bomb").await;
    let uid = p.metadata.uid.clone().unwrap();
    let cgroup = PathBuf::from("/sys/fs/cgroup/pids")
        .join(agent.cgroup_root().trim_start_matches('/'))
        .join(format!("kubepods/besteffort/pod{uid}"));
    assert_eq!(
        std::fs::read_to_string(cgroup.join("pids.max"))
            .unwrap()
            .trim(),
        "24"
    );
    let current: u32 = std::fs::read_to_string(cgroup.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 24, "{current} processes in the pod");
    let logs = wait_for("the refused forks in the log", T, || {
        let pods = ns.pods();
        async move {
            let logs = pods.logs("bomb", &LogParams::default()).await.ok()?;
            logs.contains("refused").then_some(logs)
        }
    })
    .await;
    assert_eq!(logs.trim(), "refused");
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn forbidden_and_unsafe_sysctls_fail_the_pod_with_sysctl_forbidden() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-sysctls";
    let (client, mut agent, pid, ns) =
        start(node, &["--allowed-unsafe-sysctls=net.core.somaxconn"]).await;
    let with = |sysctl: &str| {
        json!({"securityContext": {"sysctls": [{"name": sysctl, "value": "1024"}]},
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]})
    };
    let refused = [
        ("node-wide", with("kernel.msgmax"), "not allowlisted"),
        ("vm", with("vm.max_map_count"), "not allowlisted"),
        // The API itself refuses net sysctls with hostNetwork; the agent's check for them is
        // unit-tested (pods/sysctls.rs).
        (
            "unsafe-net",
            with("net.core.netdev_max_backlog"),
            "not allowlisted",
        ),
    ];
    for (name, spec, _) in &refused {
        ns.pod(name, node, spec.clone()).await;
    }
    for (name, _, text) in &refused {
        let p = wait_pod(&ns.pods(), name, "Failed", T, |p| phase(p) == "Failed").await;
        let status = p.status.unwrap();
        assert_eq!(status.reason.as_deref(), Some("SysctlForbidden"), "{name}");
        let message = status.message.unwrap_or_default();
        assert!(
            message.contains("forbidden sysctl") && message.contains(text),
            "{message}"
        );
    }
    // An unsafe sysctl the node allows reaches the pod's own network namespace.
    ns.pod("allowed", node, with("net.core.somaxconn")).await;
    let p = ready(&ns, "allowed").await;
    assert_eq!(
        crate::common::pods::output(&p, "c", &["cat", "/proc/sys/net/core/somaxconn"])
            .await
            .trim(),
        "1024"
    );
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn an_apparmor_profile_the_node_cannot_enforce_is_never_silently_dropped() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-apparmor";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    ns.pod(
        "armored",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600"),
            "securityContext": {"appArmorProfile": {"type": "Localhost",
                "localhostProfile": "mkl-no-such-profile"}}}]}),
    )
    .await;
    let host_has_apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.starts_with('Y'));
    if host_has_apparmor {
        // The profile reaches the runtime, which cannot load it: the container never runs.
        let p = wait_pod(&ns.pods(), "armored", "a create error", T, |p| {
            container(p, "c")
                .and_then(waiting_reason)
                .is_some_and(|r| r.ends_with("Error"))
        })
        .await;
        assert!(!container(&p, "c").is_some_and(running));
    } else {
        let p = wait_pod(&ns.pods(), "armored", "Failed", T, |p| phase(p) == "Failed").await;
        let status = p.status.unwrap();
        assert_eq!(status.reason.as_deref(), Some("AppArmor"));
        assert_eq!(
            status.message.as_deref(),
            Some("Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host")
        );
    }
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn a_runtime_class_runs_by_its_handler_and_a_missing_one_fails_the_sandbox() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-runtimeclass";
    let client = admin().await;
    let classes: Api<RuntimeClass> = Api::all(client.clone());
    let class = |name: &str, overhead: Option<&str>| -> RuntimeClass {
        let mut v = json!({"metadata": {"name": name}, "handler": "runc"});
        if let Some(cpu) = overhead {
            v["overhead"] = json!({"podFixed": {"cpu": cpu}});
        }
        serde_json::from_value(v).unwrap()
    };
    for name in ["mkl-by-handler", "mkl-gone", "mkl-fat"] {
        let _ = classes.delete(name, &DeleteParams::default()).await;
    }
    classes
        .create(&PostParams::default(), &class("mkl-by-handler", None))
        .await
        .unwrap();
    classes
        .create(&PostParams::default(), &class("mkl-gone", None))
        .await
        .unwrap();
    classes
        .create(&PostParams::default(), &class("mkl-fat", Some("100000")))
        .await
        .unwrap();
    let ns = TestNamespace::create(&client, node).await;
    let spec = |rc: &str| {
        json!({"runtimeClassName": rc,
            "containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]})
    };
    // Bound before the agent runs, so the class can go away before the node sees the pod.
    ns.pod("orphaned", node, spec("mkl-gone")).await;
    classes
        .delete("mkl-gone", &DeleteParams::default())
        .await
        .unwrap();
    let mut agent = Agent::start(node, &[]);
    wait_ready(&client, node, "True", T).await;
    let pid = agent.pid();
    ns.pod(
        "bystander",
        node,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("sleep 3600")}]}),
    )
    .await;
    ready(&ns, "bystander").await;

    // The name differs from the handler: containerd knows only "runc".
    ns.pod("by-handler", node, spec("mkl-by-handler")).await;
    ready(&ns, "by-handler").await;

    let event = wait_event(&client, &ns.name, "orphaned", "FailedCreatePodSandBox", T).await;
    assert!(
        event.contains(r#"runtimeclass.node.k8s.io "mkl-gone" not found"#),
        "{event}"
    );
    let p = ns.pods().get("orphaned").await.unwrap();
    assert_eq!(phase(&p), "Pending");
    assert_eq!(
        container(&p, "c").and_then(waiting_reason),
        Some("ContainerCreating")
    );

    // The class's overhead counts in admission.
    ns.pod("fat", node, spec("mkl-fat")).await;
    let p = wait_pod(&ns.pods(), "fat", "Failed", T, |p| phase(p) == "Failed").await;
    assert_eq!(p.status.unwrap().reason.as_deref(), Some("OutOfcpu"));

    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
    drop(ns);
    for name in ["mkl-by-handler", "mkl-fat"] {
        let _ = classes.delete(name, &DeleteParams::default()).await;
    }
}

#[tokio::test]
async fn malformed_image_names_give_invalid_image_name() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-images";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    let bad = [
        ("upper", "127.0.0.1:5000/BusyBox:1.35"),
        ("space", "127.0.0.1:5000/busy box:1.35"),
        ("digest", "127.0.0.1:5000/busybox@sha256:abc"),
        ("colons", "127.0.0.1:5000/busybox:1.35:extra"),
    ];
    for (name, image) in bad {
        ns.pod(
            name,
            node,
            json!({"containers": [{"name": "c", "image": image, "command": sh("sleep 3600")}]}),
        )
        .await;
    }
    for (name, image) in bad {
        let p = wait_pod(&ns.pods(), name, "InvalidImageName", T, |p| {
            container(p, "c").and_then(waiting_reason) == Some("InvalidImageName")
        })
        .await;
        let message = container(&p, "c")
            .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.message.clone())
            .unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "Failed to apply default image tag \"{image}\": couldn't parse image name"
            )),
            "{message}"
        );
        let event = wait_event(&client, &ns.name, name, "InspectFailed", T).await;
        assert!(event.contains("couldn't parse image name"), "{event}");
    }
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}

#[tokio::test]
async fn a_thousand_unauthenticated_connections_do_not_stop_an_authorised_log_stream() {
    if !require_cluster() {
        return;
    }
    let node = "mkl-hostile-api";
    let (client, mut agent, pid, ns) = start(node, &[]).await;
    ns.pod(
        "ticker",
        node,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")}]}),
    )
    .await;
    ready(&ns, "ticker").await;
    let out_path = agent.dir.path().join("follow.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut follow = Command::new("kubectl")
        .args(["-n", &ns.name, "logs", "-f", "ticker"])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = || {
        std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("the stream started", T, || async {
        (lines() > 2).then_some(())
    })
    .await;

    // 1000 connections that never authenticate: half never start TLS, half send garbage.
    let mut flood = Vec::new();
    for i in 0..1000 {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", agent.port)).await else {
            continue;
        };
        if i % 2 == 1 {
            use tokio::io::AsyncWriteExt;
            let _ = s.write_all(b"\x16\x03\x01\x00\x05hello").await;
        }
        flood.push(s);
    }
    assert!(flood.len() > 900, "only {} connections opened", flood.len());
    let before = lines();
    wait_for("the stream goes on during the flood", T, || async {
        (lines() >= before + 20).then_some(())
    })
    .await;
    // A new authorised request is served while the flood holds its connections.
    let fresh = Command::new("kubectl")
        .args(["-n", &ns.name, "logs", "--tail=1", "ticker"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&fresh.stdout).starts_with("tick "),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    drop(flood);
    assert!(
        follow.try_wait().unwrap().is_none(),
        "kubectl logs -f still streams"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    assert_node_unharmed(&client, &mut agent, pid, &ns).await;
}
