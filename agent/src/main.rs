//! minikubelet's entry point: the edge where errors become one line on stderr and an exit code.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use minikubelet::config::{Config, Flags, VersionFlag};
use minikubelet::node::object::kubelet_version;
use minikubelet::{agent, logging};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message is several lines (usage, tip); keep the first, it names the problem.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "minikubelet: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(2);
        }
    };
    match flags.version {
        Some(VersionFlag::True) => {
            println!("Kubernetes {}", kubelet_version());
            return ExitCode::SUCCESS;
        }
        Some(VersionFlag::Raw) => {
            println!(
                "minikubelet {} (Kubernetes {}, {}/{})",
                env!("CARGO_PKG_VERSION"),
                kubelet_version(),
                std::env::consts::OS,
                std::env::consts::ARCH
            );
            return ExitCode::SUCCESS;
        }
        Some(VersionFlag::False) | None => {}
    }
    let (config, warnings) = match Config::resolve(flags) {
        Ok(resolved) => resolved,
        Err(e) => {
            eprintln!("minikubelet: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format, config.verbosity);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("minikubelet")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("minikubelet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agent::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minikubelet: {}", e.to_string().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
