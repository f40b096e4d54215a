//! `codexctl store migrate` against a scripted fake daemon on a Unix socket: what it sends, what it prints, and its
//! exit codes. (The real daemon with real stores is tested end to end in `tests/`.)
#![cfg(unix)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("codexctl-store-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `codexctl args` (autostart off) against a socket whose one connection gets one `store/migrate` request,
/// checked to carry `{"to": to}`, and answers `reply` (a `result` or an `error` object).
fn migrate_against(args: &[&str], to: &'static str, reply: Value) -> Output {
    let dir = TempDir::new("daemon");
    let socket = dir.0.join("codexd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let script = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let request: Value = serde_json::from_str(&line).unwrap();
        assert_eq!((&request["method"], &request["params"]), (&json!("store/migrate"), &json!({"to": to})));
        let mut answer = json!({"jsonrpc": "2.0", "id": request["id"]});
        answer.as_object_mut().unwrap().extend(reply.as_object().unwrap().clone());
        let mut writer = stream;
        writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
        let _ = reader.read_to_end(&mut Vec::new());
    });
    let out = codexctl(args, &socket);
    script.join().unwrap();
    out
}

fn codexctl(args: &[&str], socket: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codexctl"))
        .args(args)
        .env("CODEXD_SOCKET", socket)
        .env("CODEXD_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn a_move_is_told_on_stderr_with_its_warning_and_exits_0() {
    let out = migrate_against(
        &["store", "migrate", "--to", "keyring"],
        "keyring",
        json!({"result": {"from": "file", "to": "keyring", "moved": true,
            "warning": "the login is in the keyring, but auth.json could not be removed: permission denied"}}),
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
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
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "codexctl: nothing was stored; the store is now file\n");
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
        assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "");
        assert_eq!(text(&out.stderr), format!("codexctl: {message}\n"));
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
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("restart it to upgrade: codexctl restart"), "{}", text(&out.stderr));
}

#[test]
fn another_target_is_a_usage_error_and_no_daemon_is_unreachable() {
    let dir = TempDir::new("none");
    let socket = dir.0.join("codexd.sock");
    for bad in [&["store", "migrate", "--to", "auto"][..], &["store", "migrate"], &["store"]] {
        let out = codexctl(bad, &socket);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
    let out = codexctl(&["store", "migrate", "--to", "keyring"], &socket);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("codexctl: cannot reach codexd at ") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn migrate_help_explains_the_steps_and_the_exit_codes() {
    let dir = TempDir::new("help");
    let out = codexctl(&["store", "migrate", "--help"], &dir.0.join("codexd.sock"));
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
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
