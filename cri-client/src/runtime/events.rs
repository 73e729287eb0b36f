//! `GetContainerEvents`: the runtime's stream of container lifecycle events.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_stream::Stream;

use crate::client::Call;
use crate::{CriClient, CriError, api};

const OP: &str = "get_container_events";

/// Container events from the runtime, as a [`Stream`]. Ends when the runtime
/// closes the stream; a transport failure or runtime error is yielded as an
/// `Err` and the stream should then be reopened (after relisting, since
/// events may have been missed).
#[derive(Debug)]
pub struct ContainerEventStream {
    inner: tonic::Streaming<api::ContainerEventResponse>,
    request_timeout: std::time::Duration,
}

impl Stream for ContainerEventStream {
    type Item = Result<api::ContainerEventResponse, CriError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let request_timeout = self.request_timeout;
        Pin::new(&mut self.inner).poll_next(cx).map(|item| {
            item.map(|result| {
                result.map_err(|status| CriError::from_status(OP, &status, request_timeout))
            })
        })
    }
}

impl CriClient {
    /// `GetContainerEvents`: subscribes to container events (the basis of an
    /// evented PLEG). Only opening the stream is bounded by the request
    /// timeout (and retried while the runtime is unavailable); the stream
    /// itself lives until the runtime or the caller ends it.
    ///
    /// # Errors
    /// Any [`CriError`] from opening the stream; `Unimplemented` from
    /// runtimes without event support.
    pub async fn get_container_events(&self) -> Result<ContainerEventStream, CriError> {
        let call = Call::stream(OP, self.request_timeout());
        let inner = self
            .invoke(
                call,
                &self.runtime,
                api::GetEventsRequest {},
                |mut c, r| async move { c.get_container_events(r).await },
            )
            .await?;
        Ok(ContainerEventStream {
            inner,
            request_timeout: self.request_timeout(),
        })
    }
}
