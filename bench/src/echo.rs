//! The baseline server: a bare tokio Unix-socket server, one task per connection, that reads a line and
//! writes back a fixed reply line of the same size as codexd's reply. It runs as its own process (this binary
//! started with `echo-server <socket> <reply_len>`), on a two-worker runtime like codexd, so that its CPU time
//! can be read from `/proc` the same way.

use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};

/// Runs the echo server until SIGTERM. `args` are `<socket> <reply_len>`.
pub fn main(args: &[String]) -> Result<()> {
    let [socket, reply_len] = args else {
        anyhow::bail!("usage: codexd-bench echo-server <socket> <reply_len>");
    };
    let socket = PathBuf::from(socket);
    let reply_len: usize = reply_len.parse().context("reply_len must be a number")?;
    ensure!(reply_len >= 8, "reply_len must be at least 8 bytes");
    // `{"r":"xxx…"}\n`, exactly reply_len bytes.
    let mut reply = b"{\"r\":\"".to_vec();
    reply.resize(reply_len - 3, b'x');
    reply.extend_from_slice(b"\"}\n");
    let reply: &'static [u8] = reply.leak();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    runtime.block_on(async {
        let listener = UnixListener::bind(&socket).with_context(|| format!("cannot bind {}", socket.display()))?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                accepted = listener.accept() => {
                    let (stream, _) = accepted.context("accept failed")?;
                    tokio::spawn(serve(stream, reply));
                }
            }
        }
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}

async fn serve(stream: UnixStream, reply: &'static [u8]) {
    let mut reader = BufReader::with_capacity(4096, stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if reader.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}
