//! Protobuf messages, written by hand with `prost` derives (no .proto files or protoc): the
//! field numbers follow the CSI v1 spec (`package csi.v1`) and the kubelet plugin-registration
//! API (`package pluginregistration`).

pub mod csi;
pub mod registration;

/// `google.protobuf.BoolValue`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct BoolValue {
    #[prost(bool, tag = "1")]
    pub value: bool,
}

#[cfg(test)]
mod tests;
