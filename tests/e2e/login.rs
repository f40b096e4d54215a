//! Browser and API-key logins through codexd against the fake issuer: the wire (authorize URL, code exchange,
//! token exchange), the `auth.json` written, the notifications, every way a browser login fails without
//! touching the stored credentials, the login policy, and `codexctl login`.

use codexd_e2e::logins::{
    API_DISABLED, CHATGPT_DISABLED, LOGIN_DEADLINE, assert_policy_refused, click_through, device_issuer, form_decode,
    is_base64url, jwt_payload, keys, login_daemon, mode, param, query_params, read_auth_json, start_browser_login,
    visit, wait_login_completed, wait_login_failed, write_config,
};
use codexd_e2e::text;
use codexd_e2e::{SECRET_MARK, TestDaemon, apikey_auth_json, parse_rfc3339, wait_until};
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, FakeIssuer, Fault, RecordedRequest};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SCOPE: &str = "openid profile email offline_access api.connectors.read api.connectors.invoke";

/// The fake issuer's endpoints that were called, in order (pages excluded).
fn endpoints(issuer: &FakeIssuer) -> Vec<Endpoint> {
    issuer.requests().iter().filter_map(|r| r.endpoint).collect()
}

/// The only request of `endpoint`.
fn only_request(issuer: &FakeIssuer, endpoint: Endpoint) -> RecordedRequest {
    let requests = issuer.requests_to(endpoint);
    assert_eq!(requests.len(), 1, "expected one {endpoint:?} request, got {requests:?}");
    requests.into_iter().next().unwrap()
}

/// Asserts a form-encoded request body and returns its fields in order.
fn form_body(request: &RecordedRequest) -> Vec<(String, String)> {
    let content_type = request.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/x-www-form-urlencoded"), "not a form: {request:?}");
    form_decode(&request.body)
}

fn field_names(fields: &[(String, String)]) -> Vec<&str> {
    fields.iter().map(|(k, _)| k.as_str()).collect()
}

