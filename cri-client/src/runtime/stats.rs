//! Resource usage statistics and pod sandbox metrics.

use crate::client::Call;
use crate::{CriClient, CriError, api};

impl CriClient {
    /// `ContainerStats`: one container's usage (`None` if the runtime has
    /// none yet).
    ///
    /// # Errors
    /// [`CriError::NotFound`] for an unknown id, or any other [`CriError`].
    pub async fn container_stats(
        &self,
        container_id: &str,
    ) -> Result<Option<api::ContainerStats>, CriError> {
        let request = api::ContainerStatsRequest {
            container_id: container_id.to_owned(),
        };
        let call = Call::idempotent("container_stats", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.container_stats(r).await
            })
            .await?;
        Ok(response.stats)
    }

    /// `ListContainerStats`: usage of containers matching `filter`.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn list_container_stats(
        &self,
        filter: Option<api::ContainerStatsFilter>,
    ) -> Result<Vec<api::ContainerStats>, CriError> {
        let request = api::ListContainerStatsRequest { filter };
        let call = Call::idempotent("list_container_stats", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.list_container_stats(r).await
            })
            .await?;
        Ok(response.stats)
    }

    /// `PodSandboxStats`: one sandbox's usage.
    ///
    /// # Errors
    /// [`CriError::NotFound`] for an unknown id, or any other [`CriError`].
    pub async fn pod_sandbox_stats(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<Option<api::PodSandboxStats>, CriError> {
        let request = api::PodSandboxStatsRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        let call = Call::idempotent("pod_sandbox_stats", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.pod_sandbox_stats(r).await
            })
            .await?;
        Ok(response.stats)
    }

    /// `ListPodSandboxStats`: usage of sandboxes matching `filter`.
    ///
    /// # Errors
    /// Any [`CriError`].
    pub async fn list_pod_sandbox_stats(
        &self,
        filter: Option<api::PodSandboxStatsFilter>,
    ) -> Result<Vec<api::PodSandboxStats>, CriError> {
        let request = api::ListPodSandboxStatsRequest { filter };
        let call = Call::idempotent("list_pod_sandbox_stats", self.request_timeout());
        let response = self
            .invoke(call, &self.runtime, request, |mut c, r| async move {
                c.list_pod_sandbox_stats(r).await
            })
            .await?;
        Ok(response.stats)
    }

    /// `ListMetricDescriptors`: descriptions of the metrics
    /// `list_pod_sandbox_metrics` returns.
    ///
    /// # Errors
    /// Any [`CriError`]; `Unimplemented` from runtimes that predate it.
    pub async fn list_metric_descriptors(&self) -> Result<Vec<api::MetricDescriptor>, CriError> {
        let call = Call::idempotent("list_metric_descriptors", self.request_timeout());
        let response = self
            .invoke(
                call,
                &self.runtime,
                api::ListMetricDescriptorsRequest {},
                |mut c, r| async move { c.list_metric_descriptors(r).await },
            )
            .await?;
        Ok(response.descriptors)
    }

    /// `ListPodSandboxMetrics`: per-sandbox metrics in the runtime's format.
    ///
    /// # Errors
    /// Any [`CriError`]; `Unimplemented` from runtimes that predate it.
    pub async fn list_pod_sandbox_metrics(&self) -> Result<Vec<api::PodSandboxMetrics>, CriError> {
        let call = Call::idempotent("list_pod_sandbox_metrics", self.request_timeout());
        let response = self
            .invoke(
                call,
                &self.runtime,
                api::ListPodSandboxMetricsRequest {},
                |mut c, r| async move { c.list_pod_sandbox_metrics(r).await },
            )
            .await?;
        Ok(response.pod_metrics)
    }
}
