//! A thousand subscribers: resident memory and idle CPU with them connected, then logout fan-out (time from
//! sending `account/logout` until each subscriber has read its `account/updated`), and finally SIGTERM with
//! every subscriber connected.

use crate::fixture;
use crate::procfs;
use crate::server::Server;
use crate::stats::Summary;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// How long any one step (a reply, a round of deliveries) may take before the run is abandoned.
const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// The shape of the run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Connections that call `initialize`.
    pub subscribers: usize,
    /// Logout / re-login rounds.
    pub rounds: usize,
    /// Length of the idle window.
    pub idle_window: Duration,
}

/// What was measured.
#[derive(Debug)]
pub struct Outcome {
    /// VmRSS with every subscriber connected and idle, bytes.
    pub rss_subscribed: u64,
    /// VmRSS after all the rounds, bytes.
    pub rss_after_rounds: u64,
    /// Daemon CPU ticks during the idle window.
    pub idle_ticks: u64,
    /// Time to connect and initialize every subscriber.
    pub connect_all: Duration,
    /// Every logout delivery, all rounds together.
    pub logout: Summary,
    /// Per round, the time until the last subscriber had the logout.
    pub logout_last: Summary,
    /// Per round, from the rename of a new auth.json until the last subscriber had the `external` update.
    pub external_last: Summary,
    /// SIGTERM to exit, with every subscriber connected.
    pub stop: Duration,
    /// Subscribers that read `daemon/shuttingDown` before their connection closed.
    pub told_shutdown: usize,
    /// Notifications nobody expected (kind and a prefix of the line), if any.
    pub unexpected: Vec<String>,
}

#[derive(Debug)]
enum Kind {
    Logout,
    External,
    ShuttingDown,
    Closed,
    Other(String),
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Self::Logout => "account/updated (logout)".to_owned(),
            Self::External => "account/updated (external)".to_owned(),
            Self::ShuttingDown => "daemon/shuttingDown".to_owned(),
            Self::Closed => "connection closed".to_owned(),
            Self::Other(line) => line.clone(),
        }
    }
}

#[derive(Debug)]
struct Event {
    sub: usize,
    at: Instant,
    kind: Kind,
}

/// Runs the plan against `daemon` (which serves `codex_home`, logged in with `auth_json`), and stops it.
pub fn run(daemon: Server, codex_home: &Path, auth_json: &str, plan: Plan) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot build the client runtime")?;
    let outcome = runtime.block_on(drive(daemon, codex_home, auth_json, plan));
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome
}

async fn drive(daemon: Server, codex_home: &Path, auth_json: &str, plan: Plan) -> Result<Outcome> {
    let pid = daemon.pid();
    let n = plan.subscribers;
    let (events_tx, mut events) = mpsc::channel(4 * n + 16);

    let start = Instant::now();
    for sub in 0..n {
        let reader = subscribe(daemon.socket(), sub).await.with_context(|| format!("subscriber {sub}"))?;
        tokio::spawn(listen(sub, reader, events_tx.clone()));
    }
    let connect_all = start.elapsed();
    drop(events_tx);

    let mut control = Control::connect(daemon.socket()).await?;
    let status = control.call(9, "daemon/status").await?;
    let counted = status["result"]["subscribers"].as_u64();
    ensure!(counted == Some(n as u64), "daemon/status counts {counted:?} subscribers, {n} are connected: {status}");

    let rss_subscribed = procfs::rss_bytes(pid)?;
    let ticks_before = procfs::cpu_ticks(pid)?;
    tokio::time::sleep(plan.idle_window).await;
    let idle_ticks = procfs::cpu_ticks(pid)? - ticks_before;

    let mut unexpected = Vec::new();
    while let Ok(event) = events.try_recv() {
        unexpected.push(format!("while idle: {}", event.kind.describe()));
    }

    let mut logout = Vec::with_capacity(n * plan.rounds);
    let mut logout_last = Vec::with_capacity(plan.rounds);
    let mut external_last = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let sent = Instant::now();
        let reply = control.call(100 + round as u64, "account/logout").await?;
        ensure!(reply.get("result").is_some(), "account/logout failed in round {round}: {reply}");
        let arrivals = collect(&mut events, n, |k| matches!(k, Kind::Logout), &mut unexpected)
            .await
            .with_context(|| format!("round {round}: waiting for the logout notification"))?;
        logout.extend(arrivals.iter().map(|at| at.saturating_duration_since(sent)));
        logout_last.push(arrivals.iter().max().map_or(Duration::ZERO, |at| at.saturating_duration_since(sent)));

        let written = Instant::now();
        fixture::write_auth_json(codex_home, auth_json)?;
        let arrivals =
            collect(&mut events, n, |k| matches!(k, Kind::External), &mut unexpected).await.with_context(|| {
                format!("round {round}: waiting for the external notification after re-creating auth.json")
            })?;
        external_last.push(arrivals.iter().max().map_or(Duration::ZERO, |at| at.saturating_duration_since(written)));
    }
    let rss_after_rounds = procfs::rss_bytes(pid)?;
    drop(control);

    let stop = tokio::task::spawn_blocking(move || daemon.stop()).await.context("stop task failed")??;
    let mut told_shutdown = 0;
    let mut closed = 0;
    let deadline = Instant::now() + STEP_DEADLINE;
    while closed < n {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline.into(), events.recv()).await else {
            bail!("after SIGTERM only {closed} of {n} subscriber connections were closed within {STEP_DEADLINE:?}");
        };
        match event.kind {
            Kind::ShuttingDown => told_shutdown += 1,
            Kind::Closed => closed += 1,
            other => unexpected.push(format!("during shutdown: {}", other.describe())),
        }
    }

    Ok(Outcome {
        rss_subscribed,
        rss_after_rounds,
        idle_ticks,
        connect_all,
        logout: Summary::of(&mut logout)?,
        logout_last: Summary::of(&mut logout_last)?,
        external_last: Summary::of(&mut external_last)?,
        stop,
        told_shutdown,
        unexpected,
    })
}

