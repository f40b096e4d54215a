//! The `codexd` command line: help text and start-up errors. (Having an integration test here also makes
//! `cargo test --workspace` build the `codexd` binary that the end-to-end suite in `tests/` starts.)

use std::process::Command;

fn codexd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codexd"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn help_lists_every_flag_and_variable() {
    let out = codexd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "--socket",
        "--codex-home",
        "--issuer",
        "CODEX_HOME",
        "CODEXD_SOCKET",
        "CODEXD_ISSUER",
        "CODEXD_LOG",
        "CODEXD_WRITE_TIMEOUT_MS",
        "CODEXD_SOCKET_CHECK_MS",
    ] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
}

#[test]
fn missing_codex_home_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("missing");
    let socket = tmp.path().join("s/codexd.sock");
    let out = codexd().arg("--codex-home").arg(&home).arg("--socket").arg(&socket).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!home.exists() && !socket.exists());
}

#[test]
fn an_unusable_socket_check_interval_is_refused_naming_the_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("s/codexd.sock");
    for value in ["soon", "-1", "86400001"] {
        let out = codexd()
            .env("CODEXD_SOCKET_CHECK_MS", value)
            .arg("--codex-home")
            .arg(tmp.path())
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("CODEXD_SOCKET_CHECK_MS"), "{value}: {stderr}");
        assert!(!socket.exists(), "{value}: a socket was created");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = codexd().arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
