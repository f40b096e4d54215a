//! `codexctl token`: the bearer token on stdout, for scripts. One connect, one write, one read.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, Failure};
use std::io::{self, Write};

/// Prints the token and a newline; exit 1 when there is none.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    let status = ctx.connect_or_start()?.get_auth_status(true)?;
    let Some(token) = status.auth_token else {
        let problem = status.auth_error.map(|e| e.message);
        return Err(Failure::new(EXIT_REFUSED, not_logged_in(problem.as_deref())).into());
    };
    let mut out = io::stdout().lock();
    out.write_all(token.expose().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// The one-line message for "no credentials", with the daemon's reason when it gave one.
pub(crate) fn not_logged_in(problem: Option<&str>) -> String {
    match problem.map(str::trim).filter(|p| !p.is_empty()) {
        // The daemon's own "not logged in: ..." already says what to do.
        Some(problem) if problem.to_ascii_lowercase().starts_with("not logged in") => problem.to_owned(),
        Some(problem) => format!("not logged in: {problem}; sign in with `codexctl login` (or `codex login`)"),
        None => "not logged in; sign in with `codexctl login` (or `codex login`)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_not_logged_in_message_adds_the_hint_once() {
        assert_eq!(not_logged_in(None), "not logged in; sign in with `codexctl login` (or `codex login`)");
        assert_eq!(
            not_logged_in(Some("auth.json is empty")),
            "not logged in: auth.json is empty; sign in with `codexctl login` (or `codex login`)"
        );
        let daemon = "not logged in: sign in with `codexctl login` first";
        assert_eq!(not_logged_in(Some(daemon)), daemon);
    }
}
