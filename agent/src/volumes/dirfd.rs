//! File system operations relative to an open directory, for trees a container can write to.
//! The agent runs as root and a pod's volume is untrusted: any path it follows through a volume
//! could have been replaced by a symlink to the host. So every operation here takes a directory
//! fd and one path component (no `/`, not `.` or `..`, not empty), and never follows a symlink
//! in that component: directories are opened `O_DIRECTORY|O_NOFOLLOW`, files are created
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, stats are `AT_SYMLINK_NOFOLLOW`, and the recursive removal
//! unlinks a symlink rather than descend into its target. Only safe rustix calls are used.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, RenameFlags, Stat, StatxAttributes, StatxFlags,
};
use rustix::io::Errno;

/// How deep [`DirFd::remove_tree`] holds directory fds before it moves a deeper directory up
/// (a container can nest directories deeper than the agent has fds), and how deep
/// [`DirFd::walk`] goes at all.
pub const MAX_DEPTH: usize = 128;

/// Why an fd-relative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A name that is not exactly one path component.
    #[error("invalid name {0:?}: must be a single path component")]
    InvalidName(OsString),
    /// A removal reached a directory something is mounted on: it stops there rather than
    /// delete what the mount shows (a volume's real data).
    #[error("{0:?} is a mount point: not removing through it")]
    MountPoint(OsString),
    #[error("{op} {name:?}: {errno}")]
    Os {
        op: &'static str,
        name: OsString,
        #[source]
        errno: Errno,
    },
}

impl DirError {
    fn os(op: &'static str, name: impl AsRef<OsStr>, errno: Errno) -> DirError {
        DirError::Os {
            op,
            name: name.as_ref().to_os_string(),
            errno,
        }
    }

    /// The system error, when there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            DirError::Os { errno, .. } => Some(*errno),
            DirError::InvalidName(_) | DirError::MountPoint(_) => None,
        }
    }

    /// True for ENOENT.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(Errno::NOENT)
    }
}

