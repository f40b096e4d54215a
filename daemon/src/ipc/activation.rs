//! Socket activation (Linux): the listening socket systemd, or `systemd-socket-activate`, passes as fd 3 with
//! `LISTEN_FDS` and `LISTEN_PID`.
//!
//! This is the daemon's one module with `unsafe` code: taking ownership of an inherited descriptor by its number
//! cannot be said safely. It is sound because `sd_notify::listen_fds` only returns descriptors when `LISTEN_PID`
//! names this process, which the service manager sets for the process it passed them to, and nothing else in
//! codexd touches descriptors by number; [`take_listen_fd`] runs once, at startup.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// A listening socket passed in by the service manager.
#[derive(Debug)]
pub struct Inherited {
    /// The listening socket (close-on-exec).
    pub listener: UnixListener,
    /// Its descriptor number, for the log.
    pub fd: RawFd,
    /// Its path in the file system; `None` for an abstract or unnamed socket.
    pub path: Option<PathBuf>,
}

/// Why the passed socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_FDS` or `LISTEN_PID` cannot be read.
    #[error("cannot read the sockets passed by the service manager (LISTEN_FDS, LISTEN_PID): {0}")]
    Environment(std::io::Error),
    /// The descriptor is not a listening Unix stream socket.
    #[error(
        "the service manager passed fd {fd}, which is not a listening Unix stream socket ({why}); \
         codexd.socket needs ListenStream=<path> and Accept=no"
    )]
    NotUnixStream {
        /// The descriptor.
        fd: RawFd,
        /// What it is instead.
        why: String,
    },
}

/// Takes the first socket passed to this process (`LISTEN_FDS`/`LISTEN_PID`), or `None` when there is none.
/// Further sockets are left alone (and logged). Call it once.
pub fn take_listen_fd() -> Result<Option<Inherited>, ActivationError> {
    let mut fds = sd_notify::listen_fds().map_err(ActivationError::Environment)?;
    let count = fds.len();
    let Some(fd) = fds.next() else { return Ok(None) };
    if count > 1 {
        tracing::warn!(count, "the service manager passed {count} sockets; codexd serves the first (fd {fd}) only");
    }
    // SAFETY: `listen_fds` returned `fd` because `LISTEN_PID` is this process: the service manager opened it for
    // us and nothing else in the process owns it. It is taken once (the only call is at startup).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    check(owned, fd).map(Some)
}

/// Closes every descriptor this process inherited beyond stdin, stdout and stderr, except the `keep` sockets
/// passed by the service manager (fds 3 to 3 + keep - 1). A daemon started from a shell or by `codexctl` must not
/// hold the pipes and files of the process that started it: a caller waiting for the end of such a pipe would
/// wait for the daemon's whole life. Call it first thing in `main`, while no other code owns a descriptor.
pub fn close_inherited_descriptors(keep: usize) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    // Collect first: the directory's own descriptor is open while it is read (and gone once `entries` drops).
    let fds: Vec<RawFd> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
    let kept = 3..3 + RawFd::try_from(keep).unwrap_or(RawFd::MAX - 3);
    // The directory handle was among the listed numbers and is closed now: keep only descriptors still open (a
    // stat of the /proc entry opens nothing).
    let open = |fd: &RawFd| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok();
    for fd in fds.into_iter().filter(|fd| !kept.contains(fd)).filter(open) {
        // SAFETY: this runs at the start of `main`, before any code of this process opened or owns a descriptor
        // above 2, so `fd` is an open, inherited descriptor that nothing else will use or close.
        unsafe { rustix::io::close(fd) };
    }
}

/// How many sockets the service manager passed to this process (`LISTEN_FDS`, when `LISTEN_PID` is us).
pub fn passed_socket_count() -> usize {
    sd_notify::listen_fds().map_or(0, |fds| fds.len())
}

/// Checks that `owned` is a listening Unix stream socket and finds its path.
fn check(owned: OwnedFd, fd: RawFd) -> Result<Inherited, ActivationError> {
    use rustix::net::sockopt::{socket_acceptconn, socket_type};
    let not = |why: String| ActivationError::NotUnixStream { fd, why };
    match socket_type(&owned) {
        Ok(rustix::net::SocketType::STREAM) => {}
        Ok(other) => return Err(not(format!("socket type {}", other.as_raw()))),
        Err(e) => return Err(not(format!("not a socket: {e}"))),
    }
    if !socket_acceptconn(&owned).map_err(|e| not(e.to_string()))? {
        return Err(not("it is not listening".to_owned()));
    }
    let listener = UnixListener::from(owned);
    let address = listener.local_addr().map_err(|e| not(e.to_string()))?;
    let path = address.as_pathname().map(PathBuf::from);
    Ok(Inherited { listener, fd, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_unix_stream_socket_is_accepted_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let inherited = check(OwnedFd::from(listener), 3).unwrap();
        assert_eq!(inherited.path.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn datagram_sockets_and_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let datagram = std::os::unix::net::UnixDatagram::bind(dir.path().join("d.sock")).unwrap();
        let err = check(OwnedFd::from(datagram), 3).unwrap_err();
        assert!(err.to_string().contains("not a listening Unix stream socket"), "{err}");
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        assert!(matches!(check(OwnedFd::from(file), 3), Err(ActivationError::NotUnixStream { .. })));
    }

    #[test]
    fn a_stream_socket_that_is_not_listening_is_refused() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = check(OwnedFd::from(a), 3).unwrap_err();
        assert!(err.to_string().contains("not listening"), "{err}");
    }
}
