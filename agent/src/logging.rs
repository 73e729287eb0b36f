//! Logging with tracing: human-readable text by default, JSON lines with --log-format=json.
//! RUST_LOG, when set, overrides the verbosity flag.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter for a kubelet-style -v level.
fn filter_for(verbosity: u8) -> EnvFilter {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return f;
    }
    let level = match verbosity {
        0 | 1 => "info",
        2 | 3 => "debug",
        _ => "trace",
    };
    // Keep the HTTP/gRPC stacks quiet below trace.
    let quiet = if verbosity >= 4 {
        ""
    } else {
        ",hyper=info,hyper_util=info,h2=info,tower=info,tonic=info,rustls=info,kube_client=info"
    };
    EnvFilter::new(format!("{level}{quiet}"))
}

/// Installs the global subscriber, writing to stderr.
pub fn init(format: LogFormat, verbosity: u8) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter_for(verbosity))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
