//! kubelet's atomic writer: a volume's files are written into a fresh timestamped directory
//! `..YYYY_MM_DD_HH_MM_SS.N`, a `..data_tmp` symlink to it is renamed over `..data` (one
//! rename, so a reader sees the old set or the new set, never half of each), and the visible
//! names are symlinks `KEY -> ..data/KEY`. The old directory is removed afterwards.
//!
//! A container can write to the volume (even a read-only mount may be another container's
//! writable one), and the agent is root, so nothing found in the volume is trusted: every
//! operation is relative to the volume directory's fd ([`super::dirfd`]), never through a
//! path; the name read back from `..data` counts only when it is one component in the
//! writer's own form naming a real directory; old data directories are found by listing, not
//! by following a link; a stale visible name is removed only when it is a symlink. A planted
//! link can at worst make the writer rewrite the volume, never reach outside it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FileType;
use rustix::io::Errno;
use tracing::warn;

use super::dirfd::{self, DirError, DirFd};
use super::ownership::{Access, FsGroup};

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
/// Where a visible link is made before it is renamed over a wrong entry of that name.
const VISIBLE_TMP: &str = "..visible_tmp";
/// kubelet's mode for the timestamped directory and directories inside it.
const DIR_MODE: u32 = 0o755;
const MAX_PATH: usize = 4096;
const MAX_NAME: usize = 255;

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A payload path that would leave the volume or is malformed (kubelet's texts).
    #[error("{0}")]
    InvalidPath(String),
    #[error(transparent)]
    Fs(#[from] DirError),
}

impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        match e {
            WriteError::InvalidPath(m) => io::Error::new(io::ErrorKind::InvalidInput, m),
            WriteError::Fs(e) => e.into(),
        }
    }
}

