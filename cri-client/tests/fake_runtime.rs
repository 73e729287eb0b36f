//! Deadlines, retries and error typing, proven against an in-process
//! `RuntimeService` served on a temporary unix socket. A fake is used only
//! for what a real runtime cannot be made to do on demand: fail with
//! `UNAVAILABLE`, answer slowly, or start late.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cri_client::api::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use cri_client::{ClientOptions, CriClient, CriError, RetryPolicy, api};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// What the fake runtime does, and what it saw.
#[derive(Default)]
struct Fake {
    /// `version` answers UNAVAILABLE this many times before succeeding.
    version_failures: AtomicU32,
    version_calls: AtomicU32,
    /// The `grpc-timeout` header of the last `version` call.
    version_grpc_timeout: Mutex<Option<String>>,
    run_pod_sandbox_calls: AtomicU32,
    container_status_calls: AtomicU32,
    /// How long `list_pod_sandbox` and `exec_sync` take.
    delay: Duration,
    /// The `timeout` field of the last `exec_sync` request.
    exec_sync_timeout: Mutex<Option<i64>>,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<api::ContainerEventResponse, Status>> + Send>>;

/// Implements `RuntimeService` for `$ty` with the given methods; every RPC
/// listed after `unimplemented` answers UNIMPLEMENTED.
macro_rules! runtime_service {
    (impl for $ty:ty { $($custom:tt)* } unimplemented { $($name:ident: $req:ident => $resp:ident),* $(,)? }) => {
        #[tonic::async_trait]
        impl RuntimeService for $ty {
            $($custom)*
            $(
                async fn $name(&self, _: Request<api::$req>) -> Result<Response<api::$resp>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

runtime_service! {
    impl for Fake {
        type GetContainerEventsStream = EventStream;

        async fn version(&self, request: Request<api::VersionRequest>) -> Result<Response<api::VersionResponse>, Status> {
            self.version_calls.fetch_add(1, Ordering::SeqCst);
            let header = request.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()).map(str::to_owned);
            *self.version_grpc_timeout.lock().unwrap() = header;
            let failures_left = self.version_failures.load(Ordering::SeqCst);
            if failures_left > 0 {
                self.version_failures.store(failures_left - 1, Ordering::SeqCst);
                return Err(Status::unavailable("runtime is restarting"));
            }
            Ok(Response::new(api::VersionResponse {
                version: request.into_inner().version,
                runtime_name: "fake".into(),
                runtime_version: "0.0.1".into(),
                runtime_api_version: "v1".into(),
            }))
        }

        async fn run_pod_sandbox(&self, _: Request<api::RunPodSandboxRequest>) -> Result<Response<api::RunPodSandboxResponse>, Status> {
            self.run_pod_sandbox_calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::unavailable("runtime is restarting"))
        }

        async fn list_pod_sandbox(&self, _: Request<api::ListPodSandboxRequest>) -> Result<Response<api::ListPodSandboxResponse>, Status> {
            tokio::time::sleep(self.delay).await;
            Ok(Response::new(api::ListPodSandboxResponse::default()))
        }

        async fn container_status(&self, request: Request<api::ContainerStatusRequest>) -> Result<Response<api::ContainerStatusResponse>, Status> {
            self.container_status_calls.fetch_add(1, Ordering::SeqCst);
            Err(Status::not_found(format!("container {:?} does not exist", request.into_inner().container_id)))
        }

        async fn exec_sync(&self, request: Request<api::ExecSyncRequest>) -> Result<Response<api::ExecSyncResponse>, Status> {
            *self.exec_sync_timeout.lock().unwrap() = Some(request.get_ref().timeout);
            tokio::time::sleep(self.delay).await;
            Ok(Response::new(api::ExecSyncResponse { stdout: b"hi\n".to_vec(), stderr: Vec::new(), exit_code: 0 }))
        }

        async fn get_container_events(&self, _: Request<api::GetEventsRequest>) -> Result<Response<EventStream>, Status> {
            let events = ["c1", "c2"].map(|id| {
                Ok(api::ContainerEventResponse {
                    container_id: id.into(),
                    container_event_type: api::ContainerEventType::ContainerStartedEvent as i32,
                    ..Default::default()
                })
            });
            Ok(Response::new(Box::pin(tokio_stream::iter(events))))
        }
    }
    unimplemented {
        stop_pod_sandbox: StopPodSandboxRequest => StopPodSandboxResponse,
        remove_pod_sandbox: RemovePodSandboxRequest => RemovePodSandboxResponse,
        pod_sandbox_status: PodSandboxStatusRequest => PodSandboxStatusResponse,
        create_container: CreateContainerRequest => CreateContainerResponse,
        start_container: StartContainerRequest => StartContainerResponse,
        stop_container: StopContainerRequest => StopContainerResponse,
        remove_container: RemoveContainerRequest => RemoveContainerResponse,
        list_containers: ListContainersRequest => ListContainersResponse,
        update_container_resources: UpdateContainerResourcesRequest => UpdateContainerResourcesResponse,
        reopen_container_log: ReopenContainerLogRequest => ReopenContainerLogResponse,
        exec: ExecRequest => ExecResponse,
        attach: AttachRequest => AttachResponse,
        port_forward: PortForwardRequest => PortForwardResponse,
        container_stats: ContainerStatsRequest => ContainerStatsResponse,
        list_container_stats: ListContainerStatsRequest => ListContainerStatsResponse,
        pod_sandbox_stats: PodSandboxStatsRequest => PodSandboxStatsResponse,
        list_pod_sandbox_stats: ListPodSandboxStatsRequest => ListPodSandboxStatsResponse,
        update_runtime_config: UpdateRuntimeConfigRequest => UpdateRuntimeConfigResponse,
        status: StatusRequest => StatusResponse,
        checkpoint_container: CheckpointContainerRequest => CheckpointContainerResponse,
        list_metric_descriptors: ListMetricDescriptorsRequest => ListMetricDescriptorsResponse,
        list_pod_sandbox_metrics: ListPodSandboxMetricsRequest => ListPodSandboxMetricsResponse,
        runtime_config: RuntimeConfigRequest => RuntimeConfigResponse,
    }
}

/// A temporary directory holding the socket path; the server task ends with
/// the test's runtime.
struct Runtime {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Runtime {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("cri.sock");
        Self { _dir: dir, socket }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn serve(&self, fake: Arc<Fake>) {
        serve(&self.socket, fake);
    }
}

fn serve(socket: &Path, fake: Arc<Fake>) {
    let listener = UnixListener::bind(socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::from_arc(fake))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
}

fn fast_retries(max_attempts: u32) -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn idempotent_call_is_retried_while_runtime_reports_unavailable() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake {
        version_failures: AtomicU32::new(2),
        ..Fake::default()
    });
    runtime.serve(Arc::clone(&fake));
    let client = CriClient::connect(&runtime.endpoint(), fast_retries(4))
        .await
        .unwrap();

    let started = Instant::now();
    let version = client.version().await.unwrap();

    assert_eq!(version.runtime_name, "fake");
    assert_eq!(version.version, "v1");
    assert_eq!(fake.version_calls.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "backoff of 50 + 100 ms was skipped"
    );
}

#[tokio::test]
async fn idempotent_call_gives_up_after_max_attempts() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake {
        version_failures: AtomicU32::new(100),
        ..Fake::default()
    });
    runtime.serve(Arc::clone(&fake));
    let client = CriClient::connect(&runtime.endpoint(), fast_retries(3))
        .await
        .unwrap();

