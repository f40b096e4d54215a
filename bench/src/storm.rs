//! Part 5, the refresh storm: many clients ask codexd for a token at the second its access token expires, while
//! codexd's own scheduler is due to refresh at that same second; the issuer must see exactly one refresh request.
//! The baseline is what Codex CLIs sharing one `auth.json` do without a lock: every client sends the Codex CLI's
//! refresh request with the same refresh token at once. Both run against the fake issuer on 127.0.0.1.
//!
//! One codexd round:
//! 1. a fresh fake issuer mints a login whose access token lives [`Plan::lifetime`] (then issues hour-long
//!    tokens, so that the refreshed token is not due again);
//! 2. a fresh codexd serves it with `CODEXD_REFRESH_MARGIN_SECS=0`, so that its scheduler plans the refresh for
//!    `exp` itself (with the default margin it would refresh at half the short lifetime, before anyone asks);
//! 3. every client connects and makes one `daemon/status` round trip (which never refreshes), so that codexd has
//!    accepted and set up every connection before the storm;
//! 4. at `exp` (the wall clock, which is what codexd compares `exp` with) a barrier releases every client to send
//!    `getAuthStatus {includeToken:true}`; each is timed from its write to its reply;
//! 5. every reply must carry the access token codexd then has in `auth.json` (not the expired one), that token
//!    must be unexpired, its refresh token the issuer's current one, and the issuer must have received exactly one
//!    refresh request; anything else fails the run with the details and codexd's log.
//!
//! One baseline round: a fresh fake issuer, a fresh login; every client opens its own HTTP connection to the
//! issuer first (as the codexd clients open theirs), then a barrier releases them all to post the Codex CLI's JSON
//! refresh body with the same refresh token. The clients connect at most [`CONNECTING`] at a time: the fake issuer
//! listens with a backlog of 1024, but the kernel caps that at `net.core.somaxconn`, which is 128 on Linux before
//! 5.4 (4096 since); there a thousand connections opened at the release would overflow the accept queue, and some
//! clients would wait a whole second for a SYN retransmission.

use crate::fixture;
use crate::server::Server;
use anyhow::{Context, Result, anyhow, bail, ensure};
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, FakeIssuer, Options, jwt};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinHandle;

/// How long one reply or answer may take before the run is abandoned.
const STEP_DEADLINE: Duration = Duration::from_secs(10);
/// Lifetime of the access tokens the issuer hands out once the storm's login is minted.
const REFRESHED_LIFETIME: Duration = Duration::from_secs(3600);
/// After the last reply, how long to wait for a late second refresh request before counting.
const SETTLE: Duration = Duration::from_millis(300);
/// Baseline clients opening their connection at the same time: within the fake issuer's accept queue also where
/// `net.core.somaxconn` caps its backlog of 1024 at 128.
const CONNECTING: usize = 64;
/// The refresh reason the Codex CLI sends when a token is near expiry.
const CLI_REFRESH_REASON: &str = "proactive_expiry";

/// The shape of the run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Clients per storm.
    pub clients: usize,
    /// Rounds of each side, alternating codexd and baseline, each with a fresh issuer (and daemon).
    pub rounds: usize,
    /// Lifetime of the access token minted for a round: long enough to start codexd and connect every client.
    pub lifetime: Duration,
}

/// What one codexd round measured.
#[derive(Debug)]
pub struct DaemonRound {
    /// Per client, from writing `getAuthStatus` to reading the reply.
    pub samples: Vec<Duration>,
    /// From the first client's write to the last client's reply.
    pub span: Duration,
    /// Refresh requests the issuer received.
    pub issuer_requests: usize,
    /// Replies carrying the new access token.
    pub served_new: usize,
    /// Replies carrying the expired one.
    pub served_old: usize,
    /// Replies reporting `refresh_token_reused`.
    pub reused: usize,
    /// Time to connect every client and make one round trip on each.
    pub connect_all: Duration,
    /// How long after `exp` the clients were released.
    pub released_after_exp: Duration,
    /// When the first client wrote its request, after the release.
    pub first_send: Duration,
    /// When the first client had its reply, after the release.
    pub first_reply: Duration,
    /// When the refresh request reached the issuer, in ms after the release (negative: before it).
    pub refresh_at_ms: Vec<f64>,
}

/// What one baseline round measured.
#[derive(Debug)]
pub struct BaselineRound {
    /// Per client, from sending the refresh request to reading the whole answer.
    pub samples: Vec<Duration>,
    /// From the first client's send to the last answer.
    pub span: Duration,
    /// Refresh requests the issuer received.
    pub issuer_requests: usize,
    /// Answers with new tokens.
    pub new_tokens: usize,
    /// Answers `401 refresh_token_reused`.
    pub reused: usize,
    /// Anything else (first few, for the details).
    pub other: Vec<String>,
}

