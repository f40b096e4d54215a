//! The version handshake: `initialize`, then codexctl's version against the daemon's (`serverInfo.version`). An
//! older daemon is named on stderr with the command that restarts it; a daemon that refuses codexctl's
//! `protocolVersion` (-32600 `protocolVersionUnsupported`) ends the command with exit 1 and the same hint.

use crate::{Ctx, EXIT_REFUSED, Failure};
use codexd_client::proto::methods::InitializeResult;
use codexd_client::{Client, ClientError, SocketSource};
use std::cmp::Ordering;
use std::io::{self, Write};

/// codexctl's own version.
pub(crate) const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `data.reason` of a refused `protocolVersion`.
pub(crate) const PROTOCOL_VERSION_UNSUPPORTED: &str = "protocolVersionUnsupported";

/// `initialize` as codexctl, warning on stderr when the daemon is older.
pub(crate) fn initialize(ctx: &Ctx, client: &mut Client) -> anyhow::Result<InitializeResult> {
    match client.initialize("codexctl", CLIENT_VERSION) {
        Ok(init) => {
            if let Some(warning) = older_daemon(ctx, &init.server_info.version) {
                let _ = writeln!(io::stderr().lock(), "codexctl: {warning}");
            }
            Ok(init)
        }
        Err(ClientError::Daemon(e)) if e.reason() == PROTOCOL_VERSION_UNSUPPORTED => {
            let message = e.message.trim().trim_end_matches('.');
            Err(Failure::new(EXIT_REFUSED, format!("{message}; restart it to upgrade: {}", restart_command(ctx)))
                .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `codexd <v> is older than codexctl <v>; restart it to upgrade: codexctl restart`, when it is.
pub(crate) fn older_daemon(ctx: &Ctx, daemon_version: &str) -> Option<String> {
    (compare(daemon_version, CLIENT_VERSION) == Some(Ordering::Less)).then(|| {
        format!(
            "codexd {daemon_version} is older than codexctl {CLIENT_VERSION}; restart it to upgrade: {}",
            restart_command(ctx)
        )
    })
}

/// `codexctl restart`, with `--socket PATH` when the socket came from the flag.
pub(crate) fn restart_command(ctx: &Ctx) -> String {
    match ctx.socket.source {
        SocketSource::Flag => format!("codexctl --socket {} restart", ctx.socket.path.display()),
        SocketSource::Env | SocketSource::Default => "codexctl restart".to_owned(),
    }
}

/// Orders two `x.y.z` versions as semver does (a pre-release `-...` sorts before its release, build metadata
/// `+...` is ignored); `None` when either does not parse.
pub(crate) fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    Some(a.0.cmp(&b.0).then_with(|| compare_pre(a.1, b.1)))
}

/// `(major, minor, patch)` and the pre-release part.
fn parse(version: &str) -> Option<([u64; 3], Option<&str>)> {
    let version = version.trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let numbers = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some((numbers, pre))
}

/// Pre-releases: none beats any; otherwise dot-separated identifiers, numbers below words.
fn compare_pre(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let mut a = a.split('.');
            let mut b = b.split('.');
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(x), Some(y)) => {
                        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            (Err(_), Err(_)) => x.cmp(y),
                        };
                        if order != Ordering::Equal {
                            return order;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codexd_client::ResolvedSocket;

    fn ctx(source: SocketSource) -> Ctx {
        Ctx::for_tests(ResolvedSocket { path: "/run/x/codexd.sock".into(), source })
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert_eq!(compare("0.1.0", "0.2.0"), Some(Ordering::Less));
        assert_eq!(compare("0.10.0", "0.9.9"), Some(Ordering::Greater));
        assert_eq!(compare("1.2.3", "1.2.3"), Some(Ordering::Equal));
        assert_eq!(compare("1.2.3+build.5", "1.2.3"), Some(Ordering::Equal));
        assert_eq!(compare("v2.0.0", "1.99.99"), Some(Ordering::Greater));
        assert_eq!(compare("0.1.9", "0.1.10"), Some(Ordering::Less));
    }

    #[test]
    fn a_pre_release_is_older_than_its_release() {
        assert_eq!(compare("1.0.0-rc.1", "1.0.0"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-alpha", "1.0.0-alpha.1"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-alpha.2", "1.0.0-alpha.10"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-2", "1.0.0-beta"), Some(Ordering::Less));
        assert_eq!(compare("1.0.0-rc.1", "0.9.0"), Some(Ordering::Greater));
    }

    #[test]
    fn what_does_not_parse_is_not_compared() {
        for bad in ["", "1", "1.2", "1.2.3.4", "x.y.z", "1.2.z", "1..3"] {
            assert_eq!(compare(bad, "1.2.3"), None, "{bad}");
        }
    }

    #[test]
    fn only_an_older_daemon_is_named_with_the_restart_command() {
        let default = ctx(SocketSource::Default);
        assert_eq!(
            older_daemon(&default, "0.0.1").unwrap(),
            format!("codexd 0.0.1 is older than codexctl {CLIENT_VERSION}; restart it to upgrade: codexctl restart")
        );
        assert_eq!(older_daemon(&default, CLIENT_VERSION), None);
        assert_eq!(older_daemon(&default, "999.0.0"), None);
        assert_eq!(older_daemon(&default, "garbage"), None);
        let flag = older_daemon(&ctx(SocketSource::Flag), "0.0.1").unwrap();
        assert!(flag.ends_with("codexctl --socket /run/x/codexd.sock restart"), "{flag}");
    }
}