    let err = client.version().await.unwrap_err();

    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.op(), "version");
    assert!(err.to_string().contains("runtime is restarting"), "{err}");
    assert_eq!(fake.version_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn run_pod_sandbox_is_never_retried() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake::default());
    runtime.serve(Arc::clone(&fake));
    let client = CriClient::connect(&runtime.endpoint(), fast_retries(5))
        .await
        .unwrap();

    let err = client
        .run_pod_sandbox(api::PodSandboxConfig::default(), "")
        .await
        .unwrap_err();

    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.op(), "run_pod_sandbox");
    assert_eq!(fake.run_pod_sandbox_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn not_found_is_typed_and_not_retried() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake::default());
    runtime.serve(Arc::clone(&fake));
    let client = CriClient::connect(&runtime.endpoint(), fast_retries(5))
        .await
        .unwrap();

    let err = client.container_status("bogus", false).await.unwrap_err();

    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "CRI container_status: not found: container \"bogus\" does not exist"
    );
    assert_eq!(fake.container_status_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_call_times_out_at_the_request_timeout() {
    let runtime = Runtime::new();
    runtime.serve(Arc::new(Fake {
        delay: Duration::from_secs(30),
        ..Fake::default()
    }));
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let client = CriClient::connect(&runtime.endpoint(), options)
        .await
        .unwrap();

    let started = Instant::now();
    let err = client.list_pod_sandbox(None).await.unwrap_err();
    let elapsed = started.elapsed();

    match err {
        CriError::Timeout { op, after } => {
            assert_eq!(op, "list_pod_sandbox");
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn deadline_is_sent_to_the_runtime() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake::default());
    runtime.serve(Arc::clone(&fake));
    let options = ClientOptions {
        request_timeout: Duration::from_secs(7),
        ..ClientOptions::default()
    };
    let client = CriClient::connect(&runtime.endpoint(), options)
        .await
        .unwrap();

    client.version().await.unwrap();

    let header = fake
        .version_grpc_timeout
        .lock()
        .unwrap()
        .clone()
        .expect("no grpc-timeout header");
    let value: u64 = header
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap();
    let unit = header.trim_start_matches(|c: char| c.is_ascii_digit());
    let millis = match unit {
        "m" => value,
        "u" => value / 1_000,
        "n" => value / 1_000_000,
        "S" => value * 1_000,
        other => panic!("unexpected grpc-timeout unit {other:?} in {header:?}"),
    };
    assert!((6_000..=7_000).contains(&millis), "grpc-timeout {header:?}");
}

#[tokio::test]
async fn exec_sync_deadline_follows_the_command_timeout_not_the_request_timeout() {
    let runtime = Runtime::new();
    let fake = Arc::new(Fake {
        delay: Duration::from_millis(400),
        ..Fake::default()
    });
    runtime.serve(Arc::clone(&fake));
    let options = ClientOptions {
        request_timeout: Duration::from_millis(100),
        runtime_grace: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    let client = CriClient::connect(&runtime.endpoint(), options)
        .await
        .unwrap();

    let cmd = vec!["echo".to_owned(), "hi".to_owned()];
    let response = client
        .exec_sync("c1", cmd, Duration::from_millis(1500))
        .await
        .unwrap();

    assert_eq!(response.stdout, b"hi\n");
    assert_eq!(
        *fake.exec_sync_timeout.lock().unwrap(),
        Some(2),
        "1.5 s is sent rounded up"
    );
}

#[tokio::test]
async fn lazy_client_rides_out_a_runtime_that_starts_late() {
    let runtime = Runtime::new();
    let options = ClientOptions {
        retry: RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
        },
        ..ClientOptions::default()
    };
    let client = CriClient::connect_lazy(&runtime.endpoint(), options).unwrap();
    let socket = runtime.socket.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        serve(&socket, Arc::new(Fake::default()));
    });

    let version = client.version().await.unwrap();

    assert_eq!(version.runtime_name, "fake");
}

