//! JSON-RPC 2.0 envelopes: requests, responses, notifications and error objects.
//!
//! Replies always carry `"jsonrpc":"2.0"`. Requests without the field are accepted so that clients written for
//! the Codex app-server (which omits it) work unchanged; a request that names any other version is refused.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The only protocol version spoken.
pub const JSONRPC_VERSION: &str = "2.0";

/// A request id: a number or a string, echoed back in the response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A request from a client. Without an `id` it is a notification and gets no reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// `"2.0"` or absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonrpc: Option<String>,
    /// The id to echo; `None` for a client notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The method name, e.g. `getAuthStatus`.
    pub method: String,
    /// The parameters; absent, `null`, an object or (unused here) an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

impl Request {
    /// A request with `"jsonrpc":"2.0"`, an id and optional params.
    pub fn new(id: RequestId, method: impl Into<String>, params: Option<Value>) -> Self {
        Self { jsonrpc: Some(JSONRPC_VERSION.to_owned()), id: Some(id), method: method.into(), params }
    }

    /// Parses one frame. Fails with a ready error reply: `-32700` for bytes that are not UTF-8 JSON,
    /// `-32600` for JSON that is not a request object (keeping the id when one could be read).
    pub fn parse(frame: &[u8]) -> Result<Request, RejectedRequest> {
        let value: Value = serde_json::from_slice(frame).map_err(|e| RejectedRequest {
            id: None,
            error: ErrorObject::new(ErrorCode::ParseError, format!("not valid JSON: {e}")),
        })?;
        let Value::Object(mut object) = value else {
            return Err(RejectedRequest {
                id: None,
                error: ErrorObject::new(ErrorCode::InvalidRequest, "a request must be a JSON object"),
            });
        };
        let id = match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(raw) => match serde_json::from_value::<RequestId>(raw) {
                Ok(id) => Some(id),
                Err(_) => {
                    return Err(RejectedRequest {
                        id: None,
                        error: ErrorObject::new(ErrorCode::InvalidRequest, "\"id\" must be an integer or a string"),
                    });
                }
            },
        };
        let invalid = |message: &str| RejectedRequest {
            id: id.clone(),
            error: ErrorObject::new(ErrorCode::InvalidRequest, message),
        };
        let jsonrpc = match object.remove("jsonrpc") {
            None => None,
            Some(Value::String(v)) if v == JSONRPC_VERSION => Some(v),
            Some(_) => return Err(invalid("\"jsonrpc\" must be \"2.0\" when present")),
        };
        let method = match object.remove("method") {
            Some(Value::String(m)) => m,
            Some(_) => return Err(invalid("\"method\" must be a string")),
            None => return Err(invalid("missing \"method\"")),
        };
        let params = match object.remove("params") {
            None | Some(Value::Null) => None,
            Some(p @ (Value::Object(_) | Value::Array(_))) => Some(p),
            Some(_) => return Err(invalid("\"params\" must be an object or an array")),
        };
        Ok(Request { jsonrpc, id, method, params })
    }

    /// Decodes the params into `T`; absent params decode as `{}`. Fails with `-32602`, also for positional
    /// (array) params: every method takes named params.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        let params = match &self.params {
            None => Value::Object(serde_json::Map::new()),
            Some(Value::Array(_)) => {
                return Err(ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!("invalid params for {}: params must be an object (named), not an array", self.method),
                ));
            }
            Some(params) => params.clone(),
        };
        serde_json::from_value(params).map_err(|e| {
            ErrorObject::new(ErrorCode::InvalidParams, format!("invalid params for {}: {}", self.method, describe(&e)))
        })
    }
}