impl From<DirError> for io::Error {
    fn from(e: DirError) -> io::Error {
        let kind = match e.errno() {
            Some(errno) => io::Error::from(errno).kind(),
            None => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

pub type Result<T> = std::result::Result<T, DirError>;

/// Checks that `name` is one path component: not empty, not `.` or `..`, no `/` or NUL.
pub fn check_name(name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(DirError::InvalidName(name.to_os_string()));
    }
    Ok(())
}

/// The type of an entry from its stat.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// The permission bits (with setuid, setgid, sticky) of a stat.
pub fn mode_bits(st: &Stat) -> u32 {
    st.st_mode & 0o7777
}

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

/// `fchmod`: sets exactly `bits` (& 0o7777) on an fd opened for reading or writing.
pub fn set_mode(fd: impl AsFd, bits: u32) -> Result<()> {
    rustix::fs::fchmod(fd, mode(bits)).map_err(|e| DirError::os("fchmod", "", e))
}

/// `fchown`: sets the group (the owner stays) of an fd opened for reading or writing.
pub fn set_group(fd: impl AsFd, gid: u32) -> Result<()> {
    rustix::fs::fchown(fd, None, Some(Gid::from_raw(gid)))
        .map_err(|e| DirError::os("fchown", "", e))
}

/// `fstat`.
pub fn stat_fd(fd: impl AsFd) -> Result<Stat> {
    rustix::fs::fstat(fd).map_err(|e| DirError::os("fstat", "", e))
}

/// The target of a symlink opened with `O_PATH|O_NOFOLLOW` (readlinkat with an empty path
/// reads the link the fd itself is, so nothing is looked up by name again).
pub fn readlink_fd(fd: impl AsFd) -> Result<OsString> {
    rustix::fs::readlinkat(fd, c"", Vec::new())
        .map(|c| OsStr::from_bytes(c.as_bytes()).to_os_string())
        .map_err(|e| DirError::os("readlink", "", e))
}

/// chmod of the inode an `O_PATH` fd refers to. fchmod refuses O_PATH fds, so this goes
/// through `/proc/self/fd/N`, which names that very inode (a magic link the kernel resolves
/// to the open file, not a path a container could swap).
pub fn set_mode_path_fd(fd: impl AsFd, bits: u32) -> Result<()> {
    let proc = format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd());
    rustix::fs::chmod(proc.as_str(), mode(bits)).map_err(|e| DirError::os("chmod", proc, e))
}

/// chown (group only) of the inode an `O_PATH` fd refers to (`AT_EMPTY_PATH`).
pub fn set_group_path_fd(fd: impl AsFd, gid: u32) -> Result<()> {
    rustix::fs::chownat(fd, c"", None, Some(Gid::from_raw(gid)), AtFlags::EMPTY_PATH)
        .map_err(|e| DirError::os("fchownat", "", e))
}

/// An open directory; every name given to its methods is one component below it.
#[derive(Debug)]
pub struct DirFd {
    fd: OwnedFd,
}

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl DirFd {
    /// Opens the directory at `path` (`O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC`): its last component
    /// must not be a symlink. The components above are the agent's own (its root dir).
    pub fn open(path: &Path) -> Result<DirFd> {
        rustix::fs::open(path, DIR_FLAGS, Mode::empty())
            .map(|fd| DirFd { fd })
            .map_err(|e| DirError::os("open", path, e))
    }

    /// Opens a directory whose path may itself be a symlink: only for paths the node's
    /// administrator chose (a hostPath), never for anything below a volume.
    pub fn open_following(path: &Path) -> Result<DirFd> {
        rustix::fs::open(path, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
            .map(|fd| DirFd { fd })
            .map_err(|e| DirError::os("open", path, e))
    }

    /// Wraps an fd already known to be a directory (`O_PATH` fds work as the base of *at
    /// calls, not for listing or fchmod).
    pub fn from_fd(fd: OwnedFd) -> Result<DirFd> {
        let st = stat_fd(&fd)?;
        if file_type(&st) != FileType::Directory {
            return Err(DirError::os("open", "", Errno::NOTDIR));
        }
        Ok(DirFd { fd })
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// A second fd for the same directory.
    pub fn try_clone(&self) -> Result<DirFd> {
        self.fd
            .try_clone()
            .map(|fd| DirFd { fd })
            .map_err(|e| DirError::os("dup", "", Errno::from_io_error(&e).unwrap_or(Errno::IO)))
    }

    /// `fstat` of this directory.
    pub fn stat(&self) -> Result<Stat> {
        stat_fd(self)
    }

    /// Opens the child directory `name` without following a symlink there.
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<DirFd> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::openat(self, name, DIR_FLAGS, Mode::empty())
            .map(|fd| DirFd { fd })
            .map_err(|e| DirError::os("openat", name, e))
    }

    /// Opens `name` with `O_PATH|O_NOFOLLOW`: a handle on whatever is there (a symlink
    /// itself when it is one), usable for fstat, readlink and as the base of *at calls.
    pub fn open_path(&self, name: impl AsRef<OsStr>) -> Result<OwnedFd> {
        let name = name.as_ref();
        check_name(name)?;
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(self, name, flags, Mode::empty())
            .map_err(|e| DirError::os("openat", name, e))
    }

    /// `mkdirat` (the mode is then cut by the umask; callers that need it exact set it).
    pub fn mkdir(&self, name: impl AsRef<OsStr>, bits: u32) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::mkdirat(self, name, mode(bits)).map_err(|e| DirError::os("mkdirat", name, e))
    }

    /// Makes the child directory `name` unless it exists, opens it no-follow and gives it
    /// exactly `bits` (also when it was found with another mode).
    pub fn ensure_dir(&self, name: impl AsRef<OsStr>, bits: u32) -> Result<DirFd> {
        let name = name.as_ref();
        match self.mkdir(name, bits) {
            Err(e) if e.errno() == Some(Errno::EXIST) => {}
            other => other?,
        }
        let dir = self.open_dir(name)?;
        if mode_bits(&dir.stat()?) != bits & 0o7777 {
            set_mode(&dir, bits)?;
        }
        Ok(dir)
    }

    /// Creates the file `name` (`O_CREAT|O_EXCL|O_NOFOLLOW`: fails when anything, a symlink
    /// included, is already there), writes `data` and returns it still open.
    pub fn create_file(&self, name: impl AsRef<OsStr>, bits: u32, data: &[u8]) -> Result<OwnedFd> {
        let name = name.as_ref();
        check_name(name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(self, name, flags, mode(bits))
            .map_err(|e| DirError::os("openat", name, e))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(data).map_err(|e| {
            DirError::os("write", name, Errno::from_io_error(&e).unwrap_or(Errno::IO))
        })?;
        Ok(OwnedFd::from(file))
    }

    /// Opens the regular file `name` for reading; fails unless it is one. It is first opened
    /// `O_PATH|O_NOFOLLOW` and checked by fstat, then reopened through `/proc/self/fd/N`
    /// (that very inode), so a FIFO or a device node swapped in is never opened for reading.
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<std::fs::File> {
        let name = name.as_ref();
        let handle = self.open_path(name)?;
        if file_type(&stat_fd(&handle)?) != FileType::RegularFile {
            return Err(DirError::os("open", name, Errno::INVAL));
        }
        let proc = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        rustix::fs::open(proc.as_str(), flags, Mode::empty())
            .map(std::fs::File::from)
            .map_err(|e| DirError::os("open", name, e))
    }

    /// `symlinkat(target, self, name)`; the target is stored as given, never resolved here.
    pub fn symlink(&self, target: impl AsRef<OsStr>, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::symlinkat(target.as_ref(), self, name)
            .map_err(|e| DirError::os("symlinkat", name, e))
    }

    /// `renameat` within this directory (replacing `to` when it is not a directory).
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(self, from, self, to).map_err(|e| DirError::os("renameat", from, e))
    }

    /// Moves `from` below this directory to `to` below `dest`, failing if `to` exists.
    pub fn rename_to(
        &self,
        from: impl AsRef<OsStr>,
        dest: &DirFd,
        to: impl AsRef<OsStr>,
    ) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat_with(self, from, dest, to, RenameFlags::NOREPLACE)
            .map_err(|e| DirError::os("renameat", from, e))
    }

