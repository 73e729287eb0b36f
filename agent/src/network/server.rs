//! The agent's end of the delegate: a unix socket (mode 0600, root only, like the CRI socket)
//! on which every connection carries one CNI request and its answer.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::chain::Chain;
use super::wire::{self, Request};

/// The largest request accepted (a network config is a few KiB).
const MAX_REQUEST: u64 = 1 << 20;
/// How long a client gets to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `path`, replacing a stale socket file; fails when another process serves it.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process serves this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves requests until `cancel`.
pub async fn serve(listener: UnixListener, chain: Arc<Chain>, cancel: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "CNI socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let chain = chain.clone();
        tokio::spawn(async move {
            if let Err(e) = one(stream, &chain).await {
                debug!(error = %e, "CNI socket connection failed");
            }
        });
    }
}

async fn one(mut stream: UnixStream, chain: &Chain) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    let mut limited = (&mut stream).take(MAX_REQUEST);
    tokio::time::timeout(READ_TIMEOUT, limited.read_to_end(&mut bytes))
        .await
        .map_err(|_| std::io::Error::other("request not received in time"))??;
    let response = match Request::decode(&bytes) {
        Ok(request) => {
            let span = info_span!(
                "cni",
                command = request.var("CNI_COMMAND").unwrap_or_default(),
                pod_uid =
                    wire::pod_uid(request.var("CNI_ARGS").unwrap_or_default()).unwrap_or_default(),
            );
            chain.handle(&request).instrument(span).await
        }
        Err(e) => wire::Response {
            code: 1,
            stdout: wire::error_json("1.0.0", 4, &format!("minikubelet: {e}"), ""),
        },
    };
    stream.write_all(&response.encode()).await?;
    stream.shutdown().await
}