/// Says what is wrong with params without quoting the client's values (they may be secrets): serde's messages
/// embed the offending value, so only the part that comes from our own schema is kept.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("missing field") {
        return text;
    }
    // The expectation is serde's last clause and comes from the schema; the value, before it, comes from the client.
    match text.rsplit_once(", expected ") {
        Some((found, expected)) => {
            let what = if found.starts_with("unknown variant") {
                "unknown variant"
            } else if found.starts_with("invalid type") {
                "a value of the wrong type"
            } else {
                "an invalid value"
            };
            format!("{what}, expected {expected}")
        }
        None => "the params do not match the method".to_owned(),
    }
}

/// A frame that is not an acceptable request, with the error reply to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRequest {
    /// The request's id if it could be read; the reply carries `null` otherwise.
    pub id: Option<RequestId>,
    /// The error to reply with.
    pub error: ErrorObject,
}

/// The result or error of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Success.
    #[serde(rename = "result")]
    Result(Value),
    /// Failure.
    #[serde(rename = "error")]
    Error(ErrorObject),
}

/// A reply to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The request's id, `null` when it could not be read.
    pub id: Option<RequestId>,
    /// `result` or `error`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Response {
    /// A success reply.
    pub fn result(id: Option<RequestId>, result: Value) -> Self {
        Self { jsonrpc: JSONRPC_VERSION.to_owned(), id, outcome: Outcome::Result(result) }
    }

    /// An error reply.
    pub fn error(id: Option<RequestId>, error: ErrorObject) -> Self {
        Self { jsonrpc: JSONRPC_VERSION.to_owned(), id, outcome: Outcome::Error(error) }
    }
}

/// A success reply that borrows its parts, so a server can encode a result without building a `Value` first.
/// It serialises exactly like [`Response::result`].
#[derive(Debug, Serialize)]
pub struct ResultReply<'a, T: Serialize + ?Sized> {
    /// Always `"2.0"`.
    pub jsonrpc: &'static str,
    /// The request's id.
    pub id: &'a RequestId,
    /// The result.
    pub result: &'a T,
}

impl<'a, T: Serialize + ?Sized> ResultReply<'a, T> {
    /// A reply to `id`.
    pub fn new(id: &'a RequestId, result: &'a T) -> Self {
        Self { jsonrpc: JSONRPC_VERSION, id, result }
    }
}

/// A message the server sends without being asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Always `"2.0"` from codexd.
    #[serde(default = "version")]
    pub jsonrpc: String,
    /// The notification name, e.g. `account/updated`.
    pub method: String,
    /// Its payload.
    #[serde(default)]
    pub params: Value,
}

fn version() -> String {
    JSONRPC_VERSION.to_owned()
}

impl Notification {
    /// A notification with a typed payload.
    pub fn new<T: Serialize>(method: &str, params: &T) -> serde_json::Result<Self> {
        Ok(Self { jsonrpc: version(), method: method.to_owned(), params: serde_json::to_value(params)? })
    }
}

/// Anything a client can read from the socket.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// A reply to one of the client's requests.
    Response(Response),
    /// An event.
    Notification(Notification),
}

impl ServerMessage {
    /// Parses one frame received from codexd.
    pub fn parse(frame: &[u8]) -> serde_json::Result<ServerMessage> {
        let value: Value = serde_json::from_slice(frame)?;
        let is_response = value.get("result").is_some() || value.get("error").is_some();
        if is_response {
            serde_json::from_value(value).map(ServerMessage::Response)
        } else {
            serde_json::from_value(value).map(ServerMessage::Notification)
        }
    }
}