/// Both sides, every round.
#[derive(Debug)]
pub struct Outcome {
    /// The codexd rounds.
    pub daemon: Vec<DaemonRound>,
    /// The baseline rounds.
    pub baseline: Vec<BaselineRound>,
}

/// Runs `plan.rounds` codexd rounds (binary `codexd`, scratch space under `scratch`) alternating with as many
/// baseline rounds.
pub fn run(codexd: &Path, scratch: &Path, plan: Plan) -> Result<Outcome> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot build the client runtime")?;
    let mut outcome = Outcome { daemon: Vec::new(), baseline: Vec::new() };
    for round in 0..plan.rounds {
        crate::progress(&format!("refresh storm, round {} of {}: codexd", round + 1, plan.rounds));
        let dir = scratch.join(format!("storm-{round}"));
        outcome
            .daemon
            .push(daemon_round(&runtime, codexd, &dir, plan).with_context(|| format!("codexd round {}", round + 1))?);
        crate::progress(&format!("refresh storm, round {} of {}: every client refreshing", round + 1, plan.rounds));
        outcome.baseline.push(baseline_round(&runtime, plan).with_context(|| format!("baseline round {}", round + 1))?);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(outcome)
}

fn start_issuer(plan: Plan) -> Result<FakeIssuer> {
    let issuer = FakeIssuer::start_with(Options { access_token_lifetime: plan.lifetime, ..Options::default() })
        .context("cannot start the fake issuer")?;
    ensure!(issuer.url().starts_with("http://127.0.0.1:"), "the fake issuer is not on 127.0.0.1: {}", issuer.url());
    Ok(issuer)
}

/// The `exp` claim of a JWT, as a wall-clock time.
fn expiry(token: &str) -> Result<SystemTime> {
    let exp = jwt::decode_payload(token)
        .and_then(|claims| claims["exp"].as_u64())
        .context("the minted access token has no readable exp")?;
    Ok(UNIX_EPOCH + Duration::from_secs(exp))
}

/// `a - b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}

fn daemon_round(runtime: &tokio::runtime::Runtime, codexd: &Path, dir: &Path, plan: Plan) -> Result<DaemonRound> {
    let issuer = start_issuer(plan)?;
    let login = issuer.mint(&Account::default());
    issuer.set_access_token_lifetime(REFRESHED_LIFETIME);
    let exp = expiry(&login.access_token)?;
    let home = crate::private_dir(&dir.join("codex-home"))?;
    fixture::write_auth_json(&home, &login.auth_json(issuer.url()))?;
    let daemon = Server::spawn_codexd_with(
        codexd,
        dir,
        &home,
        issuer.url(),
        &[("CODEXD_REFRESH_MARGIN_SECS", "0"), ("CODEXD_LOG", "info")],
    )?;
    let storm = runtime.block_on(storm(daemon.socket(), plan.clients, exp, &issuer));
    std::thread::sleep(SETTLE);
    let storm = storm.with_context(|| format!("codexd's log:\n{}", daemon.stderr_text()))?;
    let refreshes: Vec<_> = issuer.requests().into_iter().filter(|r| r.endpoint == Some(Endpoint::Refresh)).collect();
    let refresh_at_ms: Vec<f64> = refreshes.iter().map(|r| signed_ms(r.received_at, storm.released_wall)).collect();

    let stored: Value = serde_json::from_slice(
        &std::fs::read(home.join("auth.json")).context("cannot read auth.json after the storm")?,
    )
    .context("auth.json is not JSON after the storm")?;
    let new_token = stored["tokens"]["access_token"].as_str().unwrap_or_default().to_owned();
    let new_refresh = stored["tokens"]["refresh_token"].as_str().unwrap_or_default();

    let (mut served_new, mut served_old, mut reused, mut other) = (0, 0, 0, Vec::new());
    for reply in &storm.replies {
        let v: Value = serde_json::from_slice(reply).unwrap_or(Value::Null);
        let token = v["result"]["authToken"].as_str();
        if token.is_some_and(|t| t == new_token) {
            served_new += 1;
        } else if token == Some(login.access_token.as_str()) {
            served_old += 1;
        } else if v["result"]["authError"]["issuerCode"].as_str() == Some("refresh_token_reused") {
            reused += 1;
        } else {
            other.push(String::from_utf8_lossy(&reply[..reply.len().min(300)]).into_owned());
        }
    }

    let mut problems = Vec::new();
    if refreshes.len() != 1 {
        problems.push(format!("the issuer received {} refresh requests, expected exactly 1", refreshes.len()));
    }
    if new_token == login.access_token {
        problems.push("auth.json still holds the expired access token".to_owned());
    } else if expiry(&new_token).is_ok_and(|e| e <= SystemTime::now()) {
        problems.push("the access token in auth.json has expired".to_owned());
    }
    if !issuer.is_current_refresh_token(new_refresh) {
        problems.push("the refresh token in auth.json is not the issuer's current one".to_owned());
    }
    if served_new != plan.clients {
        problems.push(format!(
            "{served_new} of {} clients got the new token ({served_old} the expired one, {reused} \
             refresh_token_reused, {} something else{})",
            plan.clients,
            other.len(),
            other.first().map(|o| format!(", e.g. {o}")).unwrap_or_default()
        ));
    }
    if !problems.is_empty() {
        let mut report = problems.join("; ");
        let _ = write!(
            report,
            "\nclients released {:.1} ms after exp; first client wrote {:.2} ms after the release; refresh requests \
             at {:?} ms after the release (refresh_reason: {:?})\ncodexd's log:\n{}",
            crate::stats::ms(storm.released_after_exp),
            crate::stats::ms(storm.first_send),
            refresh_at_ms,
            refreshes.iter().map(|r| r.param("refresh_reason").unwrap_or_default()).collect::<Vec<_>>(),
            daemon.stderr_text()
        );
        bail!("{report}");
    }
    daemon.stop().context("stopping codexd after the storm")?;
    Ok(DaemonRound {
        samples: storm.samples,
        span: storm.span,
        issuer_requests: refreshes.len(),
        served_new,
        served_old,
        reused,
        connect_all: storm.connect_all,
        released_after_exp: storm.released_after_exp,
        first_send: storm.first_send,
        first_reply: storm.first_reply,
        refresh_at_ms,
    })
}

