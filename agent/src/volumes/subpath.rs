//! subPath: a path inside a volume bound into a container, as kubelet's safe subpath. The
//! volume is untrusted (a container may have filled it with symlinks), so the subPath is
//! walked from an fd of the volume directory one component at a time with
//! `openat(O_PATH|O_NOFOLLOW)`: a missing directory is made with mkdirat below its parent's fd,
//! a symlink is resolved here, in user space, relative to the volume (an absolute target, or a
//! `..` above the volume, is refused; at most 40 links), and the fd finally reached is
//! bind-mounted through `/proc/self/fd/N` at
//! `ROOT/pods/UID/volume-subpaths/VOLUME/CONTAINER/INDEX`. Nothing inside the volume is ever
//! looked up by path, so a link swapped in between two steps cannot redirect the mount.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::FileType;

use super::dirfd::{self, DirError, DirFd};
use super::mounts;

/// Symlinks followed at most while resolving one subPath (the kernel's MAXSYMLINKS).
pub const MAX_LINKS: usize = 40;

/// Why a subPath cannot be used; kubelet reports it as CreateContainerConfigError.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubPathError {
    #[error("subpath {sub:?} not within volume path {volume:?}")]
    Escapes { sub: String, volume: String },
    #[error("unable to provision SubPath `{0}`: must not contain '..' or be absolute")]
    Backsteps(String),
    #[error("subpath {sub:?}: too many levels of symbolic links (more than {MAX_LINKS})")]
    TooManyLinks { sub: String },
    #[error("subpath {sub:?}: deeper than {MAX_DEPTH} directories or {MAX_NAMES} names")]
    TooDeep { sub: String },
    #[error("subpath {path:?}: {message}")]
    Io { path: String, message: String },
}

/// The deepest a subPath may go, and the most names a walk may take (links spliced in
/// included): enough for any real layout, and a pod cannot make the agent hold thousands of
/// descriptors or create thousands of directories.
pub const MAX_DEPTH: usize = 64;
pub const MAX_NAMES: usize = 1024;

fn io_error(path: &Path, e: &std::io::Error) -> SubPathError {
    SubPathError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn fs_error(sub: &str, e: &DirError) -> SubPathError {
    SubPathError::Io {
        path: sub.to_string(),
        message: e.to_string(),
    }
}

/// The subPath's names; `..` and absolute paths are refused outright (kubelet's validation).
fn split(sub: &str) -> Result<VecDeque<OsString>, SubPathError> {
    let mut out = VecDeque::new();
    for comp in Path::new(sub).components() {
        match comp {
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::CurDir => {}
            _ => return Err(SubPathError::Backsteps(sub.to_string())),
        }
    }
    Ok(out)
}

/// One walk of a subPath below a volume.
struct Walk<'a> {
    sub: &'a str,
    volume: &'a Path,
    /// Directory fds from the volume (first) to where the walk is; `..` pops one, so it can
    /// never climb above the volume, whatever was renamed meanwhile.
    stack: Vec<DirFd>,
    /// Names still to walk: the subPath's, with symlink targets spliced in front.
    pending: VecDeque<OsString>,
    links: usize,
    /// The mode of the volume directory, which kubelet gives the directories it makes.
    dir_mode: u32,
}

