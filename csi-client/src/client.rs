//! [`CsiClient`]: the Identity and Node services of one CSI plugin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::Channel;

use crate::CsiError;
use crate::proto::csi::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, NodeGetCapabilitiesRequest, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeStageVolumeRequest, NodeStageVolumeResponse,
    NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse, NodeUnstageVolumeRequest,
    NodeUnstageVolumeResponse, ProbeRequest, ProbeResponse, node_service_capability,
};
use crate::transport::{lazy_channel, parse_endpoint, unary};

const IDENTITY: &str = "csi.v1.Identity";
const NODE: &str = "csi.v1.Node";

/// What a node plugin can do beyond publish/unpublish (NodeGetCapabilities).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one flag per capability the spec defines
pub struct NodeCapabilities {
    pub stage_unstage: bool,
    pub get_volume_stats: bool,
    pub volume_condition: bool,
    pub volume_mount_group: bool,
}

/// Deadlines for CSI calls. Kubelet gives node operations two minutes (csiTimeout) and
/// Identity/info calls much less.
#[derive(Clone, Copy, Debug)]
pub struct CsiTimeouts {
    pub connect: Duration,
    pub info: Duration,
    pub operation: Duration,
}

impl Default for CsiTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            info: Duration::from_secs(10),
            operation: Duration::from_secs(120),
        }
    }
}

/// A client for one CSI plugin socket. Cloning shares the HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct CsiClient {
    channel: Channel,
    socket: PathBuf,
    timeouts: CsiTimeouts,
}

impl CsiClient {
    /// A lazy client: the socket is dialled on the first call and redialled after the plugin
    /// restarts.
    ///
    /// # Errors
    /// [`CsiError::InvalidEndpoint`] for a malformed endpoint or outside a Tokio runtime.
    pub fn new(endpoint: &str, timeouts: CsiTimeouts) -> Result<Self, CsiError> {
        let socket = parse_endpoint(endpoint)?;
        let channel = lazy_channel(&socket, timeouts.connect)?;
        Ok(Self {
            channel,
            socket,
            timeouts,
        })
    }

    /// The plugin's socket path.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Identity.GetPluginInfo.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn get_plugin_info(&self) -> Result<GetPluginInfoResponse, CsiError> {
        let t = self.timeouts.info;
        unary(
            &self.channel,
            IDENTITY,
            "GetPluginInfo",
            GetPluginInfoRequest {},
            t,
        )
        .await
    }

    /// Identity.GetPluginCapabilities.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn get_plugin_capabilities(&self) -> Result<GetPluginCapabilitiesResponse, CsiError> {
        let (req, t) = (GetPluginCapabilitiesRequest {}, self.timeouts.info);
        unary(&self.channel, IDENTITY, "GetPluginCapabilities", req, t).await
    }

    /// Identity.Probe: true when the plugin says it is ready (an absent `ready` means ready).
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn probe(&self) -> Result<bool, CsiError> {
        let t = self.timeouts.info;
        let resp: ProbeResponse =
            unary(&self.channel, IDENTITY, "Probe", ProbeRequest {}, t).await?;
        Ok(resp.ready.is_none_or(|r| r.value))
    }

    /// Node.NodeGetInfo.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_get_info(&self) -> Result<NodeGetInfoResponse, CsiError> {
        let t = self.timeouts.info;
        unary(&self.channel, NODE, "NodeGetInfo", NodeGetInfoRequest {}, t).await
    }

    /// Node.NodeGetCapabilities, summarised.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_get_capabilities(&self) -> Result<NodeCapabilities, CsiError> {
        use node_service_capability::{RpcType, Type};
        let (req, t) = (NodeGetCapabilitiesRequest {}, self.timeouts.info);
        let resp: crate::proto::csi::NodeGetCapabilitiesResponse =
            unary(&self.channel, NODE, "NodeGetCapabilities", req, t).await?;
        let mut caps = NodeCapabilities::default();
        for cap in resp.capabilities {
            let Some(Type::Rpc(rpc)) = cap.r#type else {
                continue;
            };
            match RpcType::try_from(rpc.r#type) {
                Ok(RpcType::StageUnstageVolume) => caps.stage_unstage = true,
                Ok(RpcType::GetVolumeStats) => caps.get_volume_stats = true,
                Ok(RpcType::VolumeCondition) => caps.volume_condition = true,
                Ok(RpcType::VolumeMountGroup) => caps.volume_mount_group = true,
                _ => {}
            }
        }
        Ok(caps)
    }

    /// Node.NodeStageVolume.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_stage_volume(&self, req: NodeStageVolumeRequest) -> Result<(), CsiError> {
        let t = self.timeouts.operation;
        let _: NodeStageVolumeResponse =
            unary(&self.channel, NODE, "NodeStageVolume", req, t).await?;
        Ok(())
    }

    /// Node.NodeUnstageVolume.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_unstage_volume(
        &self,
        volume_id: &str,
        staging_target_path: &str,
    ) -> Result<(), CsiError> {
        let req = NodeUnstageVolumeRequest {
            volume_id: volume_id.to_owned(),
            staging_target_path: staging_target_path.to_owned(),
        };
        let t = self.timeouts.operation;
        let _: NodeUnstageVolumeResponse =
            unary(&self.channel, NODE, "NodeUnstageVolume", req, t).await?;
        Ok(())
    }

    /// Node.NodePublishVolume.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_publish_volume(&self, req: NodePublishVolumeRequest) -> Result<(), CsiError> {
        let t = self.timeouts.operation;
        let _: NodePublishVolumeResponse =
            unary(&self.channel, NODE, "NodePublishVolume", req, t).await?;
        Ok(())
    }

    /// Node.NodeUnpublishVolume.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_unpublish_volume(
        &self,
        volume_id: &str,
        target_path: &str,
    ) -> Result<(), CsiError> {
        let req = NodeUnpublishVolumeRequest {
            volume_id: volume_id.to_owned(),
            target_path: target_path.to_owned(),
        };
        let t = self.timeouts.operation;
        let _: NodeUnpublishVolumeResponse =
            unary(&self.channel, NODE, "NodeUnpublishVolume", req, t).await?;
        Ok(())
    }

    /// Node.NodeGetVolumeStats.
    ///
    /// # Errors
    /// [`CsiError`] from the call.
    pub async fn node_get_volume_stats(
        &self,
        req: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, CsiError> {
        let t = self.timeouts.info;
        unary(&self.channel, NODE, "NodeGetVolumeStats", req, t).await
    }
}
