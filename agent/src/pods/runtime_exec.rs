//! Probes and hooks run their commands through the pod side's runtime: [`RuntimeExec`] is
//! [`ContainerExec`] over `Arc<dyn PodRuntime>`, mapping ExecSync as the CriClient one does.

use std::sync::Arc;
use std::time::Duration;

use super::probe::{ContainerExec, ExecOutput};
use crate::runtime::PodRuntime;

/// ExecSync through the pod side's runtime (a type without lifetimes, so its futures are Send
/// in spawned tasks).
#[derive(Clone)]
pub struct RuntimeExec(pub Arc<dyn PodRuntime>);

impl ContainerExec for RuntimeExec {
    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, String> {
        self.0
            .exec_sync(container_id, cmd, timeout)
            .await
            .map(ExecOutput::from)
            .map_err(|e| e.to_string())
    }
}
