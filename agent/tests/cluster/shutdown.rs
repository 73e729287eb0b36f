//! Graceful node shutdown end to end: the real cluster and containerd, the agent's real D-Bus
//! client, and a logind stand-in. This VM has no systemd, so the test runs a private
//! dbus-daemon (Debian's) and serves org.freedesktop.login1 on it from this process: the
//! Manager interface's Inhibit (a pipe's write end, so the test sees whether the agent holds
//! it), InhibitDelayMaxUSec, and PrepareForShutdown sent when the test says. The agent is
//! pointed at that bus by DBUS_SYSTEM_BUS_ADDRESS and configured with
//! shutdownGracePeriodByPodPriority. Then: a shutdown ends the low band's pod before the high
//! band's (Failed, Terminated, kubelet's message, DisruptionTarget), cuts a pod already being
//! deleted with a 600 s grace down to its band's 20 s, the Node is NotReady
//! "node is shutting down" with the Shutdown event, a new pod is refused NodeShutdown, the
//! inhibitor is released once the pods stopped and the state file records it; a cancellation
//! brings the node back with a new inhibitor.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::pods::{
    TestNamespace, busybox, container, events, pod_condition, ready, wait_pod,
};
use crate::common::{Agent, admin, require_cluster, wait_for, wait_ready};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(90);
const HIGH_CLASS: &str = "mkl-shutdown-test-high";

/// A private bus: Debian's dbus-daemon on a socket in a temporary directory.
struct PrivateBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    fn start() -> PrivateBus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon)");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(20), "no bus socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateBus {
            child,
            address: format!("unix:path={}", socket.display()),
            _dir: dir,
        }
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the stand-in was asked and holds.
#[derive(Default)]
struct Seen {
    inhibits: Vec<(String, String, String, String)>,
    /// The read ends of the inhibitors handed out.
    locks: Vec<OwnedFd>,
}

struct FakeLogind {
    delay_usec: u64,
    seen: Arc<Mutex<Seen>>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn inhibit(
        &self,
        what: String,
        who: String,
        why: String,
        mode: String,
    ) -> zbus::fdo::Result<zbus::zvariant::OwnedFd> {
        let (read, write) =
            rustix::pipe::pipe().map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        let mut seen = self.seen.lock().unwrap();
        seen.inhibits.push((what, who, why, mode));
        seen.locks.push(read);
        Ok(write.into())
    }

    #[zbus(property, name = "InhibitDelayMaxUSec")]
    fn inhibit_delay_max_usec(&self) -> u64 {
        self.delay_usec
    }
}

/// The stand-in on the private bus.
struct Logind {
    connection: zbus::Connection,
    seen: Arc<Mutex<Seen>>,
}

impl Logind {
    async fn serve(address: &str) -> Logind {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let connection = zbus::connection::Builder::address(address)
            .unwrap()
            .name("org.freedesktop.login1")
            .unwrap()
            .serve_at(
                "/org/freedesktop/login1",
                FakeLogind {
                    delay_usec: 120_000_000,
                    seen: seen.clone(),
                },
            )
            .unwrap()
            .build()
            .await
            .expect("the stand-in on the private bus");
        Logind { connection, seen }
    }

    /// How many inhibitors are held (their write end still open somewhere).
    fn held(&self) -> usize {
        use std::os::fd::AsFd;
        let seen = self.seen.lock().unwrap();
        seen.locks
            .iter()
            .filter(|fd| !minikubelet::shutdown::logind::released(fd.as_fd()))
            .count()
    }

    async fn wait_held(&self, n: usize) {
        wait_for(&format!("{n} inhibitor(s) held"), T, || async {
            (self.held() == n).then_some(())
        })
        .await;
    }

    async fn prepare_for_shutdown(&self, active: bool) {
        self.connection
            .emit_signal(
                None::<&str>,
                "/org/freedesktop/login1",
                "org.freedesktop.login1.Manager",
                "PrepareForShutdown",
                &(active,),
            )
            .await
            .unwrap();
    }
}

fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("kubelet-config.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         shutdownGracePeriodByPodPriority:\n\
         - priority: 0\n  shutdownGracePeriodSeconds: 20\n\
         - priority: 100000\n  shutdownGracePeriodSeconds: 10\n",
    )
    .unwrap();
    path
}

async fn priority_class(client: &kube::Client) -> Api<PriorityClass> {
    let api: Api<PriorityClass> = Api::all(client.clone());
    let _ = api.delete(HIGH_CLASS, &DeleteParams::default()).await;
    crate::common::wait_gone(&api, HIGH_CLASS, T).await;
    let pc: PriorityClass =
        serde_json::from_value(json!({"metadata": {"name": HIGH_CLASS}, "value": 100_000}))
            .unwrap();
    api.create(&PostParams::default(), &pc).await.unwrap();
    api
}

/// A container that takes `linger` seconds to exit after SIGTERM.
fn lingering(linger: u32, class: Option<&str>) -> serde_json::Value {
    let mut spec = json!({"containers": [{"name": "c", "image": busybox(),
        "command": ["sh", "-c",
            format!("trap 'sleep {linger}; exit 0' TERM; while true; do sleep 0.2; done")]}],
        "terminationGracePeriodSeconds": 30});
    if let Some(c) = class {
        spec["priorityClassName"] = json!(c);
    }
    spec
}

