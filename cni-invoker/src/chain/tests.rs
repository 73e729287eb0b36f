//! Chain logic against a recording [`PluginExec`] double: no processes,
//! exact requests.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::{
    AttachmentRequest, CniCommand, CniError, ExecOutput, ExecRequest, Invoker, InvokerConfig,
    NetworkConfigList, PluginExec,
};

/// Records every request; answers VERSION with every version and the other
/// commands with the scripted reply (default: success with an empty result
/// for ADD, empty output otherwise).
#[derive(Default)]
struct RecordingExec {
    calls: Mutex<Vec<ExecRequest>>,
    replies: HashMap<(&'static str, CniCommand), (i32, String)>,
}

impl RecordingExec {
    fn reply(
        mut self,
        plugin: &'static str,
        command: CniCommand,
        code: i32,
        stdout: &Value,
    ) -> Self {
        self.replies
            .insert((plugin, command), (code, stdout.to_string()));
        self
    }

    fn calls(&self) -> Vec<ExecRequest> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.command != CniCommand::Version)
            .cloned()
            .collect()
    }
}

impl PluginExec for RecordingExec {
    fn find(&self, plugin_type: &str, _bin_dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
        Ok(PathBuf::from("/fake/bin").join(plugin_type))
    }

    async fn run(&self, request: ExecRequest) -> Result<ExecOutput, CniError> {
        self.calls.lock().unwrap().push(request.clone());
        let (code, stdout) = if request.command == CniCommand::Version {
            (
                0,
                r#"{"supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#.to_owned(),
            )
        } else {
            let default = if request.command == CniCommand::Add {
                "{}"
            } else {
                ""
            };
            self.replies
                .get(&(request.plugin.as_str(), request.command))
                .cloned()
                .unwrap_or_else(|| (0, default.to_owned()))
        };
        Ok(ExecOutput {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        })
    }
}

fn invoker(exec: RecordingExec, cache: &std::path::Path) -> Invoker<RecordingExec> {
    Invoker::with_exec(
        InvokerConfig::new(
            "/nonexistent",
            vec!["/fake/bin".into(), "/more/bin".into()],
            cache,
        ),
        exec,
    )
}

fn network(version: &str) -> NetworkConfigList {
    NetworkConfigList::from_value(
        json!({"cniVersion": version, "name": "net", "plugins": [{"type": "a"}, {"type": "b"}]}),
        None,
    )
    .unwrap()
}

fn stdin(request: &ExecRequest) -> Value {
    serde_json::from_slice(&request.stdin).unwrap()
}

#[tokio::test]
async fn add_passes_exactly_the_cni_environment() {
    let cache = tempfile::tempdir().unwrap();
    let exec = RecordingExec::default().reply(
        "b",
        CniCommand::Add,
        0,
        &json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.9/24"}]}),
    );
    let inv = invoker(exec, cache.path());
    let request =
        AttachmentRequest::new("ctr1", "/run/netns/ns1", "eth0").with_cni_args([("A", "1")]);
    inv.add(&network("1.0.0"), &request).await.unwrap();
    let calls = inv.exec.calls();
    assert_eq!(calls.len(), 2);
    let env = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        calls[0].env,
        vec![
            env("CNI_COMMAND", "ADD"),
            env("CNI_PATH", "/fake/bin:/more/bin"),
            env("CNI_CONTAINERID", "ctr1"),
            env("CNI_NETNS", "/run/netns/ns1"),
            env("CNI_IFNAME", "eth0"),
            env("CNI_ARGS", "A=1"),
        ]
    );
    assert_eq!(calls[0].timeout, inv.config().timeouts.add);
    assert_eq!(calls[1].path, PathBuf::from("/fake/bin/b"));
}

#[tokio::test]
async fn a_result_in_another_version_is_converted_for_the_next_plugin() {
    let cache = tempfile::tempdir().unwrap();
    // `a` answers a 0.4.0 chain in the 1.0.0 shape (no `version` per IP).
    let exec = RecordingExec::default()
        .reply(
            "a",
            CniCommand::Add,
            0,
            &json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/n"}],
                   "ips":[{"address":"10.0.0.9/24","interface":0}]}),
        )
        .reply(
            "b",
            CniCommand::Add,
            0,
            &json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.9/24"}]}),
        );
    let inv = invoker(exec, cache.path());
    inv.add(
        &network("0.4.0"),
        &AttachmentRequest::new("ctr1", "/n", "eth0"),
    )
    .await
    .unwrap();
    let prev = &stdin(&inv.exec.calls()[1])["prevResult"];
    assert_eq!(prev["cniVersion"], "0.4.0");
    assert_eq!(prev["ips"][0]["version"], "4");
}

#[tokio::test]
async fn check_stops_at_the_first_failing_plugin() {
    let cache = tempfile::tempdir().unwrap();
    let exec = RecordingExec::default()
        .reply("b", CniCommand::Add, 0, &json!({"cniVersion":"1.0.0"}))
        .reply(
            "a",
            CniCommand::Check,
            1,
            &json!({"code":100,"msg":"eth0 is gone"}),
        );
    let inv = invoker(exec, cache.path());
    let request = AttachmentRequest::new("ctr1", "/n", "eth0");
    let net = network("1.0.0");
    inv.add(&net, &request).await.unwrap();
    let err = inv.check(&net, &request).await.unwrap_err();
    assert_eq!(err.plugin_code(), Some(100));
    let checks: Vec<String> = inv
        .exec
        .calls()
        .iter()
        .filter(|c| c.command == CniCommand::Check)
        .map(|c| c.plugin.clone())
        .collect();
    assert_eq!(checks, vec!["a"]);
}
