//! `codexctl restart`: replaces the running daemon with a fresh one (e.g. after an upgrade). A daemon that systemd
//! runs (its `codexd.socket` owns the socket, or `codexd.service`'s main pid is the daemon) is restarted with
//! `systemctl --user restart codexd.service`; any other is asked to shut down (`daemon/shutdown`), awaited until
//! its process is gone, and replaced by an autostarted one.

use crate::autostart::{self, POLL, nothing_listens};
use crate::socket_unit;
use crate::{Ctx, EXIT_OK, EXIT_UNREACHABLE, Failure, handshake, stop};
use codexd_client::proto::methods::DaemonStatusResult;
use codexd_client::{Client, ClientError};
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

/// Restarts the daemon; exit 0 once a new one serves.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    let socket = &ctx.socket.path;
    let old = match ctx.connect() {
        Ok(mut client) => {
            let status = client.daemon_status()?;
            Some((status, client))
        }
        Err(ClientError::Unreachable { source, .. }) if nothing_listens(&source) => None,
        Err(e) => return Err(e.into()),
    };
    let old_pid = old.as_ref().map(|(status, _)| status.pid);
    let by_systemd = socket_unit::managed_by_systemd(socket, old_pid);
    if by_systemd {
        drop(old);
        socket_unit::restart_service().map_err(|message| Failure::new(EXIT_UNREACHABLE, message))?;
        wait_for_new(ctx, old_pid)?;
    } else {
        if let Some((status, client)) = old {
            stop_and_wait(ctx, client, &status)?;
        }
        if !ctx.autostart.is_on() {
            let stopped = if old_pid.is_some() { "codexd stopped" } else { "codexd was not running" };
            return Err(Failure::new(
                EXIT_UNREACHABLE,
                format!(
                    "{stopped}; autostart is {}, so start it yourself: {}",
                    ctx.autostart.describe(),
                    autostart::manual_command(socket)
                ),
            )
            .into());
        }
        autostart::start(socket, false)?;
    }
    let mut client = ctx.connect()?;
    let init = handshake::initialize(ctx, &mut client)?;
    let new = client.daemon_status()?;
    let how = if by_systemd { " by systemd" } else { "" };
    let mut out = io::stdout().lock();
    match old_pid {
        Some(pid) => {
            writeln!(out, "codexd restarted{how}: pid {pid} -> pid {} (codexd {})", new.pid, init.server_info.version)?;
        }
        None => {
            writeln!(
                out,
                "codexd was not running; started{how} pid {} (codexd {})",
                new.pid, init.server_info.version
            )?;
        }
    }
    Ok(EXIT_OK)
}

/// Asks the daemon on `client` (which said `old` to `daemon/status`) to shut down, closes the connection, and waits
/// until that daemon is gone.
pub(crate) fn stop_and_wait(ctx: &Ctx, mut client: Client, old: &DaemonStatusResult) -> anyhow::Result<()> {
    stop::shut_down(ctx, &mut client)?;
    drop(client);
    wait_gone(ctx, old)
}

/// Waits until the stopped daemon is gone: its process, when `<socket>.lock` shows it ran here; else until nothing
/// answers on the socket (a daemon on another machine, through a forwarded socket).
fn wait_gone(ctx: &Ctx, old: &DaemonStatusResult) -> anyhow::Result<()> {
    let socket: &Path = &ctx.socket.path;
    let local = autostart::lock_holder(socket) == Some(old.pid);
    let deadline = Instant::now() + stop::STOP_TIMEOUT;
    loop {
        let gone = if local { !autostart::process_alive(old.pid) } else { autostart::probe(socket).is_none() };
        if gone {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(stop::timed_out(ctx).into());
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until a daemon other than `old_pid` answers (systemd starts it).
fn wait_for_new(ctx: &Ctx, old_pid: Option<u32>) -> anyhow::Result<()> {
    let deadline = Instant::now() + autostart::START_TIMEOUT;
    loop {
        if autostart::probe(&ctx.socket.path).is_some_and(|status| Some(status.pid) != old_pid) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                EXIT_UNREACHABLE,
                format!(
                    "systemd restarted {} but no new codexd answers {} after {} s; see journalctl --user -u {}",
                    socket_unit::SERVICE_UNIT,
                    ctx.at(),
                    autostart::START_TIMEOUT.as_secs(),
                    socket_unit::SERVICE_UNIT
                ),
            )
            .into());
        }
        std::thread::sleep(POLL);
    }
}