impl Walk<'_> {
    fn escapes(&self) -> SubPathError {
        SubPathError::Escapes {
            sub: self.sub.to_string(),
            volume: self.volume.display().to_string(),
        }
    }

    fn fs(&self, e: &DirError) -> SubPathError {
        fs_error(self.sub, e)
    }

    fn parent(&self) -> Result<&DirFd, SubPathError> {
        self.stack.last().ok_or_else(|| self.escapes())
    }

    /// Makes the missing directory `name` below the current one and opens it no-follow; if
    /// something else (a link) took its place meanwhile, the open fails and so does the walk.
    fn make_dir(&self, name: &OsStr) -> Result<DirFd, SubPathError> {
        let parent = self.parent()?;
        parent.mkdir(name, self.dir_mode).map_err(|e| self.fs(&e))?;
        let dir = parent.open_dir(name).map_err(|e| self.fs(&e))?;
        // mkdirat's mode was cut by the umask.
        dirfd::set_mode(&dir, self.dir_mode).map_err(|e| self.fs(&e))?;
        Ok(dir)
    }

    /// Splices the target of the symlink `link` in front of the names still to walk.
    fn follow(&mut self, link: &OwnedFd) -> Result<(), SubPathError> {
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(SubPathError::TooManyLinks {
                sub: self.sub.to_string(),
            });
        }
        let target = dirfd::readlink_fd(link).map_err(|e| self.fs(&e))?;
        let bytes = target.as_bytes();
        if bytes.starts_with(b"/") {
            return Err(self.escapes());
        }
        for part in bytes.rsplit(|b| *b == b'/').filter(|p| !p.is_empty()) {
            self.pending
                .push_front(OsStr::from_bytes(part).to_os_string());
        }
        Ok(())
    }

    /// Walks every name; returns the fd of what the subPath names.
    fn run(mut self) -> Result<OwnedFd, SubPathError> {
        let mut last: Option<OwnedFd> = None;
        let mut walked = 0usize;
        while let Some(name) = self.pending.pop_front() {
            walked += 1;
            if walked > MAX_NAMES || self.stack.len() > MAX_DEPTH {
                return Err(SubPathError::TooDeep {
                    sub: self.sub.to_string(),
                });
            }
            if last.is_some() {
                // A file followed by more names: the kernel's ENOTDIR.
                return Err(SubPathError::Io {
                    path: self.sub.to_string(),
                    message: "not a directory".to_string(),
                });
            }
            match name.as_bytes() {
                b"." => continue,
                b".." => {
                    if self.stack.len() <= 1 {
                        return Err(self.escapes());
                    }
                    self.stack.pop();
                    continue;
                }
                _ => {}
            }
            let fd = match self.parent()?.open_path(&name) {
                Ok(fd) => fd,
                Err(e) if e.is_not_found() => {
                    let dir = self.make_dir(&name)?;
                    self.stack.push(dir);
                    continue;
                }
                Err(e) => return Err(self.fs(&e)),
            };
            let st = dirfd::stat_fd(&fd).map_err(|e| self.fs(&e))?;
            match dirfd::file_type(&st) {
                FileType::Directory => {
                    let dir = DirFd::from_fd(fd).map_err(|e| self.fs(&e))?;
                    self.stack.push(dir);
                }
                FileType::Symlink => self.follow(&fd)?,
                _ => last = Some(fd),
            }
        }
        match last {
            Some(fd) => Ok(fd),
            None => self
                .stack
                .pop()
                .map(DirFd::into_fd)
                .ok_or_else(|| self.escapes()),
        }
    }
}

/// Resolves `sub` inside `volume` and returns an `O_PATH` fd of it (or an fd of the directory
/// itself); missing directories are made with the volume directory's mode. Fails when any
/// component, symlinks included, leads outside the volume.
pub fn resolve(volume: &Path, sub: &str) -> Result<OwnedFd, SubPathError> {
    let pending = split(sub)?;
    // The volume's own path is the agent's (or, for hostPath, the administrator's): it may be
    // a symlink itself, as kubelet evaluates it before the walk.
    let root = DirFd::open_following(volume).map_err(|e| io_error(volume, &e.into()))?;
    let st = root.stat().map_err(|e| io_error(volume, &e.into()))?;
    Walk {
        sub,
        volume,
        stack: vec![root],
        pending,
        links: 0,
        dir_mode: dirfd::mode_bits(&st) & 0o777,
    }
    .run()
}

/// Makes `target` a directory (or an empty file) to mount on, unmounting an earlier bind.
fn prepare_target(target: &Path, is_dir: bool) -> Result<(), SubPathError> {
    if mounts::is_mount_point(target) {
        mounts::unmount(target).map_err(|e| io_error(target, &e))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(target)
        && m.is_dir() != is_dir
    {
        let _ = std::fs::remove_dir(target).or_else(|_| std::fs::remove_file(target));
    }
    if let Some(parent) = target.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(|e| io_error(parent, &e))?;
    }
    if is_dir {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(target)
            .map_err(|e| io_error(target, &e))?;
    } else if std::fs::symlink_metadata(target).is_err() {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(target)
            .map_err(|e| io_error(target, &e))?;
    }
    Ok(())
}

