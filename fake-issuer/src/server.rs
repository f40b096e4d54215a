//! The HTTP layer: accept loop, optional TLS, routing, fault application and the request log.

use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, LOCATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::state::{Reply, State, TOKEN_EXCHANGE_GRANT, params};
use crate::{Endpoint, Fault, RecordedRequest, Shared, control};

/// The service's error: hyper closes the connection without writing a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

const DEVICE_PAGE: &str = "<!doctype html>\n<html><head><title>Enter code - fake issuer</title></head>\n<body>\
<h1>Enter the code shown in your terminal</h1>\n<form method=\"post\"><input name=\"user_code\" \
placeholder=\"ABCD-EFGH\"><button>Continue</button></form>\n<p>codexd fake issuer: approve with \
<code>POST /_fake/approve {\"user_code\":\"...\"}</code>.</p>\n</body></html>\n";

/// Accepts connections until `shutdown` turns true; one task per connection.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(TokioIo::new(stream), shared).await;
                            }
                        }
                        None => serve_connection(TokioIo::new(stream), shared).await,
                    }
                });
            }
        }
    }
}

async fn serve_connection<I>(io: I, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let _ = http1::Builder::new().serve_connection(io, service).await;
}

/// Which endpoint a request is for; `None` for pages and unknown paths.
fn classify(method: &Method, path: &str, content_type: Option<&str>, body: &[u8]) -> Option<Endpoint> {
    match (method.as_str(), path) {
        ("GET", "/oauth/authorize") => Some(Endpoint::Authorize),
        ("POST", "/oauth/token") => match params(content_type, body).get("grant_type").map(String::as_str) {
            Some("authorization_code") => Some(Endpoint::CodeExchange),
            Some(TOKEN_EXCHANGE_GRANT) => Some(Endpoint::TokenExchange),
            Some("refresh_token") => Some(Endpoint::Refresh),
            _ => None,
        },
        ("POST", "/api/accounts/deviceauth/usercode") => Some(Endpoint::DeviceUserCode),
        ("POST", "/api/accounts/deviceauth/token") => Some(Endpoint::DeviceToken),
        ("POST", "/oauth/revoke") => Some(Endpoint::Revoke),
        _ => None,
    }
}

fn route(
    state: &mut State,
    endpoint: Option<Endpoint>,
    request: &RecordedRequest,
    content_type: Option<&str>,
    body: &[u8],
    fault: Option<&Fault>,
) -> Reply {
    match endpoint {
        Some(Endpoint::Authorize) => state.authorize(request.query.as_deref(), fault),
        Some(Endpoint::CodeExchange) => state.code_exchange(content_type, body),
        Some(Endpoint::TokenExchange) => state.token_exchange(content_type, body),
        Some(Endpoint::Refresh) => state.refresh(content_type, body),
        Some(Endpoint::DeviceUserCode) => state.device_user_code(content_type, body),
        Some(Endpoint::DeviceToken) => state.device_token(content_type, body, fault),
        Some(Endpoint::Revoke) => state.revoke(content_type, body),
        None => match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/oauth/token") => {
                Reply::oauth_error(400, "unsupported_grant_type", "grant_type is missing or not supported")
            }
            ("GET", "/codex/device") => Reply::html(DEVICE_PAGE),
            _ => Reply::text(404, "not found"),
        },
    }
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(reply.status).header(CONTENT_TYPE, reply.content_type);
    if let Some(location) = reply.location {
        builder = builder.header(LOCATION, location);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_else(|_| {
        let mut response = Response::new(Full::new(Bytes::from_static(b"bad response")));
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        response
    })
}

/// First 8 hex digits of sha256(token): enough to tell tokens apart in a log, useless to an attacker.
pub(crate) fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!("{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3])
}

fn log_line(request: &RecordedRequest, endpoint: Option<Endpoint>, outcome: &str) -> String {
    let token = match endpoint {
        Some(Endpoint::Refresh) => request.param("refresh_token"),
        Some(Endpoint::Revoke) => request.param("token"),
        Some(Endpoint::CodeExchange) => request.param("code"),
        Some(Endpoint::TokenExchange) => request.param("subject_token"),
        _ => None,
    };
    let token = token.map(|t| format!(" token={}", fingerprint(&t))).unwrap_or_default();
    let name = endpoint.map_or("-", Endpoint::name);
    format!("fake-issuer: {} {} [{name}]{token} -> {outcome}", request.method, request.path)
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    if path == "/_fake" || path.starts_with("/_fake/") {
        return Ok(to_response(control::handle(&shared, &parts.method, &path, &body)));
    }
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = content_type.as_deref();
    let endpoint = classify(&parts.method, &path, content_type, &body);
    let recorded = RecordedRequest {
        endpoint,
        method: parts.method.as_str().to_owned(),
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at: SystemTime::now(),
    };
    let (fault, mut release_rx, log) = {
        let mut state = shared.lock();
        state.requests.push(recorded.clone());
        let fault = endpoint.and_then(|e| state.script.next(e));
        (fault, shared.release_tx.subscribe(), state.log_to_stderr)
    };
    shared.recorded.notify_all();
    let log = |outcome: &str| {
        if log {
            eprintln!("{}", log_line(&recorded, endpoint, outcome));
        }
    };
    match &fault {
        Some(Fault::Hang) => {
            log("hanging");
            let _ = release_rx.changed().await;
            return Err(Dropped);
        }
        Some(Fault::Drop) => {
            log("dropped");
            return Err(Dropped);
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(*delay).await,
        Some(Fault::Status(status)) => {
            log(&format!("{status} (scripted)"));
            return Ok(to_response(Reply::server_error(*status)));
        }
        Some(Fault::RefreshError { status, code }) => {
            log(&format!("{status} {code} (scripted)"));
            return Ok(to_response(Reply::refresh_error(*status, code)));
        }
        _ => {}
    }
    let reply = route(&mut shared.lock(), endpoint, &recorded, content_type, &body, fault.as_ref());
    if endpoint == Some(Endpoint::Refresh) && fault == Some(Fault::LoseResponseAfterRotate) {
        log(&format!("{} then dropped (scripted)", reply.status));
        return Err(Dropped);
    }
    log(&reply.status.to_string());
    Ok(to_response(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_are_classified_by_grant_type() {
        let form = Some("application/x-www-form-urlencoded");
        let json = Some("application/json");
        let post = Method::POST;
        assert_eq!(
            classify(&post, "/oauth/token", form, b"grant_type=authorization_code&code=x"),
            Some(Endpoint::CodeExchange)
        );
        assert_eq!(
            classify(
                &post,
                "/oauth/token",
                form,
                b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
            ),
            Some(Endpoint::TokenExchange)
        );
        assert_eq!(
            classify(&post, "/oauth/token", json, br#"{"grant_type":"refresh_token"}"#),
            Some(Endpoint::Refresh)
        );
        assert_eq!(classify(&post, "/oauth/token", form, b"grant_type=refresh_token"), Some(Endpoint::Refresh));
        assert_eq!(classify(&post, "/oauth/token", form, b""), None);
        assert_eq!(classify(&Method::GET, "/nope", None, b""), None);
    }

    #[test]
    fn fingerprints_are_eight_hex_digits() {
        let fp = fingerprint("rt_secret");
        assert_eq!(fp.len(), 8);
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
