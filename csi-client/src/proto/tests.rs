//! Encoding round-trips, and wire bytes checked by hand against the spec's field numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use prost::Message;

use super::BoolValue;
use super::csi::*;
use super::registration::*;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let bytes = m.encode_to_vec();
    assert_eq!(&M::decode(bytes.as_slice()).unwrap(), m);
}

fn mount_capability() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume {
                fs_type: "ext4".into(),
                mount_flags: vec!["noatime".into()],
                volume_mount_group: String::new(),
            },
        )),
        access_mode: Some(volume_capability::AccessMode {
            mode: volume_capability::Mode::SingleNodeWriter as i32,
        }),
    }
}

#[test]
fn node_requests_round_trip() {
    let ctx = HashMap::from([("csi.storage.k8s.io/pod.name".to_owned(), "p".to_owned())]);
    round_trip(&NodeStageVolumeRequest {
        volume_id: "v1".into(),
        publish_context: HashMap::from([("dev".into(), "/dev/x".into())]),
        staging_target_path: "/var/lib/kubelet/plugins/kubernetes.io/csi/d/h/globalmount".into(),
        volume_capability: Some(mount_capability()),
        secrets: HashMap::from([("password".into(), "s3cret".into())]),
        volume_context: ctx.clone(),
    });
    round_trip(&NodePublishVolumeRequest {
        volume_id: "v1".into(),
        target_path: "/t".into(),
        staging_target_path: "/s".into(),
        readonly: true,
        volume_capability: Some(mount_capability()),
        volume_context: ctx,
        ..Default::default()
    });
    round_trip(&NodeGetVolumeStatsResponse {
        usage: vec![VolumeUsage {
            available: 1,
            total: 3,
            used: 2,
            unit: volume_usage::Unit::Bytes as i32,
        }],
        volume_condition: Some(VolumeCondition {
            abnormal: true,
            message: "bad".into(),
        }),
    });
    round_trip(&PluginInfo {
        r#type: CSI_PLUGIN.into(),
        name: "d".into(),
        endpoint: "/csi.sock".into(),
        supported_versions: vec!["1.0.0".into()],
    });
}

#[test]
fn wire_bytes_follow_the_spec_field_numbers() {
    // NodeUnpublishVolumeRequest: volume_id = 1, target_path = 2 (both length-delimited).
    let b = NodeUnpublishVolumeRequest {
        volume_id: "a".into(),
        target_path: "b".into(),
    }
    .encode_to_vec();
    assert_eq!(b, [0x0a, 1, b'a', 0x12, 1, b'b']);
    // NodePublishVolumeRequest.readonly is field 6 (varint): tag byte 6<<3 = 0x30.
    let b = NodePublishVolumeRequest {
        readonly: true,
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(b, [0x30, 1]);
    // NodeGetInfoResponse.max_volumes_per_node is field 2 (varint).
    let b = NodeGetInfoResponse {
        max_volumes_per_node: 5,
        ..Default::default()
    }
    .encode_to_vec();
    assert_eq!(b, [0x10, 5]);
    // RegistrationStatus: plugin_registered = 1 (varint), error = 2.
    let b = RegistrationStatus {
        plugin_registered: true,
        error: "e".into(),
    }
    .encode_to_vec();
    assert_eq!(b, [0x08, 1, 0x12, 1, b'e']);
    // ProbeResponse.ready is a BoolValue message in field 1.
    let b = ProbeResponse {
        ready: Some(BoolValue { value: true }),
    }
    .encode_to_vec();
    assert_eq!(b, [0x0a, 2, 0x08, 1]);
    // VolumeCapability: mount is oneof field 2, access_mode field 3.
    let b = VolumeCapability {
        access_type: Some(volume_capability::AccessType::Block(
            volume_capability::BlockVolume {},
        )),
        access_mode: None,
    }
    .encode_to_vec();
    assert_eq!(b, [0x0a, 0]);
}

#[test]
fn capabilities_decode_from_go_encoded_bytes() {
    // NodeGetCapabilitiesResponse{capabilities: [{rpc: {type: STAGE_UNSTAGE_VOLUME}}]}
    // as the Go reference implementation encodes it.
    let bytes = [0x0a, 0x04, 0x0a, 0x02, 0x08, 0x01];
    let resp = NodeGetCapabilitiesResponse::decode(bytes.as_slice()).unwrap();
    let Some(node_service_capability::Type::Rpc(rpc)) = resp.capabilities[0].r#type else {
        panic!("{resp:?}");
    };
    assert_eq!(
        rpc.r#type,
        node_service_capability::RpcType::StageUnstageVolume as i32
    );
}

#[test]
fn secrets_are_not_printed() {
    let req = NodeStageVolumeRequest {
        secrets: HashMap::from([("password".into(), "s3cret".into())]),
        ..Default::default()
    };
    let text = format!("{req:?}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let text = format!(
        "{:?}",
        NodePublishVolumeRequest {
            secrets: req.secrets.clone(),
            ..Default::default()
        }
    );
    assert!(!text.contains("s3cret"), "{text}");
}
