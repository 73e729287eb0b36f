//! The CSINode object (one per node, one entry per registered driver) and the driver's topology
//! labels on the Node, as kubelet's nodeinfomanager keeps them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec, VolumeNodeResources};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::registry::Driver;

/// The CSINode entry for `driver`.
pub fn driver_entry(driver: &Driver) -> CSINodeDriver {
    let keys: Vec<String> = driver.topology.keys().cloned().collect();
    CSINodeDriver {
        name: driver.name.clone(),
        node_id: driver.node_id.clone(),
        topology_keys: (!keys.is_empty()).then_some(keys),
        allocatable: (driver.max_volumes > 0).then(|| VolumeNodeResources {
            count: i32::try_from(driver.max_volumes).ok(),
        }),
    }
}

/// `drivers` with `entry` put in place of any entry of the same name (None removes it).
pub fn with_driver(
    drivers: Option<Vec<CSINodeDriver>>,
    name: &str,
    entry: Option<CSINodeDriver>,
) -> Vec<CSINodeDriver> {
    let mut out: Vec<CSINodeDriver> = drivers
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d.name != name)
        .collect();
    out.extend(entry);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Makes sure the node's CSINode exists (with no drivers if none registered yet), as kubelet
/// creates it at start: a StorageClass's provisioner looks the node up there before any driver
/// registers. Err while the Node itself is not registered yet (the caller retries).
pub async fn ensure(client: &kube::Client, node: &str) -> Result<(), kube::Error> {
    let api: Api<CSINode> = Api::all(client.clone());
    if api.get_opt(node).await?.is_some() {
        return Ok(());
    }
    let owner = Api::<Node>::all(client.clone()).get(node).await?;
    let written = api
        .create(&PostParams::default(), &empty(node, owner.metadata.uid))
        .await;
    if conflict(&written) {
        return Ok(());
    }
    written.map(|_| ())
}

/// A CSINode for `node` without drivers, owned by the Node (uid `owner`).
fn empty(node: &str, owner: Option<String>) -> CSINode {
    CSINode {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: owner.unwrap_or_default(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: CSINodeSpec {
            drivers: Vec::new(),
        },
    }
}

/// Adds or replaces `name`'s entry in the node's CSINode (creating it, owned by the Node).
pub async fn set_driver(
    client: &kube::Client,
    node: &str,
    name: &str,
    entry: Option<CSINodeDriver>,
) -> Result<(), kube::Error> {
    let api: Api<CSINode> = Api::all(client.clone());
    for _ in 0..5 {
        match api.get_opt(node).await? {
            Some(mut existing) => {
                let drivers = with_driver(Some(existing.spec.drivers.clone()), name, entry.clone());
                if drivers == existing.spec.drivers {
                    return Ok(());
                }
                existing.spec.drivers = drivers;
                let written = api.replace(node, &PostParams::default(), &existing).await;
                if !conflict(&written) {
                    return written.map(|_| ());
                }
            }
            None if entry.is_none() => return Ok(()),
            None => {
                let owner = Api::<Node>::all(client.clone()).get(node).await?;
                let mut obj = empty(node, owner.metadata.uid);
                obj.spec.drivers = with_driver(None, name, entry.clone());
                let written = api.create(&PostParams::default(), &obj).await;
                if !conflict(&written) {
                    return written.map(|_| ());
                }
            }
        }
    }
    Ok(())
}

/// A 409: someone else wrote the object in between; read it again and retry.
fn conflict<T>(written: &Result<T, kube::Error>) -> bool {
    matches!(written, Err(kube::Error::Api(s)) if s.code == 409)
}

/// Puts the driver's topology segments on the Node as labels.
pub async fn label_node(
    client: &kube::Client,
    node: &str,
    topology: &BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    if topology.is_empty() {
        return Ok(());
    }
    let patch = serde_json::json!({ "metadata": { "labels": topology } });
    Api::<Node>::all(client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(name: &str, id: &str) -> CSINodeDriver {
        CSINodeDriver {
            name: name.into(),
            node_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_are_replaced_by_name_and_sorted() {
        let drivers = Some(vec![entry("b", "1"), entry("a", "1")]);
        let out = with_driver(drivers, "b", Some(entry("b", "2")));
        assert_eq!(out, vec![entry("a", "1"), entry("b", "2")]);
        assert_eq!(with_driver(Some(out), "a", None), vec![entry("b", "2")]);
    }
}
