//! Autostart, `codexctl where`, `codexctl restart` and the version handshake, with the real binaries: `codexctl`
//! starts `codexd` on the test's socket when nothing listens there, two at once end with one daemon, the switches
//! turn it off, and a daemon that refuses codexctl's protocol version ends the command with exit 1.
//!
//! Every daemon started here runs in a [`Sandbox`], whose drop kills it (found by its command line in `/proc`).

use codexd_e2e::autostart::{Sandbox, codexd_pids, process_alive, process_group};
use codexd_e2e::text;
use codexd_e2e::{AuthFixture, Spawned, apikey_auth_json, chatgpt_auth_json, wait_until};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The one daemon serving the sandbox's socket.
fn the_daemon(sandbox: &Sandbox) -> u32 {
    let pids = sandbox.daemon_pids();
    assert_eq!(pids.len(), 1, "exactly one codexd should serve {}: {pids:?}", sandbox.socket().display());
    pids[0]
}

/// `daemon/status` of whatever serves the socket.
fn daemon_status(socket: &Path) -> Value {
    let mut conn = codexd_e2e::Conn::connect(socket).expect("the daemon answers");
    conn.daemon_status()
}

#[test]
fn token_without_a_daemon_starts_one_on_the_socket_with_the_callers_home_and_prints_the_token() {
    let fixture = AuthFixture::default();
    let sandbox = Sandbox::with_auth(chatgpt_auth_json(&fixture));
    let out = sandbox.codexctl(&["token"]);
    assert_exit(&out, 0, "codexctl token with autostart");
    assert_eq!(text(&out.stdout), format!("{}\n", fixture.access_token()), "only the token on stdout");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("codexctl: no codexd answered at "), "{stderr}");
    assert!(stderr.contains(&sandbox.log().display().to_string()), "names the log: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let pid = the_daemon(&sandbox);
    let status = daemon_status(sandbox.socket());
    assert_eq!(status["pid"], pid);
    assert_eq!(status["socket"], sandbox.socket().to_str().unwrap());
    let home = sandbox.home().canonicalize().unwrap();
    assert_eq!(status["codexHome"], home.to_str().unwrap(), "the daemon inherited CODEX_HOME");
    // A process group of its own (Ctrl-C at codexctl's terminal does not reach it), a private directory, a 0600 log.
    assert_eq!(process_group(pid), Some(pid), "codexd leads its own process group");
    let dir_mode = std::fs::metadata(sandbox.socket().parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let log_mode = std::fs::metadata(sandbox.log()).unwrap().permissions().mode() & 0o777;
    assert_eq!(log_mode, 0o600);
    assert!(sandbox.log_text().contains("--socket"), "the log names the start:\n{}", sandbox.log_text());

    // The next call uses it: no second start, nothing on stderr.
    let out = sandbox.codexctl(&["token"]);
    assert_exit(&out, 0, "the second codexctl token");
    assert_eq!(text(&out.stderr), "");
    assert_eq!(sandbox.daemon_pids(), vec![pid]);
}

#[test]
fn commands_that_need_the_daemon_start_it_and_status_stop_and_where_do_not() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-cmds"));
    for args in [&["status"][..], &["status", "--json"], &["stop"]] {
        let out = sandbox.codexctl(args);
        assert_exit(&out, 3, &format!("codexctl {args:?} without a daemon"));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("it is not running"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    let out = sandbox.codexctl(&["where"]);
    assert_exit(&out, 0, "codexctl where");
    assert!(text(&out.stdout).contains("state:      not running"), "{}", text(&out.stdout));
    assert!(sandbox.daemon_pids().is_empty(), "status, stop or where started a daemon");
    assert!(!sandbox.socket().exists());

    // logout starts one too (and logs out of it); refresh, login and watch go the same way through `reach`.
    let out = sandbox.codexctl(&["logout"]);
    assert_exit(&out, 0, "codexctl logout with autostart");
    assert_eq!(text(&out.stdout), "Logged out\n");
    the_daemon(&sandbox);
    assert!(!sandbox.home().join("auth.json").exists());
    let out = sandbox.codexctl(&["status"]);
    assert_exit(&out, 1, "codexctl status once it runs, logged out");
}

#[test]
fn watch_starts_the_daemon_and_follows_it_until_it_stops() {
    let sandbox = Sandbox::new();
    let mut watch = sandbox.spawn_codexctl(&["watch"]);
    wait_until(DEADLINE, "codexctl watch to start codexd and subscribe", || {
        sandbox.socket().exists()
            && codexd_e2e::Conn::connect(sandbox.socket()).is_ok_and(|mut c| c.daemon_status()["subscribers"] == 1)
    });
    let out = sandbox.codexctl(&["stop"]);
    assert_exit(&out, 0, "codexctl stop");
    let status = watch.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "watch stderr:\n{}", watch.stderr());
    assert!(watch.stdout().contains("daemon/shuttingDown"), "{}", watch.stdout());
    wait_until(DEADLINE, "the daemon to be gone", || sandbox.daemon_pids().is_empty());
}

#[test]
fn codexctls_starting_at_once_end_with_one_daemon_and_all_print_the_token() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-race"));
    let runs: Vec<Spawned> = (0..4).map(|_| sandbox.spawn_codexctl(&["token"])).collect();
    let mut started = 0;
    for mut run in runs {
        let status = run.wait_exit(DEADLINE);
        assert_eq!(status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout(), run.stderr());
        assert_eq!(run.stdout(), "sk-e2e-autostart-race\n");
        started += run.stderr().matches("started").count();
    }
    assert_eq!(started, 1, "one codexctl started the daemon, the others used it");
    let pid = the_daemon(&sandbox);
    assert_eq!(daemon_status(sandbox.socket())["pid"], pid);
}

