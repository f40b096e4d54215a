//! `codexctl stop`: asks the daemon to shut down, then waits until it has closed the connection.

use crate::{Ctx, EXIT_OK, EXIT_REFUSED, Failure};
use codexd_client::proto::ErrorCode;
use codexd_client::{Client, ClientError};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// How long the daemon gets to finish its requests and close the connection.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `daemon/shutdown` and waits (bounded) for the connection to close.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    let mut client = ctx.connect()?;
    shut_down(ctx, &mut client)?;
    writeln!(io::stdout().lock(), "codexd stopped")?;
    Ok(EXIT_OK)
}

/// Sends `daemon/shutdown` on `client` and waits until the daemon closes the connection, at most
/// [`STOP_TIMEOUT`].
pub(crate) fn shut_down(ctx: &Ctx, client: &mut Client) -> anyhow::Result<()> {
    match client.shutdown() {
        // Closed before the answer arrived, or already on its way down: both mean it is stopping.
        Ok(()) | Err(ClientError::Disconnected) => {}
        Err(ClientError::Daemon(e)) if e.kind() == ErrorCode::ShuttingDown => {}
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(ctx).into());
        }
        client.set_read_timeout(Some(left))?;
        match client.next_notification() {
            Ok(None) | Err(ClientError::Disconnected) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e) if e.is_read_timeout() => {
                return Err(timed_out(ctx).into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The failure for a daemon that accepted the shutdown but is still running after [`STOP_TIMEOUT`].
pub(crate) fn timed_out(ctx: &Ctx) -> Failure {
    Failure::new(
        EXIT_REFUSED,
        format!(
            "codexd {} accepted the shutdown but is still running after {} s; check its logs",
            ctx.at(),
            STOP_TIMEOUT.as_secs()
        ),
    )
}
