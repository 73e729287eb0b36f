//! The node Lease in kube-node-lease: the cheap heartbeat the node lifecycle controller watches.
//! Renewed every quarter of its duration (10 s of 40 s by default) plus up to 4% jitter, after
//! the last renewal finished (kubelet's `wait.JitterUntil(sync, interval, 0.04, sliding)`); a
//! failed renewal is retried with a short backoff, as kubelet does.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backoff::RetryBackoff;

/// Namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What the lease needs to know of its node.
#[derive(Debug, Clone)]
pub struct LeaseOwner {
    pub node_name: String,
    pub node_uid: String,
    pub duration_seconds: u32,
}

fn desired(owner: &LeaseOwner, existing: Option<Lease>) -> Lease {
    let mut lease = existing.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(owner.node_name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    lease.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        name: owner.node_name.clone(),
        uid: owner.node_uid.clone(),
        ..OwnerReference::default()
    }]);
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(owner.node_name.clone());
    spec.lease_duration_seconds = Some(i32::try_from(owner.duration_seconds).unwrap_or(40));
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    lease
}

/// Renews (creating when missing) the lease once. Returns the lease as stored.
pub async fn renew(
    api: &Api<Lease>,
    owner: &LeaseOwner,
    last: Option<Lease>,
) -> Result<Lease, kube::Error> {
    let current = match last {
        Some(l) => Some(l),
        None => api.get_opt(&owner.node_name).await?,
    };
    let Some(current) = current else {
        return api
            .create(&PostParams::default(), &desired(owner, None))
            .await;
    };
    match api
        .replace(
            &owner.node_name,
            &PostParams::default(),
            &desired(owner, Some(current)),
        )
        .await
    {
        // Someone else wrote it (or our cached copy is stale): start again from the server's copy.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
            match api.get_opt(&owner.node_name).await? {
                Some(fresh) => {
                    api.replace(
                        &owner.node_name,
                        &PostParams::default(),
                        &desired(owner, Some(fresh)),
                    )
                    .await
                }
                None => {
                    api.create(&PostParams::default(), &desired(owner, None))
                        .await
                }
            }
        }
        other => other,
    }
}

/// kubelet's jitter of lease renewals: `interval` plus up to 4% of it (`fraction` in [0, 1)).
fn jittered(interval: Duration, fraction: f64) -> Duration {
    interval.mul_f64(1.0 + 0.04 * fraction.clamp(0.0, 1.0))
}

/// Keeps the lease renewed until cancelled. Each renewal gets `deadline` (kubelet: the shorter
/// of the lease duration and the status update frequency), so a hung connection to the
/// apiserver is abandoned and retried rather than left to age the lease.
pub async fn run(
    api: Api<Lease>,
    owner: LeaseOwner,
    deadline: Duration,
    cancel: CancellationToken,
) {
    let interval =
        Duration::from_secs(u64::from(owner.duration_seconds) / 4).max(Duration::from_secs(1));
    let mut backoff = RetryBackoff::new(Duration::from_millis(200), Duration::from_secs(7));
    let mut last: Option<Lease> = None;
    loop {
        let renewed = tokio::time::timeout(deadline, renew(&api, &owner, last.take())).await;
        let failed = match renewed {
            Ok(Ok(lease)) => {
                debug!(node = %owner.node_name, "lease renewed");
                last = Some(lease);
                backoff.reset();
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {deadline:?}")),
        };
        let wait = match failed {
            None => jittered(interval, crate::certificates::schedule::random_fraction()),
            Some(error) => {
                let delay = backoff.next_delay().min(interval);
                warn!(node = %owner.node_name, %error, retry_in = ?delay, "failed to renew node lease");
                delay
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_wait_the_interval_plus_at_most_four_percent() {
        let ten = Duration::from_secs(10);
        assert_eq!(jittered(ten, 0.0), ten);
        assert_eq!(jittered(ten, 0.5), Duration::from_millis(10_200));
        assert!(jittered(ten, 0.999_999) < Duration::from_millis(10_400));
        assert_eq!(jittered(ten, 7.0), Duration::from_millis(10_400));
    }
}
