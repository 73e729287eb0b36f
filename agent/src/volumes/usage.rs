//! How much a directory tree a container can write holds: the bytes its files occupy on disk
//! (allocated blocks, each hard-linked inode once) and its inodes, as kubelet's `du`-based
//! volume metrics count them. The walk is [`DirFd::walk`]'s: relative to no-follow directory
//! fds, so a symlink a container planted is counted as a link, never followed to the host.

use std::collections::HashSet;
use std::path::Path;

use super::dirfd::{DirFd, Result};

/// What a tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    pub bytes: u64,
    pub inodes: u64,
    /// Directories deeper than the walk goes: what is in them is not counted.
    pub too_deep: usize,
}

/// The usage of the tree at `dir` (its top directory included). Blocking.
///
/// # Errors
/// `dir` cannot be opened as a directory (missing, or a symlink).
pub fn tree_usage(dir: &Path) -> Result<TreeUsage> {
    let top = DirFd::open(dir)?;
    let st = top.stat()?;
    let block_bytes = |blocks: u64| blocks.saturating_mul(512);
    let mut usage = TreeUsage {
        bytes: block_bytes(u64::try_from(st.st_blocks).unwrap_or(0)),
        inodes: 1,
        too_deep: 0,
    };
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let summary = top.walk(&mut |_, _, st| {
        // A hard-linked inode counts once however many names it has.
        #[allow(clippy::useless_conversion)]
        let key = (u64::from(st.st_dev), u64::from(st.st_ino));
        if st.st_nlink > 1 && !linked.insert(key) {
            return;
        }
        usage.inodes = usage.inodes.saturating_add(1);
        usage.bytes = usage
            .bytes
            .saturating_add(block_bytes(u64::try_from(st.st_blocks).unwrap_or(0)));
    })?;
    usage.too_deep = summary.too_deep;
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_count_by_their_blocks_and_links_are_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), vec![1u8; 1 << 20]).unwrap();
        let top = tmp.path().join("vol");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::write(top.join("a/b/data"), vec![7u8; 256 << 10]).unwrap();
        std::fs::hard_link(top.join("a/b/data"), top.join("again")).unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("host")).unwrap();
        let u = tree_usage(&top).unwrap();
        assert!(u.bytes >= 256 << 10, "{u:?}");
        assert!(
            u.bytes < 1 << 20,
            "the symlinked megabyte is not counted: {u:?}"
        );
        // vol, a, b, data (once), host
        assert_eq!(u.inodes, 5);
        assert!(
            tree_usage(&top.join("host")).is_err(),
            "a symlinked top is refused"
        );
    }
}
