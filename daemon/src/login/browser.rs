//! The browser login: PKCE S256 and state as the Codex CLI makes them, a callback listener on 127.0.0.1 (port
//! 1455, taking it over from an older login server with `GET /cancel`, else 1457), the code exchange, the
//! token exchange for an API key, and the success page.

use crate::daemon::Daemon;
use crate::oauth::{CLIENT_ID, ORIGINATOR, SCOPES};
use crate::policy::LoginPolicy;
use codexd_proto::Secret;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Attempts at the first port after asking its holder to cancel, as the Codex CLI makes them.
const BIND_RETRIES: u32 = 10;
/// Pause between those attempts.
const BIND_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// The longest a browser connection to the callback listener may stay open (long enough for two exchanges
/// that each take the whole HTTP timeout, and the store).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long the listener stays up after a successful login for the browser to fetch the success page.
const SUCCESS_PAGE_GRACE: Duration = Duration::from_secs(10);

const SUCCESS_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign into Codex</title></head>\
<body><h1>Signed in to Codex</h1><p>codexd has your login; every Codex client on this machine can use it now. \
You can close this window.</p></body></html>";

/// A browser login whose callback listener is bound and whose URL is ready to open.
pub struct PreparedLogin {
    /// The URL the user opens.
    pub auth_url: String,
    listener: TcpListener,
    redirect_uri: String,
    state: String,
    verifier: Secret,
}

/// What the callback listener reports to the login.
pub enum Callback {
    /// A code arrived with the right state; answer through the sender.
    Code(Secret, oneshot::Sender<Result<(), String>>),
    /// The callback ended the login (state mismatch, `error=`, no code, `/cancel`).
    Failed(String),
    /// The success page was served.
    SuccessServed,
}

/// Binds the callback listener and builds the authorize URL.
pub async fn prepare(daemon: &Daemon, policy: &LoginPolicy) -> Result<PreparedLogin, String> {
    let listener = bind_callback(&daemon.config().session.login_ports).await?;
    let port = listener.local_addr().map_err(|e| format!("the callback listener has no address: {e}"))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/auth/callback");
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256_len(64);
    let state = oauth2::CsrfToken::new_random_len(32).secret().clone();
    let issuer = &daemon.issuer().endpoints().issuer;
    let mut url = url::Url::parse(&format!("{issuer}/oauth/authorize"))
        .map_err(|e| format!("the issuer URL {issuer:?} is not valid: {e}"))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("scope", SCOPES)
            .append_pair("id_token_add_organizations", "true")
            .append_pair("codex_cli_simplified_flow", "true")
            .append_pair("originator", ORIGINATOR);
        if let Some(workspaces) = policy.allowed_workspace_param() {
            query.append_pair("allowed_workspace_id", &workspaces);
        }
    }
    tracing::info!(port, "browser login: callback listener ready");
    Ok(PreparedLogin {
        auth_url: url.to_string(),
        listener,
        redirect_uri,
        state,
        verifier: Secret::new(verifier.secret().clone()),
    })
}

impl PreparedLogin {
    /// Serves the callback until a code arrives and is exchanged for tokens (or the login fails). The browser's
    /// callback request waits in the returned [`Responder`] until the login is stored.
    pub async fn run(self, daemon: &Daemon) -> Result<super::Obtained, String> {
        let (tx, mut rx) = mpsc::channel(8);
        let shared = Arc::new(Shared { state: self.state.clone(), tx });
        let PreparedLogin { listener, redirect_uri, verifier, .. } = self;
        let exchange = Exchange { redirect_uri, verifier };
        // Aborting this task closes the listener (freeing the port) but not the connections: a response being
        // written when the login ends (an error page, the success redirect) still reaches the browser. Each
        // connection is bounded in time so that a browser's idle keep-alive cannot hold it open.
        let server = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: do not spin.
                        tracing::warn!(error = %e, "login callback listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(shared.clone(), request));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                });
            }
        });
        let server = AbortOnDrop(server);
        loop {
            match rx.recv().await {
                Some(Callback::Code(code, reply)) => {
                    return match exchange.tokens(daemon, &code).await {
                        Ok((tokens, api_key)) => {
                            let responder = Responder { reply, events: rx, _server: server };
                            Ok(super::Obtained { tokens, api_key, responder: Some(responder) })
                        }
                        Err(message) => {
                            let _ = reply.send(Err(message.clone()));
                            Err(message)
                        }
                    };
                }
                Some(Callback::Failed(message)) => return Err(message),
                Some(Callback::SuccessServed) => {}
                None => return Err("the callback listener stopped".to_owned()),
            }
        }
    }
}

/// The browser's callback request, waiting for the outcome of the login, and the listener that will serve
/// the success page.
pub struct Responder {
    reply: oneshot::Sender<Result<(), String>>,
    events: mpsc::Receiver<Callback>,
    _server: AbortOnDrop,
}

impl Responder {
    /// Answers the browser (the success page, or the error), then keeps the listener up until the success page
    /// has been fetched (at most a few seconds).
    pub async fn finish(mut self, result: &Result<(), String>) {
        let _ = self.reply.send(result.clone());
        if result.is_err() {
            return;
        }
        let _ = tokio::time::timeout(SUCCESS_PAGE_GRACE, async {
            while let Some(event) = self.events.recv().await {
                if matches!(event, Callback::SuccessServed) {
                    break;
                }
            }
        })
        .await;
    }
}