#[test]
fn a_codexd_that_loses_the_race_exits_and_codexctl_uses_the_one_that_serves() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-lost"));
    let dir = sandbox.socket().parent().unwrap();
    std::fs::create_dir(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Another daemon, about to serve: it holds `<socket>.lock` (with its pid in it) but does not listen yet.
    let lock_path = dir.join("codexd.sock.lock");
    let mut lock = std::fs::File::create(&lock_path).unwrap();
    write!(lock, "{}", std::process::id()).unwrap();
    lock.lock().unwrap();

    let mut token = sandbox.spawn_codexctl(&["token"]);
    wait_until(DEADLINE, "the started codexd to give up on the held lock", || {
        sandbox.log_text().contains("already serving")
    });
    wait_until(DEADLINE, "the codexd that lost to exit", || sandbox.daemon_pids().is_empty());
    assert!(token.try_exit().is_none(), "codexctl gave up while another daemon held the lock: {}", token.stderr());

    // The other daemon comes up; codexctl finds it and goes on. (A process that another test thread forks at the
    // moment the lock is dropped holds it until it execs: should the daemon meet that, it is started again.)
    drop(lock);
    let start_other = || {
        let mut cmd = sandbox.codexd_command();
        cmd.arg("--socket").arg(sandbox.socket());
        Spawned::spawn(cmd, None)
    };
    let mut other = start_other();
    wait_until(DEADLINE, "the other codexd to serve", || {
        if other.try_exit().is_some() {
            assert!(other.stderr().contains("already serving"), "the other codexd failed:\n{}", other.stderr());
            other = start_other();
        }
        codexd_e2e::Conn::connect(sandbox.socket()).is_ok()
    });
    let status = token.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "stderr:\n{}\nthe other codexd's stderr:\n{}", token.stderr(), other.stderr());
    assert_eq!(token.stdout(), "sk-e2e-autostart-lost\n");
    assert_eq!(sandbox.daemon_pids().len(), 1);
}

#[test]
fn a_daemon_that_cannot_start_fails_at_once_with_exit_3_naming_the_log() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.codexctl_command(&["token"]);
    cmd.env("CODEX_HOME", sandbox.scratch().join("no-such-home"));
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 3, "codexctl token when codexd cannot start");
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(last.starts_with("codexctl: started codexd for "), "{stderr}");
    assert!(last.contains("before serving") && last.contains(&sandbox.log().display().to_string()), "{stderr}");
    assert!(last.contains("no-such-home"), "quotes the daemon's own reason: {stderr}");
    assert!(sandbox.daemon_pids().is_empty());
}

