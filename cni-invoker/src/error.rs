//! The one error type of this crate; every `Display` is a single line fit for a pod event.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::command::CniCommand;

/// How many characters of a plugin's output an error keeps.
pub(crate) const OUTPUT_LIMIT: usize = 512;

/// Everything that can go wrong while loading a network configuration or
/// running a plugin chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CniError {
    /// The conf dir holds no `*.conflist`, `*.conf` or `*.json` file.
    #[error("no CNI network config (*.conflist, *.conf, *.json) in {}", .dir.display())]
    NoConfig {
        /// The directory searched.
        dir: PathBuf,
    },

    /// A network configuration is malformed or invalid.
    #[error("invalid CNI config {file}: {}", one_line(.reason))]
    Config {
        /// The file it came from, or `<inline>` for bytes given directly.
        file: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No executable named after the plugin `type` exists in any bin dir.
    #[error("CNI plugin {plugin:?} not found in {}", join_paths(.dirs))]
    MissingPlugin {
        /// The plugin `type`.
        plugin: String,
        /// The directories searched, in order.
        dirs: Vec<PathBuf>,
    },

    /// The plugin (or this runtime) cannot speak the configured `cniVersion`.
    #[error(
        "CNI plugin {plugin:?} does not support cniVersion {requested} (it supports {})",
        .supported.join(", ")
    )]
    UnsupportedVersion {
        /// The plugin `type`, or `minikubelet` when the runtime itself refuses.
        plugin: String,
        /// The version the network configuration asks for.
        requested: String,
        /// The versions the plugin reported.
        supported: Vec<String>,
    },

    /// The plugin exited non-zero and printed a CNI error object.
    #[error(
        "CNI plugin {plugin:?} failed: {} (code {code}){}",
        one_line(.msg),
        .details.as_deref().filter(|d| !d.is_empty()).map(|d| format!(": {}", one_line(d))).unwrap_or_default()
    )]
    Plugin {
        /// The plugin `type`.
        plugin: String,
        /// The CNI error code (1-99 well-known, 100+ plugin specific).
        code: u32,
        /// The short message.
        msg: String,
        /// The long message, if any.
        details: Option<String>,
    },

    /// The plugin printed something that is not the JSON the protocol asks for.
    #[error("CNI plugin {plugin:?} returned invalid output ({exit_status}): {}", one_line(.output))]
    InvalidOutput {
        /// The plugin `type`.
        plugin: String,
        /// Its stdout, truncated (its stderr when stdout was empty).
        output: String,
        /// How the plugin exited.
        exit_status: ExitStatus,
    },

    /// The plugin printed JSON that does not form a valid result.
    #[error("CNI plugin {plugin:?} returned an invalid result: {}", one_line(.reason))]
    InvalidResult {
        /// The plugin `type`.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The plugin did not finish in time; it and its children were killed.
    #[error("CNI plugin {plugin:?} {command} timed out after {timeout:?} and was killed")]
    Timeout {
        /// The plugin `type`.
        plugin: String,
        /// The operation.
        command: CniCommand,
        /// The limit that was exceeded.
        timeout: Duration,
    },

    /// The plugin binary could not be started.
    #[error("cannot execute CNI plugin {plugin:?} ({}): {source}", .path.display())]
    Spawn {
        /// The plugin `type`.
        plugin: String,
        /// The binary.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },

    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The operating system's reason.
        source: io::Error,
    },

    /// A cached result file is unreadable or does not belong to the key it is stored under.
    #[error("corrupt CNI cache entry {}: {}", .path.display(), one_line(.reason))]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Container id, interface name or netns violate the CNI rules.
    #[error("invalid CNI attachment: {reason}")]
    InvalidAttachment {
        /// Which parameter, and why.
        reason: String,
    },

    /// CHECK was asked for an attachment that has no cached ADD result.
    #[error(
        "no cached CNI ADD result for network {network:?}, container {container_id}, interface {ifname}"
    )]
    NotAdded {
        /// The network name.
        network: String,
        /// The container id.
        container_id: String,
        /// The interface name.
        ifname: String,
    },
}

impl CniError {
    /// The CNI error code when a plugin reported one (e.g. 11 "try again
    /// later", 50/51 from STATUS).
    #[must_use]
    pub fn plugin_code(&self) -> Option<u32> {
        match self {
            Self::Plugin { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn config(file: Option<&Path>, reason: impl Into<String>) -> Self {
        Self::Config {
            file: file.map_or_else(|| "<inline>".to_owned(), |p| p.display().to_string()),
            reason: reason.into(),
        }
    }
}

/// Collapses line breaks and runs of whitespace, so messages stay one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keeps at most [`OUTPUT_LIMIT`] characters of `text`, saying how much was cut.
pub(crate) fn truncate(text: &str) -> String {
    let total = text.chars().count();
    if total <= OUTPUT_LIMIT {
        return text.to_owned();
    }
    let kept: String = text.chars().take(OUTPUT_LIMIT).collect();
    format!("{kept}... ({} more characters)", total - OUTPUT_LIMIT)
}

fn join_paths(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(no bin dirs configured)".to_owned();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn plugin_error_is_one_line_with_details() {
        let e = CniError::Plugin {
            plugin: "bridge".into(),
            code: 7,
            msg: "invalid\nconfig".into(),
            details: Some("subnet  too small".into()),
        };
        assert_eq!(
            e.to_string(),
            r#"CNI plugin "bridge" failed: invalid config (code 7): subnet too small"#
        );
        assert_eq!(e.plugin_code(), Some(7));
    }

    #[test]
    fn invalid_output_names_exit_status() {
        let e = CniError::InvalidOutput {
            plugin: "x".into(),
            output: "not json".into(),
            exit_status: ExitStatus::from_raw(1 << 8),
        };
        assert_eq!(
            e.to_string(),
            r#"CNI plugin "x" returned invalid output (exit status: 1): not json"#
        );
    }

    #[test]
    fn truncate_keeps_a_prefix_and_counts_the_rest() {
        let long = "a".repeat(OUTPUT_LIMIT + 10);
        let t = truncate(&long);
        assert!(t.starts_with(&"a".repeat(OUTPUT_LIMIT)));
        assert!(t.ends_with("(10 more characters)"));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn missing_plugin_lists_dirs() {
        let e = CniError::MissingPlugin {
            plugin: "nope".into(),
            dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"CNI plugin "nope" not found in /opt/cni/bin:/usr/lib/cni"#
        );
    }
}