/// What the code exchange needs from the prepared login.
struct Exchange {
    redirect_uri: String,
    verifier: Secret,
}

impl Exchange {
    async fn tokens(
        &self,
        daemon: &Daemon,
        code: &Secret,
    ) -> Result<(crate::oauth::LoginTokens, Option<Secret>), String> {
        let issuer = daemon.issuer();
        let tokens = issuer
            .exchange_code(code, &self.redirect_uri, &self.verifier)
            .await
            .map_err(|e| format!("the sign-in code could not be exchanged for tokens: {e}"))?;
        let api_key = match issuer.exchange_api_key(&tokens.id_token).await {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::info!(error = %e, "no API key from the token exchange; storing the login without one");
                None
            }
        };
        Ok((tokens, api_key))
    }
}

struct Shared {
    state: String,
    tx: mpsc::Sender<Callback>,
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if request.method() != Method::GET {
        return Ok(page(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"));
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    let response = match request.uri().path() {
        "/auth/callback" => callback(&shared, &query).await,
        "/success" => {
            let _ = shared.tx.send(Callback::SuccessServed).await;
            let mut response = html(StatusCode::OK, SUCCESS_PAGE);
            response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
            response
        }
        "/cancel" => {
            let _ = shared
                .tx
                .send(Callback::Failed("login canceled: another login took over the callback port".to_owned()))
                .await;
            page(StatusCode::OK, "Login cancelled")
        }
        _ => page(StatusCode::NOT_FOUND, "Not Found"),
    };
    Ok(response)
}

async fn callback(shared: &Shared, query: &HashMap<String, String>) -> Response<Full<Bytes>> {
    if query.get("state") != Some(&shared.state) {
        let _ = shared.tx.send(Callback::Failed("State mismatch".to_owned())).await;
        return page(StatusCode::BAD_REQUEST, "State mismatch");
    }
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").map_or("", String::as_str);
        let message = if error == "access_denied" && description.contains("missing_codex_entitlement") {
            "Codex is not enabled for your workspace. Contact your workspace administrator to request access to Codex."
                .to_owned()
        } else {
            // Only the issuer's error code: the description is free text from the URL.
            format!("Sign-in failed: {}", sanitize(error))
        };
        let _ = shared.tx.send(Callback::Failed(message.clone())).await;
        return page(StatusCode::OK, &message);
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        let message = "Missing authorization code. Sign-in could not be completed.".to_owned();
        let _ = shared.tx.send(Callback::Failed(message.clone())).await;
        return page(StatusCode::BAD_REQUEST, &message);
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    if shared.tx.send(Callback::Code(Secret::new(code.clone()), reply_tx)).await.is_err() {
        return page(StatusCode::GONE, "This login has ended; start it again.");
    }
    match reply_rx.await {
        Ok(Ok(())) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static("/success"));
            response
        }
        Ok(Err(message)) => page(StatusCode::OK, &format!("Sign-in failed: {message}")),
        Err(_) => page(StatusCode::GONE, "This login has ended; start it again."),
    }
}

/// Keeps an error code from the URL to letters, digits and `_-.` so it cannot inject markup.
fn sanitize(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c)).take(80).collect()
}

fn page(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    html(
        status,
        &format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign into Codex</title></head><body><p>{escaped}</p></body></html>"
        ),
    )
}

fn html(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// Binds the first free callback port as the Codex CLI does: if the first is taken, ask its holder (an older
/// login server) to `GET /cancel`, retry 10 times 200 ms apart, then try the next port.
pub async fn bind_callback(ports: &[u16]) -> Result<TcpListener, String> {
    let mut last_port = 0;
    for (index, &port) in ports.iter().enumerate() {
        last_port = port;
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if index == 0 && port != 0 {
                    tracing::info!(port, "callback port in use: asking the older login server to cancel");
                    send_cancel(port).await;
                    for _ in 0..BIND_RETRIES {
                        tokio::time::sleep(BIND_RETRY_PAUSE).await;
                        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
                            return Ok(listener);
                        }
                    }
                }
                tracing::info!(port, "callback port in use");
            }
            Err(e) => return Err(format!("cannot listen on 127.0.0.1:{port} for the login callback: {e}")),
        }
    }
    Err(format!(
        "Port {last_port} is already in use: another program holds the login callback ports ({}); close it, or use \
         codexctl login --device-auth",
        ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    ))
}

/// `GET /cancel` to whatever listens on the port (best effort, 2 s at most).
async fn send_cancel(port: u16) {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let request = format!("GET /cancel HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).await?;
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), attempt).await;
}

/// Stops the accept loop (and frees the port) when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_from_the_url_cannot_carry_markup() {
        assert_eq!(sanitize("access_denied<script>"), "access_deniedscript");
    }

    #[tokio::test]
    async fn a_taken_port_falls_back_to_the_next() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap().port();
        let listener = bind_callback(&[taken, 0]).await.unwrap();
        assert_ne!(listener.local_addr().unwrap().port(), taken);
    }
}
