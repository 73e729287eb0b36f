//! Static pods: pods defined by manifest files in `--pod-manifest-path` (KubeletConfiguration
//! `staticPodPath`) rather than by the API server, run by the same workers as every other pod,
//! with kubelet's rules:
//!
//! - [`manifest`]: one file is one Pod; its name gets `-NODE` appended, its UID is a hash of
//!   the parsed content, the node and the file's path (a changed file is a new pod, an
//!   unchanged one keeps its UID across agent restarts and so adopts its running sandbox), and
//!   it carries the `kubernetes.io/config.{source,hash,seen}` annotations; [`api_refs`]
//!   refuses manifests that reference API objects, as kubelet 1.35 does;
//! - [`scan`]: one look at the directory (no recursion, dot files skipped, files capped at
//!   10 MiB), [`dir_watch`]: inotify on it, and [`source`]: the loop that looks on every
//!   change and every `--file-check-frequency`, and starts, replaces and stops the pods'
//!   workers;
//! - [`registry`]: what the agent knows of its static pods (the pod, the latest status its
//!   worker computed) and of the mirror pods the API watch shows; [`writer`] routes the
//!   workers' status writes for static pods there;
//! - [`mirror`]: building and recognising mirror pods (annotation `kubernetes.io/config.mirror`);
//!   [`mirrors`]: the task that keeps one mirror pod per static pod in the API, writes the
//!   status to it, and deletes mirror pods whose static pod is gone. The mirror pod is a view:
//!   deleting it never stops the static pod.

pub mod api_refs;
pub mod dir_watch;
pub mod manifest;
pub mod mirror;
pub mod mirrors;
pub mod registry;
pub mod scan;
pub mod source;
#[cfg(test)]
mod source_tests;
pub mod writer;

pub use registry::StaticPods;

pub use super::config_source::{
    CONFIG_HASH, CONFIG_MIRROR, CONFIG_SEEN, CONFIG_SOURCE, FILE_SOURCE, annotation,
};
