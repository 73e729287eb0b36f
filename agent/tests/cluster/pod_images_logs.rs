//! Images from a registry with basic auth (imagePullSecrets, pull policies) and container log
//! rotation, against the real local cluster and containerd. The auth registry is the one
//! `deploy/dev/cluster up` runs on 127.0.0.1:5001 (user `mkl`, password in
//! STATE/registry-auth/password) holding `127.0.0.1:5001/private/busybox:1.35`. Serial
//! (`--test-threads=1`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::pods::{
    TestNamespace, busybox, container, cri, events, running, setup, sh, wait_event, wait_pod,
    waiting_reason,
};
use crate::common::{Agent, admin, env, require_cluster, wait_ready};
use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use minikubelet::pods::log_rotation::{LogRotation, rotate_once};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn env_or(name: &str, default: impl FnOnce() -> String) -> String {
    std::env::var(name).unwrap_or_else(|_| default())
}

/// (registry host, user, password, private image) of the auth registry.
fn auth_registry() -> (String, String, String, String) {
    let host = env_or("MKL_AUTH_REGISTRY", || "127.0.0.1:5001".to_string());
    let user = env_or("MKL_AUTH_REGISTRY_USER", || "mkl".to_string());
    let file = env_or("MKL_AUTH_REGISTRY_PASSWORD_FILE", || {
        format!("{}/registry-auth/password", env("MKL_STATE_DIR"))
    });
    let password = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| {
            panic!("{file}: {e} (the auth registry comes with `deploy/dev/cluster up`)")
        })
        .trim()
        .to_string();
    let image = env_or("MKL_PRIVATE_IMAGE", || {
        format!("{host}/private/busybox:1.35")
    });
    (host, user, password, image)
}

/// A `kubernetes.io/dockerconfigjson` Secret for the registry.
fn pull_secret(name: &str, host: &str, user: &str, password: &str) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {host: {"username": user, "password": password, "auth": auth}}});
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .unwrap()
}