/// Waits until each of the `n` subscribers has reported one event that `wanted` accepts; returns when each did.
async fn collect(
    events: &mut mpsc::Receiver<Event>,
    n: usize,
    wanted: impl Fn(&Kind) -> bool,
    unexpected: &mut Vec<String>,
) -> Result<Vec<Instant>> {
    let mut arrivals: Vec<Option<Instant>> = vec![None; n];
    let mut seen = 0;
    let deadline = Instant::now() + STEP_DEADLINE;
    while seen < n {
        let event = match tokio::time::timeout_at(deadline.into(), events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => bail!("every subscriber task ended; {seen} of {n} had the notification"),
            Err(_) => bail!("only {seen} of {n} subscribers received it within {STEP_DEADLINE:?}"),
        };
        match event.kind {
            ref kind if wanted(kind) => {
                ensure!(arrivals[event.sub].is_none(), "subscriber {} received it twice", event.sub);
                arrivals[event.sub] = Some(event.at);
                seen += 1;
            }
            Kind::Closed => bail!("the daemon closed subscriber {}'s connection", event.sub),
            other => unexpected.push(format!("subscriber {}: {}", event.sub, other.describe())),
        }
    }
    Ok(arrivals.into_iter().flatten().collect())
}

/// Connects and calls `initialize`; returns the connection, ready for notifications.
async fn subscribe(socket: &Path, sub: usize) -> Result<BufReader<UnixStream>> {
    let stream =
        UnixStream::connect(socket).await.with_context(|| format!("cannot connect to {}", socket.display()))?;
    let mut reader = BufReader::with_capacity(4096, stream);
    let init = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{sub},\"method\":\"initialize\",\
         \"params\":{{\"clientInfo\":{{\"name\":\"codexd-bench\",\"version\":\"0\"}}}}}}\n"
    );
    reader.get_mut().write_all(init.as_bytes()).await.context("cannot send initialize")?;
    let reply = read_line(&mut reader).await.context("initialize")?;
    ensure!(reply.get("result").is_some(), "initialize failed: {reply}");
    Ok(reader)
}

/// Reads notifications until the connection closes, stamping each the moment its line is read.
async fn listen(sub: usize, mut reader: BufReader<UnixStream>, events: mpsc::Sender<Event>) {
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).await;
        let at = Instant::now();
        let kind = match read {
            Ok(0) | Err(_) => Kind::Closed,
            Ok(_) => classify(&line),
        };
        let closed = matches!(kind, Kind::Closed);
        if events.send(Event { sub, at, kind }).await.is_err() || closed {
            return;
        }
    }
}

fn classify(line: &[u8]) -> Kind {
    let Ok(message) = serde_json::from_slice::<Value>(line) else {
        return Kind::Other(String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned());
    };
    match (message["method"].as_str(), message["params"]["reason"].as_str()) {
        (Some("account/updated"), Some("logout")) => Kind::Logout,
        (Some("account/updated"), Some("external")) => Kind::External,
        (Some("daemon/shuttingDown"), _) => Kind::ShuttingDown,
        _ => Kind::Other(message.to_string().chars().take(200).collect()),
    }
}

async fn read_line(reader: &mut BufReader<UnixStream>) -> Result<Value> {
    let mut line = Vec::new();
    let n = tokio::time::timeout(STEP_DEADLINE, reader.read_until(b'\n', &mut line))
        .await
        .with_context(|| format!("no reply within {STEP_DEADLINE:?}"))?
        .context("read failed")?;
    ensure!(n > 0, "connection closed");
    serde_json::from_slice(&line).context("reply is not JSON")
}

/// A connection that is not a subscriber, for `account/logout` and `daemon/status`.
struct Control {
    reader: BufReader<UnixStream>,
}

impl Control {
    async fn connect(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket).await.context("cannot open the control connection")?;
        Ok(Self { reader: BufReader::new(stream) })
    }

    async fn call(&mut self, id: u64, method: &str) -> Result<Value> {
        let request = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n");
        self.reader.get_mut().write_all(request.as_bytes()).await.with_context(|| format!("cannot send {method}"))?;
        read_line(&mut self.reader).await.with_context(|| method.to_owned())
    }
}
