//! [`SliceManager`] on systemd's Manager over the system bus (zbus, on the agent's tokio
//! runtime; the bus `DBUS_SYSTEM_BUS_ADDRESS` names, `/run/dbus/system_bus_socket`
//! otherwise). A job is done when systemd's `JobRemoved` for it says "done", within 30 s
//! (libcontainer's wait). The cgroup calls are synchronous ([`super::CgroupFs`], made off the
//! async threads), so each D-Bus exchange runs as a task on the runtime while the caller waits
//! for its answer; a caller that waits too long gets an error, never a hang or a panic.
//! [`host_fs`] picks the host's cgroups for the driver at start.

use std::future::Future;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use futures::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, Value};
use zbus::{Connection, Proxy};

use super::driver::CgroupDriver;
use super::fs::CgroupFs;
use super::systemd_slices::{PropValue, Property, SliceManager, SystemdHierarchy};
use super::version::Hierarchy;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// How long a unit's job may take (libcontainer's timeout).
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// systemd's Manager on the system bus.
#[derive(Debug, Clone)]
pub struct DbusSlices {
    handle: tokio::runtime::Handle,
    manager: Proxy<'static>,
}

impl DbusSlices {
    /// Connects to systemd and subscribes to its job signals; returns systemd's version.
    ///
    /// # Errors
    /// No system bus, or no systemd on it.
    pub async fn connect() -> Result<(DbusSlices, String), String> {
        let err = |e: zbus::Error| e.to_string();
        let connection = Connection::system().await.map_err(err)?;
        let manager: Proxy<'static> = zbus::proxy::Builder::new(&connection)
            .destination(SYSTEMD)
            .map_err(err)?
            .path(SYSTEMD_PATH)
            .map_err(err)?
            .interface(SYSTEMD_MANAGER)
            .map_err(err)?
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(err)?;
        let version: String = manager
            .get_property("Version")
            .await
            .map_err(|e| e.to_string())?;
        // systemd sends JobRemoved only while some client is subscribed.
        manager
            .call::<_, _, ()>("Subscribe", &())
            .await
            .map_err(err)?;
        let slices = DbusSlices {
            handle: tokio::runtime::Handle::current(),
            manager,
        };
        Ok((slices, version))
    }

    /// Runs `exchange` on the runtime and waits for its answer.
    fn run(
        &self,
        exchange: impl Future<Output = Result<(), String>> + Send + 'static,
    ) -> Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(exchange.await);
        });
        rx.recv_timeout(JOB_TIMEOUT + Duration::from_secs(5))
            .map_err(|_| "no answer from systemd".to_string())?
    }
}

fn value(v: PropValue) -> Value<'static> {
    match v {
        PropValue::Bool(b) => Value::from(b),
        PropValue::U64(n) => Value::from(n),
        PropValue::Str(s) => Value::from(s),
        PropValue::Strings(list) => Value::from(list),
    }
}

fn values(properties: Vec<Property>) -> Vec<(&'static str, Value<'static>)> {
    properties
        .into_iter()
        .map(|(name, v)| (name, value(v)))
        .collect()
}

/// Whether `e` is systemd's error `name`.
fn is(e: &zbus::Error, name: &str) -> bool {
    matches!(e, zbus::Error::MethodError(n, _, _) if n.as_str() == name)
}

/// Calls `method` (which answers with a job), and waits for the job; `ok_error` is the systemd
/// error that means there is nothing to do.
async fn job<B>(
    manager: Proxy<'static>,
    method: &'static str,
    body: B,
    ok_error: &str,
) -> Result<(), String>
where
    B: serde::Serialize + zbus::zvariant::DynamicType + Send,
{
    // Listening before the call, so the job's end cannot be missed.
    let mut removed = manager
        .receive_signal("JobRemoved")
        .await
        .map_err(|e| e.to_string())?;
    let reply = match manager.call_method(method, &body).await {
        Ok(reply) => reply,
        Err(e) if is(&e, ok_error) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let job: OwnedObjectPath = reply.body().deserialize().map_err(|e| e.to_string())?;
    let ended = async {
        while let Some(signal) = removed.next().await {
            let Ok((_, path, _, result)) = signal
                .body()
                .deserialize::<(u32, OwnedObjectPath, String, String)>()
            else {
                continue;
            };
            if path == job {
                return if result == "done" {
                    Ok(())
                } else {
                    Err(format!("{method} job ended {result:?}"))
                };
            }
        }
        Err("systemd's signals ended".to_string())
    };
    tokio::time::timeout(JOB_TIMEOUT, ended)
        .await
        .map_err(|_| format!("{method}: no job end within {JOB_TIMEOUT:?}"))?
}

impl SliceManager for DbusSlices {
    fn start(&self, unit: &str, properties: Vec<Property>) -> Result<(), String> {
        let aux: Vec<(&str, Vec<(&str, Value<'static>)>)> = Vec::new();
        let body = (unit.to_string(), "replace", values(properties), aux);
        self.run(job(
            self.manager.clone(),
            "StartTransientUnit",
            body,
            UNIT_EXISTS,
        ))
    }

    fn set(&self, unit: &str, properties: Vec<Property>) -> Result<(), String> {
        let manager = self.manager.clone();
        let body = (unit.to_string(), true, values(properties));
        self.run(async move {
            manager
                .call::<_, _, ()>("SetUnitProperties", &body)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn stop(&self, unit: &str) -> Result<(), String> {
        let body = (unit.to_string(), "replace");
        self.run(job(self.manager.clone(), "StopUnit", body, NO_SUCH_UNIT))
    }
}

/// The host's cgroups for `driver`: the hierarchy itself (cgroupfs), or, under the systemd
/// driver, the hierarchy with systemd making the slices. Without a systemd on the system bus
/// the slices are written directly, which this says once.
pub async fn host_fs(driver: CgroupDriver, hierarchy: Hierarchy) -> Arc<dyn CgroupFs> {
    if driver == CgroupDriver::Cgroupfs {
        return Arc::new(hierarchy);
    }
    let connected = tokio::time::timeout(Duration::from_secs(10), DbusSlices::connect())
        .await
        .unwrap_or_else(|_| Err("no answer within 10s".to_string()));
    match connected {
        Ok((slices, version)) => {
            tracing::info!(systemd = %version, "pod cgroups are systemd slices, made over D-Bus");
            Arc::new(SystemdHierarchy::new(hierarchy, slices))
        }
        Err(error) => {
            tracing::warn!(%error, "the systemd cgroup driver without systemd on the system bus: the slices' cgroups are written directly");
            Arc::new(hierarchy)
        }
    }
}