/// What the clients saw.
struct Storm {
    samples: Vec<Duration>,
    replies: Vec<Vec<u8>>,
    span: Duration,
    connect_all: Duration,
    released_wall: SystemTime,
    released_after_exp: Duration,
    first_send: Duration,
    first_reply: Duration,
}

async fn storm(socket: &Path, clients: usize, exp: SystemTime, issuer: &FakeIssuer) -> Result<Storm> {
    let start = Instant::now();
    let mut connections = Vec::with_capacity(clients);
    for n in 0..clients {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("client {n} cannot connect to {}", socket.display()))?;
        let mut reader = BufReader::with_capacity(4096, stream);
        let status = format!("{{\"jsonrpc\":\"2.0\",\"id\":{n},\"method\":\"daemon/status\"}}\n");
        let reply = round_trip(&mut reader, status.as_bytes()).await.with_context(|| format!("client {n}"))?;
        let v: Value = serde_json::from_slice(&reply).context("daemon/status reply is not JSON")?;
        ensure!(v.get("result").is_some(), "daemon/status failed: {v}");
        connections.push(reader);
    }
    let connect_all = start.elapsed();
    ensure!(
        issuer.count(Endpoint::Refresh) == 0,
        "codexd refreshed before the storm (the token expires at {exp:?}; setup took {connect_all:?})"
    );

    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for (n, mut reader) in connections.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        let request = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"getAuthStatus\",\"params\":{{\"includeToken\":true}}}}\n",
            clients + n
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sent = Instant::now();
            let reply = round_trip(&mut reader, request.as_bytes()).await;
            let answered = Instant::now();
            reply.map(|reply| (sent, answered, reply))
        }));
    }
    let wait = exp.duration_since(SystemTime::now()).map_err(|_| {
        anyhow!("setup took longer than the token's lifetime (connecting the clients took {connect_all:?})")
    })?;
    tokio::time::sleep(wait).await;
    let released_wall = SystemTime::now();
    let released = Instant::now();
    barrier.wait().await;

    let got = collect(tasks).await?;
    Ok(Storm {
        samples: got.samples,
        replies: got.answers,
        span: got.last_answer - got.first_sent,
        connect_all,
        released_wall,
        released_after_exp: released_wall.duration_since(exp).unwrap_or_default(),
        first_send: got.first_sent.saturating_duration_since(released),
        first_reply: got.first_answer.saturating_duration_since(released),
    })
}

/// What every client of a storm got, in client order.
struct Collected<T> {
    /// Per client, from sending its request to having the answer.
    samples: Vec<Duration>,
    /// The answers.
    answers: Vec<T>,
    /// The earliest send.
    first_sent: Instant,
    /// The earliest answer.
    first_answer: Instant,
    /// The latest answer.
    last_answer: Instant,
}

