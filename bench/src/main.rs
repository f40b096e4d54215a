//! `codexd-bench`: measures codexd against baselines taken in the same run and prints one table.
//!
//! 1. Round trips of `getAuthStatus {includeToken:true}` on open connections (1 and 32 at once), throughput,
//!    and the daemon's CPU time per request, against a bare tokio echo server that answers with a line of the
//!    same size.
//! 2. Whole-process `codexctl token` against `git credential-cache get`, with `/bin/true` as the spawn floor.
//! 3. Logout fan-out to 1,000 subscribers.
//! 4. Resident memory idle and with 1,000 subscribers, and CPU use while idle.
//! 5. The refresh storm: 1,000 clients ask for a token the moment it expires (one issuer request), against
//!    1,000 clients refreshing on their own with the same refresh token, both against the fake issuer.
//!
//!
//! `--only stores` runs a part of its own instead (not part of the default run: it needs `dbus-daemon`,
//! `gnome-keyring-daemon` and `secret-tool`): the cost of each credential store mode against `file`, with a real
//! Secret Service on a private D-Bus session bus (see `stores.rs`).
//!
//! Run it with `cargo run --release -p codexd-bench`; it builds `codexd` and `codexctl` (release) first.
//! `--only refresh-storm` runs part 5 alone.
//! `docs/PERFORMANCE.md` explains the numbers.

mod echo;
mod fanout;
mod fixture;
mod procfs;
mod rtt;
mod server;
mod spawn;
mod stats;
mod stores;
mod storm;

use anyhow::{Context, Result, bail, ensure};
use server::Server;
use stats::{Row, Summary, Table, Verdict, ms, us};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const SINGLE: rtt::Load =
    rtt::Load { connections: 1, warmup: 2_000, window: Duration::from_secs(1), max_requests: 500_000 };
const MANY: rtt::Load =
    rtt::Load { connections: 32, warmup: 100, window: Duration::from_millis(1_500), max_requests: 100_000 };
/// Windows per load and server, alternating codexd and echo.
const WINDOWS: usize = 3;
const SPAWN_WARMUP: usize = 10;
const SPAWN_RUNS: usize = 200;
const FANOUT: fanout::Plan = fanout::Plan { subscribers: 1_000, rounds: 20, idle_window: Duration::from_secs(5) };
const STORM: storm::Plan = storm::Plan { clients: 1_000, rounds: 3, lifetime: Duration::from_secs(4) };
const STORES: stores::Plan = stores::Plan {
    windows: 5,
    window: Duration::from_secs(1),
    logins: 50,
    migrations: 20,
    idle: Duration::from_secs(30),
    fast_idle: Duration::from_secs(10),
    lookups: 20,
    freezes: 3,
    thawed_window: Duration::from_millis(1_500),
    frozen_window: Duration::from_millis(2_500),
};
const MIB: f64 = 1024.0 * 1024.0;

const USAGE: &str = "usage: codexd-bench [--no-build] [--only refresh-storm|stores]

