//! The `codexctl` binary's command line surface: help, usage errors, and an unreachable daemon. (Building this
//! test also builds the binary that the end-to-end tests spawn.)

mod common;

use common::TempDir;
use std::path::PathBuf;
use std::process::Output;

fn codexctl(args: &[&str], socket_env: Option<&PathBuf>) -> Output {
    codexctl_with_stdin(args, socket_env, b"")
}

/// Runs codexctl with `stdin` as its whole standard input, autostart off and no display ([`common::codexctl`]).
fn codexctl_with_stdin(args: &[&str], socket_env: Option<&PathBuf>, stdin: &[u8]) -> Output {
    common::run(common::codexctl(args, socket_env.map(PathBuf::as_path)), stdin)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn help_lists_every_command_the_socket_variable_and_the_exit_codes() {
    let out = codexctl(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "token",
        "status",
        "login",
        "logout",
        "watch",
        "refresh",
        "stop",
        "where",
        "restart",
        "--socket",
        "--no-autostart",
        "CODEXD_SOCKET",
        "CODEXD_NO_AUTOSTART",
        "Autostart:",
        "codexd.log",
    ] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
    for code in
        ["0    success", "1    not logged in", "2    usage error", "3    daemon unreachable", "130  interrupted"]
    {
        assert!(help.contains(code), "--help does not list exit code `{code}`:\n{help}");
    }
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = codexctl(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn status_json_is_a_flag_of_status_only() {
    let out = codexctl(&["token", "--json"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn token_without_a_daemon_exits_3_with_one_line_naming_the_socket_and_its_source() {
    let dir = TempDir::new("unreachable");
    let socket = dir.0.join("codexd.sock");
    let out = codexctl(&["token"], Some(&socket));
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("codexctl: cannot reach codexd at "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&*socket.to_string_lossy()), "{stderr}");
    assert!(stderr.contains("CODEXD_SOCKET"), "names where the path came from: {stderr}");
}

#[test]
fn the_socket_flag_wins_over_the_environment() {
    let dir = TempDir::new("flag");
    let from_flag = dir.0.join("flag.sock");
    let out = codexctl(&["--socket", from_flag.to_str().unwrap(), "status"], Some(&dir.0.join("env.sock")));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("flag.sock") && !stderr.contains("env.sock"), "{stderr}");
}

#[test]
fn login_help_documents_every_flag_the_browser_rules_and_the_exit_codes() {
    let out = codexctl(&["login", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--device-auth",
        "--with-api-key",
        "--no-browser",
        "--timeout",
        "[default: 900]",
        "BROWSER",
        "xdg-open",
        "DISPLAY",
        "Ctrl-C",
    ] {
        assert!(help.contains(word), "login --help does not mention {word}:\n{help}");
    }
    for code in
        ["0    logged in", "1    the login failed", "2    usage error", "3    daemon unreachable", "130  interrupted"]
    {
        assert!(help.contains(code), "login --help does not list exit code `{code}`:\n{help}");
    }
}

#[test]
fn refresh_and_status_help_list_their_exit_codes() {
    for (command, words) in [
        ("refresh", &["refresh_token_reused", "0  refreshed", "1  not logged in", "3  daemon unreachable"][..]),
        ("status", &["--json", "refreshFailed", "next refresh", "1  not logged in", "3  daemon unreachable"][..]),
        (
            "where",
            &["--json", "CODEXD_SOCKET", "XDG_RUNTIME_DIR", "TMPDIR", "stale socket", "codexd.socket", "0  always"][..],
        ),
        ("restart", &["systemctl --user restart codexd.service", "CODEXD_NO_AUTOSTART", "0  a new daemon serves"][..]),
    ] {
        let out = codexctl(&[command, "--help"], None);
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8(out.stdout).unwrap();
        for word in words {
            assert!(help.contains(word), "{command} --help does not mention {word}:\n{help}");
        }
    }
}

#[test]
fn login_and_refresh_without_a_daemon_exit_3_with_one_line() {
    let dir = TempDir::new("login");
    let socket = dir.0.join("codexd.sock");
    for args in [&["login"][..], &["login", "--device-auth"], &["login", "--no-browser"], &["refresh"]] {
        let out = codexctl(args, Some(&socket));
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(stderr.starts_with("codexctl: cannot reach codexd at "), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    }
}

#[test]
fn an_api_key_login_without_a_daemon_exits_3_and_never_shows_the_key() {
    let dir = TempDir::new("apikey");
    let out =
        codexctl_with_stdin(&["login", "--with-api-key"], Some(&dir.0.join("codexd.sock")), b"sk-test-SECRET-1\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(!stderr_of(&out).contains("SECRET"), "{}", stderr_of(&out));
}

#[test]
fn an_empty_api_key_on_stdin_is_a_usage_error_before_any_connect() {
    let dir = TempDir::new("nokey");
    for stdin in [&b""[..], b" \n\t\n"] {
        let out = codexctl_with_stdin(&["login", "--with-api-key"], Some(&dir.0.join("codexd.sock")), stdin);
        assert_eq!(out.status.code(), Some(2), "{stdin:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(
            stderr_of(&out),
            "codexctl: no API key on stdin; pipe it in, e.g. printenv OPENAI_API_KEY | codexctl login --with-api-key\n"
        );
    }
}

#[test]
fn contradicting_or_malformed_login_flags_are_usage_errors() {
    for args in
        [&["login", "--device-auth", "--with-api-key"][..], &["login", "--timeout", "0"], &["login", "--timeout", "x"]]
    {
        let out = codexctl(args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn without_autostart_a_command_that_needs_the_daemon_says_autostart_is_off() {
    let dir = TempDir::new("noauto");
    let socket = dir.0.join("codexd.sock");
    let out = codexctl(&["token"], Some(&socket));
    assert_eq!(out.status.code(), Some(3));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("autostart is off (CODEXD_NO_AUTOSTART)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = codexctl(&["--no-autostart", "refresh"], Some(&socket));
    assert!(stderr_of(&out).contains("autostart is off (--no-autostart)"), "{}", stderr_of(&out));
    assert!(!socket.exists() && !dir.0.join("codexd.log").exists(), "nothing was started");
}

#[test]
fn where_names_the_flag_or_the_variable_and_never_starts_a_daemon() {
    let dir = TempDir::new("where");
    let from_env = dir.0.join("env.sock");
    let out = codexctl(&["where"], Some(&from_env));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("socket:     {}\n", from_env.display())), "{text}");
    assert!(text.contains("chosen by:  the CODEXD_SOCKET environment variable"), "{text}");
    assert!(text.contains("state:      not running"), "{text}");
    let from_flag = dir.0.join("flag.sock");
    let out = codexctl(&["--socket", from_flag.to_str().unwrap(), "where", "--json"], Some(&from_env));
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["socket"], from_flag.to_str().unwrap());
    assert_eq!(json["source"], "flag");
    assert_eq!(json["state"], "notRunning");
    assert_eq!(json["autostart"], false);
    assert!(!from_env.exists() && !from_flag.exists());
}