#[test]
fn no_autostart_flag_or_variable_exits_3_and_starts_nothing() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-off"));
    let out = sandbox.codexctl(&["--no-autostart", "token"]);
    assert_exit(&out, 3, "codexctl --no-autostart token");
    assert!(text(&out.stderr).contains("autostart is off (--no-autostart)"), "{}", text(&out.stderr));
    for value in ["1", "yes"] {
        let mut cmd = sandbox.codexctl_command(&["token"]);
        cmd.env("CODEXD_NO_AUTOSTART", value);
        let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
        assert_exit(&out, 3, &format!("CODEXD_NO_AUTOSTART={value} codexctl token"));
        assert!(text(&out.stderr).contains("autostart is off (CODEXD_NO_AUTOSTART)"), "{}", text(&out.stderr));
    }
    assert!(sandbox.daemon_pids().is_empty());
    assert!(!sandbox.socket().exists() && !sandbox.log().exists(), "nothing was started");
    // `0` (or empty) leaves it on.
    let mut cmd = sandbox.codexctl_command(&["token"]);
    cmd.env("CODEXD_NO_AUTOSTART", "0");
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 0, "CODEXD_NO_AUTOSTART=0 codexctl token");
    the_daemon(&sandbox);
}

fn where_json(sandbox: &Sandbox, args: &[&str], env: &[(&str, Option<&Path>)]) -> Value {
    let mut cmd = sandbox.codexctl_command(args);
    for (key, value) in env {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 0, &format!("codexctl {args:?}"));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

#[test]
fn where_names_the_flag_the_variable_or_the_default_rule_and_what_answers() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-where"));
    let uid = rustix::process::getuid().as_raw();

    let env = where_json(&sandbox, &["where", "--json"], &[]);
    assert_eq!(env["source"], "env");
    assert_eq!(env["socket"], sandbox.socket().to_str().unwrap());
    assert_eq!(env["state"], "notRunning");
    assert_eq!(env["autostart"], true);
    assert_eq!(env["log"], sandbox.log().to_str().unwrap());

    let flag = sandbox.scratch().join("flag.sock");
    let json = where_json(&sandbox, &["--socket", flag.to_str().unwrap(), "where", "--json"], &[]);
    assert_eq!((json["source"].as_str(), json["socket"].as_str()), (Some("flag"), flag.to_str()));

    let runtime = sandbox.scratch().join("runtime");
    let json = where_json(
        &sandbox,
        &["where", "--json"],
        &[("CODEXD_SOCKET", None), ("XDG_RUNTIME_DIR", Some(runtime.as_path()))],
    );
    assert_eq!(json["source"], "default");
    assert_eq!(json["defaultRule"], "XDG_RUNTIME_DIR");
    assert_eq!(json["socket"], runtime.join("codexd/codexd.sock").to_str().unwrap());
    let tmp = sandbox.scratch().join("tmp");
    let json = where_json(&sandbox, &["where", "--json"], &[("CODEXD_SOCKET", None), ("TMPDIR", Some(tmp.as_path()))]);
    assert_eq!(json["defaultRule"], "TMPDIR");
    assert_eq!(json["socket"], tmp.join(format!("codexd-{uid}/codexd.sock")).to_str().unwrap());
    let json = where_json(&sandbox, &["where", "--json"], &[("CODEXD_SOCKET", None)]);
    assert_eq!(json["defaultRule"], "/tmp");
    assert_eq!(json["socket"], format!("/tmp/codexd-{uid}/codexd.sock"));

    // The text says why, and which variable decided the default.
    let mut cmd = sandbox.codexctl_command(&["where"]);
    cmd.env_remove("CODEXD_SOCKET").env("XDG_RUNTIME_DIR", &runtime);
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 0, "codexctl where (default)");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("chosen by:  the default rule $XDG_RUNTIME_DIR/codexd/codexd.sock; XDG_RUNTIME_DIR="),
        "{stdout}"
    );
    assert!(!runtime.exists(), "where created something");

    // A socket file nobody listens on is stale.
    std::fs::create_dir_all(flag.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&flag).unwrap());
    let json = where_json(&sandbox, &["--socket", flag.to_str().unwrap(), "where", "--json"], &[]);
    assert_eq!(json["state"], "staleSocket");
    let out = sandbox.codexctl(&["--socket", flag.to_str().unwrap(), "where"]);
    assert!(text(&out.stdout).contains("state:      stale socket file"), "{}", text(&out.stdout));

    // Once a daemon serves, its version and pid.
    assert_exit(&sandbox.codexctl(&["token"]), 0, "codexctl token");
    let pid = the_daemon(&sandbox);
    let json = where_json(&sandbox, &["where", "--json"], &[]);
    assert_eq!(json["state"], "serving");
    assert_eq!(json["daemon"]["pid"], pid);
    assert_eq!(json["daemon"]["olderThanCodexctl"], false);
    let out = sandbox.codexctl(&["where"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("state:      serving (codexd {}, pid {pid})", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("chosen by:  the CODEXD_SOCKET environment variable"), "{stdout}");
}

#[test]
fn restart_replaces_the_daemon_and_without_autostart_prints_how_to_start_one() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-restart"));
    // None running: restart starts one.
    let out = sandbox.codexctl(&["restart"]);
    assert_exit(&out, 0, "codexctl restart with nothing running");
    let first = the_daemon(&sandbox);
    assert!(
        text(&out.stdout).starts_with(&format!("codexd was not running; started pid {first}")),
        "{}",
        text(&out.stdout)
    );

    let mut subscriber = codexd_e2e::Conn::connect(sandbox.socket()).unwrap();
    subscriber.initialize();
    let out = sandbox.codexctl(&["restart"]);
    assert_exit(&out, 0, "codexctl restart");
    let second = the_daemon(&sandbox);
    assert_ne!(first, second, "a new daemon serves");
    assert!(!process_alive(first), "the old daemon is gone");
    assert_eq!(
        text(&out.stdout),
        format!("codexd restarted: pid {first} -> pid {second} (codexd {})\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        subscriber.read_to_end().last().map(|m| m["method"].clone()),
        Some(json!("daemon/shuttingDown")),
        "subscribers of the old daemon were told"
    );
    assert_exit(&sandbox.codexctl(&["token"]), 0, "codexctl token after the restart");
    assert_eq!(sandbox.daemon_pids(), vec![second]);

    // Autostart off: it stops the daemon and says how to start one.
    let mut cmd = sandbox.codexctl_command(&["restart"]);
    cmd.env("CODEXD_NO_AUTOSTART", "1");
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 3, "CODEXD_NO_AUTOSTART=1 codexctl restart");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("codexctl: codexd stopped; autostart is off (CODEXD_NO_AUTOSTART)"), "{stderr}");
    assert!(stderr.contains(&format!("--socket {}", sandbox.socket().display())), "{stderr}");
    wait_until(DEADLINE, "the daemon to be gone", || codexd_pids(sandbox.socket()).is_empty());
}

