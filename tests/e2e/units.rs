//! The service definitions and `codexctl service`: `scripts/check-units` passes on the repository and fails on a
//! broken copy; `codexctl service install | uninstall | status` write and remove the systemd user units under a
//! temporary `HOME`/`XDG_CONFIG_HOME`, with a fake `systemctl` first in `PATH` that records its arguments (or with
//! no `systemctl` at all, when the commands must be printed instead).
//!
//! The check-units tests need `systemd-analyze` (Debian's `systemd` package; CI installs it): they say why and
//! return early when it is missing.

use codexd_e2e::autostart::Sandbox;
use codexd_e2e::text;
use codexd_e2e::{Conn, Spawned, bin_path, clean_command, run_with_deadline, wait_until};
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

/// How long codexctl or check-units may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// A `systemctl` that appends its arguments to `$FAKE_SYSTEMCTL_LOG`, fails like a missing user bus when they
/// contain the word in `$FAKE_SYSTEMCTL_FAIL_ON`, and answers `is-active` with "active" and "inactive". With
/// `$FAKE_SYSTEMCTL_MAIN_PID`, `show codexd.service` says the service is active with that main pid; with
/// `$FAKE_SYSTEMCTL_SOCKET`, `enable` logs whether that socket file still exists (the one systemd would replace).
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_SYSTEMCTL_LOG"
if [ -n "$FAKE_SYSTEMCTL_FAIL_ON" ]; then
  case " $* " in *" $FAKE_SYSTEMCTL_FAIL_ON "*) echo "Failed to connect to bus: No medium found" >&2; exit 1;; esac
fi
case " $* " in *" is-active "*) printf 'active\ninactive\n';; esac
case " $* " in *" show codexd.service "*)
  if [ -n "$FAKE_SYSTEMCTL_MAIN_PID" ]; then printf 'MainPID=%s\nActiveState=active\n' "$FAKE_SYSTEMCTL_MAIN_PID"; fi;;
esac
case " $* " in *" enable "*)
  if [ -n "$FAKE_SYSTEMCTL_SOCKET" ] && [ -e "$FAKE_SYSTEMCTL_SOCKET" ]; then
    echo "(the socket is still there)" >> "$FAKE_SYSTEMCTL_LOG"
  fi;;
esac
exit 0
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `systemd-analyze` is in PATH; else says why the test is skipped.
fn systemd_analyze_or_skip(test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|dir| dir.join("systemd-analyze").is_file());
    if !found {
        eprintln!(
            "SKIPPED {test}: systemd-analyze is not installed (Debian: apt-get install --no-install-recommends systemd)"
        );
    }
    found
}

/// Runs `scripts/check-units [root]` with the built codexd for ExecStart.
fn check_units(root: Option<&Path>) -> Output {
    let scratch = tempfile::Builder::new().prefix("cxu").tempdir().unwrap();
    let mut cmd = clean_command(repo_root().join("scripts/check-units"), scratch.path());
    // The script finds the built codexd as $CARGO_TARGET_DIR/debug/codexd.
    let codexd = bin_path("codexd");
    let target = codexd.parent().and_then(Path::parent).expect("codexd sits in <target>/<profile>/");
    cmd.env("CARGO_TARGET_DIR", target);
    if let Some(root) = root {
        cmd.arg(root);
    }
    run_with_deadline(cmd, DEADLINE)
}

/// A copy of what check-units reads, to break.
fn copy_of_the_service_files() -> TempDir {
    let copy = tempfile::Builder::new().prefix("cxu").tempdir().unwrap();
    let repo = repo_root();
    for file in [
        "systemd/codexd.socket",
        "systemd/codexd.service",
        "launchd/dev.codexd.codexd.plist",
        "docs/SERVICE.md",
        "proto/src/paths.rs",
    ] {
        let to = copy.path().join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(repo.join(file), &to).unwrap();
    }
    copy
}

fn edit(path: &Path, from: &str, to: &str) {
    let content = fs::read_to_string(path).unwrap();
    assert!(content.contains(from), "{} does not contain {from:?}", path.display());
    fs::write(path, content.replacen(from, to, 1)).unwrap();
}

