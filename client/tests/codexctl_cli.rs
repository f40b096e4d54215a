//! The `codexctl` binary's command line surface: help, usage errors, and an unreachable daemon. (Building this
//! test also builds the binary that the end-to-end tests spawn.)

use std::path::PathBuf;
use std::process::{Command, Output};

fn codexctl(args: &[&str], socket_env: Option<&PathBuf>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codexctl"));
    cmd.args(args).env_remove("CODEXD_SOCKET");
    if let Some(socket) = socket_env {
        cmd.env("CODEXD_SOCKET", socket);
    }
    cmd.output().expect("codexctl runs")
}

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("codexctl-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn help_lists_every_command_the_socket_variable_and_the_exit_codes() {
    let out = codexctl(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for word in ["token", "status", "logout", "watch", "stop", "--socket", "CODEXD_SOCKET"] {
        assert!(help.contains(word), "--help does not mention {word}:\n{help}");
    }
    for code in ["0  success", "1  not logged in", "2  usage error", "3  daemon unreachable"] {
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
