//! Where the file layer comes from: `--config` in the project's flat format (kept as a
//! documented alias), or a KubeletConfiguration (`kind: KubeletConfiguration`) with the
//! `--config-dir` drop-ins over it; plus the warnings for kubelet flags taken but not acted on.

use std::path::Path;

use serde_yaml::Value;

use super::file::FileConfig;
use super::flags::Flags;
use super::kubelet::{self, Base};
use super::{ConfigError, Warning};

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// KubeletConfiguration fields that a flag given on the command line replaces, so that only the
/// flag is judged for a warning.
fn overridden_by_flags(flags: &Flags) -> Vec<&'static str> {
    [
        ("failSwapOn", flags.fail_swap_on.is_some()),
        ("rotateCertificates", flags.rotate_certificates.is_some()),
        ("providerID", flags.provider_id.is_some()),
        ("staticPodURL", flags.manifest_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, given)| given.then_some(field))
    .collect()
}

/// The file layer and its warnings.
pub fn load(flags: &Flags) -> Result<(FileConfig, Vec<Warning>), ConfigError> {
    let text = flags.config.as_deref().map(read).transpose()?;
    let base = match (flags.config.as_deref(), text.as_deref()) {
        (Some(path), Some(text)) => {
            let doc: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_yaml::from_str(text).map_err(|e| ConfigError::ParseFile {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            };
            if !kubelet::is_kubelet_document(path, &doc)? {
                if let Some(dir) = &flags.config_dir {
                    return Err(ConfigError::ConfigDir {
                        path: dir.clone(),
                        message: format!(
                            "drop-ins merge over a KubeletConfiguration, and {} is in the flat format",
                            path.display()
                        ),
                    });
                }
                let file = FileConfig::parse(text).map_err(|message| ConfigError::ParseFile {
                    path: path.to_path_buf(),
                    message,
                })?;
                return Ok((file, Vec::new()));
            }
            Some(Base { path, text })
        }
        _ => None,
    };
    if base.is_none() && flags.config_dir.is_none() {
        return Ok((FileConfig::default(), Vec::new()));
    }
    kubelet::load(
        base,
        flags.config_dir.as_deref(),
        &overridden_by_flags(flags),
    )
}

/// Warnings for the kubelet flags (from kubeadm-flags.env, kind) that the agent takes but does
/// not act on.
pub fn flag_warnings(flags: &Flags) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |flag: String, why: &'static str| out.push(Warning::IgnoredFlag { flag, why });
    if flags.pod_infra_container_image.is_some() {
        warn(
            "--pod-infra-container-image".into(),
            "the container runtime's own sandbox image is used",
        );
    }
    if flags.fail_swap_on == Some(true) {
        warn("--fail-swap-on".into(), "the agent does not check for swap");
    }
    if flags
        .provider_id
        .as_deref()
        .is_some_and(|id| !id.is_empty())
    {
        warn(
            "--provider-id".into(),
            "the Node's spec.providerID is not set",
        );
    }
    if flags
        .manifest_url
        .as_deref()
        .is_some_and(|url| !url.is_empty())
    {
        warn(
            "--manifest-url".into(),
            "static pods from a URL are not run",
        );
    }
    out
}
