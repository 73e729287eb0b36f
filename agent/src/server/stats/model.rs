//! kubelet's Summary API (stats/v1alpha1) as JSON: the shape `/stats/summary` serves. Absent
//! figures are left out, as kubelet's optional fields are.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

/// The whole summary: the node and its pods.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryStats {
    pub time: Time,
    #[serde(flatten)]
    pub values: MemoryValues,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

/// The default interface's figures inline, every interface in `interfaces` (kubelet's shape).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkStats {
    pub time: Time,
    #[serde(flatten)]
    pub default: InterfaceStats,
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    pub available_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub inodes_free: u64,
    pub inodes: u64,
    pub inodes_used: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// Usage of the pod's volumes that report it (CSI NodeGetVolumeStats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<Vec<VolumeStats>>,
}

/// One volume's usage, as kubelet's VolumeStats (FsStats fields plus the volume's name).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStats {
    pub time: Time,
    pub name: String,
    pub capacity_bytes: i64,
    pub available_bytes: i64,
    pub used_bytes: i64,
    pub inodes: i64,
    pub inodes_free: i64,
    pub inodes_used: i64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// A time from nanoseconds since the epoch (CRI timestamps); out-of-range values become the
/// epoch.
pub fn time_from_nanos(nanos: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or_default())
}

/// Nanoseconds since the epoch of a [`Time`].
pub fn nanos_of(time: &Time) -> i64 {
    i64::try_from(time.0.as_nanosecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_kubelet_field_names() {
        let t = time_from_nanos(1_700_000_000_500_000_000);
        let node = NodeStats {
            node_name: "n1".into(),
            start_time: Some(t.clone()),
            cpu: Some(CpuStats {
                time: t.clone(),
                usage_nano_cores: Some(5),
                usage_core_nano_seconds: Some(7),
            }),
            memory: Some(MemoryStats {
                time: t.clone(),
                values: MemoryValues {
                    working_set_bytes: Some(9),
                    ..MemoryValues::default()
                },
            }),
            network: Some(NetworkStats {
                time: t.clone(),
                default: InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: 1,
                    ..InterfaceStats::default()
                },
                interfaces: vec![],
            }),
            fs: None,
        };
        let json = serde_json::to_value(Summary { node, pods: vec![] }).unwrap();
        assert_eq!(json["node"]["nodeName"], "n1");
        assert_eq!(json["node"]["cpu"]["usageNanoCores"], 5);
        assert_eq!(json["node"]["cpu"]["usageCoreNanoSeconds"], 7);
        assert_eq!(json["node"]["memory"]["workingSetBytes"], 9);
        assert!(json["node"]["memory"].get("rssBytes").is_none());
        assert_eq!(json["node"]["network"]["name"], "eth0");
        assert_eq!(json["node"]["network"]["rxBytes"], 1);
        assert!(
            json["node"]["cpu"]["time"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T22:13:20")
        );
        assert_eq!(nanos_of(&t), 1_700_000_000_500_000_000);
    }
}