#[test]
fn check_units_passes_on_the_shipped_units_and_plist() {
    if !systemd_analyze_or_skip("check_units_passes_on_the_shipped_units_and_plist") {
        return;
    }
    let out = check_units(None);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok: systemd-analyze --user verify"), "{stdout}");
    assert!(stdout.contains("ok: launchd/dev.codexd.codexd.plist is a valid property list"), "{stdout}");
}

#[test]
fn check_units_fails_on_a_broken_unit_a_broken_plist_and_docs_that_disagree() {
    if !systemd_analyze_or_skip("check_units_fails_on_a_broken_unit_a_broken_plist_and_docs_that_disagree") {
        return;
    }
    let copy = copy_of_the_service_files();
    let out = check_units(Some(copy.path()));
    assert_eq!(out.status.code(), Some(0), "an intact copy must pass:\n{}", text(&out.stderr));

    // A misspelt setting: systemd-analyze only warns ("ignoring") and exits 0; check-units fails anyway.
    let copy = copy_of_the_service_files();
    edit(&copy.path().join("systemd/codexd.service"), "NoNewPrivileges=yes", "NoNewPrivilege=yes");
    let out = check_units(Some(copy.path()));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Unknown key 'NoNewPrivilege'"), "{stderr}");

    // A value systemd cannot parse.
    let copy = copy_of_the_service_files();
    edit(&copy.path().join("systemd/codexd.service"), "Type=notify", "Type=notifying");
    let stderr = text(&check_units(Some(copy.path())).stderr);
    assert!(stderr.contains("FAIL: systemd-analyze --user verify"), "{stderr}");

    // A plist that is not XML any more ("--" inside a comment).
    let copy = copy_of_the_service_files();
    edit(&copy.path().join("launchd/dev.codexd.codexd.plist"), "launchctl bootout", "launchctl --bootout");
    let out = check_units(Some(copy.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is a valid property list (plistlib: not well-formed"), "{}", text(&out.stderr));

    // Another socket than the docs and the daemon's default.
    let copy = copy_of_the_service_files();
    edit(
        &copy.path().join("systemd/codexd.socket"),
        "ListenStream=%t/codexd/codexd.sock",
        "ListenStream=%t/codexd.sock",
    );
    let out = check_units(Some(copy.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("FAIL: codexd.socket: ListenStream=%t/codexd/codexd.sock"));
}

/// A temporary home with a fake `systemctl` (or none) for `codexctl service`.
struct Scratch {
    dir: TempDir,
    with_systemctl: bool,
    fail_on: Option<&'static str>,
    xdg_config_home: bool,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("cxs").tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        let systemctl = bin.join("systemctl");
        fs::write(&systemctl, FAKE_SYSTEMCTL).unwrap();
        fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).unwrap();
        Scratch { dir, with_systemctl: true, fail_on: None, xdg_config_home: true }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Where the units go: `$XDG_CONFIG_HOME/systemd/user`, or `~/.config/systemd/user`.
    fn unit_dir(&self) -> PathBuf {
        if self.xdg_config_home {
            self.dir.path().join("config/systemd/user")
        } else {
            self.home().join(".config/systemd/user")
        }
    }

    /// The `systemctl` calls so far, one line of arguments each.
    fn systemctl_calls(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn forget_calls(&self) {
        let _ = fs::remove_file(self.dir.path().join("systemctl.log"));
    }

    fn command(&self, codexctl: &Path, args: &[&str]) -> Command {
        let mut cmd = clean_command(codexctl, &self.home());
        let mut path = vec![];
        if self.with_systemctl {
            path.push(self.dir.path().join("bin"));
        } else {
            path.push(self.dir.path().join("empty-bin"));
        }
        // sh for the fake systemctl; never the machine's real systemctl.
        let sh_dir = self.dir.path().join("sh-bin");
        fs::create_dir_all(&sh_dir).unwrap();
        let _ = std::os::unix::fs::symlink("/bin/sh", sh_dir.join("sh"));
        path.push(sh_dir);
        cmd.env("PATH", std::env::join_paths(path).unwrap())
            .env("FAKE_SYSTEMCTL_LOG", self.dir.path().join("systemctl.log"))
            .env("FAKE_SYSTEMCTL_FAIL_ON", self.fail_on.unwrap_or(""))
            .args(args);
        if self.xdg_config_home {
            cmd.env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        }
        cmd
    }

    /// Runs the built codexctl with `args`.
    fn codexctl(&self, args: &[&str]) -> Output {
        run_with_deadline(self.command(&bin_path("codexctl"), args), DEADLINE)
    }
}

fn assert_ok(out: &Output) -> (String, String) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

fn socket_template() -> String {
    fs::read_to_string(repo_root().join("systemd/codexd.socket")).unwrap()
}

#[test]
fn install_writes_the_units_with_the_absolute_codexd_path_then_reloads_and_enables_the_socket() {
    let home = Scratch::new();
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "install"]));
    let unit_dir = home.unit_dir();
    assert_eq!(fs::read_to_string(unit_dir.join("codexd.socket")).unwrap(), socket_template());
    let service = fs::read_to_string(unit_dir.join("codexd.service")).unwrap();
    let codexd = bin_path("codexd");
    assert!(codexd.is_absolute());
    assert!(service.lines().any(|l| l == format!("ExecStart={}", codexd.display())), "{service}");
    assert!(!service.lines().any(|l| l.starts_with("ExecStart=@")), "{service}");
    let mode = fs::metadata(unit_dir.join("codexd.service")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    assert_eq!(home.systemctl_calls(), ["--user daemon-reload", "--user enable --now codexd.socket"]);
    assert!(stdout.contains(&format!("wrote {}", unit_dir.join("codexd.service").display())), "{stdout}");
    assert!(stdout.contains("$ systemctl --user enable --now codexd.socket"), "{stdout}");
    assert!(stdout.contains("codexd is installed as a systemd user service"), "{stdout}");
}

#[test]
fn install_again_is_idempotent_and_replaces_a_changed_unit_restarting_a_running_codexd() {
    let home = Scratch::new();
    assert_ok(&home.codexctl(&["service", "install"]));
    let service_path = home.unit_dir().join("codexd.service");
    let first = fs::read_to_string(&service_path).unwrap();
    home.forget_calls();

    let (stdout, _) = assert_ok(&home.codexctl(&["service", "install"]));
    assert_eq!(stdout.matches("unchanged ").count(), 2, "{stdout}");
    assert_eq!(fs::read_to_string(&service_path).unwrap(), first);
    assert_eq!(home.systemctl_calls(), ["--user daemon-reload", "--user enable --now codexd.socket"]);
    home.forget_calls();

    fs::write(&service_path, first.replace("Restart=on-failure", "Restart=always")).unwrap();
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "install"]));
    assert!(stdout.contains(&format!("replaced {}", service_path.display())), "{stdout}");
    assert_eq!(fs::read_to_string(&service_path).unwrap(), first);
    assert_eq!(
        home.systemctl_calls(),
        ["--user daemon-reload", "--user enable --now codexd.socket", "--user try-restart codexd.service"]
    );
}

