//! The on-disk cache of ADD results: one JSON file per attachment, holding
//! everything DEL and CHECK need after an agent restart.
//!
//! Layout: `CACHE_DIR/results/NETWORK-CONTAINERID-IFNAME`, written atomically
//! (temporary file, rename). Because names may contain `-`, an
//! entry is only returned for a key when the identity stored inside it
//! matches.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::attachment::{Attachment, AttachmentRequest, validate_identity};
use crate::config::{NetworkConfigList, validate_name};
use crate::error::CniError;
use crate::result::CniResult;
use crate::runtime_config::CapabilityArgs;

const RESULTS_DIR: &str = "results";
const KIND: &str = "minikubelet/cni-cache/v1";

/// The cached state of one attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    /// Format marker.
    pub kind: String,
    /// The network name.
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// `CNI_CONTAINERID` of the ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// `CNI_IFNAME` of the ADD.
    #[serde(rename = "ifName")]
    pub ifname: String,
    /// `CNI_NETNS` of the ADD.
    pub netns: PathBuf,
    /// `CNI_ARGS` pairs of the ADD.
    #[serde(rename = "cniArgs", default)]
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments of the ADD.
    #[serde(rename = "capabilityArgs", default)]
    pub capability_args: CapabilityArgs,
    /// The network configuration ADD ran, pinned to the negotiated version.
    pub config: Value,
    /// The final ADD result, at that version.
    pub result: Value,
}

impl CachedAttachment {
    pub(crate) fn new(
        network: &NetworkConfigList,
        request: &AttachmentRequest,
        result: &CniResult,
    ) -> Self {
        Self {
            kind: KIND.to_owned(),
            network_name: network.name().to_owned(),
            container_id: request.container_id.clone(),
            ifname: request.ifname.clone(),
            netns: request.netns.clone(),
            cni_args: request.cni_args.clone(),
            capability_args: request.capability_args.clone(),
            config: network.to_json(),
            result: result.to_json(network.cni_version()),
        }
    }

    /// The attachment's identity.
    #[must_use]
    pub fn attachment(&self) -> Attachment {
        Attachment::new(self.container_id.clone(), self.ifname.clone())
    }

    /// The network configuration ADD used.
    ///
    /// # Errors
    /// [`CniError::Config`] if the stored configuration no longer validates.
    pub fn network_config(&self) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::from_value(self.config.clone(), Some(Path::new("<cached ADD config>")))
    }

    /// The ADD result.
    ///
    /// # Errors
    /// [`CniError::InvalidResult`] if the stored result does not parse.
    pub fn result(&self) -> Result<CniResult, CniError> {
        let version = self.network_config()?.cni_version();
        CniResult::from_json("<cached ADD result>", &self.result, version)
    }

    /// The ADD's parameters, e.g. to DEL a stale attachment.
    #[must_use]
    pub fn request(&self) -> AttachmentRequest {
        AttachmentRequest {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            cni_args: self.cni_args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }
}

/// Reads and writes [`CachedAttachment`]s under a cache directory.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// A cache rooted at `dir` (created on first write).
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file of one attachment.
    ///
    /// # Errors
    /// [`CniError::InvalidAttachment`] or [`CniError::Config`] when a name is
    /// not path-safe.
    pub fn path_of(&self, network: &str, attachment: &Attachment) -> Result<PathBuf, CniError> {
        validate_name(network).map_err(|reason| CniError::config(None, reason))?;
        validate_identity(&attachment.container_id, &attachment.ifname)?;
        Ok(self.results_dir().join(format!(
            "{network}-{}-{}",
            attachment.container_id, attachment.ifname
        )))
    }

    fn results_dir(&self) -> PathBuf {
        self.dir.join(RESULTS_DIR)
    }

    /// Stores `entry`, replacing any previous one, atomically.
    ///
    /// # Errors
    /// [`CniError::Io`] naming the file.
    pub async fn write(&self, entry: &CachedAttachment) -> Result<(), CniError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path_of(&entry.network_name, &entry.attachment())?;
        let dir = self.results_dir();
        let ctx = |what: &str| format!("{what} CNI cache {}", path.display());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| CniError::io(ctx("creating the directory of"), e))?;
        let bytes = serde_json::to_vec(entry)
            .map_err(|e| CniError::io(ctx("encoding"), io::Error::other(e)))?;
        let tmp = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&bytes).await?;
            // No fsync, as libcni: it cost 10-25 ms per ADD here. After a power loss an entry
            // may be empty; it is then skipped as corrupt and DEL runs from the conf dir
            // (host-local still releases by container id).
            file.flush().await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(CniError::io(ctx("writing"), e));
        }
        Ok(())
    }

    /// The entry of one attachment, `None` when there is none.
    ///
    /// # Errors
    /// [`CniError::Io`] when the file cannot be read, [`CniError::Cache`]
    /// when it is corrupt.
    pub async fn read(
        &self,
        network: &str,
        attachment: &Attachment,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let path = self.path_of(network, attachment)?;
        let Some(entry) = read_entry(&path).await? else {
            return Ok(None);
        };
        // Another identity whose file name collides (names may contain '-').
        if entry.network_name != network || entry.attachment() != *attachment {
            return Ok(None);
        }
        Ok(Some(entry))
    }

    /// Removes the entry of one attachment; a missing entry is not an error.
    ///
    /// # Errors
    /// [`CniError::Io`] naming the file.
    pub async fn remove(&self, network: &str, attachment: &Attachment) -> Result<(), CniError> {
        let path = self.path_of(network, attachment)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CniError::io(
                format!("removing CNI cache {}", path.display()),
                e,
            )),
            _ => Ok(()),
        }
    }

    /// All entries, of every network when `network` is `None`. Corrupt files
    /// are skipped with a warning.
    ///
    /// # Errors
    /// [`CniError::Io`] when the directory cannot be read.
    pub async fn list(&self, network: Option<&str>) -> Result<Vec<CachedAttachment>, CniError> {
        let dir = self.results_dir();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CniError::io(
                    format!("reading CNI cache {}", dir.display()),
                    e,
                ));
            }
        };
        let mut found = Vec::new();
        while let Some(file) = entries
            .next_entry()
            .await
            .map_err(|e| CniError::io(format!("reading CNI cache {}", dir.display()), e))?
        {
            if file.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match read_entry(&file.path()).await {
                Ok(Some(entry)) if network.is_none_or(|n| n == entry.network_name) => {
                    found.push(entry);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "skipping unreadable CNI cache entry"),
            }
        }
        found.sort_by(|a, b| {
            (&a.network_name, &a.container_id, &a.ifname).cmp(&(
                &b.network_name,
                &b.container_id,
                &b.ifname,
            ))
        });
        Ok(found)
    }

    /// The cached attachments of `network` that are not in `valid`: those a
    /// runtime should DEL (with [`CachedAttachment::request`] and the cached
    /// config) when the plugins cannot GC them.
    ///
    /// # Errors
    /// As [`ResultCache::list`].
    pub async fn stale_attachments(
        &self,
        network: &str,
        valid: &[Attachment],
    ) -> Result<Vec<CachedAttachment>, CniError> {
        let all = self.list(Some(network)).await?;
        Ok(all
            .into_iter()
            .filter(|entry| !valid.contains(&entry.attachment()))
            .collect())
    }
}

