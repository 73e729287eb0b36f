//! What start-up prepares on the node before any task runs: the private root dir, the
//! /healthz listener, and the pod side's context (admission, node facts, events, volumes, the
//! status writer).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cri_client::CriClient;
use tracing::info;

use super::StartError;
use crate::apiserver::ApiServer;
use crate::cgroups::{Hierarchy, PodCgroups};
use crate::config::Config;
use crate::events::Events;
use crate::healthz;
use crate::node::{self, machine::MachineInfo};
use crate::node_facts::NodeFacts;
use crate::pods::static_pods::{StaticPods, writer::RoutingWriter};
use crate::pods::status_writer::PodWriter;
use crate::pods::{PodContext, admission::Admission, images::Images, log_rotation::LogRotation};

/// Where pod log directories live, as kubelet has it.
const POD_LOG_ROOT: &str = "/var/log/pods";

/// What start-up learnt of the container runtime, for the pod side.
pub(super) struct RuntimeSide {
    pub cri: CriClient,
    /// "containerd", for containerID fields.
    pub name: String,
    pub cgroups: PodCgroups,
    pub cgroup_hierarchy: Hierarchy,
}

pub(super) async fn pod_context(
    config: &Config,
    api: &ApiServer,
    statics: StaticPods,
    runtime: RuntimeSide,
    machine: &MachineInfo,
    node_ip: std::net::IpAddr,
    watches: &node::Watches,
) -> Result<PodContext, StartError> {
    let sysctls = crate::pods::sysctls::Allowlist::new(&config.allowed_unsafe_sysctls)
        .map_err(StartError::Sysctls)?;
    let apparmor = crate::pods::container::apparmor::host_enabled();
    if !apparmor {
        info!("AppArmor is not enabled on this host: pods that ask for a profile are refused");
    }
    let admission = Admission::new(sysctls, apparmor)
        .with_pressure(watches.pressure.clone())
        .with_shutdown(watches.shutdown.clone());
    let a = node::allocatable(config, machine);
    let facts = NodeFacts {
        node_name: config.node_name.clone(),
        host_ip: node_ip.to_string(),
        allocatable_cpu_millis: a.cpu_millis,
        allocatable_memory_bytes: a.memory_bytes,
        absolute_allocatable_cpu_millis: a.absolute_cpu_millis,
        absolute_allocatable_memory_bytes: a.absolute_memory_bytes,
        memory_capacity_bytes: a.memory_capacity_bytes,
        max_pods: config.max_pods,
    };
    let events = match api.connected() {
        Some(client) => Events::start(client.clone(), &config.node_name),
        None => Events::log_only(),
    };
    let volumes = crate::volumes::Volumes::new(
        &config.root_dir,
        api.clone(),
        events.clone(),
        facts.clone(),
        config.sync_frequency,
    );
    let cgroup_fs =
        crate::cgroups::host_fs(runtime.cgroups.driver(), runtime.cgroup_hierarchy).await;
    let qos_cgroups = Arc::new(crate::cgroups::QosCgroups::new(
        cgroup_fs.clone(),
        runtime.cgroups.clone(),
    ));
    // Off the async threads: under the systemd driver each cgroup is a D-Bus exchange.
    let (qos, enforced) = (qos_cgroups.clone(), enforced_allocatable(config, machine));
    tokio::task::spawn_blocking(move || qos.start(enforced))
        .await
        .map_err(|e| StartError::Cgroups(format!("the QoS cgroups: {e}")))?
        .map_err(|e| StartError::Cgroups(format!("the QoS cgroups: {e}")))?;
    let writer = RoutingWriter {
        statics,
        api: (api.connected()).map(|c| Arc::new(c.clone()) as Arc<dyn PodWriter>),
    };
    Ok(PodContext {
        events,
        volumes,
        writer: Arc::new(writer),
        env_reads: crate::pods::context::EnvReads::Api,
        services: match api.connected() {
            Some(client) => crate::pods::service_lister::ServiceLister::start(client.clone()),
            None => crate::pods::service_lister::ServiceLister::none(),
        },
        api: api.clone(),
        cri: Arc::new(runtime.cri),
        runtime_name: runtime.name,
        node: facts,
        root_dir: config.root_dir.clone(),
        log_root: PathBuf::from(POD_LOG_ROOT),
        host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        log_rotation: LogRotation {
            max_size_bytes: config.container_log_max_size,
            max_files: config.container_log_max_files,
        },
        images: Images::default(),
        admission,
        clock: crate::runtime::WallClock::System,
        cgroups: runtime.cgroups,
        cgroup_fs,
        qos_cgroups,
        container_gc: config.container_gc,
        userns: Arc::new(
            crate::userns::UserNamespaces::load(
                &config.root_dir,
                config.user_namespace_ids_per_pod,
                config.max_pods,
            )
            .map_err(StartError::UserNamespaces)?,
        ),
        runtime_health: watches.health.clone(),
    })
}

/// What kubepods is limited to with `enforceNodeAllocatable: [pods]`: capacity minus kube- and
/// system-reserved (kubelet leaves the eviction threshold out of the cgroup's limit).
fn enforced_allocatable(
    config: &Config,
    machine: &MachineInfo,
) -> Option<crate::cgroups::NodeAllocatable> {
    let (kube, system) = (&config.kube_reserved, &config.system_reserved);
    config
        .cgroups
        .enforce_pods
        .then(|| crate::cgroups::NodeAllocatable {
            cpu_millis: machine
                .cpu_count
                .saturating_mul(1000)
                .saturating_sub(kube.cpu_millis.saturating_add(system.cpu_millis)),
            memory_bytes: machine
                .memory_bytes
                .saturating_sub(kube.memory_bytes.saturating_add(system.memory_bytes)),
        })
}

/// Creates the root dir and its `pods` dir with kubelet's mode 0750 (root and its group only:
/// pods' secrets and tokens live below), correcting the mode of dirs that already exist.
pub(super) fn private_dir(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    for dir in [root.to_path_buf(), root.join("pods")] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
    }
    Ok(())
}

/// Creates the private root dir and replaces `config.root_dir` with its resolved path.
pub(super) fn prepare_root_dir(config: &mut Config) -> Result<(), StartError> {
    let root_error = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| StartError::RootDir { path, source }
    };
    private_dir(&config.root_dir).map_err(root_error(&config.root_dir))?;
    // The mount table names resolved paths: a root dir given through a symlink or relatively
    // would hide its own mounts from the teardown, which then removes through them.
    config.root_dir =
        std::fs::canonicalize(&config.root_dir).map_err(root_error(&config.root_dir))?;
    Ok(())
}

/// Binds the /healthz listener, or none when its port is 0.
pub(super) async fn bind_healthz(
    config: &Config,
) -> Result<Option<tokio::net::TcpListener>, StartError> {
    if config.healthz_port == 0 {
        return Ok(None);
    }
    let addr = SocketAddr::new(config.healthz_bind_address, config.healthz_port);
    let listener = healthz::bind(addr)
        .await
        .map_err(|source| StartError::Healthz { addr, source })?;
    Ok(Some(listener))
}