Measures codexd against baselines measured in the same run (see docs/PERFORMANCE.md).
  --no-build             use target/release/{codexd,codexctl} as they are
  --only refresh-storm   run only part 5, the refresh storm (1,000 clients at the moment the token expires,
                         against 1,000 clients refreshing on their own), against a fake issuer on 127.0.0.1
  --only stores          run only the credential stores part (about 80 s; not in the default run): keyring and
                         ephemeral against file for reads, login writes, store/migrate, idle polling and a
                         stopped keyring, with a private D-Bus bus and gnome-keyring-daemon (needs dbus-daemon,
                         gnome-keyring and secret-tool)";

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// Everything.
    All,
    /// Part 5 alone.
    RefreshStorm,
    /// The credential stores part alone.
    Stores,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("echo-server") {
        return finish(echo::main(&args[1..]));
    }
    let (mut build, mut parts) = (true, Parts::All);
    let mut rest = args.iter().map(String::as_str);
    while let Some(arg) = rest.next() {
        let only = if arg == "--only" { Some(rest.next()) } else { arg.strip_prefix("--only=").map(Some) };
        match (arg, only) {
            (_, Some(Some("refresh-storm"))) => parts = Parts::RefreshStorm,
            (_, Some(Some("stores"))) => parts = Parts::Stores,
            (_, Some(other)) => {
                let other = other.map_or_else(|| "nothing".to_owned(), |o| format!("{o:?}"));
                eprintln!("codexd-bench: --only takes `refresh-storm` or `stores`, not {other} (try --help)");
                return ExitCode::from(2);
            }
            ("-h" | "--help", None) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            ("--no-build", None) => build = false,
            (other, None) => {
                eprintln!("codexd-bench: unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    finish(bench(build, parts))
}

fn finish(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codexd-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress(what: &str) {
    eprintln!("codexd-bench: {what}");
}

/// Everything one run measured.
struct Results {
    d1: rtt::Outcome,
    e1: rtt::Outcome,
    d32: rtt::Outcome,
    e32: rtt::Outcome,
    processes: spawn::Outcome,
    fan: fanout::Outcome,
    rss_start: u64,
    rss_start_first: u64,
    stop_idle: Duration,
}

fn bench(build: bool, parts: Parts) -> Result<()> {
    let bins = release_dir()?;
    if build {
        build_binaries()?;
    }
    let codexd = bins.join("codexd");
    let codexctl = bins.join("codexctl");
    for bin in [&codexd, &codexctl] {
        ensure!(bin.is_file(), "{} is missing; build it with `cargo build --release --workspace`", bin.display());
    }
    // The baseline of the storm holds both ends of every client's TCP connection (the fake issuer runs here).
    raise_open_file_limit(FANOUT.subscribers.max(2 * STORM.clients) as u64 + 256)?;

    println!("machine: {}", procfs::machine());
    println!(
        "build:   codexd and codexctl from {} (release profile); this bench built as {}",
        bins.display(),
        if cfg!(debug_assertions) { "debug (client-side numbers are pessimistic)" } else { "release" }
    );
    println!(
        "load:    {} (from /proc/loadavg at the start; other work on the machine skews every number)",
        procfs::loadavg()
    );
    if parts == Parts::All {
        println!("git:     {}", command_line_output("git", &["--version"]).unwrap_or_else(|e| format!("({e})")));
    }

    let scratch = tempfile::Builder::new().prefix("codexd-bench.").tempdir().context("cannot create a temp dir")?;
    if parts == Parts::Stores {
        let outcome = stores::run(&codexd, scratch.path(), STORES)?;
        let mut table = Table::default();
        stores::print_details(&outcome, STORES);
        stores::rows(&mut table, &outcome, STORES);
        print_table(&table);
        return Ok(());
    }
    // `Parts::Stores` returned above.
    let results = if parts == Parts::All { Some(parts_one_to_four(&codexd, &codexctl, scratch.path())?) } else { None };
    progress(&format!(
        "refresh storm: {} clients, {} rounds per side, against a fake issuer on 127.0.0.1",
        STORM.clients, STORM.rounds
    ));
    let storm = storm::run(&codexd, scratch.path(), STORM)?;

    let mut table = Table::default();
    if let Some(results) = &results {
        print_details(results);
        fill_table(&mut table, results);
    }
    print_storm_details(&storm);
    storm_rows(&mut table, &storm);
    print_table(&table);
    Ok(())
}

fn print_table(table: &Table) {
    println!();
    print!("{}", table.render());
    let missed: Vec<&str> = table.missed().map(|r| r.measure.as_str()).collect();
    if missed.is_empty() {
        println!("\nall targets met");
    } else {
        println!("\ntargets missed: {}", missed.join("; "));
    }
}

/// Parts 1 to 4: round trips, whole processes, fan-out, memory and idle CPU.
fn parts_one_to_four(codexd: &Path, codexctl: &Path, scratch: &Path) -> Result<Results> {
    let login = fixture::Login::realistic(chrono::Utc::now());
    let auth_json = login.auth_json()?;
    println!(
        "fixture: ChatGPT auth.json of {} bytes, access token {} bytes",
        auth_json.len(),
        login.access_token.len()
    );

    // Parts 1 and 2 share one daemon.
    let home_a = private_dir(&scratch.join("a/codex-home"))?;
    fixture::write_auth_json(&home_a, &auth_json)?;
    progress("starting codexd");
    let daemon = Server::spawn_codexd(codexd, &scratch.join("a"), &home_a)?;
    let rss_start_first = procfs::rss_bytes(daemon.pid())?;
    let (d1, e1, d32, e32) = round_trips(&daemon, scratch, &login.access_token)?;

    progress("whole-process codexctl token / git credential-cache get / true");
    let git = spawn::GitCache::start(scratch)?;
    let processes = spawn::measure(codexctl, daemon.socket(), &login.access_token, &git, SPAWN_WARMUP, SPAWN_RUNS)?;
    drop(git);
    let stop_idle = daemon.stop().context("stopping codexd after the round trips")?;

    // Parts 3 and 4 on a fresh daemon, so that "idle after start" is what it says.
    let home_b = private_dir(&scratch.join("b/codex-home"))?;
    fixture::write_auth_json(&home_b, &auth_json)?;
    let daemon = Server::spawn_codexd(codexd, &scratch.join("b"), &home_b)?;
    let rss_start = procfs::rss_bytes(daemon.pid())?;
    progress("1,000 subscribers: memory, idle CPU, logout fan-out, SIGTERM");
    let fan = fanout::run(daemon, &home_b, &auth_json, FANOUT)?;

    Ok(Results { d1, e1, d32, e32, processes, fan, rss_start, rss_start_first, stop_idle })
}

/// Part 1: round trips against codexd and the echo server, 1 and 32 connections.
fn round_trips(
    daemon: &Server,
    scratch: &Path,
    token: &str,
) -> Result<(rtt::Outcome, rtt::Outcome, rtt::Outcome, rtt::Outcome)> {
    let check = |reply: &[u8]| -> Result<()> {
        let v: serde_json::Value = serde_json::from_slice(reply).context("reply is not JSON")?;
        ensure!(
            v["result"]["authToken"].as_str() == Some(token),
            "getAuthStatus did not return the token: {}",
            String::from_utf8_lossy(&reply[..reply.len().min(300)])
        );
        Ok(())
    };
    let probe = one_request(daemon.socket(), &rtt::request_line(rtt::probe_id()))?;
    check(&probe)?;
    let reply_len = probe.len();
    println!(
        "reply:   getAuthStatus {{includeToken:true}} answers {reply_len} bytes; the echo server answers the same"
    );
    let echo = Server::spawn_echo(scratch, reply_len)?;
    let any = |_: &[u8]| -> Result<()> { Ok(()) };

    let mut outcomes = Vec::new();
    for (what, load) in [("1 connection", SINGLE), ("32 connections", MANY)] {
        progress(&format!("round trips, {what}: {WINDOWS} windows of {:?} each for codexd and echo", load.window));
        let (mut d, mut e) = (Vec::new(), Vec::new());
        for _ in 0..WINDOWS {
            d.push(rtt::run(daemon.socket(), daemon.pid(), load, reply_len, &check).context("codexd")?);
            e.push(rtt::run(echo.socket(), echo.pid(), load, reply_len, &any).context("echo server")?);
        }
        outcomes.push(rtt::pool(d)?);
        outcomes.push(rtt::pool(e)?);
    }
    echo.stop().context("stopping the echo server")?;
    let [d1, e1, d32, e32] = outcomes[..] else { bail!("expected four round-trip outcomes") };
    Ok((d1, e1, d32, e32))
}

/// Server CPU time per request over both round-trip runs, in µs.
fn cpu_per_request(single: &rtt::Outcome, many: &rtt::Outcome) -> f64 {
    procfs::tick().as_secs_f64() * 1e6 * (single.server_ticks + many.server_ticks) as f64
        / (single.latency.count + many.latency.count) as f64
}

fn print_details(r: &Results) {
    println!();
    println!("details:");
    let runs = [
        ("codexd, 1 conn  ", &r.d1),
        ("echo,   1 conn  ", &r.e1),
        ("codexd, 32 conns", &r.d32),
        ("echo,   32 conns", &r.e32),
    ];
    for (name, o) in runs {
        let l = o.latency;
        println!(
            "  {name}: {} requests in {} windows, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs, \
             mean {:.1} µs, {:.0} req/s, server CPU {} ticks, {}..{} requests per connection",
            l.count,
            o.windows,
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.max),
            us(l.mean),
            o.throughput,
            o.server_ticks,
            o.fewest_per_connection,
            o.most_per_connection
        );
    }
    let p = &r.processes;
    for (name, s) in [("codexctl token", &p.codexctl), ("git credential-cache get", &p.git), ("/bin/true", &p.true_)] {
        println!(
            "  {name}: {} runs, p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.max)
        );
    }
    let fan = &r.fan;
    println!(
        "  fan-out: {} subscribers connected and initialized in {:.0} ms; {} deliveries over {} rounds",
        FANOUT.subscribers,
        ms(fan.connect_all),
        fan.logout.count,
        FANOUT.rounds
    );
    println!(
        "  RSS: {:.1} MiB after start (first daemon: {:.1} MiB), {:.1} MiB with {} subscribers, \
         {:.1} MiB after {} rounds",
        r.rss_start as f64 / MIB,
        r.rss_start_first as f64 / MIB,
        fan.rss_subscribed as f64 / MIB,
        FANOUT.subscribers,
        fan.rss_after_rounds as f64 / MIB,
        FANOUT.rounds
    );
    println!(
        "  SIGTERM: {:.1} ms to exit (no subscribers), {:.1} ms with {} subscribers, \
         {} of which read daemon/shuttingDown",
        ms(r.stop_idle),
        ms(fan.stop),
        FANOUT.subscribers,
        fan.told_shutdown
    );
    if fan.unexpected.is_empty() {
        println!("  no unexpected notifications");
    } else {
        println!("  {} unexpected notifications, e.g.:", fan.unexpected.len());
        for line in fan.unexpected.iter().take(5) {
            println!("    {line}");
        }
    }
}

fn row(measure: &str, codexd: String, baseline: String, ratio: String, target: &str, verdict: Verdict) -> Row {
    Row { measure: measure.to_owned(), codexd, baseline, ratio, target: target.to_owned(), verdict }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn dash() -> String {
    "-".to_owned()
}

fn fill_table(t: &mut Table, r: &Results) {
    latency_rows(t, "1 conn", &r.d1, &r.e1);
    latency_rows(t, "32 conns", &r.d32, &r.e32);
    t.push(row(
        "throughput, 32 conns (req/s)",
        format!("{:.0}", r.d32.throughput),
        format!("{:.0}", r.e32.throughput),
        ratio(r.d32.throughput, r.e32.throughput),
        "≥ 0.5x echo",
        Verdict::from_bool(r.d32.throughput >= 0.5 * r.e32.throughput),
    ));
    t.push(row(
        "requests per connection in a window, 32 conns (fewest/most)",
        format!("{}/{}", r.d32.fewest_per_connection, r.d32.most_per_connection),
        format!("{}/{}", r.e32.fewest_per_connection, r.e32.most_per_connection),
        dash(),
        "-",
        Verdict::Info,
    ));
    let (cpu_d, cpu_e) = (cpu_per_request(&r.d1, &r.d32), cpu_per_request(&r.e1, &r.e32));
    t.push(row(
        "server CPU per request (µs)",
        format!("{cpu_d:.1}"),
        format!("{cpu_e:.1}"),
        ratio(cpu_d, cpu_e),
        "-",
        Verdict::Info,
    ));
    process_rows(t, &r.processes);
    fanout_rows(t, r);
}

fn latency_rows(t: &mut Table, conns: &str, d: &rtt::Outcome, e: &rtt::Outcome) {
    let r50 = us(d.latency.p50) / us(e.latency.p50);
    let rows = [
        ("p50", d.latency.p50, e.latency.p50, "≤ 1.5x echo", Verdict::from_bool(r50 <= 1.5)),
        ("p99", d.latency.p99, e.latency.p99, "-", Verdict::Info),
        ("mean", d.latency.mean, e.latency.mean, "-", Verdict::Info),
    ];
    for (what, dv, ev, target, verdict) in rows {
        t.push(row(
            &format!("round trip {what}, {conns} (µs)"),
            format!("{:.1}", us(dv)),
            format!("{:.1}", us(ev)),
            ratio(us(dv), us(ev)),
            target,
            verdict,
        ));
    }
}

fn process_rows(t: &mut Table, p: &spawn::Outcome) {
    let floor = ms(p.true_.p50);
    for (what, c, g) in [("median", p.codexctl.p50, p.git.p50), ("p90", p.codexctl.p90, p.git.p90)] {
        t.push(row(
            &format!("`codexctl token` vs `git credential-cache get`, {what} (ms)"),
            format!("{:.2}", ms(c)),
            format!("{:.2}", ms(g)),
            ratio(ms(c), ms(g)),
            "-",
            Verdict::Info,
        ));
    }
    t.push(row("spawn floor: `/bin/true`, median (ms)", dash(), format!("{floor:.2}"), dash(), "-", Verdict::Info));
    let (c, g) = (ms(p.codexctl.p50) - floor, ms(p.git.p50) - floor);
    t.push(row(
        "median above the spawn floor (ms)",
        format!("{c:.2}"),
        format!("{g:.2}"),
        ratio(c, g),
        "-",
        Verdict::Info,
    ));
}

fn fanout_rows(t: &mut Table, r: &Results) {
    let fan = &r.fan;
    let n = FANOUT.subscribers;
    let info = |t: &mut Table, measure: String, value: Duration| {
        t.push(row(&measure, format!("{:.2}", ms(value)), dash(), dash(), "-", Verdict::Info));
    };
    info(t, format!("logout → {n} subscribers, p50 (ms)"), fan.logout.p50);
    t.push(row(
        &format!("logout → {n} subscribers, p99 (ms)"),
        format!("{:.2}", ms(fan.logout.p99)),
        dash(),
        dash(),
        "< 50",
        Verdict::from_bool(fan.logout.p99 < Duration::from_millis(50)),
    ));
    info(t, format!("logout → {n} subscribers, max (ms)"), fan.logout.max);
    info(t, "logout → last subscriber, median round (ms)".to_owned(), fan.logout_last.p50);
    info(t, "auth.json replaced → all notified, median round (ms)".to_owned(), fan.external_last.p50);
    let start = r.rss_start as f64 / MIB;
    let subscribed = fan.rss_subscribed as f64 / MIB;
    t.push(row(
        "RSS idle after start (MiB)",
        format!("{start:.1}"),
        dash(),
        dash(),
        "≤ 10",
        Verdict::from_bool(start <= 10.0),
    ));
    t.push(row(
        &format!("RSS with {n} idle subscribers (MiB)"),
        format!("{subscribed:.1}"),
        dash(),
        dash(),
        "≤ 40",
        Verdict::from_bool(subscribed <= 40.0),
    ));
    t.push(row(
        &format!("CPU over {} s idle, {n} subscribers (ticks)", FANOUT.idle_window.as_secs()),
        fan.idle_ticks.to_string(),
        dash(),
        dash(),
        "0",
        Verdict::from_bool(fan.idle_ticks == 0),
    ));
}

/// The storm's per-round numbers: one value when every round agrees, else each round's.
fn per_round(values: impl Iterator<Item = usize>) -> String {
    let values: Vec<usize> = values.collect();
    if values.windows(2).all(|w| w[0] == w[1]) {
        values.first().map_or_else(dash, ToString::to_string)
    } else {
        values.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
    }
}

/// The middle value of some durations (the upper one of an even count).
fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn pooled<'a>(samples: impl Iterator<Item = &'a Vec<Duration>>) -> Result<Summary> {
    let mut all: Vec<Duration> = samples.flatten().copied().collect();
    Summary::of(&mut all)
}

fn print_storm_details(s: &storm::Outcome) {
    println!();
    println!(
        "refresh storm: {} clients; codexd rounds release every client at the access token's exp, when codexd's \
         scheduler (CODEXD_REFRESH_MARGIN_SECS=0) is due to refresh too",
        STORM.clients
    );
    for (n, r) in s.daemon.iter().enumerate() {
        let mut samples = r.samples.clone();
        let Ok(l) = Summary::of(&mut samples) else { continue };
        let at: Vec<String> = r.refresh_at_ms.iter().map(|ms| format!("{ms:+.2} ms")).collect();
        println!(
            "  codexd   round {}: clients connected and checked in {:.0} ms; released {:.1} ms after exp; first \
             write {:+.2} ms, refresh request at the issuer {}, first reply {:+.2} ms; per client p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms; first request → last reply {:.2} ms; {} issuer request(s), {} new tokens, {} expired, {} \
             refresh_token_reused",
            n + 1,
            ms(r.connect_all),
            ms(r.released_after_exp),
            ms(r.first_send),
            at.join(", "),
            ms(r.first_reply),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            ms(r.span),
            r.issuer_requests,
            r.served_new,
            r.served_old,
            r.reused
        );
    }
    for (n, r) in s.baseline.iter().enumerate() {
        let mut samples = r.samples.clone();
        let Ok(l) = Summary::of(&mut samples) else { continue };
        println!(
            "  baseline round {}: {} issuer requests, {} new tokens, {} refresh_token_reused, {} other; per client p50 \
             {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} took 1 s or more); first request → last answer \
             {:.2} ms",
            n + 1,
            r.issuer_requests,
            r.new_tokens,
            r.reused,
            r.other.len(),
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            r.samples.iter().filter(|d| **d >= Duration::from_secs(1)).count(),
            ms(r.span)
        );
        for other in r.other.iter().take(3) {
            println!("    e.g. {other}");
        }
    }
}

fn storm_rows(t: &mut Table, outcome: &storm::Outcome) {
    let n = STORM.clients;
    let (d, b) = (&outcome.daemon, &outcome.baseline);
    t.push(row(
        "refresh storm: refresh requests at the issuer, per round",
        per_round(d.iter().map(|r| r.issuer_requests)),
        per_round(b.iter().map(|r| r.issuer_requests)),
        dash(),
        "1",
        Verdict::from_bool(d.iter().all(|r| r.issuer_requests == 1)),
    ));
    t.push(row(
        &format!("refresh storm: of {n} clients, served a valid token"),
        per_round(d.iter().map(|r| r.served_new)),
        per_round(b.iter().map(|r| r.new_tokens)),
        dash(),
        "all",
        Verdict::from_bool(d.iter().all(|r| r.served_new == n)),
    ));
    t.push(row(
        &format!("refresh storm: of {n} clients, refused `refresh_token_reused`"),
        per_round(d.iter().map(|r| r.reused)),
        per_round(b.iter().map(|r| r.reused)),
        dash(),
        "0",
        Verdict::from_bool(d.iter().all(|r| r.reused == 0)),
    ));
    if let (Ok(dl), Ok(bl)) = (pooled(d.iter().map(|r| &r.samples)), pooled(b.iter().map(|r| &r.samples))) {
        for (what, dv, bv) in [("p50", dl.p50, bl.p50), ("p99", dl.p99, bl.p99)] {
            t.push(row(
                &format!("refresh storm: per client, request → token (codexd) / answer (baseline), {what} (ms)"),
                format!("{:.2}", ms(dv)),
                format!("{:.2}", ms(bv)),
                ratio(ms(dv), ms(bv)),
                "-",
                Verdict::Info,
            ));
        }
    }
    let (ds, bs) = (median(d.iter().map(|r| r.span).collect()), median(b.iter().map(|r| r.span).collect()));
    t.push(row(
        "refresh storm: first request → last reply, median round (ms)",
        format!("{:.2}", ms(ds)),
        format!("{:.2}", ms(bs)),
        ratio(ms(ds), ms(bs)),
        "-",
        Verdict::Info,
    ));
}

/// `target/release`, beside this executable's profile directory.
fn release_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let target = exe.parent().and_then(Path::parent).context("this executable is not in a cargo target directory")?;
    Ok(target.join("release"))
}

/// `cargo build --release` of the two binaries (a no-op when they are up to date).
fn build_binaries() -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    progress("building codexd and codexctl (release)");
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "codexd", "-p", "codexd-client", "--bins", "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "building codexd and codexctl failed ({status})");
    Ok(())
}

/// Lifts the soft open-file limit to at least `want` (up to the hard limit).
fn raise_open_file_limit(want: u64) -> Result<()> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c >= want) {
        return Ok(());
    }
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).context("cannot raise RLIMIT_NOFILE")?;
    let now = getrlimit(Resource::Nofile).current;
    ensure!(now.is_none_or(|c| c >= want), "RLIMIT_NOFILE is {now:?}, {want} descriptors are needed");
    Ok(())
}

fn private_dir(path: &Path) -> Result<PathBuf> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path.to_owned())
}

fn one_request(socket: &Path, request: &[u8]) -> Result<Vec<u8>> {
    let stream = UnixStream::connect(socket).with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&stream).write_all(request)?;
    let mut reply = Vec::new();
    let start = Instant::now();
    BufReader::new(&stream).read_until(b'\n', &mut reply).context("no reply")?;
    if !reply.ends_with(b"\n") {
        bail!("connection closed after {:?} without a full reply", start.elapsed());
    }
    Ok(reply)
}

fn command_line_output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
