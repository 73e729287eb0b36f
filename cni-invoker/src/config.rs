//! Loading and validating network configurations (`.conflist`, or a single
//! plugin `.conf`/`.json` wrapped into a list).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::CniError;
use crate::version::CniVersion;

/// File extensions a conf dir is scanned for, as kubelet and containerd do.
const CONF_EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// A validated network configuration: a name, a spec version and an ordered
/// list of plugin configurations.
///
/// The original JSON is kept, so that every unknown key reaches the plugins
/// unchanged and the exact configuration can be cached with an ADD result.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    name: String,
    cni_version: CniVersion,
    cni_versions: Vec<CniVersion>,
    disable_check: bool,
    disable_gc: bool,
    plugins: Vec<PluginConfig>,
    source: Option<PathBuf>,
    raw: Map<String, Value>,
}

/// One plugin of a [`NetworkConfigList`].
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    plugin_type: String,
    capabilities: BTreeMap<String, bool>,
    raw: Map<String, Value>,
}

/// Loads the network configuration of `dir`: its first `*.conflist`,
/// `*.conf` or `*.json` file in lexical order of file names.
///
/// # Errors
/// [`CniError::NoConfig`] when there is none, [`CniError::Io`] when the
/// directory or file cannot be read, [`CniError::Config`] (naming the file)
/// when the chosen file is invalid.
pub async fn load_conf_dir(dir: &Path) -> Result<NetworkConfigList, CniError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| CniError::io(format!("reading CNI conf dir {}", dir.display()), e))?;
    let mut candidates = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| CniError::io(format!("reading CNI conf dir {}", dir.display()), e))?
    {
        let path = entry.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONF_EXTENSIONS.contains(&e));
        // `metadata` follows symlinks: a link to a config file counts.
        if wanted && tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            candidates.push(entry.file_name());
        }
    }
    candidates.sort();
    let Some(first) = candidates.first() else {
        return Err(CniError::NoConfig {
            dir: dir.to_path_buf(),
        });
    };
    NetworkConfigList::from_file(&dir.join(first)).await
}

