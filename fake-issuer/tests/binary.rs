//! The `codexd-fake-issuer` binary: flags, the listening line, files it writes, SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// Kills the child if a test fails before it stopped it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codexd-fake-issuer"))
}

#[test]
fn help_explains_how_to_point_codexd_at_it() {
    let output = binary().arg("--help").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("CODEXD_ISSUER"), "{text}");
    assert!(text.contains("--tls-dir") && text.contains("--auth-json"));
}

#[test]
fn serves_https_writes_ca_and_auth_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.json");
    let tls = dir.path().join("tls");
    let mut child = binary()
        .args(["--port", "0", "--access-token-lifetime-secs", "120", "--tls-dir"])
        .arg(&tls)
        .arg("--auth-json")
        .arg(&auth)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut running = Running(Some(child));

    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx.recv_timeout(DEADLINE).expect("listening line");
    let url = line.trim().strip_prefix("codexd-fake-issuer listening on ").expect(&line).to_owned();
    assert!(url.starts_with("https://localhost:"), "{url}");

    let ca = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777, 0o600);
    let auth_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&auth).unwrap()).unwrap();
    assert_eq!(auth_json["tokens"]["oauth_provenance"]["issuer"], url.as_str());
    let refresh_token = auth_json["tokens"]["refresh_token"].as_str().unwrap().to_owned();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let body = runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .timeout(DEADLINE)
            .build()
            .unwrap();
        let response = client
            .post(format!("{url}/oauth/token"))
            .json(&serde_json::json!({
                "client_id": codexd_fake_issuer::CLIENT_ID,
                "grant_type": "refresh_token",
                "refresh_reason": "forced",
                "refresh_token": refresh_token,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<serde_json::Value>().await.unwrap()
    });
    assert_eq!(body["expires_in"], 120);

    let child = running.0.take().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = child;
        let status = child.wait();
        let mut log = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log);
        let _ = done_tx.send((status, log));
    });
    let (status, log) = done_rx.recv_timeout(DEADLINE).expect("exits after SIGTERM");
    assert!(status.unwrap().success());
    assert!(log.contains("POST /oauth/token [refresh]"), "{log}");
    assert!(!log.contains(&refresh_token), "the log never shows token values");
}