#[test]
fn status_reports_the_files_their_codexd_and_what_systemctl_says() {
    let home = Scratch::new();
    let out = home.codexctl(&["service", "status"]);
    assert_eq!(out.status.code(), Some(1), "not installed yet: {}", text(&out.stdout));
    assert!(text(&out.stdout).contains("codexd.service     not installed"), "{}", text(&out.stdout));

    assert_ok(&home.codexctl(&["service", "install"]));
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "status"]));
    assert!(stdout.contains(&format!("in {}:", home.unit_dir().display())), "{stdout}");
    assert!(stdout.contains(&format!("installed, runs {}", bin_path("codexd").display())), "{stdout}");
    assert!(stdout.contains("codexd.socket active, codexd.service inactive"), "{stdout}");
    assert!(!stdout.contains("differs"), "{stdout}");

    // A unit that names another codexd is reported as such.
    let service_path = home.unit_dir().join("codexd.service");
    let service = fs::read_to_string(&service_path).unwrap();
    let exec = format!("ExecStart={}", bin_path("codexd").display());
    fs::write(&service_path, service.replace(&exec, "ExecStart=/nonexistent/codexd")).unwrap();
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "status"]));
    assert!(stdout.contains("runs /nonexistent/codexd (missing!)"), "{stdout}");
    assert!(stdout.contains("differs from what `codexctl service install` writes now"), "{stdout}");

    let mut no_systemd = Scratch::new();
    no_systemd.with_systemctl = false;
    assert_ok(&no_systemd.codexctl(&["service", "install"]));
    let (stdout, _) = assert_ok(&no_systemd.codexctl(&["service", "status"]));
    assert!(stdout.contains("systemd not available"), "{stdout}");
}

