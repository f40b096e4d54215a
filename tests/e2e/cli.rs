//! The command lines themselves: `--help`, `--version`, the flags, and `CODEXD_LOG`.

use codexd_e2e::{TestDaemon, bin_path, clean_command, run_with_deadline};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn run(bin: &str, args: &[&str]) -> (Option<i32>, String) {
    let scratch = tempfile::Builder::new().prefix("cxd").tempdir_in("/tmp").unwrap();
    let mut cmd = clean_command(bin_path(bin), scratch.path());
    cmd.args(args);
    let out = run_with_deadline(cmd, DEADLINE);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn codexd_help_lists_its_flags_and_variables() {
    let (code, help) = run("codexd", &["--help"]);
    assert_eq!(code, Some(0));
    for name in
        ["--socket", "--codex-home", "--issuer", "CODEX_HOME", "CODEXD_SOCKET", "CODEXD_LOG", "CODEXD_WRITE_TIMEOUT_MS"]
    {
        assert!(help.contains(name), "--help does not mention {name}:\n{help}");
    }
}

#[test]
fn both_binaries_report_the_package_version() {
    for bin in ["codexd", "codexctl"] {
        let (code, version) = run(bin, &["--version"]);
        assert_eq!(code, Some(0), "{bin}");
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{bin}: {version}");
    }
}

#[test]
fn codexctl_help_lists_its_commands_and_exit_codes() {
    let (code, help) = run("codexctl", &["--help"]);
    assert_eq!(code, Some(0));
    for word in ["token", "status", "logout", "watch", "stop", "CODEXD_SOCKET", "3"] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
}

#[test]
fn the_issuer_flag_is_accepted() {
    let daemon = TestDaemon::builder().arg("--issuer").arg("http://127.0.0.1:9").start();
    assert_eq!(daemon.status()["pid"], daemon.pid());
}

#[test]
fn codexd_log_chooses_what_is_logged() {
    let quiet = TestDaemon::builder().log("warn").start();
    let loud = TestDaemon::builder().log("debug").start();
    for daemon in [&quiet, &loud] {
        let mut conn = daemon.raw_conn();
        conn.auth_status(false);
        conn.daemon_status();
    }
    let quiet_log = quiet.stderr();
    assert!(
        !quiet_log.lines().any(|l| l.contains(" DEBUG ") || l.contains(" INFO ")),
        "CODEXD_LOG=warn still logs debug/info lines:\n{quiet_log}"
    );
    let loud_log = loud.stderr();
    assert!(loud_log.contains("DEBUG"), "CODEXD_LOG=debug logs no debug lines:\n{loud_log}");
}
