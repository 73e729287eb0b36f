//! ADD, CHECK and DEL with Debian's real plugins (bridge + host-local +
//! portmap from /usr/lib/cni) in a network namespace made for the test.
//!
//! Runs only as root with `MKL_CNI_IT=1`; otherwise it prints why it is
//! skipped. It creates the netns `mkl-cni-it-<random>` and the bridge
//! `mklit0` (10.250.0.0/24, no default route, no masquerading, no port
//! mappings so no iptables rules), and removes both afterwards, even when an
//! assertion fails. The bridge plugin turns on IPv4 forwarding; the previous
//! value is restored unless other veths on the host show that pods of
//! another network (e.g. a dev cluster's) may rely on it (the bridge plugin
//! turns it on again at their next ADD anyway).

// Helpers outside #[test] fns are test code too: a failed step should stop the test there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use cni_invoker::{AttachmentRequest, CapabilityArgs, Invoker, InvokerConfig};
use serde_json::json;

const BRIDGE: &str = "mklit0";
const PLUGIN_DIR: &str = "/usr/lib/cni";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

fn enabled() -> Result<(), String> {
    if std::env::var("MKL_CNI_IT").as_deref() != Ok("1") {
        return Err("set MKL_CNI_IT=1 to run it".into());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("it must run as root".into());
    }
    for plugin in ["bridge", "host-local", "portmap"] {
        if !Path::new(PLUGIN_DIR).join(plugin).exists() {
            return Err(format!("{PLUGIN_DIR}/{plugin} is not installed"));
        }
    }
    Ok(())
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().unwrap()
}

/// Removes what the test created, on success and on panic alike.
struct Cleanup {
    netns: String,
    ip_forward: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.netns]);
        if ip(&["link", "show", BRIDGE]).status.success() {
            let _ = ip(&["link", "del", BRIDGE]);
        }
        let others = ip(&["-o", "link", "show", "type", "veth"]).stdout;
        match &self.ip_forward {
            Some(value) if others.is_empty() => {
                let _ = std::fs::write(IP_FORWARD, value);
            }
            Some(value) => eprintln!(
                "leaving {IP_FORWARD} on (was {}): other veths exist on this host",
                value.trim()
            ),
            None => {}
        }
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// host-local keeps one file per reserved IP under `DATA_DIR/NETWORK/`.
fn reserved(data_dir: &Path, network: &str, addr: &str) -> bool {
    data_dir.join(network).join(addr).exists()
}

#[tokio::test]
async fn bridge_host_local_portmap_add_check_del_in_a_real_netns() {
    if let Err(why) = enabled() {
        eprintln!("skipping the real-plugin integration test: {why}");
        return;
    }
    let suffix = unique_suffix();
    let netns = format!("mkl-cni-it-{suffix}");
    if ip(&["link", "show", BRIDGE]).status.success() {
        eprintln!("removing {BRIDGE} left over by an earlier run");
        let _ = ip(&["link", "del", BRIDGE]);
    }
    let _cleanup = Cleanup {
        netns: netns.clone(),
        ip_forward: std::fs::read_to_string(IP_FORWARD).ok(),
    };
    assert!(
        ip(&["netns", "add", &netns]).status.success(),
        "ip netns add failed"
    );
    let netns_path = PathBuf::from("/run/netns").join(&netns);

    let tmp = tempfile::tempdir().unwrap();
    let (conf, cache, data_dir) = (
        tmp.path().join("conf"),
        tmp.path().join("cache"),
        tmp.path().join("ipam"),
    );
    std::fs::create_dir(&conf).unwrap();
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "mkl-it",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": false, "ipMasq": false,
             "ipam": {"type": "host-local", "subnet": "10.250.0.0/24", "dataDir": data_dir}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    std::fs::write(conf.join("10-mkl-it.conflist"), conflist.to_string()).unwrap();
    let invoker = Invoker::new(InvokerConfig::new(&conf, vec![PLUGIN_DIR.into()], &cache));
    let network = invoker.load_network().await.unwrap();

    // ADD: eth0 in the netns gets an address of the subnet.
    let request = AttachmentRequest::new(format!("mklit{suffix}"), &netns_path, "eth0")
        .with_cni_args([
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", "default"),
            ("K8S_POD_NAME", "it"),
        ])
        .with_capability_args(CapabilityArgs::new().with_port_mappings(&[]));
    let added = invoker.add(&network, &request).await.unwrap();
    eprintln!("ADD timings: {:?}", added.timings);
    let ips = added.result.ips_of("eth0");
    assert_eq!(ips.len(), 1, "{:?}", added.result);
    let addr = ips[0].address.addr.to_string();
    assert!(addr.starts_with("10.250.0."), "{addr}");
    let shown = ip(&["netns", "exec", &netns, "ip", "-4", "addr", "show", "eth0"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&addr),
        "eth0 lacks {addr}"
    );
    assert!(reserved(&data_dir, "mkl-it", &addr));

    // CHECK with the cached result.
    let checked = invoker.check(&network, &request).await.unwrap();
    assert_eq!(checked.skipped, None);

    // DEL releases the address and the cache entry.
    let deleted = invoker.del(&network, &request).await.unwrap();
    eprintln!("DEL timings: {:?}", deleted.timings);
    assert!(deleted.used_cache);
    assert!(
        !reserved(&data_dir, "mkl-it", &addr),
        "host-local still holds {addr}"
    );
    assert!(invoker.cache().list(None).await.unwrap().is_empty());

    // DEL after the netns is gone still releases the address.
    let second = AttachmentRequest::new(format!("mklit{suffix}b"), &netns_path, "eth0")
        .with_cni_args([("IgnoreUnknown", "1")]);
    let added = invoker.add(&network, &second).await.unwrap();
    let addr = added.result.ips_of("eth0")[0].address.addr.to_string();
    assert!(reserved(&data_dir, "mkl-it", &addr));
    assert!(ip(&["netns", "del", &netns]).status.success());
    invoker.del(&network, &second).await.unwrap();
    assert!(
        !reserved(&data_dir, "mkl-it", &addr),
        "host-local still holds {addr}"
    );
}
