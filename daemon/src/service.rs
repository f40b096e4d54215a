//! Telling the service manager how the daemon is doing (`sd_notify`, Linux): `READY=1` once the socket serves,
//! `STOPPING=1` when shutdown begins. Without `NOTIFY_SOCKET` (started by hand, by launchd, by `codexctl`) these
//! do nothing; elsewhere than on Linux they do nothing at all.

use std::path::Path;

/// Sends `READY=1` and `STATUS=serving <socket>` (a `Type=notify` unit is started from then on).
pub fn notify_ready(socket: &Path) {
    #[cfg(target_os = "linux")]
    {
        let status = format!("serving {}", socket.display());
        send(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&status)], "READY=1");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// Sends `STOPPING=1` and `STATUS=shutting down`.
pub fn notify_stopping() {
    #[cfg(target_os = "linux")]
    send(&[sd_notify::NotifyState::Stopping, sd_notify::NotifyState::Status("shutting down")], "STOPPING=1");
}

#[cfg(target_os = "linux")]
fn send(states: &[sd_notify::NotifyState<'_>], what: &str) {
    match sd_notify::notify(states) {
        Ok(()) if std::env::var_os("NOTIFY_SOCKET").is_some() => tracing::debug!("told the service manager {what}"),
        Ok(()) => {}
        Err(e) => tracing::warn!(error = %e, "could not tell the service manager {what}"),
    }
}
