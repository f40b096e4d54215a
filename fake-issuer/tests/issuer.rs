//! The fake issuer over real HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, FakeIssuer, Fault, Options, browser, jwt, refresh_error_body};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const DEADLINE: Duration = Duration::from_secs(10);
const REDIRECT: &str = "http://127.0.0.1:1455/auth/callback";
const VERIFIER: &str = "test-verifier-0123456789-0123456789-0123456789-0123456789";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).timeout(DEADLINE).build().unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(issuer: &FakeIssuer, redirect: &str, state: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/oauth/authorize", issuer.url())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("scope", "openid profile email offline_access api.connectors.read api.connectors.invoke")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("originator", "codex_cli_rs");
    url.into()
}

/// Follows the authorize step and returns the redirect's query pairs.
async fn authorize(issuer: &FakeIssuer, state: &str) -> Vec<(String, String)> {
    let response = client().get(authorize_url(issuer, REDIRECT, state)).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    url::Url::parse(&location).unwrap().query_pairs().into_owned().collect()
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn exchange(issuer: &FakeIssuer, code: &str, redirect: &str, verifier: &str) -> reqwest::Response {
    client()
        .post(format!("{}/oauth/token", issuer.url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

async fn refresh(issuer: &FakeIssuer, token: &str) -> Result<reqwest::Response, reqwest::Error> {
    client()
        .post(format!("{}/oauth/token", issuer.url()))
        .json(&json!({
            "client_id": CLIENT_ID,
            "grant_type": "refresh_token",
            "refresh_reason": "forced",
            "refresh_token": token,
        }))
        .send()
        .await
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn device_post(issuer: &FakeIssuer, path: &str, body: &Value) -> (u16, Value) {
    json_of(client().post(format!("{}{path}", issuer.url())).json(body).send().await.unwrap()).await
}

fn no_auto_approve() -> Options {
    Options { device_auto_approve_after: None, ..Options::default() }
}

#[tokio::test]
async fn authorize_redirects_with_a_code_and_the_state() {
    let issuer = FakeIssuer::start();
    let pairs = authorize(&issuer, "state-123").await;
    assert!(get(&pairs, "code").is_some_and(|c| !c.is_empty()));
    assert_eq!(get(&pairs, "state"), Some("state-123"));

    // A workspace restriction the account does not meet still redirects with a code.
    let url = format!("{}&allowed_workspace_id=ws-A%2Cws-B", authorize_url(&issuer, REDIRECT, "s"));
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);

    let bad = authorize_url(&issuer, "http://example.com:1455/cb", "s");
    assert_eq!(client().get(bad).send().await.unwrap().status(), 400);
    let no_pkce = format!("{}/oauth/authorize?response_type=code&client_id={CLIENT_ID}&state=s", issuer.url());
    assert_eq!(client().get(no_pkce).send().await.unwrap().status(), 400);
    assert_eq!(issuer.count(Endpoint::Authorize), 4);
}

#[tokio::test]
async fn code_exchange_checks_the_verifier_and_is_single_use() {
    let issuer = FakeIssuer::start();
    let code = get(&authorize(&issuer, "s").await, "code").unwrap().to_owned();
    let (status, body) = json_of(exchange(&issuer, &code, REDIRECT, VERIFIER).await).await;
    assert_eq!(status, 200, "{body}");
    for key in ["id_token", "access_token", "refresh_token", "scope"] {
        assert!(body[key].as_str().is_some_and(|v| !v.is_empty()), "{key} in {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let claims = jwt::decode_payload(body["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["email"], "user@example.com");
    assert_eq!(claims["https://api.openai.com/auth"]["chatgpt_account_id"], "acct-fake-0001");
    assert!(issuer.is_current_refresh_token(body["refresh_token"].as_str().unwrap()));

    // Used once: gone.
    let (status, body) = json_of(exchange(&issuer, &code, REDIRECT, VERIFIER).await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    let code = get(&authorize(&issuer, "s").await, "code").unwrap().to_owned();
    let (status, body) = json_of(exchange(&issuer, &code, REDIRECT, "the-wrong-verifier").await).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert!(body["error_description"].as_str().unwrap().contains("code_verifier"));

    let code = get(&authorize(&issuer, "s").await, "code").unwrap().to_owned();
    let (status, _) = json_of(exchange(&issuer, &code, "http://127.0.0.1:1457/auth/callback", VERIFIER).await).await;
    assert_eq!(status, 400);
    assert_eq!(issuer.count(Endpoint::CodeExchange), 4);
}

#[tokio::test]
async fn token_exchange_turns_an_issued_id_token_into_an_api_key() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    let exchange = |subject: String| {
        client()
            .post(format!("{}/oauth/token", issuer.url()))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                ("client_id", CLIENT_ID),
                ("requested_token", "openai-api-key"),
                ("subject_token", subject.as_str()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
            ])
            .send()
    };
    let (status, body) = json_of(exchange(login.id_token.clone()).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body["access_token"].as_str().unwrap().starts_with("sk-fake-"));
    let (status, _) = json_of(exchange("e30.e30.c2ln".to_owned()).await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(issuer.count(Endpoint::TokenExchange), 2);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_gets_the_real_401_body() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    let (status, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!(status, 200);
    let next = body["refresh_token"].as_str().unwrap();
    assert_ne!(next, login.refresh_token);
    assert!(issuer.is_current_refresh_token(next));
    assert!(!issuer.is_current_refresh_token(&login.refresh_token));
    let old = jwt::decode_payload(&login.access_token).unwrap();
    let new = jwt::decode_payload(body["access_token"].as_str().unwrap()).unwrap();
    assert_ne!(old["jti"], new["jti"]);
    assert_eq!(new["exp"].as_u64().unwrap() - new["iat"].as_u64().unwrap(), 3600);

    let response = refresh(&issuer, &login.refresh_token).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"error":{"message":"Your refresh token has already been used to generate a new access token. Please try signing in again.","type":"invalid_request_error","param":null,"code":"refresh_token_reused"}}"#
    );
    let (status, body) = json_of(refresh(&issuer, "rt_never_issued").await.unwrap()).await;
    assert_eq!((status, body), (401, refresh_error_body("refresh_token_invalidated")));

    // The real Codex sends JSON; a form-encoded refresh is refused.
    let form = client()
        .post(format!("{}/oauth/token", issuer.url()))
        .form(&[("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", next)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 400);
    assert!(issuer.is_current_refresh_token(next));
    assert_eq!(issuer.count(Endpoint::Refresh), 4);
}

#[tokio::test]
async fn access_token_lifetime_is_configurable() {
    let issuer =
        FakeIssuer::start_with(Options { access_token_lifetime: Duration::from_secs(90), ..Options::default() })
            .unwrap();
    let login = issuer.mint(&Account::default());
    let claims = jwt::decode_payload(&login.access_token).unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 90);
    issuer.set_access_token_lifetime(Duration::from_secs(5));
    let (_, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    let claims = jwt::decode_payload(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 5);
    assert_eq!(body["expires_in"], 5);
}

#[tokio::test]
async fn status_fault_answers_once_then_normal_service_returns() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::Status(500));
    let (status, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!((status, body), (500, json!({"error":{"message":"internal error","type":"server_error","code":null}})));
    // The faulted request did not consume the token.
    assert!(issuer.is_current_refresh_token(&login.refresh_token));
    let (status, _) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn script_always_applies_until_cleared() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script_always(Endpoint::Refresh, Fault::Status(503));
    for _ in 0..3 {
        assert_eq!(refresh(&issuer, &login.refresh_token).await.unwrap().status(), 503);
    }
    issuer.clear_faults();
    assert_eq!(refresh(&issuer, &login.refresh_token).await.unwrap().status(), 200);
}

#[tokio::test]
async fn refresh_error_fault_sends_the_real_body_with_the_given_status() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::RefreshError { status: 400, code: "refresh_token_expired".into() });
    let (status, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!((status, body), (400, refresh_error_body("refresh_token_expired")));
    assert_eq!(
        refresh_error_body("refresh_token_expired")["error"]["message"],
        "Your refresh token has expired. Please try signing in again."
    );
}

// wait_for_count blocks this thread: the spawned request needs another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_does_not_block_other_requests_and_clear_releases_it() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::Hang);
    let url = issuer.url().to_owned();
    let token = login.refresh_token.clone();
    let hung = tokio::spawn(async move {
        client()
            .post(format!("{url}/oauth/token"))
            .json(&json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": token}))
            .send()
            .await
    });
    assert!(issuer.wait_for_count(Endpoint::Refresh, 1, DEADLINE));
    // A second request on another connection is answered while the first hangs.
    let (status, _) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(!hung.is_finished());
    issuer.clear_faults();
    let result = tokio::time::timeout(DEADLINE, hung).await.expect("released").unwrap();
    assert!(result.is_err(), "a released hang closes the connection unanswered");
}

// wait_for_count blocks this thread: the spawned request needs another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_issuer_releases_hung_connections() {
    let issuer = FakeIssuer::start();
    issuer.script(Endpoint::Revoke, Fault::Hang);
    let url = issuer.url().to_owned();
    let hung =
        tokio::spawn(
            async move { client().post(format!("{url}/oauth/revoke")).json(&json!({"token":"x"})).send().await },
        );
    assert!(issuer.wait_for_count(Endpoint::Revoke, 1, DEADLINE));
    drop(issuer);
    let result = tokio::time::timeout(DEADLINE, hung).await.expect("released").unwrap();
    assert!(result.is_err());
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::Drop);
    assert!(refresh(&issuer, &login.refresh_token).await.is_err());
    assert!(issuer.is_current_refresh_token(&login.refresh_token));
    assert_eq!(refresh(&issuer, &login.refresh_token).await.unwrap().status(), 200);
    assert_eq!(issuer.count(Endpoint::Refresh), 2);
}

#[tokio::test]
async fn delay_fault_answers_normally_after_the_delay() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(refresh(&issuer, &login.refresh_token).await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn lost_response_after_rotate_makes_the_next_use_reused() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::LoseResponseAfterRotate);
    assert!(refresh(&issuer, &login.refresh_token).await.is_err());
    assert!(!issuer.is_current_refresh_token(&login.refresh_token));
    let (status, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!((status, body), (401, refresh_error_body("refresh_token_reused")));
}

#[tokio::test]
async fn authorize_faults_send_an_error_or_a_wrong_state() {
    let issuer = FakeIssuer::start();
    issuer.script(Endpoint::Authorize, Fault::AuthorizeError("access_denied".into()));
    issuer.script(Endpoint::Authorize, Fault::WrongState);
    let pairs = authorize(&issuer, "s1").await;
    assert_eq!(get(&pairs, "error"), Some("access_denied"));
    assert!(get(&pairs, "error_description").is_some());
    assert_eq!(get(&pairs, "state"), Some("s1"));
    assert_eq!(get(&pairs, "code"), None);
    let pairs = authorize(&issuer, "s2").await;
    assert!(get(&pairs, "code").is_some());
    assert_ne!(get(&pairs, "state"), Some("s2"));
    assert_eq!(get(&authorize(&issuer, "s3").await, "state"), Some("s3"));
}

#[tokio::test]
async fn device_flow_pending_then_approved_then_exchanged() {
    let issuer = FakeIssuer::start_with(no_auto_approve()).unwrap();
    let (status, start) =
        device_post(&issuer, "/api/accounts/deviceauth/usercode", &json!({"client_id": CLIENT_ID})).await;
    assert_eq!(status, 200);
    assert_eq!(start["interval"], "1");
    let user_code = start["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    let poll = json!({"device_auth_id": start["device_auth_id"], "user_code": user_code});
    for _ in 0..3 {
        let (status, body) = device_post(&issuer, "/api/accounts/deviceauth/token", &poll).await;
        assert_eq!((status, body), (403, json!({"error": "authorization_pending"})));
    }
    assert!(issuer.approve_device(user_code));
    assert!(!issuer.approve_device("ZZZZ-ZZZZ"));
    let (status, body) = device_post(&issuer, "/api/accounts/deviceauth/token", &poll).await;
    assert_eq!(status, 200);
    let verifier = body["code_verifier"].as_str().unwrap();
    assert_eq!(body["code_challenge"].as_str().unwrap(), challenge(verifier));
    let code = body["authorization_code"].as_str().unwrap();
    let callback = format!("{}/deviceauth/callback", issuer.url());
    let (status, tokens) = json_of(exchange(&issuer, code, &callback, verifier).await).await;
    assert_eq!(status, 200, "{tokens}");
    assert!(issuer.is_current_refresh_token(tokens["refresh_token"].as_str().unwrap()));
    assert_eq!(issuer.count(Endpoint::DeviceToken), 4);
    assert_eq!(issuer.count(Endpoint::DeviceUserCode), 1);

    let page = client().get(format!("{}/codex/device", issuer.url())).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("code"));
}

#[tokio::test]
async fn device_flow_approves_itself_after_the_configured_polls() {
    let issuer = FakeIssuer::start_with(Options {
        device_interval_secs: 3,
        device_auto_approve_after: Some(2),
        ..Options::default()
    })
    .unwrap();
    let (_, start) = device_post(&issuer, "/api/accounts/deviceauth/usercode", &json!({"client_id": CLIENT_ID})).await;
    assert_eq!(start["interval"], "3");
    let poll = json!({"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(device_post(&issuer, "/api/accounts/deviceauth/token", &poll).await.0);
    }
    assert_eq!(statuses, [403, 403, 200]);
}

#[tokio::test]
async fn device_faults_and_unknown_ids() {
    let issuer = FakeIssuer::start_with(no_auto_approve()).unwrap();
    let (_, start) = device_post(&issuer, "/api/accounts/deviceauth/usercode", &json!({"client_id": CLIENT_ID})).await;
    let poll = json!({"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]});
    issuer.script(Endpoint::DeviceToken, Fault::SlowDown { interval_secs: Some(7) });
    issuer.script(Endpoint::DeviceToken, Fault::SlowDown { interval_secs: None });
    issuer.script(Endpoint::DeviceToken, Fault::DeviceExpired);
    let path = "/api/accounts/deviceauth/token";
    assert_eq!(device_post(&issuer, path, &poll).await, (403, json!({"error": "slow_down", "interval": "7"})));
    assert_eq!(device_post(&issuer, path, &poll).await, (403, json!({"error": "slow_down"})));
    assert_eq!(device_post(&issuer, path, &poll).await, (410, json!({"error": "expired_token"})));
    let unknown = json!({"device_auth_id": "deviceauth_nope", "user_code": "ABCD-EFGH"});
    assert_eq!(device_post(&issuer, path, &unknown).await, (400, json!({"error": "invalid_request"})));
}

#[tokio::test]
async fn revoke_kills_the_refresh_token_and_is_recorded() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    let body = json!({"token": login.refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID});
    assert_eq!(device_post(&issuer, "/oauth/revoke", &body).await, (200, json!({})));
    assert_eq!(issuer.revoked(), vec![login.refresh_token.clone()]);
    assert!(!issuer.is_current_refresh_token(&login.refresh_token));
    let (status, body) = json_of(refresh(&issuer, &login.refresh_token).await.unwrap()).await;
    assert_eq!((status, body), (401, refresh_error_body("refresh_token_invalidated")));
}

#[tokio::test]
async fn requests_are_recorded_with_lowercase_headers_and_bodies() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account::default());
    issuer.script(Endpoint::Refresh, Fault::Status(502));
    client()
        .post(format!("{}/oauth/token", issuer.url()))
        .header("Originator", "codex_cli_rs")
        .json(&json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": login.refresh_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(client().get(format!("{}/nowhere?x=1", issuer.url())).send().await.unwrap().status(), 404);
    let requests = issuer.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].endpoint, Some(Endpoint::Refresh));
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/oauth/token");
    assert_eq!(requests[0].header("originator"), Some("codex_cli_rs"));
    assert!(requests[0].headers.iter().all(|(n, _)| n == &n.to_ascii_lowercase()));
    assert_eq!(requests[0].param("refresh_token").as_deref(), Some(login.refresh_token.as_str()));
    assert_eq!(requests[1].endpoint, None);
    assert_eq!(requests[1].query.as_deref(), Some("x=1"));
    assert_eq!(issuer.count(Endpoint::Refresh), 1);
    assert!(issuer.wait_for_count(Endpoint::Refresh, 1, Duration::ZERO));
    assert!(!issuer.wait_for_count(Endpoint::Refresh, 2, Duration::from_millis(50)));
}

