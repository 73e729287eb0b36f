//! Image garbage collection, kubelet's image manager: every 5 minutes (the first pass at
//! start) the images no container on the runtime uses are candidates. An image unused for
//! longer than `imageMaximumGCAge` is removed whatever the usage; when the image filesystem is
//! at `imageGCHighThresholdPercent` or more, the least recently used candidates are removed
//! until usage is down to `imageGCLowThresholdPercent`. An image seen for less than
//! `imageMinimumGCAge`, a pinned one and the runtime's sandbox image are never removed. Not
//! reaching the low mark is the node's Warning event FreeDiskSpaceFailed with kubelet's
//! message; a pass that fails twice in a row, ImageGCFailed. The eviction manager's disk
//! reclaim removes every candidate at once ([`remove_unused`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cri_client::CriClient;
use cri_client::api::Image;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::observation::FsReading;
use crate::config::image_gc::ImageGcPolicy;
use crate::events::Events;

/// kubelet's ImageGCPeriod.
pub const PERIOD: Duration = Duration::from_secs(300);

fn statvfs(path: &Path) -> Option<FsReading> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(FsReading {
        capacity_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        available_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        inodes: st.f_files,
        inodes_free: st.f_favail,
    })
}

/// Where the runtime keeps images (ImageFsInfo), None when it does not say.
async fn image_fs_path(cri: &CriClient) -> Option<PathBuf> {
    let info = cri.image_fs_info().await.ok()?;
    let fs = info.image_filesystems.first()?;
    let mount = fs.fs_id.as_ref()?.mountpoint.clone();
    (!mount.is_empty()).then(|| PathBuf::from(mount))
}

/// The runtime's image filesystem (statvfs of its ImageFsInfo mount), None when unknown.
pub async fn image_fs(cri: &CriClient) -> Option<FsReading> {
    let mount = image_fs_path(cri).await?;
    tokio::task::spawn_blocking(move || statvfs(&mount))
        .await
        .ok()
        .flatten()
}

/// What the collector remembers of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    first_seen: Instant,
    last_used: Instant,
}

/// The images seen and when each was last in use.
#[derive(Debug, Default)]
pub struct ImageRecords {
    records: HashMap<String, Record>,
}

/// One image as the collector weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub size: u64,
}

impl ImageRecords {
    /// Takes note of the images present at `now` and of those in use; forgets images gone.
    pub fn observe(&mut self, images: &[Image], in_use: &HashSet<String>, now: Instant) {
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.records.retain(|id, _| present.contains(id.as_str()));
        for image in images {
            let r = self.records.entry(image.id.clone()).or_insert(Record {
                first_seen: now,
                last_used: now,
            });
            if in_use.contains(&image.id) {
                r.last_used = now;
            }
        }
    }

