//! Request/reply round trips on open connections: one blocking `std` Unix stream per connection, each on its own
//! thread, writing one request line and reading one reply line at a time. The same code drives codexd and the
//! echo baseline.

use crate::procfs;
use crate::stats::Summary;
use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long one reply may take before the measurement is abandoned.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);
/// Request ids start here so that every id has ten digits and every reply has the same length: connection `n`
/// numbers its requests from `FIRST_ID + n * PER_CONNECTION_IDS`.
const FIRST_ID: u64 = 1_000_000_000;
const PER_CONNECTION_IDS: u64 = 1_000_000;

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent connections, one thread each.
    pub connections: usize,
    /// Requests per connection before measuring.
    pub warmup: usize,
    /// How long to measure; every connection keeps a request outstanding for the whole window.
    pub window: Duration,
    /// At most this many measured requests per connection, whatever the window.
    pub max_requests: usize,
}

/// What one window measured.
#[derive(Debug)]
pub struct Run {
    samples: Vec<Duration>,
    wall: Duration,
    server_ticks: u64,
    counts: Vec<usize>,
}

/// What several windows measured, pooled.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Round-trip latency of every measured request.
    pub latency: Summary,
    /// Measured requests per second, all connections together.
    pub throughput: f64,
    /// The server's CPU time (user + system) during the measured windows, in clock ticks.
    pub server_ticks: u64,
    /// Fewest requests one connection completed in one window (fairness: compare with `most_per_connection`).
    pub fewest_per_connection: usize,
    /// Most requests one connection completed in one window.
    pub most_per_connection: usize,
    /// How many windows were pooled.
    pub windows: usize,
}

/// Pools the samples of several windows (taken alternately with the baseline, so that drift hits both alike).
pub fn pool(runs: Vec<Run>) -> Result<Outcome> {
    let windows = runs.len();
    let wall: Duration = runs.iter().map(|r| r.wall).sum();
    let server_ticks = runs.iter().map(|r| r.server_ticks).sum();
    let fewest_per_connection = runs.iter().flat_map(|r| r.counts.iter().copied()).min().unwrap_or(0);
    let most_per_connection = runs.iter().flat_map(|r| r.counts.iter().copied()).max().unwrap_or(0);
    let mut samples: Vec<Duration> = runs.into_iter().flat_map(|r| r.samples).collect();
    let latency = Summary::of(&mut samples)?;
    Ok(Outcome {
        latency,
        throughput: latency.count as f64 / wall.as_secs_f64(),
        server_ticks,
        fewest_per_connection,
        most_per_connection,
        windows,
    })
}

/// The request line for id `id`: `getAuthStatus {includeToken:true}`.
pub fn request_line(id: u64) -> Vec<u8> {
    format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"getAuthStatus\",\"params\":{{\"includeToken\":true}}}}\n")
        .into_bytes()
}

/// The id the first request of connection 0 carries, for probing the reply size.
pub fn probe_id() -> u64 {
    FIRST_ID
}

/// Runs one window of `load` against `socket`. Every reply must be `reply_len` bytes; the first reply of each
/// connection is also given to `check`. `server_pid` is read from `/proc` around the measured phase.
pub fn run(
    socket: &Path,
    server_pid: u32,
    load: Load,
    reply_len: usize,
    check: &(dyn Fn(&[u8]) -> Result<()> + Sync),
) -> Result<Run> {
    ensure!(
        load.connections < 100 && ((load.warmup + load.max_requests) as u64) < PER_CONNECTION_IDS,
        "load too large for fixed-width ids"
    );
    let barrier = Barrier::new(load.connections + 1);
    let stop = AtomicBool::new(false);
    let mut counts = Vec::with_capacity(load.connections);
    let (samples, wall, server_ticks) = std::thread::scope(|scope| -> Result<_> {
        let workers: Vec<_> = (0..load.connections)
            .map(|n| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || client(socket, n, load, reply_len, check, barrier, stop))
            })
            .collect();
        barrier.wait();
        let ticks_before = procfs::cpu_ticks(server_pid)?;
        let start = Instant::now();
        // Sleep in short steps so that a connection that failed early ends the run early.
        while start.elapsed() < load.window && !workers.iter().any(std::thread::ScopedJoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(5).min(load.window.saturating_sub(start.elapsed())));
        }
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for (n, worker) in workers.into_iter().enumerate() {
            let samples = match worker.join() {
                Ok(result) => result.with_context(|| format!("connection {n}"))?,
                Err(_) => bail!("client thread {n} panicked"),
            };
            counts.push(samples.len());
            latencies.extend(samples);
        }
        let wall = start.elapsed();
        let ticks_after = procfs::cpu_ticks(server_pid)?;
        Ok((latencies, wall, ticks_after - ticks_before))
    })?;
    Ok(Run { samples, wall, server_ticks, counts })
}

/// One connection: warm up, wait for the others at the barrier, then measure until `stop`.
fn client(
    socket: &Path,
    n: usize,
    load: Load,
    reply_len: usize,
    check: &(dyn Fn(&[u8]) -> Result<()> + Sync),
    barrier: &Barrier,
    stop: &AtomicBool,
) -> Result<Vec<Duration>> {
    let mut conn = None;
    let warm = (|| -> Result<()> {
        let stream = UnixStream::connect(socket).with_context(|| format!("cannot connect to {}", socket.display()))?;
        stream.set_read_timeout(Some(REPLY_DEADLINE))?;
        stream.set_write_timeout(Some(REPLY_DEADLINE))?;
        let mut c =
            Conn { reader: BufReader::with_capacity(8192, stream.try_clone()?), writer: stream, reply: Vec::new() };
        let first_id = FIRST_ID + n as u64 * PER_CONNECTION_IDS;
        c.round_trip(first_id, reply_len)?;
        check(&c.reply).context("unexpected reply")?;
        for i in 1..load.warmup as u64 {
            c.round_trip(first_id + i, reply_len)?;
        }
        conn = Some(c);
        Ok(())
    })();
    // Always reach the barrier, or the other threads and the main thread would wait forever.
    barrier.wait();
    warm?;
    let mut c = conn.context("no connection after warm-up")?;
    let first_id = FIRST_ID + n as u64 * PER_CONNECTION_IDS + load.warmup as u64;
    let mut samples = Vec::with_capacity(load.max_requests.min(100_000));
    for i in 0..load.max_requests as u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let start = Instant::now();
        c.round_trip(first_id + i, reply_len)?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    reply: Vec<u8>,
}

impl Conn {
    fn round_trip(&mut self, id: u64, reply_len: usize) -> Result<()> {
        self.writer.write_all(&request_line(id)).context("cannot send the request")?;
        self.reply.clear();
        self.reader.read_until(b'\n', &mut self.reply).context("no reply")?;
        if self.reply.len() != reply_len {
            bail!(
                "reply to id {id} is {} bytes, expected {reply_len}: {}",
                self.reply.len(),
                String::from_utf8_lossy(&self.reply[..self.reply.len().min(300)])
            );
        }
        Ok(())
    }
}