#[test]
fn uninstall_disables_and_removes_the_units_and_is_idempotent() {
    let home = Scratch::new();
    assert_ok(&home.codexctl(&["service", "install"]));
    // What `systemctl enable` leaves behind, in case systemctl cannot remove it.
    let wants = home.unit_dir().join("sockets.target.wants");
    fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(home.unit_dir().join("codexd.socket"), wants.join("codexd.socket")).unwrap();
    home.forget_calls();

    let (stdout, _) = assert_ok(&home.codexctl(&["service", "uninstall"]));
    for name in ["codexd.socket", "codexd.service"] {
        assert!(!home.unit_dir().join(name).exists(), "{name} is still there");
        assert!(stdout.contains(&format!("removed {}", home.unit_dir().join(name).display())), "{stdout}");
    }
    assert!(wants.join("codexd.socket").symlink_metadata().is_err(), "the enablement link is still there");
    assert_eq!(home.systemctl_calls(), ["--user disable --now codexd.socket codexd.service", "--user daemon-reload"]);
    home.forget_calls();

    let (stdout, _) = assert_ok(&home.codexctl(&["service", "uninstall"]));
    assert!(stdout.contains("not installed"), "{stdout}");
    assert!(home.systemctl_calls().is_empty(), "nothing to disable: {:?}", home.systemctl_calls());
}

