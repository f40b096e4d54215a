//! The credential stores (`--only stores`): what `cli_auth_credentials_store` costs, each mode against `file`
//! measured in the same run, with a real Secret Service: a private D-Bus session bus and an unlocked
//! `gnome-keyring-daemon`, both started here and stopped at the end ([`SecretService`]).
//!
//! 1. Reads: `getAuthStatus {includeToken:true}` round trips on one connection against three daemons started
//!    with `file`, `keyring` and `ephemeral`, each holding the same kind of login (a ChatGPT device-code login
//!    through the fake issuer on 127.0.0.1, stored by codexd itself); windows alternate among the three, each
//!    round starting with the next mode. Every
//!    daemon's token is checked against its store: `auth.json`, the keyring entry (`secret-tool lookup`), or
//!    neither (memory).
//! 2. Writes: API-key logins (`account/login/start {type:"apiKey"}`), each with a new key so that each one writes
//!    the store (codexd answers after the write), interleaved across the three daemons.
//! 3. `store/migrate` of the realistic ChatGPT `auth.json` of `fixture.rs`, file → keyring → file, on a daemon of
//!    its own; each answer is checked and the document read back from the keyring at the end.
//! 4. Idle: CPU ticks of the three daemons over the same idle window (the keyring one polls every 5 s, the
//!    default), of the Secret Service processes, and the polls the keyring daemon logged; `secret-tool lookup` of
//!    the Codex entry against `secret-tool` printing its usage, as the reference for one Secret Service lookup;
//!    and a keyring daemon polling every 200 ms, idle, for the cost per poll on both sides.
//! 5. A frozen keyring: that daemon (`CODEXD_KEYRING_POLL_MS=200`, `CODEXD_KEYRING_TIMEOUT_MS=1000`) answering
//!    round trips while `gnome-keyring-daemon` is stopped (SIGSTOP), against while it runs, windows alternating;
//!    `daemon/status` must report `keyringTimeout` at the end of every frozen window.

use crate::procfs;
use crate::rtt;
use crate::server::Server;
use crate::stats::{Row, Summary, Table, Verdict, ms, us};
use crate::{dash, fixture, private_dir, ratio, row};
use anyhow::{Context, Result, bail, ensure};
use codexd_fake_issuer::{FakeIssuer, Options};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one reply, a start-up or a login may take before the run is abandoned.
const DEADLINE: Duration = Duration::from_secs(10);
/// The keyring entry's service, as the Codex CLI names it.
const CODEX_SERVICE: &str = "Codex Auth";
/// The filter every daemon here logs with: warnings, plus the keyring poll's "re-reading the credential store"
/// (debug, in `codexd::refresh`) so that polls can be counted; nothing is logged per request.
const LOG_FILTER: &str = "warn,codexd::refresh=debug";
/// The line codexd logs at each keyring poll.
const POLL_LINE: &str = "re-reading the credential store";
/// Warm-up logins per mode before the measured ones.
const LOGIN_WARMUP: usize = 5;
/// Pause after each `store/migrate`, so that the next one starts on a daemon that has handled the config change.
const MIGRATE_PAUSE: Duration = Duration::from_millis(100);
/// The fast poll of the frozen-keyring daemon, and its keyring timeout.
const FAST_POLL_MS: u64 = 200;
const FROZEN_TIMEOUT_MS: u64 = 1_000;
/// After SIGSTOP, wait this long before measuring so that a poll is already hung on the frozen keyring.
const FROZEN_SETTLE: Duration = Duration::from_millis(250);

/// The shape of the run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Round-trip windows per store mode (part 1), alternating among the modes.
    pub windows: usize,
    /// Length of one round-trip window.
    pub window: Duration,
    /// Measured API-key logins per mode (part 2).
    pub logins: usize,
    /// Measured `store/migrate` round trips, file → keyring → file (part 3).
    pub migrations: usize,
    /// The idle window of part 4.
    pub idle: Duration,
    /// The idle window of the daemon polling every 200 ms.
    pub fast_idle: Duration,
    /// Timed `secret-tool lookup` runs (and as many `secret-tool` usage runs).
    pub lookups: usize,
    /// Frozen windows (and as many running ones) in part 5.
    pub freezes: usize,
    /// Length of one window while the keyring runs (part 5).
    pub thawed_window: Duration,
    /// Length of one window while the keyring is stopped (part 5).
    pub frozen_window: Duration,
}

/// A store mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    File,
    Keyring,
    Ephemeral,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::File, Mode::Keyring, Mode::Ephemeral];

    /// The value of `cli_auth_credentials_store`.
    fn name(self) -> &'static str {
        match self {
            Mode::File => "file",
            Mode::Keyring => "keyring",
            Mode::Ephemeral => "ephemeral",
        }
    }

    /// `daemon/status.storeLocation` once something is stored.
    fn location(self) -> &'static str {
        match self {
            Mode::File => "file",
            Mode::Keyring => "keyring",
            Mode::Ephemeral => "memory",
        }
    }
}

/// Part 4's idle window.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    /// How long it lasted.
    pub window: Duration,
    /// CPU ticks of the file, keyring and ephemeral daemons.
    pub ticks: [u64; 3],
    /// CPU ticks of `gnome-keyring-daemon`.
    pub keyring_daemon: u64,
    /// CPU ticks of the bus.
    pub bus: u64,
    /// Keyring polls the keyring daemon logged in the window.
    pub polls: usize,
}

/// Part 5.
#[derive(Debug)]
pub struct Frozen {
    /// Round trips while `gnome-keyring-daemon` runs.
    pub running: rtt::Outcome,
    /// Round trips while it is stopped.
    pub stopped: rtt::Outcome,
    /// `daemon/status.storeProblem.reason` at the end of each frozen window (`-` when there was none).
    pub reported: Vec<String>,
    /// Per frozen window: keyring polls logged while it was stopped.
    pub polls: Vec<usize>,
    /// Per thaw: time until `daemon/status` had no store problem again.
    pub recovered: Vec<Duration>,
    /// Reply size of `getAuthStatus {includeToken:true}` (the fixture's login).
    pub reply_len: usize,
}