/// The error codes on the wire: JSON-RPC's own, then codexd's in `-32001..=-32099`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `-32700`: the frame is not UTF-8 JSON.
    ParseError,
    /// `-32600`: JSON that is not a valid request, or a frame over the size limit.
    InvalidRequest,
    /// `-32601`: no such method.
    MethodNotFound,
    /// `-32602`: the params do not fit the method.
    InvalidParams,
    /// `-32603`: a fault inside codexd.
    InternalError,
    /// `-32001`: there are no credentials (or they cannot be used).
    NotLoggedIn,
    /// `-32002`: managed policy forbids this login.
    PolicyRefused,
    /// `-32003`: the issuer refused the refresh.
    RefreshFailed,
    /// `-32004`: the daemon is shutting down.
    ShuttingDown,
    /// `-32005`: another login is already in progress.
    LoginInProgress,
    /// `-32006`: the method is known but this version does not implement it yet.
    NotImplemented,
    /// `-32007`: the credential store could not be read or written.
    StoreError,
    /// Any other code, kept as received.
    Other(i64),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::ParseError => -32700,
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::InternalError => -32603,
            ErrorCode::NotLoggedIn => -32001,
            ErrorCode::PolicyRefused => -32002,
            ErrorCode::RefreshFailed => -32003,
            ErrorCode::ShuttingDown => -32004,
            ErrorCode::LoginInProgress => -32005,
            ErrorCode::NotImplemented => -32006,
            ErrorCode::StoreError => -32007,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a number read off the wire.
    pub fn from_code(code: i64) -> Self {
        [
            ErrorCode::ParseError,
            ErrorCode::InvalidRequest,
            ErrorCode::MethodNotFound,
            ErrorCode::InvalidParams,
            ErrorCode::InternalError,
            ErrorCode::NotLoggedIn,
            ErrorCode::PolicyRefused,
            ErrorCode::RefreshFailed,
            ErrorCode::ShuttingDown,
            ErrorCode::LoginInProgress,
            ErrorCode::NotImplemented,
            ErrorCode::StoreError,
        ]
        .into_iter()
        .find(|known| known.code() == code)
        .unwrap_or(ErrorCode::Other(code))
    }

    /// The stable `data.reason` string that goes with the code.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::ParseError => "parseError",
            ErrorCode::InvalidRequest => "invalidRequest",
            ErrorCode::MethodNotFound => "methodNotFound",
            ErrorCode::InvalidParams => "invalidParams",
            ErrorCode::InternalError => "internalError",
            ErrorCode::NotLoggedIn => "notLoggedIn",
            ErrorCode::PolicyRefused => "policyRefused",
            ErrorCode::RefreshFailed => "refreshFailed",
            ErrorCode::ShuttingDown => "shuttingDown",
            ErrorCode::LoginInProgress => "loginInProgress",
            ErrorCode::NotImplemented => "notImplemented",
            ErrorCode::StoreError => "storeError",
            ErrorCode::Other(_) => "unknown",
        }
    }
}

/// The `error` member of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// See [`ErrorCode`].
    pub code: i64,
    /// A sentence for people; never contains a secret.
    pub message: String,
    /// Machine-readable detail; codexd always sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ErrorData>,
}

/// The `data` member of an error: a stable reason, and the issuer's own code where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorData {
    /// A stable camelCase string, e.g. `notLoggedIn`, `frameTooLarge`, `refreshFailed`.
    pub reason: String,
    /// The OAuth issuer's error code, e.g. `refresh_token_reused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_code: Option<String>,
}

