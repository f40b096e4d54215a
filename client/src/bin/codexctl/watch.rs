//! `codexctl watch`: every notification as one compact JSON line, until the daemon shuts down.

use crate::{Ctx, EXIT_OK, EXIT_UNREACHABLE, Failure, handshake};
use codexd_client::proto::methods::notification;
use std::io::{self, Write};

/// Subscribes and prints notifications; exit 0 after `daemon/shuttingDown`, 3 if the connection drops first.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    // No read timeout: notifications may be hours apart.
    let mut client = ctx.reach()?;
    handshake::initialize(ctx, &mut client)?;
    let mut out = io::stdout().lock();
    while let Some(n) = client.next_notification()? {
        writeln!(out, "{}", serde_json::to_string(&n)?)?;
        out.flush()?;
        if n.method == notification::SHUTTING_DOWN {
            return Ok(EXIT_OK);
        }
    }
    Err(Failure::new(
        EXIT_UNREACHABLE,
        format!(
            "codexd {} closed the connection without announcing a shutdown; it may have crashed, check its logs",
            ctx.at()
        ),
    )
    .into())
}