/// Everything the part measured.
#[derive(Debug)]
pub struct Outcome {
    /// Part 1, per mode (file, keyring, ephemeral).
    pub reads: [rtt::Outcome; 3],
    /// Reply size of `getAuthStatus {includeToken:true}` per mode.
    pub reply_lens: [usize; 3],
    /// Part 2, per mode.
    pub logins: [Summary; 3],
    /// Bytes of the API keys logged in with.
    pub api_key_len: usize,
    /// Part 3: `store/migrate {to:"keyring"}` from the file store.
    pub to_keyring: Summary,
    /// Part 3: `store/migrate {to:"file"}` from the keyring.
    pub to_file: Summary,
    /// Bytes of the migrated `auth.json`.
    pub document_len: usize,
    /// Part 4.
    pub idle: Idle,
    /// `secret-tool lookup` of the migrated entry.
    pub lookup: Summary,
    /// `secret-tool` printing its usage (no D-Bus): the floor of `lookup`.
    pub usage: Summary,
    /// The daemon polling every 200 ms, idle: (window, polls, codexd ticks, gnome-keyring-daemon ticks).
    pub fast_idle: (Duration, usize, u64, u64),
    /// Part 5.
    pub frozen: Frozen,
    /// Time to start the bus and the keyring.
    pub keyring_start: Duration,
}

