//! The wire format between the `minikubelet-cni` delegate plugin and the agent, over a unix
//! socket. std-only, so the delegate stays a small, fast-starting binary.
//!
//! Request: the line `MKLCNI1`, then one `NAME=VALUE` line per CNI environment variable, an
//! empty line, then the plugin's stdin (the network configuration) until the delegate shuts
//! down its write half. Response: the exit code on the first line, then what the plugin prints
//! on stdout (a result or a CNI error object) until the agent closes the connection.

use std::io;

/// The first line of every request (a format version).
pub const MAGIC: &str = "MKLCNI1";

/// The CNI variables the delegate forwards.
pub const FORWARDED_ENV: &[&str] = &[
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// Set by the delegate when it forwards a DEL to the default socket because the agent that
/// owned the pod is gone: that agent's CNI cache dir, so the DEL can use its cached result.
pub const ORPHAN_CACHE_DIR_ENV: &str = "MKL_ORPHAN_CACHE_DIR";

/// One CNI request as the delegate received it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
}

impl Request {
    /// The value of environment variable `name`, if forwarded.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.stdin.len());
        out.extend_from_slice(MAGIC.as_bytes());
        out.push(b'\n');
        for (k, v) in &self.env {
            // CNI values never hold line breaks; drop any so the framing stays intact.
            let v: String = v.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            out.extend_from_slice(format!("{k}={v}\n").as_bytes());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.stdin);
        out
    }

    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let mut rest = bytes;
        let mut line = || -> io::Result<&[u8]> {
            let end = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(|| bad("truncated request header"))?;
            let (l, r) = rest.split_at(end);
            rest = r.get(1..).unwrap_or_default();
            Ok(l)
        };
        if line()? != MAGIC.as_bytes() {
            return Err(bad("not a minikubelet-cni request (bad magic)"));
        }
        let mut env = Vec::new();
        loop {
            let l = line()?;
            if l.is_empty() {
                break;
            }
            let text = std::str::from_utf8(l).map_err(|_| bad("non-UTF-8 header line"))?;
            let (k, v) = text
                .split_once('=')
                .ok_or_else(|| bad("header line without '='"))?;
            env.push((k.to_string(), v.to_string()));
        }
        Ok(Request {
            env,
            stdin: rest.to_vec(),
        })
    }
}

/// The agent's answer: the exit code and the plugin's stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: i32,
    pub stdout: Vec<u8>,
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.code).into_bytes();
        out.extend_from_slice(&self.stdout);
        out
    }

    pub fn decode(bytes: &[u8]) -> io::Result<Self> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed agent response");
        let end = bytes.iter().position(|b| *b == b'\n').ok_or_else(bad)?;
        let (head, body) = bytes.split_at(end);
        let code = std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(bad)?;
        Ok(Response {
            code,
            stdout: body.get(1..).unwrap_or_default().to_vec(),
        })
    }
}

/// `K8S_POD_UID` out of a `CNI_ARGS` string (`K=V;K=V`).
pub fn pod_uid(cni_args: &str) -> Option<&str> {
    cni_args
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "K8S_POD_UID")
        .map(|(_, v)| v)
        .filter(|v| is_safe_file_name(v))
}

/// A pod UID usable as a file name in the routes dir.
pub fn is_safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A CNI error object as a plugin prints it.
pub fn error_json(cni_version: &str, code: u32, msg: &str, details: &str) -> Vec<u8> {
    serde_json::json!({
        "cniVersion": cni_version,
        "code": code,
        "msg": msg,
        "details": details,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let r = Request {
            env: vec![
                ("CNI_COMMAND".into(), "ADD".into()),
                ("CNI_ARGS".into(), "A=1;K8S_POD_UID=abc-1".into()),
            ],
            stdin: b"{\"x\":\n1}".to_vec(),
        };
        let back = Request::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.var("CNI_COMMAND"), Some("ADD"));
        assert_eq!(pod_uid(back.var("CNI_ARGS").unwrap()), Some("abc-1"));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Request::decode(b"hello\n\n").is_err());
        assert!(Request::decode(b"MKLCNI1\nno-equals\n\n").is_err());
        assert!(Request::decode(b"MKLCNI1\nA=1").is_err());
        assert!(Response::decode(b"x\n").is_err());
        assert_eq!(
            Response::decode(b"1\n{}").unwrap(),
            Response {
                code: 1,
                stdout: b"{}".to_vec()
            }
        );
    }

    #[test]
    fn unsafe_pod_uids_are_ignored() {
        assert_eq!(pod_uid("K8S_POD_UID=../../etc"), None);
        assert_eq!(pod_uid("IgnoreUnknown=1"), None);
    }
}