impl NetworkConfigList {
    /// Reads and validates one configuration file; `*.conflist` must be a
    /// list, anything else is read as a single plugin configuration.
    ///
    /// # Errors
    /// [`CniError::Io`] or [`CniError::Config`] naming the file.
    pub async fn from_file(path: &Path) -> Result<Self, CniError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| CniError::io(format!("reading CNI config {}", path.display()), e))?;
        if path.extension().is_some_and(|e| e == "conflist") {
            Self::from_conflist_bytes(&bytes, Some(path))
        } else {
            Self::from_conf_bytes(&bytes, Some(path))
        }
    }

    /// Parses a configuration list (`{"name", "cniVersion", "plugins": [...]}`).
    ///
    /// # Errors
    /// [`CniError::Config`] naming `source` (or `<inline>`).
    pub fn from_conflist_bytes(bytes: &[u8], source: Option<&Path>) -> Result<Self, CniError> {
        let raw = parse_object(bytes, source)?;
        Self::from_object(raw, source)
    }

    /// Parses a single plugin configuration (`{"name", "cniVersion", "type", ...}`)
    /// and wraps it into a list of one. An object without `type` but with
    /// `plugins` is accepted as a list, as some installers name lists `.conf`.
    ///
    /// # Errors
    /// [`CniError::Config`] naming `source` (or `<inline>`).
    pub fn from_conf_bytes(bytes: &[u8], source: Option<&Path>) -> Result<Self, CniError> {
        let raw = parse_object(bytes, source)?;
        if !raw.contains_key("type") && raw.contains_key("plugins") {
            return Self::from_object(raw, source);
        }
        let mut list = Map::new();
        for key in ["cniVersion", "cniVersions", "name"] {
            if let Some(v) = raw.get(key) {
                list.insert(key.to_owned(), v.clone());
            }
        }
        list.insert("plugins".to_owned(), Value::Array(vec![Value::Object(raw)]));
        Self::from_object(list, source)
    }

    /// Validates an already parsed list object (as stored in the result cache).
    pub(crate) fn from_value(value: Value, source: Option<&Path>) -> Result<Self, CniError> {
        match value {
            Value::Object(raw) => Self::from_object(raw, source),
            _ => Err(CniError::config(source, "not a JSON object")),
        }
    }

    fn from_object(raw: Map<String, Value>, source: Option<&Path>) -> Result<Self, CniError> {
        let err = |reason: String| CniError::config(source, reason);

        let name = required_str(&raw, "name").map_err(&err)?;
        validate_name(&name).map_err(&err)?;
        let cni_version = parse_version(&raw, "cniVersion").map_err(&err)?;
        let cni_versions = match raw.get("cniVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().and_then(CniVersion::parse).ok_or_else(|| {
                        format!("cniVersions: {item} is not a MAJOR.MINOR.PATCH string")
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(&err)?,
            Some(other) => return Err(err(format!("cniVersions must be a list, not {other}"))),
        };
        let disable_check = flag(&raw, "disableCheck").map_err(&err)?;
        let disable_gc = flag(&raw, "disableGC").map_err(&err)?;

        let plugins = match raw.get("plugins") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    PluginConfig::from_value(item).map_err(|r| err(format!("plugins[{i}]: {r}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => return Err(err("plugins must not be empty".to_owned())),
            Some(_) => return Err(err("plugins must be a list".to_owned())),
            None => return Err(err("missing plugins".to_owned())),
        };

        Ok(Self {
            name,
            cni_version,
            cni_versions,
            disable_check,
            disable_gc,
            plugins,
            source: source.map(Path::to_path_buf),
            raw,
        })
    }

    /// The network name, injected into every plugin's configuration.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `cniVersion` of the list.
    #[must_use]
    pub fn cni_version(&self) -> CniVersion {
        self.cni_version
    }

    /// The optional `cniVersions` (spec 1.1): further versions the list allows.
    #[must_use]
    pub fn cni_versions(&self) -> &[CniVersion] {
        &self.cni_versions
    }

    /// `disableCheck`: CHECK must not be run.
    #[must_use]
    pub fn disable_check(&self) -> bool {
        self.disable_check
    }

    /// `disableGC`: plugins must not be sent GC.
    #[must_use]
    pub fn disable_gc(&self) -> bool {
        self.disable_gc
    }

    /// The plugins, in ADD order.
    #[must_use]
    pub fn plugins(&self) -> &[PluginConfig] {
        &self.plugins
    }

    /// The file this configuration was read from, if any.
    #[must_use]
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The configuration as JSON, unknown keys included.
    #[must_use]
    pub fn to_json(&self) -> Value {
        Value::Object(self.raw.clone())
    }

    /// Whether the list allows spec 1.1.0 or later (needed for STATUS and GC).
    #[must_use]
    pub fn allows_status_and_gc(&self) -> bool {
        std::iter::once(self.cni_version)
            .chain(self.cni_versions.iter().copied())
            .any(CniVersion::has_status_and_gc)
    }

    /// This list pinned to one version: `cniVersion` set to `version` and
    /// `cniVersions` dropped. This is what an ADD caches, so that DEL and
    /// CHECK run with the version ADD negotiated.
    #[must_use]
    pub fn pinned_to(&self, version: CniVersion) -> Self {
        let mut pinned = self.clone();
        pinned.cni_version = version;
        pinned.cni_versions.clear();
        pinned
            .raw
            .insert("cniVersion".to_owned(), Value::String(version.to_string()));
        pinned.raw.remove("cniVersions");
        pinned
    }
}

impl PluginConfig {
    fn from_value(value: &Value) -> Result<Self, String> {
        let Value::Object(raw) = value else {
            return Err("not a JSON object".to_owned());
        };
        let plugin_type = required_str(raw, "type")?;
        if plugin_type.contains(['/', '\\']) || plugin_type == "." || plugin_type == ".." {
            return Err(format!("type {plugin_type:?} is not a file name"));
        }
        let capabilities = match raw.get("capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(caps)) => caps
                .iter()
                .map(|(k, v)| match v {
                    Value::Bool(b) => Ok((k.clone(), *b)),
                    other => Err(format!(
                        "capabilities.{k} must be true or false, not {other}"
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(format!("capabilities must be an object, not {other}")),
        };
        Ok(Self {
            plugin_type,
            capabilities,
            raw: raw.clone(),
        })
    }

    /// The plugin `type`: the name of its executable.
    #[must_use]
    pub fn plugin_type(&self) -> &str {
        &self.plugin_type
    }

    /// Whether the plugin declares capability `name` as `true`.
    #[must_use]
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name).copied().unwrap_or(false)
    }

    /// The names of the capabilities the plugin declares as `true`.
    pub fn capabilities(&self) -> impl Iterator<Item = &str> {
        self.capabilities
            .iter()
            .filter(|(_, enabled)| **enabled)
            .map(|(name, _)| name.as_str())
    }

    /// The plugin's configuration object as written.
    #[must_use]
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

fn parse_object(bytes: &[u8], source: Option<&Path>) -> Result<Map<String, Value>, CniError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CniError::config(source, "not a JSON object")),
        Err(e) => Err(CniError::config(source, format!("malformed JSON: {e}"))),
    }
}

fn required_str(raw: &Map<String, Value>, key: &str) -> Result<String, String> {
    match raw.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("{key} must not be empty")),
        Some(other) => Err(format!("{key} must be a string, not {other}")),
        None => Err(format!("missing {key}")),
    }
}