/// Runs the part with the release `codexd`, in `scratch`.
pub fn run(codexd: &Path, scratch: &Path, plan: Plan) -> Result<Outcome> {
    let dir = private_dir(&scratch.join("stores"))?;
    crate::progress("stores: starting a private D-Bus session bus and gnome-keyring-daemon");
    let started = Instant::now();
    let keyring = SecretService::start()?;
    let keyring_start = started.elapsed();
    let issuer = FakeIssuer::start_with(Options {
        device_interval_secs: 0,
        device_auto_approve_after: Some(0),
        ..Options::default()
    })
    .context("cannot start the fake issuer")?;

    let mut daemons = Vec::new();
    for mode in Mode::ALL {
        let scratch = dir.join(mode.name());
        let home = private_dir(&scratch.join("codex-home"))?;
        write_config(&home, mode)?;
        let env = [("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address()), ("CODEXD_LOG", LOG_FILTER)];
        let server = Server::spawn_codexd_with(codexd, &scratch, &home, issuer.url(), &env)
            .with_context(|| format!("starting codexd with the {} store", mode.name()))?;
        daemons.push(Daemon { mode, home, server });
    }
    let measured = measure_modes(&keyring, &daemons, plan);
    let measured = measured.map_err(|e| {
        let logs = daemons.iter().fold(String::new(), |mut logs, d| {
            let _ = write!(logs, "\n{} daemon's log:\n{}", d.mode.name(), d.log());
            logs
        });
        e.context(logs)
    })?;
    for daemon in daemons {
        let name = daemon.mode.name();
        daemon.server.stop().with_context(|| format!("stopping the {name} daemon"))?;
    }
    drop(issuer);

    let (migrated, migrated_home, to_keyring, to_file) = migrations(codexd, &dir, &keyring, plan)?;
    let (lookup, usage) = lookups(&keyring, &keyring_account(&migrated_home), &migrated, plan.lookups)?;
    let (fast_idle, frozen) = frozen_keyring(codexd, &dir, &migrated_home, &keyring, plan)?;
    drop(keyring);
    Ok(Outcome {
        reads: measured.reads,
        reply_lens: measured.reply_lens,
        logins: measured.logins,
        api_key_len: measured.api_key_len,
        to_keyring,
        to_file,
        document_len: migrated.len(),
        idle: measured.idle,
        lookup,
        usage,
        fast_idle,
        frozen,
        keyring_start,
    })
}

/// One of the three daemons of parts 1, 2 and 4.
struct Daemon {
    mode: Mode,
    home: PathBuf,
    server: Server,
}

impl Daemon {
    fn log(&self) -> String {
        self.server.stderr_text()
    }
}

/// What parts 1, 2 and 4 measured.
struct Modes {
    reads: [rtt::Outcome; 3],
    reply_lens: [usize; 3],
    logins: [Summary; 3],
    api_key_len: usize,
    idle: Idle,
}

fn measure_modes(keyring: &SecretService, daemons: &[Daemon], plan: Plan) -> Result<Modes> {
    // Part 2 first: the daemons start logged out, and each login replaces the last.
    crate::progress(&format!(
        "stores: {} API-key logins per store ({LOGIN_WARMUP} warm-up), interleaved file/keyring/ephemeral",
        plan.logins
    ));
    let mut clients = daemons.iter().map(|d| Client::connect(d.server.socket())).collect::<Result<Vec<_>>>()?;
    let mut samples = vec![Vec::with_capacity(plan.logins); daemons.len()];
    let mut last_keys = vec![String::new(); daemons.len()];
    for n in 0..LOGIN_WARMUP + plan.logins {
        for (i, client) in clients.iter_mut().enumerate() {
            // A new key every time (same length), so that every login writes the store.
            let key = format!("sk-proj-bench{i}{n:06}{}", "x".repeat(140));
            let start = Instant::now();
            let result = client.call("account/login/start", &json!({"type": "apiKey", "apiKey": key}))?;
            let took = start.elapsed();
            ensure!(result["type"] == "apiKey", "account/login/start answered {result}");
            if n >= LOGIN_WARMUP {
                samples[i].push(took);
            }
            last_keys[i] = key;
        }
    }
    for ((daemon, client), key) in daemons.iter().zip(&mut clients).zip(&last_keys) {
        let status = client.call("getAuthStatus", &json!({"includeToken": true}))?;
        ensure!(
            status["authMethod"] == "apikey" && status["authToken"].as_str() == Some(key.as_str()),
            "the {} daemon does not serve the last API key: {status}",
            daemon.mode.name()
        );
        check_location(client, daemon.mode)?;
    }
    let api_key_len = last_keys[0].len();
    drop(clients);
    let logins = summarise(samples)?;

    crate::progress("stores: a ChatGPT device-code login on each daemon (fake issuer)");
    device_logins(daemons)?;
    let mut tokens = Vec::new();
    let mut reply_lens = [0; 3];
    for (i, daemon) in daemons.iter().enumerate() {
        let token = stored_token(keyring, daemon)?;
        let probe = crate::one_request(daemon.server.socket(), &rtt::request_line(rtt::probe_id()))?;
        let v: Value = serde_json::from_slice(&probe).context("getAuthStatus reply is not JSON")?;
        ensure!(
            v["result"]["authMethod"] == "chatgpt" && v["result"]["authToken"].as_str() == Some(token.as_str()),
            "the {} daemon does not serve the token its store holds: {v}",
            daemon.mode.name()
        );
        reply_lens[i] = probe.len();
        tokens.push(token);
    }

    crate::progress(&format!(
        "stores: getAuthStatus round trips, {} windows of {:?} per store, alternating",
        plan.windows, plan.window
    ));
    let load = rtt::Load { connections: 1, warmup: 1_000, window: plan.window, max_requests: 500_000 };
    let mut runs: [Vec<rtt::Run>; 3] = Default::default();
    for w in 0..plan.windows {
        // Each round starts with another mode, so that no mode always follows the same one.
        for i in (0..daemons.len()).map(|k| (k + w) % daemons.len()) {
            let daemon = &daemons[i];
            let check = serves(&tokens[i]);
            let run = rtt::run(daemon.server.socket(), daemon.server.pid(), load, reply_lens[i], &check)
                .with_context(|| format!("round trips against the {} daemon", daemon.mode.name()))?;
            runs[i].push(run);
        }
    }
    let [file, keyring_runs, ephemeral] = runs;
    let reads = [rtt::pool(file)?, rtt::pool(keyring_runs)?, rtt::pool(ephemeral)?];

    crate::progress(&format!("stores: {:?} idle (the keyring daemon polls every 5 s)", plan.idle));
    std::thread::sleep(Duration::from_millis(500));
    let idle = idle(keyring, daemons, plan.idle)?;
    Ok(Modes { reads, reply_lens, logins, api_key_len, idle })
}

/// The check of every `getAuthStatus` reply in a round-trip run: it carries `token`.
fn serves(token: &str) -> impl Fn(&[u8]) -> Result<()> + Sync {
    move |reply: &[u8]| -> Result<()> {
        let v: Value = serde_json::from_slice(reply).context("reply is not JSON")?;
        ensure!(v["result"]["authToken"].as_str() == Some(token), "getAuthStatus did not return the token");
        Ok(())
    }
}

fn summarise(samples: Vec<Vec<Duration>>) -> Result<[Summary; 3]> {
    let summaries = samples.into_iter().map(|mut s| Summary::of(&mut s)).collect::<Result<Vec<_>>>()?;
    let [a, b, c] = summaries[..] else { bail!("expected three summaries") };
    Ok([a, b, c])
}

/// Starts a device-code login on every daemon at once and waits until each has completed.
fn device_logins(daemons: &[Daemon]) -> Result<()> {
    let mut clients = Vec::new();
    for daemon in daemons {
        let mut client = Client::connect(daemon.server.socket())?;
        client.call("initialize", &json!({"clientInfo": {"name": "codexd-bench", "version": "0"}}))?;
        let started = client.call("account/login/start", &json!({"type": "chatgptDeviceCode"}))?;
        ensure!(started["type"] == "chatgptDeviceCode", "account/login/start answered {started}");
        clients.push((daemon.mode, client));
    }
    for (mode, client) in &mut clients {
        let done = client.notification("account/login/completed")?;
        ensure!(done["success"] == true, "the device login on the {} daemon failed: {done}", mode.name());
        check_location(client, *mode)?;
    }
    Ok(())
}

/// The access token `daemon`'s store holds; for `ephemeral`, checks that neither `auth.json` nor a keyring entry
/// exists and returns the token the daemon serves.
fn stored_token(keyring: &SecretService, daemon: &Daemon) -> Result<String> {
    let auth_json = daemon.home.join("auth.json");
    let entry = keyring.lookup(CODEX_SERVICE, &keyring_account(&daemon.home))?;
    let document = match daemon.mode {
        Mode::File => {
            ensure!(entry.is_none(), "the file daemon has a keyring entry");
            std::fs::read_to_string(&auth_json).context("the file daemon has no auth.json")?
        }
        Mode::Keyring => {
            ensure!(!auth_json.exists(), "the keyring daemon has an auth.json");
            entry.context("the keyring daemon has no keyring entry")?
        }
        Mode::Ephemeral => {
            ensure!(!auth_json.exists() && entry.is_none(), "the ephemeral daemon wrote its login somewhere");
            let reply =
                Client::connect(daemon.server.socket())?.call("getAuthStatus", &json!({"includeToken": true}))?;
            return reply["authToken"].as_str().map(str::to_owned).context("the ephemeral daemon serves no token");
        }
    };
    let v: Value = serde_json::from_str(&document).context("the stored document is not JSON")?;
    v["tokens"]["access_token"].as_str().map(str::to_owned).context("the stored document has no access token")
}

fn check_location(client: &mut Client, mode: Mode) -> Result<()> {
    let status = client.call("daemon/status", &json!({}))?;
    ensure!(
        status["store"] == mode.name()
            && status["storeLocation"] == mode.location()
            && status["storeProblem"].is_null(),
        "daemon/status of the {} daemon: store {}, storeLocation {}, storeProblem {}",
        mode.name(),
        status["store"],
        status["storeLocation"],
        status["storeProblem"]
    );
    Ok(())
}

fn idle(keyring: &SecretService, daemons: &[Daemon], window: Duration) -> Result<Idle> {
    let keyring_daemon = daemons.iter().find(|d| d.mode == Mode::Keyring).context("no keyring daemon")?;
    let ticks = |pid| procfs::cpu_ticks(pid);
    let polls_before = keyring_daemon.log().matches(POLL_LINE).count();
    let before: Vec<u64> = daemons.iter().map(|d| ticks(d.server.pid())).collect::<Result<_>>()?;
    let (k0, b0) = (ticks(keyring.keyring_pid())?, ticks(keyring.bus_pid())?);
    let start = Instant::now();
    std::thread::sleep(window);
    let after: Vec<u64> = daemons.iter().map(|d| ticks(d.server.pid())).collect::<Result<_>>()?;
    let (k1, b1) = (ticks(keyring.keyring_pid())?, ticks(keyring.bus_pid())?);
    let window = start.elapsed();
    let polls = keyring_daemon.log().matches(POLL_LINE).count() - polls_before;
    let used: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let [f, k, e] = used[..] else { bail!("expected three daemons") };
    Ok(Idle { window, ticks: [f, k, e], keyring_daemon: k1 - k0, bus: b1 - b0, polls })
}

/// Part 3: returns the migrated document, its CODEX_HOME (left in keyring mode) and both directions' latencies.
fn migrations(
    codexd: &Path,
    dir: &Path,
    keyring: &SecretService,
    plan: Plan,
) -> Result<(String, PathBuf, Summary, Summary)> {
    crate::progress(&format!("stores: {} store/migrate round trips, file → keyring → file", plan.migrations));
    let login = fixture::Login::realistic(chrono::Utc::now());
    let document = login.auth_json()?;
    let scratch = dir.join("migrate");
    let home = private_dir(&scratch.join("codex-home"))?;
    write_config(&home, Mode::File)?;
    fixture::write_auth_json(&home, &document)?;
    let env = [("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address()), ("CODEXD_LOG", LOG_FILTER)];
    let server = Server::spawn_codexd_with(codexd, &scratch, &home, fixture::DEAD_ISSUER, &env)?;
    let measured = (|| -> Result<_> {
        let mut client = Client::connect(server.socket())?;
        check_location(&mut client, Mode::File)?;
        let (mut to_keyring, mut to_file) = (Vec::new(), Vec::new());
        // One round trip of warm-up.
        for n in 0..=plan.migrations {
            for (to, from, samples) in [("keyring", "file", &mut to_keyring), ("file", "keyring", &mut to_file)] {
                let start = Instant::now();
                let result = client.call("store/migrate", &json!({"to": to}))?;
                let took = start.elapsed();
                ensure!(
                    result["from"] == from && result["to"] == to && result["moved"] == true,
                    "store/migrate to {to} answered {result}"
                );
                if n > 0 {
                    samples.push(took);
                }
                std::thread::sleep(MIGRATE_PAUSE);
            }
        }
        check_location(&mut client, Mode::File)?;
        let status = client.call("getAuthStatus", &json!({"includeToken": true}))?;
        ensure!(status["authToken"].as_str() == Some(login.access_token.as_str()), "the login changed: {status}");
        // Leave it in the keyring for the frozen-keyring daemon, and check what the keyring holds.
        client.call("store/migrate", &json!({"to": "keyring"}))?;
        check_location(&mut client, Mode::Keyring)?;
        let entry = keyring.lookup(CODEX_SERVICE, &keyring_account(&home))?.context("no keyring entry")?;
        let (held, written): (Value, Value) = (serde_json::from_str(&entry)?, serde_json::from_str(&document)?);
        ensure!(held == written, "the keyring entry is not the migrated document");
        Ok((Summary::of(&mut to_keyring)?, Summary::of(&mut to_file)?))
    })();
    let (to_keyring, to_file) = measured.with_context(|| format!("codexd's log:\n{}", server.stderr_text()))?;
    server.stop().context("stopping the migrating daemon")?;
    Ok((document, home, to_keyring, to_file))
}

/// `secret-tool lookup` of the Codex entry of `account` (which must hold `document`), against `secret-tool`
/// printing its usage, interleaved.
fn lookups(keyring: &SecretService, account: &str, document: &str, runs: usize) -> Result<(Summary, Summary)> {
    crate::progress(&format!("stores: {runs} `secret-tool lookup` runs against `secret-tool` alone"));
    let expected: Value = serde_json::from_str(document)?;
    let (mut lookup, mut usage) = (Vec::new(), Vec::new());
    for n in 0..runs + 2 {
        let start = Instant::now();
        let out = keyring.secret_tool(&["lookup", "service", CODEX_SERVICE, "username", account], None)?;
        let took = start.elapsed();
        ensure!(out.status.success(), "secret-tool lookup failed: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(serde_json::from_slice::<Value>(&out.stdout)? == expected, "secret-tool lookup: another value");
        let start = Instant::now();
        let out = keyring.secret_tool(&[], None)?;
        let floor = start.elapsed();
        ensure!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("usage"),
            "`secret-tool` without arguments did not print its usage"
        );
        if n >= 2 {
            lookup.push(took);
            usage.push(floor);
        }
    }
    Ok((Summary::of(&mut lookup)?, Summary::of(&mut usage)?))
}

/// Part 5 (and the 200 ms poll's idle cost) on a keyring daemon serving the login in `home`.
fn frozen_keyring(
    codexd: &Path,
    dir: &Path,
    home: &Path,
    keyring: &SecretService,
    plan: Plan,
) -> Result<((Duration, usize, u64, u64), Frozen)> {
    let scratch = dir.join("frozen");
    let (poll, timeout) = (FAST_POLL_MS.to_string(), FROZEN_TIMEOUT_MS.to_string());
    let env = [
        ("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address()),
        ("CODEXD_LOG", LOG_FILTER),
        ("CODEXD_KEYRING_POLL_MS", poll.as_str()),
        ("CODEXD_KEYRING_TIMEOUT_MS", timeout.as_str()),
    ];
    let server = Server::spawn_codexd_with(codexd, &scratch, home, fixture::DEAD_ISSUER, &env)?;
    let result = (|| -> Result<_> {
        let mut client = Client::connect(server.socket())?;
        check_location(&mut client, Mode::Keyring)?;
        crate::progress(&format!("stores: {:?} idle with the keyring polled every {FAST_POLL_MS} ms", plan.fast_idle));
        let polls = server.stderr_text().matches(POLL_LINE).count();
        let (c0, k0) = (procfs::cpu_ticks(server.pid())?, procfs::cpu_ticks(keyring.keyring_pid())?);
        let start = Instant::now();
        std::thread::sleep(plan.fast_idle);
        let (c1, k1) = (procfs::cpu_ticks(server.pid())?, procfs::cpu_ticks(keyring.keyring_pid())?);
        let fast_idle = (start.elapsed(), server.stderr_text().matches(POLL_LINE).count() - polls, c1 - c0, k1 - k0);

        crate::progress(&format!(
            "stores: frozen keyring, {} rounds of {:?} running and {:?} stopped (SIGSTOP)",
            plan.freezes, plan.thawed_window, plan.frozen_window
        ));
        let token = client.call("getAuthStatus", &json!({"includeToken": true}))?["authToken"]
            .as_str()
            .map(str::to_owned)
            .context("the keyring daemon serves no token")?;
        let probe = crate::one_request(server.socket(), &rtt::request_line(rtt::probe_id()))?;
        let check = serves(&token);
        let load = |window| rtt::Load { connections: 1, warmup: 500, window, max_requests: 500_000 };
        let (mut thawed, mut frozen) = (Vec::new(), Vec::new());
        let (mut reported, mut polls_stopped, mut recovered) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..plan.freezes {
            thawed.push(rtt::run(server.socket(), server.pid(), load(plan.thawed_window), probe.len(), &check)?);
            keyring.freeze()?;
            let polls = server.stderr_text().matches(POLL_LINE).count();
            std::thread::sleep(FROZEN_SETTLE);
            let run = rtt::run(server.socket(), server.pid(), load(plan.frozen_window), probe.len(), &check);
            let status = client.call("daemon/status", &json!({}));
            polls_stopped.push(server.stderr_text().matches(POLL_LINE).count() - polls);
            // Thaw before looking at the results, so that a failure does not leave the keyring stopped.
            keyring.thaw()?;
            frozen.push(run.context("round trips while the keyring was stopped")?);
            reported.push(status?["storeProblem"]["reason"].as_str().unwrap_or("-").to_owned());
            let thawed_at = Instant::now();
            while !client.call("daemon/status", &json!({}))?["storeProblem"].is_null() {
                ensure!(thawed_at.elapsed() < DEADLINE, "the store problem outlived the thaw by {DEADLINE:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
            recovered.push(thawed_at.elapsed());
        }
        let outcome = Frozen {
            running: rtt::pool(thawed)?,
            stopped: rtt::pool(frozen)?,
            reported,
            polls: polls_stopped,
            recovered,
            reply_len: probe.len(),
        };
        Ok((fast_idle, outcome))
    })();
    let result = result.with_context(|| format!("codexd's log:\n{}", server.stderr_text()))?;
    server.stop().context("stopping the frozen-keyring daemon")?;
    Ok(result)
}

fn write_config(home: &Path, mode: Mode) -> Result<()> {
    let path = home.join("config.toml");
    std::fs::write(&path, format!("cli_auth_credentials_store = \"{}\"\n", mode.name()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The Codex CLI's keyring account for `codex_home`: `cli|` and the first 16 hex digits of the SHA-256 of the
/// canonical path.
fn keyring_account(codex_home: &Path) -> String {
    let canonical = codex_home.canonicalize().unwrap_or_else(|_| codex_home.to_owned());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    let mut account = "cli|".to_owned();
    for byte in &digest[..8] {
        let _ = write!(account, "{byte:02x}");
    }
    account
}

/// A JSON-RPC connection that reads replies and notifications in order.
struct Client {
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// Notifications read while waiting for a reply.
    pending: Vec<Value>,
}

impl Client {
    fn connect(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket).with_context(|| format!("cannot connect to {}", socket.display()))?;
        stream.set_read_timeout(Some(DEADLINE))?;
        stream.set_write_timeout(Some(DEADLINE))?;
        Ok(Self { reader: BufReader::new(stream), next_id: 1, pending: Vec::new() })
    }

    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).context("no answer from codexd")?;
        ensure!(n > 0 && line.ends_with('\n'), "codexd closed the connection");
        serde_json::from_str(&line).context("codexd sent a line that is not JSON")
    }

    /// Sends a request and returns its `result`; an `error` fails.
    fn call(&mut self, method: &str, params: &Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut line = serde_json::to_vec(&request)?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).with_context(|| format!("cannot send {method}"))?;
        loop {
            let mut message = self.read().with_context(|| format!("waiting for the answer to {method}"))?;
            if message.get("id").is_none() {
                self.pending.push(message);
                continue;
            }
            ensure!(message["id"] == id, "answer to another request: {message}");
            if let Some(error) = message.get("error") {
                bail!("{method} failed: {error}");
            }
            return Ok(message["result"].take());
        }
    }

    /// The params of the next notification `method` (one read earlier included).
    fn notification(&mut self, method: &str) -> Result<Value> {
        if let Some(at) = self.pending.iter().position(|m| m["method"] == method) {
            return Ok(self.pending.remove(at)["params"].take());
        }
        loop {
            let mut message = self.read().with_context(|| format!("waiting for {method}"))?;
            if message["method"] == method {
                return Ok(message["params"].take());
            }
        }
    }
}

/// A private D-Bus session bus (its own config, no service activation) and an unlocked `gnome-keyring-daemon`
/// on it, with `HOME`, `XDG_DATA_HOME` and `XDG_RUNTIME_DIR` in a temp dir: nothing touches the user's keyring.
/// Dropping it stops both (thawing a frozen keyring first).
struct SecretService {
    dir: tempfile::TempDir,
    bus: Child,
    bus_address: String,
    keyring: Child,
}

impl SecretService {
    const TOOLS: [&str; 3] = ["dbus-daemon", "gnome-keyring-daemon", "secret-tool"];

    fn start() -> Result<Self> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let missing: Vec<&str> = Self::TOOLS
            .into_iter()
            .filter(|tool| !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
            .collect();
        ensure!(
            missing.is_empty(),
            "{} not found; install them with `apt-get install dbus-daemon gnome-keyring libsecret-tools`",
            missing.join(", ")
        );
        // Under /tmp: the bus socket's path must stay short.
        let dir = tempfile::Builder::new().prefix("cxb").tempdir_in("/tmp").context("cannot create a temp dir")?;
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share")).context("cannot create the keyring HOME")?;
        let run = dir.path().join("run");
        std::fs::create_dir(&run).context("cannot create XDG_RUNTIME_DIR")?;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700))?;
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&dir.path().join("bus"))).context("cannot write the bus config")?;

        let mut bus = clean_command("dbus-daemon", &home)
            .arg("--config-file")
            .arg(&config)
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(dir.path(), "dbus-daemon")?)
            .spawn()
            .context("cannot start dbus-daemon")?;
        let bus_address = match first_line(&mut bus) {
            Ok(address) => address,
            Err(e) => {
                let _ = bus.kill();
                let _ = bus.wait();
                return Err(e.context(read_log(dir.path(), "dbus-daemon")));
            }
        };
        let keyring = clean_command("gnome-keyring-daemon", &home)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", &run)
            .args(["--components=secrets", "--foreground", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file(dir.path(), "gnome-keyring-daemon")?)
            .spawn();
        let mut keyring = match keyring {
            Ok(keyring) => keyring,
            Err(e) => {
                let _ = bus.kill();
                let _ = bus.wait();
                return Err(anyhow::Error::new(e).context("cannot start gnome-keyring-daemon"));
            }
        };
        // `printf pw | gnome-keyring-daemon --unlock`: the password of the new `login` collection, then EOF.
        let unlocked = keyring.stdin.take().map(|mut stdin| stdin.write_all(b"codexd-bench"));
        let service = Self { dir, bus, bus_address, keyring };
        ensure!(matches!(unlocked, Some(Ok(()))), "cannot give gnome-keyring-daemon its password");
        service.wait_ready()?;
        Ok(service)
    }

    /// Polls until a probe item can be stored and read back.
    fn wait_ready(&self) -> Result<()> {
        let start = Instant::now();
        let probe = ["service", "codexd-bench-probe", "username", "probe"];
        loop {
            let mut args = vec!["store", "--label=codexd-bench probe"];
            args.extend(probe);
            let out = self.secret_tool(&args, Some(b"probe-secret"))?;
            if out.status.success() && self.lookup(probe[1], probe[3])?.as_deref() == Some("probe-secret") {
                return Ok(());
            }
            ensure!(
                start.elapsed() < DEADLINE,
                "the keyring was not ready within {DEADLINE:?}: secret-tool store said {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn bus_address(&self) -> &str {
        &self.bus_address
    }

    fn keyring_pid(&self) -> u32 {
        self.keyring.id()
    }

    fn bus_pid(&self) -> u32 {
        self.bus.id()
    }

    /// `secret-tool args...` with `stdin`, on the private bus, to completion (libsecret gives up on a D-Bus call
    /// after 25 s).
    fn secret_tool(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        let mut child = clean_command("secret-tool", &self.dir.path().join("home"))
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run secret-tool")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).context("cannot write to secret-tool")?;
        }
        child.wait_with_output().context("cannot wait for secret-tool")
    }

    /// `secret-tool lookup service S username U`: `None` when there is no such item.
    fn lookup(&self, service: &str, username: &str) -> Result<Option<String>> {
        let out = self.secret_tool(&["lookup", "service", service, "username", username], None)?;
        match out.status.code() {
            Some(0) => Ok(Some(String::from_utf8(out.stdout).context("the secret is not UTF-8")?)),
            Some(1) if out.stderr.is_empty() => Ok(None),
            _ => bail!("secret-tool lookup failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Stops `gnome-keyring-daemon` (SIGSTOP): D-Bus calls to it wait until [`SecretService::thaw`].
    fn freeze(&self) -> Result<()> {
        signal(&self.keyring, Signal::STOP)?;
        wait_state(self.keyring_pid(), |state| state == 'T')
    }

    fn thaw(&self) -> Result<()> {
        signal(&self.keyring, Signal::CONT)?;
        wait_state(self.keyring_pid(), |state| state != 'T')
    }

    fn logs(&self) -> String {
        format!("{}\n{}", read_log(self.dir.path(), "gnome-keyring-daemon"), read_log(self.dir.path(), "dbus-daemon"))
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = signal(&self.keyring, Signal::CONT);
        stop(&mut self.keyring);
        stop(&mut self.bus);
    }
}

/// A command with a cleared environment: `HOME` and `PATH` only.
fn clean_command(program: &str, home: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_clear().env("HOME", home).env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(format!("{name}.stderr"));
    std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))
}

fn read_log(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default();
    format!("--- {name} stderr ---\n{text}")
}

/// The first line `child` prints on stdout (the bus address), within [`DEADLINE`].
fn first_line(child: &mut Child) -> Result<String> {
    let mut stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while line.last() != Some(&b'\n') && matches!(stdout.read(&mut byte), Ok(1)) {
            line.push(byte[0]);
        }
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(DEADLINE).context("dbus-daemon did not print its address")?;
    let line = String::from_utf8(line).context("the bus address is not UTF-8")?;
    ensure!(line.ends_with('\n'), "dbus-daemon exited before printing its address");
    Ok(line.trim().to_owned())
}

/// The bus configuration: a session bus on `socket`, everything allowed, no `<servicedir>` (nothing activated).
fn bus_config(socket: &Path) -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
         <busconfig><type>session</type><listen>unix:path={}</listen>\n\
         <policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
         <allow own=\"*\"/></policy></busconfig>\n",
        socket.display()
    )
}

fn signal(child: &Child, signal: Signal) -> Result<()> {
    kill_process(Pid::from_child(child), signal).with_context(|| format!("cannot signal process {}", child.id()))
}

/// Waits until the state letter of `/proc/<pid>/stat` satisfies `ok`.
fn wait_state(pid: u32, ok: impl Fn(char) -> bool) -> Result<()> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("cannot read the keyring's state")?;
        let state = text.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
        if state.is_some_and(&ok) {
            return Ok(());
        }
        ensure!(start.elapsed() < DEADLINE, "process {pid} did not change state (now {state:?})");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGTERM, then SIGKILL if it has not exited within [`DEADLINE`].
fn stop(child: &mut Child) {
    let _ = kill_process(Pid::from_child(child), Signal::TERM);
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The numbers behind the table, for stdout.
pub fn print_details(o: &Outcome, plan: Plan) {
    println!();
    println!(
        "stores: a private bus and gnome-keyring-daemon, ready in {:.0} ms; daemons log `{LOG_FILTER}` (nothing per \
         request)",
        ms(o.keyring_start)
    );
    for (i, mode) in Mode::ALL.iter().enumerate() {
        let (r, l) = (&o.reads[i], o.reads[i].latency);
        println!(
            "  getAuthStatus, {:9}: {} requests in {} windows, reply {} bytes, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} \
             µs, max {:.1} µs, mean {:.1} µs, server CPU {} ticks",
            mode.name(),
            l.count,
            r.windows,
            o.reply_lens[i],
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.max),
            us(l.mean),
            r.server_ticks
        );
    }
    for (i, mode) in Mode::ALL.iter().enumerate() {
        let l = o.logins[i];
        println!(
            "  API-key login ({}-byte key), {:9}: {} logins, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            o.api_key_len,
            mode.name(),
            l.count,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max)
        );
    }
    for (what, l) in [("file → keyring", o.to_keyring), ("keyring → file", o.to_file)] {
        println!(
            "  store/migrate of a {}-byte auth.json, {what}: {} runs, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            o.document_len,
            l.count,
            ms(l.p50),
            ms(l.p90),
            ms(l.max)
        );
    }
    print_keyring_details(o, plan);
}

/// Details of parts 4 and 5.
fn print_keyring_details(o: &Outcome, plan: Plan) {
    let idle = o.idle;
    println!(
        "  idle {:.1} s: file daemon {} ticks, keyring daemon {} ticks ({} polls logged), ephemeral daemon {} ticks; \
         gnome-keyring-daemon {} ticks, dbus-daemon {} ticks (1 tick = {:.0} ms)",
        idle.window.as_secs_f64(),
        idle.ticks[0],
        idle.ticks[1],
        idle.polls,
        idle.ticks[2],
        idle.keyring_daemon,
        idle.bus,
        ms(procfs::tick())
    );
    for (what, l) in [("secret-tool lookup (the migrated entry)", o.lookup), ("secret-tool alone (usage)", o.usage)] {
        println!(
            "  {what}: {} runs, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            l.count,
            ms(l.p50),
            ms(l.p90),
            ms(l.max)
        );
    }
    let (window, polls, codexd, keyring) = o.fast_idle;
    println!(
        "  keyring polled every {FAST_POLL_MS} ms, idle {:.1} s: {polls} polls logged, codexd {codexd} ticks, \
         gnome-keyring-daemon {keyring} ticks",
        window.as_secs_f64()
    );
    let f = &o.frozen;
    for (what, r) in [("running", &f.running), ("stopped", &f.stopped)] {
        let l = r.latency;
        println!(
            "  frozen-keyring daemon (reply {} bytes), keyring {what}: {} requests in {} windows, p50 {:.1} µs, p90 \
             {:.1} µs, p99 {:.1} µs, max {:.1} µs, mean {:.1} µs",
            f.reply_len,
            l.count,
            r.windows,
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.max),
            us(l.mean)
        );
    }
    let recovered: Vec<String> = f.recovered.iter().map(|d| format!("{:.0}", ms(*d))).collect();
    println!(
        "  while stopped ({} windows of {:?} after {} ms): storeProblem at the end {:?}; polls logged {:?}; no \
         storeProblem again {} ms after each thaw",
        plan.freezes,
        plan.frozen_window,
        FROZEN_SETTLE.as_millis(),
        f.reported,
        f.polls,
        recovered.join("/")
    );
}

