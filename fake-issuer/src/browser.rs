//! A stand-in for the user's browser: GET a URL and follow redirects, loopback only.

use std::time::Duration;

use reqwest::header::LOCATION;

/// What the browser ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// Status of the last response (not a redirect, unless the redirect limit was hit).
    pub status: u16,
    /// The URL of the last request.
    pub final_url: String,
    /// Body of the last response.
    pub body: String,
    /// Every URL requested, in order, starting with the one given.
    pub hops: Vec<String>,
}

const MAX_REDIRECTS: usize = 10;

fn check_loopback(url: &url::Url) -> Result<(), String> {
    match url.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]") if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("refusing to visit {url}: only http(s) on 127.0.0.1 or localhost")),
    }
}

/// GETs `url` like a browser: follows up to 10 redirects (to any loopback host and port), 30 s timeout per visit.
/// `ca_pem` is an extra trusted root (the fake issuer's CA when it serves HTTPS). Works inside or outside a
/// tokio runtime (it runs on its own thread).
pub fn visit(url: &str, ca_pem: Option<&str>) -> Result<Visit, String> {
    let url = url.to_owned();
    let ca_pem = ca_pem.map(str::to_owned);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("browser runtime: {e}"))?;
        runtime.block_on(visit_async(&url, ca_pem.as_deref()))
    })
    .join()
    .map_err(|_| "browser thread panicked".to_owned())?
}

async fn visit_async(start: &str, ca_pem: Option<&str>) -> Result<Visit, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30));
    if let Some(pem) = ca_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("bad CA PEM: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| format!("browser client: {e}"))?;
    let work = async {
        let mut current = url::Url::parse(start).map_err(|e| format!("bad URL {start}: {e}"))?;
        let mut hops = Vec::new();
        loop {
            check_loopback(&current)?;
            hops.push(current.to_string());
            let response = client.get(current.clone()).send().await.map_err(|e| format!("GET {current}: {e}"))?;
            let status = response.status();
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            match location {
                Some(location) if status.is_redirection() && hops.len() <= MAX_REDIRECTS => {
                    current = current.join(&location).map_err(|e| format!("bad Location {location}: {e}"))?;
                }
                _ => {
                    let body = response.text().await.map_err(|e| format!("reading {current}: {e}"))?;
                    return Ok(Visit { status: status.as_u16(), final_url: current.to_string(), body, hops });
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work).await.map_err(|_| format!("visiting {start} timed out"))?
}