/// Checks that `path` stays inside the volume: relative, not empty, no `..` element, not
/// starting with `..` (the writer's own names), no name longer than 255 bytes.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".to_string());
    }
    if path.len() > MAX_PATH {
        return Err(format!(
            "invalid path: must be less than or equal to 4096 characters: {path:?}"
        ));
    }
    if path.starts_with('/') {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    let items: Vec<&str> = path.split('/').collect();
    if items.contains(&"..") {
        return Err(format!("invalid path: must not contain '..': {path}"));
    }
    if items.iter().any(|i| i.len() > MAX_NAME) {
        return Err(format!(
            "invalid path: filenames must be less than or equal to 255 characters: {path}"
        ));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    if components(path).is_empty() {
        return Err(format!("invalid path: must name a file: {path}"));
    }
    Ok(())
}

/// The path's names, without empty and `.` elements (kubelet cleans paths the same way).
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The payload validated and keyed by cleaned paths (`a/b`).
fn normalize(payload: &Payload) -> Result<BTreeMap<String, &FileProjection>, WriteError> {
    let mut out = BTreeMap::new();
    for (path, f) in payload {
        validate_path(path).map_err(WriteError::InvalidPath)?;
        out.insert(components(path).join("/"), f);
    }
    Ok(out)
}

/// True for a name in the writer's own form `..YYYY_MM_DD_HH_MM_SS.N` (N digits).
pub fn is_data_dir_name(name: &OsStr) -> bool {
    let Some(rest) = name.as_bytes().strip_prefix(b"..") else {
        return false;
    };
    if rest.len() < 21 {
        return false;
    }
    let (stamp, tail) = rest.split_at(19);
    let stamp_ok = stamp.iter().enumerate().all(|(i, b)| match i {
        4 | 7 | 10 | 13 | 16 => *b == b'_',
        _ => b.is_ascii_digit(),
    });
    stamp_ok && tail[0] == b'.' && tail[1..].iter().all(u8::is_ascii_digit)
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

/// The mode a payload file ends with.
fn file_mode(f: &FileProjection, group: Option<FsGroup>) -> u32 {
    let mode = f.mode & 0o777;
    group.map_or(mode, |g| g.file_mode(mode))
}

/// Gives a directory this writer made exactly `DIR_MODE` (the umask cut it), or the fsGroup
/// group and mode.
fn set_dir_mode(dir: &DirFd, group: Option<FsGroup>) -> Result<(), DirError> {
    dirfd::set_mode(dir, DIR_MODE)?;
    match group {
        Some(g) => g.apply_dir(dir),
        None => Ok(()),
    }
}

/// The current data directory: the target of `..data` when that is a name in the writer's
/// form of a real directory in the volume. Anything else (an absolute or `..` target, a name
/// that is itself a symlink, no link at all) means the volume has no current data.
fn current_data_dir(vol: &DirFd) -> Option<OsString> {
    let target = vol.readlink(DATA_DIR).ok()?;
    if !is_data_dir_name(&target) {
        return None;
    }
    let st = vol.lstat(&target).ok()?;
    (dirfd::file_type(&st) == FileType::Directory).then_some(target)
}

/// Opens the directories `parents` below `dir`, no-follow, one component at a time.
fn open_parents(dir: &DirFd, parents: &[&str]) -> Result<DirFd, DirError> {
    let mut cur = dir.try_clone()?;
    for name in parents {
        cur = cur.open_dir(name)?;
    }
    Ok(cur)
}

/// Regular files below `dir` (cleaned relative paths) into `out`; false when the tree holds
/// anything else (a symlink, a device, a non-UTF-8 name, too deep): not the writer's content.
fn list_files(dir: &DirFd, prefix: &str, depth: usize, out: &mut BTreeSet<String>) -> bool {
    if depth > dirfd::MAX_DEPTH {
        return false;
    }
    let Ok(names) = dir.entries() else {
        return false;
    };
    names.iter().all(|name| {
        let Some(n) = name.to_str() else {
            return false;
        };
        let rel = if prefix.is_empty() {
            n.to_string()
        } else {
            format!("{prefix}/{n}")
        };
        match dir.lstat(name).map(|st| dirfd::file_type(&st)) {
            Ok(FileType::Directory) => dir
                .open_dir(name)
                .is_ok_and(|sub| list_files(&sub, &rel, depth + 1, out)),
            Ok(FileType::RegularFile) => {
                out.insert(rel);
                true
            }
            _ => false,
        }
    })
}

/// True when the file `rel` below `dir` has `f`'s bytes, mode and (with fsGroup) group.
fn file_matches(dir: &DirFd, rel: &str, f: &FileProjection, group: Option<FsGroup>) -> bool {
    let comps = components(rel);
    let Some((last, parents)) = comps.split_last() else {
        return false;
    };
    let Ok(file) = open_parents(dir, parents).and_then(|p| p.open_file(last)) else {
        return false;
    };
    let Ok(st) = dirfd::stat_fd(&file) else {
        return false;
    };
    let group_ok = group.is_none_or(|g| st.st_gid == g.gid);
    // Compared by size first: a container may have grown the file to any size.
    if !group_ok
        || dirfd::mode_bits(&st) != file_mode(f, group)
        || u64::try_from(st.st_size).ok() != u64::try_from(f.data.len()).ok()
    {
        return false;
    }
    let mut data = Vec::with_capacity(f.data.len());
    let limit = u64::try_from(f.data.len())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit).read_to_end(&mut data).is_ok() && data == f.data
}

/// True when the data directory `current` holds exactly `files`.
fn same_content(
    vol: &DirFd,
    current: &OsStr,
    files: &BTreeMap<String, &FileProjection>,
    group: Option<FsGroup>,
) -> bool {
    let Ok(dir) = vol.open_dir(current) else {
        return false;
    };
    let mut found = BTreeSet::new();
    if !list_files(&dir, "", 0, &mut found) {
        return false;
    }
    found.iter().eq(files.keys())
        && files
            .iter()
            .all(|(rel, f)| file_matches(&dir, rel, f, group))
}

/// The directory `name` below `parent`: made (with the writer's mode) unless an earlier file
/// of this payload made it; opened no-follow either way.
fn subdir(parent: &DirFd, name: &str, group: Option<FsGroup>) -> Result<DirFd, DirError> {
    match parent.mkdir(name, DIR_MODE) {
        Ok(()) => {
            let dir = parent.open_dir(name)?;
            set_dir_mode(&dir, group)?;
            Ok(dir)
        }
        Err(e) if e.errno() == Some(Errno::EXIST) => parent.open_dir(name),
        Err(e) => Err(e),
    }
}

/// Writes `files` into the new data directory `name` of the volume.
fn write_data_dir(
    vol: &DirFd,
    name: &str,
    files: &BTreeMap<String, &FileProjection>,
    group: Option<FsGroup>,
) -> Result<(), DirError> {
    vol.mkdir(name, DIR_MODE)?;
    let dir = vol.open_dir(name)?;
    set_dir_mode(&dir, group)?;
    for (rel, f) in files {
        let comps = components(rel);
        let Some((last, parents)) = comps.split_last() else {
            continue;
        };
        let mut cur = dir.try_clone()?;
        for p in parents {
            cur = subdir(&cur, p, group)?;
        }
        let mode = file_mode(f, group);
        let fd = cur.create_file(last, mode, &f.data)?;
        match group {
            Some(g) => g.apply_file(&fd, mode)?,
            None => dirfd::set_mode(&fd, mode)?,
        }
    }
    Ok(())
}

/// Removes whatever is at `name` (a leftover, or something a container planted there).
fn clear(vol: &DirFd, name: impl AsRef<OsStr>) -> Result<(), DirError> {
    match vol.remove_tree(name) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Makes `name` the symlink `target`, replacing in one rename whatever is there (a directory
/// cannot be renamed over, so one is removed first).
fn link_into_place(vol: &DirFd, tmp: &str, target: &str, name: &str) -> Result<(), DirError> {
    clear(vol, tmp)?;
    vol.symlink(target, tmp)?;
    if vol
        .lstat(name)
        .is_ok_and(|st| dirfd::file_type(&st) == FileType::Directory)
    {
        vol.remove_tree(name)?;
    }
    vol.rename(tmp, name)
}

/// Points `..data` at the data directory `name`.
fn swap_data_link(vol: &DirFd, name: &str, group: Option<FsGroup>) -> Result<(), DirError> {
    clear(vol, DATA_TMP)?;
    vol.symlink(name, DATA_TMP)?;
    if let Some(g) = group {
        vol.lchown_group(DATA_TMP, g.gid)?;
    }
    if vol
        .lstat(DATA_DIR)
        .is_ok_and(|st| dirfd::file_type(&st) == FileType::Directory)
    {
        vol.remove_tree(DATA_DIR)?;
    }
    vol.rename(DATA_TMP, DATA_DIR)
}

/// True when `name` is already the symlink `target`.
fn links_to(vol: &DirFd, name: &str, target: &str) -> bool {
    vol.readlink(name)
        .is_ok_and(|t| t.as_bytes() == target.as_bytes())
}

/// The visible names `KEY -> ..data/KEY` for the payload's top-level names; stale ones (not
/// in the payload, not the writer's `..` names) are removed when they are symlinks.
fn update_visible_names(
    vol: &DirFd,
    names: &BTreeSet<&str>,
    group: Option<FsGroup>,
) -> Result<(), DirError> {
    // The writer's own names are never visible names: `./..data` passes validation (as in
    // kubelet) and is cleaned to `..data`; its file stays inside the data dir, unlinked.
    for name in names.iter().filter(|n| !n.starts_with("..")) {
        let target = format!("{DATA_DIR}/{name}");
        if !links_to(vol, name, &target) {
            link_into_place(vol, VISIBLE_TMP, &target, name)?;
        }
        if let Some(g) = group {
            vol.lchown_group(name, g.gid)?;
        }
    }
    for entry in vol.entries()? {
        let stale = !entry.as_bytes().starts_with(b"..")
            && entry.to_str().is_none_or(|e| !names.contains(e));
        let is_link = vol
            .lstat(&entry)
            .is_ok_and(|st| dirfd::file_type(&st) == FileType::Symlink);
        if stale && is_link {
            match vol.unlink(&entry) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Removes every entry in the writer's data-directory form except `keep` (a real directory
/// with its contents, anything else just unlinked), logging what cannot be removed.
fn remove_old_data_dirs(vol: &DirFd, keep: &OsStr) {
    let entries = match vol.entries() {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "cannot list a volume for old data directories");
            return;
        }
    };
    for entry in entries {
        if entry != keep
            && is_data_dir_name(&entry)
            && let Err(e) = clear(vol, &entry)
        {
            warn!(entry = ?entry, error = %e, "cannot remove an old data directory");
        }
    }
}

/// Writes `payload` into the existing volume directory `target` atomically; with `fs_group`
/// the files, directories and links get that group and kubelet's read-only masks. Returns
/// false when the volume already held exactly that.
pub fn write(target: &Path, payload: &Payload, fs_group: Option<u32>) -> Result<bool, WriteError> {
    let files = normalize(payload)?;
    let group = fs_group.map(|gid| FsGroup::new(gid, Access::ReadOnly));
    let vol = DirFd::open(target)?;
    if let Some(g) = group {
        g.apply_dir(&vol)?;
    }
    let current = current_data_dir(&vol);
    let unchanged = current
        .as_deref()
        .is_some_and(|c| same_content(&vol, c, &files, group));
    let keep = match current {
        Some(c) if unchanged => c,
        _ => {
            let name = timestamped_name();
            let written = write_data_dir(&vol, &name, &files, group)
                .and_then(|()| swap_data_link(&vol, &name, group));
            if let Err(e) = written {
                let _ = clear(&vol, &name);
                return Err(e.into());
            }
            OsString::from(name)
        }
    };
    let names: BTreeSet<&str> = files.keys().filter_map(|k| k.split('/').next()).collect();
    update_visible_names(&vol, &names, group)?;
    remove_old_data_dirs(&vol, &keep);
    Ok(!unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn file(s: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    fn payload() -> Payload {
        let mut p = Payload::new();
        p.insert("a".into(), file("1", 0o644));
        p.insert("sub/b".into(), file("2", 0o400));
        p
    }

    /// A volume and, outside it, a canary directory nothing may touch.
    struct Planted {
        _tmp: tempfile::TempDir,
        vol: PathBuf,
        canary: PathBuf,
    }

    fn planted() -> Planted {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        let canary = tmp.path().join("canary");
        std::fs::create_dir(&vol).unwrap();
        std::fs::create_dir_all(canary.join("deep")).unwrap();
        std::fs::write(canary.join("keep"), "precious").unwrap();
        std::fs::write(canary.join("deep/keep"), "precious").unwrap();
        std::fs::set_permissions(canary.join("keep"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        Planted {
            _tmp: tmp,
            vol,
            canary,
        }
    }

    impl Planted {
        fn canary_intact(&self) {
            let mut names: Vec<_> = std::fs::read_dir(&self.canary)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["deep", "keep"]);
            assert_eq!(
                std::fs::read_to_string(self.canary.join("keep")).unwrap(),
                "precious"
            );
            assert_eq!(
                std::fs::read_to_string(self.canary.join("deep/keep")).unwrap(),
                "precious"
            );
            let m = std::fs::metadata(self.canary.join("keep")).unwrap();
            assert_eq!(m.mode() & 0o7777, 0o600);
            assert_ne!(m.gid(), 4242);
            assert!(std::fs::symlink_metadata(self.canary.join("a")).is_err());
            assert!(std::fs::symlink_metadata(self.canary.join("b")).is_err());
        }

        /// The volume shows exactly `p` through `..data`, with one data directory.
        fn holds(&self, p: &Payload) {
            let data = std::fs::read_link(self.vol.join(DATA_DIR)).unwrap();
            assert!(is_data_dir_name(data.as_os_str()), "{data:?}");
            assert!(
                std::fs::symlink_metadata(self.vol.join(&data))
                    .unwrap()
                    .is_dir()
            );
            let dirs: Vec<_> = std::fs::read_dir(&self.vol)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| is_data_dir_name(n))
                .collect();
            assert_eq!(dirs, [data.as_os_str()], "one data directory");
            for (k, f) in p {
                assert_eq!(std::fs::read(self.vol.join(k)).unwrap(), f.data, "{k}");
                let real = self.vol.join(&data).join(k);
                let m = std::fs::symlink_metadata(&real).unwrap();
                assert!(m.is_file(), "{k} is a real file in the data dir");
            }
        }

        fn current(&self) -> PathBuf {
            self.vol
                .join(std::fs::read_link(self.vol.join(DATA_DIR)).unwrap())
        }

        fn replace_with_link(&self, name: &str, target: &Path) {
            let p = self.vol.join(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                let _ = std::fs::remove_file(&p);
            }
            std::os::unix::fs::symlink(target, &p).unwrap();
        }
    }

    #[test]
    fn writes_through_a_data_symlink_and_swaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = payload();
        assert!(write(dir.path(), &p, None).unwrap());
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
        let ts_mode = std::fs::metadata(dir.path().join(&first)).unwrap().mode();
        assert_eq!(ts_mode & 0o7777, 0o755);

        // Same content: nothing changes.
        assert!(!write(dir.path(), &p, None).unwrap());
        assert_eq!(
            std::fs::read_link(dir.path().join("..data")).unwrap(),
            first
        );

        // New content: a new directory, the old one gone, a dropped key's link removed.
        p.remove("sub/b");
        p.insert("a".into(), file("3", 0o644));
        assert!(write(dir.path(), &p, None).unwrap());
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
        assert!(validate_path(".").is_err());
        assert!(validate_path(&"x".repeat(256)).is_err());
        assert!(validate_path("a/b.txt").is_ok());
        assert!(validate_path("a/..b").is_ok());
        let d = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("./..data".into(), file("x", 0o644));
        p.insert("k".into(), file("v", 0o644));
        write(d.path(), &p, None).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("k")).unwrap(), "v");
        write(d.path(), &p, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("k")).unwrap(),
            "v",
            "a `./..data` item never replaces the writer's own link"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("../evil".into(), file("x", 0o644));
        assert!(matches!(
            write(dir.path(), &p, None),
            Err(WriteError::InvalidPath(_))
        ));
        assert!(!dir.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn paths_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Payload::new();
        p.insert("./x//y".into(), file("1", 0o644));
        write(dir.path(), &p, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("x/y")).unwrap(),
            "1"
        );
        assert!(!write(dir.path(), &p, None).unwrap());
    }

    #[test]
    fn data_dir_names_are_the_writers_own() {
        assert!(is_data_dir_name(OsStr::new(&timestamped_name())));
        assert!(is_data_dir_name(OsStr::new("..2024_01_02_03_04_05.1")));
        for bad in [
            "..data",
            "..2024_01_02_03_04_05",
            "..2024_01_02_03_04_05.",
            "..2024_01_02_03_04_05.1/x",
            "../2024_01_02_03_04_05.1",
            "/..2024_01_02_03_04_05.1",
            "..2024-01_02_03_04_05.1",
        ] {
            assert!(!is_data_dir_name(OsStr::new(bad)), "{bad}");
        }
    }

    #[test]
    fn an_absolute_data_link_is_not_followed() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        t.replace_with_link(DATA_DIR, &t.canary);
        assert!(write(&t.vol, &p, None).unwrap(), "rewritten");
        t.canary_intact();
        t.holds(&p);
    }

    #[test]
    fn a_parent_data_link_is_not_followed() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        // From the volume, ../canary; ../.. is above the test's temp dir.
        t.replace_with_link(DATA_DIR, Path::new("../canary"));
        assert!(write(&t.vol, &p, None).unwrap());
        t.canary_intact();
        t.holds(&p);
        t.replace_with_link(DATA_DIR, Path::new("../.."));
        assert!(write(&t.vol, &p, None).unwrap());
        t.canary_intact();
        t.holds(&p);
    }

    #[test]
    fn a_data_link_to_a_timestamp_named_link_is_not_followed() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        let fake = "..2020_01_01_00_00_00.1";
        std::os::unix::fs::symlink(&t.canary, t.vol.join(fake)).unwrap();
        t.replace_with_link(DATA_DIR, Path::new(fake));
        assert!(write(&t.vol, &p, None).unwrap());
        t.canary_intact();
        t.holds(&p);
        assert!(
            std::fs::symlink_metadata(t.vol.join(fake)).is_err(),
            "the planted link is unlinked as an old entry"
        );
    }

    #[test]
    fn a_timestamp_named_link_beside_the_data_is_unlinked_not_followed() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        std::os::unix::fs::symlink(&t.canary, t.vol.join("..2020_01_01_00_00_00.7")).unwrap();
        let mut q = p.clone();
        q.insert("a".into(), file("changed", 0o644));
        assert!(write(&t.vol, &q, None).unwrap());
        t.canary_intact();
        t.holds(&q);
    }

    #[test]
    fn a_visible_name_linked_outside_is_replaced() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        t.replace_with_link("a", &t.canary.join("keep"));
        t.replace_with_link("sub", &t.canary);
        // A stale name (not in the payload) that is a link is removed, a real file is kept.
        std::os::unix::fs::symlink(&t.canary, t.vol.join("gone")).unwrap();
        std::fs::write(t.vol.join("mine"), "container's").unwrap();
        assert!(
            !write(&t.vol, &p, None).unwrap(),
            "the data itself is intact"
        );
        t.canary_intact();
        t.holds(&p);
        assert_eq!(
            std::fs::read_link(t.vol.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(t.vol.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert!(std::fs::symlink_metadata(t.vol.join("gone")).is_err());
        assert!(t.vol.join("mine").is_file());
    }

    #[test]
    fn a_visible_name_replaced_by_a_directory_is_restored() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        std::fs::remove_file(t.vol.join("a")).unwrap();
        std::fs::create_dir(t.vol.join("a")).unwrap();
        std::os::unix::fs::symlink(&t.canary, t.vol.join("a/link")).unwrap();
        write(&t.vol, &p, None).unwrap();
        t.canary_intact();
        t.holds(&p);
    }

    #[test]
    fn a_subdirectory_in_the_data_replaced_by_a_link_is_not_followed() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        let old = t.current();
        std::fs::remove_dir_all(old.join("sub")).unwrap();
        std::os::unix::fs::symlink(&t.canary, old.join("sub")).unwrap();
        assert!(write(&t.vol, &p, None).unwrap(), "mismatch: rewritten");
        t.canary_intact();
        t.holds(&p);
        assert!(
            !old.exists(),
            "the old directory (and the link in it) removed"
        );

        // Again with a link to a file planted over a payload file.
        let old = t.current();
        std::fs::remove_file(old.join("a")).unwrap();
        std::os::unix::fs::symlink(t.canary.join("keep"), old.join("a")).unwrap();
        assert!(write(&t.vol, &p, None).unwrap());
        t.canary_intact();
        t.holds(&p);
    }

    #[test]
    fn a_data_link_replaced_by_a_directory_is_restored() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        t.replace_with_link(DATA_TMP, &t.canary);
        std::fs::remove_file(t.vol.join(DATA_DIR)).unwrap();
        std::fs::create_dir(t.vol.join(DATA_DIR)).unwrap();
        std::os::unix::fs::symlink(&t.canary, t.vol.join("..data/x")).unwrap();
        assert!(write(&t.vol, &p, None).unwrap());
        t.canary_intact();
        t.holds(&p);
    }

    #[test]
    fn a_changed_file_mode_or_content_is_rewritten() {
        let t = planted();
        let p = payload();
        write(&t.vol, &p, None).unwrap();
        let cur = t.current();
        std::fs::set_permissions(cur.join("a"), std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(write(&t.vol, &p, None).unwrap());
        std::fs::write(t.current().join("a"), "9").unwrap();
        assert!(write(&t.vol, &p, None).unwrap());
        t.holds(&p);
    }

    #[test]
    fn fs_group_sets_group_and_read_masks() {
        let t = planted();
        let p = payload();
        assert!(write(&t.vol, &p, Some(4242)).unwrap());
        t.holds(&p);
        let cur = t.current();
        let file_b = std::fs::metadata(cur.join("sub/b")).unwrap();
        assert_eq!(file_b.gid(), 4242);
        assert_eq!(file_b.mode() & 0o7777, 0o440, "0400 | 0440");
        let file_a = std::fs::metadata(cur.join("a")).unwrap();
        assert_eq!((file_a.gid(), file_a.mode() & 0o7777), (4242, 0o644));
        for dir in [cur.clone(), cur.join("sub"), t.vol.clone()] {
            let meta = std::fs::metadata(&dir).unwrap();
            assert_eq!(meta.gid(), 4242, "{dir:?}");
            assert_eq!(
                meta.mode() & 0o2550,
                0o2550,
                "{dir:?}: setgid and r-x for the group"
            );
        }
        assert_eq!(std::fs::metadata(&cur).unwrap().mode() & 0o7777, 0o2755);
        let link = std::fs::symlink_metadata(t.vol.join("a")).unwrap();
        assert_eq!(link.gid(), 4242);
        assert!(!write(&t.vol, &p, Some(4242)).unwrap(), "stable");
        t.canary_intact();
    }
}
