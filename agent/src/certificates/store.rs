//! The cert-dir files, as client-go's certificate file store lays them out: each issued pair
//! is one `PREFIX-YYYY-MM-DD-HH-MM-SS.pem` (chain then key, mode 0600) and
//! `PREFIX-current.pem` is a symlink to the one in use, switched by renaming a fresh
//! `PREFIX-updated.pem` link over it (readers see the old pair or the new one, never none).
//! Without a current link the store falls back to the configured files, then to
//! `PREFIX.crt` / `PREFIX.key` in the dir, as client-go does.
//!
//! A key is never world-readable, not even for a moment: files are created 0600 under a
//! temporary name, written, synced, then renamed into place. The cert dir is the agent's own
//! (root's), never a path a pod can write.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::pair::{self, Pair, PairError};

/// A file-store failure, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Pair { path: PathBuf, source: PairError },
    #[error("expected {0} to be a symlink but it is a file")]
    NotALink(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One kind of pair (`kubelet-client` or `kubelet-server`) in one directory.
#[derive(Debug, Clone)]
pub struct PairStore {
    pub dir: PathBuf,
    pub prefix: &'static str,
    /// Files to use while there is no current link (kubelet's --tls-cert-file/--tls-private-key-file,
    /// or the kubeconfig's client-certificate/client-key).
    pub fallback: Option<(PathBuf, PathBuf)>,
}

/// Creates `dir` (and parents) private to root when it does not exist yet.
pub fn ensure_private_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file renamed into place.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string());
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.unwrap_or_default(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}

/// The `YYYY-MM-DD-HH-MM-SS` (UTC) of a pair file's name.
fn stamp(now: SystemTime) -> String {
    k8s_openapi::jiff::Timestamp::try_from(now)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%d-%H-%M-%S")
        .to_string()
}

impl PairStore {
    pub fn new(dir: &Path, prefix: &'static str) -> PairStore {
        PairStore {
            dir: dir.to_path_buf(),
            prefix,
            fallback: None,
        }
    }

    fn named(&self, qualifier: &str) -> PathBuf {
        self.dir.join(format!("{}-{qualifier}.pem", self.prefix))
    }

    /// `PREFIX-current.pem`: what a kubeconfig written by the bootstrap points at.
    pub fn current_path(&self) -> PathBuf {
        self.named("current")
    }

