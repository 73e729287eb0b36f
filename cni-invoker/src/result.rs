//! The ADD result: parsed from any supported version (0.3.0 to 1.1.0) into
//! one current-format struct, and written back at a chosen version.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use crate::error::CniError;
use crate::version::CniVersion;

/// An ADD result in the 1.x shape: interfaces, IPs (with interface index),
/// routes and DNS. Fields added by spec 1.1 are kept when present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    /// The version the plugin printed the result at.
    pub cni_version: Option<CniVersion>,
    /// Interfaces created or touched by the attachment.
    pub interfaces: Vec<Interface>,
    /// Addresses assigned by the attachment.
    pub ips: Vec<IpConfig>,
    /// Routes created by the attachment.
    pub routes: Vec<Route>,
    /// DNS settings reported by the attachment.
    pub dns: Dns,
}

/// An interface of a [`CniResult`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    /// Interface name (e.g. `eth0`, or the host-side veth).
    pub name: String,
    /// Hardware address, if meaningful.
    pub mac: Option<String>,
    /// MTU (spec 1.1).
    pub mtu: Option<u32>,
    /// The netns path for interfaces inside the sandbox; `None` on the host.
    pub sandbox: Option<String>,
    /// Socket path, for socket-based interfaces (spec 1.1).
    pub socket_path: Option<String>,
    /// PCI id of the device (spec 1.1).
    pub pci_id: Option<String>,
}

/// An address of a [`CniResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length, e.g. `10.1.0.5/24`.
    pub address: IpPrefix,
    /// The subnet's gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding the address.
    pub interface: Option<usize>,
}

/// A route of a [`CniResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub dst: IpPrefix,
    /// Next hop; when `None` the plugin's default gateway applies.
    pub gw: Option<IpAddr>,
    /// Path MTU (spec 1.1).
    pub mtu: Option<u32>,
    /// Advertised MSS (spec 1.1).
    pub advmss: Option<u32>,
    /// Route priority, lower is preferred (spec 1.1).
    pub priority: Option<u32>,
    /// Routing table (spec 1.1).
    pub table: Option<u32>,
    /// Route scope: 0 global, 253 link, 254 host (spec 1.1).
    pub scope: Option<u32>,
}

/// DNS settings of a [`CniResult`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains, in priority order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// An IP address with a prefix length (CIDR notation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    /// The address (host bits may be set).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
}

impl IpPrefix {
    /// Whether this is an IPv4 address.
    #[must_use]
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR notation"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: invalid IP address"))?;
        let prefix_len: u8 = len
            .parse()
            .map_err(|_| format!("{s:?}: invalid prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(format!("{s:?}: prefix length above {max}"));
        }
        Ok(Self { addr, prefix_len })
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why plugin output is not a result.
#[derive(Debug)]
pub(crate) enum ResultParseError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not a valid result.
    Invalid(String),
}

impl CniResult {
    /// Parses a result printed at any supported version (0.3.0 to 1.1.0).
    /// A result without `cniVersion` is read at `assumed`.
    ///
    /// # Errors
    /// [`CniError::InvalidResult`] naming `plugin`.
    pub fn from_json(plugin: &str, value: &Value, assumed: CniVersion) -> Result<Self, CniError> {
        parse_value(value, assumed).map_err(|reason| CniError::InvalidResult {
            plugin: plugin.to_owned(),
            reason,
        })
    }

    /// The result as a JSON object at `version`: the 0.3.x/0.4.0 shape (with
    /// `version` in each IP) below 1.0.0, without the 1.1 fields below 1.1.0.
    #[must_use]
    pub fn to_json(&self, version: CniVersion) -> Value {
        let legacy = version < CniVersion::V1_0_0;
        let v11 = version.has_status_and_gc();
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                put(&mut o, "mac", i.mac.as_ref());
                put(&mut o, "sandbox", i.sandbox.as_ref());
                if v11 {
                    put(&mut o, "mtu", i.mtu.as_ref());
                    put(&mut o, "socketPath", i.socket_path.as_ref());
                    put(&mut o, "pciID", i.pci_id.as_ref());
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if legacy {
                    o.insert(
                        "version".into(),
                        json!(if ip.address.is_ipv4() { "4" } else { "6" }),
                    );
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                put(
                    &mut o,
                    "gateway",
                    ip.gateway.map(|g| g.to_string()).as_ref(),
                );
                put(&mut o, "interface", ip.interface.as_ref());
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("dst".into(), json!(r.dst.to_string()));
                put(&mut o, "gw", r.gw.map(|g| g.to_string()).as_ref());
                if v11 {
                    put(&mut o, "mtu", r.mtu.as_ref());
                    put(&mut o, "advmss", r.advmss.as_ref());
                    put(&mut o, "priority", r.priority.as_ref());
                    put(&mut o, "table", r.table.as_ref());
                    put(&mut o, "scope", r.scope.as_ref());
                }
                Value::Object(o)
            })
            .collect();
        let mut o = Map::new();
        o.insert("cniVersion".into(), json!(version.to_string()));
        if !interfaces.is_empty() {
            o.insert("interfaces".into(), Value::Array(interfaces));
        }
        if !ips.is_empty() {
            o.insert("ips".into(), Value::Array(ips));
        }
        if !routes.is_empty() {
            o.insert("routes".into(), Value::Array(routes));
        }
        o.insert("dns".into(), json!(self.dns));
        Value::Object(o)
    }

