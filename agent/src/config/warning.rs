//! What resolving the settings accepted without acting on it: one line each, logged by the
//! caller once logging is set up.

use std::fmt;
use std::path::PathBuf;

/// A setting accepted for compatibility with kubelet, but not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A KubeletConfiguration field the agent does not implement, set to `value`.
    NotImplemented { field: String, value: String },
    /// A field the KubeletConfiguration type does not have; kubelet decodes v1beta1 leniently and
    /// goes on without it, and so does the agent.
    UnknownField { file: PathBuf, path: String },
    /// A kubelet flag the agent takes (kubeadm and kind pass it) but does not act on.
    IgnoredFlag { flag: String, why: &'static str },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NotImplemented { field, value } => write!(
                f,
                "KubeletConfiguration field {field} is accepted but not implemented (it is set to {value})"
            ),
            Warning::UnknownField { file, path } => write!(
                f,
                "KubeletConfiguration {}: unknown field \"{path}\" ignored, as kubelet's lenient v1beta1 decoding does",
                file.display()
            ),
            Warning::IgnoredFlag { flag, why } => {
                write!(f, "flag {flag} is accepted but not implemented: {why}")
            }
        }
    }
}