/// Resolves `sub` in `volume` and bind-mounts it at `target`; returns `target`.
pub fn bind(volume: &Path, sub: &str, target: &Path) -> Result<PathBuf, SubPathError> {
    let fd = resolve(volume, sub)?;
    let st = dirfd::stat_fd(&fd).map_err(|e| fs_error(sub, &e))?;
    let is_dir = dirfd::file_type(&st) == FileType::Directory;
    prepare_target(target, is_dir)?;
    // The magic link names the inode the walk reached, not a path that could change.
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    mounts::bind(&fd_path, target).map_err(|e| io_error(target, &e))?;
    drop(fd);
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// Where an fd points, as the kernel says.
    fn path_of(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap()
    }

    struct Vol {
        tmp: tempfile::TempDir,
        path: PathBuf,
        base: PathBuf,
        canary: PathBuf,
    }

    fn vol() -> Vol {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        let canary = tmp.path().join("canary");
        std::fs::create_dir_all(vol.join("a")).unwrap();
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(vol.join("a/f"), "x").unwrap();
        std::fs::write(canary.join("keep"), "x").unwrap();
        let base = std::fs::canonicalize(&vol).unwrap();
        Vol {
            tmp,
            path: vol,
            base,
            canary,
        }
    }

    fn escapes(r: &Result<OwnedFd, SubPathError>) -> bool {
        matches!(r, Err(SubPathError::Escapes { .. }))
    }

    #[test]
    fn a_subpath_too_deep_or_too_long_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let deep = vec!["a"; MAX_DEPTH + 5].join("/");
        assert!(matches!(
            resolve(&vol, &deep),
            Err(SubPathError::TooDeep { .. })
        ));
        // One link whose target walks down and up 600 times: shallow, but too many names.
        std::fs::create_dir(vol.join("d")).unwrap();
        std::os::unix::fs::symlink("d/../".repeat(600) + "d", vol.join("l")).unwrap();
        assert!(matches!(
            resolve(&vol, "l"),
            Err(SubPathError::TooDeep { .. })
        ));
        assert!(resolve(&vol, &vec!["b"; MAX_DEPTH - 1].join("/")).is_ok());
    }

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let v = vol();
        symlink("a", v.path.join("inside")).unwrap();
        symlink("/etc", v.path.join("outside")).unwrap();
        symlink("../..", v.path.join("a/up")).unwrap();

        assert_eq!(
            path_of(&resolve(&v.path, "a/f").unwrap()),
            v.base.join("a/f")
        );
        assert_eq!(
            path_of(&resolve(&v.path, "./a//f").unwrap()),
            v.base.join("a/f")
        );
        assert_eq!(
            path_of(&resolve(&v.path, "inside/f").unwrap()),
            v.base.join("a/f")
        );
        assert_eq!(path_of(&resolve(&v.path, ".").unwrap()), v.base);
        assert_eq!(
            path_of(&resolve(&v.path, "new/dir").unwrap()),
            v.base.join("new/dir")
        );
        assert!(v.base.join("new/dir").is_dir());
        assert!(escapes(&resolve(&v.path, "outside")));
        assert!(escapes(&resolve(&v.path, "outside/passwd")));
        assert!(escapes(&resolve(&v.path, "a/up/x")));
        assert!(matches!(
            resolve(&v.path, "../x"),
            Err(SubPathError::Backsteps(_))
        ));
        assert!(matches!(
            resolve(&v.path, "/etc"),
            Err(SubPathError::Backsteps(_))
        ));
        assert!(!v.tmp.path().join("x").exists());
    }

    #[test]
    fn absolute_and_parent_links_escape_even_to_the_volume_itself() {
        let v = vol();
        // An absolute link is refused even when it names a place inside the volume: the
        // container sees the volume elsewhere, so the agent must not interpret it.
        symlink(v.base.join("a"), v.path.join("abs_inside")).unwrap();
        symlink(&v.canary, v.path.join("abs")).unwrap();
        symlink("../canary", v.path.join("up")).unwrap();
        symlink("a/../../canary", v.path.join("up2")).unwrap();
        for sub in ["abs_inside", "abs", "abs/new", "up", "up/new", "up2/new"] {
            assert!(escapes(&resolve(&v.path, sub)), "{sub}");
        }
        assert!(!v.canary.join("new").exists(), "nothing made outside");
    }

    #[test]
    fn parent_steps_inside_the_volume_are_fine() {
        let v = vol();
        std::fs::create_dir(v.path.join("b")).unwrap();
        symlink("../b", v.path.join("a/sib")).unwrap();
        symlink("..", v.path.join("a/top")).unwrap();
        symlink("../a/f", v.path.join("b/file")).unwrap();
        assert_eq!(
            path_of(&resolve(&v.path, "a/sib").unwrap()),
            v.base.join("b")
        );
        assert_eq!(
            path_of(&resolve(&v.path, "a/top/a/f").unwrap()),
            v.base.join("a/f")
        );
        assert_eq!(path_of(&resolve(&v.path, "a/top").unwrap()), v.base);
        assert_eq!(
            path_of(&resolve(&v.path, "b/file").unwrap()),
            v.base.join("a/f")
        );
    }

    #[test]
    fn link_chains_are_followed_and_loops_stop() {
        let v = vol();
        symlink("l2", v.path.join("l1")).unwrap();
        symlink("l3/", v.path.join("l2")).unwrap();
        symlink("a", v.path.join("l3")).unwrap();
        assert_eq!(
            path_of(&resolve(&v.path, "l1/f").unwrap()),
            v.base.join("a/f")
        );
        symlink("x1", v.path.join("x2")).unwrap();
        symlink("x2", v.path.join("x1")).unwrap();
        symlink("self", v.path.join("self")).unwrap();
        for sub in ["x1", "x2/y", "self"] {
            assert!(
                matches!(
                    resolve(&v.path, sub),
                    Err(SubPathError::TooManyLinks { .. })
                ),
                "{sub}"
            );
        }
        // A chain of exactly 40 links resolves, 41 do not.
        for i in 0..41 {
            symlink(format!("c{}", i + 1), v.path.join(format!("c{i}"))).unwrap();
        }
        std::fs::create_dir(v.path.join("c41")).unwrap();
        assert!(resolve(&v.path, "c1").is_ok());
        assert!(matches!(
            resolve(&v.path, "c0"),
            Err(SubPathError::TooManyLinks { .. })
        ));
        // A chain that ends outside escapes.
        symlink("/", v.path.join("c41/out")).unwrap();
        assert!(escapes(&resolve(&v.path, "c2/out")));
    }

    #[test]
    fn missing_directories_are_made_only_inside() {
        let v = vol();
        std::fs::set_permissions(&v.path, std::fs::Permissions::from_mode(0o770)).unwrap();
        symlink("../canary/made", v.path.join("dangling_out")).unwrap();
        symlink("made_in", v.path.join("dangling_in")).unwrap();
        assert!(escapes(&resolve(&v.path, "dangling_out")));
        assert!(escapes(&resolve(&v.path, "dangling_out/deeper")));
        assert!(!v.canary.join("made").exists());
        assert_eq!(
            path_of(&resolve(&v.path, "dangling_in/x").unwrap()),
            v.base.join("made_in/x")
        );
        let mode = std::fs::metadata(v.base.join("made_in/x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o770, "the volume directory's mode");
        // A file in the middle of the path.
        assert!(matches!(
            resolve(&v.path, "a/f/g"),
            Err(SubPathError::Io { .. })
        ));
        assert!(!v.base.join("a/f/g").exists());
        let mut outside: Vec<_> = std::fs::read_dir(v.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        outside.sort();
        assert_eq!(outside, ["canary", "vol"]);
        assert_eq!(std::fs::read_dir(&v.canary).unwrap().count(), 1);
    }

    #[test]
    fn binds_what_was_resolved() {
        let v = vol();
        let target = v.tmp.path().join("pod/volume-subpaths/v/c/0");
        match bind(&v.path, "a", &target) {
            Ok(_) => {}
            // Not root (mounts need CAP_SYS_ADMIN): the resolution tests cover the rest.
            Err(SubPathError::Io { message, .. }) if message.contains("ermission") => return,
            Err(e) => panic!("{e}"),
        }
        assert_eq!(std::fs::read_to_string(target.join("f")).unwrap(), "x");
        mounts::unmount(&target).unwrap();
        let file_target = v.tmp.path().join("pod/volume-subpaths/v/c/1");
        bind(&v.path, "a/f", &file_target).unwrap();
        assert_eq!(std::fs::read_to_string(&file_target).unwrap(), "x");
        mounts::unmount(&file_target).unwrap();
        symlink(&v.canary, v.path.join("evil")).unwrap();
        let evil_target = v.tmp.path().join("pod/volume-subpaths/v/c/2");
        assert!(matches!(
            bind(&v.path, "evil", &evil_target),
            Err(SubPathError::Escapes { .. })
        ));
        assert!(!mounts::is_mount_point(&evil_target));
    }
}