async fn read_entry(path: &Path) -> Result<Option<CachedAttachment>, CniError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CniError::io(
                format!("reading CNI cache {}", path.display()),
                e,
            ));
        }
    };
    let entry: CachedAttachment = serde_json::from_slice(&bytes).map_err(|e| CniError::Cache {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if entry.kind != KIND {
        return Err(CniError::Cache {
            path: path.to_path_buf(),
            reason: format!("unknown kind {:?}", entry.kind),
        });
    }
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::version::CniVersion;

    fn network(name: &str) -> NetworkConfigList {
        NetworkConfigList::from_value(
            json!({"cniVersion":"1.0.0","name":name,"plugins":[{"type":"bridge","marker":"v1"}]}),
            None,
        )
        .unwrap()
    }

    fn entry(net: &str, cid: &str) -> CachedAttachment {
        let request = AttachmentRequest::new(cid, "/run/netns/x", "eth0")
            .with_cni_args([("K8S_POD_NAME", "p")]);
        let result = CniResult::from_json(
            "t",
            &json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}),
            CniVersion::V1_0_0,
        )
        .unwrap();
        CachedAttachment::new(&network(net), &request, &result)
    }

    #[tokio::test]
    async fn write_read_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let a = entry("net", "aaa");
        cache.write(&a).await.unwrap();
        cache.write(&entry("net", "bbb")).await.unwrap();
        cache.write(&entry("other", "ccc")).await.unwrap();
        assert!(dir.path().join("results/net-aaa-eth0").is_file());

        let read = cache.read("net", &a.attachment()).await.unwrap().unwrap();
        assert_eq!(read, a);
        assert_eq!(
            read.request().cni_args,
            vec![("K8S_POD_NAME".to_owned(), "p".to_owned())]
        );
        assert_eq!(
            read.network_config().unwrap().plugins()[0].raw()["marker"],
            "v1"
        );
        assert_eq!(
            read.result().unwrap().ips[0].address.to_string(),
            "10.0.0.2/24"
        );

        assert_eq!(cache.list(None).await.unwrap().len(), 3);
        assert_eq!(cache.list(Some("net")).await.unwrap().len(), 2);
        let stale = cache
            .stale_attachments("net", &[Attachment::new("aaa", "eth0")])
            .await
            .unwrap();
        assert_eq!(
            stale
                .iter()
                .map(|e| e.container_id.as_str())
                .collect::<Vec<_>>(),
            vec!["bbb"]
        );

        cache.remove("net", &a.attachment()).await.unwrap();
        cache.remove("net", &a.attachment()).await.unwrap();
        assert!(cache.read("net", &a.attachment()).await.unwrap().is_none());
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("results"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2);
    }

    #[tokio::test]
    async fn colliding_names_are_not_confused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        // "a-b" + "c" and "a" + "b-c" share a file name.
        cache.write(&entry("a-b", "c")).await.unwrap();
        assert!(
            cache
                .read("a", &Attachment::new("b-c", "eth0"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            cache
                .read("a-b", &Attachment::new("c", "eth0"))
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn corrupt_entries_are_reported_and_skipped_by_list() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        cache.write(&entry("net", "aaa")).await.unwrap();
        std::fs::write(dir.path().join("results/net-bad-eth0"), "garbage").unwrap();
        assert!(matches!(
            cache.read("net", &Attachment::new("bad", "eth0")).await,
            Err(CniError::Cache { .. })
        ));
        assert_eq!(cache.list(None).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn unsafe_keys_are_refused() {
        let cache = ResultCache::new("/nonexistent");
        assert!(
            cache
                .path_of("net", &Attachment::new("../x", "eth0"))
                .is_err()
        );
        assert!(
            cache
                .path_of("../net", &Attachment::new("x", "eth0"))
                .is_err()
        );
    }
}