fn field(fields: &[(String, String)], name: &str) -> String {
    param(fields, name).unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

fn login_update(generation: u64, mode: &str, plan: Option<&str>, account: Option<&str>) -> Value {
    json!({"method": "account/updated", "jsonrpc": "2.0", "params": {
        "authMode": mode, "planType": plan, "accountId": account, "generation": generation, "reason": "login"}})
}

#[test]
fn browser_login_stores_the_issuers_tokens_in_the_codex_cli_format() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    let started = Instant::now();
    let (login, page) = click_through(&mut sub, None);

    // The authorize URL, parameter by parameter, in the Codex CLI's order.
    let port = login.callback_port();
    let redirect_uri = format!("http://127.0.0.1:{port}/auth/callback");
    assert!(login.auth_url.starts_with(&format!("{}/oauth/authorize?", issuer.url())), "{}", login.auth_url);
    let params = login.params();
    assert_eq!(
        field_names(&params),
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "state",
            "scope",
            "id_token_add_organizations",
            "codex_cli_simplified_flow",
            "originator"
        ]
    );
    assert_eq!(field(&params, "response_type"), "code");
    assert_eq!(field(&params, "client_id"), CLIENT_ID);
    assert_eq!(field(&params, "redirect_uri"), redirect_uri);
    assert_eq!(field(&params, "code_challenge_method"), "S256");
    assert_eq!(field(&params, "scope"), SCOPE);
    assert!(login.auth_url.contains(&format!("&scope={}&", SCOPE.replace(' ', "+"))), "scope not form-encoded");
    assert_eq!(field(&params, "id_token_add_organizations"), "true");
    assert_eq!(field(&params, "codex_cli_simplified_flow"), "true");
    assert_eq!(field(&params, "originator"), "codex_cli_rs");
    let state = field(&params, "state");
    assert!(state.len() == 43 && is_base64url(&state), "state {state:?}");
    let challenge = field(&params, "code_challenge");
    assert!(challenge.len() == 43 && is_base64url(&challenge), "code_challenge {challenge:?}");

    // The browser: issuer, the daemon's callback, then the success page.
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.hops.len(), 3, "{page:?}");
    assert!(page.hops[1].starts_with(&format!("{redirect_uri}?code=")), "{page:?}");
    assert!(page.final_url.starts_with(&format!("http://127.0.0.1:{port}/success")), "{page:?}");
    assert!(page.body.contains("<title>Sign into Codex</title>"), "{}", page.body);

    // Subscribers: account/updated, then account/login/completed.
    let (before, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": true, "error": null}));
    assert_eq!(before, [login_update(1, "chatgpt", Some("plus"), Some("acct-fake-0001"))]);

    // The issuer saw the authorize request, the code exchange (PKCE checked by the fake), the token exchange.
    assert_eq!(endpoints(&issuer), [Endpoint::Authorize, Endpoint::CodeExchange, Endpoint::TokenExchange]);
    let authorize = only_request(&issuer, Endpoint::Authorize);
    assert_eq!(authorize.query.as_deref(), login.auth_url.split_once('?').map(|(_, q)| q));
    let exchange = form_body(&only_request(&issuer, Endpoint::CodeExchange));
    assert_eq!(field_names(&exchange), ["grant_type", "client_id", "code", "redirect_uri", "code_verifier"]);
    assert_eq!(field(&exchange, "grant_type"), "authorization_code");
    assert_eq!(field(&exchange, "client_id"), CLIENT_ID);
    assert_eq!(Some(field(&exchange, "code")), param(&query_params(&page.hops[1]), "code"));
    assert_eq!(field(&exchange, "redirect_uri"), redirect_uri);
    let verifier = field(&exchange, "code_verifier");
    assert!(verifier.len() == 86 && is_base64url(&verifier), "code_verifier {verifier:?}");
    let token_exchange = form_body(&only_request(&issuer, Endpoint::TokenExchange));
    assert_eq!(
        field_names(&token_exchange),
        ["grant_type", "client_id", "requested_token", "subject_token", "subject_token_type"]
    );
    assert_eq!(field(&token_exchange, "grant_type"), "urn:ietf:params:oauth:grant-type:token-exchange");
    assert_eq!(field(&token_exchange, "client_id"), CLIENT_ID);
    assert_eq!(field(&token_exchange, "requested_token"), "openai-api-key");
    assert_eq!(field(&token_exchange, "subject_token_type"), "urn:ietf:params:oauth:token-type:id_token");

    // auth.json as the Codex CLI writes it.
    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!(keys(&doc), ["auth_mode", "OPENAI_API_KEY", "tokens", "last_refresh"]);
    assert_eq!(doc["auth_mode"], "chatgpt");
    let api_key = doc["OPENAI_API_KEY"].as_str().expect("OPENAI_API_KEY from the token exchange");
    assert!(api_key.starts_with("sk-fake-") && api_key.len() == 48, "{api_key}");
    let tokens = &doc["tokens"];
    assert_eq!(
        keys(tokens),
        ["id_token", "access_token", "refresh_token", "oauth_provenance", "login_owner_id", "account_id"]
    );
    assert_eq!(tokens["oauth_provenance"], json!({"issuer": issuer.url(), "client_id": CLIENT_ID}));
    let owner = tokens["login_owner_id"].as_str().unwrap();
    assert!(owner.len() == 43 && is_base64url(owner), "login_owner_id {owner:?}");
    assert_eq!(tokens["account_id"], "acct-fake-0001");
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(field(&token_exchange, "subject_token"), id_token, "the token exchange used another id_token");
    assert_eq!(jwt_payload(id_token)["iss"], issuer.url());
    assert_eq!(jwt_payload(id_token)["https://api.openai.com/auth"]["chatgpt_account_id"], "acct-fake-0001");
    let access_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_payload(access_token)["iss"], issuer.url());
    assert!(issuer.is_current_refresh_token(tokens["refresh_token"].as_str().unwrap()), "not the issued refresh token");
    let last_refresh = parse_rfc3339(doc["last_refresh"].as_str().unwrap());
    let age = chrono::Utc::now() - last_refresh;
    assert!(
        age >= chrono::Duration::zero() && age.to_std().unwrap() <= started.elapsed(),
        "last_refresh {last_refresh}"
    );

    // The daemon serves the new login.
    let status = sub.auth_status(true);
    assert_eq!((status["authMethod"].clone(), status["authToken"].clone()), (json!("chatgpt"), json!(access_token)));
}

