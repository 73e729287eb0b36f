//! Change notification for the static pod directory: inotify on the directory, so a manifest
//! written, replaced, moved in or out, or removed wakes the file source at once instead of at
//! its next `--file-check-frequency` look. kubelet watches the path with fsnotify the same way
//! and keeps the periodic look as the backstop; so does [`super::source::run`]. A change only
//! wakes a full rescan: no event is interpreted on its own, so a lost or merged event (or a
//! queue overflow) costs nothing but a rescan.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::pipe::{PipeFlags, pipe_with};
use tokio::sync::mpsc;

/// What a wake-up reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Entries of the directory changed.
    Entries,
    /// The directory itself was removed or moved away: the watch has ended.
    Gone,
}

/// An inotify watch on one directory. A thread of its own blocks in poll(2) on the inotify
/// descriptor and on a pipe (safe code throughout; no timer wakes it); dropping the watch
/// closes the pipe's write end, which ends the thread.
pub struct DirWatch {
    changes: mpsc::Receiver<io::Result<Change>>,
    _stop: OwnedFd,
}

impl DirWatch {
    /// Watches `dir`, which must be a directory (`NotFound` when it does not exist).
    pub fn new(dir: &Path) -> io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC)?;
        let mask = WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::ATTRIB
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        inotify::add_watch(&fd, dir, mask)?;
        let (stop_read, stop_write) = pipe_with(PipeFlags::CLOEXEC)?;
        let (tx, changes) = mpsc::channel(1);
        std::thread::Builder::new()
            .name("static-pod-watch".into())
            .spawn(move || watch(&fd, &stop_read, &tx))?;
        Ok(DirWatch {
            changes,
            _stop: stop_write,
        })
    }

    /// Waits until something changed (every event queued by then is folded into one).
    pub async fn changed(&mut self) -> io::Result<Change> {
        self.changes.recv().await.unwrap_or(Ok(Change::Gone))
    }
}

/// The watch thread: until the pipe closes, the receiver goes, or the directory goes.
fn watch(fd: &OwnedFd, stop: &OwnedFd, tx: &mpsc::Sender<io::Result<Change>>) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let mut fds = [
            PollFd::new(fd, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        if let Err(e) = poll(&mut fds, None) {
            if e == rustix::io::Errno::INTR {
                continue;
            }
            let _ = tx.blocking_send(Err(e.into()));
            return;
        }
        if !fds[1].revents().is_empty() {
            return; // the watch was dropped
        }
        if fds[0].revents().is_empty() {
            continue;
        }
        let change = read_batch(fd, &mut buf);
        let end = !matches!(change, Ok(Change::Entries));
        if tx.blocking_send(change).is_err() || end {
            return;
        }
    }
}

/// Reads what one read(2) returns (the descriptor is readable, so it does not block).
fn read_batch(fd: &OwnedFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<Change> {
    let mut reader = inotify::Reader::new(fd, buf);
    let mut change = Change::Entries;
    loop {
        let event = reader.next()?;
        let flags = event.events();
        if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::IGNORED) {
            change = Change::Gone;
        }
        if reader.is_buffer_empty() {
            return Ok(change);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    async fn next(w: &mut DirWatch) -> Change {
        tokio::time::timeout(Duration::from_secs(10), w.changed())
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn a_written_renamed_or_removed_manifest_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        assert_eq!(next(&mut w).await, Change::Entries);
        std::fs::rename(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
        assert_eq!(next(&mut w).await, Change::Entries);
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert_eq!(next(&mut w).await, Change::Entries);
    }

    #[tokio::test]
    async fn the_directory_going_away_ends_the_watch() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("manifests");
        std::fs::create_dir(&dir).unwrap();
        let mut w = DirWatch::new(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(next(&mut w).await, Change::Gone);
    }

    #[tokio::test]
    async fn a_missing_directory_or_a_file_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let missing = DirWatch::new(&parent.path().join("nope"));
        assert_eq!(
            missing.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        let file = parent.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(DirWatch::new(&file).is_err());
    }
}
