//! Pod helpers for integration tests: a namespace per test (deleted at the end), pods bound to
//! the test's own node, and waits on pod state.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::wait_for;

/// The busybox image the project builds into the local registry.
pub fn busybox() -> String {
    std::env::var("MKL_BUSYBOX_IMAGE").unwrap_or_else(|_| "127.0.0.1:5000/busybox:1.35".to_string())
}

/// A namespace that is deleted (with everything in it) when dropped.
pub struct TestNamespace {
    pub name: String,
    pub client: kube::Client,
}

impl TestNamespace {
    pub async fn create(client: &kube::Client, name: &str) -> TestNamespace {
        let api: Api<Namespace> = Api::all(client.clone());
        let _ = api.delete(name, &DeleteParams::default()).await;
        // A namespace still terminating from an earlier run must finish first.
        super::wait_gone(&api, name, Duration::from_secs(120)).await;
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.unwrap();
        // The service-account controller must create "default" before pods can be created.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), name);
        wait_for(
            "default service account",
            Duration::from_secs(60),
            || async { sa.get_opt("default").await.ok().flatten().map(|_| ()) },
        )
        .await;
        TestNamespace {
            name: name.to_string(),
            client: client.clone(),
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates a pod from a spec (JSON), bound to `node`, without a service-account token.
    pub async fn pod(&self, name: &str, node: &str, mut spec: Value) -> Pod {
        spec["nodeName"] = json!(node);
        if spec.get("automountServiceAccountToken").is_none() {
            spec["automountServiceAccountToken"] = json!(false);
        }
        if spec.get("terminationGracePeriodSeconds").is_none() {
            spec["terminationGracePeriodSeconds"] = json!(5);
        }
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": self.name},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap()
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh client on a fresh runtime: the test's client is bound to the test's runtime,
        // which this (blocking) drop would otherwise deadlock.
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = super::admin().await;
                let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
                // Graceful deletion first, so the agent under test cleans its runtime state.
                let _ = pods
                    .delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await;
                // Wait for the agent to terminate them, so no container outlives the test.
                let deadline = std::time::Instant::now() + Duration::from_secs(90);
                while std::time::Instant::now() < deadline {
                    match pods.list(&ListParams::default()).await {
                        Ok(l) if l.items.is_empty() => break,
                        Err(_) => break,
                        Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                let api: Api<Namespace> = Api::all(client);
                let _ = api.delete(&name, &DeleteParams::default()).await;
            });
        });
        let _ = t.join();
    }
}

/// Waits until `check(pod)` holds for the named pod; returns the pod.
pub async fn wait_pod(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    wait_for(&format!("pod {name}: {what}"), timeout, || async {
        let p = api.get_opt(name).await.ok().flatten()?;
        check(&p).then_some(p)
    })
    .await
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

pub fn container<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

pub fn init_container<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

pub fn waiting_reason(c: &ContainerStatus) -> Option<&str> {
    c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

pub fn running(c: &ContainerStatus) -> bool {
    c.state.as_ref().is_some_and(|s| s.running.is_some())
}

pub fn condition(p: &Pod, kind: &str) -> Option<String> {
    pod_condition(p, kind).map(|c| c.status.clone())
}

/// The pod's condition of type `kind`.
pub fn pod_condition<'a>(
    p: &'a Pod,
    kind: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// Events (core/v1 view) about an object in a namespace, as "Reason: message" lines.
pub async fn events(client: &kube::Client, ns: &str, name: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.reason.unwrap_or_default(),
                        e.note.unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until an event with `reason` exists for the object.
pub async fn wait_event(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> String {
    wait_for(&format!("event {reason} for {name}"), timeout, || async {
        events(client, ns, name)
            .await
            .into_iter()
            .find(|e| e.starts_with(&format!("{reason}: ")))
    })
    .await
}

/// A CRI client for the cluster's containerd.
pub async fn cri() -> cri_client::CriClient {
    cri_client::CriClient::connect(
        &super::env("CONTAINER_RUNTIME_ENDPOINT"),
        cri_client::ClientOptions::default(),
    )
    .await
    .unwrap()
}

/// The sandboxes containerd holds for a pod UID.
pub async fn sandboxes_of(uid: &str) -> Vec<cri_client::api::PodSandbox> {
    cri()
        .await
        .list_pod_sandbox(Some(cri_client::api::PodSandboxFilter {
            label_selector: [("io.kubernetes.pod.uid".to_string(), uid.to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        }))
        .await
        .unwrap()
}

/// Runs a command in a container named by its status containerID ("containerd://ID"); asserts
/// it succeeds and returns its stdout.
pub async fn exec_in(container_id: &str, cmd: &[&str]) -> String {
    let id = container_id.split("://").last().unwrap_or(container_id);
    let out = cri()
        .await
        .exec_sync(
            id,
            cmd.iter().map(|s| (*s).to_string()).collect(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        0,
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The usual start of a pod test: an agent of its own under `node`, Ready, and a namespace.
pub async fn setup(node: &str, ns: &str) -> (kube::Client, super::Agent, TestNamespace) {
    setup_with(node, ns, &[]).await
}

/// [`setup`] with extra flags for the agent.
pub async fn setup_with(
    node: &str,
    ns: &str,
    extra: &[&str],
) -> (kube::Client, super::Agent, TestNamespace) {
    let client = super::admin().await;
    let agent = super::Agent::start(node, extra);
    super::wait_ready(&client, node, "True", Duration::from_secs(90)).await;
    let ns = TestNamespace::create(&client, ns).await;
    (client, agent, ns)
}

/// `sh -c SCRIPT` as a container command.
pub fn sh(script: &str) -> Value {
    json!(["sh", "-c", script])
}

/// Waits (90 s) until the pod's Ready condition is True; returns the pod.
pub async fn ready(ns: &TestNamespace, name: &str) -> Pod {
    wait_pod(&ns.pods(), name, "Ready", Duration::from_secs(90), |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await
}

/// Stdout of `cmd` run in container `c` of the pod (CRI ExecSync).
pub async fn output(p: &Pod, c: &str, cmd: &[&str]) -> String {
    let id = container(p, c).unwrap().container_id.clone().unwrap();
    exec_in(&id, cmd).await
}