/// A socket whose daemon answers every `initialize` with -32600 `protocolVersionUnsupported`, for `connections`
/// connections.
fn refusing_daemon(socket: &Path, connections: usize) -> std::thread::JoinHandle<()> {
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for _ in 0..connections {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(request["method"], "initialize", "{request}");
            assert_eq!(request["params"]["protocolVersion"], 1, "{request}");
            let reply = json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32600,
                "message": "protocol version 1 is newer than this codexd speaks (0); restart or upgrade codexd",
                "data": {"reason": "protocolVersionUnsupported"}}});
            let mut bytes = serde_json::to_vec(&reply).unwrap();
            bytes.push(b'\n');
            writer.write_all(&bytes).unwrap();
            // Wait for codexctl to hang up.
            let _ = reader.read_line(&mut line);
        }
    })
}

#[test]
fn a_daemon_that_refuses_the_protocol_version_ends_watch_and_login_with_exit_1_and_the_hint() {
    // (`status` does not call `initialize`: it takes the daemon's version from `daemon/status`.)
    let sandbox = Sandbox::new();
    let commands: [&[&str]; 2] = [&["watch"], &["login", "--device-auth"]];
    let daemon = refusing_daemon(sandbox.socket(), commands.len() + 1);
    for args in commands {
        let out = sandbox.codexctl(args);
        assert_exit(&out, 1, &format!("codexctl {args:?} against a daemon refusing the protocol version"));
        assert_eq!(
            text(&out.stderr),
            "codexctl: protocol version 1 is newer than this codexd speaks (0); restart or upgrade codexd; restart it \
             to upgrade: codexctl restart\n",
            "{args:?}"
        );
        assert_eq!(text(&out.stdout), "");
    }
    // With --socket, the hint names it.
    let out = sandbox.codexctl(&["--socket", sandbox.socket().to_str().unwrap(), "watch"]);
    assert_exit(&out, 1, "codexctl --socket .. watch");
    assert!(
        text(&out.stderr).ends_with(&format!("codexctl --socket {} restart\n", sandbox.socket().display())),
        "{}",
        text(&out.stderr)
    );
    daemon.join().expect("the fake daemon saw what it expected");
    assert!(sandbox.daemon_pids().is_empty());
}