#[tokio::test]
async fn unreachable_runtime_is_unavailable_after_backing_off() {
    let runtime = Runtime::new();
    let client = CriClient::connect_lazy(&runtime.endpoint(), fast_retries(3)).unwrap();

    let started = Instant::now();
    let err = client.status(false).await.unwrap_err();

    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.op(), "status");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "expected two backoffs (50 + 100 ms)"
    );
}

#[tokio::test]
async fn observer_sees_every_call_with_its_outcome() {
    let runtime = Runtime::new();
    runtime.serve(Arc::new(Fake::default()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let options = ClientOptions::default().observe_with(move |op, elapsed, error| {
        sink.lock()
            .unwrap()
            .push((op, elapsed, error.map(CriError::is_not_found)));
    });
    let client = CriClient::connect(&runtime.endpoint(), options)
        .await
        .unwrap();

    client.version().await.unwrap();
    client
        .clone()
        .container_status("bogus", false)
        .await
        .unwrap_err();

    let seen = seen.lock().unwrap();
    let summary: Vec<_> = seen
        .iter()
        .map(|(op, _, not_found)| (*op, *not_found))
        .collect();
    assert_eq!(
        summary,
        vec![("version", None), ("container_status", Some(true))]
    );
    assert!(seen.iter().all(|(_, elapsed, _)| *elapsed > Duration::ZERO));
}

#[tokio::test]
async fn container_events_arrive_as_a_stream() {
    let runtime = Runtime::new();
    runtime.serve(Arc::new(Fake::default()));
    let client = CriClient::connect(&runtime.endpoint(), ClientOptions::default())
        .await
        .unwrap();

    let events: Vec<_> = client.get_container_events().await.unwrap().collect().await;

    let ids: Vec<_> = events
        .into_iter()
        .map(|e| e.unwrap().container_id)
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
}

#[tokio::test]
async fn unimplemented_rpcs_surface_their_code() {
    let runtime = Runtime::new();
    runtime.serve(Arc::new(Fake::default()));
    let client = CriClient::connect(&runtime.endpoint(), ClientOptions::default())
        .await
        .unwrap();

    let err = client.runtime_config().await.unwrap_err();

    assert_eq!(err.code(), Some(tonic::Code::Unimplemented));
    assert_eq!(err.op(), "runtime_config");
}

#[tokio::test]
async fn an_unbounded_request_timeout_does_not_overflow() {
    let runtime = Runtime::new();
    runtime.serve(Arc::new(Fake::default()));
    let options = ClientOptions {
        request_timeout: Duration::MAX,
        ..ClientOptions::default()
    };
    let client = CriClient::connect(&runtime.endpoint(), options)
        .await
        .unwrap();

    client.version().await.unwrap();
    client
        .stop_container("c1", Duration::MAX)
        .await
        .unwrap_err();
}
