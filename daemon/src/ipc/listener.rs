//! The listening socket: a private directory, a single-instance lock, stale-socket cleanup, a 0600 socket, and a
//! guard that removes the socket when the daemon exits. On Linux a socket passed by systemd (socket activation)
//! is adopted instead of binding one; it is locked the same way but never removed (systemd owns it).

use super::keeper::SocketId;
use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::Listener;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The longest socket path `bind` accepts, in bytes (`sun_path` holds 108 on Linux, 104 on macOS, NUL included).
#[cfg(target_os = "linux")]
pub const MAX_SOCKET_PATH: usize = 107;
/// The longest socket path `bind` accepts, in bytes (`sun_path` holds 104 here, NUL included).
#[cfg(not(target_os = "linux"))]
pub const MAX_SOCKET_PATH: usize = 103;

/// Why the daemon could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The path does not fit in `sun_path`.
    #[error("socket path {path:?} is too long ({len} bytes, the limit is {max}); choose a shorter --socket")]
    PathTooLong {
        /// The path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another daemon holds the lock.
    #[error("another codexd (pid {pid}) is already serving {path:?}; stop it first (`codexctl stop`)")]
    AlreadyRunning {
        /// Its pid, as written in the lock file ("unknown" if unreadable).
        pid: String,
        /// The socket.
        path: PathBuf,
    },
    /// The socket directory belongs to someone else or is open to others and cannot be fixed.
    #[error("socket directory {path:?} is not private to this user: {why}")]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The socket passed by the service manager cannot be served.
    #[cfg(target_os = "linux")]
    #[error(transparent)]
    Activation(#[from] super::activation::ActivationError),
    /// Something that is not a codexd listens on the socket (systemd's `codexd.socket`, an `ssh -R` forward).
    #[error(
        "something other than a codexd listens on {path:?} (systemd's codexd.socket, which starts codexd on \
         demand, or an `ssh -R` forward?); use it as it is, stop it, or give this codexd another --socket"
    )]
    Occupied {
        /// The socket.
        path: PathBuf,
    },
    /// Any other I/O failure, with what was being done.
    #[error("cannot {action} {path:?}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Holds the single-instance lock while the daemon runs, and removes the socket file when dropped if the daemon
/// bound it and the path still names that socket (a socket that replaced it belongs to someone else). An adopted
/// socket is left to the service manager that created it. The lock file stays, so that a daemon starting at that
/// moment cannot take a lock on a file that is being unlinked.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    _lock: Option<File>,
    id: Option<SocketId>,
    adopted: bool,
}