    /// The images that may go, least recently used first: not in use, not pinned, seen at
    /// least `min_age` ago.
    pub fn candidates(
        &self,
        images: &[Image],
        in_use: &HashSet<String>,
        now: Instant,
        min_age: Duration,
    ) -> Vec<(Candidate, Instant)> {
        let mut out: Vec<(Candidate, Instant)> = images
            .iter()
            .filter(|i| !i.pinned && !in_use.contains(&i.id))
            .filter_map(|i| {
                let r = self.records.get(&i.id)?;
                (now.saturating_duration_since(r.first_seen) >= min_age).then(|| {
                    (
                        Candidate {
                            id: i.id.clone(),
                            size: i.size,
                        },
                        r.last_used,
                    )
                })
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
        out
    }
}

/// Bytes to free when usage is at or above the high threshold: down to the low one (kubelet's
/// arithmetic, in integer percent). None below the high threshold or without figures.
pub fn bytes_to_free(policy: &ImageGcPolicy, fs: FsReading) -> Option<u64> {
    if fs.capacity_bytes == 0 || policy.high_percent >= 100 {
        return None;
    }
    let available_percent = fs.available_bytes.saturating_mul(100) / fs.capacity_bytes;
    let usage_percent = 100u64.saturating_sub(available_percent);
    if usage_percent < u64::from(policy.high_percent) {
        return None;
    }
    let keep_free = fs.capacity_bytes / 100 * u64::from(100 - policy.low_percent);
    Some(keep_free.saturating_sub(fs.available_bytes))
}

/// Picks from `candidates` (in order) until `bytes` are covered; returns them and their sum.
pub fn pick(candidates: &[(Candidate, Instant)], bytes: u64) -> (Vec<Candidate>, u64) {
    let mut freed = 0u64;
    let mut out = Vec::new();
    for (c, _) in candidates {
        if freed >= bytes {
            break;
        }
        freed = freed.saturating_add(c.size);
        out.push(c.clone());
    }
    (out, freed)
}

/// The sandbox image the runtime names in its verbose status (containerd's `sandboxImage`):
/// sandboxes use it but are no containers, and a runtime that does not pin it (containerd
/// 1.6) would otherwise see it removed (kubelet keeps `--pod-infra-container-image` likewise).
pub fn sandbox_image<S: std::hash::BuildHasher>(
    info: &HashMap<String, String, S>,
) -> Option<String> {
    let config: serde_json::Value = serde_json::from_str(info.get("config")?).ok()?;
    config
        .get("sandboxImage")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The images in use, by image id, tag or digest: those of the runtime's containers (running
/// or not), the images their image volumes mount (from each container's status, as kubelet's
/// handleImageVolumes), and its sandbox image.
async fn in_use(cri: &CriClient) -> Result<HashSet<String>, cri_client::CriError> {
    let containers = cri.list_containers(None).await?;
    let mut names: HashSet<String> = containers
        .iter()
        .flat_map(|c| {
            [
                c.image_ref.clone(),
                c.image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
            ]
        })
        .filter(|s| !s.is_empty())
        .collect();
    for c in &containers {
        // A container gone since the list has no mounts left to keep.
        let Ok(status) = cri.container_status(&c.id, false).await else {
            continue;
        };
        let mounts = status.status.map(|s| s.mounts).unwrap_or_default();
        names.extend(mount_images(&mounts));
    }
    if let Ok(status) = cri.status(true).await
        && let Some(image) = sandbox_image(&status.info)
    {
        names.insert(image);
    }
    Ok(names)
}

/// The images that image-volume mounts name.
fn mount_images(mounts: &[cri_client::api::Mount]) -> impl Iterator<Item = String> + '_ {
    mounts
        .iter()
        .filter_map(|m| m.image.as_ref())
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
}

/// An image's names as a set of keys that `in_use` may hold.
fn used(image: &Image, in_use: &HashSet<String>) -> bool {
    in_use.contains(&image.id)
        || image.repo_tags.iter().any(|t| in_use.contains(t))
        || image.repo_digests.iter().any(|d| in_use.contains(d))
}

/// The ids in use as image ids (a container may name its image by tag or digest).
fn ids_in_use(images: &[Image], names: &HashSet<String>) -> HashSet<String> {
    images
        .iter()
        .filter(|i| used(i, names))
        .map(|i| i.id.clone())
        .collect()
}

async fn remove(cri: &CriClient, c: &Candidate) -> bool {
    match cri.remove_image(c.id.as_str()).await {
        Ok(()) => {
            info!(image = %c.id, size = c.size, "removed an unused image");
            true
        }
        Err(error) => {
            warn!(image = %c.id, %error, "removing an unused image failed");
            false
        }
    }
}

/// Removes every image no container uses (pinned ones stay): the eviction manager's disk
/// reclaim. Returns the bytes freed.
pub async fn remove_unused(cri: &CriClient) -> u64 {
    let (names, images) = match (in_use(cri).await, cri.list_images(None).await) {
        (Ok(n), Ok(i)) => (n, i),
        (Err(error), _) | (_, Err(error)) => {
            warn!(%error, "listing containers and images for image reclaim failed");
            return 0;
        }
    };
    let ids = ids_in_use(&images, &names);
    let mut freed = 0u64;
    for image in images.iter().filter(|i| !i.pinned && !ids.contains(&i.id)) {
        let c = Candidate {
            id: image.id.clone(),
            size: image.size,
        };
        if remove(cri, &c).await {
            freed = freed.saturating_add(c.size);
        }
    }
    freed
}

/// The collector and what it works through.
pub struct ImageGc {
    pub cri: CriClient,
    pub policy: ImageGcPolicy,
    pub events: Events,
    pub node_name: String,
    pub records: ImageRecords,
}

impl ImageGc {
    /// One pass at `now`.
    ///
    /// # Errors
    /// kubelet's message: the runtime could not be listed, or not enough could be freed.
    pub async fn pass(&mut self, now: Instant) -> Result<(), String> {
        let names = in_use(&self.cri).await.map_err(|e| e.to_string())?;
        let images = self
            .cri
            .list_images(None)
            .await
            .map_err(|e| e.to_string())?;
        let ids = ids_in_use(&images, &names);
        self.records.observe(&images, &ids, now);
        let min_age = self.policy.min_age;
        if !self.policy.max_age.is_zero() {
            for (c, last_used) in self.records.candidates(&images, &ids, now, min_age) {
                if now.saturating_duration_since(last_used) > self.policy.max_age {
                    remove(&self.cri, &c).await;
                }
            }
        }
        let Some(fs) = image_fs(&self.cri).await else {
            return Ok(());
        };
        let Some(wanted) = bytes_to_free(&self.policy, fs) else {
            return Ok(());
        };
        info!(
            bytes = wanted,
            "image filesystem above the high threshold: removing unused images"
        );
        let candidates = self.records.candidates(&images, &ids, now, min_age);
        let (chosen, _) = pick(&candidates, wanted);
        let mut freed = 0u64;
        for c in &chosen {
            if remove(&self.cri, c).await {
                freed = freed.saturating_add(c.size);
            }
        }
        if freed < wanted {
            let message = format!(
                "Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, but only found {freed} bytes eligible to free."
            );
            self.events
                .node_warning(&self.node_name, "FreeDiskSpaceFailed", message.clone());
            return Err(message);
        }
        Ok(())
    }
}

/// Runs passes every [`PERIOD`] until `cancel` fires (no pass when the policy is off).
pub async fn run(mut gc: ImageGc, cancel: CancellationToken) {
    if gc.policy.high_percent >= 100 && gc.policy.max_age.is_zero() {
        info!("image garbage collection is off (imageGCHighThresholdPercent 100)");
        return;
    }
    let mut failed_before = false;
    loop {
        match gc.pass(Instant::now()).await {
            Ok(()) => failed_before = false,
            Err(e) => {
                warn!(error = %e, "image garbage collection failed");
                if failed_before {
                    gc.events.node_warning(&gc.node_name, "ImageGCFailed", e);
                }
                failed_before = true;
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_volume_mounts_name_the_images_they_keep_in_use() {
        let mounts = [
            cri_client::api::Mount {
                host_path: "/var/lib/x".into(),
                ..Default::default()
            },
            cri_client::api::Mount {
                image: Some(cri_client::api::ImageSpec {
                    image: "sha256:tools".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        assert_eq!(mount_images(&mounts).collect::<Vec<_>>(), ["sha256:tools"]);
    }

    fn image(id: &str, size: u64, pinned: bool) -> Image {
        Image {
            id: id.to_string(),
            size,
            pinned,
            ..Image::default()
        }
    }

    #[test]
    fn the_sandbox_image_comes_from_containerds_verbose_config() {
        let info = HashMap::from([(
            "config".to_string(),
            r#"{"sandboxImage": "127.0.0.1:5000/pause:1.0", "other": 1}"#.to_string(),
        )]);
        assert_eq!(
            sandbox_image(&info).as_deref(),
            Some("127.0.0.1:5000/pause:1.0")
        );
        assert_eq!(sandbox_image(&HashMap::new()), None);
    }

    #[test]
    fn kubelets_arithmetic_for_what_to_free() {
        let policy = ImageGcPolicy {
            high_percent: 85,
            low_percent: 80,
            ..ImageGcPolicy::default()
        };
        let fs = |available| FsReading {
            capacity_bytes: 1000,
            available_bytes: available,
            inodes: 0,
            inodes_free: 0,
        };
        assert_eq!(bytes_to_free(&policy, fs(200)), None, "80% used");
        assert_eq!(
            bytes_to_free(&policy, fs(150)),
            Some(50),
            "85% used: down to 80%"
        );
        assert_eq!(bytes_to_free(&policy, fs(0)), Some(200));
        let off = ImageGcPolicy {
            high_percent: 100,
            ..policy
        };
        assert_eq!(bytes_to_free(&off, fs(0)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn least_recently_used_first_never_in_use_pinned_or_young() {
        let start = Instant::now();
        let images = [
            image("old", 10, false),
            image("used", 10, false),
            image("pause", 10, true),
            image("newer", 10, false),
        ];
        let mut r = ImageRecords::default();
        let all: HashSet<String> = ["old", "newer"].iter().map(|s| (*s).to_string()).collect();
        r.observe(&images, &all, start);
        let later = start + Duration::from_secs(60);
        let newer: HashSet<String> = ["newer".to_string()].into();
        r.observe(&images, &newer, later);
        let used: HashSet<String> = ["used".to_string()].into();
        let now = later + Duration::from_secs(60);
        r.observe(&images, &used, now);
        let ids: Vec<String> = r
            .candidates(&images, &used, now, Duration::from_secs(30))
            .into_iter()
            .map(|(c, _)| c.id)
            .collect();
        assert_eq!(ids, ["old", "newer"]);
        assert!(
            r.candidates(&images, &used, now, Duration::from_secs(3600))
                .is_empty(),
            "younger than the minimum age"
        );
        let (chosen, freed) = pick(&r.candidates(&images, &used, now, Duration::ZERO), 5);
        assert_eq!((chosen.len(), freed), (1, 10));
        let gone = [image("newer", 10, false)];
        r.observe(&gone, &used, now);
        assert_eq!(r.records.len(), 1, "images gone are forgotten");
    }
}
