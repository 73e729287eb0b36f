//! `minikubelet-cni`: the CNI plugin containerd runs for every pod sandbox. It runs no network
//! plugin itself: it forwards the request (command, CNI environment, stdin) over a unix socket
//! to the minikubelet that owns the pod, which runs the real chain and answers with the result.
//! No async runtime: start-up time counts on every sandbox.
//!
//! Configuration (the only plugin of containerd's conflist):
//! `{"type": "minikubelet-cni", "socket": "/run/.../minikubelet.sock", "routesDir": "/run/minikubelet/cni/routes"}`.
//! The owner of a pod is the agent named by `routesDir/POD_UID` (written by the agent before
//! RunPodSandbox); without such a file the request goes to `socket`. A DEL whose owner is gone
//! goes to `socket` too, with the owner's cache dir, so the pod's IP is still released.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use minikubelet::network::wire::{self, Request, Response};

/// Longest wait for the agent's answer (the chain itself is bounded by the agent's timeouts).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(240);
/// CNI's "try again later" code: containerd retries the sandbox.
const TRY_AGAIN_LATER: u32 = 11;
/// CNI's "invalid network config" code.
const INVALID_CONFIG: u32 = 6;
const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

struct Conf {
    cni_version: String,
    socket: Option<PathBuf>,
    routes_dir: Option<PathBuf>,
}

fn parse_conf(stdin: &[u8]) -> Result<Conf, String> {
    let v: serde_json::Value =
        serde_json::from_slice(stdin).map_err(|e| format!("network config is not JSON: {e}"))?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Ok(Conf {
        cni_version: text("cniVersion").unwrap_or_else(|| "1.0.0".to_string()),
        socket: text("socket").map(PathBuf::from),
        routes_dir: text("routesDir").map(PathBuf::from),
    })
}

/// Where the pod's owner listens, and its cache dir, from `routesDir/POD_UID`.
fn route(routes_dir: &Path, pod_uid: &str) -> Option<(PathBuf, Option<String>)> {
    let bytes = std::fs::read(routes_dir.join(pod_uid)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let socket = PathBuf::from(v.get("socket")?.as_str()?);
    let cache = v
        .get("cacheDir")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    Some((socket, cache))
}

fn forward(socket: &Path, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.write_all(&request.encode())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Response::decode(&answer)
}

fn fail(cni_version: &str, code: u32, msg: &str, details: &str) -> ExitCode {
    let _ = std::io::stdout().write_all(&wire::error_json(cni_version, code, msg, details));
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        return fail(
            "1.0.0",
            INVALID_CONFIG,
            "cannot read the network config",
            &e.to_string(),
        );
    }
    let conf = match parse_conf(&stdin) {
        Ok(c) => c,
        Err(e) => return fail("1.0.0", INVALID_CONFIG, &e, ""),
    };
    if command == "VERSION" {
        let answer =
            serde_json::json!({"cniVersion": conf.cni_version, "supportedVersions": SUPPORTED});
        println!("{answer}");
        return ExitCode::SUCCESS;
    }
    let Some(default_socket) = conf.socket.clone() else {
        return fail(
            &conf.cni_version,
            INVALID_CONFIG,
            "minikubelet-cni: the network config names no \"socket\"",
            "",
        );
    };
    let env: Vec<(String, String)> = wire::FORWARDED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_string(), v)))
        .collect();
    let mut request = Request { env, stdin };
    let owner = conf.routes_dir.as_deref().and_then(|dir| {
        let uid = wire::pod_uid(request.var("CNI_ARGS").unwrap_or_default())?;
        route(dir, uid)
    });
    let target = owner
        .as_ref()
        .map_or(default_socket.clone(), |(s, _)| s.clone());
    let answer = match forward(&target, &request) {
        Err(_) if command == "DEL" && target != default_socket => {
            // The owner is gone: the default agent runs the DEL with the owner's cached result.
            if let Some(cache) = owner.and_then(|(_, c)| c) {
                request
                    .env
                    .push((wire::ORPHAN_CACHE_DIR_ENV.to_string(), cache));
            }
            forward(&default_socket, &request).map_err(|e| (default_socket.clone(), e))
        }
        other => other.map_err(|e| (target.clone(), e)),
    };
    match answer {
        Ok(r) => {
            let _ = std::io::stdout().write_all(&r.stdout);
            if r.code == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err((socket, e)) => fail(
            &conf.cni_version,
            TRY_AGAIN_LATER,
            &format!("minikubelet is not reachable at {}: {e}", socket.display()),
            "the minikubelet agent runs this node's pod network; start it (containerd retries the sandbox)",
        ),
    }
}
