//! Garbage collection, at start and periodically: the cached attachments of sandboxes that no
//! longer exist are DELed from their cache (releasing their IPs, host ports and bandwidth
//! rules), then CNI GC runs where the config and plugins speak 1.1, then route files of pods
//! without sandboxes are pruned.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use cni_invoker::Attachment;
use cri_client::CriClient;
use tracing::{info, warn};

use super::chain::Chain;
use super::routes::Routes;

/// A cache entry younger than this is never collected: its sandbox may not be listed yet
/// (containerd adds a sandbox to its list only after the network is set up).
const MIN_AGE: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub released: usize,
    pub failed: usize,
    pub routes_pruned: usize,
}

/// One pass. The caller logs failures of listing; attachment failures are counted.
pub async fn collect(chain: &Chain, cri: &CriClient, routes: &Routes) -> Result<GcReport, String> {
    let invoker = chain.invoker();
    let cached = invoker
        .cache()
        .list(None)
        .await
        .map_err(|e| e.to_string())?;
    // List sandboxes after the cache: an entry written before the list is in it if alive.
    let sandboxes = cri
        .list_pod_sandbox(None)
        .await
        .map_err(|e| format!("cannot list pod sandboxes: {e}"))?;
    let ids: HashSet<&str> = sandboxes.iter().map(|s| s.id.as_str()).collect();
    let live_uids: HashSet<String> = sandboxes
        .iter()
        .filter_map(|s| s.metadata.as_ref().map(|m| m.uid.clone()))
        .collect();
    let mut report = GcReport::default();
    let mut valid: Vec<Attachment> = Vec::new();
    for entry in cached {
        let young = entry_age(chain, &entry).is_none_or(|age| age < MIN_AGE);
        if ids.contains(entry.container_id.as_str()) || young {
            valid.push(entry.attachment());
            continue;
        }
        match invoker.del_cached(&entry).await {
            Ok(_) => {
                info!(container = %entry.container_id, "released the network of a gone sandbox");
                report.released += 1;
            }
            Err(e) => {
                warn!(container = %entry.container_id, error = %e, "GC: cached DEL failed");
                report.failed += 1;
                // Kept for the next pass: CNI GC must not drop its cache entry.
                valid.push(entry.attachment());
            }
        }
    }
    if let Ok(network) = chain.network()
        && network.allows_status_and_gc()
        && !network.disable_gc()
    {
        valid.extend(
            sandboxes
                .iter()
                .map(|s| Attachment::new(s.id.clone(), "eth0")),
        );
        match invoker.gc(&network, &valid).await {
            Ok(outcome) => {
                for e in outcome.errors {
                    warn!(error = %e, "CNI GC");
                }
            }
            Err(e) => warn!(error = %e, "CNI GC failed"),
        }
    }
    report.routes_pruned = routes.prune(&live_uids);
    Ok(report)
}

fn entry_age(chain: &Chain, entry: &cni_invoker::CachedAttachment) -> Option<Duration> {
    let path = chain
        .invoker()
        .cache()
        .path_of(&entry.network_name, &entry.attachment())
        .ok()?;
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}