    /// `readlinkat`: the target of the symlink `name` (EINVAL when it is not one).
    pub fn readlink(&self, name: impl AsRef<OsStr>) -> Result<OsString> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::readlinkat(self, name, Vec::new())
            .map(|c| OsStr::from_bytes(c.as_bytes()).to_os_string())
            .map_err(|e| DirError::os("readlinkat", name, e))
    }

    /// `fstatat(AT_SYMLINK_NOFOLLOW)`: a symlink is described, not its target.
    pub fn lstat(&self, name: impl AsRef<OsStr>) -> Result<Stat> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::statat(self, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| DirError::os("fstatat", name, e))
    }

    /// Sets the group of `name` itself, a symlink included (`AT_SYMLINK_NOFOLLOW`).
    pub fn lchown_group(&self, name: impl AsRef<OsStr>, gid: u32) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        let gid = Some(Gid::from_raw(gid));
        rustix::fs::chownat(self, name, None, gid, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| DirError::os("fchownat", name, e))
    }

    /// `unlinkat` of a non-directory (a symlink is removed, never its target).
    pub fn unlink(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::unlinkat(self, name, AtFlags::empty())
            .map_err(|e| DirError::os("unlinkat", name, e))
    }

    /// `unlinkat(AT_REMOVEDIR)` of an empty directory.
    pub fn rmdir(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::unlinkat(self, name, AtFlags::REMOVEDIR)
            .map_err(|e| DirError::os("unlinkat", name, e))
    }

    /// The names in this directory (without `.` and `..`). The fd must not be `O_PATH`.
    pub fn entries(&self) -> Result<Vec<OsString>> {
        let mut dir =
            rustix::fs::Dir::read_from(self).map_err(|e| DirError::os("opendir", "", e))?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| DirError::os("readdir", "", e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(out)
    }

    /// Removes `name` below this directory and, when it is a directory, everything in it. A
    /// symlink anywhere in the tree is unlinked, never followed; every step is relative to a
    /// directory fd opened no-follow, so a rename or a symlink swapped in meanwhile cannot
    /// make it remove anything outside `name`. A missing `name` is ENOENT.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        match self.unlink(name) {
            // Linux says EISDIR for a directory; anything else is done or a real failure.
            Err(e) if e.errno() == Some(Errno::ISDIR) => {}
            other => return other,
        }
        let top = self.open_dir(name)?;
        refuse_mount(self, &top, name)?;
        remove_contents(top)?;
        self.rmdir(name)
    }

    /// Calls `visit(dir, name, stat)` for every entry below this directory (not following
    /// symlinks), parents before their children, down to [`MAX_DEPTH`] levels; directories
    /// deeper than that are visited but not entered (counted in [`WalkSummary::too_deep`]).
    pub fn walk(&self, visit: &mut dyn FnMut(&DirFd, &OsStr, &Stat)) -> Result<WalkSummary> {
        let mut summary = WalkSummary::default();
        let mut stack = vec![Frame::new(self.try_clone()?)?];
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.pending.pop() else {
                stack.pop();
                continue;
            };
            let Ok(st) = top.dir.lstat(&name) else {
                // Gone meanwhile (a container removed it): nothing to visit.
                continue;
            };
            visit(&top.dir, &name, &st);
            summary.visited += 1;
            if file_type(&st) != FileType::Directory {
                continue;
            }
            if stack.len() >= MAX_DEPTH {
                summary.too_deep += 1;
                continue;
            }
            let parent = stack.len() - 1;
            if let Ok(child) = stack[parent].dir.open_dir(&name) {
                stack.push(Frame::new(child)?);
            }
        }
        Ok(summary)
    }
}