impl SocketGuard {
    /// The socket path: the one served, locked and reported (for an adopted socket, its own path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which file the socket path named when the daemon started serving it (`None` when it cannot be known).
    pub fn id(&self) -> Option<SocketId> {
        self.id
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let Some(id) = self.id.filter(|_| !self.adopted) else { return };
            match super::keeper::check(&self.path, id) {
                // Cannot tell: removing is what a clean stop needs, and the lock keeps other daemons off.
                super::keeper::Check::Ours | super::keeper::Check::Unknown(_) => {}
                super::keeper::Check::Replaced => {
                    tracing::info!(path = %self.path.display(), "leaving the socket alone: it is not ours any more");
                    return;
                }
                super::keeper::Check::Gone => return,
            }
            if let Err(e) = std::fs::remove_file(&self.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove the socket");
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub use super::activation::Inherited;
/// A socket passed by a service manager: only on Linux (systemd); there is none elsewhere.
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub enum Inherited {}

/// Serves the socket passed by a service manager when there is one (Linux socket activation: `LISTEN_FDS` and
/// `LISTEN_PID` name this process), else binds `path` (see [`bind`]). Must run inside a tokio runtime.
pub fn listen(path: &Path, inherited: Option<Inherited>) -> Result<(Listener, SocketGuard), ListenError> {
    #[cfg(target_os = "linux")]
    if let Some(inherited) = inherited {
        return adopt(path, inherited);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = inherited;
    bind(path)
}

/// Serves a socket passed by the service manager: its own path (when it differs from `configured`, that path
/// wins and is logged) is locked like a bound one, but nothing is removed, before or after.
#[cfg(target_os = "linux")]
fn adopt(configured: &Path, inherited: super::activation::Inherited) -> Result<(Listener, SocketGuard), ListenError> {
    use interprocess::os::unix::uds_local_socket::tokio::Listener as UdsListener;
    let super::activation::Inherited { listener, fd, path } = inherited;
    let named = path.is_some();
    let path = match path {
        Some(own) if own != configured => {
            tracing::warn!(
                passed = %own.display(),
                configured = %configured.display(),
                "the socket passed by the service manager is not at the configured path; serving, locking and \
                 reporting the passed one"
            );
            own
        }
        Some(own) => own,
        None => {
            tracing::warn!(
                configured = %configured.display(),
                "the socket passed by the service manager has no path; locking and reporting the configured one"
            );
            configured.to_owned()
        }
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    make_private_dir(dir)?;
    let lock = take_lock(&path)?;
    // The keeper watches the passed socket's file; a socket without one has nothing to watch.
    let id = named
        .then(|| SocketId::of(&path))
        .transpose()
        .inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "cannot examine the passed socket"))
        .ok()
        .flatten();
    let io_err = |source| ListenError::Io { action: "serve the passed socket", path: path.clone(), source };
    let listener = UdsListener::try_from(std::os::fd::OwnedFd::from(listener)).map_err(io_err)?;
    tracing::info!(
        path = %path.display(),
        fd,
        "serving the socket passed by the service manager (socket activation); it stays when codexd exits"
    );
    let guard = SocketGuard { path, _lock: Some(lock), id, adopted: true };
    Ok((Listener::from(listener), guard))
}

/// Binds the socket at `path`: checks its length, makes its directory private, takes the single-instance lock,
/// removes a stale socket, and binds with mode 0600. Must run inside a tokio runtime.
#[cfg(unix)]
pub fn bind(path: &Path) -> Result<(Listener, SocketGuard), ListenError> {
    use interprocess::local_socket::{GenericFilePath, ToFsName};
    use interprocess::os::unix::local_socket::ListenerOptionsExt;

    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ListenError::PathTooLong { path: path.to_owned(), len, max: MAX_SOCKET_PATH });
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    make_private_dir(dir)?;
    let lock = take_lock(path)?;
    // No codexd holds the lock, but something else may listen there (systemd's codexd.socket waiting to start
    // codexd, an `ssh -R` forward): that socket is alive, and removing it would cut off its clients.
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ListenError::Occupied { path: path.to_owned() });
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed a stale socket left by a daemon that died"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ListenError::Io { action: "remove the stale socket", path: path.to_owned(), source });
        }
    }
    let io_err = |action| move |source| ListenError::Io { action, path: path.to_owned(), source };
    let name = path.to_fs_name::<GenericFilePath>().map_err(io_err("name"))?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .reclaim_name(false)
        .create_tokio()
        .map_err(io_err("listen on"))?;
    let id = SocketId::of(path).map_err(io_err("examine"))?;
    let guard = SocketGuard { path: path.to_owned(), _lock: Some(lock), id: Some(id), adopted: false };
    // The mode was applied before bind; set it again in case the platform ignores it there.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io_err("set the mode of"))?;
    Ok((listener, guard))
}

/// Binds the named pipe. Windows support compiles through interprocess but is untested.
#[cfg(windows)]
pub fn bind(path: &Path) -> Result<(Listener, SocketGuard), ListenError> {
    use interprocess::local_socket::{GenericNamespaced, ToNsName};
    let io_err = |action| move |source| ListenError::Io { action, path: path.to_owned(), source };
    let pipe = path.to_string_lossy().trim_start_matches(r"\\.\pipe\").to_owned();
    let name = pipe.to_ns_name::<GenericNamespaced>().map_err(io_err("name"))?;
    let listener = ListenerOptions::new().name(name).create_tokio().map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => {
            ListenError::AlreadyRunning { pid: "unknown".to_owned(), path: path.to_owned() }
        }
        _ => ListenError::Io { action: "listen on", path: path.to_owned(), source },
    })?;
    Ok((listener, SocketGuard { path: path.to_owned(), _lock: None, id: None, adopted: false }))
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> Result<(), ListenError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    crate::config::create_private_dir(dir).map_err(|source| ListenError::Io {
        action: "create the socket directory",
        path: dir.to_owned(),
        source,
    })?;
    let meta = std::fs::metadata(dir).map_err(|source| ListenError::Io {
        action: "inspect the socket directory",
        path: dir.to_owned(),
        source,
    })?;
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(ListenError::UnsafeDirectory {
            path: dir.to_owned(),
            why: format!("owned by uid {}, not {uid}", meta.uid()),
        });
    }
    if meta.mode() & 0o077 != 0 {
        tracing::warn!(path = %dir.display(), mode = format!("{:o}", meta.mode() & 0o777), "making the socket directory private (0700)");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| ListenError::Io {
            action: "make private",
            path: dir.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// Takes `<socket>.lock` (flock) and writes our pid into it.
#[cfg(unix)]
fn take_lock(socket: &Path) -> Result<File, ListenError> {
    let mut lock_path = socket.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let io_err = |action: &'static str| {
        let path = lock_path.clone();
        move |source| ListenError::Io { action, path, source }
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err("open the lock file"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(ListenError::AlreadyRunning {
                pid: if pid.is_empty() { "unknown".to_owned() } else { pid.to_owned() },
                path: socket.to_owned(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(io_err("lock")(source)),
    }
    file.set_len(0).map_err(io_err("write the lock file"))?;
    file.rewind().map_err(io_err("write the lock file"))?;
    write!(file, "{}", std::process::id()).map_err(io_err("write the lock file"))?;
    Ok(file)
}