#[test]
fn without_systemctl_install_writes_the_units_and_prints_the_commands_to_run() {
    let mut home = Scratch::new();
    home.with_systemctl = false;
    home.xdg_config_home = false;
    let (stdout, stderr) = assert_ok(&home.codexctl(&["service", "install"]));
    assert!(home.unit_dir().join("codexd.service").is_file(), "the units go to ~/.config/systemd/user");
    assert!(home.unit_dir().join("codexd.socket").is_file());
    let printed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("systemctl ")).collect();
    assert_eq!(printed, ["systemctl --user daemon-reload", "systemctl --user enable --now codexd.socket"], "{stdout}");
    assert!(stderr.starts_with("codexctl: cannot use the systemd user manager here"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn without_a_user_bus_install_prints_the_commands_and_a_later_failure_is_exit_1() {
    let mut home = Scratch::new();
    home.fail_on = Some("daemon-reload");
    let (stdout, stderr) = assert_ok(&home.codexctl(&["service", "install"]));
    assert!(stderr.contains("Failed to connect to bus: No medium found"), "{stderr}");
    assert!(stdout.lines().any(|l| l == "systemctl --user enable --now codexd.socket"), "{stdout}");
    assert_eq!(home.systemctl_calls(), ["--user daemon-reload"], "nothing more is tried");

    // The manager answers, then refuses to enable: that is a failure, with systemctl's reason.
    let mut home = Scratch::new();
    home.fail_on = Some("enable");
    let out = home.codexctl(&["service", "install"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("codexctl: `systemctl --user enable --now codexd.socket` failed: Failed to connect"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let home = Scratch::new();
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "install", "--dry-run"]));
    assert!(!home.unit_dir().exists(), "a dry run wrote {}", home.unit_dir().display());
    assert!(home.systemctl_calls().is_empty());
    assert!(stdout.contains(&format!("would write {} (new)", home.unit_dir().join("codexd.socket").display())));
    assert!(stdout.contains("would run: systemctl --user enable --now codexd.socket"), "{stdout}");

    assert_ok(&home.codexctl(&["service", "install"]));
    home.forget_calls();
    let (stdout, _) = assert_ok(&home.codexctl(&["service", "uninstall", "--dry-run"]));
    assert!(home.unit_dir().join("codexd.service").is_file());
    assert!(home.systemctl_calls().is_empty());
    assert!(stdout.contains("would run: systemctl --user disable --now codexd.socket codexd.service"), "{stdout}");
    assert!(stdout.contains(&format!("would remove {}", home.unit_dir().join("codexd.service").display())));
}

#[test]
fn install_refuses_when_no_codexd_is_next_to_codexctl_or_in_path() {
    let home = Scratch::new();
    let lonely = home.dir.path().join("lonely");
    fs::create_dir_all(&lonely).unwrap();
    std::os::unix::fs::symlink(bin_path("codexctl"), lonely.join("codexctl")).unwrap();
    let out = run_with_deadline(home.command(&lonely.join("codexctl"), &["service", "install"]), DEADLINE);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("codexctl: cannot find codexd (looked in"), "{stderr}");
    assert!(!home.unit_dir().exists());
    assert!(home.systemctl_calls().is_empty());
}

#[test]
fn install_stops_a_codexd_serving_the_units_socket_outside_systemd_before_enabling_it() {
    let home = Scratch::new();
    let runtime = home.dir.path().join("runtime");
    fs::create_dir_all(&runtime).unwrap();
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
    // The socket of the unit: %t/codexd/codexd.sock, %t being XDG_RUNTIME_DIR.
    let socket = runtime.join("codexd/codexd.sock");
    // A codexd started by hand (or autostarted) on it.
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.codexd_command();
    cmd.arg("--socket").arg(&socket);
    let mut daemon = Spawned::spawn(cmd, None);
    wait_until(Duration::from_secs(20), "the hand-started codexd to serve", || Conn::connect(&socket).is_ok());
    let pid = daemon.pid();
    let install = |main_pid: Option<u32>| {
        let mut cmd = home.command(&bin_path("codexctl"), &["service", "install"]);
        cmd.env("XDG_RUNTIME_DIR", &runtime).env("FAKE_SYSTEMCTL_SOCKET", &socket);
        if let Some(main_pid) = main_pid {
            cmd.env("FAKE_SYSTEMCTL_MAIN_PID", main_pid.to_string());
        }
        run_with_deadline(cmd, DEADLINE)
    };

    // systemd's own codexd (codexd.service's main pid) is left alone.
    let (_, stderr) = assert_ok(&install(Some(pid)));
    assert!(!stderr.contains("stopped"), "{stderr}");
    assert!(daemon.try_exit().is_none(), "systemd's codexd was stopped: {}", daemon.stderr());
    let calls = home.systemctl_calls();
    assert!(calls.iter().any(|c| c.starts_with("--user show codexd.service")), "{calls:?}");
    assert!(calls.iter().any(|c| c == "(the socket is still there)"), "the fake sees the socket: {calls:?}");
    home.forget_calls();

    // Any other is asked to shut down, and is gone (with its socket) before `enable --now` runs.
    let (stdout, stderr) = assert_ok(&install(None));
    assert!(
        stderr.contains(&format!(
            "codexctl: stopped the codexd that was running (pid {pid}) so that systemd can own the socket"
        )),
        "{stderr}"
    );
    assert!(stdout.contains("codexd is installed as a systemd user service"), "{stdout}");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "the stopped codexd exits cleanly: {}", daemon.stderr());
    assert!(!socket.exists(), "the stopped codexd removed its socket");
    let calls = home.systemctl_calls();
    let enable = calls.iter().position(|c| c == "--user enable --now codexd.socket").expect("enable ran");
    assert_eq!(calls.get(enable + 1), None, "the socket was still there at enable: {calls:?}");
    assert_eq!(calls[0], "--user daemon-reload", "{calls:?}");
    home.forget_calls();

    // Nothing answers: nothing to stop, nothing asked.
    let (_, stderr) = assert_ok(&install(None));
    assert!(!stderr.contains("stopped"), "{stderr}");
    assert_eq!(home.systemctl_calls(), ["--user daemon-reload", "--user enable --now codexd.socket"]);
}
