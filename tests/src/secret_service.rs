//! [`SecretService`]: a private D-Bus session bus and a real `gnome-keyring-daemon` for one test, torn down on
//! drop, and `secret-tool` (libsecret) to look at and plant items from outside codexd, the way the Codex CLI
//! (keyring v3.6.3) would.
//!
//! Nothing touches the developer's own keyring: the bus is a `dbus-daemon` of the test's own, listening on a
//! socket in a temp dir under `/tmp`, with a configuration that has no service activation directories (nothing is
//! auto-started, so a bus without a provider stays without one); the keyring daemon and every `secret-tool` run
//! get a cleared environment ([`clean_command`]) with `HOME`, `XDG_DATA_HOME` and `XDG_RUNTIME_DIR` in that temp
//! dir, and `DBUS_SESSION_BUS_ADDRESS` naming the private bus. Pass [`SecretService::env`] to codexd.
//!
//! Three kinds of keyring:
//! - [`SecretService::start`]: unlocked. `gnome-keyring-daemon --unlock` reads a dummy password on stdin and
//!   creates a `login` collection with it, which becomes the default collection.
//! - [`SecretService::start_locked`]: the same `login` collection, but locked: the daemon that created it is
//!   stopped and a new one started without `--unlock`. There is no prompter on the bus
//!   (`org.gnome.keyring.SystemPrompter` is not provided), so every unlock prompt is dismissed at once and calls
//!   fail quickly instead of waiting for a user. What `secret-tool` does there (measured with gnome-keyring 42.1,
//!   libsecret 0.20.5, each call well under 100 ms):
//!   - `store`: exit 1, stderr `secret-tool: Cannot create an item in a locked collection`.
//!   - `lookup`: exit 1 with **empty** stderr, also when the item exists: the same answer as "no such item", so
//!     [`SecretService::lookup`] returns `None` there.
//!   - `clear`: exit 1, empty stderr; the item stays.
//!   - `search --all`: exit 0; each item shows with an empty label, no secret, hashed attributes
//!     (`gkr:compat:hashed:service = <md5>`, ...) and `secret-tool: Cannot get secret of a locked object` on
//!     stderr. [`SecretService::items`] therefore returns such items with an empty label and secret.
//!   - The in-memory `session` collection is never locked: `secret-tool store
//!     --collection=/org/freedesktop/secrets/collection/session ...` still works.
//! - [`SecretService::start_without_provider`]: the bus only. Every `secret-tool` call exits 1 with
//!   `secret-tool: The name org.freedesktop.secrets was not provided by any .service files`.
//!
//! [`SecretService::freeze`] stops the keyring daemon (SIGSTOP): D-Bus calls to it then wait (libsecret's own
//! timeout is GDBus's default 25 s), like a keyring waiting for a user to answer an unlock prompt.
//!
//! ```no_run
//! use codexd_e2e::TestDaemon;
//! use codexd_e2e::secret_service::{CODEX_SERVICE, SecretService, available, codex_account};
//! if !available() { return; }
//! let keyring = SecretService::start();
//! let [(key, value)] = keyring.env();
//! let daemon = TestDaemon::builder().env(key, value).start();
//! let account = codex_account(daemon.home());
//! keyring.store_codex_entry(&account, r#"{"OPENAI_API_KEY":"sk-test"}"#);
//! assert!(keyring.lookup(CODEX_SERVICE, &account).is_some());
//! ```

use crate::process::{Spawned, clean_command, process_state};
use crate::wait::{POLL_INTERVAL, wait_until_or};
use rustix::process::Signal;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read as _, Seek as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The Secret Service `service` attribute of the Codex CLI's entry (`KEYRING_SERVICE` in Codex).
pub const CODEX_SERVICE: &str = "Codex Auth";

/// Set to `1` (scripts/test and CI do) to make [`available`] panic instead of skipping when the tools are missing.
pub const REQUIRE_ENV: &str = "CODEXD_REQUIRE_KEYRING_TESTS";

/// The variable that names the session bus, for libsecret, zbus and codexd.
pub const BUS_ENV: &str = "DBUS_SESSION_BUS_ADDRESS";