#[tokio::test]
async fn image_pull_secrets_pull_a_private_image_and_pull_policies_hold() {
    if !require_cluster() {
        return;
    }
    let (host, user, password, image) = auth_registry();
    // The private image has a digest of its own, so removing it leaves the shared busybox alone;
    // absent, the first pod must really pull it.
    let _ = cri().await.remove_image(image.as_str()).await;
    let (client, agent, ns) = setup("mkl-pod-images", "mkl-pod-images").await;
    let pods = ns.pods();
    let spec = |policy: &str, secret: bool| {
        let mut s = json!({"containers": [{"name": "c", "image": image, "imagePullPolicy": policy,
            "command": sh("exec sleep 3600")}]});
        if secret {
            s["imagePullSecrets"] = json!([{"name": "regcred"}]);
        }
        s
    };

    // No secret: the registry refuses, and the reason and message say so.
    ns.pod("no-secret", &agent.name, spec("IfNotPresent", false))
        .await;
    let p = wait_pod(&pods, "no-secret", "ErrImagePull", T, |p| {
        container(p, "c").and_then(waiting_reason) == Some("ErrImagePull")
    })
    .await;
    let waiting = container(&p, "c")
        .and_then(|c| c.state.as_ref()?.waiting.clone())
        .unwrap();
    let message = waiting.message.unwrap_or_default();
    eprintln!("no secret: {message}");
    assert!(
        message.starts_with(&format!("Failed to pull image \"{image}\": "))
            // containerd 1.6's words, and 2.x's
            && (message.contains("401 Unauthorized")
                || message.contains("no basic auth credentials")),
        "{message}"
    );
    let failed = wait_event(&client, &ns.name, "no-secret", "Failed", T).await;
    assert!(failed.contains(&image), "{failed}");
    wait_pod(&pods, "no-secret", "ImagePullBackOff", T, |p| {
        container(p, "c").and_then(waiting_reason) == Some("ImagePullBackOff")
    })
    .await;
    pods.delete("no-secret", &DeleteParams::default())
        .await
        .unwrap();

    // A dockerconfigjson pull secret: the pull succeeds and the pod runs.
    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &pull_secret("regcred", &host, &user, &password),
        )
        .await
        .unwrap();
    ns.pod("with-secret", &agent.name, spec("IfNotPresent", true))
        .await;
    wait_pod(&pods, "with-secret", "Running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    wait_event(&client, &ns.name, "with-secret", "Pulling", T).await;
    let pulled = wait_event(&client, &ns.name, "with-secret", "Pulled", T).await;
    assert!(pulled.contains("Successfully pulled image"), "{pulled}");

    // Always pulls again although the image is present.
    ns.pod("always", &agent.name, spec("Always", true)).await;
    wait_pod(&pods, "always", "Running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    let pulling = wait_event(&client, &ns.name, "always", "Pulling", T).await;
    assert!(pulling.contains(&image), "{pulling}");
    let pulled = wait_event(&client, &ns.name, "always", "Pulled", T).await;
    assert!(pulled.contains("Successfully pulled image"), "{pulled}");

    // IfNotPresent uses the present image without pulling.
    ns.pod("if-not-present", &agent.name, spec("IfNotPresent", true))
        .await;
    wait_pod(&pods, "if-not-present", "Running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    let pulled = wait_event(&client, &ns.name, "if-not-present", "Pulled", T).await;
    assert_eq!(
        pulled,
        format!("Pulled: Container image \"{image}\" already present on machine")
    );
    let all = events(&client, &ns.name, "if-not-present").await;
    assert!(
        !all.iter().any(|e| e.starts_with("Pulling: ")),
        "IfNotPresent pulled a present image: {all:?}"
    );
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// kubelet's rotated name: `0.log.YYYYMMDD-HHMMSS`.
fn is_rotated_name(name: &str) -> bool {
    let Some(ts) = name.strip_prefix("0.log.") else {
        return false;
    };
    let b = ts.as_bytes();
    b.len() == 15
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn container_logs_rotate_keep_max_files_and_the_runtime_reopens_them() {
    if !require_cluster() {
        return;
    }
    let (_client, agent, ns) = setup("mkl-pod-logs", "mkl-pod-logs").await;
    // About 100 KB/s of output: far below the agent's own 10Mi limit during this test, quick to
    // pass the 64 KiB used here.
    let line = "0123456789".repeat(100);
    ns.pod(
        "chatty",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh(&format!("while true; do echo {line}; sleep 0.01; done"))}]}),
    )
    .await;
    let p = wait_pod(&ns.pods(), "chatty", "Running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    let id = container(&p, "c")
        .and_then(|c| c.container_id.clone())
        .unwrap();
    let id = id.split("://").last().unwrap().to_string();
    let cri = cri().await;
    let log = PathBuf::from(
        cri.container_status(&id, false)
            .await
            .unwrap()
            .status
            .unwrap()
            .log_path,
    );
    let uid = p.metadata.uid.clone().unwrap();
    assert_eq!(
        log,
        PathBuf::from(format!("/var/log/pods/{}_chatty_{uid}/c/0.log", ns.name)),
        "the CRI log path"
    );
    let dir = log.parent().unwrap().to_path_buf();
    let rotation = LogRotation {
        max_size_bytes: 64 * 1024,
        max_files: 3,
    };

    let mut rotated_names = Vec::new();
    for round in 0..4 {
        crate::common::wait_for(
            "the log to pass 64 KiB",
            Duration::from_secs(30),
            || async { (size(&log) >= rotation.max_size_bytes).then_some(()) },
        )
        .await;
        let report = rotate_once(&cri, &agent.name, &rotation).await.unwrap();
        assert!(report.errors.is_empty(), "{report:?}");
        assert_eq!(
            report.checked, 1,
            "only this node's one container: {report:?}"
        );
        assert_eq!(report.rotated.len(), 1, "round {round}: {report:?}");
        let rotated = &report.rotated[0];
        let name = rotated.file_name().unwrap().to_string_lossy().into_owned();
        assert!(is_rotated_name(&name), "{name}");
        assert_eq!(rotated.parent(), Some(dir.as_path()));
        assert!(size(rotated) >= rotation.max_size_bytes);
        let first = std::fs::read_to_string(rotated).unwrap();
        let first = first.lines().next().unwrap_or_default();
        assert!(
            first.contains(" stdout ") && first.ends_with(&line),
            "a CRI log line: {first}"
        );
        rotated_names.push(name);

        // The runtime reopened the log: a fresh 0.log that grows again.
        let started = Instant::now();
        crate::common::wait_for("the new log to grow", Duration::from_secs(10), || async {
            (size(&log) > 0).then_some(())
        })
        .await;
        eprintln!(
            "round {round}: rotated {:?}, new log grows after {:?}, files {:?}",
            rotated_names.last(),
            started.elapsed(),
            file_names(&dir)
        );
        let files = file_names(&dir);
        assert!(files.len() <= rotation.max_files, "{files:?}");
        assert!(files.contains(&"0.log".to_string()), "{files:?}");
        // Rotated names carry a one-second timestamp: the next rotation must be a second later.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }

    // The current file and the newest max_files - 1 rotated ones remain.
    let files = file_names(&dir);
    let mut want = vec!["0.log".to_string()];
    want.extend(rotated_names[rotated_names.len() - 2..].iter().cloned());
    want.sort();
    assert_eq!(files, want);
    let before = size(&log);
    crate::common::wait_for("the current log to keep growing", T, || async {
        (size(&log) > before).then_some(())
    })
    .await;
    // Below the limit nothing happens.
    let report = rotate_once(
        &cri,
        &agent.name,
        &LogRotation {
            max_size_bytes: u64::MAX,
            max_files: 3,
        },
    )
    .await
    .unwrap();
    assert!(
        report.rotated.is_empty() && report.removed.is_empty(),
        "{report:?}"
    );
}

#[tokio::test]
async fn the_agent_rotates_container_logs_by_its_flags() {
    if !require_cluster() {
        return;
    }
    let client = admin().await;
    let agent = Agent::start(
        "mkl-pod-logs-flags",
        &[
            "--container-log-max-size=32Ki",
            "--container-log-max-files=2",
        ],
    );
    wait_ready(&client, &agent.name, "True", T).await;
    let ns = TestNamespace::create(&client, "mkl-pod-logs-flags").await;
    let line = "0123456789".repeat(100);
    ns.pod(
        "chatty",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(),
            "command": sh(&format!("while true; do echo {line}; sleep 0.01; done"))}]}),
    )
    .await;
    let p = wait_pod(&ns.pods(), "chatty", "Running", T, |p| {
        container(p, "c").is_some_and(running)
    })
    .await;
    let uid = p.metadata.uid.clone().unwrap();
    let dir = PathBuf::from(format!("/var/log/pods/{}_chatty_{uid}/c", ns.name));
    // The agent checks every 10 s: within 35 s it has rotated at least twice, and with
    // max-files 2 it keeps 0.log and one rotated file.
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(35),
            "rotated so far: {seen:?}"
        );
        let files = file_names(&dir);
        assert!(files.len() <= 2, "{files:?}");
        seen.extend(files.into_iter().filter(|n| is_rotated_name(n)));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(size(&dir.join("0.log")) > 0);
}
