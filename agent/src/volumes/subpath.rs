//! subPath: a path inside a volume bound into a container. It is resolved component by
//! component (missing directories are made, symlinks are followed only when they stay inside
//! the volume), then the resolved path is opened and bind-mounted through its file descriptor
//! at `ROOT/pods/UID/volume-subpaths/VOLUME/CONTAINER/INDEX`, so a symlink swapped in after the
//! check cannot redirect the mount outside the volume.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::mounts;

/// Why a subPath cannot be used; kubelet reports it as CreateContainerConfigError.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubPathError {
    #[error("subpath {sub:?} not within volume path {volume:?}")]
    Escapes { sub: String, volume: String },
    #[error("unable to provision SubPath `{0}`: must not contain '..' or be absolute")]
    Backsteps(String),
    #[error("subpath {path:?}: {message}")]
    Io { path: String, message: String },
}

fn io_error(path: &Path, e: &std::io::Error) -> SubPathError {
    SubPathError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Resolves `sub` inside `volume`, creating missing directories (0755, no symlink followed).
/// Fails when any component, symlinks included, leads outside the volume.
pub fn resolve(volume: &Path, sub: &str) -> Result<PathBuf, SubPathError> {
    let base = std::fs::canonicalize(volume).map_err(|e| io_error(volume, &e))?;
    let escapes = || SubPathError::Escapes {
        sub: sub.to_string(),
        volume: volume.display().to_string(),
    };
    let mut cur = base.clone();
    for comp in Path::new(sub).components() {
        let name = match comp {
            Component::Normal(n) => n,
            Component::CurDir => continue,
            _ => return Err(SubPathError::Backsteps(sub.to_string())),
        };
        let next = cur.join(name);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&next)
                    .map_err(|e| io_error(&next, &e))?;
                cur = next;
            }
            Err(e) => return Err(io_error(&next, &e)),
            Ok(_) => {
                let real = std::fs::canonicalize(&next).map_err(|_| escapes())?;
                if !real.starts_with(&base) {
                    return Err(escapes());
                }
                cur = real;
            }
        }
    }
    Ok(cur)
}

/// Resolves `sub` in `volume` and bind-mounts it at `target`; returns `target`.
pub fn bind(volume: &Path, sub: &str, target: &Path) -> Result<PathBuf, SubPathError> {
    let resolved = resolve(volume, sub)?;
    let base = std::fs::canonicalize(volume).map_err(|e| io_error(volume, &e))?;
    let fd = rustix::fs::open(
        &resolved,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(&resolved, &e.into()))?;
    let fd_path = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ));
    // What was opened must still be the checked path inside the volume.
    let opened = std::fs::read_link(&fd_path).map_err(|e| io_error(&resolved, &e))?;
    if opened != resolved || !opened.starts_with(&base) {
        return Err(SubPathError::Escapes {
            sub: sub.to_string(),
            volume: volume.display().to_string(),
        });
    }
    let is_dir = std::fs::metadata(&fd_path).is_ok_and(|m| m.is_dir());
    if mounts::is_mount_point(target) {
        mounts::unmount(target).map_err(|e| io_error(target, &e))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(target)
        && m.is_dir() != is_dir
    {
        let _ = std::fs::remove_dir(target).or_else(|_| std::fs::remove_file(target));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, &e))?;
    }
    if is_dir {
        std::fs::create_dir_all(target).map_err(|e| io_error(target, &e))?;
    } else if !target.exists() {
        std::fs::write(target, b"").map_err(|e| io_error(target, &e))?;
    }
    mounts::bind(&fd_path, target).map_err(|e| io_error(target, &e))?;
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_and_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir_all(vol.join("a")).unwrap();
        std::fs::write(vol.join("a/f"), "x").unwrap();
        std::os::unix::fs::symlink("a", vol.join("inside")).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("outside")).unwrap();
        std::os::unix::fs::symlink("../..", vol.join("a/up")).unwrap();
        let base = std::fs::canonicalize(&vol).unwrap();

        assert_eq!(resolve(&vol, "a/f").unwrap(), base.join("a/f"));
        assert_eq!(resolve(&vol, "inside/f").unwrap(), base.join("a/f"));
        assert_eq!(resolve(&vol, "new/dir").unwrap(), base.join("new/dir"));
        assert!(base.join("new/dir").is_dir());
        assert!(matches!(
            resolve(&vol, "outside"),
            Err(SubPathError::Escapes { .. })
        ));
        assert!(matches!(
            resolve(&vol, "outside/passwd"),
            Err(SubPathError::Escapes { .. })
        ));
        assert!(matches!(
            resolve(&vol, "a/up/x"),
            Err(SubPathError::Escapes { .. })
        ));
        assert!(matches!(
            resolve(&vol, "../x"),
            Err(SubPathError::Backsteps(_))
        ));
        assert!(matches!(
            resolve(&vol, "/etc"),
            Err(SubPathError::Backsteps(_))
        ));
        assert!(!d.path().join("x").exists());
    }
}
