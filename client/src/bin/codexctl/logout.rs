//! `codexctl logout`: removes the credentials everywhere.

use crate::{Ctx, EXIT_OK};
use std::io::{self, Write};

/// Logs out and says so.
pub(crate) fn run(ctx: &Ctx) -> anyhow::Result<u8> {
    ctx.connect_or_start()?.logout()?;
    writeln!(io::stdout().lock(), "Logged out")?;
    Ok(EXIT_OK)
}
