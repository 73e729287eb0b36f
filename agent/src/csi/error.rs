//! Why a CSI volume could not be set up or torn down; the text is what the FailedMount event
//! and the pod's waiting message show (after kubelet's `MountVolume.SetUp failed ...` prefix).

use csi_client::CsiError;

#[derive(Debug, thiserror::Error)]
pub enum CsiMountError {
    #[error(
        "kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name {0} not found in the list of registered CSI drivers"
    )]
    DriverNotRegistered(String),
    #[error("persistentvolumeclaim {0:?} not found")]
    ClaimNotFound(String),
    #[error("persistentvolumeclaim {0:?} is not bound to a volume yet")]
    ClaimNotBound(String),
    #[error("persistentvolume {0:?} not found")]
    VolumeNotFound(String),
    #[error("persistentvolume {0:?} is not a CSI volume")]
    NotCsi(String),
    #[error("volume is not a CSI, persistentVolumeClaim or ephemeral volume")]
    NotCsiSource,
    #[error("secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("volume attachment {0} is not attached yet")]
    NotAttached(String),
    #[error("volume attachment {name} failed: {message}")]
    AttachFailed { name: String, message: String },
    #[error("kubernetes.io/csi: {method} failed: rpc error: code = {code} desc = {message}", method = .0.method(), code = code_name(.0), message = rpc_message(.0))]
    Call(CsiError),
    #[error("API request failed: {0}")]
    Api(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn code_name(e: &CsiError) -> String {
    e.code()
        .map_or_else(|| "DeadlineExceeded".to_string(), |c| format!("{c:?}"))
}

fn rpc_message(e: &CsiError) -> String {
    match e {
        CsiError::Status { status, .. } => status.message().to_string(),
        other => other.to_string(),
    }
}

impl CsiMountError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub fn api(e: &kube::Error) -> Self {
        Self::Api(e.to_string())
    }
}

impl From<CsiError> for CsiMountError {
    fn from(e: CsiError) -> Self {
        Self::Call(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_kubelet() {
        let e = CsiMountError::DriverNotRegistered("x.csi".into());
        assert!(
            e.to_string()
                .contains("driver name x.csi not found in the list of registered CSI drivers")
        );
        let e = CsiMountError::Call(CsiError::Status {
            method: "NodeStageVolume",
            status: tonic::Status::invalid_argument("bad id"),
        });
        assert_eq!(
            e.to_string(),
            "kubernetes.io/csi: NodeStageVolume failed: rpc error: code = InvalidArgument desc = bad id"
        );
    }
}
