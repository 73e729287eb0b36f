//! The Node object as the agent registers it, and the status it reports. Pure functions of the
//! node's settings and observations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeRuntimeHandler,
    NodeRuntimeHandlerFeatures, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::capacity::Resources;
use super::machine::MachineInfo;
use crate::config;

/// The version the agent reports as kubeletVersion: the Kubernetes API level it implements, with
/// minikubelet's own version as build metadata (semver ignores it in comparisons).
pub fn kubelet_version() -> String {
    format!("v1.35.0+minikubelet.{}", env!("CARGO_PKG_VERSION"))
}

/// Settings that shape the registered Node.
pub struct Identity<'a> {
    pub name: &'a str,
    pub node_ip: IpAddr,
    pub port: u16,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [config::Taint],
    pub machine: &'a MachineInfo,
}

/// The labels kubelet puts on its Node, plus the user's --node-labels.
pub fn labels(id: &Identity<'_>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), id.name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "kubernetes.io/arch".to_string(),
            id.machine.architecture.clone(),
        ),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        (
            "beta.kubernetes.io/arch".to_string(),
            id.machine.architecture.clone(),
        ),
    ]);
    labels.extend(id.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}

/// Annotations kubelet sets at registration.
pub fn annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
            "true".to_string(),
        ),
        ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
    ])
}

fn taints(id: &Identity<'_>) -> Vec<Taint> {
    id.taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect()
}

/// The status fields the agent owns.
/// `status.runtimeHandlers`, as kubelet reports them: each handler the runtime names, with
/// both features spelled out.
pub fn runtime_handlers(handlers: &[crate::runtime::RuntimeHandler]) -> Vec<NodeRuntimeHandler> {
    handlers
        .iter()
        .map(|h| NodeRuntimeHandler {
            name: Some(h.name.clone()),
            features: Some(NodeRuntimeHandlerFeatures {
                recursive_read_only_mounts: Some(h.recursive_read_only_mounts),
                user_namespaces: Some(h.user_namespaces),
            }),
        })
        .collect()
}

pub fn status(
    id: &Identity<'_>,
    resources: &Resources,
    conditions: Vec<NodeCondition>,
    runtime_version: &str,
) -> NodeStatus {
    let m = id.machine;
    NodeStatus {
        capacity: Some(resources.capacity.clone()),
        allocatable: Some(resources.allocatable.clone()),
        conditions: Some(conditions),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: id.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: id.name.to_string(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(id.port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: m.machine_id.clone(),
            system_uuid: m.system_uuid.clone(),
            boot_id: m.boot_id.clone(),
            kernel_version: m.kernel_version.clone(),
            os_image: m.os_image.clone(),
            container_runtime_version: runtime_version.to_string(),
            kubelet_version: kubelet_version(),
            kube_proxy_version: String::new(),
            operating_system: "linux".to_string(),
            architecture: m.architecture.clone(),
            swap: None,
        }),
        ..NodeStatus::default()
    }
}

/// The Node object to create at registration.
pub fn node(id: &Identity<'_>, status: NodeStatus) -> Node {
    let taints = taints(id);
    Node {
        metadata: ObjectMeta {
            name: Some(id.name.to_string()),
            labels: Some(labels(id)),
            annotations: Some(annotations()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then_some(taints),
            ..NodeSpec::default()
        }),
        status: Some(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registered_node_carries_kubelets_labels_taints_and_endpoints() {
        let machine = MachineInfo {
            architecture: "amd64".into(),
            ..MachineInfo::default()
        };
        let user_labels = BTreeMap::from([("tier".to_string(), "gold".to_string())]);
        let taints = vec![config::Taint {
            key: "dedicated".into(),
            value: Some("x".into()),
            effect: "NoSchedule".into(),
        }];
        let id = Identity {
            name: "n1",
            node_ip: "127.0.0.1".parse().unwrap(),
            port: 10250,
            labels: &user_labels,
            taints: &taints,
            machine: &machine,
        };
        let resources = Resources {
            capacity: BTreeMap::new(),
            allocatable: BTreeMap::new(),
        };
        let n = node(&id, status(&id, &resources, vec![], "containerd://1.6.20"));
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels["tier"], "gold");
        assert_eq!(n.spec.unwrap().taints.unwrap()[0].effect, "NoSchedule");
        let st = n.status.unwrap();
        assert_eq!(
            st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
            10250
        );
        let addrs = st.addresses.unwrap();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "127.0.0.1");
        let info = st.node_info.unwrap();
        assert_eq!(info.container_runtime_version, "containerd://1.6.20");
        assert!(info.kubelet_version.starts_with("v1.35.0+minikubelet."));
    }
}
