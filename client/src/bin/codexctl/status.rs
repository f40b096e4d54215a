//! `codexctl status`: who is logged in and how, and the daemon's own state.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, handshake, refresh};
use codexd_client::proto::methods::{
    AuthMode, AuthProblem, DaemonStatusResult, GetAuthStatusResult, LoginPolicyStatus,
};
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

/// The optional fields of `daemon/status` that `--json` always shows, `null` when the daemon left them out (nothing
/// stored, nothing wrong, no policy, or a daemon older than these fields), so that scripts find every key.
const DAEMON_OPTIONAL_FIELDS: [&str; 4] = ["storeLocation", "storeProblem", "configProblem", "loginPolicy"];

/// `{"auth": .., "daemon": ..}` and a newline; a refresh failure shows as `authError` (with `issuerCode`), the
/// schedule as `daemon.nextRefresh`, the store as `daemon.store` and `daemon.storeLocation`, its problems as
/// `daemon.storeProblem` and `daemon.configProblem`, the login restrictions as `daemon.loginPolicy`.
fn json_line(auth: &GetAuthStatusResult, daemon: &DaemonStatusResult) -> serde_json::Result<String> {
    let mut daemon = serde_json::to_value(daemon)?;
    if let Some(fields) = daemon.as_object_mut() {
        for key in DAEMON_OPTIONAL_FIELDS {
            fields.entry(key).or_insert(serde_json::Value::Null);
        }
    }
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
    field("store", &store_line(&daemon.store, daemon.store_location.as_deref()));
    if let Some(problem) = &daemon.store_problem {
        field("warning", &store_problem_line(problem));
    }
    if let Some(problem) = &daemon.config_problem {
        field("warning", &config_problem_line(problem));
    }
    if let Some(policy) = daemon.login_policy.as_ref().and_then(policy_line) {
        field("policy", &policy);
    }
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

/// `the refresh failed (refresh_token_reused): <message>` (the issuer's message says to sign in again), as
/// `codexctl refresh` says it, or `<message> (<reason>)`; on one line.
fn problem_line(problem: &AuthProblem) -> String {
    refresh::failure_message(problem).unwrap_or_else(|| {
        let message = problem.message.replace(['\n', '\r'], " ");
        let reason = &problem.reason;
        match problem.issuer_code.as_deref().filter(|c| !c.is_empty()) {
            Some(code) => format!("{message} ({reason}, issuer code {code})"),
            None => format!("{message} ({reason})"),
        }
    })
}

/// The configured store, and where the login is when that says more: `keyring`, `auto (in auth.json)`,
/// `ephemeral (memory only: stopping codexd logs out)`.
fn store_line(mode: &str, location: Option<&str>) -> String {
    let place = |location: &str| match location {
        "file" => "auth.json".to_owned(),
        "keyring" => "the keyring".to_owned(),
        other => other.to_owned(),
    };
    match (mode, location) {
        ("ephemeral", None | Some("memory")) => "ephemeral (memory only: stopping codexd logs out)".to_owned(),
        (mode, Some(location)) if location != mode => format!("{mode} (in {})", place(location)),
        (mode, _) => mode.to_owned(),
    }
}

/// The store's problem in its own words (e.g. `plaintextFallback`: the keyring is unavailable and the login is in
/// plaintext auth.json), on one line; its reason when it has no words.
fn store_problem_line(problem: &AuthProblem) -> String {
    let message = one_line(&problem.message);
    if message.is_empty() { problem.reason.clone() } else { message }
}

/// `config: <message>; codexd keeps the last good configuration`.
fn config_problem_line(problem: &AuthProblem) -> String {
    let message = one_line(&problem.message);
    let message = message.trim_end_matches('.');
    let message = if message.is_empty() { problem.reason.as_str() } else { message };
    if message.contains("last good configuration") {
        format!("config: {message}")
    } else {
        format!("config: {message}; codexd keeps the last good configuration")
    }
}

/// `login with ChatGPT only; ChatGPT workspace ws-1 only`; `None` when nothing is restricted.
fn policy_line(policy: &LoginPolicyStatus) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(methods) = &policy.allowed_methods {
        let name = |mode: &AuthMode| match mode {
            AuthMode::Chatgpt => "ChatGPT",
            AuthMode::ApiKey => "an API key",
        };
        parts.push(match methods.as_slice() {
            [] => "no login method allowed".to_owned(),
            [one] => format!("login with {} only", name(one)),
            many => format!("login with {}", many.iter().map(name).collect::<Vec<_>>().join(" or ")),
        });
    }
    if let Some(workspaces) = &policy.allowed_workspaces {
        parts.push(match workspaces.as_slice() {
            [] => "no ChatGPT workspace allowed".to_owned(),
            [one] => format!("ChatGPT workspace {one} only"),
            many => format!("ChatGPT workspaces {} only", many.join(", ")),
        });
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `text` on one line, trimmed.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").trim().to_owned()
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
        let daemon = daemon_with(serde_json::json!({
            "authMethod": null, "lastRefresh": "2026-11-28T06:00:00Z", "nextRefresh": "2026-11-29T05:50:00Z",
            "authError": problem
        }));
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

    /// A logged-in daemon status with `changes` applied.
    fn daemon_with(changes: serde_json::Value) -> DaemonStatusResult {
        let mut base = serde_json::json!({
            "version": "0.1.0", "pid": 42, "uptimeSeconds": 5, "store": "file", "codexHome": "/h/.codex",
            "socket": "/run/s.sock", "connections": 1, "subscribers": 0, "generation": 4, "authMethod": "chatgpt",
            "lastRefresh": null, "nextRefresh": null, "authError": null
        });
        let serde_json::Value::Object(changes) = changes else { panic!("changes must be an object") };
        base.as_object_mut().unwrap().extend(changes);
        serde_json::from_value(base).unwrap()
    }

    fn logged_in() -> GetAuthStatusResult {
        serde_json::from_value(serde_json::json!({
            "authMethod": "chatgpt", "authToken": null, "requiresOpenaiAuth": true, "accountId": "acct-1",
            "planType": "plus", "expiresAt": "2026-11-29T06:00:00Z", "generation": 4
        }))
        .unwrap()
    }

    #[test]
    fn the_store_line_names_where_the_login_is_when_that_says_more() {
        assert_eq!(store_line("keyring", Some("keyring")), "keyring");
        assert_eq!(store_line("file", Some("file")), "file");
        assert_eq!(store_line("file", None), "file");
        assert_eq!(store_line("auto", Some("file")), "auto (in auth.json)");
        assert_eq!(store_line("auto", Some("keyring")), "auto (in the keyring)");
        assert_eq!(store_line("auto", None), "auto");
        assert_eq!(store_line("file", Some("keyring")), "file (in the keyring)");
        for location in [None, Some("memory")] {
            assert_eq!(store_line("ephemeral", location), "ephemeral (memory only: stopping codexd logs out)");
        }
        assert_eq!(store_line("ephemeral", Some("file")), "ephemeral (in auth.json)");
    }

    #[test]
    fn summary_shows_the_store_its_problems_and_the_policy() {
        let daemon = daemon_with(serde_json::json!({
            "store": "auto", "storeLocation": "file",
            "storeProblem": {"reason": "plaintextFallback",
                "message": "the keyring is unavailable (no Secret Service on the session bus); the login is stored in plaintext auth.json"},
            "configProblem": {"reason": "configInvalid",
                "message": "/h/.codex/config.toml line 3: expected `=`."},
            "loginPolicy": {"allowedMethods": ["chatgpt"], "allowedWorkspaces": ["ws-1", "ws-2"]}
        }));
        let text = summary(&logged_in(), &daemon);
        let expected = "\
  store:         auto (in auth.json)
  warning:       the keyring is unavailable (no Secret Service on the session bus); the login is stored in plaintext auth.json
  warning:       config: /h/.codex/config.toml line 3: expected `=`; codexd keeps the last good configuration
  policy:        login with ChatGPT only; ChatGPT workspaces ws-1, ws-2 only
  codex home:    /h/.codex
";
        assert!(text.contains(expected), "{text}");
        assert!(text.starts_with("Logged in using ChatGPT\n"), "{text}");
    }

    #[test]
    fn summary_without_store_news_keeps_its_old_lines() {
        let text = summary(&logged_in(), &daemon_with(serde_json::json!({"storeLocation": "file"})));
        assert!(text.contains("  store:         file\n  codex home:    /h/.codex\n"), "{text}");
        assert!(!text.contains("warning:") && !text.contains("policy:"), "{text}");
        let text =
            summary(&logged_in(), &daemon_with(serde_json::json!({"store": "ephemeral", "storeLocation": "memory"})));
        assert!(text.contains("  store:         ephemeral (memory only: stopping codexd logs out)\n"), "{text}");
    }

    #[test]
    fn the_policy_line_names_what_is_allowed() {
        let policy = |methods: Option<&[AuthMode]>, workspaces: Option<&[&str]>| LoginPolicyStatus {
            allowed_methods: methods.map(<[AuthMode]>::to_vec),
            allowed_workspaces: workspaces.map(|w| w.iter().map(|s| (*s).to_owned()).collect()),
        };
        assert_eq!(policy_line(&policy(None, None)), None);
        assert_eq!(policy_line(&policy(Some(&[AuthMode::ApiKey]), None)).unwrap(), "login with an API key only");
        assert_eq!(
            policy_line(&policy(Some(&[AuthMode::Chatgpt, AuthMode::ApiKey]), None)).unwrap(),
            "login with ChatGPT or an API key"
        );
        assert_eq!(policy_line(&policy(None, Some(&["ws-1"]))).unwrap(), "ChatGPT workspace ws-1 only");
        assert_eq!(
            policy_line(&policy(Some(&[]), Some(&[]))).unwrap(),
            "no login method allowed; no ChatGPT workspace allowed"
        );
    }

    #[test]
    fn a_config_problem_says_the_last_good_configuration_stays_once() {
        let problem = AuthProblem::new(
            "configInvalid",
            "config.toml: unknown store `vault`; codexd keeps the last good configuration.",
        );
        assert_eq!(
            config_problem_line(&problem),
            "config: config.toml: unknown store `vault`; codexd keeps the last good configuration"
        );
        let problem = AuthProblem::new("configInvalid", "");
        assert_eq!(config_problem_line(&problem), "config: configInvalid; codexd keeps the last good configuration");
        assert_eq!(store_problem_line(&AuthProblem::new("keyringLocked", " ")), "keyringLocked");
    }

    #[test]
    fn json_always_has_the_store_fields() {
        let (auth, daemon) = refused_refresh();
        let value: serde_json::Value = serde_json::from_str(&json_line(&auth, &daemon).unwrap()).unwrap();
        assert_eq!(value["daemon"]["store"], "file");
        for key in DAEMON_OPTIONAL_FIELDS {
            assert_eq!(value["daemon"].get(key), Some(&serde_json::Value::Null), "{key} missing in {value}");
        }
        let daemon = daemon_with(serde_json::json!({
            "store": "keyring", "storeLocation": "keyring",
            "storeProblem": {"reason": "keyringTimeout", "message": "the keyring did not answer within 10 s"},
            "loginPolicy": {"allowedMethods": ["apikey"], "allowedWorkspaces": null}
        }));
        let value: serde_json::Value = serde_json::from_str(&json_line(&logged_in(), &daemon).unwrap()).unwrap();
        assert_eq!(value["daemon"]["storeLocation"], "keyring");
        assert_eq!(value["daemon"]["storeProblem"]["reason"], "keyringTimeout");
        assert_eq!(value["daemon"]["configProblem"], serde_json::Value::Null);
        assert_eq!(
            value["daemon"]["loginPolicy"],
            serde_json::json!({"allowedMethods": ["apikey"], "allowedWorkspaces": null})
        );
    }

    #[test]
    fn other_problems_keep_their_reason() {
        let problem = AuthProblem::new("storeUnreadable", "auth.json is not JSON");
        assert_eq!(problem_line(&problem), "auth.json is not JSON (storeUnreadable)");
    }
}