fn parse_version(raw: &Map<String, Value>, key: &str) -> Result<CniVersion, String> {
    let text = required_str(raw, key)?;
    CniVersion::parse(&text)
        .ok_or_else(|| format!("{key} {text:?} is not a MAJOR.MINOR.PATCH version"))
}

/// A boolean that spec 0.4.0 wrote as the string `"true"`/`"false"`.
fn flag(raw: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match raw.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!("{key} must be true or false, not {other}")),
    }
}

/// The spec's rule for network names: an alphanumeric first character, then
/// alphanumerics, `_`, `.` or `-` (so the name is also safe in a file name).
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must start with a letter or digit and contain only letters, digits, '_', '.' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(json: &str) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::from_conflist_bytes(
            json.as_bytes(),
            Some(Path::new("/etc/cni/net.d/10-x.conflist")),
        )
    }

    fn reason(err: CniError) -> String {
        match err {
            CniError::Config { file, reason } => {
                assert_eq!(file, "/etc/cni/net.d/10-x.conflist");
                reason
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_a_list_and_keeps_unknown_keys() {
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","disableCheck":"true","x":1,
                "plugins":[{"type":"bridge","bridge":"cni0"},
                           {"type":"portmap","capabilities":{"portMappings":true,"mac":false}}]}"#,
        )
        .unwrap();
        assert_eq!(l.name(), "k8s-pod-network");
        assert_eq!(l.cni_version(), CniVersion::V1_0_0);
        assert!(l.disable_check());
        assert!(!l.disable_gc());
        assert_eq!(l.plugins().len(), 2);
        assert_eq!(l.plugins()[0].raw()["bridge"], "cni0");
        assert!(l.plugins()[1].has_capability("portMappings"));
        assert!(!l.plugins()[1].has_capability("mac"));
        assert_eq!(
            l.plugins()[1].capabilities().collect::<Vec<_>>(),
            vec!["portMappings"]
        );
        assert_eq!(l.to_json()["x"], 1);
    }

    #[test]
    fn single_conf_is_wrapped_into_a_list() {
        let l = NetworkConfigList::from_conf_bytes(
            br#"{"cniVersion":"0.4.0","name":"net","type":"bridge","ipam":{"type":"host-local"}}"#,
            None,
        )
        .unwrap();
        assert_eq!(l.name(), "net");
        assert_eq!(l.plugins().len(), 1);
        assert_eq!(l.plugins()[0].plugin_type(), "bridge");
        assert_eq!(l.plugins()[0].raw()["ipam"]["type"], "host-local");
    }

    #[test]
    fn invalid_lists_are_refused_with_a_reason() {
        assert!(reason(list("{not json").unwrap_err()).starts_with("malformed JSON"));
        assert_eq!(
            reason(list(r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#).unwrap_err()),
            "missing name"
        );
        assert_eq!(
            reason(list(r#"{"name":"n","plugins":[{"type":"a"}]}"#).unwrap_err()),
            "missing cniVersion"
        );
        assert_eq!(
            reason(list(r#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#).unwrap_err()),
            "plugins must not be empty"
        );
        assert_eq!(
            reason(
                list(r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a"},{"x":1}]}"#)
                    .unwrap_err()
            ),
            "plugins[1]: missing type"
        );
        assert!(
            reason(
                list(r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"../a"}]}"#)
                    .unwrap_err()
            )
            .contains("not a file name")
        );
        assert!(
            reason(
                list(r#"{"name":"a/b","cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#)
                    .unwrap_err()
            )
            .contains("must start with")
        );
        assert!(
            reason(
                list(r#"{"name":"n","cniVersion":"1.0","plugins":[{"type":"a"}]}"#).unwrap_err()
            )
            .contains("MAJOR.MINOR.PATCH")
        );
    }

    #[test]
    fn pinning_drops_cni_versions() {
        let l = list(r#"{"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"n","plugins":[{"type":"a"}]}"#)
            .unwrap();
        assert!(l.allows_status_and_gc());
        let p = l.pinned_to(CniVersion::V1_0_0);
        assert!(p.cni_versions().is_empty());
        assert_eq!(p.to_json()["cniVersion"], "1.0.0");
        assert!(p.to_json().get("cniVersions").is_none());
        let again = NetworkConfigList::from_value(p.to_json(), None).unwrap();
        assert_eq!(again.cni_version(), CniVersion::V1_0_0);
        assert!(!again.allows_status_and_gc());
    }
}
