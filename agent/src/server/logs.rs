//! /containerLogs/NS/POD/CONTAINER: a container's log from its CRI log file, with kubelet's
//! options (follow, tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes).
//! Following survives rotation (the file is reopened when it is replaced) and ends once the
//! container has stopped and its log is drained.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Response, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;

use super::log_view::{LogOptions, limit, render, render_ended};
use super::{ServerError, ServerState, lookup};
use super::{cri_log, tail};

/// Bounds on what one request may ask for.
const MAX_TAIL_LINES: usize = 100_000;
const MAX_READ_BYTES: u64 = 64 << 20;
/// What the follower reads per step: a burst of output is sent in pieces of this size rather
/// than read into memory whole.
const FOLLOW_READ_BYTES: u64 = 1 << 20;
const POLL: Duration = Duration::from_millis(200);
const STATE_CHECK_EVERY: u32 = 5;

/// The query parameters, as strings so that bad values get a 400 naming the parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    follow: Option<String>,
    tail_lines: Option<String>,
    since_seconds: Option<String>,
    since_time: Option<String>,
    timestamps: Option<String>,
    previous: Option<String>,
    limit_bytes: Option<String>,
}

fn boolean(name: &str, v: Option<&str>) -> Result<bool, ServerError> {
    match v {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ServerError::BadRequest(format!(
            "invalid {name} {other:?}: expected true or false"
        ))),
    }
}

fn number(name: &str, v: Option<&str>, min: i64) -> Result<Option<i64>, ServerError> {
    let Some(raw) = v else {
        return Ok(None);
    };
    let n: i64 = raw
        .parse()
        .map_err(|_| ServerError::BadRequest(format!("invalid {name} {raw:?}: not a number")))?;
    if n < min {
        return Err(ServerError::BadRequest(format!(
            "invalid {name} {n}: must be at least {min}"
        )));
    }
    Ok(Some(n))
}

impl LogQuery {
    /// Validates the query as kubelet does; `now_nanos` anchors sinceSeconds.
    pub fn options(&self, now_nanos: i128) -> Result<LogOptions, ServerError> {
        if self.since_seconds.is_some() && self.since_time.is_some() {
            return Err(ServerError::BadRequest(
                "at most one of sinceTime or sinceSeconds may be specified".into(),
            ));
        }
        let since_nanos = match (&self.since_seconds, &self.since_time) {
            (Some(_), _) => number("sinceSeconds", self.since_seconds.as_deref(), 1)?
                .map(|s| now_nanos - i128::from(s) * 1_000_000_000),
            (_, Some(t)) => Some(cri_log::epoch_nanos(t).ok_or_else(|| {
                ServerError::BadRequest(format!("invalid sinceTime {t:?}: expected RFC 3339"))
            })?),
            _ => None,
        };
        Ok(LogOptions {
            follow: boolean("follow", self.follow.as_deref())?,
            tail_lines: number("tailLines", self.tail_lines.as_deref(), 0)?.map(|n| {
                usize::try_from(n)
                    .unwrap_or(MAX_TAIL_LINES)
                    .min(MAX_TAIL_LINES)
            }),
            since_nanos,
            timestamps: boolean("timestamps", self.timestamps.as_deref())?,
            previous: boolean("previous", self.previous.as_deref())?,
            limit_bytes: number("limitBytes", self.limit_bytes.as_deref(), 1)?
                .map(|n| u64::try_from(n).unwrap_or(MAX_READ_BYTES)),
        })
    }
}

/// What a response starts with: the file's complete lines (with tailLines, only those holding
/// the last N logical lines), and the offset just past them, where following picks up.
struct Head {
    file: std::fs::File,
    text: Vec<u8>,
    end: u64,
}

/// Opens and reads the log (blocking: run on a blocking thread). Reads at most
/// [`MAX_READ_BYTES`]: from the start without tailLines, back from the end with it.
fn read_head(
    path: &std::path::Path,
    container: &str,
    tail_lines: Option<usize>,
) -> Result<Head, ServerError> {
    let mut file = std::fs::File::open(path).map_err(|e| {
        ServerError::NotFound(format!(
            "failed to open log file of container \"{container}\": {e}"
        ))
    })?;
    let reading =
        |e: std::io::Error| ServerError::Runtime(format!("reading {}: {e}", path.display()));
    let (text, end) = match tail_lines {
        Some(n) => {
            let len = file.metadata().map_err(reading)?.len();
            let floor = len.saturating_sub(MAX_READ_BYTES);
            tail::last_lines(&mut file, len, n, floor, tail::CHUNK).map_err(reading)?
        }
        None => complete_lines(&mut file).map_err(reading)?,
    };
    Ok(Head { file, text, end })
}

/// The complete lines of the file's first [`MAX_READ_BYTES`]; a trailing fragment is left
/// for the follower.
fn complete_lines(file: &mut std::fs::File) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::Read;
    let mut text = Vec::new();
    file.by_ref().take(MAX_READ_BYTES).read_to_end(&mut text)?;
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    text.truncate(complete);
    Ok((text, complete as u64))
}

