//! Chain behaviour against fake plugins: small shell scripts written into a
//! tempdir that record their stdin, environment and calls, and print JSON.

// Helpers outside #[test] fns are test code too: a failed step should stop the test there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cni_invoker::{
    Attachment, AttachmentRequest, CapabilityArgs, CheckSkipped, CniCommand, CniError, Invoker,
    InvokerConfig, NetworkConfigList, PluginReadiness, PortMapping, Timeouts, load_conf_dir,
};
use serde_json::{Value, json};

/// A scratch node: plugin dir, conf dir, cache dir and a record of calls.
struct Node {
    _tmp: tempfile::TempDir,
    bin: PathBuf,
    conf: PathBuf,
    cache: PathBuf,
    record: PathBuf,
}

/// What a fake plugin does for each command (shell snippets).
struct Fake<'a> {
    name: &'a str,
    versions: &'a [&'a str],
    add: String,
    del: &'a str,
    check: &'a str,
    status: &'a str,
    gc: &'a str,
}

impl<'a> Fake<'a> {
    /// Supports `versions`; ADD prints a result with eth0 and `ip` at the
    /// requested version; everything else succeeds silently.
    fn new(name: &'a str, versions: &'a [&'a str]) -> Self {
        Self {
            name,
            versions,
            add: default_add("10.0.0.2/24"),
            del: "true",
            check: "true",
            status: "true",
            gc: "true",
        }
    }

    fn add(mut self, body: impl Into<String>) -> Self {
        self.add = body.into();
        self
    }
}

fn default_add(ip: &str) -> String {
    format!(
        r#"case "$ver" in 0.*) ipv='"version":"4",';; *) ipv='';; esac
echo "{{\"cniVersion\":\"$ver\",\"interfaces\":[{{\"name\":\"$CNI_IFNAME\",\"sandbox\":\"$CNI_NETNS\"}}],\"ips\":[{{$ipv\"address\":\"{ip}\",\"interface\":0}}]}}""#
    )
}

impl Node {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["bin", "conf", "cache", "record"] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        Self {
            bin: root.join("bin"),
            conf: root.join("conf"),
            cache: root.join("cache"),
            record: root.join("record"),
            _tmp: tmp,
        }
    }