#[test]
fn auth_json_has_the_codex_cli_shape() {
    let issuer = FakeIssuer::start();
    let login = issuer.mint(&Account { account_id: "ws-A".into(), ..Account::default() });
    let text = login.auth_json(issuer.url());
    assert!(text.starts_with("{\n  \"auth_mode\": \"chatgpt\",\n  \"OPENAI_API_KEY\": null,\n  \"tokens\": {\n"));
    assert!(text.ends_with('}'));
    let value: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = value["tokens"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id_token", "access_token", "refresh_token", "oauth_provenance", "login_owner_id", "account_id"]);
    assert_eq!(value["tokens"]["oauth_provenance"], json!({"issuer": issuer.url(), "client_id": CLIENT_ID}));
    assert_eq!(value["tokens"]["login_owner_id"].as_str().unwrap().len(), 43);
    assert_eq!(value["tokens"]["account_id"], "ws-A");
    let last = value["last_refresh"].as_str().unwrap();
    assert!(last.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(last).is_ok(), "{last}");
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]);
}

#[test]
fn browser_visit_follows_the_redirect_to_the_callback() {
    let issuer = FakeIssuer::start();
    let callback_host = FakeIssuer::start();
    issuer.set_account(Account { email: "someone@example.com".into(), ..Account::default() });
    let redirect = format!("{}/codex/device", callback_host.url());
    let visit = browser::visit(&authorize_url(&issuer, &redirect, "st"), None).unwrap();
    assert_eq!(visit.status, 200);
    assert_eq!(visit.hops.len(), 2);
    assert!(visit.final_url.starts_with(&redirect));
    let callback = &callback_host.requests()[0];
    assert_eq!(callback.param("state").as_deref(), Some("st"));
    assert!(browser::visit("http://192.0.2.1/", None).is_err(), "loopback only");
}