/// The part's rows of the final table: parts 1 to 3 here, 4 and 5 in [`keyring_rows`].
pub fn rows(t: &mut Table, o: &Outcome, plan: Plan) {
    let [file, keyring, ephemeral] = &o.reads;
    for (mode, reads) in [("keyring", keyring), ("ephemeral", ephemeral)] {
        let (p50, base50) = (us(reads.latency.p50), us(file.latency.p50));
        t.push(row(
            &format!("stores: getAuthStatus round trip p50, 1 conn, {mode} vs file (µs)"),
            format!("{p50:.1}"),
            format!("{base50:.1}"),
            ratio(p50, base50),
            "≤ 1.25x file",
            Verdict::from_bool(p50 <= 1.25 * base50),
        ));
        let (p99, base99) = (us(reads.latency.p99), us(file.latency.p99));
        t.push(info(
            &format!("stores: getAuthStatus round trip p99, 1 conn, {mode} vs file (µs)"),
            format!("{p99:.1}"),
            format!("{base99:.1}"),
            ratio(p99, base99),
        ));
        let (cpu, base_cpu) = (cpu_per_request(reads), cpu_per_request(file));
        t.push(info(
            &format!("stores: getAuthStatus server CPU per request, {mode} vs file (µs)"),
            format!("{cpu:.1}"),
            format!("{base_cpu:.1}"),
            ratio(cpu, base_cpu),
        ));
    }
    let [file, keyring, ephemeral] = o.logins;
    for (mode, logins) in [("keyring", keyring), ("ephemeral", ephemeral)] {
        for (what, v, base) in [("p50", logins.p50, file.p50), ("p99", logins.p99, file.p99)] {
            t.push(info(
                &format!("stores: API-key login (a store write) {what}, {mode} vs file (ms)"),
                format!("{:.2}", ms(v)),
                format!("{:.2}", ms(base)),
                ratio(ms(v), ms(base)),
            ));
        }
    }
    for (what, l) in [("file → keyring", o.to_keyring), ("keyring → file", o.to_file)] {
        t.push(info(
            &format!("stores: store/migrate {what}, {}-byte auth.json, p50 (ms)", o.document_len),
            format!("{:.2}", ms(l.p50)),
            dash(),
            dash(),
        ));
    }
    keyring_rows(t, o, plan);
}

