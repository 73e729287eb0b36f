//! Container garbage collection limits, kubelet's (flags only, deprecated in kubelet but still
//! read): `--minimum-container-ttl-duration` (0: a dead instance younger than this, by its
//! creation, stays), `--maximum-dead-containers-per-container` (1: dead instances kept per
//! container name of a pod) and `--maximum-dead-containers` (-1: dead instances kept on the
//! whole node). A negative count is no limit.

use std::time::Duration;

use super::{ConfigError, Flags, duration, invalid};

/// What the container garbage collection keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerGcPolicy {
    pub min_age: Duration,
    /// Per container name of a pod; None: no limit.
    pub max_per_container: Option<usize>,
    /// On the node; None: no limit.
    pub max_containers: Option<usize>,
}

impl Default for ContainerGcPolicy {
    fn default() -> Self {
        ContainerGcPolicy {
            min_age: Duration::ZERO,
            max_per_container: Some(1),
            max_containers: None,
        }
    }
}

fn limit(value: Option<i32>, default: Option<usize>) -> Option<usize> {
    match value {
        None => default,
        Some(v) => usize::try_from(v).ok(),
    }
}

/// The flags over kubelet's defaults.
///
/// # Errors
/// A TTL that is not a duration.
pub fn from_flags(flags: &Flags) -> Result<ContainerGcPolicy, ConfigError> {
    let d = ContainerGcPolicy::default();
    let min_age = match flags.minimum_container_ttl_duration.as_deref() {
        None => d.min_age,
        Some(t) => duration::parse(t).map_err(|e| {
            invalid("--minimum-container-ttl-duration")(format!("{t:?} is not a duration ({e})"))
        })?,
    };
    Ok(ContainerGcPolicy {
        min_age,
        max_per_container: limit(
            flags.maximum_dead_containers_per_container,
            d.max_per_container,
        ),
        max_containers: limit(flags.maximum_dead_containers, d.max_containers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn policy(args: &[&str]) -> Result<ContainerGcPolicy, ConfigError> {
        let mut all = vec!["minikubelet"];
        all.extend_from_slice(args);
        from_flags(&Flags::try_parse_from(all).unwrap())
    }

    #[test]
    fn kubelets_defaults_and_negative_means_no_limit() {
        assert_eq!(policy(&[]).unwrap(), ContainerGcPolicy::default());
        let p = policy(&[
            "--maximum-dead-containers=3",
            "--maximum-dead-containers-per-container=-1",
            "--minimum-container-ttl-duration=1m",
        ])
        .unwrap();
        assert_eq!(p.max_containers, Some(3));
        assert_eq!(p.max_per_container, None);
        assert_eq!(p.min_age, Duration::from_secs(60));
        assert_eq!(
            policy(&["--maximum-dead-containers=-1"])
                .unwrap()
                .max_containers,
            None
        );
        assert!(
            policy(&["--minimum-container-ttl-duration=soon"])
                .unwrap_err()
                .to_string()
                .contains("--minimum-container-ttl-duration")
        );
    }
}
