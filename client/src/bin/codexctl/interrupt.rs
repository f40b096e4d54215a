//! Ctrl-C while codexctl waits: a background thread turns each interrupt into a call of a handler, so that the
//! blocking main thread can cancel the login (it checks a flag between short reads) instead of dying mid-way.

use std::io;

/// From now on, Ctrl-C (SIGINT) no longer ends the process: `handler` runs on a background thread for each
/// one, with how many arrived so far (1 for the first). The handler is registered before this returns.
pub(crate) fn on_interrupt(handler: impl Fn(u32) + Send + 'static) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut interrupts = {
        let _context = runtime.enter();
        listen()?
    };
    std::thread::Builder::new().name("codexctl-interrupt".to_owned()).spawn(move || {
        runtime.block_on(async move {
            let mut count = 0u32;
            while interrupts.recv().await.is_some() {
                count = count.saturating_add(1);
                handler(count);
            }
        });
    })?;
    Ok(())
}

#[cfg(unix)]
fn listen() -> io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
}

#[cfg(windows)]
fn listen() -> io::Result<tokio::signal::windows::CtrlC> {
    tokio::signal::windows::ctrl_c()
}