    /// The addresses of the sandbox interface named `ifname` (e.g. the pod
    /// IPs on `eth0`): IPs whose interface index points at an interface of
    /// that name that has a sandbox.
    #[must_use]
    pub fn ips_of(&self, ifname: &str) -> Vec<&IpConfig> {
        self.ips
            .iter()
            .filter(|ip| {
                ip.interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|i| i.name == ifname && i.sandbox.is_some())
            })
            .collect()
    }
}

fn put<T: Serialize>(o: &mut Map<String, Value>, key: &str, value: Option<&T>) {
    if let Some(v) = value {
        o.insert(key.to_owned(), json!(v));
    }
}

/// Parses raw plugin stdout.
pub(crate) fn parse_bytes(
    stdout: &[u8],
    assumed: CniVersion,
) -> Result<CniResult, ResultParseError> {
    let value: Value = serde_json::from_slice(stdout).map_err(|_| ResultParseError::NotJson)?;
    parse_value(&value, assumed).map_err(ResultParseError::Invalid)
}

#[derive(Deserialize)]
struct WireResult {
    #[serde(rename = "cniVersion")]
    cni_version: Option<String>,
    #[serde(default)]
    interfaces: Option<Vec<WireInterface>>,
    #[serde(default)]
    ips: Option<Vec<WireIp>>,
    #[serde(default)]
    routes: Option<Vec<WireRoute>>,
    #[serde(default)]
    dns: Option<Dns>,
}

#[derive(Deserialize)]
struct WireInterface {
    name: String,
    mac: Option<String>,
    mtu: Option<u32>,
    sandbox: Option<String>,
    #[serde(rename = "socketPath")]
    socket_path: Option<String>,
    #[serde(rename = "pciID")]
    pci_id: Option<String>,
}

#[derive(Deserialize)]
struct WireIp {
    version: Option<String>,
    address: IpPrefix,
    gateway: Option<String>,
    interface: Option<i64>,
}

#[derive(Deserialize)]
struct WireRoute {
    dst: IpPrefix,
    gw: Option<String>,
    mtu: Option<u32>,
    advmss: Option<u32>,
    priority: Option<u32>,
    table: Option<u32>,
    scope: Option<u32>,
}

