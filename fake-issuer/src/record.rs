//! The request log: every issuer request, faulted or not, in arrival order.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Endpoint;

/// One request the fake issuer received (control API requests are not recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The endpoint it was routed to, `None` for unknown paths and the HTML pages.
    pub endpoint: Option<Endpoint>,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without the query, e.g. `/oauth/token`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as (lossy) UTF-8 text.
    pub body: String,
    /// When the request was read.
    pub received_at: SystemTime,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A parameter of the request: from a JSON body, else a form body, else the query string.
    pub fn param(&self, name: &str) -> Option<String> {
        if let Some(value) = self.json().as_ref().and_then(|v| v.get(name)) {
            return Some(value.as_str().map_or_else(|| value.to_string(), str::to_owned));
        }
        let from = |text: &str| {
            url::form_urlencoded::parse(text.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        };
        from(&self.body).or_else(|| self.query.as_deref().and_then(from))
    }

    /// The control API's JSON form (`received_at_ms` is milliseconds since the Unix epoch).
    pub fn to_json(&self) -> Value {
        let ms = self.received_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let headers: serde_json::Map<String, Value> =
            self.headers.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect();
        json!({
            "endpoint": self.endpoint.map(crate::Endpoint::name),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": self.body,
            "received_at_ms": ms,
        })
    }
}
