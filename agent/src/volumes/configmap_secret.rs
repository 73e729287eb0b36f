//! configMap and secret volumes: the object fetched through the API, then its keys (all, or
//! the listed items) turned into a payload with modes, as kubelet's configmap and secret
//! plugins do. An optional object that is missing gives an empty volume; an optional volume
//! skips missing keys.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath, Secret};
use kube::Api;

use super::atomic_writer::{FileProjection, Payload};
use super::plugin::MountError;

/// kubelet's (and the API's) default file mode, 0644.
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(m: Option<i32>, default: i32) -> u32 {
    u32::try_from(m.unwrap_or(default)).unwrap_or(0o644) & 0o777
}

/// The files for `data`, all keys or the listed items; `missing` names a missing key's error.
fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing: impl Fn(&str) -> MountError,
) -> Result<Payload, MountError> {
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data {
                out.insert(
                    k.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(v) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing(&item.key));
                };
                out.insert(
                    item.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode(item.mode, default_mode),
                    },
                );
            }
        }
    }
    Ok(out)
}

/// A ConfigMap's data and binaryData as bytes.
fn configmap_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

/// The payload of a configMap volume (or projection) from the fetched object.
pub fn configmap_payload(
    name: &str,
    cm: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, MountError> {
    let Some(cm) = cm else {
        return if optional {
            Ok(Payload::new())
        } else {
            Err(MountError::ConfigMapNotFound(name.to_string()))
        };
    };
    project(&configmap_data(cm), items, default_mode, optional, |k| {
        MountError::MissingConfigMapKey(k.to_string())
    })
}

/// The payload of a secret volume (or projection) from the fetched object.
pub fn secret_payload(
    name: &str,
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, MountError> {
    let Some(s) = secret else {
        return if optional {
            Ok(Payload::new())
        } else {
            Err(MountError::SecretNotFound(name.to_string()))
        };
    };
    let data: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    project(&data, items, default_mode, optional, |k| {
        MountError::MissingSecretKey(k.to_string())
    })
}

/// Reads a ConfigMap; `None` when it does not exist.
pub async fn get_configmap(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<ConfigMap>, MountError> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| MountError::Failed(format!("couldn't get configMap {ns}/{name}: {e}")))
}

/// Reads a Secret; `None` when it does not exist.
pub async fn get_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Option<Secret>, MountError> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| MountError::Failed(format!("couldn't get secret {ns}/{name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm() -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "cfg"},
            "data": {"a": "1", "b": "2"}, "binaryData": {"bin": "AAE="}}))
        .unwrap()
    }

    fn items(v: serde_json::Value) -> Vec<KeyToPath> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn all_keys_with_the_default_mode() {
        let p = configmap_payload("cfg", Some(&cm()), None, 0o600, false).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
        assert_eq!(p["bin"].data, vec![0, 1]);
        assert!(p.values().all(|f| f.mode == 0o600));
    }

    #[test]
    fn items_pick_keys_paths_and_modes() {
        let it =
            items(json!([{"key": "a", "path": "dir/x", "mode": 0o400}, {"key": "b", "path": "y"}]));
        let p = configmap_payload("cfg", Some(&cm()), Some(&it), 0o644, false).unwrap();
        assert_eq!(p["dir/x"].data, b"1");
        assert_eq!(p["dir/x"].mode, 0o400);
        assert_eq!(p["y"].mode, 0o644);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn missing_objects_and_keys_read_as_kubelet_says() {
        let e = configmap_payload("y", None, None, 0o644, false).unwrap_err();
        assert_eq!(
            e.event_message("x"),
            r#"MountVolume.SetUp failed for volume "x" : configmap "y" not found"#
        );
        assert!(
            configmap_payload("y", None, None, 0o644, true)
                .unwrap()
                .is_empty()
        );
        let it = items(json!([{"key": "nope", "path": "n"}]));
        let e = configmap_payload("cfg", Some(&cm()), Some(&it), 0o644, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "configmap references non-existent config key: nope"
        );
        assert!(
            configmap_payload("cfg", Some(&cm()), Some(&it), 0o644, true)
                .unwrap()
                .is_empty()
        );
        let e = secret_payload("s", None, None, 0o644, false).unwrap_err();
        assert_eq!(e.to_string(), r#"secret "s" not found"#);
    }
}
