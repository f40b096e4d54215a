//! A scripted fake daemon on a Unix socket in a temporary directory, for the client's unit tests.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// A fresh directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("codexd-client-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The server side of one connection.
pub(crate) struct Peer {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Peer {
    /// The next request line, parsed.
    pub(crate) fn read_request(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "a request is one line: {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends one line (a newline is added).
    pub(crate) fn send(&mut self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        // The client may already be gone in tests of failures.
        let _ = self.writer.write_all(&line);
    }

    /// Sends raw bytes.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes);
    }
}

/// A listener that accepts one connection and runs `script` on it, then closes it.
pub(crate) struct FakeDaemon {
    _dir: TempDir,
    pub(crate) path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    pub(crate) fn start(script: impl FnOnce(&mut Peer) + Send + 'static) -> Self {
        let dir = TempDir::new();
        let path = dir.0.join("codexd.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut peer = Peer { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
            script(&mut peer);
        });
        Self { _dir: dir, path, thread: Some(thread) }
    }

    /// Waits for the script to finish, surfacing its assertion failures.
    pub(crate) fn join(mut self) {
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}
