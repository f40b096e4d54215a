//! `codexctl store migrate --to keyring|file`: moves the login to the other credential store without logging out.
//! codexd does the work (`store/migrate`); this file picks the target and says how it went.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, Failure, handshake};
use clap::{Subcommand, ValueEnum};
use codexd_client::ClientError;
use codexd_client::proto::ErrorCode;
use codexd_client::proto::methods::StoreMigrateResult;
use std::io::{self, Write};

/// Long help of `codexctl store migrate`.
pub(crate) const MIGRATE_HELP: &str = "\
Moves the login to the other credential store without logging out: codexd copies it to the new store, reads
the copy back and compares it, sets cli_auth_credentials_store in $CODEX_HOME/config.toml (the setting the
Codex CLI reads too), then removes the old copy. If any step fails, nothing is lost: the old copy stays and
config.toml is unchanged. With nothing stored, only the setting changes; when the login is already there,
nothing moves. The keyring entry is the Codex CLI's (service \"Codex Auth\").

A keyring can be slow to answer (codexd waits up to its timeout for each step); codexctl waits up to 60 s.
Messages go to stderr; nothing is written to stdout. Starts codexd when it is not running (see codexctl --help).

Exit codes:
  0  moved, or nothing to move (nothing stored, or already there); a warning may follow, e.g. when the old
     copy could not be removed
  1  refused by codexd: the store could not be read or written (storeError; nothing was lost), or managed
     policy forbids it (policyRefused)
  2  usage error (--to takes keyring or file)
  3  daemon unreachable";

/// Arguments of `codexctl store`.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Move the login to the keyring or to auth.json (without logging out) and configure that store
    #[command(after_help = MIGRATE_HELP)]
    Migrate(MigrateArgs),
}

/// Flags of `codexctl store migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// The store to move the login to
    #[arg(long, value_enum, value_name = "STORE")]
    to: Target,
}

/// The stores a login can be moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The system keyring (the Codex CLI's entry)
    Keyring,
    /// $CODEX_HOME/auth.json
    File,
}

impl Target {
    /// The name on the wire and in `config.toml`.
    fn as_str(self) -> &'static str {
        match self {
            Target::Keyring => "keyring",
            Target::File => "file",
        }
    }
}

/// Runs `store <action>`.
pub(crate) fn run(ctx: &Ctx, args: &StoreArgs) -> anyhow::Result<u8> {
    match &args.action {
        Action::Migrate(flags) => migrate(ctx, flags.to),
    }
}

/// Asks codexd to move the login (waiting up to `CALL_TIMEOUT`, as the keyring may be slow) and reports the move on
/// stderr; errors (storeError, policyRefused) take the usual way through `main`.
fn migrate(ctx: &Ctx, to: Target) -> anyhow::Result<u8> {
    let mut client = ctx.connect_or_start()?;
    let result = match client.store_migrate(to.as_str()) {
        Err(ClientError::Daemon(e)) if e.kind() == ErrorCode::MethodNotFound => {
            return Err(Failure::new(
                EXIT_REFUSED,
                format!(
                    "this codexd does not know store/migrate (it is older than codexctl); restart it to upgrade: {}",
                    handshake::restart_command(ctx)
                ),
            )
            .into());
        }
        other => other?,
    };
    let mut err = io::stderr().lock();
    for line in report(&result) {
        writeln!(err, "codexctl: {line}")?;
    }
    Ok(EXIT_OK)
}

/// The lines to print (without the `codexctl: ` prefix): what happened, then the warning if there is one.
fn report(result: &StoreMigrateResult) -> Vec<String> {
    let to = result.to.as_str();
    let done = match (result.moved, result.from.as_deref()) {
        (true, Some(from)) => format!("moved the login from {from} to {to}"),
        (true, None) => format!("moved the login to {to}"),
        (false, None) => format!("nothing was stored; the store is now {to}"),
        (false, Some(from)) if from == to => format!("the login is already in {to}"),
        (false, Some(from)) => format!("the login stays in {from}; the store is now {to}"),
    };
    let mut lines = vec![done];
    if let Some(warning) = result.warning.as_deref().filter(|w| !w.trim().is_empty()) {
        lines.push(format!("warning: {}", warning.replace(['\n', '\r'], " ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target of `codexctl ARGS`, parsed by codexctl's own command line.
    fn parse(args: &[&str]) -> Result<Target, clap::Error> {
        match crate::parse(args)?.command {
            crate::Command::Store(StoreArgs { action: Action::Migrate(flags) }) => Ok(flags.to),
            other => panic!("not store migrate: {other:?}"),
        }
    }

    fn result(from: Option<&str>, to: &str, moved: bool, warning: Option<&str>) -> StoreMigrateResult {
        StoreMigrateResult {
            from: from.map(str::to_owned),
            to: to.to_owned(),
            moved,
            warning: warning.map(str::to_owned),
        }
    }

    #[test]
    fn migrate_takes_keyring_or_file_and_nothing_else() {
        assert_eq!(parse(&["store", "migrate", "--to", "keyring"]).unwrap(), Target::Keyring);
        assert_eq!(parse(&["store", "migrate", "--to=file"]).unwrap(), Target::File);
        for bad in [
            &["store", "migrate", "--to", "auto"][..],
            &["store", "migrate", "--to", "ephemeral"],
            &["store", "migrate", "--to", "Keyring "],
            &["store", "migrate"],
            &["store"],
            &["store", "move"],
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_target_names_are_the_wire_and_config_names() {
        assert_eq!((Target::Keyring.as_str(), Target::File.as_str()), ("keyring", "file"));
    }

    #[test]
    fn a_move_names_both_stores() {
        assert_eq!(report(&result(Some("file"), "keyring", true, None)), ["moved the login from file to keyring"]);
        assert_eq!(report(&result(Some("keyring"), "file", true, None)), ["moved the login from keyring to file"]);
        assert_eq!(report(&result(None, "file", true, None)), ["moved the login to file"]);
    }

    #[test]
    fn nothing_to_move_says_what_the_store_is_now() {
        assert_eq!(report(&result(None, "keyring", false, None)), ["nothing was stored; the store is now keyring"]);
        assert_eq!(report(&result(Some("keyring"), "keyring", false, None)), ["the login is already in keyring"]);
        assert_eq!(
            report(&result(Some("memory"), "file", false, None)),
            ["the login stays in memory; the store is now file"]
        );
    }

    #[test]
    fn a_warning_follows_on_a_line_of_its_own() {
        let lines = report(&result(
            Some("file"),
            "keyring",
            true,
            Some("auth.json could not be removed:\npermission denied; remove it by hand"),
        ));
        assert_eq!(
            lines,
            [
                "moved the login from file to keyring",
                "warning: auth.json could not be removed: permission denied; remove it by hand"
            ]
        );
        assert_eq!(report(&result(None, "file", false, Some(" "))).len(), 1, "an empty warning is no warning");
    }
}