    fn install(&self, fake: &Fake<'_>) {
        let versions = fake
            .versions
            .iter()
            .map(|v| format!("\\\"{v}\\\""))
            .collect::<Vec<_>>()
            .join(",");
        let script = format!(
            r#"#!/bin/sh
rec='{rec}'
input=$(cat)
ver=$(printf '%s' "$input" | grep -o '"cniVersion":"[^"]*"' | head -n 1 | cut -d '"' -f 4)
printf '%s' "$input" > "$rec/{name}.$CNI_COMMAND.stdin"
env > "$rec/{name}.$CNI_COMMAND.env"
echo "{name} $CNI_COMMAND" >> "$rec/calls.log"
case "$CNI_COMMAND" in
VERSION) echo "{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[{versions}]}}" ;;
ADD) {add} ;;
DEL) {del} ;;
CHECK) {check} ;;
STATUS) {status} ;;
GC) {gc} ;;
esac
"#,
            rec = self.record.display(),
            name = fake.name,
            add = fake.add,
            del = fake.del,
            check = fake.check,
            status = fake.status,
            gc = fake.gc,
        );
        let path = self.bin.join(fake.name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn write_conf(&self, file: &str, conf: &Value) {
        std::fs::write(
            self.conf.join(file),
            serde_json::to_vec_pretty(conf).unwrap(),
        )
        .unwrap();
    }

    fn config(&self) -> InvokerConfig {
        let mut c = InvokerConfig::new(&self.conf, vec![self.bin.clone()], &self.cache);
        c.timeouts = Timeouts::uniform(Duration::from_secs(10));
        c
    }

    fn invoker(&self) -> Invoker {
        Invoker::new(self.config())
    }

    /// Non-VERSION calls, as "plugin COMMAND", in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.record.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.ends_with(" VERSION"))
            .map(str::to_owned)
            .collect()
    }

    fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.record.join("calls.log"));
    }

    /// The stdin of the last `command` call of `plugin`, as JSON.
    fn stdin(&self, plugin: &str, command: &str) -> Value {
        let raw = std::fs::read(self.record.join(format!("{plugin}.{command}.stdin"))).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    /// The environment of the last `command` call of `plugin`.
    fn env(&self, plugin: &str, command: &str) -> HashMap<String, String> {
        std::fs::read_to_string(self.record.join(format!("{plugin}.{command}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

fn list(plugins: Value) -> NetworkConfigList {
    list_at("1.0.0", plugins)
}

fn list_at(version: &str, plugins: Value) -> NetworkConfigList {
    let mut conflist = json!({"cniVersion": version, "name": "testnet"});
    conflist["plugins"] = plugins;
    parse(&conflist)
}

fn parse(conflist: &Value) -> NetworkConfigList {
    NetworkConfigList::from_conflist_bytes(&serde_json::to_vec(conflist).unwrap(), None).unwrap()
}

fn request(netns: &Path) -> AttachmentRequest {
    AttachmentRequest::new("c0ffee", netns, "eth0")
        .with_cni_args([("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")])
}

/// A path that exists, standing in for a netns the fake plugins never open.
fn fake_netns(node: &Node) -> PathBuf {
    let p = node.record.join("netns");
    std::fs::write(&p, "").unwrap();
    p
}

#[tokio::test]
async fn add_chains_prev_result_and_caches_the_final_result() {
    let node = Node::new();
    node.install(&Fake::new("first", &["0.4.0", "1.0.0"]));
    node.install(&Fake::new("second", &["1.0.0"]).add(
        r#"echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/n"}],"ips":[{"address":"10.0.0.2/24","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.0.0.1"}],"dns":{"nameservers":["10.0.0.10"]}}'"#,
    ));
    let net = list(
        json!([{"type":"first","name":"ignored","cniVersion":"9.9.9"},{"type":"second","x":1}]),
    );
    let netns = fake_netns(&node);
    let out = node.invoker().add(&net, &request(&netns)).await.unwrap();

    assert_eq!(node.calls(), vec!["first ADD", "second ADD"]);
    let first_in = node.stdin("first", "ADD");
    assert_eq!(first_in["name"], "testnet");
    assert_eq!(first_in["cniVersion"], "1.0.0");
    assert!(first_in.get("prevResult").is_none());
    let second_in = node.stdin("second", "ADD");
    assert_eq!(second_in["x"], 1);
    assert_eq!(
        second_in["prevResult"],
        json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":netns.to_str().unwrap()}],
               "ips":[{"address":"10.0.0.2/24","interface":0}],"dns":{}})
    );

    let env = node.env("first", "ADD");
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "c0ffee");
    assert_eq!(env["CNI_NETNS"], netns.to_str().unwrap());
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=web");
    assert_eq!(env["CNI_PATH"], node.bin.to_str().unwrap());

    // The final result is the last plugin's, in the 1.x struct.
    assert_eq!(out.result.routes.len(), 1);
    assert_eq!(out.result.dns.nameservers, vec!["10.0.0.10"]);
    assert_eq!(
        out.result.ips_of("eth0")[0].address.to_string(),
        "10.0.0.2/24"
    );
    assert_eq!(
        out.timings
            .iter()
            .map(|t| t.plugin.as_str())
            .collect::<Vec<_>>(),
        vec!["first", "second"]
    );
    let cached = node
        .invoker()
        .cache()
        .read("testnet", &Attachment::new("c0ffee", "eth0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.result().unwrap(), out.result);
    assert!(node.cache.join("results/testnet-c0ffee-eth0").is_file());
}

#[tokio::test]
async fn plugin_error_json_becomes_a_plugin_error() {
    let node = Node::new();
    node.install(&Fake::new("failing", &["1.0.0"]).add(
        r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"subnet too small"}'; exit 1"#,
    ));
    let err = node
        .invoker()
        .add(
            &list(json!([{"type":"failing"}])),
            &request(&fake_netns(&node)),
        )
        .await
        .unwrap_err();
    match &err {
        CniError::Plugin {
            plugin,
            code,
            msg,
            details,
        } => {
            assert_eq!(plugin, "failing");
            assert_eq!(*code, 7);
            assert_eq!(msg, "invalid config");
            assert_eq!(details.as_deref(), Some("subnet too small"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        r#"CNI plugin "failing" failed: invalid config (code 7): subnet too small"#
    );
    assert!(node.invoker().cache().list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn garbage_output_becomes_invalid_output() {
    let node = Node::new();
    node.install(&Fake::new("crashing", &["1.0.0"]).add("echo 'panic: runtime error'; exit 2"));
    node.install(&Fake::new("chatty", &["1.0.0"]).add("echo 'all good!'"));
    let netns = fake_netns(&node);
    match node
        .invoker()
        .add(&list(json!([{"type":"crashing"}])), &request(&netns))
        .await
        .unwrap_err()
    {
        CniError::InvalidOutput {
            plugin,
            output,
            exit_status,
        } => {
            assert_eq!(plugin, "crashing");
            assert_eq!(output, "panic: runtime error");
            assert_eq!(exit_status.code(), Some(2));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Success with something that is not a result is as bad.
    match node
        .invoker()
        .add(&list(json!([{"type":"chatty"}])), &request(&netns))
        .await
        .unwrap_err()
    {
        CniError::InvalidOutput { exit_status, .. } => assert!(exit_status.success()),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_without_the_list_version_is_refused_before_any_add() {
    let node = Node::new();
    node.install(&Fake::new("modern", &["0.3.1", "0.4.0", "1.0.0"]));
    node.install(&Fake::new("old", &["0.3.0", "0.3.1"]));
    let err = node
        .invoker()
        .add(
            &list(json!([{"type":"modern"},{"type":"old"}])),
            &request(&fake_netns(&node)),
        )
        .await
        .unwrap_err();
    match &err {
        CniError::UnsupportedVersion {
            plugin,
            requested,
            supported,
        } => {
            assert_eq!(plugin, "old");
            assert_eq!(requested, "1.0.0");
            assert_eq!(supported, &vec!["0.3.0".to_owned(), "0.3.1".to_owned()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("does not support cniVersion 1.0.0")
    );
    assert!(
        node.calls().is_empty(),
        "no ADD may run: {:?}",
        node.calls()
    );
}

#[tokio::test]
async fn a_0_4_0_list_runs_and_its_result_is_converted() {
    let node = Node::new();
    node.install(&Fake::new("legacy", &["0.3.0", "0.3.1", "0.4.0"]));
    let net = list_at("0.4.0", json!([{"type":"legacy"}]));
    let inv = node.invoker();
    let out = inv.add(&net, &request(&fake_netns(&node))).await.unwrap();
    assert_eq!(node.stdin("legacy", "ADD")["cniVersion"], "0.4.0");
    assert_eq!(out.cni_version.to_string(), "0.4.0");
    assert_eq!(out.result.ips[0].address.to_string(), "10.0.0.2/24");
    // The cache keeps the result at the chain's version, for DEL/CHECK prevResult.
    let cached = inv
        .cache()
        .read("testnet", &Attachment::new("c0ffee", "eth0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached.result["ips"][0]["version"], "4");
    inv.check(&net, &request(&fake_netns(&node))).await.unwrap();
    assert_eq!(
        node.stdin("legacy", "CHECK")["prevResult"]["ips"][0]["version"],
        "4"
    );
}

#[tokio::test]
async fn cni_versions_pick_the_highest_version_all_plugins_share() {
    let node = Node::new();
    node.install(&Fake::new("a", &["1.0.0", "1.1.0"]));
    node.install(&Fake::new("b", &["0.4.0", "1.0.0"]));
    let net = parse(&json!({
        "cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"testnet",
        "plugins":[{"type":"a"},{"type":"b"}]}));
    let out = node
        .invoker()
        .add(&net, &request(&fake_netns(&node)))
        .await
        .unwrap();
    assert_eq!(out.cni_version.to_string(), "1.0.0");
    assert_eq!(node.stdin("a", "ADD")["cniVersion"], "1.0.0");
}

#[tokio::test]
async fn a_hanging_plugin_is_killed_at_its_timeout() {
    let node = Node::new();
    node.install(&Fake::new("hang", &["1.0.0"]).add(format!(
        "sleep 30 & echo $! > '{}/sleep.pid'; wait",
        node.record.display()
    )));
    let mut config = node.config();
    config.timeouts.add = Duration::from_millis(500);
    let started = Instant::now();
    let err = Invoker::new(config)
        .add(
            &list(json!([{"type":"hang"}])),
            &request(&fake_netns(&node)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, CniError::Timeout { ref plugin, command: CniCommand::Add, timeout } if plugin == "hang" && timeout == Duration::from_millis(500)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = std::fs::read_to_string(node.record.join("sleep.pid")).unwrap();
    assert!(gone(pid.trim()).await, "the plugin's child survived");
}

async fn gone(pid: &str) -> bool {
    for _ in 0..50 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

#[tokio::test]
async fn a_missing_binary_names_the_type_and_dirs() {
    let node = Node::new();
    node.install(&Fake::new("present", &["1.0.0"]));
    let err = node
        .invoker()
        .add(
            &list(json!([{"type":"present"},{"type":"absent"}])),
            &request(&fake_netns(&node)),
        )
        .await
        .unwrap_err();
    match &err {
        CniError::MissingPlugin { plugin, dirs } => {
            assert_eq!(plugin, "absent");
            assert_eq!(dirs, &vec![node.bin.clone()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(node.bin.to_str().unwrap()));
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn del_after_a_failed_add_reaches_every_plugin_in_reverse() {
    let node = Node::new();
    node.install(&Fake::new("ok", &["1.0.0"]));
    node.install(
        &Fake::new("bad", &["1.0.0"]).add(r#"echo '{"code":11,"msg":"try again"}'; exit 1"#),
    );
    let net = list(json!([{"type":"ok"},{"type":"bad"}]));
    let req = request(&fake_netns(&node));
    let inv = node.invoker();
    let err = inv.add(&net, &req).await.unwrap_err();
    assert_eq!(err.plugin_code(), Some(11));
    node.clear_calls();

    let out = inv.del(&net, &req).await.unwrap();
    assert!(!out.used_cache);
    assert_eq!(node.calls(), vec!["bad DEL", "ok DEL"]);
    assert!(node.stdin("ok", "DEL").get("prevResult").is_none());
    assert_eq!(
        node.env("ok", "DEL")["CNI_ARGS"],
        "IgnoreUnknown=1;K8S_POD_NAME=web"
    );
}

#[tokio::test]
async fn del_passes_an_empty_netns_once_the_netns_is_gone() {
    let node = Node::new();
    node.install(&Fake::new("p", &["1.0.0"]));
    let net = list(json!([{"type":"p"}]));
    let netns = fake_netns(&node);
    let req = request(&netns);
    let inv = node.invoker();
    let added = inv.add(&net, &req).await.unwrap();
    std::fs::remove_file(&netns).unwrap();

    let out = inv.del(&net, &req).await.unwrap();
    assert!(out.used_cache);
    assert_eq!(out.timings.len(), 1);
    let env = node.env("p", "DEL");
    assert_eq!(env["CNI_NETNS"], "");
    assert_eq!(env["CNI_CONTAINERID"], "c0ffee");
    assert_eq!(
        node.stdin("p", "DEL")["prevResult"],
        added.result.to_json(added.cni_version)
    );
    assert!(inv.cache().list(None).await.unwrap().is_empty());
    // A second DEL (no cache any more) is fine too.
    inv.del(&net, &req).await.unwrap();
}

#[tokio::test]
async fn after_a_restart_del_and_check_use_the_cached_add_config() {
    let node = Node::new();
    node.install(&Fake::new("bridge", &["1.0.0"]));
    node.install(&Fake::new("portmap", &["1.0.0"]));
    let conf = |marker: &str| {
        json!({"cniVersion":"1.0.0","name":"testnet","plugins":[
            {"type":"bridge","marker":marker},
            {"type":"portmap","capabilities":{"portMappings":true}}]})
    };
    node.write_conf("10-test.conflist", &conf("v1"));
    let netns = fake_netns(&node);
    let mappings = [PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: None,
    }];
    let req =
        request(&netns).with_capability_args(CapabilityArgs::new().with_port_mappings(&mappings));
    {
        let first = node.invoker();
        let net = first.load_network().await.unwrap();
        first.add(&net, &req).await.unwrap();
    }

    // The agent restarts; meanwhile the conf dir changed.
    node.write_conf("10-test.conflist", &conf("v2"));
    let second = node.invoker();
    let net = second.load_network().await.unwrap();
    assert_eq!(net.plugins()[0].raw()["marker"], "v2");

    let bare = request(&netns); // the caller no longer knows the port mappings
    second.check(&net, &bare).await.unwrap();
    assert_eq!(node.stdin("bridge", "CHECK")["marker"], "v1");
    assert_eq!(
        node.stdin("portmap", "CHECK")["prevResult"]["ips"][0]["address"],
        "10.0.0.2/24"
    );

    let out = second.del(&net, &bare).await.unwrap();
    assert!(out.used_cache);
    assert_eq!(node.stdin("bridge", "DEL")["marker"], "v1");
    assert_eq!(
        node.stdin("portmap", "DEL")["runtimeConfig"],
        json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]})
    );
    assert!(second.cache().list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn runtime_config_reaches_only_plugins_declaring_the_capability() {
    let node = Node::new();
    node.install(&Fake::new("portmap", &["1.0.0"]));
    node.install(&Fake::new("tuning", &["1.0.0"]));
    node.install(&Fake::new("plain", &["1.0.0"]));
    let net = list(json!([
        {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}},
        {"type":"tuning","capabilities":{"mac":true,"io.example/custom":true}},
        {"type":"plain"}]));
    let args = CapabilityArgs::new()
        .with_port_mappings(&[PortMapping {
            host_port: 8443,
            container_port: 443,
            protocol: "tcp".into(),
            host_ip: Some("127.0.0.1".into()),
        }])
        .with_bandwidth(cni_invoker::Bandwidth {
            ingress_rate: 1000,
            ingress_burst: 100,
            egress_rate: 1000,
            egress_burst: 100,
        })
        .with_mac("c2:11:22:33:44:55")
        .with("io.example/custom", json!({"k":"v"}));
    node.invoker()
        .add(
            &net,
            &request(&fake_netns(&node)).with_capability_args(args),
        )
        .await
        .unwrap();
    let portmap = node.stdin("portmap", "ADD");
    assert_eq!(
        portmap["runtimeConfig"],
        json!({"portMappings":[{"hostPort":8443,"containerPort":443,"protocol":"tcp","hostIP":"127.0.0.1"}]})
    );
    assert!(portmap.get("capabilities").is_none());
    assert_eq!(
        node.stdin("tuning", "ADD")["runtimeConfig"],
        json!({"mac":"c2:11:22:33:44:55","io.example/custom":{"k":"v"}})
    );
    assert!(node.stdin("plain", "ADD").get("runtimeConfig").is_none());
}

#[tokio::test]
async fn conf_dir_uses_the_first_config_file_in_lexical_order() {
    let node = Node::new();
    let single = |name: &str| json!({"cniVersion":"1.0.0","name":name,"type":"bridge"});
    std::fs::write(node.conf.join("00-notes.txt"), "ignored").unwrap();
    std::fs::create_dir(node.conf.join("05-dir.conflist")).unwrap();
    node.write_conf(
        "30-c.conflist",
        &json!({"cniVersion":"1.0.0","name":"c","plugins":[{"type":"x"}]}),
    );
    node.write_conf("20-b.conf", &single("b"));
    node.write_conf("10-a.json", &single("a"));
    let net = load_conf_dir(&node.conf).await.unwrap();
    assert_eq!(net.name(), "a");
    assert_eq!(net.plugins()[0].plugin_type(), "bridge");
    assert_eq!(net.source(), Some(node.conf.join("10-a.json").as_path()));

    std::fs::remove_file(node.conf.join("10-a.json")).unwrap();
    assert_eq!(load_conf_dir(&node.conf).await.unwrap().name(), "b");
    std::fs::remove_file(node.conf.join("20-b.conf")).unwrap();
    assert_eq!(load_conf_dir(&node.conf).await.unwrap().name(), "c");
    std::fs::remove_file(node.conf.join("30-c.conflist")).unwrap();
    assert!(matches!(
        load_conf_dir(&node.conf).await,
        Err(CniError::NoConfig { .. })
    ));
}

#[tokio::test]
async fn a_malformed_conflist_is_an_error_naming_the_file() {
    let node = Node::new();
    std::fs::write(
        node.conf.join("10-broken.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"#,
    )
    .unwrap();
    node.write_conf(
        "20-fine.conflist",
        &json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}),
    );
    let err = load_conf_dir(&node.conf).await.unwrap_err();
    let path = node.conf.join("10-broken.conflist");
    assert!(
        matches!(&err, CniError::Config { file, .. } if *file == path.display().to_string()),
        "{err:?}"
    );
    assert!(err.to_string().starts_with(&format!(
        "invalid CNI config {}: malformed JSON",
        path.display()
    )));

    std::fs::write(
        node.conf.join("10-broken.conflist"),
        r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"cni0"}]}"#,
    )
    .unwrap();
    let err = load_conf_dir(&node.conf).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("10-broken.conflist: plugins[0]: missing type"),
        "{err}"
    );
}

#[tokio::test]
async fn check_needs_an_add_and_honours_disable_check() {
    let node = Node::new();
    node.install(&Fake::new("p", &["1.0.0"]));
    let inv = node.invoker();
    let req = request(&fake_netns(&node));
    let net = list(json!([{"type":"p"}]));
    assert!(matches!(
        inv.check(&net, &req).await,
        Err(CniError::NotAdded { .. })
    ));

    inv.add(&net, &req).await.unwrap();
    let out = inv.check(&net, &req).await.unwrap();
    assert_eq!(out.skipped, None);
    assert_eq!(node.env("p", "CHECK")["CNI_COMMAND"], "CHECK");

    node.clear_calls();
    let disabled = parse(
        &json!({"cniVersion":"1.0.0","name":"testnet","disableCheck":true,"plugins":[{"type":"p"}]}),
    );
    let out = inv.check(&disabled, &req).await.unwrap();
    assert_eq!(out.skipped, Some(CheckSkipped::Disabled));
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn status_asks_1_1_plugins_and_assumes_older_ones_ready() {
    let node = Node::new();
    node.install(&Fake::new("old", &["1.0.0"]));
    node.install(&Fake::new("new", &["1.0.0", "1.1.0"]));
    let net = parse(
        &json!({"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"testnet",
        "plugins":[{"type":"old"},{"type":"new"}]}),
    );
    let statuses = node.invoker().status(&net).await.unwrap();
    assert_eq!(statuses[0].readiness, PluginReadiness::AssumedReady);
    assert_eq!(statuses[1].readiness, PluginReadiness::Ready);
    assert_eq!(node.calls(), vec!["new STATUS"]);
    assert_eq!(node.stdin("new", "STATUS")["cniVersion"], "1.1.0");
    assert_eq!(node.env("new", "STATUS").get("CNI_CONTAINERID"), None);

    let mut down = Fake::new("new", &["1.1.0"]);
    down.status = r#"echo '{"cniVersion":"1.1.0","code":50,"msg":"daemon unreachable"}'; exit 1"#;
    node.install(&down);
    node.install(&Fake::new("old", &["1.1.0"]));
    let err = node
        .invoker()
        .status(&list_at("1.1.0", json!([{"type":"old"},{"type":"new"}])))
        .await
        .unwrap_err();
    assert_eq!(err.plugin_code(), Some(50));
}

#[tokio::test]
async fn gc_sends_valid_attachments_and_prunes_stale_cache_entries() {
    let node = Node::new();
    node.install(&Fake::new("ipam11", &["1.0.0", "1.1.0"]));
    node.install(&Fake::new("old", &["1.0.0"]));
    let net = parse(&json!({
        "cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"testnet",
        "plugins":[{"type":"old"},{"type":"ipam11"}]}));
    let inv = node.invoker();
    let netns = fake_netns(&node);
    for id in ["keep", "stale"] {
        inv.add(&net, &AttachmentRequest::new(id, &netns, "eth0"))
            .await
            .unwrap();
    }
    let valid = [Attachment::new("keep", "eth0")];
    let stale = inv.stale_attachments("testnet", &valid).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].container_id, "stale");
    assert_eq!(stale[0].request().netns, netns);
    node.clear_calls();

    let out = inv.gc(&net, &valid).await.unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.plugins_collected, vec!["ipam11"]);
    assert_eq!(out.plugins_skipped, vec!["old"]);
    assert_eq!(
        out.removed_from_cache,
        vec![Attachment::new("stale", "eth0")]
    );
    assert_eq!(node.calls(), vec!["ipam11 GC"]);
    let gc_in = node.stdin("ipam11", "GC");
    assert_eq!(gc_in["cniVersion"], "1.1.0");
    assert_eq!(
        gc_in["cni.dev/valid-attachments"],
        json!([{"containerID":"keep","ifname":"eth0"}])
    );
    assert!(gc_in.get("runtimeConfig").is_none());
    let left = inv.cache().list(Some("testnet")).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|e| e.container_id.as_str())
            .collect::<Vec<_>>(),
        vec!["keep"]
    );

    // disableGC: no plugin is sent GC.
    node.clear_calls();
    let disabled = parse(&{
        let mut v = net.to_json();
        v["disableGC"] = json!(true);
        v
    });
    let out = inv.gc(&disabled, &valid).await.unwrap();
    assert!(out.plugins_collected.is_empty());
    assert!(node.calls().is_empty());
}

#[tokio::test]
async fn stale_attachments_can_be_deleted_from_the_cache_alone() {
    let node = Node::new();
    node.install(&Fake::new("p", &["1.0.0"]));
    let inv = node.invoker();
    let netns = fake_netns(&node);
    let net = list(json!([{"type":"p","marker":"added"}]));
    inv.add(&net, &request(&netns)).await.unwrap();
    for entry in inv.stale_attachments("testnet", &[]).await.unwrap() {
        let out = inv.del_cached(&entry).await.unwrap();
        assert!(out.used_cache);
    }
    assert_eq!(node.stdin("p", "DEL")["marker"], "added");
    assert_eq!(node.env("p", "DEL")["CNI_NETNS"], netns.to_str().unwrap());
    assert!(inv.cache().list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_observer_sees_every_execution() {
    let node = Node::new();
    node.install(&Fake::new("a", &["1.0.0"]));
    node.install(&Fake::new("b", &["1.0.0"]).add(r#"echo '{"code":5,"msg":"io"}'; exit 1"#));
    let seen: Arc<Mutex<Vec<(CniCommand, String, bool)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let inv = node.invoker().with_observer(Arc::new(
        move |command: CniCommand, plugin: &str, _elapsed: Duration, error: Option<&CniError>| {
            sink.lock()
                .unwrap()
                .push((command, plugin.to_owned(), error.is_some()));
        },
    ));
    let _ = inv
        .add(
            &list(json!([{"type":"a"},{"type":"b"}])),
            &request(&fake_netns(&node)),
        )
        .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (CniCommand::Version, "a".to_owned(), false),
            (CniCommand::Version, "b".to_owned(), false),
            (CniCommand::Add, "a".to_owned(), false),
            (CniCommand::Add, "b".to_owned(), true),
        ]
    );
}