/// Awaits every client's task in order; each gives when it sent, when it had the answer, and the answer. The first
/// client that failed (or panicked) fails the whole storm, naming the client.
async fn collect<T>(tasks: Vec<JoinHandle<Result<(Instant, Instant, T)>>>) -> Result<Collected<T>> {
    let mut samples = Vec::with_capacity(tasks.len());
    let mut answers = Vec::with_capacity(tasks.len());
    let (mut first_sent, mut first_answer, mut last_answer) = (None::<Instant>, None::<Instant>, None::<Instant>);
    for (n, task) in tasks.into_iter().enumerate() {
        let (sent, answered, answer) =
            task.await.with_context(|| format!("client {n} panicked"))?.with_context(|| format!("client {n}"))?;
        samples.push(answered - sent);
        answers.push(answer);
        first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
        first_answer = Some(first_answer.map_or(answered, |f| f.min(answered)));
        last_answer = Some(last_answer.map_or(answered, |l| l.max(answered)));
    }
    let (first_sent, last_answer) = first_sent.zip(last_answer).context("no clients")?;
    let first_answer = first_answer.context("no clients")?;
    Ok(Collected { samples, answers, first_sent, first_answer, last_answer })
}

async fn round_trip(reader: &mut BufReader<UnixStream>, request: &[u8]) -> Result<Vec<u8>> {
    reader.get_mut().write_all(request).await.context("cannot send the request")?;
    let mut line = Vec::with_capacity(2048);
    let n = tokio::time::timeout(STEP_DEADLINE, reader.read_until(b'\n', &mut line))
        .await
        .with_context(|| format!("no reply within {STEP_DEADLINE:?}"))?
        .context("read failed")?;
    ensure!(n > 0 && line.ends_with(b"\n"), "connection closed without a reply");
    Ok(line)
}

/// How one baseline client's refresh ended.
enum Answer {
    NewTokens,
    Reused,
    Other(String),
}

fn baseline_round(runtime: &tokio::runtime::Runtime, plan: Plan) -> Result<BaselineRound> {
    let issuer = start_issuer(plan)?;
    let login = issuer.mint(&Account::default());
    issuer.set_access_token_lifetime(REFRESHED_LIFETIME);
    let body = json!({
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_reason": CLI_REFRESH_REASON,
        "refresh_token": login.refresh_token,
    });
    let (samples, answers, span) = runtime.block_on(refresh_each(issuer.url(), &body, plan.clients))?;
    std::thread::sleep(SETTLE);
    let mut round = BaselineRound {
        samples,
        span,
        issuer_requests: issuer.count(Endpoint::Refresh),
        new_tokens: 0,
        reused: 0,
        other: Vec::new(),
    };
    for answer in answers {
        match answer {
            Answer::NewTokens => round.new_tokens += 1,
            Answer::Reused => round.reused += 1,
            Answer::Other(what) => round.other.push(what),
        }
    }
    Ok(round)
}

/// Every client opens its own connection to the issuer (one `GET /codex/device` each, at most
/// [`CONNECTING`] at a time), then all post `body` to `url` at once on those connections; returns the time to each
/// answer, the answers, and the span from the first request to the last answer.
async fn refresh_each(issuer: &str, body: &Value, clients: usize) -> Result<(Vec<Duration>, Vec<Answer>, Duration)> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (barrier, connecting, issuer, body) =
            (Arc::clone(&barrier), Arc::clone(&connecting), issuer.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let warm = async {
                let _permit = connecting.acquire().await?;
                // Its own client, like a process of its own; no proxy, so nothing leaves 127.0.0.1.
                let http = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(STEP_DEADLINE)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .context("cannot build an HTTP client")?;
                let page = http.get(format!("{issuer}/codex/device")).send().await.context("cannot connect")?;
                ensure!(page.status().is_success(), "GET /codex/device answered {}", page.status());
                page.bytes().await.context("cannot read /codex/device")?;
                anyhow::Ok(http)
            }
            .await;
            // Always reach the barrier, or every other client would wait forever.
            barrier.wait().await;
            let http = warm?;
            let sent = Instant::now();
            let request = http.post(format!("{issuer}/oauth/token")).header("originator", "codex_cli_rs").json(&body);
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text().await {
                        Ok(text) => classify(status, &text),
                        Err(e) => Answer::Other(format!("HTTP {status}, body unreadable: {e}")),
                    }
                }
                Err(e) => Answer::Other(format!("request failed: {e}")),
            };
            anyhow::Ok((sent, Instant::now(), answer))
        }));
    }
    barrier.wait().await;
    let got = collect(tasks).await?;
    Ok((got.samples, got.answers, got.last_answer - got.first_sent))
}

fn classify(status: u16, text: &str) -> Answer {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    match status {
        200 if v["access_token"].is_string() && v["refresh_token"].is_string() => Answer::NewTokens,
        401 if v["error"]["code"].as_str() == Some("refresh_token_reused") => Answer::Reused,
        _ => Answer::Other(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>())),
    }
}
