//! `codexctl store migrate` against a scripted fake daemon on a Unix socket: what it sends, what it prints, and its
//! exit codes. (The real daemon with real stores is tested end to end in `tests/`.)
#![cfg(unix)]

mod common;

use common::fake::FakeDaemon;
use common::{Finished, TempDir};
use serde_json::{Value, json};
use std::path::Path;

/// Runs `codexctl args` (autostart off) against a socket whose one connection gets one `store/migrate` request,
/// checked to carry `{"to": to}`, and answers `reply` (a `result` or an `error` object).
fn migrate_against(args: &[&str], to: &'static str, reply: Value) -> Finished {
    let daemon = FakeDaemon::start(move |peer| {
        let request = peer.expect("store/migrate");
        assert_eq!(request["params"], json!({"to": to}), "{request}");
        peer.answer(&request, &reply);
        peer.until_closed();
    });
    let cmd = daemon.codexctl(args);
    daemon.run(cmd, b"")
}

fn codexctl(args: &[&str], socket: &Path) -> Finished {
    common::run(common::codexctl(args, Some(socket)), b"").into()
}

#[test]
fn a_move_is_told_on_stderr_with_its_warning_and_exits_0() {
    let out = migrate_against(
        &["store", "migrate", "--to", "keyring"],
        "keyring",
        json!({"result": {"from": "file", "to": "keyring", "moved": true,
            "warning": "the login is in the keyring, but auth.json could not be removed: permission denied"}}),
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "codexctl: moved the login from file to keyring\n\
         codexctl: warning: the login is in the keyring, but auth.json could not be removed: permission denied\n"
    );
}

#[test]
fn nothing_stored_still_sets_the_store_and_exits_0() {
    let out = migrate_against(
        &["store", "migrate", "--to=file"],
        "file",
        json!({"result": {"from": null, "to": "file", "moved": false}}),
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.stderr, "codexctl: nothing was stored; the store is now file\n");
}

#[test]
fn a_store_error_or_a_policy_refusal_exits_1_with_the_daemons_message() {
    for (code, reason, message) in [
        (-32007, "storeError", "the keyring is locked; the login stays in auth.json and config.toml is unchanged"),
        (-32002, "policyRefused", "the managed configuration does not allow changing the credential store"),
    ] {
        let out = migrate_against(
            &["store", "migrate", "--to", "keyring"],
            "keyring",
            json!({"error": {"code": code, "message": message, "data": {"reason": reason}}}),
        );
        assert_eq!(out.status.code(), Some(1), "stderr:\n{}", out.stderr);
        assert_eq!(out.stdout, "");
        assert_eq!(out.stderr, format!("codexctl: {message}\n"));
    }
}

#[test]
fn an_older_daemon_without_the_method_is_named_with_the_restart_command() {
    let out = migrate_against(
        &["store", "migrate", "--to", "keyring"],
        "keyring",
        json!({"error": {"code": -32601, "message": "method not found: store/migrate",
            "data": {"reason": "methodNotFound"}}}),
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("restart it to upgrade: codexctl restart"), "{}", out.stderr);
}

#[test]
fn another_target_is_a_usage_error_and_no_daemon_is_unreachable() {
    let dir = TempDir::new("none");
    let socket = dir.0.join("codexd.sock");
    for bad in [&["store", "migrate", "--to", "auto"][..], &["store", "migrate"], &["store"]] {
        let out = codexctl(bad, &socket);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", out.stderr);
    }
    let out = codexctl(&["store", "migrate", "--to", "keyring"], &socket);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{}", out.stderr);
    let stderr = &out.stderr;
    assert!(stderr.starts_with("codexctl: cannot reach codexd at ") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn migrate_help_explains_the_steps_and_the_exit_codes() {
    let dir = TempDir::new("help");
    let out = codexctl(&["store", "migrate", "--help"], &dir.0.join("codexd.sock"));
    assert_eq!(out.status.code(), Some(0));
    let help = &out.stdout;
    for part in [
        "--to <STORE>",
        "keyring",
        "file",
        "the copy back and compares it",
        "cli_auth_credentials_store",
        "nothing is lost",
        "2  usage error",
        "3  daemon unreachable",
    ] {
        assert!(help.contains(part), "`store migrate --help` lacks {part:?}:\n{help}");
    }
}
