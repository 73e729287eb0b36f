//! Pod networking through the minikubelet-cni delegate, against the real cluster, containerd
//! and the real plugins (bridge, host-local, portmap, bandwidth): each test runs its own agent(s)
//! under their own node names. Serial (`--test-threads=1`).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::pods::{TestNamespace, busybox, condition, events, exec_in, sh, wait_pod};
use crate::common::{Agent, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);

fn ipam_dir() -> PathBuf {
    PathBuf::from(crate::common::env("MKL_STATE_DIR")).join("cni/ipam/mkl-pods")
}

/// The IPs host-local holds (its store: one file per reserved address).
fn reserved_ips() -> HashSet<String> {
    std::fs::read_dir(ipam_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

fn cache_files(agent: &Agent) -> usize {
    let dir = agent.dir.path().join("root/cni/cache/results");
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

async fn pod_cidr(client: &kube::Client, node: &str) -> String {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for("node podCIDR", T, || async {
        nodes.get(node).await.ok()?.spec?.pod_cidr
    })
    .await
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let net: u32 = net.parse::<Ipv4Addr>().unwrap().into();
    let ip: u32 = ip.parse::<Ipv4Addr>().unwrap().into();
    let mask = u32::MAX << (32 - len.parse::<u32>().unwrap());
    ip & mask == net & mask
}

async fn running_pod(ns: &TestNamespace, name: &str) -> Pod {
    wait_pod(&ns.pods(), name, "Ready", T, |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await
}

fn ip_of(p: &Pod) -> String {
    p.status.as_ref().unwrap().pod_ip.clone().unwrap()
}

fn container_id(p: &Pod) -> String {
    p.status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0]
        .container_id
        .clone()
        .unwrap()
}

async fn delete_and_wait(ns: &TestNamespace, name: &str) {
    let pods = ns.pods();
    pods.delete(name, &DeleteParams::default()).await.unwrap();
    wait_for(&format!("pod {name} gone"), T, || async {
        pods.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// A raw HTTP GET on 127.0.0.1:port; the body.
fn http_get_localhost(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

const HTTPD: &str = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test]
async fn pods_on_two_nodes_reach_each_other_by_pod_ip_and_a_host_port_from_the_node() {
    if !require_cluster() {
        return;
    }
    let (client, a, ns) = crate::common::pods::setup("mkl-net-a", "mkl-net-reach").await;
    let b = Agent::start("mkl-net-b", &[]);
    wait_ready(&client, &b.name, "True", T).await;
    let host_port = crate::common::free_port();
    ns.pod(
        "server",
        &a.name,
        json!({"containers": [{"name": "httpd", "image": busybox(), "command": sh(HTTPD),
            "ports": [{"containerPort": 8080, "hostPort": host_port}]}]}),
    )
    .await;
    ns.pod(
        "client",
        &b.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let server = running_pod(&ns, "server").await;
    let client_pod = running_pod(&ns, "client").await;
    let (server_ip, client_ip) = (ip_of(&server), ip_of(&client_pod));
    assert!(
        in_cidr(&server_ip, &pod_cidr(&client, &a.name).await),
        "{server_ip}"
    );
    assert!(
        in_cidr(&client_ip, &pod_cidr(&client, &b.name).await),
        "{client_ip}"
    );
    let st = server.status.as_ref().unwrap();
    assert_eq!(st.pod_ips.as_ref().unwrap()[0].ip, server_ip);

    let url = format!("http://{server_ip}:8080/");
    let body = exec_in(&container_id(&client_pod), &["wget", "-qO-", &url]).await;
    assert_eq!(body.trim(), "hello-from-server");
    // No default route inside a pod: only the cluster CIDR, on the bridge.
    let routes = exec_in(&container_id(&client_pod), &["ip", "route"]).await;
    assert!(!routes.contains("default"), "{routes}");

    // The bandwidth annotations reach the bandwidth plugin through runtimeConfig: a tbf qdisc
    // limits the pod's host-side veth, and the cached ADD carries the rate.
    let shaped: Pod = serde_json::from_value(json!({
        "metadata": {"name": "shaped", "namespace": ns.name,
            "annotations": {"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "20M"}},
        "spec": {"nodeName": a.name, "automountServiceAccountToken": false, "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]},
    }))
    .unwrap();
    ns.pods()
        .create(&PostParams::default(), &shaped)
        .await
        .unwrap();
    running_pod(&ns, "shaped").await;
    let results = a.dir.path().join("root/cni/cache/results");
    let cached: String = std::fs::read_dir(&results)
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(
        cached.to_lowercase().contains("ingressrate\":10000000"),
        "{cached}"
    );
    let tc = std::process::Command::new("tc")
        .args(["qdisc", "show"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tc.stdout).contains("tbf"),
        "a tbf qdisc"
    );

    // hostNetwork pods skip CNI and report the host IP.
    ns.pod(
        "hostnet",
        &a.name,
        json!({"hostNetwork": true, "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    assert_eq!(ip_of(&running_pod(&ns, "hostnet").await), "127.0.0.1");

    let got = wait_for("hostPort answers on 127.0.0.1", T, || async {
        http_get_localhost(host_port).filter(|b| b.contains("hello-from-server"))
    })
    .await;
    assert!(got.starts_with("HTTP/1."), "{got}");
    drop(b);
    drop(a);
}

#[tokio::test]
async fn deleting_a_pod_releases_its_ip_also_after_an_agent_restart() {
    if !require_cluster() {
        return;
    }
    let (client, mut agent, ns) =
        crate::common::pods::setup("mkl-net-release", "mkl-net-release").await;
    let spec = json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]});
    ns.pod("one", &agent.name, spec.clone()).await;
    let ip = ip_of(&running_pod(&ns, "one").await);
    assert!(reserved_ips().contains(&ip), "host-local holds {ip}");
    assert_eq!(cache_files(&agent), 1);
    delete_and_wait(&ns, "one").await;
    wait_for("IP released", T, || async {
        (!reserved_ips().contains(&ip)).then_some(())
    })
    .await;
    assert_eq!(cache_files(&agent), 0);

    ns.pod("two", &agent.name, spec).await;
    let ip = ip_of(&running_pod(&ns, "two").await);
    assert!(reserved_ips().contains(&ip));
    agent.signal_and_wait("TERM", T);
    ns.pods()
        .delete("two", &DeleteParams::default())
        .await
        .unwrap();
    agent.restart(&[]);
    wait_ready(&client, &agent.name, "True", T).await;
    wait_for("pod two gone", T, || async {
        ns.pods().get_opt("two").await.ok()?.is_none().then_some(())
    })
    .await;
    wait_for("IP released after restart", T, || async {
        (!reserved_ips().contains(&ip)).then_some(())
    })
    .await;
    assert_eq!(cache_files(&agent), 0);
}

#[tokio::test]
async fn a_pod_of_a_gone_agent_still_releases_its_ip() {
    if !require_cluster() {
        return;
    }
    let (_client, mut agent, ns) =
        crate::common::pods::setup("mkl-net-orphan", "mkl-net-orphan").await;
    ns.pod(
        "p",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let p = running_pod(&ns, "p").await;
    let ip = ip_of(&p);
    let uid = p.metadata.uid.clone().unwrap();
    agent.signal_and_wait("KILL", T);
    // The sandbox is removed behind the agent's back: the delegate finds no agent at the
    // pod's route and falls back to the default agent with the dead agent's cache.
    let cri = crate::common::pods::cri().await;
    for s in crate::common::pods::sandboxes_of(&uid).await {
        cri.stop_pod_sandbox(&s.id).await.unwrap();
        cri.remove_pod_sandbox(&s.id).await.unwrap();
    }
    assert!(
        !reserved_ips().contains(&ip),
        "IP {ip} released by the fallback DEL"
    );
    assert_eq!(
        cache_files(&agent),
        0,
        "the dead agent's cache entry is gone too"
    );
    let _ = ns
        .pods()
        .delete(
            "p",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await;
}

#[tokio::test]
async fn a_restarted_agent_collects_the_network_of_sandboxes_removed_while_it_was_down() {
    if !require_cluster() {
        return;
    }
    let (client, mut agent, ns) = crate::common::pods::setup("mkl-net-gc", "mkl-net-gc").await;
    ns.pod(
        "p",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let p = running_pod(&ns, "p").await;
    let ip = ip_of(&p);
    let uid = p.metadata.uid.clone().unwrap();
    agent.signal_and_wait("KILL", T);
    // Without a route the delegate sends the DEL to the default agent, which has no cached
    // result for it: host-local still releases by container id, the gone agent's cache stays.
    std::fs::remove_file(format!("/run/minikubelet/cni/routes/{uid}")).unwrap();
    let cri = crate::common::pods::cri().await;
    for s in crate::common::pods::sandboxes_of(&uid).await {
        cri.stop_pod_sandbox(&s.id).await.unwrap();
        cri.remove_pod_sandbox(&s.id).await.unwrap();
    }
    assert!(!reserved_ips().contains(&ip));
    assert_eq!(cache_files(&agent), 1, "the entry waits for the agent's GC");
    // Entries younger than a minute are spared (their sandbox may be starting): age it.
    let results = agent.dir.path().join("root/cni/cache/results");
    for f in std::fs::read_dir(&results).unwrap() {
        let st = std::process::Command::new("touch")
            .args(["-d", "-5 min"])
            .arg(f.unwrap().path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    ns.pods()
        .delete(
            "p",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    agent.restart(&[]);
    wait_ready(&client, &agent.name, "True", T).await;
    wait_for("GC at start removed the stale cache entry", T, || async {
        (cache_files(&agent) == 0).then_some(())
    })
    .await;
    assert!(
        agent
            .log()
            .contains("released the network of a gone sandbox")
    );
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    write(path, body);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

async fn ready_message(client: &kube::Client, node: &str, status: &str) -> String {
    let n = wait_ready(client, node, status, T).await;
    crate::common::condition(&n, "Ready")
        .unwrap()
        .message
        .unwrap_or_default()
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story against the cluster, read top to bottom
async fn a_broken_chain_turns_the_node_not_ready_or_fails_the_sandbox_with_the_plugins_message() {
    if !require_cluster() {
        return;
    }
    let client = crate::common::admin().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("net.d");
    let bin = dir.path().join("bin");
    let conflist = conf.join("10-test.conflist");
    write(&conflist, "{ this is not json");
    let args = [
        format!("--cni-conf-dir={}", conf.display()),
        format!("--cni-bin-dir={},/usr/lib/cni", bin.display()),
        "--pod-cidr=10.244.250.0/24".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::start("mkl-net-broken", &args);
    let msg = ready_message(&client, &agent.name, "False").await;
    assert!(
        msg.contains("NetworkReady=false reason:NetworkPluginNotReady")
            && msg.contains("invalid CNI config"),
        "{msg}"
    );

    let chain = |plugin: &str| {
        format!(r#"{{"cniVersion":"1.0.0","name":"broken","plugins":[{{"type":"{plugin}"}}]}}"#)
    };
    write(&conflist, &chain("no-such-plugin"));
    let msg = wait_for("NotReady naming the missing plugin", T, || async {
        let m = ready_message(&client, &agent.name, "False").await;
        m.contains("no-such-plugin").then_some(m)
    })
    .await;
    assert!(msg.contains("not found"), "{msg}");

    // A plugin that answers VERSION but prints garbage and exits 3 on ADD: the node is Ready,
    // the sandbox fails with the plugin's output in the pod's events.
    script(
        &bin.join("garbage"),
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = VERSION ]; then echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}'; exit 0; fi\n\
         if [ \"$CNI_COMMAND\" = DEL ]; then exit 0; fi\necho 'garbage-output-xyz'; exit 3\n",
    );
    write(&conflist, &chain("garbage"));
    wait_ready(&client, &agent.name, "True", T).await;
    let ns = TestNamespace::create(&client, "mkl-net-broken").await;
    let p = ns
        .pod(
            "victim",
            &agent.name,
            json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
        )
        .await;
    let ev = wait_for(
        "FailedCreatePodSandBox with the plugin output",
        T,
        || async {
            events(&client, &ns.name, "victim")
                .await
                .into_iter()
                .find(|e| {
                    e.starts_with("FailedCreatePodSandBox") && e.contains("garbage-output-xyz")
                })
        },
    )
    .await;
    assert!(ev.contains("invalid output"), "{ev}");
    let uid = p.metadata.uid.unwrap();
    assert!(
        crate::common::pods::sandboxes_of(&uid).await.is_empty(),
        "no sandbox left behind by the failed setup"
    );
    // A plugin that hangs on ADD is killed at the invoker's deadline (30 s), with its children.
    script(
        &bin.join("hang"),
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = VERSION ]; then echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}'; exit 0; fi\n\
         if [ \"$CNI_COMMAND\" = DEL ]; then exit 0; fi\nsleep 3599\n",
    );
    write(&conflist, &chain("hang"));
    ns.pod(
        "stuck",
        &agent.name,
        json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}),
    )
    .await;
    let ev = wait_for("FailedCreatePodSandBox naming the timeout", T, || async {
        events(&client, &ns.name, "stuck")
            .await
            .into_iter()
            .find(|e| e.starts_with("FailedCreatePodSandBox") && e.contains("timed out"))
    })
    .await;
    assert!(ev.contains("\"hang\""), "{ev}");
    // The agent retries the sandbox, so a younger `sleep` may run; none outlives its deadline.
    let ps = std::process::Command::new("ps")
        .args(["-eo", "etimes=,args="])
        .output()
        .unwrap();
    let old: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains("sleep 3599"))
        .filter(|l| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0)
                > 40
        })
        .map(str::to_string)
        .collect();
    assert!(
        old.is_empty(),
        "hanging plugins outlived their deadline: {old:?}"
    );
    // Other pods are unaffected: a healthy agent still runs pods meanwhile.
    let (_c, good, good_ns) =
        crate::common::pods::setup("mkl-net-healthy", "mkl-net-healthy").await;
    good_ns
        .pod("fine", &good.name, json!({"containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]}))
        .await;
    running_pod(&good_ns, "fine").await;
    drop(ns);
    drop(good_ns);
}

fn netns_names() -> HashSet<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn veths_on_bridge() -> usize {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", "mkl0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test]
async fn many_create_delete_cycles_leak_nothing() {
    const BATCH: usize = 10;
    if !require_cluster() {
        return;
    }
    let cycles: usize = std::env::var("MKL_NET_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (client, agent, ns) = crate::common::pods::setup("mkl-net-cycles", "mkl-net-cycles").await;
    let cidr = pod_cidr(&client, &agent.name).await;
    let ours = |ips: &HashSet<String>| ips.iter().filter(|ip| in_cidr(ip, &cidr)).count();
    assert_eq!(ours(&reserved_ips()), 0);
    let spec = json!({"terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": busybox(), "command": sh("exec sleep 3600")}]});
    // What exists before the cycles (other tests' leftovers included) is the baseline.
    let netns_before = netns_names()
        .into_iter()
        .filter(|n| n.starts_with("cni-"))
        .count();
    let veths_before = veths_on_bridge();
    let mut done = 0;
    while done < cycles {
        let n = BATCH.min(cycles - done);
        for i in 0..n {
            ns.pod(&format!("p{}", done + i), &agent.name, spec.clone())
                .await;
        }
        for i in 0..n {
            running_pod(&ns, &format!("p{}", done + i)).await;
        }
        for i in 0..n {
            ns.pods()
                .delete(&format!("p{}", done + i), &DeleteParams::default())
                .await
                .unwrap();
        }
        for i in 0..n {
            let name = format!("p{}", done + i);
            wait_for(&format!("pod {name} gone"), T, || async {
                ns.pods().get_opt(&name).await.ok()?.is_none().then_some(())
            })
            .await;
        }
        done += n;
    }
    wait_for("no IP of this node reserved", T, || async {
        (ours(&reserved_ips()) == 0).then_some(())
    })
    .await;
    // The last DEL may still be removing its cache entry after host-local released the IP.
    wait_for("no cached CNI results left", T, || async {
        (cache_files(&agent) == 0).then_some(())
    })
    .await;
    // The cycles add no netns and no veth: the counts come back to the baseline (compared
    // until they agree, as a DEL may still be finishing; a leak never does).
    wait_for("netns and veths back to the baseline", T, || async {
        let netns = netns_names()
            .into_iter()
            .filter(|n| n.starts_with("cni-"))
            .count();
        let veths = veths_on_bridge();
        eprintln!(
            "{netns} cni netns (before {netns_before}), {veths} veths (before {veths_before})"
        );
        (netns <= netns_before && veths <= veths_before).then_some(())
    })
    .await;
    let _ = client;
}