/// Rows of parts 4 and 5: what a keyring costs while idle, and a stopped one.
fn keyring_rows(t: &mut Table, o: &Outcome, plan: Plan) {
    let idle = o.idle;
    let secs = idle.window.as_secs_f64().round();
    t.push(info(
        &format!("stores: CPU over {secs:.0} s idle, keyring (poll every 5 s, {} polls) vs file (ticks)", idle.polls),
        idle.ticks[1].to_string(),
        idle.ticks[0].to_string(),
        dash(),
    ));
    t.push(info(
        &format!("stores: CPU over {secs:.0} s idle, ephemeral vs file (ticks)"),
        idle.ticks[2].to_string(),
        idle.ticks[0].to_string(),
        dash(),
    ));
    t.push(info(
        &format!("stores: CPU over {secs:.0} s idle, gnome-keyring-daemon + dbus-daemon (ticks)"),
        (idle.keyring_daemon + idle.bus).to_string(),
        dash(),
        dash(),
    ));
    let (lookup, floor) = (ms(o.lookup.p50), ms(o.usage.p50));
    t.push(info(
        "stores: `secret-tool lookup` of the entry vs `secret-tool` alone, p50 (ms)",
        format!("{lookup:.2}"),
        format!("{floor:.2}"),
        ratio(lookup, floor),
    ));
    t.push(info(
        "stores: one Secret Service lookup from a new process, above that floor (ms)",
        format!("{:.2}", lookup - floor),
        dash(),
        dash(),
    ));
    let (_, polls, codexd, keyring) = o.fast_idle;
    let per_poll = |ticks: u64| ms(procfs::tick()) * ticks as f64 / polls.max(1) as f64;
    t.push(info(
        &format!(
            "stores: CPU per keyring poll, codexd / gnome-keyring-daemon ({polls} polls at {FAST_POLL_MS} ms, ms)"
        ),
        format!("{:.2} / {:.2}", per_poll(codexd), per_poll(keyring)),
        dash(),
        dash(),
    ));
    let (frozen, thawed) = (o.frozen.stopped.latency, o.frozen.running.latency);
    t.push(info(
        "stores: keyring stopped vs running: getAuthStatus p50, 1 conn (µs)",
        format!("{:.1}", us(frozen.p50)),
        format!("{:.1}", us(thawed.p50)),
        ratio(us(frozen.p50), us(thawed.p50)),
    ));
    t.push(row(
        "stores: keyring stopped vs running: getAuthStatus p99, 1 conn (µs)",
        format!("{:.1}", us(frozen.p99)),
        format!("{:.1}", us(thawed.p99)),
        ratio(us(frozen.p99), us(thawed.p99)),
        "≤ 1.5x running",
        Verdict::from_bool(us(frozen.p99) <= 1.5 * us(thawed.p99)),
    ));
    t.push(info(
        "stores: keyring stopped vs running: getAuthStatus max, 1 conn (ms)",
        format!("{:.2}", ms(frozen.max)),
        format!("{:.2}", ms(thawed.max)),
        ratio(ms(frozen.max), ms(thawed.max)),
    ));
    let timeouts = o.frozen.reported.iter().filter(|r| *r == "keyringTimeout").count();
    t.push(row(
        "stores: keyring stopped: windows ending with storeProblem keyringTimeout",
        format!("{timeouts}/{}", plan.freezes),
        dash(),
        dash(),
        "all",
        Verdict::from_bool(timeouts == plan.freezes),
    ));
}

/// The daemon's CPU time per measured request, in µs.
fn cpu_per_request(o: &rtt::Outcome) -> f64 {
    us(procfs::tick()) * o.server_ticks as f64 / o.latency.count.max(1) as f64
}

fn info(measure: &str, codexd: String, baseline: String, ratio: String) -> Row {
    row(measure, codexd, baseline, ratio, "-", Verdict::Info)
}
