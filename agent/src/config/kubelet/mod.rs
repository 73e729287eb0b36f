//! `--config` as a real `kubelet.config.k8s.io/v1beta1` KubeletConfiguration (what kubeadm and
//! kind write to /var/lib/kubelet/config.yaml) and `--config-dir` drop-ins over it, resolved the
//! way kubelet v1.35 resolves them into the file layer that flags then override:
//!
//! 1. each file is decoded on its own: a YAML or type error names the file and the field; a
//!    field the type lacks is a warning naming its path (kubelet's v1beta1 decoding is lenient:
//!    strict decoding fails, it logs and decodes again without the unknown fields);
//! 2. relative paths in `--config` are resolved against its directory;
//! 3. the drop-ins are merged over it ([`dropin`]);
//! 4. the merged configuration is checked ([`validate`]), its honoured fields carried over
//!    ([`convert`]), and one warning given per field accepted but not implemented
//!    ([`unimplemented`]).

pub mod convert;
pub mod dropin;
pub mod types;
pub mod unimplemented;
pub mod validate;

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::file::FileConfig;
use super::{ConfigError, Warning};
use types::{API_VERSION, KIND, KubeletConfiguration};

/// Fields holding paths that kubelet resolves against the `--config` file's directory
/// (pkg/kubelet/apis/config/helpers.go, KubeletConfigurationPathRefs).
const PATH_FIELDS: [&str; 7] = [
    "staticPodPath",
    "authentication.x509.clientCAFile",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "resolvConf",
    "volumePluginDir",
    "podLogsDir",
];

fn parse_error(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::ParseFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Whether a parsed `--config` document is a KubeletConfiguration (by its `kind`) rather than
/// the project's flat format. A `kind` or `apiVersion` of anything else is an error.
pub fn is_kubelet_document(path: &Path, doc: &Value) -> Result<bool, ConfigError> {
    let kind = doc.get("kind");
    let api_version = doc.get("apiVersion");
    if kind.is_none() && api_version.is_none() {
        return Ok(false);
    }
    check_header(path, doc)?;
    Ok(true)
}

/// `apiVersion` and `kind` must name kubelet's type, as kubelet's decoder requires.
fn check_header(path: &Path, doc: &Value) -> Result<(), ConfigError> {
    let field = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or("");
    if field("kind") != KIND {
        return Err(parse_error(
            path,
            format!("kind must be {KIND} (got {:?})", field("kind")),
        ));
    }
    if field("apiVersion") != API_VERSION {
        return Err(parse_error(
            path,
            format!(
                "apiVersion must be {API_VERSION} (got {:?})",
                field("apiVersion")
            ),
        ));
    }
    Ok(())
}

/// Formats a serde_ignored path the way kubelet's strict decoder names fields: `a.b[0].c`.
fn field_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        P::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// One KubeletConfiguration file: checked alone (header, types, unknown fields) and returned as
/// its YAML value for merging.
pub fn read_document(
    path: &Path,
    text: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Err(parse_error(path, "the file is empty"));
    }
    let doc: Value = serde_yaml::from_str(text).map_err(|e| parse_error(path, e.to_string()))?;
    check_header(path, &doc)?;
    let mut unknown = Vec::new();
    let typed: Result<KubeletConfiguration, _> =
        serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |p| {
            unknown.push(field_path(&p));
        });
    typed.map_err(|e| parse_error(path, e.to_string()))?;
    warnings.extend(unknown.into_iter().map(|field| Warning::UnknownField {
        file: path.to_path_buf(),
        path: field,
    }));
    Ok(doc)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes the relative paths of the `--config` document absolute against `dir`.
fn resolve_relative_paths(doc: &mut Value, dir: &Path) {
    for field in PATH_FIELDS {
        let slot = field
            .split('.')
            .try_fold(&mut *doc, |v, key| v.get_mut(key));
        if let Some(Value::String(s)) = slot
            && !s.is_empty()
            && Path::new(s.as_str()).is_relative()
        {
            *s = dir.join(s.as_str()).display().to_string();
        }
    }
}

/// The `--config` KubeletConfiguration, if any, already read.
#[derive(Clone, Copy)]
pub struct Base<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

/// Resolves `--config` (a KubeletConfiguration, or none) and `--config-dir` into the file layer
/// and the warnings. `overridden_by_flags` lists the fields whose flag was given.
pub fn load(
    base: Option<Base<'_>>,
    config_dir: Option<&Path>,
    overridden_by_flags: &[&str],
) -> Result<(FileConfig, Vec<Warning>), ConfigError> {
    let mut warnings = Vec::new();
    let mut merged = match base {
        Some(Base { path, text }) => {
            let mut doc = read_document(path, text, &mut warnings)?;
            let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            resolve_relative_paths(&mut doc, &dir);
            doc
        }
        None => Value::Mapping(serde_yaml::Mapping::new()),
    };
    if let Some(dir) = config_dir {
        for file in dropin::files(dir)? {
            let doc = read_document(&file, &read(&file)?, &mut warnings)?;
            dropin::merge(&mut merged, doc);
        }
    }
    let kc: KubeletConfiguration =
        serde_yaml::from_value(merged.clone()).map_err(|e| ConfigError::Kubelet {
            path: String::new(),
            message: e.to_string(),
        })?;
    validate::check(&kc)?;
    let file = convert::to_file_config(&kc)?;
    warnings.extend(unimplemented::warnings(&merged, overridden_by_flags));
    Ok((file, warnings))
}

#[cfg(test)]
mod tests;
