//! Where codexctl and other clients find the daemon: `--socket`, then `CODEXD_SOCKET`, then the default.

use codexd_proto::paths;
use interprocess::local_socket::Name;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where the socket path came from, so that messages can tell the user which setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketSource {
    /// The `--socket` flag (or an explicit path given by the program).
    Flag,
    /// The `CODEXD_SOCKET` environment variable.
    Env,
    /// The default location for this user.
    Default,
}

impl fmt::Display for SocketSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketSource::Flag => "--socket",
            SocketSource::Env => paths::SOCKET_ENV,
            SocketSource::Default => "default",
        })
    }
}

/// A socket path and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSocket {
    /// The socket path (on Windows, the pipe path `\\.\pipe\...`).
    pub path: PathBuf,
    /// Which setting chose it.
    pub source: SocketSource,
}

/// The socket to connect to: `explicit` (the `--socket` flag) if given, else `CODEXD_SOCKET` if set and not
/// empty, else the default (`$XDG_RUNTIME_DIR/codexd/codexd.sock`, `${TMPDIR:-/tmp}/codexd-$UID/codexd.sock`,
/// or the named pipe `\\.\pipe\codexd-<user>` on Windows).
pub fn resolve_socket(explicit: Option<PathBuf>) -> ResolvedSocket {
    let env = |name: &str| std::env::var_os(name);
    resolve_with(explicit, env(paths::SOCKET_ENV), default_socket)
}

/// [`resolve_socket`] with the environment passed in; `default` is only called when it is needed.
fn resolve_with(
    explicit: Option<PathBuf>,
    socket_env: Option<OsString>,
    default: impl FnOnce() -> PathBuf,
) -> ResolvedSocket {
    if let Some(path) = explicit {
        return ResolvedSocket { path, source: SocketSource::Flag };
    }
    match socket_env.filter(|v| !v.is_empty()) {
        Some(value) => ResolvedSocket { path: PathBuf::from(value), source: SocketSource::Env },
        None => ResolvedSocket { path: default(), source: SocketSource::Default },
    }
}

/// Which rule picked the default socket, so that `codexctl where` can say which variable to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRule {
    /// `$XDG_RUNTIME_DIR/codexd/codexd.sock`: `XDG_RUNTIME_DIR` is set.
    RuntimeDir,
    /// `$TMPDIR/codexd-$UID/codexd.sock`: `XDG_RUNTIME_DIR` is unset, `TMPDIR` is set.
    TmpDir,
    /// `/tmp/codexd-$UID/codexd.sock`: neither is set.
    Tmp,
    /// The named pipe `\\.\pipe\codexd-<user>` (Windows).
    Pipe,
}

impl DefaultRule {
    /// The variable the rule reads (`XDG_RUNTIME_DIR`, `TMPDIR`), if any.
    pub fn variable(self) -> Option<&'static str> {
        match self {
            DefaultRule::RuntimeDir => Some("XDG_RUNTIME_DIR"),
            DefaultRule::TmpDir => Some("TMPDIR"),
            DefaultRule::Tmp | DefaultRule::Pipe => None,
        }
    }
}

impl fmt::Display for DefaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultRule::RuntimeDir => "$XDG_RUNTIME_DIR/codexd/codexd.sock",
            DefaultRule::TmpDir => "$TMPDIR/codexd-$UID/codexd.sock, as XDG_RUNTIME_DIR is unset",
            DefaultRule::Tmp => "/tmp/codexd-$UID/codexd.sock, as XDG_RUNTIME_DIR and TMPDIR are unset",
            DefaultRule::Pipe => r"\\.\pipe\codexd-<user>",
        })
    }
}

/// The rule that picks the default socket in this environment (empty variables count as unset).
pub fn default_rule() -> DefaultRule {
    rule_with(cfg!(windows), |name| std::env::var_os(name))
}

fn rule_with(windows: bool, var: impl Fn(&str) -> Option<OsString>) -> DefaultRule {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if windows {
        DefaultRule::Pipe
    } else if set("XDG_RUNTIME_DIR") {
        DefaultRule::RuntimeDir
    } else if set("TMPDIR") {
        DefaultRule::TmpDir
    } else {
        DefaultRule::Tmp
    }
}

/// The default socket path in this environment, whatever `--socket` or `CODEXD_SOCKET` say.
pub fn default_socket() -> PathBuf {
    #[cfg(unix)]
    let uid = rustix::process::getuid().as_raw();
    #[cfg(not(unix))]
    let uid = 0;
    paths::default_socket_path(|name| std::env::var_os(name), uid)
}

/// The interprocess name for a socket path: a file path on Unix (never the abstract namespace).
#[cfg(unix)]
pub(crate) fn socket_name(path: &Path) -> io::Result<Name<'_>> {
    use interprocess::local_socket::{GenericFilePath, ToFsName};
    path.to_fs_name::<GenericFilePath>()
}

/// The interprocess name for a pipe path: `\\.\pipe\NAME` becomes the namespaced name `NAME`.
#[cfg(windows)]
pub(crate) fn socket_name(path: &Path) -> io::Result<Name<'_>> {
    use interprocess::local_socket::{GenericNamespaced, ToNsName};
    let text = path.as_os_str().to_str().ok_or_else(|| io::Error::other("pipe name is not valid Unicode"))?;
    let short = text.strip_prefix(r"\\.\pipe\").unwrap_or(text);
    short.to_owned().to_ns_name::<GenericNamespaced>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fallback() -> PathBuf {
        PathBuf::from("/run/user/1000/codexd/codexd.sock")
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let r = resolve_with(Some("/flag.sock".into()), Some("/env.sock".into()), || panic!("default not needed"));
        assert_eq!(r, ResolvedSocket { path: "/flag.sock".into(), source: SocketSource::Flag });
    }

    #[test]
    fn the_environment_wins_over_the_default() {
        let r = resolve_with(None, Some("/env.sock".into()), || panic!("default not needed"));
        assert_eq!(r, ResolvedSocket { path: "/env.sock".into(), source: SocketSource::Env });
    }

    #[test]
    fn an_empty_environment_variable_counts_as_unset() {
        let r = resolve_with(None, Some(OsString::new()), fallback);
        assert_eq!(r, ResolvedSocket { path: fallback(), source: SocketSource::Default });
        let r = resolve_with(None, None, fallback);
        assert_eq!(r.source, SocketSource::Default);
    }

    #[test]
    fn the_default_rule_names_the_variable_that_decided() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v))
        };
        assert_eq!(
            rule_with(false, env(&[("XDG_RUNTIME_DIR", "/run/user/1"), ("TMPDIR", "/t")])),
            DefaultRule::RuntimeDir
        );
        assert_eq!(rule_with(false, env(&[("XDG_RUNTIME_DIR", ""), ("TMPDIR", "/t")])), DefaultRule::TmpDir);
        assert_eq!(rule_with(false, env(&[("TMPDIR", "")])), DefaultRule::Tmp);
        assert_eq!(rule_with(true, env(&[("XDG_RUNTIME_DIR", "/r")])), DefaultRule::Pipe);
        assert_eq!(DefaultRule::RuntimeDir.variable(), Some("XDG_RUNTIME_DIR"));
        assert_eq!(DefaultRule::Tmp.variable(), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_default_is_a_path_named_codexd_sock() {
        assert!(default_socket().ends_with("codexd.sock"));
    }
}
