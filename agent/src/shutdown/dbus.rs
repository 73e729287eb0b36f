//! [`Logind`] on the system bus (zbus, on the agent's tokio runtime): logind's Manager object
//! for the delay, the inhibitor and PrepareForShutdown, systemd's Manager for the reload. The
//! bus is the one `DBUS_SYSTEM_BUS_ADDRESS` names, `/run/dbus/system_bus_socket` otherwise.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::{Connection, Proxy};

use super::logind::{
    Connector, INHIBIT_MODE, INHIBIT_WHAT, INHIBIT_WHO, INHIBIT_WHY, InhibitLock, Logind,
    LogindError, ShutdownEvents, write_dropin,
};

const LOGIND: &str = "org.freedesktop.login1";
const LOGIND_PATH: &str = "/org/freedesktop/login1";
const LOGIND_MANAGER: &str = "org.freedesktop.login1.Manager";
const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Connects to the system bus; the drop-in goes to `dropin_dir`.
pub struct SystemBus {
    pub dropin_dir: PathBuf,
}

impl Default for SystemBus {
    fn default() -> Self {
        SystemBus {
            dropin_dir: PathBuf::from(super::logind::DROPIN_DIR),
        }
    }
}

/// One system bus connection and logind's Manager on it.
pub struct LogindBus {
    connection: Connection,
    manager: Proxy<'static>,
}

async fn proxy(
    connection: &Connection,
    destination: &'static str,
    path: &'static str,
    interface: &'static str,
) -> zbus::Result<Proxy<'static>> {
    // No property cache: InhibitDelayMaxUSec is read again after a reload, and logind does
    // not announce that it changed.
    zbus::proxy::Builder::new(connection)
        .destination(destination)?
        .path(path)?
        .interface(interface)?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

impl Connector for SystemBus {
    type Bus = LogindBus;

    async fn connect(&self) -> Result<LogindBus, LogindError> {
        let connection = Connection::system()
            .await
            .map_err(|e| LogindError::Connect(e.to_string()))?;
        let manager = proxy(&connection, LOGIND, LOGIND_PATH, LOGIND_MANAGER)
            .await
            .map_err(|e| LogindError::Connect(e.to_string()))?;
        Ok(LogindBus {
            connection,
            manager,
        })
    }

    fn override_inhibit_delay(&self, delay: Duration) -> Result<(), LogindError> {
        write_dropin(&self.dropin_dir, delay)
    }
}

impl Logind for LogindBus {
    async fn inhibit_delay_max(&self) -> Result<Duration, LogindError> {
        let usec: u64 = self
            .manager
            .get_property("InhibitDelayMaxUSec")
            .await
            .map_err(|e| LogindError::Delay(e.to_string()))?;
        Ok(Duration::from_micros(usec))
    }

    async fn inhibit(&self) -> Result<InhibitLock, LogindError> {
        let fd: zbus::zvariant::OwnedFd = self
            .manager
            .call(
                "Inhibit",
                &(INHIBIT_WHAT, INHIBIT_WHO, INHIBIT_WHY, INHIBIT_MODE),
            )
            .await
            .map_err(|e| LogindError::Inhibit(e.to_string()))?;
        Ok(InhibitLock(fd.into()))
    }

    async fn reload(&self) -> Result<(), LogindError> {
        let systemd = proxy(&self.connection, SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER)
            .await
            .map_err(|e| LogindError::Reload(e.to_string()))?;
        let sighup: i32 = 1;
        systemd
            .call::<_, _, ()>("KillUnit", &("systemd-logind.service", "all", sighup))
            .await
            .map_err(|e| LogindError::Reload(e.to_string()))
    }

    async fn shutdown_events(&self) -> Result<ShutdownEvents, LogindError> {
        let signals = self
            .manager
            .receive_signal("PrepareForShutdown")
            .await
            .map_err(|e| LogindError::Monitor(e.to_string()))?;
        Ok(signals
            .filter_map(|m| async move {
                match m.body().deserialize::<bool>() {
                    Ok(active) => Some(active),
                    Err(e) => {
                        tracing::warn!(error = %e, "PrepareForShutdown without a boolean, ignored");
                        None
                    }
                }
            })
            .boxed())
    }
}
