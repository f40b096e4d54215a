//! The socket keeper: keeps the socket file fresh for runtime-directory cleaners, and shuts the daemon down when
//! its socket file is removed or replaced (after an upgrade, by a newer codexd or a service manager), as
//! gpg-agent does, so an old daemon does not serve a socket nobody can reach any more.

#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::time::Duration;
#[cfg(unix)]
use tokio_util::sync::CancellationToken;

/// Default time between two checks of the socket file (`CODEXD_SOCKET_CHECK_MS`).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Which file a path named: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketId {
    dev: u64,
    ino: u64,
}

impl SocketId {
    /// The identity of the file at `path` itself (a symbolic link is not followed).
    #[cfg(unix)]
    pub fn of(path: &Path) -> std::io::Result<SocketId> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(SocketId { dev: meta.dev(), ino: meta.ino() })
    }
}

/// What one look at the socket file found.
#[derive(Debug)]
pub enum Check {
    /// Still the socket this daemon serves (`check_and_touch` has set its timestamps to now).
    Ours,
    /// No file at the path any more.
    Gone,
    /// Another file is at the path.
    Replaced,
    /// The path cannot be examined; the daemon goes on serving.
    Unknown(std::io::Error),
}

/// Looks at `path`: is it still the file `id`?
#[cfg(unix)]
pub fn check(path: &Path, id: SocketId) -> Check {
    match SocketId::of(path) {
        Ok(now) if now == id => Check::Ours,
        Ok(_) => Check::Replaced,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::Gone,
        Err(e) => Check::Unknown(e),
    }
}

/// Looks at `path`: is it still the file `id`? If so, sets its access and modification times to now, so that
/// cleaners of `$XDG_RUNTIME_DIR` or `/tmp` that go by age leave it alone. A failed touch is logged, not fatal.
#[cfg(unix)]
pub fn check_and_touch(path: &Path, id: SocketId) -> Check {
    let check = check(path, id);
    if matches!(check, Check::Ours)
        && let Err(e) = touch(path)
    {
        tracing::debug!(path = %path.display(), error = %e, "could not touch the socket");
    }
    check
}

#[cfg(unix)]
fn touch(path: &Path) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timestamps, UTIME_NOW, utimensat};
    let now = rustix::fs::Timespec { tv_sec: 0, tv_nsec: UTIME_NOW };
    let times = Timestamps { last_access: now, last_modification: now };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Checks the socket at `path` (the file `id`) every `interval` until `shutdown`; cancels `shutdown` when the file
/// is gone or another one, which shuts the daemon down gracefully (subscribers get `daemon/shuttingDown`).
#[cfg(unix)]
pub fn spawn_socket_keeper(
    path: PathBuf,
    id: SocketId,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let looked_at = path.clone();
            let check = match tokio::task::spawn_blocking(move || check_and_touch(&looked_at, id)).await {
                Ok(check) => check,
                Err(e) => Check::Unknown(std::io::Error::other(e.to_string())),
            };
            match check {
                Check::Ours => warned = false,
                Check::Gone | Check::Replaced => {
                    tracing::warn!(
                        "the socket {} was removed or replaced (a newer codexd?); shutting down",
                        path.display()
                    );
                    shutdown.cancel();
                    return;
                }
                Check::Unknown(e) => {
                    if !warned {
                        tracing::warn!(path = %path.display(), error = %e, "cannot check the socket; still serving");
                        warned = true;
                    }
                }
            }
        }
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn our_socket_is_touched_and_a_removed_or_replaced_one_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _ours = UnixListener::bind(&path).unwrap();
        let id = SocketId::of(&path).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // A socket cannot be opened, so `File::set_times` cannot age it: set the times by path.
        let old_ts = rustix::fs::Timespec { tv_sec: 1_000_000, tv_nsec: 0 };
        let stamps = rustix::fs::Timestamps { last_access: old_ts, last_modification: old_ts };
        rustix::fs::utimensat(rustix::fs::CWD, &path, &stamps, rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), old);

        assert!(matches!(check_and_touch(&path, id), Check::Ours));
        assert!(std::fs::metadata(&path).unwrap().modified().unwrap() > old, "the socket was not touched");

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(check_and_touch(&path, id), Check::Gone));

        let _other = UnixListener::bind(&path).unwrap();
        assert!(matches!(check_and_touch(&path, id), Check::Replaced));
    }

    #[tokio::test]
    async fn the_keeper_cancels_shutdown_when_the_socket_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _ours = UnixListener::bind(&path).unwrap();
        let id = SocketId::of(&path).unwrap();
        let shutdown = CancellationToken::new();
        let keeper = spawn_socket_keeper(path.clone(), id, Duration::from_millis(10), shutdown.clone());
        std::fs::remove_file(&path).unwrap();
        tokio::time::timeout(Duration::from_secs(10), shutdown.cancelled()).await.expect("the keeper did not react");
        keeper.await.unwrap();
    }
}