/// What [`DirFd::walk`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalkSummary {
    pub visited: usize,
    /// Directories whose contents were not visited: deeper than [`MAX_DEPTH`].
    pub too_deep: usize,
}

/// One directory of an iterative walk: its fd and the names still to handle.
struct Frame {
    dir: DirFd,
    pending: Vec<OsString>,
    /// The name this directory has in its parent frame (for rmdir after it is emptied).
    name: OsString,
}

impl Frame {
    fn new(dir: DirFd) -> Result<Frame> {
        Ok(Frame {
            pending: dir.entries()?,
            dir,
            name: OsString::new(),
        })
    }
}

/// Fails when `child` (opened from `parent` as `name`) is on another mount than its parent:
/// the kernel's mount id where statx has it, the device otherwise.
fn refuse_mount(parent: &DirFd, child: &DirFd, name: &OsStr) -> Result<()> {
    let ids = |d: &DirFd| {
        rustix::fs::statx(d, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
            .map_err(|e| DirError::os("statx", name, e))
    };
    let (p, c) = (ids(parent)?, ids(child)?);
    let by_id = p.stx_mask & c.stx_mask & StatxFlags::MNT_ID.bits() != 0;
    let crosses = if by_id {
        p.stx_mnt_id != c.stx_mnt_id
    } else {
        (p.stx_dev_major, p.stx_dev_minor) != (c.stx_dev_major, c.stx_dev_minor)
    };
    let root = c.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
        && c.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    if crosses || root {
        return Err(DirError::MountPoint(name.to_os_string()));
    }
    Ok(())
}

/// Empties the directory `top`. Iterative with the stack on the heap, so a deep tree planted
/// by a container cannot overflow the agent's thread stack; at most [`MAX_DEPTH`] fds are held:
/// a directory deeper than that is first moved up into `top` under a fresh name and emptied
/// from there.
fn remove_contents(top: DirFd) -> Result<()> {
    let mut moved = 0u64;
    let mut stack = vec![Frame::new(top)?];
    loop {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else { break };
        let Some(name) = frame.pending.pop() else {
            let Some(done) = stack.pop() else { break };
            if let Some(parent) = stack.last() {
                remove_ignoring_missing(parent.dir.rmdir(&done.name))?;
            }
            continue;
        };
        match frame.dir.unlink(&name) {
            Err(e) if e.errno() == Some(Errno::ISDIR) => {}
            other => {
                remove_ignoring_missing(other)?;
                continue;
            }
        }
        if depth >= MAX_DEPTH {
            move_up(&mut stack, &name, &mut moved)?;
            continue;
        }
        let child = frame.dir.open_dir(&name)?;
        refuse_mount(&frame.dir, &child, &name)?;
        let mut next = Frame::new(child)?;
        next.name = name;
        stack.push(next);
    }
    Ok(())
}

/// Moves the directory `name` of the deepest frame into the first frame under a fresh name
/// (retrying when a container already used that name), to be emptied from there.
fn move_up(stack: &mut [Frame], name: &OsStr, moved: &mut u64) -> Result<()> {
    let (first, rest) = stack.split_at_mut(1);
    let (Some(top), Some(here)) = (first.first_mut(), rest.last()) else {
        return Ok(());
    };
    loop {
        let to = OsString::from(format!("..removing.{moved}"));
        *moved += 1;
        match here.dir.rename_to(name, &top.dir, &to) {
            Ok(()) => {
                top.pending.push(to);
                return Ok(());
            }
            // The name is taken: try the next one.
            Err(e) if e.errno() == Some(Errno::EXIST) && *moved < 1 << 20 => {}
            Err(e) => return Err(e),
        }
    }
}

/// A removal that found nothing is done (a container may remove entries concurrently).
fn remove_ignoring_missing(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_must_be_one_component() {
        for bad in ["", ".", "..", "a/b", "/a", "a/", "a\0b"] {
            assert!(check_name(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        for good in ["a", "..data", "...", ".x", "a b"] {
            assert!(check_name(OsStr::new(good)).is_ok(), "{good:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let dir = DirFd::open(d.path()).unwrap();
        assert!(matches!(
            dir.mkdir("a/b", 0o755),
            Err(DirError::InvalidName(_))
        ));
        assert!(matches!(dir.open_dir(".."), Err(DirError::InvalidName(_))));
        assert!(matches!(dir.remove_tree(""), Err(DirError::InvalidName(_))));
    }

    #[test]
    fn symlinks_are_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let canary = d.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("keep"), "x").unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::os::unix::fs::symlink(&canary, vol.join("link")).unwrap();
        let dir = DirFd::open(&vol).unwrap();
        assert!(dir.open_dir("link").is_err());
        assert!(dir.create_file("link", 0o644, b"y").is_err());
        assert_eq!(file_type(&dir.lstat("link").unwrap()), FileType::Symlink);
        assert_eq!(dir.readlink("link").unwrap(), canary.as_os_str());
        assert!(DirFd::open(&vol.join("link")).is_err());
        assert!(DirFd::open_following(&vol.join("link")).is_ok());
        dir.remove_tree("link").unwrap();
        assert!(canary.join("keep").exists());
        assert!(std::fs::symlink_metadata(vol.join("link")).is_err());
    }

    #[test]
    fn remove_tree_stops_at_a_mount_and_leaves_what_it_shows() {
        let d = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("precious"), "x").unwrap();
        let target = d.path().join("pod/volume-subpaths/v");
        std::fs::create_dir_all(&target).unwrap();
        if crate::volumes::mounts::bind(data.path(), &target).is_err() {
            return; // not root: nothing can be mounted here
        }
        let dir = DirFd::open(d.path()).unwrap();
        let result = dir.remove_tree("pod");
        crate::volumes::mounts::unmount(&target).unwrap();
        assert!(matches!(result, Err(DirError::MountPoint(_))), "{result:?}");
        assert!(
            data.path().join("precious").exists(),
            "the mounted data survives"
        );
        dir.remove_tree("pod").unwrap();
    }

    #[test]
    fn remove_tree_unlinks_links_inside_and_survives_depth() {
        let d = tempfile::tempdir().unwrap();
        let canary = d.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("keep"), "x").unwrap();
        let vol = d.path().join("vol");
        let mut deep = vol.join("t");
        for i in 0..(MAX_DEPTH * 2 + 3) {
            deep.push(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&canary, deep.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", vol.join("t/d0/up")).unwrap();
        let dir = DirFd::open(&vol).unwrap();
        dir.remove_tree("t").unwrap();
        assert!(!vol.join("t").exists());
        assert!(canary.join("keep").exists());
        assert!(dir.remove_tree("t").unwrap_err().is_not_found());
    }

    #[test]
    fn files_and_dirs_get_exact_modes() {
        let d = tempfile::tempdir().unwrap();
        let dir = DirFd::open(d.path()).unwrap();
        let f = dir.create_file("f", 0o600, b"data").unwrap();
        set_mode(&f, 0o440).unwrap();
        let meta = std::fs::metadata(d.path().join("f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o440);
        assert_eq!(std::fs::read(d.path().join("f")).unwrap(), b"data");
        assert!(dir.create_file("f", 0o600, b"again").is_err(), "O_EXCL");
        let mut read = String::new();
        std::io::Read::read_to_string(&mut dir.open_file("f").unwrap(), &mut read).unwrap();
        assert_eq!(read, "data");
        std::os::unix::fs::symlink(d.path().join("f"), d.path().join("lf")).unwrap();
        assert!(dir.open_file("lf").is_err(), "a link is not a regular file");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::set_permissions(d.path().join("sub"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let sub = dir.ensure_dir("sub", 0o750).unwrap();
        assert_eq!(mode_bits(&sub.stat().unwrap()), 0o750);
        dir.ensure_dir("new", 0o750).unwrap();
        let meta = std::fs::metadata(d.path().join("new")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
        let mut names = dir.entries().unwrap();
        names.sort();
        assert_eq!(names, ["f", "lf", "new", "sub"]);
    }
}
