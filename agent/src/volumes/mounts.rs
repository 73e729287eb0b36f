//! The mount boundary: tmpfs and bind mounts through rustix, unmounts, and the mount table
//! (`/proc/self/mountinfo`) that tells what is mounted, which is also how the actual state is
//! rebuilt after an agent restart.

use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Mounts a tmpfs at `dir` (which must exist), limited to `size_bytes` when given.
pub fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> io::Result<()> {
    let data = match size_bytes {
        Some(n) => format!("size={n}"),
        None => String::new(),
    };
    let data = std::ffi::CString::new(data).map_err(|e| io::Error::other(e.to_string()))?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(data.as_c_str()),
    )
    .map_err(io::Error::from)
}

/// Bind-mounts `source` (a path or `/proc/self/fd/N`) at `target`.
pub fn bind(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(source, target).map_err(io::Error::from)
}

/// Unmounts `dir`; a busy mount is detached (lazy) rather than left behind. Not mounted is
/// not an error.
pub fn unmount(dir: &Path) -> io::Result<()> {
    match rustix::mount::unmount(dir, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) if !is_mount_point(dir) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            rustix::mount::unmount(dir, UnmountFlags::DETACH).map_err(io::Error::from)
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Decodes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && let Ok(digits) = std::str::from_utf8(digits)
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a mountinfo text (field 5, unescaped), in table order.
pub fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .collect()
}

/// Every mount point of this mount namespace.
pub fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|s| parse_mount_points(&s))
        .unwrap_or_default()
}

/// Mount points at or below `prefix`, deepest (latest mounted) first, for unmounting.
pub fn mount_points_under(prefix: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|p| p.starts_with(prefix))
        .collect();
    found.reverse();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// True when `dir` is a mount point.
pub fn is_mount_point(dir: &Path) -> bool {
    mount_points().iter().any(|p| p == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points_are_unescaped() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:50 / /var/lib/k/pods/u/volumes/kubernetes.io~secret/s rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mount_points(text),
            vec![
                PathBuf::from("/mnt/with space"),
                PathBuf::from("/var/lib/k/pods/u/volumes/kubernetes.io~secret/s")
            ]
        );
    }
}