    /// Finishes a switch that stopped between its two steps (client-go's `recover`).
    fn recover(&self) -> Result<(), StoreError> {
        let current = self.current_path();
        if current.exists() {
            return Ok(());
        }
        let updated = self.named("updated");
        match std::fs::symlink_metadata(&updated) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::rename(&updated, &current).map_err(io(&current))
            }
            Ok(_) => Err(StoreError::NotALink(updated)),
            Err(_) => Ok(()),
        }
    }

    /// The pair in use: the current link, else the fallback files, else `PREFIX.crt`/`.key`.
    /// None when there is none of them.
    pub fn current(&self) -> Result<Option<Pair>, StoreError> {
        self.recover()?;
        let current = self.current_path();
        if current.exists() {
            let pem = std::fs::read(&current).map_err(io(&current))?;
            let pair = pair::parse_combined(&pem).map_err(|source| StoreError::Pair {
                path: current.clone(),
                source,
            })?;
            return Ok(Some(pair));
        }
        let own = (
            self.dir.join(format!("{}.crt", self.prefix)),
            self.dir.join(format!("{}.key", self.prefix)),
        );
        for (cert, key) in self.fallback.iter().chain(std::iter::once(&own)) {
            if cert.exists() && key.exists() {
                let c = std::fs::read(cert).map_err(io(cert))?;
                let k = std::fs::read(key).map_err(io(key))?;
                let pair = pair::parse(&c, &k).map_err(|source| StoreError::Pair {
                    path: cert.clone(),
                    source,
                })?;
                return Ok(Some(pair));
            }
        }
        Ok(None)
    }

    /// Stores a newly issued pair as `PREFIX-STAMP.pem` (0600) and points the current link at
    /// it. The pair is checked first: a certificate that does not fit the key is never stored.
    pub fn update(
        &self,
        cert_pem: &[u8],
        key_pem: &[u8],
        now: SystemTime,
    ) -> Result<Pair, StoreError> {
        let file = self.named(&stamp(now));
        let pair = pair::parse(cert_pem, key_pem).map_err(|source| StoreError::Pair {
            path: file.clone(),
            source,
        })?;
        ensure_private_dir(&self.dir)?;
        let contents = format!("{}{}", pair.cert_pem, pair.key_pem);
        write_private(&file, contents.as_bytes())?;
        self.switch_to(&file)?;
        Ok(pair)
    }

    /// Points `PREFIX-current.pem` at `file` in one rename.
    fn switch_to(&self, file: &Path) -> Result<(), StoreError> {
        let current = self.current_path();
        if let Ok(m) = std::fs::symlink_metadata(&current)
            && !m.file_type().is_symlink()
        {
            return Err(StoreError::NotALink(current));
        }
        let updated = self.named("updated");
        match std::fs::symlink_metadata(&updated) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::remove_file(&updated).map_err(io(&updated))?;
            }
            Ok(_) => return Err(StoreError::NotALink(updated)),
            Err(_) => {}
        }
        let target = std::path::absolute(file).map_err(io(file))?;
        std::os::unix::fs::symlink(&target, &updated).map_err(io(&updated))?;
        std::fs::rename(&updated, &current).map_err(io(&current))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::super::pair::testing;
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_update_writes_a_private_stamped_file_and_switches_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let store = PairStore::new(&pki, "kubelet-client");
        assert!(store.current().unwrap().is_none());
        let ca = testing::ca();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (c1, k1) = testing::pair(&ca, "system:node:a", now, Duration::from_secs(60));
        store.update(c1.as_bytes(), k1.as_bytes(), now).unwrap();
        let first = pki.join("kubelet-client-2027-01-15-08-00-00.pem");
        assert_eq!(mode(&first), 0o600);
        assert_eq!(mode(&pki) & 0o077, 0, "the cert dir is private");
        let link = store.current_path();
        assert_eq!(std::fs::read_link(&link).unwrap(), first);
        assert_eq!(
            store.current().unwrap().unwrap().leaf.common_name,
            "system:node:a"
        );

        let later = now + Duration::from_secs(61);
        let (c2, k2) = testing::pair(&ca, "system:node:b", later, Duration::from_secs(60));
        store.update(c2.as_bytes(), k2.as_bytes(), later).unwrap();
        let second = pki.join("kubelet-client-2027-01-15-08-01-01.pem");
        assert_eq!(std::fs::read_link(&link).unwrap(), second);
        assert!(first.exists(), "the old pair stays, as kubelet leaves it");
        assert_eq!(
            store.current().unwrap().unwrap().leaf.common_name,
            "system:node:b"
        );
        // No temporary or updated link is left behind.
        let names: Vec<String> = std::fs::read_dir(&pki)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn a_mismatched_pair_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairStore::new(dir.path(), "kubelet-server");
        let ca = testing::ca();
        let now = SystemTime::now();
        let (c1, _) = testing::pair(&ca, "x", now, Duration::from_secs(60));
        let (_, k2) = testing::pair(&ca, "y", now, Duration::from_secs(60));
        assert!(store.update(c1.as_bytes(), k2.as_bytes(), now).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_regular_file_in_place_of_the_link_is_refused_and_fallbacks_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PairStore::new(dir.path(), "kubelet-server");
        let ca = testing::ca();
        let now = SystemTime::now();
        let (c, k) = testing::pair(&ca, "fallback", now, Duration::from_secs(60));
        std::fs::write(dir.path().join("tls.crt"), &c).unwrap();
        std::fs::write(dir.path().join("tls.key"), &k).unwrap();
        store.fallback = Some((dir.path().join("tls.crt"), dir.path().join("tls.key")));
        assert_eq!(
            store.current().unwrap().unwrap().leaf.common_name,
            "fallback"
        );
        std::fs::write(store.current_path(), "not a link").unwrap();
        let e = store.update(c.as_bytes(), k.as_bytes(), now).unwrap_err();
        assert!(matches!(e, StoreError::NotALink(_)), "{e}");
    }

    #[test]
    fn a_switch_cut_short_is_finished_on_the_next_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairStore::new(dir.path(), "kubelet-client");
        let ca = testing::ca();
        let now = SystemTime::now();
        let (c, k) = testing::pair(&ca, "recovered", now, Duration::from_secs(60));
        let file = dir.path().join("kubelet-client-x.pem");
        write_private(&file, format!("{c}{k}").as_bytes()).unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("kubelet-client-updated.pem")).unwrap();
        assert_eq!(
            store.current().unwrap().unwrap().leaf.common_name,
            "recovered"
        );
        assert!(store.current_path().exists());
    }
}