#[test]
fn a_relative_codex_home_means_the_same_directory_to_the_started_daemon() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-relative"));
    let home = sandbox.home();
    let mut cmd = sandbox.codexctl_command(&["token"]);
    cmd.current_dir(home.parent().unwrap()).env("CODEX_HOME", home.file_name().unwrap());
    let out = codexd_e2e::run_with_deadline(cmd, DEADLINE);
    assert_exit(&out, 0, "codexctl token with a relative CODEX_HOME");
    assert_eq!(text(&out.stdout), "sk-e2e-autostart-relative\n");
    let status = daemon_status(sandbox.socket());
    assert_eq!(status["codexHome"], home.canonicalize().unwrap().to_str().unwrap());
}

#[test]
fn a_socket_directory_of_another_user_or_a_symlinked_log_is_refused_and_nothing_is_written() {
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-autostart-private"));
    let dir = sandbox.socket().parent().unwrap().to_owned();
    let victim = sandbox.scratch().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(&victim, sandbox.log()).unwrap();

    // Another user created the directory (say `/tmp/codexd-$UID`, before we did) and pointed the log elsewhere.
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let out = sandbox.codexctl(&["token"]);
        assert_exit(&out, 3, "codexctl token with a socket directory owned by another uid");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "the socket directory {} is not private to this user: it is owned by uid 65534, not 0",
                dir.display()
            )),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "nothing was written through the link");
        assert!(sandbox.daemon_pids().is_empty());
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    } else {
        eprintln!("(not root: the directory owned by another uid is not tried)");
    }

    // Our own private directory, with a symlinked log: refused too.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = sandbox.codexctl(&["token"]);
    assert_exit(&out, 3, "codexctl token with a symlinked log");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("refusing to write to the log {}: it is a symbolic link", sandbox.log().display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n", "nothing was written through the link");
    assert!(sandbox.daemon_pids().is_empty());

    // Once the link is gone, autostart works.
    std::fs::remove_file(sandbox.log()).unwrap();
    assert_exit(&sandbox.codexctl(&["token"]), 0, "codexctl token once the link is gone");
    the_daemon(&sandbox);
}

/// `where` is the diagnostic for a stuck daemon: a socket whose listener never accepts and whose backlog is full
/// (where `connect(2)` blocks until it accepts) must give an answer, not hang.
#[test]
fn where_answers_for_a_listener_that_never_accepts() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, connect, listen, socket_with};
    let sandbox = Sandbox::with_auth(apikey_auth_json("sk-e2e-where-backlog"));
    let path = sandbox.scratch().join("stuck.sock");
    let listener = socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
    let address = SocketAddrUnix::new(&path).unwrap();
    bind(&listener, &address).unwrap();
    listen(&listener, 0).unwrap();
    // Fill the backlog with connections nobody accepts, until the next one would block.
    let mut pending = Vec::new();
    loop {
        let client =
            socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)
                .unwrap();
        match connect(&client, &address) {
            Ok(()) => pending.push(client),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INPROGRESS) => break,
            Err(e) => panic!("cannot fill the backlog: {e}"),
        }
        assert!(pending.len() < 1024, "the backlog never filled");
    }
    let started = std::time::Instant::now();
    let json = where_json(&sandbox, &["--socket", path.to_str().unwrap(), "where", "--json"], &[]);
    assert_eq!(json["state"], "noAnswer", "{json}");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
    drop(pending);
}
