//! The client against the real runtime named by `CONTAINER_RUNTIME_ENDPOINT`
//! (the dev cluster's containerd: `eval "$(deploy/dev/cluster env)"`). Each
//! test prints a note and passes without doing anything when it is unset.
//!
//! Pods made here live in namespace `mkl-cri-test`, carry the label
//! `mkl-cri-test/run=<unique id>`, and are stopped and removed by that label
//! even when the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cri_client::{ClientOptions, CriClient, api};

const NAMESPACE: &str = "mkl-cri-test";
const RUN_LABEL: &str = "mkl-cri-test/run";
const CGROUP_PARENT: &str = "/mkl-cri-test";

/// The runtime's client, or `None` (after a note) when no runtime is set.
async fn runtime() -> Option<CriClient> {
    let Some(endpoint) = std::env::var("CONTAINER_RUNTIME_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("note: CONTAINER_RUNTIME_ENDPOINT is not set; skipping the real-runtime test");
        return None;
    };
    let options = ClientOptions {
        request_timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    Some(
        CriClient::connect(&endpoint, options)
            .await
            .expect("cannot connect to CONTAINER_RUNTIME_ENDPOINT"),
    )
}

fn busybox_image() -> String {
    std::env::var("MKL_BUSYBOX_IMAGE").unwrap_or_else(|_| "127.0.0.1:5000/busybox:1.35".to_owned())
}

/// An id no other test run uses.
fn unique_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

fn run_selector(run: &str) -> HashMap<String, String> {
    HashMap::from([(RUN_LABEL.to_owned(), run.to_owned())])
}

fn sandbox_config(run: &str, log_directory: &Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: format!("cri-client-{run}"),
            uid: run.to_owned(),
            namespace: NAMESPACE.to_owned(),
            attempt: 0,
        }),
        hostname: "cri-client-test".to_owned(),
        log_directory: log_directory.display().to_string(),
        labels: run_selector(run),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: CGROUP_PARENT.to_owned(),
            security_context: Some(api::LinuxSandboxSecurityContext::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn busybox_sleep_config(run: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "busybox".to_owned(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: busybox_image(),
            ..Default::default()
        }),
        command: vec!["sleep".to_owned(), "3600".to_owned()],
        log_path: "busybox.log".to_owned(),
        labels: run_selector(run),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Stops and removes every sandbox of this run (which removes its
/// containers), then the cgroup parent if it is empty. Best effort: reports
/// what it could not do.
async fn remove_pods_of_run(client: &CriClient, run: &str) {
    let filter = api::PodSandboxFilter {
        label_selector: run_selector(run),
        ..Default::default()
    };
    match client.list_pod_sandbox(Some(filter)).await {
        Ok(sandboxes) => {
            for sandbox in sandboxes {
                if let Err(e) = client.stop_pod_sandbox(&sandbox.id).await {
                    eprintln!("cleanup: {e}");
                }
                if let Err(e) = client.remove_pod_sandbox(&sandbox.id).await {
                    eprintln!("cleanup: {e}");
                }
            }
        }
        Err(e) => eprintln!("cleanup: {e}"),
    }
    for dir in ["/sys/fs/cgroup/mkl-cri-test".to_owned()]
        .into_iter()
        .chain(
            std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| {
                    d.path()
                        .join(CGROUP_PARENT.trim_start_matches('/'))
                        .display()
                        .to_string()
                }),
        )
    {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Runs `body` with a fresh run id, then removes the run's pods whether
/// `body` succeeded or panicked, then re-raises any panic.
async fn with_cleanup<F, Fut>(client: &CriClient, body: F)
where
    F: FnOnce(CriClient, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let run = unique_id();
    let outcome = tokio::spawn(body(client.clone(), run.clone())).await;
    remove_pods_of_run(client, &run).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[tokio::test]
async fn runtime_reports_its_version_and_ready_status() {
    let Some(client) = runtime().await else {
        return;
    };

    let version = client.version().await.unwrap();
    assert_eq!(version.runtime_api_version, "v1");
    assert!(!version.runtime_name.is_empty());

    let status = client.status(false).await.unwrap();
    let conditions = status.status.expect("status has no conditions").conditions;
    let runtime_ready = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .expect("no RuntimeReady condition");
    assert!(runtime_ready.status, "runtime not ready: {runtime_ready:?}");
}

#[tokio::test]
async fn pulls_an_image_from_the_local_registry_and_reports_it() {
    let Some(client) = runtime().await else {
        return;
    };
    let image = busybox_image();

    let image_ref = client.pull_image(&image, None, None).await.unwrap();
    assert!(!image_ref.is_empty());

    let status = client.image_status(&image, false).await.unwrap();
    let present = status.image.expect("pulled image is not present");
    assert!(
        present.repo_tags.contains(&image),
        "{:?}",
        present.repo_tags
    );

    let images = client.list_images(None).await.unwrap();
    assert!(images.iter().any(|i| i.id == present.id));

    let fs = client.image_fs_info().await.unwrap();
    assert!(!fs.image_filesystems.is_empty());
}

#[tokio::test]
async fn status_of_an_unknown_image_is_empty_not_an_error() {
    let Some(client) = runtime().await else {
        return;
    };

    let status = client
        .image_status("127.0.0.1:5000/mkl-no-such-image:0", false)
        .await
        .unwrap();

    assert!(status.image.is_none());
}

#[tokio::test]
async fn unknown_container_is_not_found() {
    let Some(client) = runtime().await else {
        return;
    };

    let err = client
        .container_status("mkl-bogus-container-id", false)
        .await
        .unwrap_err();

    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.op(), "container_status");
}

/// `echo hi` returns its output; `false` exits 1, and is still a successful call.
async fn exec_sync_reports_output_and_exit_code(client: &CriClient, ctr: &str) {
    let cmd = vec!["echo".to_owned(), "hi".to_owned()];
    let exec = client
        .exec_sync(ctr, cmd, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (exec.exit_code, exec.stdout.as_slice()),
        (0, b"hi\n".as_slice()),
        "{exec:?}"
    );
    let failing = client
        .exec_sync(ctr, vec!["false".to_owned()], Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        failing.exit_code, 1,
        "a failing command is a successful call"
    );
}

#[tokio::test]
async fn busybox_pod_runs_execs_stops_and_is_removed() {
    let Some(client) = runtime().await else {
        return;
    };
    with_cleanup(&client, |client, run| async move {
        let logs = tempfile::tempdir().unwrap();
        let image = busybox_image();
        client.pull_image(&image, None, None).await.unwrap();

        let sandbox_config = sandbox_config(&run, logs.path());
        let pod = client
            .run_pod_sandbox(sandbox_config.clone(), "")
            .await
            .unwrap();
        let sandbox = client
            .pod_sandbox_status(&pod, false)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(sandbox.state, api::PodSandboxState::SandboxReady as i32);

        let ctr = client
            .create_container(&pod, busybox_sleep_config(&run), sandbox_config)
            .await
            .unwrap();
        client.start_container(&ctr).await.unwrap();
        let status = client
            .container_status(&ctr, false)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(status.state, api::ContainerState::ContainerRunning as i32);

        let by_label = api::ContainerFilter {
            label_selector: run_selector(&run),
            ..Default::default()
        };
        let listed = client.list_containers(Some(by_label)).await.unwrap();
        assert_eq!(
            listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            [ctr.as_str()]
        );
        let pods_by_label = api::PodSandboxFilter {
            label_selector: run_selector(&run),
            ..Default::default()
        };
        let pods = client
            .list_pod_sandbox(Some(pods_by_label.clone()))
            .await
            .unwrap();
        assert_eq!(
            pods.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            [pod.as_str()]
        );

        exec_sync_reports_output_and_exit_code(&client, &ctr).await;

        client
            .stop_container(&ctr, Duration::from_secs(2))
            .await
            .unwrap();
        let status = client
            .container_status(&ctr, false)
            .await
            .unwrap()
            .status
            .unwrap();
        assert_eq!(status.state, api::ContainerState::ContainerExited as i32);
        client.remove_container(&ctr).await.unwrap();
        assert!(
            client
                .container_status(&ctr, false)
                .await
                .unwrap_err()
                .is_not_found()
        );

        client.stop_pod_sandbox(&pod).await.unwrap();
        client.remove_pod_sandbox(&pod).await.unwrap();
        client
            .remove_pod_sandbox(&pod)
            .await
            .expect("RemovePodSandbox is idempotent");
        assert!(
            client
                .list_pod_sandbox(Some(pods_by_label))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            client
                .pod_sandbox_status(&pod, false)
                .await
                .unwrap_err()
                .is_not_found()
        );
    })
    .await;
}
