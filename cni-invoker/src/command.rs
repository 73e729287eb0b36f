//! The CNI operations, as passed in `CNI_COMMAND`.

use std::fmt;

/// A CNI operation; [`CniCommand::as_str`] is the `CNI_COMMAND` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CniCommand {
    /// Attach a container to the network (or apply modifications).
    Add,
    /// Detach a container from the network (best effort, idempotent).
    Del,
    /// Verify an attachment is still as ADD left it (spec 0.4.0+).
    Check,
    /// Ask a plugin whether it can serve ADD requests (spec 1.1.0).
    Status,
    /// Ask a plugin to drop resources of attachments not in a valid list (spec 1.1.0).
    Gc,
    /// Ask a plugin which spec versions it supports.
    Version,
}

impl CniCommand {
    /// The value of `CNI_COMMAND` for this operation.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