#[test]
fn a_state_mismatch_fails_the_login_and_keeps_the_previous_api_key() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    assert_eq!(
        sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-old"})),
        json!({"type": "apiKey"})
    );
    wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    let before = std::fs::read(daemon.auth_path()).unwrap();
    assert_eq!(before, apikey_auth_json("sk-SECRETMARK-old"));

    issuer.script(Endpoint::Authorize, Fault::WrongState);
    let (login, page) = click_through(&mut sub, None);
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("State mismatch"), "{}", page.body);
    let (others, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": false, "error": "State mismatch"}));
    assert_eq!(others, Vec::<Value>::new(), "nothing changed, so nothing else may be announced");
    assert_eq!(issuer.count(Endpoint::CodeExchange), 0, "a code with a wrong state was exchanged");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), before);
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-old");
}

#[test]
fn an_access_denied_callback_fails_the_login_and_stores_nothing() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    issuer.script(Endpoint::Authorize, Fault::AuthorizeError("access_denied".into()));
    let (login, page) = click_through(&mut sub, None);
    assert!(page.body.contains("Sign-in failed: access_denied"), "{page:?}");
    assert_eq!(wait_login_failed(&mut sub, &login.login_id), "Sign-in failed: access_denied");
    assert!(!daemon.auth_path().exists(), "a refused sign-in stored something");
    assert_eq!(issuer.count(Endpoint::CodeExchange), 0);
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

#[test]
fn a_browser_login_nobody_completes_times_out_and_frees_its_port() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder().issuer(issuer.url()).env("CODEXD_LOGIN_TIMEOUT_SECS", "1").start();
    let mut sub = daemon.subscriber();
    let started = Instant::now();
    let login = start_browser_login(&mut sub);
    let error = wait_login_failed(&mut sub, &login.login_id);
    let took = started.elapsed();
    assert!(error.contains("timed out"), "{error}");
    assert!(took >= Duration::from_millis(900), "ended after {took:?}, before its 1 s timeout");
    let port = login.callback_port();
    wait_until(LOGIN_DEADLINE, "the callback listener to close", || TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": login.login_id})), json!({"status": "notFound"}));
}

#[test]
fn cancel_ends_the_login_and_an_unknown_id_is_not_found() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    let login = start_browser_login(&mut sub);
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": login.login_id})), json!({"status": "canceled"}));
    assert_eq!(wait_login_failed(&mut sub, &login.login_id), "login canceled");
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": login.login_id})), json!({"status": "notFound"}));
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": "no-such-login"})), json!({"status": "notFound"}));
    // The canceled login's callback is gone: the browser cannot finish it.
    let port = login.callback_port();
    wait_until(LOGIN_DEADLINE, "the callback listener to close", || TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(codexd_fake_issuer::browser::visit(&login.auth_url, None).is_err(), "the canceled login still answers");
    assert!(!daemon.auth_path().exists());
}