/// How long the bus and the keyring daemon may take to be ready.
pub const START_DEADLINE: Duration = Duration::from_secs(15);

/// How long one `secret-tool` run may take before it is killed and the test fails.
pub const TOOL_DEADLINE: Duration = Duration::from_secs(15);

/// How long a daemon gets to exit after SIGTERM before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// The password of the `login` collection.
const KEYRING_PASSWORD: &str = "codexd-e2e-password";

/// The item stored, read and cleared to check that a keyring is ready.
const PROBE: [&str; 4] = ["service", "codexd-e2e-probe", "username", "probe"];

/// The programs the kit runs, and the Debian package of each.
const TOOLS: [(&str, &str); 4] = [
    ("gnome-keyring-daemon", "gnome-keyring"),
    ("secret-tool", "libsecret-tools"),
    ("dbus-daemon", "dbus-daemon"),
    // `stdbuf -oL` keeps `secret-tool search` output in order (see `SecretService::items`).
    ("stdbuf", "coreutils"),
];

/// Whether the Secret Service tools exist. When they don't: panics saying what to install if
/// `CODEXD_REQUIRE_KEYRING_TESTS=1`, else prints a "skipping: ..." line and returns `false`.
pub fn available() -> bool {
    let missing: Vec<(&str, &str)> =
        TOOLS.iter().copied().filter(|(program, _)| find_program(program).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    let programs = missing.iter().map(|(program, _)| *program).collect::<Vec<_>>().join(", ");
    let packages = missing.iter().map(|(_, package)| *package).collect::<Vec<_>>().join(" ");
    assert!(
        std::env::var_os(REQUIRE_ENV).is_none_or(|v| v != "1"),
        "{REQUIRE_ENV}=1 but the Secret Service tools are missing ({programs}): \
         apt-get install -y --no-install-recommends {packages}"
    );
    eprintln!("skipping: install gnome-keyring libsecret-tools dbus-daemon (missing: {programs})");
    false
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The Codex CLI's keyring account for `codex_home`: `cli|` and the first 16 lowercase hex digits of the SHA-256
/// of the canonicalized path as a string (the path as given when it cannot be canonicalized), like Codex's
/// `compute_store_key`.
pub fn codex_account(codex_home: &Path) -> String {
    let canonical = codex_home.canonicalize().unwrap_or_else(|_| codex_home.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let hex = format!("{digest:x}");
    format!("cli|{}", &hex[..16])
}

/// One Secret Service item as `secret-tool search --all` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Item {
    /// The label (empty when the item is locked).
    pub label: String,
    /// The attributes, without `xdg:schema` (which secret-tool shows apart). When the item is locked these are
    /// hashed: `gkr:compat:hashed:service = <md5>`.
    pub attributes: BTreeMap<String, String>,
    /// The secret (empty when the item is locked).
    pub secret: String,
}

/// A private session bus with (or without) a real `gnome-keyring-daemon` on it. Dropping it stops both (a frozen
/// keyring is thawed first) and prints their stderr when the test is failing.
#[derive(Debug)]
pub struct SecretService {
    bus: Spawned,
    bus_address: String,
    keyring: Option<Spawned>,
    /// stderr of keyring daemons stopped earlier (the one that created a locked keyring, a stopped provider).
    stopped_keyring_logs: Vec<String>,
    dir: TempDir,
}

impl SecretService {
    /// A bus and an unlocked `gnome-keyring-daemon` whose default collection is `login`. Ready when returned: a
    /// probe item was stored, read back and cleared with `secret-tool`.
    pub fn start() -> SecretService {
        let mut service = SecretService::start_without_provider();
        service.spawn_keyring(Some(KEYRING_PASSWORD));
        service.wait_unlocked();
        service
    }

    /// A bus and a `gnome-keyring-daemon` whose `login` collection exists but is locked; see the module docs for
    /// what `secret-tool` does there.
    pub fn start_locked() -> SecretService {
        SecretService::start_locked_with(|_| {})
    }

    /// Like [`SecretService::start_locked`], but `seed` runs on the keyring while it is still unlocked, e.g. to
    /// store a Codex entry that codexd then finds locked.
    pub fn start_locked_with(seed: impl FnOnce(&SecretService)) -> SecretService {
        let mut service = SecretService::start();
        seed(&service);
        service.stop_provider();
        service.spawn_keyring(None);
        service.wait_provider();
        service
    }

    /// A bus with no Secret Service provider at all: `org.freedesktop.secrets` has no owner, and nothing can be
    /// activated.
    pub fn start_without_provider() -> SecretService {
        let dir = tempfile::Builder::new().prefix("cxk").tempdir_in("/tmp").expect("cannot create the keyring dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share")).expect("cannot create the keyring HOME");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("cannot create XDG_RUNTIME_DIR");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).expect("chmod XDG_RUNTIME_DIR");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&dir.path().join("bus"))).expect("cannot write the bus config");

        let mut cmd = clean_command("dbus-daemon", &home);
        cmd.arg("--config-file").arg(&config).args(["--nofork", "--print-address=1"]);
        let mut bus = Spawned::spawn(cmd, None);
        let end = Instant::now() + START_DEADLINE;
        let bus_address = loop {
            if let Some(line) = bus.stdout().lines().next().filter(|_| bus.stdout().ends_with('\n')) {
                break line.to_owned();
            }
            if let Some(status) = bus.try_exit() {
                panic!("dbus-daemon exited ({status}) before printing its address; stderr:\n{}", bus.stderr());
            }
            assert!(
                Instant::now() < end,
                "dbus-daemon did not print its address within {START_DEADLINE:?}; stderr:\n{}",
                bus.stderr()
            );
            std::thread::sleep(POLL_INTERVAL);
        };
        SecretService { bus, bus_address, keyring: None, stopped_keyring_logs: Vec::new(), dir }
    }

    /// The private bus's address (`unix:path=/tmp/cxk.../bus,guid=...`).
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// `("DBUS_SESSION_BUS_ADDRESS", address)`, for `TestDaemonBuilder::env` (codexd) and codexctl.
    pub fn env(&self) -> [(&'static str, String); 1] {
        [(BUS_ENV, self.bus_address.clone())]
    }

    /// The temp dir holding the bus socket, its config, and the keyring's `HOME` (`home/`, with the keyring files
    /// under `home/.local/share/keyrings`) and `XDG_RUNTIME_DIR` (`run/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The running keyring daemon's pid, if there is one.
    pub fn provider_pid(&self) -> Option<u32> {
        self.keyring.as_ref().map(Spawned::pid)
    }

    /// Stops the keyring daemon (SIGSTOP) and waits until it is stopped: calls to it hang until [`thaw`].
    ///
    /// [`thaw`]: SecretService::thaw
    pub fn freeze(&self) {
        let keyring = self.provider();
        keyring.signal(Signal::STOP);
        wait_process_state(keyring.pid(), "stopped", |state| state == 'T');
    }

    /// Resumes a keyring daemon stopped by [`SecretService::freeze`] (SIGCONT).
    pub fn thaw(&self) {
        let keyring = self.provider();
        keyring.signal(Signal::CONT);
        wait_process_state(keyring.pid(), "running again", |state| state != 'T');
    }

    /// Kills the keyring daemon (SIGTERM) and waits until `org.freedesktop.secrets` has no owner; the bus stays.
    pub fn stop_provider(&mut self) {
        let mut keyring = self.keyring.take().expect("stop_provider: no gnome-keyring-daemon is running");
        self.stopped_keyring_logs.push(stop(&mut keyring, "gnome-keyring-daemon"));
        wait_until_or(
            START_DEADLINE,
            || {
                let out = self.secret_tool(&search_probe_args(), None);
                !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.secrets")
            },
            || {
                format!(
                    "org.freedesktop.secrets still answered {START_DEADLINE:?} after its daemon exited\n{}",
                    self.logs()
                )
            },
        );
    }

    /// `secret-tool lookup service S username U`: `Some(secret)`, or `None` when secret-tool exits 1 without a
    /// message (no such item, or the collection is locked). Panics with stderr on other failures.
    pub fn lookup(&self, service: &str, username: &str) -> Option<String> {
        let out = self.secret_tool(&["lookup", "service", service, "username", username], None);
        match out.status.code() {
            Some(0) => Some(String::from_utf8(out.stdout).expect("the secret is not UTF-8")),
            Some(1) if out.stderr.is_empty() => None,
            _ => panic!("{}", self.failure("lookup", &out)),
        }
    }

    /// Stores the entry the Codex CLI (keyring v3.6.3) writes: label `<username>@Codex Auth:default (keyring
    /// v3.6.3)`, attributes `service=Codex Auth`, `username`, `target=default`, `application=rust-keyring`.
    pub fn store_codex_entry(&self, username: &str, value: &str) {
        let label = format!("{username}@{CODEX_SERVICE}:default (keyring v3.6.3)");
        let attributes = [
            ("service", CODEX_SERVICE),
            ("username", username),
            ("target", "default"),
            ("application", "rust-keyring"),
        ];
        self.store(&label, &attributes, value);
    }

    /// `secret-tool store --label=L k v ...` with `value` on stdin, in the default collection; panics with stderr
    /// when it fails.
    pub fn store(&self, label: &str, attributes: &[(&str, &str)], value: &str) {
        let label = format!("--label={label}");
        let mut args = vec!["store", &label];
        for (key, value) in attributes {
            args.extend([*key, *value]);
        }
        let out = self.secret_tool(&args, Some(value.as_bytes()));
        assert!(out.status.success(), "{}", self.failure("store", &out));
    }

    /// `secret-tool clear service S username U`: removes every matching item. Exit 1 without a message (nothing
    /// matched, or the collection is locked) is accepted; panics with stderr on other failures.
    pub fn clear(&self, service: &str, username: &str) {
        let out = self.secret_tool(&["clear", "service", service, "username", username], None);
        assert!(
            out.status.success() || (out.status.code() == Some(1) && out.stderr.is_empty()),
            "{}",
            self.failure("clear", &out)
        );
    }

    /// `secret-tool search --all service S username U`: every matching item with its label, attributes and secret.
    /// Panics with the output when secret-tool fails.
    pub fn items(&self, service: &str, username: &str) -> Vec<Item> {
        // secret-tool prints labels and secrets to stdout but attributes to stderr: both go to one file, and
        // `stdbuf -oL` makes stdout line-buffered so that the lines stay in the order they were printed.
        let mut cmd = clean_command("stdbuf", &self.home());
        cmd.env(BUS_ENV, &self.bus_address).args(["-oL", "secret-tool", "search", "--all"]);
        cmd.args(["service", service, "username", username]);
        let (status, text) = run_merged(cmd, TOOL_DEADLINE);
        assert!(status.success(), "secret-tool search failed ({status}); output:\n{text}\n{}", self.logs());
        parse_items(&text)
    }

    /// `secret-tool args...` with the private bus and a cleared environment, not yet started: for calls that
    /// must be watched while they run (see [`SecretService::freeze`]).
    pub fn secret_tool_command(&self, args: &[&str]) -> Command {
        let mut cmd = clean_command("secret-tool", &self.home());
        cmd.env(BUS_ENV, &self.bus_address).args(args);
        cmd
    }

    /// Runs `secret-tool args...` with `stdin` to completion (at most [`TOOL_DEADLINE`]) and returns its output,
    /// whatever its exit status.
    pub fn secret_tool(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        Spawned::spawn(self.secret_tool_command(args), stdin).wait_output(TOOL_DEADLINE)
    }

    /// The stderr of gnome-keyring-daemon (every one started, oldest first) and of dbus-daemon.
    pub fn logs(&self) -> String {
        let stopped =
            self.stopped_keyring_logs.iter().map(|log| format!("--- gnome-keyring-daemon (stopped) stderr ---\n{log}"));
        let running =
            self.keyring.iter().map(|keyring| format!("--- gnome-keyring-daemon stderr ---\n{}", keyring.stderr()));
        let bus = format!("--- dbus-daemon stderr ---\n{}", self.bus.stderr());
        stopped.chain(running).chain([bus]).collect::<Vec<_>>().join("\n")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn provider(&self) -> &Spawned {
        self.keyring.as_ref().expect("no gnome-keyring-daemon is running (none was started, or it was stopped)")
    }

    /// Starts `gnome-keyring-daemon --components=secrets --foreground`, with `--unlock` and the password on stdin
    /// when given, else with stdin at end of file.
    fn spawn_keyring(&mut self, password: Option<&str>) {
        assert!(self.keyring.is_none(), "a gnome-keyring-daemon is already running");
        let home = self.home();
        let mut cmd = clean_command("gnome-keyring-daemon", &home);
        cmd.env(BUS_ENV, &self.bus_address)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", self.dir.path().join("run"))
            .args(["--components=secrets", "--foreground"]);
        if password.is_some() {
            cmd.arg("--unlock");
        }
        self.keyring = Some(Spawned::spawn(cmd, password.map(str::as_bytes)));
    }

    /// Polls until the probe item can be stored, read back and cleared.
    fn wait_unlocked(&mut self) {
        let end = Instant::now() + START_DEADLINE;
        let value = "probe-secret";
        loop {
            self.assert_keyring_running();
            let mut store = vec!["store", "--label=codexd-e2e probe"];
            store.extend(PROBE);
            let out = self.secret_tool(&store, Some(value.as_bytes()));
            if out.status.success() {
                let found = self.lookup(PROBE[1], PROBE[3]);
                assert_eq!(found.as_deref(), Some(value), "the probe item did not read back\n{}", self.logs());
                self.clear(PROBE[1], PROBE[3]);
                assert_eq!(self.lookup(PROBE[1], PROBE[3]), None, "the probe item was not cleared\n{}", self.logs());
                return;
            }
            assert!(
                Instant::now() < end,
                "the keyring was not ready within {START_DEADLINE:?}; last {}",
                self.failure("store", &out)
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls until `org.freedesktop.secrets` answers a search.
    fn wait_provider(&mut self) {
        let end = Instant::now() + START_DEADLINE;
        loop {
            self.assert_keyring_running();
            let out = self.secret_tool(&search_probe_args(), None);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < end,
                "the keyring did not answer within {START_DEADLINE:?}; last {}",
                self.failure("search", &out)
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn assert_keyring_running(&mut self) {
        let keyring = self.keyring.as_mut().expect("no gnome-keyring-daemon");
        if let Some(status) = keyring.try_exit() {
            panic!("gnome-keyring-daemon exited ({status}) before it was ready\n{}", self.logs());
        }
    }

    fn failure(&self, action: &str, out: &Output) -> String {
        format!(
            "secret-tool {action} failed ({}); stdout:\n{}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        )
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(mut keyring) = self.keyring.take() {
            self.stopped_keyring_logs.push(stop(&mut keyring, "gnome-keyring-daemon"));
        }
        if std::thread::panicking() {
            eprintln!(
                "----- Secret Service logs (bus {}) -----\n{}\n----- end of Secret Service logs -----",
                self.bus_address,
                self.logs()
            );
        }
        stop(&mut self.bus, "dbus-daemon");
    }
}

/// The bus configuration: a session bus on `socket`, everything allowed, no service activation.
fn bus_config(socket: &Path) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
         <!-- A private session bus for one codexd test: no <servicedir>, so nothing is ever activated. -->\n\
         <busconfig><type>session</type><listen>unix:path={}</listen>\n\
         <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
         <allow own=\"*\"/></policy></busconfig>\n",
        socket.display()
    )
}

fn search_probe_args() -> Vec<&'static str> {
    let mut args = vec!["search", "--all"];
    args.extend(PROBE);
    args
}

/// Thaws `process`, sends SIGTERM, and waits up to [`STOP_DEADLINE`] (then `Spawned`'s drop kills it); returns
/// its stderr.
fn stop(process: &mut Spawned, name: &str) -> String {
    process.signal(Signal::CONT);
    process.signal(Signal::TERM);
    let end = Instant::now() + STOP_DEADLINE;
    while process.try_exit().is_none() && Instant::now() < end {
        std::thread::sleep(POLL_INTERVAL);
    }
    if process.try_exit().is_none() {
        eprintln!("{name} ({}) ignored SIGTERM for {STOP_DEADLINE:?}; killing it", process.pid());
    }
    process.stderr()
}

/// Polls until the state of process `pid` satisfies `ok`.
fn wait_process_state(pid: u32, what: &str, mut ok: impl FnMut(char) -> bool) {
    wait_until_or(
        START_DEADLINE,
        || process_state(pid).is_some_and(&mut ok),
        || format!("gnome-keyring-daemon ({pid}) was not {what} within {START_DEADLINE:?}"),
    );
}

/// Runs `cmd` with stdout and stderr into the same file and no stdin; kills it and panics if it outlives
/// `deadline`.
fn run_merged(mut cmd: Command, deadline: Duration) -> (ExitStatus, String) {
    let mut file = tempfile::tempfile().expect("cannot create an output file");
    let program = cmd.get_program().to_owned();
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("cannot clone the output file"))
        .stderr(file.try_clone().expect("cannot clone the output file"));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait failed") {
            break status;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not exit within {deadline:?}; output:\n{}", program.display(), read_all(&mut file));
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    (status, read_all(&mut file))
}

fn read_all(file: &mut File) -> String {
    let mut bytes = Vec::new();
    file.rewind().expect("cannot rewind the output file");
    file.read_to_end(&mut bytes).expect("cannot read the output file");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Parses `secret-tool search --all` output (stdout and stderr in order): per item a `[/path]` line, `label = `,
/// `secret = ` (its value may span lines, up to `created = `), `created`, `modified`, `schema`, then
/// `attribute.K = V` lines. Other lines (`secret-tool: ...` messages) are skipped.
fn parse_items(text: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut in_secret = false;
    for line in text.split('\n') {
        if in_secret {
            if line.starts_with("created = ") {
                in_secret = false;
            } else if let Some(item) = items.last_mut() {
                item.secret.push('\n');
                item.secret.push_str(line);
            }
            continue;
        }
        if line.len() > 2 && line.starts_with("[/") && line.ends_with(']') {
            items.push(Item::default());
            continue;
        }
        let Some(item) = items.last_mut() else { continue };
        if let Some(label) = line.strip_prefix("label = ") {
            label.clone_into(&mut item.label);
        } else if let Some(secret) = line.strip_prefix("secret = ") {
            secret.clone_into(&mut item.secret);
            in_secret = true;
        } else if let Some((key, value)) = line.strip_prefix("attribute.").and_then(|a| a.split_once(" = ")) {
            item.attributes.insert(key.to_owned(), value.to_owned());
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a call to a locked keyring or a missing provider may take: it must fail, not wait for a prompt.
    const QUICK: Duration = Duration::from_secs(5);

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// `printf %s text | sha256sum`: a SHA-256 computed outside this crate.
    fn sha256sum(text: &str) -> String {
        let mut cmd = clean_command("sha256sum", Path::new("/"));
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("cannot run sha256sum");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
    }

    #[test]
    fn codex_account_hashes_the_canonical_codex_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("codex");
        std::fs::create_dir(&home).unwrap();
        let canonical = std::fs::canonicalize(&home).unwrap();
        let expected = format!("cli|{}", &sha256sum(canonical.to_str().unwrap())[..16]);
        assert_eq!(codex_account(&home), expected);
        assert_eq!(codex_account(&home).len(), "cli|".len() + 16);

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&home, &link).unwrap();
        assert_eq!(codex_account(&link), expected, "a symlinked CODEX_HOME is the same account");
        assert_eq!(codex_account(&link.join("../link/.")), expected);

        // A path that does not exist is hashed as given.
        let missing = "/nonexistent/codexd-e2e/codex-home";
        assert_eq!(codex_account(Path::new(missing)), format!("cli|{}", &sha256sum(missing)[..16]));
    }

    #[test]
    fn parse_items_reads_unlocked_locked_and_multi_line_items() {
        let text = "[/2]\nlabel = cli|abc@Codex Auth:default (keyring v3.6.3)\nsecret = line one\nline = two\n\
                    created = 2026-01-01 00:00:00\nmodified = 2026-01-01 00:00:00\n\
                    schema = org.freedesktop.Secret.Generic\nattribute.service = Codex Auth\n\
                    attribute.username = cli|abc\nsecret-tool: Cannot get secret of a locked object\n[/3]\nlabel = \n\
                    created = \nmodified = \nschema = org.freedesktop.Secret.Generic\n\
                    attribute.gkr:compat:hashed:service = 98220da3d4c1ba9c7aa33547307ff721\n";
        let items = parse_items(text);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label, "cli|abc@Codex Auth:default (keyring v3.6.3)");
        assert_eq!(items[0].secret, "line one\nline = two");
        assert_eq!(items[0].attributes, attrs(&[("service", "Codex Auth"), ("username", "cli|abc")]));
        assert_eq!(items[1].label, "");
        assert_eq!(items[1].secret, "");
        assert_eq!(items[1].attributes, attrs(&[("gkr:compat:hashed:service", "98220da3d4c1ba9c7aa33547307ff721")]));
        assert!(parse_items("").is_empty());
    }

    #[test]
    fn start_gives_an_unlocked_keyring_that_round_trips_items() {
        if !available() {
            return;
        }
        let started = Instant::now();
        let keyring = SecretService::start();
        eprintln!("SecretService::start took {} ms", started.elapsed().as_millis());
        assert!(keyring.bus_address().starts_with("unix:path=/tmp/"), "{}", keyring.bus_address());
        assert_eq!(keyring.env(), [("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address().to_owned())]);
        assert!(keyring.dir().join("home/.local/share/keyrings/login.keyring").is_file());

        let account = "cli|0123456789abcdef";
        assert_eq!(keyring.lookup(CODEX_SERVICE, account), None);
        assert!(keyring.items(CODEX_SERVICE, account).is_empty());
        let value = r#"{"OPENAI_API_KEY":null,"tokens":{"id_token":"a.b.c","refresh_token":"r"}}"#;
        keyring.store_codex_entry(account, value);
        assert_eq!(keyring.lookup(CODEX_SERVICE, account).as_deref(), Some(value));
        let items = keyring.items(CODEX_SERVICE, account);
        assert_eq!(
            items,
            [Item {
                label: format!("{account}@Codex Auth:default (keyring v3.6.3)"),
                attributes: attrs(&[
                    ("application", "rust-keyring"),
                    ("service", "Codex Auth"),
                    ("target", "default"),
                    ("username", account),
                ]),
                secret: value.to_owned(),
            }]
        );

        // A second item for the same service and user (another target) shows as a second item.
        keyring.store("other", &[("service", CODEX_SERVICE), ("username", account), ("target", "x")], "two\nlines");
        let items = keyring.items(CODEX_SERVICE, account);
        assert_eq!(items.len(), 2, "{items:?}");
        let other = items.iter().find(|item| item.label == "other").expect("the second item");
        assert_eq!(other.secret, "two\nlines");
        assert_eq!(other.attributes["target"], "x");

        keyring.clear(CODEX_SERVICE, account);
        assert_eq!(keyring.lookup(CODEX_SERVICE, account), None);
        assert!(keyring.items(CODEX_SERVICE, account).is_empty());
        // Clearing nothing is fine.
        keyring.clear(CODEX_SERVICE, account);
    }

    #[test]
    fn locked_keyring_fails_reads_and_writes_quickly() {
        if !available() {
            return;
        }
        let account = "cli|locked0000000000";
        let keyring = SecretService::start_locked_with(|k| k.store_codex_entry(account, "seeded"));

        let started = Instant::now();
        let out = keyring.secret_tool(&["store", "--label=x", "service", CODEX_SERVICE, "username", "u"], Some(b"v"));
        assert!(started.elapsed() < QUICK, "store took {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(1), "{}", keyring.failure("store", &out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Cannot create an item in a locked collection"),
            "{}",
            keyring.failure("store", &out)
        );

        // lookup of an item that exists: exit 1 and no message, as for a missing item.
        let started = Instant::now();
        let out = keyring.secret_tool(&["lookup", "service", CODEX_SERVICE, "username", account], None);
        assert!(started.elapsed() < QUICK, "lookup took {:?}", started.elapsed());
        assert_eq!(out.status.code(), Some(1), "{}", keyring.failure("lookup", &out));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", keyring.failure("lookup", &out));
        assert_eq!(keyring.lookup(CODEX_SERVICE, account), None);

        // search shows the item, locked: hashed attributes, no label, no secret.
        let items = keyring.items(CODEX_SERVICE, account);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].label, "");
        assert_eq!(items[0].secret, "");
        assert!(items[0].attributes.contains_key("gkr:compat:hashed:service"), "{items:?}");

        // clear does nothing there.
        keyring.clear(CODEX_SERVICE, account);
        assert_eq!(keyring.items(CODEX_SERVICE, account).len(), 1);
        assert!(keyring.logs().contains("org.gnome.keyring.SystemPrompter"), "{}", keyring.logs());
    }

    #[test]
    fn bus_without_provider_fails_quickly() {
        if !available() {
            return;
        }
        let keyring = SecretService::start_without_provider();
        assert_eq!(keyring.provider_pid(), None);
        for args in [&["lookup", "service", "s", "username", "u"][..], &["store", "--label=x", "service", "s"][..]] {
            let started = Instant::now();
            let out = keyring.secret_tool(args, Some(b"v"));
            assert!(started.elapsed() < QUICK, "{args:?} took {:?}", started.elapsed());
            assert_eq!(out.status.code(), Some(1), "{}", keyring.failure(args[0], &out));
            assert!(
                String::from_utf8_lossy(&out.stderr)
                    .contains("The name org.freedesktop.secrets was not provided by any .service files"),
                "{}",
                keyring.failure(args[0], &out)
            );
        }
    }

    #[test]
    fn stop_provider_takes_the_secret_service_away() {
        if !available() {
            return;
        }
        let mut keyring = SecretService::start();
        keyring.store("x", &[("service", "s"), ("username", "u")], "v");
        let pid = keyring.provider_pid().unwrap();
        keyring.stop_provider();
        assert_eq!(keyring.provider_pid(), None);
        assert_eq!(process_state(pid), None, "gnome-keyring-daemon {pid} still exists");
        let out = keyring.secret_tool(&["lookup", "service", "s", "username", "u"], None);
        assert!(String::from_utf8_lossy(&out.stderr).contains("org.freedesktop.secrets"), "{out:?}");
    }

    #[test]
    fn frozen_keyring_holds_calls_until_thawed() {
        if !available() {
            return;
        }
        let keyring = SecretService::start();
        keyring.store("x", &[("service", "s"), ("username", "u")], "held");
        keyring.freeze();
        let mut lookup =
            Spawned::spawn(keyring.secret_tool_command(&["lookup", "service", "s", "username", "u"]), None);
        let watched = Instant::now();
        while watched.elapsed() < Duration::from_secs(1) {
            assert!(lookup.try_exit().is_none(), "lookup returned while frozen: {}", lookup.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        keyring.thaw();
        let out = lookup.wait_output(TOOL_DEADLINE);
        assert!(out.status.success(), "{}", keyring.failure("lookup", &out));
        assert_eq!(out.stdout, b"held");
    }

    #[test]
    fn dropping_a_frozen_keyring_stops_everything() {
        if !available() {
            return;
        }
        let keyring = SecretService::start();
        let pids = [keyring.provider_pid().unwrap(), keyring.bus.pid()];
        let socket = keyring.dir().join("bus");
        keyring.freeze();
        drop(keyring);
        for pid in pids {
            assert_eq!(process_state(pid), None, "process {pid} outlived the SecretService");
        }
        assert!(!socket.exists());
    }

    #[test]
    fn parallel_keyrings_do_not_interfere() {
        if !available() {
            return;
        }
        let threads: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    let keyring = SecretService::start();
                    let value = format!("value-{i}");
                    keyring.store_codex_entry("cli|shared", &value);
                    (keyring, value)
                })
            })
            .collect();
        let keyrings: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (keyring, value) in &keyrings {
            assert_eq!(keyring.lookup(CODEX_SERVICE, "cli|shared").as_ref(), Some(value));
            assert_eq!(keyring.items(CODEX_SERVICE, "cli|shared").len(), 1);
        }
    }
}
