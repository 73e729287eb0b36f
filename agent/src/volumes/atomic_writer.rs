//! kubelet's atomic writer: a volume's files are written into a fresh timestamped directory
//! `..YYYY_MM_DD_HH_MM_SS.N`, a `..data_tmp` symlink to it is renamed over `..data` (one
//! rename, so a reader sees the old set or the new set, never half of each), and the visible
//! names are symlinks `KEY -> ..data/KEY`. The old directory is removed afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One file of a volume: its bytes and its mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileProjection>;

const DATA_DIR: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Checks that `path` stays inside the volume: relative, not empty, no `..` element, not
/// starting with `..` (the writer's own names).
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".to_string());
    }
    if path.len() > 4096 {
        return Err(format!(
            "invalid path: must be less than or equal to 4096 characters: {path:?}"
        ));
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("invalid path: must not contain '..': {path}"));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(())
}

/// Files below `dir` (relative paths), following no symlinks.
fn list_files(dir: &Path, prefix: &Path, out: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let rel = prefix.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list_files(&entry.path(), &rel, out)?;
        } else {
            out.insert(rel);
        }
    }
    Ok(())
}

/// True when the directory `current` holds exactly `payload`.
fn same_content(current: &Path, payload: &Payload) -> bool {
    let mut files = BTreeSet::new();
    if list_files(current, Path::new(""), &mut files).is_err() {
        return false;
    }
    let wanted: BTreeSet<PathBuf> = payload.keys().map(PathBuf::from).collect();
    if files != wanted {
        return false;
    }
    payload.iter().all(|(rel, f)| {
        let p = current.join(rel);
        let mode_ok =
            std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o7777 == f.mode);
        mode_ok && std::fs::read(&p).is_ok_and(|d| d == f.data)
    })
}

fn timestamped_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = k8s_openapi::jiff::Timestamp::now();
    format!(
        "..{}.{}{}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_files(dir: &Path, payload: &Payload) -> io::Result<()> {
    for (rel, f) in payload {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    Ok(())
}

/// The top-level names the payload shows.
fn visible_names(payload: &Payload) -> BTreeSet<String> {
    payload
        .keys()
        .filter_map(|k| Path::new(k).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// Writes `payload` into `target` atomically. Returns false when it already held exactly that.
pub fn write(target: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        validate_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    std::fs::create_dir_all(target)?;
    let data_link = target.join(DATA_DIR);
    let old = std::fs::read_link(&data_link).ok();
    let changed = match &old {
        Some(old) => !same_content(&target.join(old), payload),
        None => true,
    };
    if changed {
        let name = timestamped_name();
        let ts_dir = target.join(&name);
        std::fs::create_dir(&ts_dir)?;
        std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
        let swapped = write_files(&ts_dir, payload).and_then(|()| {
            let tmp = target.join(DATA_TMP);
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&name, &tmp)?;
            std::fs::rename(&tmp, &data_link)
        });
        if let Err(e) = swapped {
            let _ = std::fs::remove_dir_all(&ts_dir);
            return Err(e);
        }
    }
    // Visible names: add the new ones, drop those the payload no longer has.
    let names = visible_names(payload);
    for n in &names {
        let link = target.join(n);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(n), &link)?;
        }
    }
    for entry in std::fs::read_dir(target)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !names.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if changed && let Some(old) = old {
        let _ = std::fs::remove_dir_all(target.join(old));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_through_a_data_symlink_and_swaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("a".into(), file("1", 0o644));
        p.insert("sub/b".into(), file("2", 0o400));
        assert!(write(dir.path(), &p).unwrap());
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/b")).unwrap(),
            "2"
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(dir.path().join("..data")).unwrap();
        let mode = std::fs::metadata(dir.path().join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);

        // Same content: nothing changes.
        assert!(!write(dir.path(), &p).unwrap());
        assert_eq!(
            std::fs::read_link(dir.path().join("..data")).unwrap(),
            first
        );

        // New content: a new directory, the old one gone, a dropped key's link removed.
        p.remove("sub/b");
        p.insert("a".into(), file("3", 0o644));
        assert!(write(dir.path(), &p).unwrap());
        let second = std::fs::read_link(dir.path().join("..data")).unwrap();
        assert_ne!(first, second);
        assert!(!dir.path().join(&first).exists());
        assert!(std::fs::symlink_metadata(dir.path().join("sub")).is_err());
        assert_eq!(std::fs::read_to_string(dir.path().join("a")).unwrap(), "3");
    }

    #[test]
    fn paths_leaving_the_volume_are_refused() {
        assert!(validate_path("../x").is_err());
        assert!(validate_path("a/../../x").is_err());
        assert!(validate_path("/etc/passwd").is_err());
        assert!(validate_path("..data").is_err());
        assert!(validate_path("").is_err());
        assert!(validate_path("a/b.txt").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("../evil".into(), file("x", 0o644));
        assert!(write(dir.path(), &p).is_err());
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }
}
