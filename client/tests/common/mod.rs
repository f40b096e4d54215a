//! What the codexctl integration tests share: a scratch directory, the way codexctl is run, and (on Unix) a
//! scripted fake daemon that answers codexctl's one connection.
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh empty directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("codexctl-{tag}-{}-{nanos}-{n}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `codexctl ARGS` with `CODEXD_SOCKET` set to `socket` (or unset), stdio piped, and autostart off: these tests
/// run in the developer's environment and must never start a daemon there. No display and no `BROWSER` either, so
/// that no browser opens.
pub fn codexctl(args: &[&str], socket: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codexctl"));
    cmd.args(args).env_remove("CODEXD_SOCKET").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    cmd.env_remove("BROWSER").env("CODEXD_NO_AUTOSTART", "1");
    if let Some(socket) = socket {
        cmd.env("CODEXD_SOCKET", socket);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` (stdio piped) to the end with `stdin` as its whole standard input.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd.spawn().expect("codexctl runs");
    let mut input = child.stdin.take().unwrap();
    // codexctl may exit before reading (e.g. on a usage error): a broken pipe here is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("codexctl runs")
}

/// How a codexctl run ended, with its output as text.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Finished {
    fn from(out: Output) -> Self {
        Finished {
            status: out.status,
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Finished {
    pub fn assert_exit(&self, code: i32) {
        assert_eq!(self.status.code(), Some(code), "stderr:\n{}", self.stderr);
        assert_eq!(self.stdout, "", "codexctl login/refresh print nothing on stdout");
    }
}

/// The scripted fake daemon.
#[cfg(unix)]
pub mod fake {
    use super::{Finished, TempDir};
    use serde_json::{Value, json};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;
    use std::process::Command;
    use std::thread::JoinHandle;

    /// The daemon's side of the one connection codexctl opens.
    pub struct Peer {
        reader: BufReader<UnixStream>,
        writer: UnixStream,
    }

    impl Peer {
        /// The next request, checked to be `method`.
        pub fn expect(&mut self, method: &str) -> Value {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let request: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert_eq!(request["method"], method, "{request}");
            request
        }

        pub fn send(&mut self, message: &Value) {
            let mut line = serde_json::to_vec(message).unwrap();
            line.push(b'\n');
            let _ = self.writer.write_all(&line);
        }

        /// Answers `request` with `outcome`: `{"result": ..}` or `{"error": ..}`.
        pub fn answer(&mut self, request: &Value, outcome: &Value) {
            let mut answer = json!({"jsonrpc":"2.0","id":request["id"]});
            answer.as_object_mut().unwrap().extend(outcome.as_object().unwrap().clone());
            self.send(&answer);
        }

        pub fn reply(&mut self, request: &Value, result: &Value) {
            self.answer(request, &json!({"result":result}));
        }

        pub fn reply_error(&mut self, request: &Value, code: i64, message: &str, reason: &str) {
            self.answer(request, &json!({"error":{"code":code,"message":message,"data":{"reason":reason}}}));
        }

        pub fn notify(&mut self, method: &str, params: &Value) {
            self.send(&json!({"jsonrpc":"2.0","method":method,"params":params}));
        }

        pub fn completed(&mut self, login_id: &str, success: bool, error: Option<&str>) {
            self.notify("account/login/completed", &json!({"loginId":login_id,"success":success,"error":error}));
        }

        /// `initialize`, answered.
        pub fn handshake(&mut self) {
            let init = self.expect("initialize");
            assert_eq!(init["params"]["clientInfo"]["name"], "codexctl");
            self.reply(
                &init,
                &json!({"serverInfo":{"name":"codexd","version":"0.1.0"},"protocolVersion":1,"codexHome":"/h"}),
            );
        }

        /// Waits until codexctl closes the connection, so that the script ends after codexctl has.
        pub fn until_closed(&mut self) {
            let mut rest = Vec::new();
            let _ = self.reader.read_to_end(&mut rest);
        }
    }

    /// A socket whose one connection runs `script`.
    pub struct FakeDaemon {
        _dir: TempDir,
        pub socket: PathBuf,
        thread: Option<JoinHandle<()>>,
    }

    impl FakeDaemon {
        pub fn start(script: impl FnOnce(&mut Peer) + Send + 'static) -> Self {
            let dir = TempDir::new("daemon");
            let socket = dir.0.join("codexd.sock");
            let listener = UnixListener::bind(&socket).unwrap();
            let thread = std::thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                let mut peer = Peer { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
                script(&mut peer);
            });
            Self { _dir: dir, socket, thread: Some(thread) }
        }

        /// `codexctl args` on this socket ([`super::codexctl`]). Once the script's one connection is over, nothing
        /// listens on the socket, and autostart is off.
        pub fn codexctl(&self, args: &[&str]) -> Command {
            super::codexctl(args, Some(&self.socket))
        }

        /// Runs codexctl to the end with `stdin`, then waits for the script (surfacing its assertion failures).
        pub fn run(mut self, cmd: Command, stdin: &[u8]) -> Finished {
            let out = super::run(cmd, stdin);
            self.join();
            out.into()
        }

        pub fn join(&mut self) {
            if let Some(thread) = self.thread.take()
                && let Err(panic) = thread.join()
            {
                std::panic::resume_unwind(panic);
            }
        }
    }
}
