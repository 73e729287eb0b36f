//! Running commands in containers, and the streaming-server URLs for
//! exec, attach and port forwarding.

use std::time::Duration;

use super::whole_seconds;
use crate::client::Call;
use crate::{CriClient, CriError, api};

impl CriClient {
    /// `ExecSync`: runs `cmd` in the container and returns its exit code and
    /// output; a non-zero exit code is a successful call. The runtime kills
    /// the command after `timeout` (rounded up to whole seconds; zero means
    /// no limit on the runtime side). The client's deadline is `timeout`
    /// plus [`crate::ClientOptions::runtime_grace`], or the request timeout
    /// when `timeout` is zero.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried (the command may have side effects).
    pub async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<api::ExecSyncResponse, CriError> {
        let request = api::ExecSyncRequest {
            container_id: container_id.to_owned(),
            cmd,
            timeout: whole_seconds(timeout),
        };
        let deadline = if timeout.is_zero() {
            self.request_timeout()
        } else {
            timeout.saturating_add(self.options().runtime_grace)
        };
        self.invoke(
            Call::once("exec_sync", deadline),
            &self.runtime,
            request,
            |mut c, r| async move { c.exec_sync(r).await },
        )
        .await
    }

    /// `Exec`: prepares a streaming exec session; returns the URL the
    /// caller connects to.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried.
    pub async fn exec(&self, request: api::ExecRequest) -> Result<api::ExecResponse, CriError> {
        self.invoke(
            Call::once("exec", self.request_timeout()),
            &self.runtime,
            request,
            |mut c, r| async move { c.exec(r).await },
        )
        .await
    }

    /// `Attach`: prepares a streaming attach session; returns its URL.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried.
    pub async fn attach(
        &self,
        request: api::AttachRequest,
    ) -> Result<api::AttachResponse, CriError> {
        self.invoke(
            Call::once("attach", self.request_timeout()),
            &self.runtime,
            request,
            |mut c, r| async move { c.attach(r).await },
        )
        .await
    }

    /// `PortForward`: prepares a port-forward session to `ports` of the
    /// sandbox; returns its URL.
    ///
    /// # Errors
    /// Any [`CriError`]; never retried.
    pub async fn port_forward(
        &self,
        pod_sandbox_id: &str,
        ports: Vec<i32>,
    ) -> Result<api::PortForwardResponse, CriError> {
        let request = api::PortForwardRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
            port: ports,
        };
        let call = Call::once("port_forward", self.request_timeout());
        self.invoke(call, &self.runtime, request, |mut c, r| async move {
            c.port_forward(r).await
        })
        .await
    }
}
