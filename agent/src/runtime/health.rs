//! The container runtime's health, polled every few seconds and published on a watch channel so
//! the node status writer reacts to a change at once instead of at its next tick.

use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::{RuntimeCondition, RuntimeHandler, RuntimeInfo};

/// What the agent knows of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeHealth {
    /// Not checked yet.
    Unknown,
    /// The runtime did not answer.
    Down { error: String },
    /// The runtime answered; its conditions say whether it and its network are ready.
    Up {
        /// e.g. "containerd://1.6.20".
        version: String,
        conditions: Vec<RuntimeCondition>,
        /// Its handlers and their features (none from containerd 1.6).
        handlers: Vec<RuntimeHandler>,
    },
}

impl RuntimeHealth {
    /// The condition of the given type (RuntimeReady, NetworkReady), if reported.
    pub fn condition(&self, kind: &str) -> Option<&RuntimeCondition> {
        match self {
            RuntimeHealth::Up { conditions, .. } => conditions.iter().find(|c| c.kind == kind),
            _ => None,
        }
    }

    /// The handlers the runtime reported (empty while it is not up, or from a runtime too old
    /// to report them).
    pub fn handlers(&self) -> &[RuntimeHandler] {
        match self {
            RuntimeHealth::Up { handlers, .. } => handlers,
            _ => &[],
        }
    }

    /// Whether `handler` runs pods in user namespaces, as kubelet's
    /// HandlerSupportsUserNamespaces: false when the runtime reports no handlers, an error for a
    /// handler it does not know.
    pub fn supports_user_namespaces(&self, handler: &str) -> Result<bool, String> {
        let handlers = self.handlers();
        if handlers.is_empty() {
            return Ok(false);
        }
        handlers
            .iter()
            .find(|h| h.name == handler)
            .map(|h| h.user_namespaces)
            .ok_or_else(|| format!("the handler {handler:?} is not known"))
    }

    /// The runtime's version string, when it is up.
    pub fn version(&self) -> Option<&str> {
        match self {
            RuntimeHealth::Up { version, .. } => Some(version),
            _ => None,
        }
    }
}

/// One health check, for start-up: the first status the node reports is then already informed.
pub async fn check_once<R: RuntimeInfo>(runtime: &R, timeout: Duration) -> RuntimeHealth {
    check(runtime, timeout, &mut None).await
}

/// Polls `runtime` every `interval` (each check bounded by `timeout`) and publishes changes.
pub async fn monitor<R: RuntimeInfo>(
    runtime: R,
    interval: Duration,
    timeout: Duration,
    tx: watch::Sender<RuntimeHealth>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut version: Option<String> = tx.borrow().version().map(str::to_string);
    loop {
        ticker.tick().await;
        let health = check(&runtime, timeout, &mut version).await;
        tx.send_if_modified(|current| {
            if *current == health {
                return false;
            }
            match &health {
                RuntimeHealth::Down { error } => warn!(%error, "container runtime is down"),
                RuntimeHealth::Up { version, .. } => info!(%version, "container runtime is up"),
                RuntimeHealth::Unknown => {}
            }
            *current = health.clone();
            true
        });
        if tx.is_closed() {
            return;
        }
    }
}

async fn check<R: RuntimeInfo>(
    runtime: &R,
    timeout: Duration,
    version: &mut Option<String>,
) -> RuntimeHealth {
    let down = |error: String| RuntimeHealth::Down { error };
    let status = match tokio::time::timeout(timeout, runtime.status()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            *version = None;
            return down(e.to_string());
        }
        Err(_) => {
            *version = None;
            return down(format!("runtime status check timed out after {timeout:?}"));
        }
    };
    if version.is_none() {
        match tokio::time::timeout(timeout, runtime.version()).await {
            Ok(Ok(v)) => *version = Some(v),
            Ok(Err(e)) => return down(e.to_string()),
            Err(_) => return down(format!("runtime version check timed out after {timeout:?}")),
        }
    }
    RuntimeHealth::Up {
        version: version.clone().unwrap_or_default(),
        conditions: status.conditions,
        handlers: status.handlers,
    }
}
