//! `codexctl status`: who is logged in and how, and the daemon's own state.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, handshake};
use codexd_client::proto::methods::{AuthMode, AuthProblem, DaemonStatusResult, GetAuthStatusResult};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Flags of `codexctl status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print one JSON object `{"auth": <getAuthStatus result>, "daemon": <daemon/status result>}`.
    #[arg(long, help = r#"Print one JSON object {"auth": <getAuthStatus result>, "daemon": <daemon/status result>}"#)]
    json: bool,
}

/// Prints the summary; exit 1 when not logged in, as `codex login status` does. Never starts a daemon, and
/// does not subscribe (the subscriber count it shows is the other clients'): the daemon's version comes from
/// `daemon/status`, and an older daemon is named on stderr and in the summary.
pub(crate) fn run(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<u8> {
    let mut client = ctx.connect()?;
    let mut auth = client.get_auth_status(false)?;
    // Never print a secret here, whatever the daemon sent.
    auth.auth_token = None;
    let daemon = client.daemon_status()?;
    let older = handshake::older_daemon(ctx, &daemon.version);
    if let Some(warning) = &older {
        eprintln!("codexctl: {warning}");
    }
    let text = if args.json {
        json_line(&auth, &daemon)?
    } else {
        let mut text = summary(&auth, &daemon);
        if let Some(warning) = &older {
            let _ = writeln!(text, "  {:<14} {warning}", "upgrade:");
        }
        text
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(if auth.auth_method.is_some() { EXIT_OK } else { EXIT_REFUSED })
}

/// `{"auth": .., "daemon": ..}` and a newline; a refresh failure shows as `authError` (with `issuerCode`) and the
/// schedule as `daemon.nextRefresh`.
fn json_line(auth: &GetAuthStatusResult, daemon: &DaemonStatusResult) -> serde_json::Result<String> {
    let mut line = serde_json::to_string(&serde_json::json!({ "auth": auth, "daemon": daemon }))?;
    line.push('\n');
    Ok(line)
}

/// The human summary, one fact a line.
fn summary(auth: &GetAuthStatusResult, daemon: &DaemonStatusResult) -> String {
    let mut s = String::new();
    let how = match auth.auth_method {
        Some(AuthMode::Chatgpt) => "Logged in using ChatGPT",
        Some(AuthMode::ApiKey) => "Logged in using an API key",
        None => "Not logged in",
    };
    let _ = writeln!(s, "{how}");
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(s, "  {:<14} {value}", format!("{name}:"));
    };
    if let Some(account) = &auth.account_id {
        field("account", account);
    }
    if let Some(plan) = &auth.plan_type {
        field("plan", plan);
    }
    if let Some(expires) = &auth.expires_at {
        field("token expires", expires);
    }
    if let Some(problem) = auth.auth_error.as_ref().or(daemon.auth_error.as_ref()) {
        field("problem", &problem_line(problem));
    }
    let _ = writeln!(s, "codexd {} (pid {}, up {})", daemon.version, daemon.pid, uptime(daemon.uptime_seconds));
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(s, "  {:<14} {value}", format!("{name}:"));
    };
    field("store", &daemon.store);
    field("codex home", &daemon.codex_home);
    field("socket", &daemon.socket);
    field("generation", &daemon.generation.to_string());
    if let Some(last) = &daemon.last_refresh {
        field("last refresh", last);
    }
    if let Some(next) = &daemon.next_refresh {
        field("next refresh", next);
    }
    s
}

/// `the refresh failed (refresh_token_reused): <message>` (the issuer's message says to sign in again), or
/// `<message> (<reason>)`.
fn problem_line(problem: &AuthProblem) -> String {
    let message = problem.message.replace(['\n', '\r'], " ");
    let code = problem.issuer_code.as_deref().filter(|c| !c.is_empty());
    match (problem.reason.as_str(), code) {
        ("refreshFailed", Some(code)) => format!("the refresh failed ({code}): {message}"),
        ("refreshFailed", None) => format!("the refresh failed: {message}"),
        (reason, Some(code)) => format!("{message} ({reason}, issuer code {code})"),
        (reason, None) => format!("{message} ({reason})"),
    }
}

/// `45s`, `12m 3s`, `3h 12m`, `2d 4h`.
fn uptime(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_shows_the_two_largest_units() {
        assert_eq!(uptime(45), "45s");
        assert_eq!(uptime(12 * 60 + 3), "12m 3s");
        assert_eq!(uptime(3 * 3600 + 12 * 60 + 59), "3h 12m");
        assert_eq!(uptime(2 * 86_400 + 4 * 3600 + 5), "2d 4h");
    }

    #[test]
    fn summary_names_the_login_and_the_daemon_without_secrets() {
        let auth: GetAuthStatusResult = serde_json::from_value(serde_json::json!({
            "authMethod": "chatgpt", "authToken": null, "requiresOpenaiAuth": true, "accountId": "acct-1",
            "planType": "plus", "expiresAt": "2026-11-29T06:00:00Z", "generation": 3
        }))
        .unwrap();
        let daemon: DaemonStatusResult = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "pid": 42, "uptimeSeconds": 75, "store": "file", "codexHome": "/h/.codex",
            "socket": "/run/s.sock", "connections": 1, "subscribers": 0, "generation": 3, "authMethod": "chatgpt",
            "lastRefresh": null, "nextRefresh": null, "authError": null
        }))
        .unwrap();
        let text = summary(&auth, &daemon);
        assert!(text.starts_with("Logged in using ChatGPT\n"), "{text}");
        for part in ["acct-1", "plus", "2026-11-29T06:00:00Z", "codexd 0.1.0 (pid 42, up 1m 15s)", "/h/.codex", "file"]
        {
            assert!(text.contains(part), "{part} missing in {text}");
        }
    }

    fn refused_refresh() -> (GetAuthStatusResult, DaemonStatusResult) {
        let problem = serde_json::json!({"reason": "refreshFailed", "issuerCode": "refresh_token_reused",
            "message": "Your refresh token has already been used to generate a new access token."});
        let auth: GetAuthStatusResult = serde_json::from_value(serde_json::json!({
            "authMethod": null, "authToken": null, "requiresOpenaiAuth": true, "accountId": null,
            "planType": null, "expiresAt": null, "generation": 4, "authError": problem
        }))
        .unwrap();
        let daemon: DaemonStatusResult = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "pid": 42, "uptimeSeconds": 5, "store": "file", "codexHome": "/h/.codex",
            "socket": "/run/s.sock", "connections": 1, "subscribers": 0, "generation": 4, "authMethod": null,
            "lastRefresh": "2026-11-28T06:00:00Z", "nextRefresh": "2026-11-29T05:50:00Z", "authError": problem
        }))
        .unwrap();
        (auth, daemon)
    }

    #[test]
    fn summary_shows_a_refused_refresh_with_its_issuer_code_and_the_next_refresh() {
        let (auth, daemon) = refused_refresh();
        let text = summary(&auth, &daemon);
        assert!(text.starts_with("Not logged in\n"), "{text}");
        assert!(
            text.contains("problem:       the refresh failed (refresh_token_reused): Your refresh token has already"),
            "{text}"
        );
        assert!(text.contains("next refresh:  2026-11-29T05:50:00Z"), "{text}");
    }

    #[test]
    fn json_has_the_issuer_code_and_the_next_refresh() {
        let (auth, daemon) = refused_refresh();
        let line = json_line(&auth, &daemon).unwrap();
        assert!(line.ends_with('\n') && line.lines().count() == 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["auth"]["authError"]["issuerCode"], "refresh_token_reused");
        assert_eq!(value["auth"]["authError"]["reason"], "refreshFailed");
        assert_eq!(value["daemon"]["nextRefresh"], "2026-11-29T05:50:00Z");
    }

    #[test]
    fn other_problems_keep_their_reason() {
        let problem = AuthProblem::new("storeUnreadable", "auth.json is not JSON");
        assert_eq!(problem_line(&problem), "auth.json is not JSON (storeUnreadable)");
    }
}