fn parse_value(value: &Value, assumed: CniVersion) -> Result<CniResult, String> {
    if !value.is_object() {
        return Err("result is not a JSON object".to_owned());
    }
    let wire = WireResult::deserialize(value).map_err(|e| e.to_string())?;
    let version = match wire.cni_version.as_deref() {
        None | Some("") => assumed,
        Some(text) => CniVersion::parse(text).ok_or_else(|| {
            format!("result cniVersion {text:?} is not a MAJOR.MINOR.PATCH version")
        })?,
    };
    if version < CniVersion::new(0, 3, 0) {
        return Err(format!(
            "result cniVersion {version} is not supported (0.3.0 or later required)"
        ));
    }
    let legacy = version < CniVersion::V1_0_0;

    let interfaces = wire
        .interfaces
        .unwrap_or_default()
        .into_iter()
        .map(|i| Interface {
            name: i.name,
            mac: non_empty(i.mac),
            mtu: i.mtu.filter(|m| *m > 0),
            sandbox: non_empty(i.sandbox),
            socket_path: non_empty(i.socket_path),
            pci_id: non_empty(i.pci_id),
        })
        .collect();
    let ips = wire
        .ips
        .unwrap_or_default()
        .into_iter()
        .map(|ip| {
            if legacy {
                let family = if ip.address.is_ipv4() { "4" } else { "6" };
                match ip.version.as_deref() {
                    Some(v) if v == family => {}
                    Some(v) => return Err(format!("ip {} has version {v:?}", ip.address)),
                    None => {
                        return Err(format!(
                            "ip {} lacks version (required before 1.0.0)",
                            ip.address
                        ));
                    }
                }
            }
            let interface = match ip.interface {
                None => None,
                Some(i) => Some(
                    usize::try_from(i)
                        .map_err(|_| format!("ip {} has interface index {i}", ip.address))?,
                ),
            };
            Ok(IpConfig {
                address: ip.address,
                gateway: parse_gateway(ip.gateway.as_deref())?,
                interface,
            })
        })
        .collect::<Result<_, _>>()?;
    let routes = wire
        .routes
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            Ok(Route {
                dst: r.dst,
                gw: parse_gateway(r.gw.as_deref())?,
                mtu: r.mtu,
                advmss: r.advmss,
                priority: r.priority,
                table: r.table,
                scope: r.scope,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(CniResult {
        cni_version: Some(version),
        interfaces,
        ips,
        routes,
        dns: wire.dns.unwrap_or_default(),
    })
}

fn parse_gateway(text: Option<&str>) -> Result<Option<IpAddr>, String> {
    match text {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| format!("{t:?} is not an IP address")),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V040: CniVersion = CniVersion::V0_4_0;

    #[test]
    fn parses_a_0_4_0_result_and_writes_it_as_1_0_0() {
        let out = br#"{"cniVersion":"0.4.0",
            "interfaces":[{"name":"cni0","mac":"00:11:22:33:44:55"},
                          {"name":"eth0","mac":"99:88:77:66:55:44","sandbox":"/run/netns/x"}],
            "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}],
            "routes":[{"dst":"0.0.0.0/0"}],
            "dns":{"nameservers":["10.1.0.1"]}}"#;
        let r = parse_bytes(out, V040).unwrap();
        assert_eq!(r.cni_version, Some(V040));
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/24");
        assert_eq!(r.ips[0].interface, Some(1));
        assert_eq!(r.ips_of("eth0").len(), 1);
        assert!(r.ips_of("cni0").is_empty());
        let v1 = r.to_json(CniVersion::V1_0_0);
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        assert_eq!(v1["ips"][0]["gateway"], "10.1.0.1");
        assert_eq!(v1["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v1["dns"]["nameservers"][0], "10.1.0.1");
    }

    #[test]
    fn writes_legacy_results_with_ip_versions() {
        let out =
            br#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mtu":1400,"sandbox":"/n"}],
            "ips":[{"address":"fd00::5/64","interface":0}],
            "routes":[{"dst":"::/0","table":100}]}"#;
        let r = parse_bytes(out, CniVersion::V1_1_0).unwrap();
        assert_eq!(r.interfaces[0].mtu, Some(1400));
        let legacy = r.to_json(CniVersion::new(0, 3, 1));
        assert_eq!(legacy["ips"][0]["version"], "6");
        assert!(legacy["interfaces"][0].get("mtu").is_none());
        assert!(legacy["routes"][0].get("table").is_none());
        let v11 = r.to_json(CniVersion::V1_1_0);
        assert_eq!(v11["interfaces"][0]["mtu"], 1400);
        assert_eq!(v11["routes"][0]["table"], 100);
        // Round trip.
        assert_eq!(parse_value(&v11, CniVersion::V1_1_0).unwrap(), r);
    }

    #[test]
    fn refuses_invalid_results() {
        assert!(matches!(
            parse_bytes(b"hello", V040),
            Err(ResultParseError::NotJson)
        ));
        let bad = [
            &b"[1,2]"[..],
            br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.1/8"}}"#,
            br#"{"cniVersion":"0.4.0","ips":[{"address":"10.0.0.1/8"}]}"#,
            br#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.1/8"}]}"#,
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}"#,
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/33"}]}"#,
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","gateway":"x"}]}"#,
            br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":-1}]}"#,
        ];
        for b in bad {
            assert!(
                matches!(parse_bytes(b, V040), Err(ResultParseError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn missing_version_uses_the_assumed_one() {
        let r = parse_bytes(br#"{"ips":[{"address":"10.0.0.1/8"}]}"#, CniVersion::V1_0_0).unwrap();
        assert_eq!(r.cni_version, Some(CniVersion::V1_0_0));
    }
}