#[test]
fn a_second_login_replaces_the_first_which_fails() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    let first = start_browser_login(&mut sub);
    let second = start_browser_login(&mut sub);
    assert_ne!(first.login_id, second.login_id);
    assert_eq!(wait_login_failed(&mut sub, &first.login_id), "replaced by a newer login");
    assert_eq!(sub.call("account/login/cancel", json!({"loginId": first.login_id})), json!({"status": "notFound"}));
    let page = visit(&second.auth_url, None);
    assert_eq!(page.status, 200, "{page:?}");
    let (_, completed) = wait_login_completed(&mut sub, &json!(second.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(read_auth_json(&daemon.auth_path())["auth_mode"], "chatgpt");

    // An API-key login replaces a browser login in progress too.
    let third = start_browser_login(&mut sub);
    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-replacer"}));
    assert_eq!(wait_login_failed(&mut sub, &third.login_id), "replaced by a newer login");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-replacer"));
}

#[test]
fn a_workspace_outside_the_forced_list_is_refused_before_anything_is_stored() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    write_config(daemon.home(), "forced_chatgpt_workspace_id = \"ws-other\"\n");
    let (login, page) = click_through(&mut sub, None);
    assert_eq!(login.param("allowed_workspace_id"), "ws-other");
    assert!(login.auth_url.ends_with("&originator=codex_cli_rs&allowed_workspace_id=ws-other"), "{}", login.auth_url);
    let refusal = "Login is restricted to workspace id(s) ws-other.";
    assert!(page.body.contains(refusal), "{page:?}");
    assert_eq!(wait_login_failed(&mut sub, &login.login_id), refusal);
    assert!(!daemon.auth_path().exists(), "a refused workspace was stored");
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

#[test]
fn a_workspace_in_the_forced_list_signs_in() {
    let issuer = FakeIssuer::start();
    issuer.set_account(Account { account_id: "ws-other".into(), ..Account::default() });
    let (daemon, mut sub) = login_daemon(&issuer);
    write_config(daemon.home(), "forced_chatgpt_workspace_id = [\"ws-a\", \"ws-other\"]\n");
    let (login, _) = click_through(&mut sub, None);
    assert_eq!(login.param("allowed_workspace_id"), "ws-a,ws-other");
    assert!(login.auth_url.contains("&allowed_workspace_id=ws-a%2Cws-other"), "{}", login.auth_url);
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(read_auth_json(&daemon.auth_path())["tokens"]["account_id"], "ws-other");
}

#[test]
fn forced_login_method_api_refuses_browser_and_device_logins() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    write_config(daemon.home(), "forced_login_method = \"api\"\n");
    assert_policy_refused(&sub.call_error("account/login/start", json!({"type": "chatgpt"})), CHATGPT_DISABLED);
    assert_policy_refused(
        &sub.call_error("account/login/start", json!({"type": "chatgptDeviceCode"})),
        CHATGPT_DISABLED,
    );
    assert_eq!(issuer.requests(), Vec::new(), "a refused login reached the issuer");
    assert!(!daemon.auth_path().exists());
    // API keys are what the policy asks for.
    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-allowed"}));
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-allowed"));
}

#[test]
fn forced_login_method_chatgpt_refuses_api_keys() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    write_config(daemon.home(), "forced_login_method = \"chatgpt\"\n");
    let error = sub.call_error("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-refused"}));
    assert_policy_refused(&error, API_DISABLED);
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.auth_status(false)["generation"], 0);
    // ChatGPT logins are what the policy asks for.
    let (login, _) = click_through(&mut sub, None);
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
}

#[test]
fn a_failed_token_exchange_still_signs_in_without_an_api_key() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    issuer.script(Endpoint::TokenExchange, Fault::Status(500));
    let (login, page) = click_through(&mut sub, None);
    assert_eq!(page.status, 200, "{page:?}");
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(issuer.count(Endpoint::TokenExchange), 1);
    let doc = read_auth_json(&daemon.auth_path());
    assert_eq!((doc["auth_mode"].clone(), doc["OPENAI_API_KEY"].clone()), (json!("chatgpt"), Value::Null));
    assert_eq!(sub.auth_status(true)["authToken"], doc["tokens"]["access_token"]);
}

#[test]
fn a_failed_code_exchange_fails_the_login() {
    let issuer = FakeIssuer::start();
    let (daemon, mut sub) = login_daemon(&issuer);
    issuer.script(Endpoint::CodeExchange, Fault::Status(500));
    let (login, page) = click_through(&mut sub, None);
    assert!(page.body.contains("Sign-in failed"), "{page:?}");
    let error = wait_login_failed(&mut sub, &login.login_id);
    assert!(error.contains("could not be exchanged") && error.contains("500"), "{error}");
    assert_eq!(issuer.count(Endpoint::TokenExchange), 0);
    assert!(!daemon.auth_path().exists());
}

