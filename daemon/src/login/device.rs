//! The device-code login (the Codex CLI's own flow, not RFC 8628): poll at the issuer's interval until the
//! user has entered the code, then exchange the code with the server-made PKCE verifier.

use crate::daemon::Daemon;
use crate::oauth::{DeviceCode, DevicePoll, IssuerError, LoginTokens};
use std::time::Duration;

/// The shortest pause between two polls, whatever the issuer says.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Polls until the code is approved (the caller bounds the whole login by the device-code timeout), then
/// exchanges it for tokens.
pub async fn poll(daemon: &Daemon, code: &DeviceCode) -> Result<LoginTokens, String> {
    let issuer = daemon.issuer();
    let mut interval = code.interval.max(MIN_INTERVAL);
    loop {
        tokio::time::sleep(interval).await;
        match issuer.device_poll(code).await {
            Ok(DevicePoll::Pending { slow_down: false, .. }) => {}
            Ok(DevicePoll::Pending { slow_down: true, interval: asked }) => {
                // RFC 8628: without a new interval, 5 s slower than the current one, every time.
                interval = asked.unwrap_or(interval + Duration::from_secs(5)).max(MIN_INTERVAL);
                tracing::info!(
                    interval_ms = interval.as_millis() as u64,
                    "device login: the issuer asked to poll less often"
                );
            }
            Ok(DevicePoll::Approved { code: authorization, code_verifier }) => {
                let redirect_uri = format!("{}/deviceauth/callback", issuer.endpoints().issuer);
                return issuer
                    .exchange_code(&authorization, &redirect_uri, &code_verifier)
                    .await
                    .map_err(|e| format!("the device code could not be exchanged for tokens: {e}"));
            }
            // A network hiccup or a server error may pass: keep polling until the login's deadline.
            Err(e @ (IssuerError::Unreachable { .. } | IssuerError::Status { status: 500..=599, .. })) => {
                tracing::warn!(error = %e, "device login: poll failed; retrying");
            }
            Err(IssuerError::Status { code: Some(code), .. }) if code == "expired_token" => {
                return Err("the device code expired before it was entered; start the login again".to_owned());
            }
            Err(e) => return Err(format!("device code login failed: {e}")),
        }
    }
}