fn status_text(p: &Pod) -> (String, String) {
    let s = p.status.as_ref().unwrap();
    (
        s.reason.clone().unwrap_or_default(),
        s.message.clone().unwrap_or_default(),
    )
}

fn finished_at(p: &Pod) -> k8s_openapi::jiff::Timestamp {
    let c = container(p, "c").unwrap();
    let t = c.state.as_ref().unwrap().terminated.as_ref().unwrap();
    t.finished_at.as_ref().unwrap().0
}

/// The pods a shutdown ends: "low" (priority 0, 2 s to exit on SIGTERM), "high" (the
/// 100000 class) and "stubborn", being deleted with a 600 s grace while it ignores SIGTERM: the
/// shutdown shortens that to its band's (kubelet's killPodNow), so logind is not held for ten
/// minutes.
async fn start_pods(ns: &TestNamespace, node: &str) {
    ns.pod("low", node, lingering(2, None)).await;
    ns.pod("high", node, lingering(0, Some(HIGH_CLASS))).await;
    let mut stubborn = lingering(0, None);
    stubborn["containers"][0]["command"] =
        json!(["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]);
    stubborn["terminationGracePeriodSeconds"] = json!(600);
    ns.pod("stubborn", node, stubborn).await;
    for name in ["low", "high", "stubborn"] {
        ready(ns, name).await;
    }
    ns.pods()
        .delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
}

/// kubelet's status for a pod a node shutdown ended.
fn ended_by_shutdown(p: &Pod) {
    assert_eq!(
        status_text(p),
        (
            "Terminated".to_string(),
            "Pod was terminated in response to imminent node shutdown.".to_string()
        )
    );
    let d = pod_condition(p, "DisruptionTarget").expect("DisruptionTarget");
    assert_eq!(d.status, "True");
    assert_eq!(d.reason.as_deref(), Some("TerminationByKubelet"));
}

#[tokio::test]
async fn a_shutdown_ends_the_pods_by_priority_and_a_cancellation_brings_the_node_back() {
    if !require_cluster() {
        return;
    }
    let bus = PrivateBus::start();
    let logind = Logind::serve(&bus.address).await;
    let client = admin().await;
    let classes = priority_class(&client).await;
    let node = "shutdown-node";
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = config_file(conf_dir.path());
    let agent = Agent::start_with_env(
        node,
        &[&format!("--config={}", conf.display())],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)],
    );
    wait_ready(&client, node, "True", T).await;
    logind.wait_held(1).await;
    assert_eq!(
        logind.seen.lock().unwrap().inhibits[0],
        (
            "shutdown".to_string(),
            "kubelet".to_string(),
            "Kubelet needs time to handle node shutdown".to_string(),
            "delay".to_string()
        )
    );
    let ns = TestNamespace::create(&client, "shutdown").await;
    start_pods(&ns, node).await;

    let announced = Instant::now();
    logind.prepare_for_shutdown(true).await;
    let n = wait_ready(&client, node, "False", T).await;
    let r = crate::common::condition(&n, "Ready").unwrap();
    assert_eq!(r.reason.as_deref(), Some("KubeletNotReady"));
    assert_eq!(r.message.as_deref(), Some("node is shutting down"));
    let said = events(&client, "default", node).await;
    assert!(
        said.iter()
            .any(|e| e == "Shutdown: Shutdown manager detected shutdown event"),
        "{said:?}"
    );

    crate::common::wait_gone(&ns.pods(), "stubborn", Duration::from_secs(60)).await;
    println!(
        "PrepareForShutdown -> the stubborn pod (600 s grace) gone: {} ms",
        announced.elapsed().as_millis()
    );
    let ended = |p: &Pod| crate::common::pods::phase(p) == "Failed";
    let low = wait_pod(&ns.pods(), "low", "Failed", T, ended).await;
    let high = wait_pod(&ns.pods(), "high", "Failed", T, ended).await;
    println!(
        "PrepareForShutdown -> both bands' pods Failed: {} ms",
        announced.elapsed().as_millis()
    );
    ended_by_shutdown(&low);
    ended_by_shutdown(&high);
    assert!(
        finished_at(&high) >= finished_at(&low),
        "the high band is ended after the low band stopped: low {} high {}",
        finished_at(&low),
        finished_at(&high)
    );
    logind.wait_held(0).await;
    println!(
        "PrepareForShutdown -> inhibitor released: {} ms",
        announced.elapsed().as_millis()
    );
    let state = agent
        .dir
        .path()
        .join("root")
        .join("graceful_node_shutdown_state");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(
        !record["endTime"].as_str().unwrap().starts_with("0001"),
        "{record}"
    );

    // While the node is shutting down every pod is refused.
    ns.pod("late", node, lingering(0, None)).await;
    let late = wait_pod(&ns.pods(), "late", "refused", T, ended).await;
    assert_eq!(
        status_text(&late),
        (
            "NodeShutdown".to_string(),
            "Pod was rejected: Pod was rejected as the node is shutting down.".to_string()
        )
    );

    // A cancellation: Ready again, a new inhibitor, pods run again.
    logind.prepare_for_shutdown(false).await;
    wait_ready(&client, node, "True", T).await;
    logind.wait_held(1).await;
    ns.pod("after", node, lingering(0, None)).await;
    ready(&ns, "after").await;

    drop(agent);
    let _ = classes.delete(HIGH_CLASS, &DeleteParams::default()).await;
}