#[tokio::test]
async fn tls_is_served_with_the_generated_ca() {
    let issuer = FakeIssuer::start_with(Options { tls: true, ..Options::default() }).unwrap();
    assert!(issuer.url().starts_with("https://localhost:"));
    let pem = issuer.ca_pem().unwrap();
    let trusting = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let response = trusting.get(format!("{}/codex/device", issuer.url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let port = issuer.url().rsplit(':').next().unwrap();
    let by_ip = trusting.get(format!("https://127.0.0.1:{port}/codex/device")).send().await.unwrap();
    assert_eq!(by_ip.status(), 200);
    assert!(client().get(format!("{}/codex/device", issuer.url())).send().await.is_err());
    let login = issuer.mint(&Account::default());
    let visit = browser::visit(&format!("{}/codex/device", issuer.url()), Some(pem)).unwrap();
    assert_eq!(visit.status, 200);
    assert!(login.auth_json(issuer.url()).contains("https://localhost:"));
}

#[tokio::test]
async fn control_api_scripts_mints_approves_and_lists() {
    let issuer = FakeIssuer::start_with(no_auto_approve()).unwrap();
    let control = |path: &str, body: Value| client().post(format!("{}/_fake/{path}", issuer.url())).json(&body).send();
    let script = json!({"endpoint": "refresh", "fault": {"kind": "status", "status": 500}, "always": false});
    assert_eq!(control("script", script).await.unwrap().status(), 200);
    let (status, minted) = json_of(control("mint", json!({"email": "c@example.com"})).await.unwrap()).await;
    assert_eq!(status, 200);
    let auth: Value = serde_json::from_str(minted["auth_json"].as_str().unwrap()).unwrap();
    assert_eq!(auth["tokens"]["refresh_token"], minted["refresh_token"]);
    let claims = jwt::decode_payload(minted["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["email"], "c@example.com");
    let token = minted["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&issuer, token).await.unwrap().status(), 500);

    assert_eq!(control("lifetime", json!({"seconds": 42})).await.unwrap().status(), 200);
    let (status, body) = json_of(refresh(&issuer, token).await.unwrap()).await;
    assert_eq!((status, body["expires_in"].as_u64()), (200, Some(42)));

    let always = json!({"endpoint": "revoke", "fault": {"kind": "drop"}, "always": true});
    assert_eq!(control("script", always).await.unwrap().status(), 200);
    assert!(client().post(format!("{}/oauth/revoke", issuer.url())).json(&json!({"token": "x"})).send().await.is_err());
    assert_eq!(control("clear", json!({})).await.unwrap().status(), 200);
    let revoke = json!({"token": "x"});
    assert_eq!(device_post(&issuer, "/oauth/revoke", &revoke).await.0, 200);

    let (_, start) = device_post(&issuer, "/api/accounts/deviceauth/usercode", &json!({"client_id": CLIENT_ID})).await;
    assert_eq!(control("approve", json!({"user_code": start["user_code"]})).await.unwrap().status(), 200);
    assert_eq!(control("approve", json!({"user_code": "NOPE-NOPE"})).await.unwrap().status(), 404);
    let poll = json!({"device_auth_id": start["device_auth_id"], "user_code": start["user_code"]});
    assert_eq!(device_post(&issuer, "/api/accounts/deviceauth/token", &poll).await.0, 200);

    let bad = json!({"endpoint": "nowhere", "fault": {"kind": "drop"}});
    assert_eq!(control("script", bad).await.unwrap().status(), 400);

    let listed = client().get(format!("{}/_fake/requests", issuer.url())).send().await.unwrap();
    let (_, listed) = json_of(listed).await;
    let endpoints: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["endpoint"].as_str().unwrap()).collect();
    assert_eq!(
        endpoints,
        ["refresh", "refresh", "revoke", "revoke", "device_user_code", "device_token"],
        "control requests are not recorded"
    );
    assert_eq!(listed[0]["headers"]["content-type"], "application/json");
}