#[test]
fn api_key_login_stores_the_trimmed_key_byte_for_byte_and_never_logs_it() {
    let daemon = TestDaemon::builder().log("debug").start();
    let mut sub = daemon.subscriber();
    let key = "sk-SECRETMARK-e2e-0123456789";
    let result = sub.call("account/login/start", json!({"type": "apiKey", "apiKey": format!("  {key} \n")}));
    assert_eq!(result, json!({"type": "apiKey"}));
    let (before, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": null, "success": true, "error": null}));
    assert_eq!(before, [login_update(1, "apikey", None, None)]);
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json(key));
    assert_eq!(mode(&daemon.auth_path()), 0o600);
    assert_eq!(sub.auth_status(true)["authToken"], key);
    let stderr = daemon.stderr();
    assert!(stderr.contains("login stored"), "the debug log is missing: {stderr}");
    assert!(!stderr.contains(SECRET_MARK), "the API key is in the log:\n{stderr}");
}

#[test]
fn an_empty_api_key_is_invalid_params_and_changes_nothing() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-kept"));
    let mut conn = daemon.raw_conn();
    for empty in ["", "  \n\t"] {
        let error = conn.call_error("account/login/start", json!({"type": "apiKey", "apiKey": empty}));
        assert_eq!((error["code"].clone(), error["data"]["reason"].clone()), (json!(-32602), json!("invalidParams")));
    }
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-kept"));
}

#[test]
fn codexctl_login_with_api_key_reads_the_key_from_stdin() {
    let daemon = TestDaemon::start();
    let out =
        daemon.spawn_codexctl(&["login", "--with-api-key"], Some(b"sk-SECRETMARK-ctl\n")).wait_output(LOGIN_DEADLINE);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    assert!(!text(&out.stderr).contains(SECRET_MARK), "codexctl echoed the key");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-ctl"));
}

#[test]
fn codexctl_login_no_browser_prints_the_url_and_waits_for_the_sign_in() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut ctl = daemon.spawn_codexctl(&["login", "--no-browser", "--timeout", "30"], None);
    let prefix = format!("{}/oauth/authorize?", issuer.url());
    let mut url = None;
    wait_until(LOGIN_DEADLINE, "codexctl to print the sign-in URL", || {
        url = ctl.stderr().lines().find(|l| l.starts_with(&prefix)).map(str::to_owned);
        url.is_some() || ctl.try_exit().is_some()
    });
    let url = url.unwrap_or_else(|| panic!("codexctl exited without a URL:\n{}", ctl.stderr()));
    let page = visit(&url, None);
    assert_eq!(page.status, 200, "{page:?}");
    let status = ctl.wait_exit(LOGIN_DEADLINE);
    let stderr = ctl.stderr();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("codexctl: logged in as user@example.com (plus plan)"), "{stderr}");
    assert_eq!(ctl.stdout(), "");
    assert_eq!(read_auth_json(&daemon.auth_path())["tokens"]["account_id"], "acct-fake-0001");
}

#[test]
fn codexctl_login_device_auth_prints_the_code_and_waits_for_approval() {
    let issuer = device_issuer(None);
    let daemon = TestDaemon::builder().issuer(issuer.url()).start();
    let mut ctl = daemon.spawn_codexctl(&["login", "--device-auth", "--timeout", "30"], None);
    let marker = format!("open {}/codex/device and enter the code ", issuer.url());
    let mut code = None;
    wait_until(LOGIN_DEADLINE, "codexctl to print the device code", || {
        code = ctl.stderr().lines().find_map(|l| l.split_once(&marker).map(|(_, c)| c.trim().to_owned()));
        code.is_some() || ctl.try_exit().is_some()
    });
    let code = code.unwrap_or_else(|| panic!("codexctl exited without a code:\n{}", ctl.stderr()));
    assert!(issuer.approve_device(&code), "the fake issuer does not know the code {code:?}");
    let status = ctl.wait_exit(LOGIN_DEADLINE);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", ctl.stderr());
    assert!(ctl.stderr().contains("codexctl: logged in as user@example.com (plus plan)"), "{}", ctl.stderr());
    assert_eq!(read_auth_json(&daemon.auth_path())["OPENAI_API_KEY"], Value::Null);
}

#[test]
fn codexctl_login_refused_by_policy_exits_1_with_the_codex_text() {
    let daemon = TestDaemon::start();
    write_config(daemon.home(), "forced_login_method = \"api\"\n");
    let out = daemon.codexctl(&["login", "--no-browser"]);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), format!("codexctl: {CHATGPT_DISABLED}\n"));
}
