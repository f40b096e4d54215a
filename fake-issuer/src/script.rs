//! Scripted faults: per-endpoint FIFO queues plus an optional fault for every request.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The issuer endpoints a test can count and script faults for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /oauth/authorize`.
    Authorize,
    /// `POST /oauth/token` with `grant_type=authorization_code`.
    CodeExchange,
    /// `POST /oauth/token` with the token-exchange grant (API key).
    TokenExchange,
    /// `POST /oauth/token` with `grant_type=refresh_token`.
    Refresh,
    /// `POST /api/accounts/deviceauth/usercode`.
    DeviceUserCode,
    /// `POST /api/accounts/deviceauth/token`.
    DeviceToken,
    /// `POST /oauth/revoke`.
    Revoke,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Authorize,
        Endpoint::CodeExchange,
        Endpoint::TokenExchange,
        Endpoint::Refresh,
        Endpoint::DeviceUserCode,
        Endpoint::DeviceToken,
        Endpoint::Revoke,
    ];

    /// The snake_case name used by the control API (`"refresh"`, `"device_token"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::CodeExchange => "code_exchange",
            Endpoint::TokenExchange => "token_exchange",
            Endpoint::Refresh => "refresh",
            Endpoint::DeviceUserCode => "device_user_code",
            Endpoint::DeviceToken => "device_token",
            Endpoint::Revoke => "revoke",
        }
    }
}

/// A fault applied to one request (or every request) of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with the JSON body `{"error":{"message":"internal error","type":"server_error","code":null}}`.
    Status(u16),
    /// Read the request and never answer until the fault is cleared or the server stops (then close the connection).
    Hang,
    /// Read the request and close the connection without a response.
    Drop,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Refresh only: rotate (the old token becomes used), then close the connection without a response.
    LoseResponseAfterRotate,
    /// The real refresh error body with this code and its real message, with this HTTP status.
    RefreshError {
        /// HTTP status (400 or 401 in the wild).
        status: u16,
        /// `refresh_token_expired`, `refresh_token_invalidated`, `refresh_token_reused` or any other code.
        code: String,
    },
    /// Authorize only: redirect with `error=<code>&error_description=...&state=<state>` instead of a code.
    AuthorizeError(String),
    /// Authorize only: redirect with a code but a different state.
    WrongState,
    /// DeviceToken only: 403 `{"error":"slow_down","interval":"<n>"}` (no interval when `None`).
    SlowDown {
        /// The new polling interval in seconds, if any.
        interval_secs: Option<u64>,
    },
    /// DeviceToken only: 410 `{"error":"expired_token"}`.
    DeviceExpired,
}

/// The control API's JSON form of a [`Fault`]: `{"kind":"status","status":500}`, `{"kind":"delay","ms":200}`, ...
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultSpec {
    /// [`Fault::Status`].
    Status {
        /// HTTP status.
        status: u16,
    },
    /// [`Fault::Hang`].
    Hang,
    /// [`Fault::Drop`].
    Drop,
    /// [`Fault::Delay`].
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// [`Fault::LoseResponseAfterRotate`].
    LoseResponseAfterRotate,
    /// [`Fault::RefreshError`].
    RefreshError {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
    },
    /// [`Fault::AuthorizeError`].
    AuthorizeError {
        /// OAuth error code, e.g. `access_denied`.
        error: String,
    },
    /// [`Fault::WrongState`].
    WrongState,
    /// [`Fault::SlowDown`].
    SlowDown {
        /// New interval in seconds.
        #[serde(default)]
        interval_secs: Option<u64>,
    },
    /// [`Fault::DeviceExpired`].
    DeviceExpired,
}

impl From<FaultSpec> for Fault {
    fn from(spec: FaultSpec) -> Fault {
        match spec {
            FaultSpec::Status { status } => Fault::Status(status),
            FaultSpec::Hang => Fault::Hang,
            FaultSpec::Drop => Fault::Drop,
            FaultSpec::Delay { ms } => Fault::Delay(Duration::from_millis(ms)),
            FaultSpec::LoseResponseAfterRotate => Fault::LoseResponseAfterRotate,
            FaultSpec::RefreshError { status, code } => Fault::RefreshError { status, code },
            FaultSpec::AuthorizeError { error } => Fault::AuthorizeError(error),
            FaultSpec::WrongState => Fault::WrongState,
            FaultSpec::SlowDown { interval_secs } => Fault::SlowDown { interval_secs },
            FaultSpec::DeviceExpired => Fault::DeviceExpired,
        }
    }
}

/// The scripted faults of every endpoint.
#[derive(Debug, Default)]
pub(crate) struct Script {
    queued: HashMap<Endpoint, VecDeque<Fault>>,
    always: HashMap<Endpoint, Fault>,
}

impl Script {
    /// Queues `fault` for the next request of `endpoint` that has no earlier fault queued.
    pub(crate) fn push(&mut self, endpoint: Endpoint, fault: Fault) {
        self.queued.entry(endpoint).or_default().push_back(fault);
    }

    /// Applies `fault` to every request of `endpoint` (after the queue is empty) until cleared.
    pub(crate) fn set_always(&mut self, endpoint: Endpoint, fault: Fault) {
        self.always.insert(endpoint, fault);
    }

    /// Forgets every fault.
    pub(crate) fn clear(&mut self) {
        self.queued.clear();
        self.always.clear();
    }

    /// The fault for the request that just arrived at `endpoint`, if any.
    pub(crate) fn next(&mut self, endpoint: Endpoint) -> Option<Fault> {
        if let Some(fault) = self.queued.get_mut(&endpoint).and_then(VecDeque::pop_front) {
            return Some(fault);
        }
        self.always.get(&endpoint).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_come_first_then_always_then_nothing() {
        let mut script = Script::default();
        script.push(Endpoint::Refresh, Fault::Status(500));
        script.push(Endpoint::Refresh, Fault::Drop);
        assert_eq!(script.next(Endpoint::Refresh), Some(Fault::Status(500)));
        assert_eq!(script.next(Endpoint::Revoke), None);
        assert_eq!(script.next(Endpoint::Refresh), Some(Fault::Drop));
        assert_eq!(script.next(Endpoint::Refresh), None);
        script.set_always(Endpoint::Refresh, Fault::Hang);
        assert_eq!(script.next(Endpoint::Refresh), Some(Fault::Hang));
        assert_eq!(script.next(Endpoint::Refresh), Some(Fault::Hang));
        script.clear();
        assert_eq!(script.next(Endpoint::Refresh), None);
    }

    #[test]
    fn fault_spec_parses_the_control_api_json() {
        let spec: FaultSpec = serde_json::from_str(r#"{"kind":"status","status":500}"#).unwrap();
        assert_eq!(Fault::from(spec), Fault::Status(500));
        let spec: FaultSpec = serde_json::from_str(r#"{"kind":"slow_down"}"#).unwrap();
        assert_eq!(Fault::from(spec), Fault::SlowDown { interval_secs: None });
        let spec: FaultSpec =
            serde_json::from_str(r#"{"kind":"refresh_error","status":401,"code":"refresh_token_expired"}"#).unwrap();
        assert_eq!(Fault::from(spec), Fault::RefreshError { status: 401, code: "refresh_token_expired".into() });
    }
}
