//! Pod volumes end to end, checked from inside the containers: emptyDir (disk and memory),
//! configMap, secret, downwardAPI, projected (with a bound service-account token and the default
//! kube-api-access volume), hostPath, subPath; bad input as FailedMount events; a Secret update
//! swapped in atomically; an agent restart with volumes mounted; no mount left behind after
//! many pods; image volumes (the cluster's containerd 2 mounts them). Each test runs its own
//! agent against the real cluster. Serial.

use std::path::Path;
use std::time::Duration;

use crate::common::pods::{
    busybox, container, events, output, ready, running, setup_with, sh, wait_pod, waiting_reason,
};
use crate::common::{require_cluster, wait_for};
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

async fn create<K>(client: &kube::Client, ns: &str, v: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let obj: K = serde_json::from_value(v).unwrap();
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

/// Mount points in this (the host's) mount namespace below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn pod_uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap()
}

fn sleeper(mounts: Value) -> Value {
    let mut c = json!({"name": "c", "image": busybox(), "command": sh("trap 'exit 0' TERM; while true; do sleep 1; done"),
        "resources": {"limits": {"memory": "64Mi"}}});
    c["volumeMounts"] = mounts;
    c
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn every_volume_type_shows_its_content_inside_the_container() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup_with("mkl-vol-types", "mkl-vol-types", &[]).await;
    let n = ns.name.clone();
    let _: ConfigMap = create(
        &client,
        &n,
        json!({"metadata": {"name": "cfg"},
        "data": {"color": "blue", "size": "xl"}, "binaryData": {"bin": "AAEC"}}),
    )
    .await;
    let _: Secret = create(
        &client,
        &n,
        json!({"metadata": {"name": "creds"},
        "stringData": {"user": "admin", "pass": "s3cr3t"}}),
    )
    .await;
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("from-host"), "hello from the host").unwrap();
    let host_new = host_dir.path().join("made/by/agent");
    let p = ns
        .pod(
            "all",
            &agent.name,
            json!({
                "automountServiceAccountToken": true,
                "containers": [sleeper(json!([
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "mem", "mountPath": "/mem"},
                    {"name": "cfg", "mountPath": "/cfg"},
                    {"name": "cfg-items", "mountPath": "/cfg-items"},
                    {"name": "creds", "mountPath": "/creds", "readOnly": true},
                    {"name": "info", "mountPath": "/info"},
                    {"name": "all-in-one", "mountPath": "/proj"},
                    {"name": "host", "mountPath": "/host"},
                    {"name": "host-new", "mountPath": "/host-new"},
                    {"name": "cfg", "mountPath": "/color.txt", "subPath": "color"},
                    {"name": "scratch", "mountPath": "/sub", "subPath": "deep/dir"}
                ]))],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                    {"name": "cfg", "configMap": {"name": "cfg"}},
                    {"name": "cfg-items", "configMap": {"name": "cfg", "defaultMode": 0o600,
                        "items": [{"key": "size", "path": "nested/size"}, {"key": "color", "path": "c", "mode": 0o400}]}},
                    {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o440}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "mem_limit", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
                    {"name": "all-in-one", "projected": {"sources": [
                        {"configMap": {"name": "cfg", "items": [{"key": "color", "path": "color"}]}},
                        {"secret": {"name": "creds", "items": [{"key": "user", "path": "user"}]}},
                        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}}]}},
                    {"name": "host", "hostPath": {"path": host_dir.path(), "type": "Directory"}},
                    {"name": "host-new", "hostPath": {"path": host_new, "type": "DirectoryOrCreate"}}
                ]
            }),
        )
        .await;
    let _ = p;
    let p = ready(&ns, "all").await;
    let sh_out = |script: &str| {
        let p = p.clone();
        let script = script.to_string();
        async move { output(&p, "c", &["sh", "-c", &script]).await }
    };

    // emptyDir on disk, writable; memory emptyDir is a tmpfs of the requested size.
    assert_eq!(sh_out("echo x > /scratch/f && cat /scratch/f").await, "x\n");
    let mem = sh_out("grep ' /mem ' /proc/mounts").await;
    assert!(mem.starts_with("tmpfs /mem tmpfs"), "{mem}");
    assert!(mem.contains("size=16384k"), "{mem}");
    // configMap: every key, binary data, atomic-writer layout.
    assert_eq!(sh_out("cat /cfg/color /cfg/size").await, "bluexl");
    assert_eq!(
        sh_out("od -An -tx1 /cfg/bin | tr -d ' \\n'").await,
        "000102"
    );
    assert_eq!(sh_out("readlink /cfg/color").await, "..data/color\n");
    // items, paths and modes.
    assert_eq!(sh_out("cat /cfg-items/nested/size").await, "xl");
    assert_eq!(
        sh_out("stat -L -c %a /cfg-items/nested/size /cfg-items/c").await,
        "600\n400\n"
    );
    assert_eq!(sh_out("ls /cfg-items").await, "c\nnested\n");
    // secret: on a tmpfs, its mode, read-only.
    assert_eq!(sh_out("cat /creds/user /creds/pass").await, "admins3cr3t");
    assert_eq!(sh_out("stat -L -c %a /creds/pass").await, "440\n");
    assert!(
        sh_out("grep ' /creds ' /proc/mounts")
            .await
            .contains(" ro,")
    );
    let secret_dir = agent
        .dir
        .path()
        .join("root/pods")
        .join(pod_uid(&p))
        .join("volumes/kubernetes.io~secret/creds");
    assert!(
        mounts_under(&secret_dir).len() == 1,
        "the secret volume is one tmpfs on the host: {:?}",
        mounts_under(&secret_dir)
    );
    // downwardAPI.
    assert_eq!(sh_out("cat /info/name").await, "all");
    assert_eq!(sh_out("cat /info/mem_limit").await, "64");
    // projected: configMap + secret + downward + bound token with its audience.
    assert_eq!(
        sh_out("cat /proj/color /proj/user /proj/ns").await,
        format!("blueadmin{n}")
    );
    let token = sh_out("cat /proj/vault-token").await;
    let claims = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims.trim_end_matches('='))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], json!(["vault"]), "{claims}");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "all", "{claims}");
    let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((600..=700).contains(&life), "token lifetime {life}");
    // The default service-account volume: token, ca.crt, namespace; the token authenticates.
    let sa = "/var/run/secrets/kubernetes.io/serviceaccount";
    assert_eq!(sh_out(&format!("cat {sa}/namespace")).await, n);
    let root_ca: ConfigMap = Api::namespaced(client.clone(), &n)
        .get("kube-root-ca.crt")
        .await
        .unwrap();
    assert_eq!(
        sh_out(&format!("cat {sa}/ca.crt")).await,
        root_ca.data.unwrap()["ca.crt"]
    );
    let sa_token = sh_out(&format!("cat {sa}/token")).await;
    let review: TokenReview = serde_json::from_value(json!({"spec": {"token": sa_token}})).unwrap();
    let review = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let status = review.status.unwrap();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(
        status.user.unwrap().username.unwrap(),
        format!("system:serviceaccount:{n}:default")
    );
    // hostPath: the host's files; DirectoryOrCreate made the directory.
    assert_eq!(sh_out("cat /host/from-host").await, "hello from the host");
    sh_out("echo back > /host-new/f").await;
    assert_eq!(
        std::fs::read_to_string(host_new.join("f")).unwrap(),
        "back\n"
    );
    // subPath: a configMap key as a file, a directory made inside an emptyDir.
    assert_eq!(sh_out("cat /color.txt").await, "blue");
    sh_out("echo deep > /sub/g").await;
    assert_eq!(sh_out("cat /scratch/deep/dir/g").await, "deep\n");

    // Deleting the pod unmounts everything and removes its directory.
    let uid = pod_uid(&p);
    ns.pods()
        .delete("all", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("pod all gone", T, || async {
        ns.pods()
            .get_opt("all")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let pod_dir = agent.dir.path().join("root/pods").join(&uid);
    assert!(
        mounts_under(&pod_dir).is_empty(),
        "{:?}",
        mounts_under(&pod_dir)
    );
    assert!(!pod_dir.exists());
    assert!(
        host_dir.path().join("from-host").exists(),
        "hostPath content kept"
    );
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn bad_volumes_give_failed_mount_and_the_pod_waits() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup_with("mkl-vol-bad", "mkl-vol-bad", &[]).await;
    let n = ns.name.clone();
    let _: ConfigMap = create(
        &client,
        &n,
        json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}}),
    )
    .await;
    let mounts = json!([{"name": "v", "mountPath": "/v"}]);
    let cases = [
        (
            "missing-cm",
            json!({"configMap": {"name": "nope"}}),
            r#"MountVolume.SetUp failed for volume "v" : configmap "nope" not found"#,
        ),
        (
            "missing-secret",
            json!({"secret": {"secretName": "nope"}}),
            r#"MountVolume.SetUp failed for volume "v" : secret "nope" not found"#,
        ),
        (
            "missing-key",
            json!({"configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}}),
            r#"MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: zz"#,
        ),
        (
            "not-a-file",
            json!({"hostPath": {"path": "/tmp", "type": "File"}}),
            r#"MountVolume.SetUp failed for volume "v" : hostPath type check failed: /tmp is not a file"#,
        ),
        (
            "pvc",
            json!({"persistentVolumeClaim": {"claimName": "data"}}),
            // The rest is the CSI plugin's text (or, without one, that CSI is needed).
            r#"MountVolume.SetUp failed for volume "v" : "#,
        ),
    ];
    for (name, source, _) in &cases {
        let mut v = source.clone();
        v["name"] = json!("v");
        ns.pod(
            name,
            &agent.name,
            json!({"containers": [sleeper(mounts.clone())], "volumes": [v]}),
        )
        .await;
    }
    for (name, _, message) in &cases {
        // The first attempt may meet the Node authorizer before its graph has the new pod's
        // edges ("no relationship found between node ..."), as kubelet's would: the retry
        // gives the volume's own error.
        let want = format!("FailedMount: {message}");
        let e = wait_for(&format!("{name}: {want}"), T, || async {
            events(&client, &n, name)
                .await
                .into_iter()
                .find(|e| e.starts_with(&want))
        })
        .await;
        assert!(!e.is_empty());
        let p = wait_pod(&ns.pods(), name, "ContainerCreating", T, |p| {
            container(p, "c").and_then(waiting_reason) == Some("ContainerCreating")
        })
        .await;
        // Nothing half-made: no mount and no volume directory of the failed volume.
        let vols = agent
            .dir
            .path()
            .join("root/pods")
            .join(pod_uid(&p))
            .join("volumes");
        assert!(
            mounts_under(&vols).is_empty(),
            "{name}: {:?}",
            mounts_under(&vols)
        );
        let dirs: Vec<_> = walk(&vols);
        assert!(dirs.iter().all(|d| !d.ends_with("/v")), "{name}: {dirs:?}");
    }
    // The retries repeat one message: one event object whose series counts them, as kubelet
    // counts a repeated event on its first one.
    let events_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &n);
    let want = cases[0].2;
    let count = wait_for("missing-cm: one FailedMount counted twice", T, || async {
        let same: Vec<_> = events_api
            .list(&kube::api::ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("missing-cm")
                    && e.note.as_deref() == Some(want)
            })
            .collect();
        assert!(
            same.len() <= 1,
            "one object for one repeated event: {same:?}"
        );
        same.first()?
            .series
            .as_ref()
            .map(|s| s.count)
            .filter(|c| *c >= 2)
    })
    .await;
    assert!(count >= 2);
    // Optional objects and keys that are missing: the pod runs with what exists.
    ns.pod(
        "optional",
        &agent.name,
        json!({"containers": [sleeper(json!([
            {"name": "v", "mountPath": "/v"}, {"name": "w", "mountPath": "/w"}]))],
        "volumes": [{"name": "v", "configMap": {"name": "nope", "optional": true}},
            {"name": "w", "secret": {"secretName": "nope", "optional": true}}]}),
    )
    .await;
    let p = ready(&ns, "optional").await;
    assert_eq!(output(&p, "c", &["ls", "/v", "/w"]).await, "/v:\n\n/w:\n");
    // The missing ConfigMap appears: the waiting pod starts with it.
    let _: ConfigMap = create(
        &client,
        &n,
        json!({"metadata": {"name": "nope"}, "data": {"k": "late"}}),
    )
    .await;
    let p = ready(&ns, "missing-cm").await;
    assert_eq!(output(&p, "c", &["cat", "/v/k"]).await, "late");
    // A subPath that leaves the volume through a symlink is refused.
    ns.pod(
        "escape",
        &agent.name,
        json!({
        "initContainers": [{"name": "link", "image": busybox(), "command": sh("ln -s /etc /v/out"),
            "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
        "containers": [sleeper(json!([{"name": "v", "mountPath": "/x", "subPath": "out"}]))],
        "volumes": [{"name": "v", "emptyDir": {}}]}),
    )
    .await;
    let p = wait_pod(&ns.pods(), "escape", "CreateContainerConfigError", T, |p| {
        container(p, "c").and_then(waiting_reason) == Some("CreateContainerConfigError")
    })
    .await;
    let msg = container(&p, "c")
        .unwrap()
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert!(
        msg.starts_with(r#"failed to prepare subPath for volumeMount "v" of container "c""#),
        "{msg}"
    );
    assert!(msg.contains("not within volume path"), "{msg}");
    let evs = events(&client, &n, "escape").await;
    assert!(
        evs.iter().any(|e| e.contains("failed to prepare subPath")),
        "{evs:?}"
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path().display().to_string());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[tokio::test]
async fn a_secret_update_reaches_the_running_pod_atomically() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) =
        setup_with("mkl-vol-update", "mkl-vol-update", &["--sync-frequency=2s"]).await;
    let n = ns.name.clone();
    let big = |c: &str| c.repeat(300_000);
    let _: Secret = create(
        &client,
        &n,
        json!({"metadata": {"name": "s"},
        "stringData": {"blob": big("a"), "version": "1"}}),
    )
    .await;
    // The container hashes the secret over and over; a torn read would show a third hash.
    ns.pod("reader", &agent.name, json!({
        "containers": [sleeper(json!([{"name": "s", "mountPath": "/s"}, {"name": "log", "mountPath": "/log"}]))],
        "initContainers": [],
        "volumes": [{"name": "s", "secret": {"secretName": "s"}}, {"name": "log", "emptyDir": {}}]})).await;
    let p = ready(&ns, "reader").await;
    let id = container(&p, "c").unwrap().container_id.clone().unwrap();
    let cri_id = id.split("://").last().unwrap().to_string();
    let watcher = tokio::spawn(async move {
        let cri = crate::common::pods::cri().await;
        let script = "for i in $(seq 1 400); do md5sum /s/blob | cut -d' ' -f1 >> /log/sums; done";
        let _ = cri
            .exec_sync(
                &cri_id,
                vec!["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(120),
            )
            .await;
    });
    let before = output(&p, "c", &["readlink", "/s/..data"]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);
    let patch = json!({"stringData": {"blob": big("b"), "version": "2"}});
    secrets
        .patch("s", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for(
        "the new secret inside the pod",
        Duration::from_secs(60),
        || async { (output(&p, "c", &["cat", "/s/version"]).await == "2").then_some(()) },
    )
    .await;
    assert_eq!(
        output(&p, "c", &["sh", "-c", "tr -d b < /s/blob | wc -c"])
            .await
            .trim(),
        "0"
    );
    assert_ne!(
        output(&p, "c", &["readlink", "/s/..data"]).await,
        before,
        "a new ..data directory"
    );
    watcher.await.unwrap();
    let sums = output(&p, "c", &["sh", "-c", "sort -u /log/sums"]).await;
    let distinct: Vec<&str> = sums.lines().collect();
    assert!(
        !distinct.is_empty() && distinct.len() <= 2,
        "a reader saw a half-written secret: {distinct:?}"
    );
}

#[tokio::test]
async fn an_agent_restart_keeps_volumes_mounted_once_and_deletion_unmounts() {
    if !require_cluster() {
        return;
    }
    let (client, mut agent, ns) = setup_with(
        "mkl-vol-restart",
        "mkl-vol-restart",
        &["--sync-frequency=2s"],
    )
    .await;
    let n = ns.name.clone();
    let _: Secret = create(
        &client,
        &n,
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    ns.pod("p", &agent.name, json!({
        "metadata": {},
        "containers": [sleeper(json!([{"name": "s", "mountPath": "/s"}, {"name": "mem", "mountPath": "/mem"},
            {"name": "info", "mountPath": "/info"}, {"name": "mem", "mountPath": "/sub", "subPath": "d"}]))],
        "volumes": [{"name": "s", "secret": {"secretName": "s"}},
            {"name": "mem", "emptyDir": {"medium": "Memory"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]})).await;
    let p = ready(&ns, "p").await;
    output(&p, "c", &["sh", "-c", "echo kept > /mem/f"]).await;
    let pod_dir = agent.dir.path().join("root/pods").join(pod_uid(&p));
    let before = mounts_under(&pod_dir);
    assert_eq!(
        before.len(),
        4,
        "secret, memory emptyDir, downwardAPI tmpfs, subPath bind: {before:?}"
    );

    agent.signal_and_wait("TERM", Duration::from_secs(30));
    agent.restart(&["--sync-frequency=2s"]);
    // A label change after the restart shows in the downwardAPI volume: the new agent synced
    // the pod's volumes.
    let patch = json!({"metadata": {"labels": {"after": "restart"}}});
    ns.pods()
        .patch("p", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_for("the new label in the volume", T, || async {
        output(&p, "c", &["cat", "/info/labels"])
            .await
            .contains("after=\"restart\"")
            .then_some(())
    })
    .await;
    let after = mounts_under(&pod_dir);
    let mut sorted_before = before.clone();
    sorted_before.sort();
    let mut sorted_after = after.clone();
    sorted_after.sort();
    assert_eq!(
        sorted_after, sorted_before,
        "no volume mounted twice after the restart"
    );
    assert_eq!(output(&p, "c", &["cat", "/mem/f"]).await, "kept\n");

    ns.pods()
        .delete("p", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("pod p gone", T, || async {
        ns.pods()
            .get_opt("p")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        mounts_under(&pod_dir).is_empty(),
        "{:?}",
        mounts_under(&pod_dir)
    );
    assert!(!pod_dir.exists());
}

#[tokio::test]
async fn a_hundred_pod_cycles_leave_no_mount_behind() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup_with("mkl-vol-cycles", "mkl-vol-cycles", &[]).await;
    let n = ns.name.clone();
    let _: Secret = create(
        &client,
        &n,
        json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}),
    )
    .await;
    let root = agent.dir.path().join("root");
    let spec = || {
        json!({"containers": [sleeper(json!([{"name": "s", "mountPath": "/s"},
                {"name": "mem", "mountPath": "/mem"}, {"name": "s", "mountPath": "/k", "subPath": "k"}]))],
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "s", "secret": {"secretName": "s"}},
                {"name": "mem", "emptyDir": {"medium": "Memory"}}]})
    };
    let started = std::time::Instant::now();
    for batch in 0..10 {
        let names: Vec<String> = (0..10).map(|i| format!("p{batch}-{i}")).collect();
        for name in &names {
            ns.pod(name, &agent.name, spec()).await;
        }
        for name in &names {
            ready(&ns, name).await;
        }
        assert!(!mounts_under(&root).is_empty());
        for (i, name) in names.iter().enumerate() {
            // Half graceful (the agent tears down), half forced (the pod vanishes from the API).
            let dp = if i % 2 == 0 {
                DeleteParams::default()
            } else {
                DeleteParams::default().grace_period(0)
            };
            ns.pods().delete(name, &dp).await.unwrap();
        }
        for name in &names {
            wait_for(&format!("pod {name} gone"), T, || async {
                ns.pods()
                    .get_opt(name)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            })
            .await;
        }
    }
    wait_for("no mount left under the agent's root dir", T, || async {
        mounts_under(&root).is_empty().then_some(())
    })
    .await;
    wait_for("no pod directory left", T, || async {
        walk(&root.join("pods")).is_empty().then_some(())
    })
    .await;
    eprintln!("100 pod cycles in {:?}", started.elapsed());
}

/// A container that sleeps until it is stopped, named `name`, with `mounts`.
fn named_sleeper(name: &str, mounts: Value) -> Value {
    let mut c = sleeper(mounts);
    c["name"] = json!(name);
    c
}

/// The pod's own Pulled events (the containers' name their container), repeats counted, once
/// both containers' Started events are there: events go out in order, so every pull of that
/// sync is listed by then.
async fn volume_pulls(client: &kube::Client, ns: &str, pod: &str) -> i32 {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let about = |e: &k8s_openapi::api::events::v1::Event, reason: &str| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
            && e.reason.as_deref() == Some(reason)
    };
    let listed = wait_for("both containers' Started events", T, || async {
        let items = api.list(&ListParams::default()).await.ok()?.items;
        let started = items.iter().filter(|e| about(e, "Started")).count();
        (started == 2).then_some(items)
    })
    .await;
    listed
        .iter()
        .filter(|e| {
            about(e, "Pulled") && e.regarding.as_ref().is_some_and(|r| r.field_path.is_none())
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

#[tokio::test]
async fn an_image_volume_is_the_image_read_only_and_a_failed_pull_holds_back_only_its_containers() {
    if !require_cluster() {
        return;
    }
    let (client, agent, ns) = setup_with("mkl-vol-image", "mkl-vol-image", &[]).await;
    let registry = std::env::var("REGISTRY").unwrap();
    let tools =
        json!({"name": "tools", "image": {"reference": busybox(), "pullPolicy": "IfNotPresent"}});
    ns.pod(
        "img",
        &agent.name,
        json!({"containers": [sleeper(json!([{"name": "tools", "mountPath": "/tools"}])),
                              named_sleeper("d", json!([{"name": "tools", "mountPath": "/tools"}]))],
               "volumes": [tools]}),
    )
    .await;
    let p = ready(&ns, "img").await;
    // Mounted by both containers, the volume's image is pulled, and announced, once.
    assert_eq!(volume_pulls(&client, &ns.name, "img").await, 1);
    // The image's own files, mounted read-only by the runtime.
    let listed = output(&p, "c", &["ls", "/tools/bin/busybox"]).await;
    assert_eq!(listed, "/tools/bin/busybox\n");
    let mounts = output(&p, "c", &["cat", "/proc/mounts"]).await;
    let line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/tools"))
        .unwrap_or_else(|| panic!("no /tools mount in\n{mounts}"));
    let options = line.split(' ').nth(3).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "{line}");
    let write = output(
        &p,
        "c",
        &["sh", "-c", "touch /tools/x 2>&1 || echo refused"],
    )
    .await;
    assert!(write.contains("refused"), "{write}");

    // A volume whose image cannot be pulled: the container mounting it waits with the pull's
    // reason, the one that does not mount it runs.
    let gone = json!({"name": "gone", "image": {"reference": format!("{registry}/absent:1"), "pullPolicy": "IfNotPresent"}});
    ns.pod(
        "missing",
        &agent.name,
        json!({"containers": [named_sleeper("uses", json!([{"name": "gone", "mountPath": "/gone"}])),
                              named_sleeper("free", json!([]))],
               "volumes": [gone]}),
    )
    .await;
    let p = wait_pod(
        &ns.pods(),
        "missing",
        "uses waits on its image volume",
        T,
        |p| {
            let uses = container(p, "uses").and_then(waiting_reason);
            matches!(uses, Some("ErrImagePull" | "ImagePullBackOff"))
                && container(p, "free").is_some_and(running)
        },
    )
    .await;
    let message = container(&p, "uses")
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(message.contains("absent:1"), "{message}");
    let seen = events(&client, &ns.name, "missing").await;
    assert!(
        seen.iter()
            .any(|e| e.starts_with("Failed: Error: ") && e.contains("absent:1")),
        "{seen:?}"
    );

    // A subPath into an image volume is refused, never widened to the whole image.
    ns.pod(
        "sub",
        &agent.name,
        json!({"containers": [sleeper(json!([{"name": "tools", "mountPath": "/bin2", "subPath": "bin"}]))],
               "volumes": [tools]}),
    )
    .await;
    let p = wait_pod(&ns.pods(), "sub", "CreateContainerConfigError", T, |p| {
        container(p, "c").and_then(waiting_reason) == Some("CreateContainerConfigError")
    })
    .await;
    let message = container(&p, "c")
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("a subPath of an image volume"),
        "{message}"
    );
    drop(agent);
}