pub async fn container_logs(
    State(state): State<Arc<ServerState>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response<Body> {
    match serve(state, &ns, &pod, &container, &q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    state: Arc<ServerState>,
    ns: &str,
    pod: &str,
    container: &str,
    q: &LogQuery,
) -> Result<Response<Body>, ServerError> {
    let now = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
    let opts = q.options(now)?;
    let instances =
        lookup::container_instances(&state.cri, &state.node, ns, pod, container).await?;
    let target = if opts.previous {
        instances.get(1).ok_or_else(|| {
            ServerError::BadRequest(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            ))
        })?
    } else {
        instances
            .first()
            .ok_or_else(|| ServerError::NotFound(format!("container \"{container}\" not found")))?
    };
    let status = state
        .cri
        .container_status(&target.id, false)
        .await
        .map_err(ServerError::runtime)?
        .status
        .ok_or_else(|| ServerError::NotFound(format!("container \"{container}\" has no status")))?;
    let path = std::path::PathBuf::from(&status.log_path);
    let head = {
        let (path, container) = (path.clone(), container.to_string());
        tokio::task::spawn_blocking(move || read_head(&path, &container, opts.tail_lines))
            .await
            .map_err(|e| ServerError::Runtime(format!("reading the log: {e}")))??
    };
    let running = status.state == cri_client::api::ContainerState::ContainerRunning as i32;
    let text = String::from_utf8_lossy(&head.text);
    let rendered = if running {
        render(&text, &opts)
    } else {
        render_ended(&text, &opts)
    };
    let (lines, left) = limit(rendered, opts.limit_bytes);
    let head_text: String = lines.concat();
    let builder = Response::builder().header(header::CONTENT_TYPE, "text/plain");
    if !opts.follow || !running || left == Some(0) {
        return builder
            .body(Body::from_stream(flushed_then_ended(Bytes::from(
                head_text,
            ))))
            .map_err(|e| ServerError::Runtime(e.to_string()));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let _ = tx.send(Ok(Bytes::from(head_text))).await;
    let follow = Follow {
        state,
        container_id: target.id.clone(),
        path,
        offset: head.end,
        opts: LogOptions {
            tail_lines: None,
            ..opts
        },
        left,
    };
    tokio::spawn(follow.run(tokio::fs::File::from_std(head.file), tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    builder
        .body(Body::from_stream(stream))
        .map_err(|e| ServerError::Runtime(e.to_string()))
}

/// A body of `data` that reaches the client before the body's end does, as kubelet's flushing
/// writer sends logs: the data chunk is flushed (its own TLS record) before the final empty
/// chunk. The API server's websocket relay (`kubectl logs` over a websocket, the e2e suite's
/// way) drops a last read that comes together with EOF, so data and end in one record would
/// arrive as an empty log.
fn flushed_then_ended(data: Bytes) -> impl futures::Stream<Item = std::io::Result<Bytes>> {
    futures::stream::unfold(Some(data), |next| async move {
        if let Some(data) = next {
            return Some((Ok(data), None));
        }
        // Pending once: hyper flushes what it holds before polling the body again.
        tokio::task::yield_now().await;
        None
    })
}

/// Streams new log entries until the container stops, the client goes away or the byte limit
/// is reached.
struct Follow {
    state: Arc<ServerState>,
    container_id: String,
    path: std::path::PathBuf,
    offset: u64,
    opts: LogOptions,
    left: Option<u64>,
}

impl Follow {
    async fn run(
        mut self,
        mut file: tokio::fs::File,
        tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) {
        let mut carry: Vec<u8> = Vec::new();
        let mut ticks = 0u32;
        let mut stopped = false;
        loop {
            let mut buf = Vec::new();
            if file.seek(SeekFrom::Start(self.offset)).await.is_err()
                || (&mut file)
                    .take(FOLLOW_READ_BYTES)
                    .read_to_end(&mut buf)
                    .await
                    .is_err()
            {
                return;
            }
            self.offset += buf.len() as u64;
            carry.extend_from_slice(&buf);
            if let Some(end) = carry.iter().rposition(|b| *b == b'\n') {
                let chunk: Vec<u8> = carry.drain(..=end).collect();
                let lines = render(&String::from_utf8_lossy(&chunk), &self.opts);
                let (lines, left) = limit(lines, self.left);
                self.left = left;
                let out = lines.concat();
                if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                    return;
                }
                if self.left == Some(0) {
                    return;
                }
            }
            if buf.is_empty() {
                if stopped {
                    return;
                }
                if self.rotated(&file).await
                    && let Ok(f) = tokio::fs::File::open(&self.path).await
                {
                    file = f;
                    self.offset = 0;
                    carry.clear();
                    continue;
                }
                ticks += 1;
                if ticks.is_multiple_of(STATE_CHECK_EVERY) && !self.running().await {
                    // One more pass drains what was written before the stop.
                    stopped = true;
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    () = tx.closed() => return,
                }
            }
        }
    }

    /// True when the log path now names another file (the runtime reopened it after rotation).
    async fn rotated(&self, file: &tokio::fs::File) -> bool {
        let (Ok(open), Ok(now)) = (file.metadata().await, tokio::fs::metadata(&self.path).await)
        else {
            return false;
        };
        open.ino() != now.ino() || open.dev() != now.dev()
    }

    async fn running(&self) -> bool {
        match self
            .state
            .cri
            .container_status(&self.container_id, false)
            .await
        {
            Ok(r) => r.status.is_some_and(|s| {
                s.state == cri_client::api::ContainerState::ContainerRunning as i32
            }),
            Err(e) => !e.is_not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_rejected_with_their_name() {
        let q = LogQuery {
            tail_lines: Some("-1".into()),
            ..LogQuery::default()
        };
        assert!(q.options(0).unwrap_err().to_string().contains("tailLines"));
        let q = LogQuery {
            since_seconds: Some("5".into()),
            since_time: Some("2024-01-01T00:00:00Z".into()),
            ..LogQuery::default()
        };
        assert!(q.options(0).is_err());
        let q = LogQuery {
            follow: Some("maybe".into()),
            ..LogQuery::default()
        };
        assert!(q.options(0).unwrap_err().to_string().contains("follow"));
        let q = LogQuery {
            tail_lines: Some("999999999999".into()),
            ..LogQuery::default()
        };
        assert_eq!(q.options(0).unwrap().tail_lines, Some(MAX_TAIL_LINES));
    }
}
