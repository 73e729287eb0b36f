//! Pod volumes, as kubelet's volume manager: desired state from the pods, actual state from
//! disk and the mount table, reconciled before containers start and after they stop. Layout
//! `ROOT/pods/UID/volumes/kubernetes.io~PLUGIN/NAME`. One concern per module:
//! - [`manager`]: [`Volumes`], the reconciler (set up, refresh, tear down);
//! - [`plugin`]: which plugin serves a volume, mount errors, the [`ExternalPlugin`] seam (CSI);
//! - [`layout`]: the paths; [`mounts`]: tmpfs/bind/unmount and the mount table;
//! - [`atomic_writer`]: the `..data` symlink swap for API-backed contents;
//! - [`dirfd`]: fd-relative, no-follow file system calls for trees containers can write;
//!   [`ownership`]: fsGroup (group and modes of a volume's contents);
//! - [`emptydir`], [`configmap_secret`], [`downward`], [`projected`], [`token`], [`hostpath`]:
//!   the plugins; [`subpath`]: safe subPath binds; [`container_mounts`]: CRI mounts;
//! - [`reconstruct`]: the state found on disk after a restart, orphan cleanup.
//! - [`usage`]: how much a volume's tree holds (the eviction manager's emptyDir limits).

pub mod atomic_writer;
pub mod configmap_secret;
pub mod container_mounts;
pub mod dirfd;
pub mod downward;
pub mod emptydir;
pub mod hostpath;
pub mod layout;
pub mod manager;
pub mod mounts;
pub mod ownership;
pub mod plugin;
pub mod projected;
pub mod reconstruct;
pub mod subpath;
pub mod token;
pub mod usage;

pub use container_mounts::{MountSources, container_mounts};
pub use manager::{DEFAULT_REFRESH, NotReady, Ready, Volumes};
pub use plugin::{ExternalPlugin, MountError, Plugin};