impl ErrorObject {
    /// An error with the code's standard reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_reason(code, code.reason(), message)
    }

    /// An error with a more specific reason than the code's own (e.g. `frameTooLarge`).
    pub fn with_reason(code: ErrorCode, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            data: Some(ErrorData { reason: reason.to_owned(), issuer_code: None }),
        }
    }

    /// The code as an enum.
    pub fn kind(&self) -> ErrorCode {
        ErrorCode::from_code(self.code)
    }

    /// `data.reason`, or the code's standard reason when the peer sent none.
    pub fn reason(&self) -> &str {
        self.data.as_ref().map_or_else(|| self.kind().reason(), |d| d.reason.as_str())
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorObject {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_requests_with_and_without_the_version_field() {
        let with =
            Request::parse(br#"{"jsonrpc":"2.0","id":1,"method":"getAuthStatus","params":{"includeToken":true}}"#)
                .unwrap();
        assert_eq!(with.id, Some(RequestId::Number(1)));
        let without = Request::parse(br#"{"id":"a","method":"account/read"}"#).unwrap();
        assert_eq!(without.id, Some(RequestId::String("a".into())));
        assert_eq!(without.jsonrpc, None);
        assert_eq!(without.params, None);
    }

    #[test]
    fn rejects_non_requests_with_the_right_codes() {
        let cases: [(&[u8], i64); 8] = [
            (b"{not json", -32700),
            (b"\xff\xfe", -32700),
            (b"[1,2]", -32600),
            (b"42", -32600),
            (br#"{"id":1}"#, -32600),
            (br#"{"id":1,"method":7}"#, -32600),
            (br#"{"id":1,"method":"x","jsonrpc":"1.0"}"#, -32600),
            (br#"{"id":{"a":1},"method":"x"}"#, -32600),
        ];
        for (frame, code) in cases {
            let rejected = Request::parse(frame).unwrap_err();
            assert_eq!(rejected.error.code, code, "{}", String::from_utf8_lossy(frame));
        }
        let kept = Request::parse(br#"{"id":9,"method":"x","params":3}"#).unwrap_err();
        assert_eq!(kept.id, Some(RequestId::Number(9)), "the id is kept when it was readable");
    }

    #[test]
    fn responses_round_trip_and_always_name_the_version() {
        let ok = Response::result(Some(RequestId::Number(3)), json!({"a": 1}));
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"jsonrpc":"2.0","id":3,"result":{"a":1}}"#);
        assert_eq!(ServerMessage::parse(text.as_bytes()).unwrap(), ServerMessage::Response(ok));

        let err = Response::error(None, ErrorObject::new(ErrorCode::NotLoggedIn, "not logged in"));
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"not logged in","data":{"reason":"notLoggedIn"}}}"#
        );
        assert_eq!(ServerMessage::parse(text.as_bytes()).unwrap(), ServerMessage::Response(err));
    }

    #[test]
    fn borrowed_result_replies_encode_like_owned_ones() {
        let id = RequestId::String("x".into());
        let borrowed = serde_json::to_string(&ResultReply::new(&id, &json!({"a": [1]}))).unwrap();
        let owned = serde_json::to_string(&Response::result(Some(id), json!({"a": [1]}))).unwrap();
        assert_eq!(borrowed, owned);
    }

    #[test]
    fn notifications_are_told_apart_from_responses() {
        let n = Notification::new("daemon/shuttingDown", &json!({})).unwrap();
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(text, r#"{"jsonrpc":"2.0","method":"daemon/shuttingDown","params":{}}"#);
        assert_eq!(ServerMessage::parse(text.as_bytes()).unwrap(), ServerMessage::Notification(n));
    }

    #[test]
    fn error_codes_map_both_ways() {
        for code in [-32700, -32600, -32601, -32602, -32603, -32001, -32002, -32003, -32004, -32005, -32006, -32007] {
            assert_eq!(ErrorCode::from_code(code).code(), code);
            assert_ne!(ErrorCode::from_code(code).reason(), "unknown");
        }
        assert_eq!(ErrorCode::from_code(-1), ErrorCode::Other(-1));
    }

    #[test]
    fn params_as_reports_invalid_params() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct P {
            flag: bool,
        }
        let positional = Request::parse(br#"{"id":1,"method":"m","params":[true]}"#).unwrap();
        assert_eq!(positional.params_as::<P>().err().unwrap().code, -32602);
        let req = Request::parse(br#"{"id":1,"method":"m","params":{"flag":"sk-secret, expected x"}}"#).unwrap();
        let error = req.params_as::<P>().err().unwrap();
        assert_eq!(error.code, -32602);
        assert_eq!(error.message, "invalid params for m: a value of the wrong type, expected a boolean");
        let missing = Request::parse(br#"{"id":1,"method":"m","params":{}}"#).unwrap();
        assert_eq!(missing.params_as::<P>().err().unwrap().message, "invalid params for m: missing field `flag`");
    }
}
