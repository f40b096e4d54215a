//! Where the socket lives by default: the contract every client shares, as a pure function of the environment.

use std::ffi::OsStr;
use std::path::PathBuf;

/// Environment variable that names the socket (or pipe) explicitly.
pub const SOCKET_ENV: &str = "CODEXD_SOCKET";

/// File name of the socket inside its directory.
pub const SOCKET_FILE_NAME: &str = "codexd.sock";

/// The default socket path on Unix: `$XDG_RUNTIME_DIR/codexd/codexd.sock`, else
/// `${TMPDIR:-/tmp}/codexd-$UID/codexd.sock`. Empty variables count as unset.
pub fn default_unix_socket_path(xdg_runtime_dir: Option<&OsStr>, tmpdir: Option<&OsStr>, uid: u32) -> PathBuf {
    let non_empty = |v: Option<&OsStr>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    match non_empty(xdg_runtime_dir) {
        Some(runtime) => runtime.join("codexd").join(SOCKET_FILE_NAME),
        None => non_empty(tmpdir)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(format!("codexd-{uid}"))
            .join(SOCKET_FILE_NAME),
    }
}

/// The default socket of this platform, from the environment as `var` reads it (empty counts as unset): the
/// Unix path above for `uid`, or on Windows the named pipe of `USERNAME` (`user` when it is unset).
pub fn default_socket_path(var: impl Fn(&str) -> Option<std::ffi::OsString>, uid: u32) -> PathBuf {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    if cfg!(windows) {
        let user = var("USERNAME").map_or_else(|| "user".to_owned(), |u| u.to_string_lossy().into_owned());
        PathBuf::from(default_pipe_name(&user))
    } else {
        default_unix_socket_path(var("XDG_RUNTIME_DIR").as_deref(), var("TMPDIR").as_deref(), uid)
    }
}

/// The default named pipe on Windows: `\\.\pipe\codexd-<user>`.
pub fn default_pipe_name(user: &str) -> String {
    format!(r"\\.\pipe\codexd-{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_runtime_dir_then_tmpdir_then_tmp() {
        let p = |x: Option<&str>, t: Option<&str>| default_unix_socket_path(x.map(OsStr::new), t.map(OsStr::new), 1000);
        assert_eq!(p(Some("/run/user/1000"), Some("/var/tmp")), PathBuf::from("/run/user/1000/codexd/codexd.sock"));
        assert_eq!(p(None, Some("/var/tmp")), PathBuf::from("/var/tmp/codexd-1000/codexd.sock"));
        assert_eq!(p(Some(""), Some("")), PathBuf::from("/tmp/codexd-1000/codexd.sock"));
        assert_eq!(default_pipe_name("ann"), r"\\.\pipe\codexd-ann");
    }

    #[test]
    #[cfg(unix)]
    fn the_platform_default_reads_the_environment_through_the_given_lookup() {
        let env = |name: &str| match name {
            "XDG_RUNTIME_DIR" => Some("".into()),
            "TMPDIR" => Some("/var/tmp".into()),
            _ => None,
        };
        assert_eq!(default_socket_path(env, 7), PathBuf::from("/var/tmp/codexd-7/codexd.sock"));
    }
}
