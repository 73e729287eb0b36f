//! CNI spec versions and version negotiation between a network configuration,
//! this runtime and each plugin's `VERSION` answer.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{CniError, truncate};

/// The spec versions this runtime can run a chain with (results of 0.1.0
/// and 0.2.0 plugins have another shape and are not supported).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Name used in [`CniError::UnsupportedVersion`] when the runtime itself
/// refuses a version.
pub(crate) const RUNTIME_NAME: &str = "minikubelet";

/// A CNI spec version, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CniVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number.
    pub patch: u32,
}

impl CniVersion {
    /// 0.4.0, the first version with CHECK and `prevResult` on DEL.
    pub const V0_4_0: Self = Self::new(0, 4, 0);
    /// 1.0.0, the current result format (no `version` in `ips`).
    pub const V1_0_0: Self = Self::new(1, 0, 0);
    /// 1.1.0, the first version with STATUS and GC.
    pub const V1_1_0: Self = Self::new(1, 1, 0);

    /// A version from its three numbers.
    #[must_use]
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `MAJOR.MINOR.PATCH`; `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(major, minor, patch))
    }

    /// Whether this runtime can run a chain at this version.
    #[must_use]
    pub fn is_supported_by_runtime(self) -> bool {
        SUPPORTED_VERSIONS
            .iter()
            .any(|v| Self::parse(v) == Some(self))
    }

    /// Whether CHECK exists at this version (0.4.0+).
    #[must_use]
    pub fn has_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// Whether STATUS and GC exist at this version (1.1.0+).
    #[must_use]
    pub fn has_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for CniVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("{s:?} is not a MAJOR.MINOR.PATCH version"))
    }
}

/// The versions one plugin reported through `VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginVersions {
    /// The plugin `type`.
    pub plugin: String,
    /// The reported versions, as printed.
    pub supported: Vec<String>,
}

impl PluginVersions {
    pub(crate) fn supports(&self, version: CniVersion) -> bool {
        self.supported
            .iter()
            .any(|v| CniVersion::parse(v) == Some(version))
    }
}

/// Parses the stdout of a successful `VERSION` call.
pub(crate) fn parse_version_output(plugin: &str, stdout: &[u8]) -> Result<Vec<String>, CniError> {
    #[derive(Deserialize)]
    struct VersionOutput {
        #[serde(rename = "supportedVersions")]
        supported_versions: Vec<String>,
    }
    serde_json::from_slice::<VersionOutput>(stdout)
        .map(|o| o.supported_versions)
        .map_err(|e| CniError::InvalidResult {
            plugin: plugin.to_owned(),
            reason: format!(
                "VERSION output lacks supportedVersions ({e}): {}",
                truncate(&String::from_utf8_lossy(stdout))
            ),
        })
}

/// The versions a network configuration allows that this runtime supports,
/// highest first. Errors when there is none.
pub(crate) fn runtime_candidates(
    requested: CniVersion,
    also: &[CniVersion],
) -> Result<Vec<CniVersion>, CniError> {
    let mut candidates: Vec<CniVersion> = std::iter::once(requested)
        .chain(also.iter().copied())
        .filter(|v| v.is_supported_by_runtime())
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    candidates.dedup();
    if candidates.is_empty() {
        return Err(CniError::UnsupportedVersion {
            plugin: RUNTIME_NAME.to_owned(),
            requested: requested.to_string(),
            supported: SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
        });
    }
    Ok(candidates)
}

/// Picks the highest candidate every plugin supports (the spec lets a runtime
/// consider plugin versions). When none fits, names the first plugin that
/// refuses the highest candidate.
pub(crate) fn negotiate(
    candidates: &[CniVersion],
    plugins: &[PluginVersions],
) -> Result<CniVersion, CniError> {
    if let Some(v) = candidates
        .iter()
        .find(|v| plugins.iter().all(|p| p.supports(**v)))
    {
        return Ok(*v);
    }
    let top = candidates.first().copied().unwrap_or(CniVersion::V1_0_0);
    let refusing = plugins.iter().find(|p| !p.supports(top));
    Err(CniError::UnsupportedVersion {
        plugin: refusing.map_or_else(|| RUNTIME_NAME.to_owned(), |p| p.plugin.clone()),
        requested: top.to_string(),
        supported: refusing.map(|p| p.supported.clone()).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> CniVersion {
        CniVersion::parse(s).unwrap()
    }

    fn plugin(name: &str, versions: &[&str]) -> PluginVersions {
        PluginVersions {
            plugin: name.into(),
            supported: versions.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn parses_and_orders_versions() {
        assert_eq!(v("1.0.0"), CniVersion::V1_0_0);
        assert!(v("0.3.1") < v("0.4.0"));
        assert!(v("0.10.0") > v("0.4.0"));
        assert_eq!(CniVersion::parse("1.0"), None);
        assert_eq!(CniVersion::parse("1.0.0.0"), None);
        assert_eq!(CniVersion::parse("x.y.z"), None);
        assert_eq!(v("1.1.0").to_string(), "1.1.0");
    }

    #[test]
    fn runtime_refuses_old_versions() {
        let err = runtime_candidates(v("0.2.0"), &[]).unwrap_err();
        assert!(
            matches!(err, CniError::UnsupportedVersion { ref plugin, .. } if plugin == RUNTIME_NAME)
        );
        let c = runtime_candidates(v("1.0.0"), &[v("1.1.0"), v("0.2.0"), v("1.0.0")]).unwrap();
        assert_eq!(c, vec![v("1.1.0"), v("1.0.0")]);
    }

    #[test]
    fn negotiation_picks_highest_common_version() {
        let candidates = [v("1.1.0"), v("1.0.0")];
        let plugins = [
            plugin("bridge", &["0.4.0", "1.0.0"]),
            plugin("tuning", &["1.0.0", "1.1.0"]),
        ];
        assert_eq!(negotiate(&candidates, &plugins).unwrap(), v("1.0.0"));
    }

    #[test]
    fn negotiation_names_the_refusing_plugin() {
        let plugins = [plugin("ok", &["1.0.0"]), plugin("old", &["0.3.0", "0.3.1"])];
        match negotiate(&[v("1.0.0")], &plugins).unwrap_err() {
            CniError::UnsupportedVersion {
                plugin,
                requested,
                supported,
            } => {
                assert_eq!(plugin, "old");
                assert_eq!(requested, "1.0.0");
                assert_eq!(supported, vec!["0.3.0", "0.3.1"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn version_output_is_parsed() {
        let out = br#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#;
        assert_eq!(
            parse_version_output("p", out).unwrap(),
            vec!["0.4.0", "1.0.0"]
        );
        assert!(matches!(
            parse_version_output("p", b"{}"),
            Err(CniError::InvalidResult { .. })
        ));
    }
}
