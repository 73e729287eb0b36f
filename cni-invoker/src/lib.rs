//! A CNI runtime library: everything a node agent needs to attach a pod
//! sandbox to a network described by a CNI configuration (spec 1.0 and 1.1,
//! with plugins speaking 0.3.0 to 1.1.0).
//!
//! - [`load_conf_dir`] picks the network configuration the way kubelet and
//!   containerd do (the first `*.conflist`, `*.conf` or `*.json` in lexical
//!   order) and validates it into a [`NetworkConfigList`].
//! - [`Invoker`] runs the chain: [`Invoker::add`], [`Invoker::del`],
//!   [`Invoker::check`], [`Invoker::status`] and [`Invoker::gc`]. It
//!   negotiates the protocol version with every plugin, injects `name`,
//!   `cniVersion`, `prevResult` and `runtimeConfig`, bounds every execution
//!   with a timeout, and caches ADD results on disk ([`ResultCache`]) so that
//!   DEL and CHECK use the configuration ADD used, even after a restart.
//! - Plugins are executed through the [`PluginExec`] trait; [`ProcessExec`]
//!   is the real implementation, a test double can replace it.
//!
//! Errors are one [`CniError`] enum whose `Display` is a one-line message fit
//! for a pod event.
//!
//! ```no_run
//! # async fn sandbox() -> Result<(), cni_invoker::CniError> {
//! use cni_invoker::{AttachmentRequest, CapabilityArgs, Invoker, InvokerConfig};
//!
//! let invoker = Invoker::new(InvokerConfig::new(
//!     "/etc/cni/net.d",
//!     vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
//!     "/var/lib/kubelet/cni",
//! ));
//! let network = invoker.load_network().await?;
//! let request = AttachmentRequest::new("4f1c0a", "/run/netns/cni-4f1c0a", "eth0")
//!     .with_cni_args([("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web-0")])
//!     .with_capability_args(CapabilityArgs::new().with_port_mappings(&[]));
//! let added = invoker.add(&network, &request).await?;
//! let pod_ips: Vec<_> = added.result.ips_of("eth0").iter().map(|ip| ip.address.addr).collect();
//! # let _ = pod_ips;
//! // ... later, when the sandbox is stopped (the netns may already be gone):
//! invoker.del(&network, &request).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod attachment;
mod cache;
mod chain;
mod command;
mod config;
mod error;
mod exec;
mod gc;
mod invoker;
mod request;
mod result;
mod runtime_config;
mod status;
mod version;

pub use attachment::{Attachment, AttachmentRequest};
pub use cache::{CachedAttachment, ResultCache};
pub use chain::{AddOutcome, CheckOutcome, CheckSkipped, DelOutcome};
pub use command::CniCommand;
pub use config::{NetworkConfigList, PluginConfig, load_conf_dir};
pub use error::CniError;
pub use exec::{ExecOutput, ExecRequest, PluginExec, ProcessExec};
pub use gc::GcOutcome;
pub use invoker::{ExecObserver, Invoker, InvokerConfig, PluginTiming, Timeouts};
pub use result::{CniResult, Dns, Interface, IpConfig, IpPrefix, Route};
pub use runtime_config::{Bandwidth, CapabilityArgs, PortMapping};
pub use status::{PluginReadiness, PluginStatus};
pub use version::{CniVersion, SUPPORTED_VERSIONS};
