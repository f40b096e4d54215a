//! Refreshing the ChatGPT tokens against the fake issuer: single flight under a thousand concurrent callers,
//! rotation over many short lifetimes without a gap, the Codex CLI's exact request and `auth.json`, adoption of
//! tokens another program rotated under `auth.lock`, and `codexctl refresh` / `status`.

use codexd_e2e::session::{
    Session, access_token_of, assert_presented_distinct, daemon_for, expire, fan_out, forced, jwt_exp, now_secs,
    patient, process_has_open, refresh_token_of, start_issuer,
};
use codexd_e2e::{hold_flock, parse_rfc3339, wait_until, write_atomically};
use codexd_fake_issuer::{Account, CLIENT_ID, Endpoint, Fault};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant, SystemTime};

/// An access-token lifetime that never needs a refresh during a test.
const HOUR: Duration = Duration::from_secs(3600);

/// How long the issuer sits on the first refresh in the single-flight tests: long enough for every caller to be
/// waiting on it, so that exactly one request is the only correct outcome.
const IN_FLIGHT: Duration = Duration::from_millis(1500);

/// The new access token every reply carries; panics naming the first reply that differs or is not a result.
fn same_token_in_all(replies: &[codexd_e2e::session::Reply]) -> String {
    let first = replies[0].response["result"]["authToken"].as_str().map(str::to_owned);
    let token = first.unwrap_or_else(|| panic!("reply 0 carries no token: {}", replies[0].response));
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.response["result"]["authToken"], token.as_str(), "reply {i}: {}", reply.response);
    }
    token
}

#[test]
fn a_thousand_concurrent_requests_on_an_expired_token_cause_one_refresh() {
    // The first refresh (whoever starts it: the scheduler at startup or the first caller) is held by the issuer
    // while a thousand callers ask for the token; all of them must wait for it and share it.
    let session = Session::start_with(
        HOUR,
        |issuer, auth| {
            issuer.script(Endpoint::Refresh, Fault::Delay(IN_FLIGHT));
            expire(&auth)
        },
        patient,
    );
    let expired = access_token_of(&session.auth_json);
    assert!(session.issuer.wait_for_count(Endpoint::Refresh, 1, Duration::from_secs(5)), "no refresh started");
    let received = session.issuer.requests_to(Endpoint::Refresh)[0].received_at;

    let fan = fan_out(session.daemon.socket(), 1000, 8, "getAuthStatus", &json!({"includeToken": true}));
    assert!(
        fan.all_sent_wall < received + IN_FLIGHT,
        "the thousand requests were not all sent while the refresh was in flight; the test proves nothing"
    );

    let token = same_token_in_all(&fan.replies);
    assert_ne!(token, expired, "an expired token was served");
    assert!(jwt_exp(&token) > now_secs(), "the served token is not fresh");
    assert_eq!(session.refreshes(), 1, "the issuer saw {} refresh requests", session.refreshes());
    let stored = std::fs::read(session.daemon.auth_path()).expect("auth.json");
    assert_eq!(access_token_of(&stored), token, "the served token is not the stored one");
}

#[test]
fn two_hundred_concurrent_forced_refreshes_share_one_request() {
    let session = Session::start_with(HOUR, |_, auth| auth, patient);
    session.issuer.script(Endpoint::Refresh, Fault::Delay(IN_FLIGHT));
    let started = SystemTime::now();
    let fan = fan_out(session.daemon.socket(), 200, 4, "getAuthStatus", &forced());
    assert!(
        fan.all_sent_wall < started + IN_FLIGHT,
        "the requests were not all sent while the refresh was in flight; the test proves nothing"
    );
    let token = same_token_in_all(&fan.replies);
    assert_ne!(token, session.login.access_token);
    assert_eq!(session.refreshes(), 1, "200 forced refreshes made {} requests", session.refreshes());
    let request = &session.issuer.requests()[0];
    assert_eq!(request.param("refresh_reason").as_deref(), Some("forced"));
}

#[test]
fn short_lived_tokens_rotate_every_half_life_without_a_gap() {
    // Tokens live 4 s; the 10-minute margin is clamped to half the lifetime, so codexd refreshes about every
    // 2 s (1.3-2 s: `exp` is whole seconds and the jitter takes up to a tenth of the margin).
    const CYCLES: usize = 5;
    let session = Session::start(Duration::from_secs(4));
    let mut subscriber = session.daemon.subscriber();
    subscriber.set_read_timeout(Some(Duration::from_millis(75)));
    let mut poller = session.daemon.raw_conn();
    let mut updates: Vec<Value> = Vec::new();
    // The refresh token auth.json holds after each refresh (read when its notification arrives).
    let mut stored_refresh_tokens: Vec<String> = Vec::new();
    let mut served = vec![session.login.access_token.clone()];
    let mut polls = 0;
    let end = Instant::now() + Duration::from_secs(25);
    while updates.len() < CYCLES {
        assert!(Instant::now() < end, "only {} refreshes in 25 s: {updates:?}", updates.len());
        let status = poller.auth_status(true);
        let token = status["authToken"].as_str().unwrap_or_else(|| panic!("no token served: {status}")).to_owned();
        let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
        let exp_ms = u128::try_from(jwt_exp(&token)).unwrap() * 1000;
        assert!(exp_ms > now_ms, "poll {polls} was served a token that expired {} ms ago", now_ms - exp_ms);
        if served.last() != Some(&token) {
            served.push(token);
        }
        polls += 1;
        // The subscriber's read timeout paces the poller (every ~75 ms).
        match subscriber.read_message() {
            Ok(Some(message)) => {
                assert_eq!(message["method"], "account/updated", "{message}");
                updates.push(message["params"].clone());
                let stored = std::fs::read(session.daemon.auth_path()).expect("auth.json");
                stored_refresh_tokens.push(refresh_token_of(&stored));
            }
            Ok(None) => panic!("codexd closed the subscriber"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("subscriber read failed: {e}"),
        }
    }

    for (i, update) in updates.iter().enumerate() {
        assert_eq!(update["reason"], "refresh", "update {i}: {update}");
        assert_eq!(update["authMode"], "chatgpt", "update {i}: {update}");
        assert_eq!(update["generation"], i as u64 + 1, "generations must increase by one: {updates:?}");
    }
    // One request per cycle: as many as notifications, each 1.0-2.6 s after the previous one (half of a 3-4 s
    // remaining life, minus up to 10 % jitter, never under the daemon's 1 s floor between scheduled refreshes;
    // slack for a loaded machine). A duplicate or a missed cycle breaks the count or a gap.
    let requests = session.issuer.requests_to(Endpoint::Refresh);
    assert_eq!(requests.len(), CYCLES, "{} refresh requests for {CYCLES} notifications", requests.len());
    let gaps: Vec<Duration> = requests
        .windows(2)
        .map(|pair| pair[1].received_at.duration_since(pair[0].received_at).unwrap_or_default())
        .collect();
    let reasons: Vec<_> = requests.iter().map(|r| r.param("refresh_reason").unwrap_or_default()).collect();
    assert!(
        gaps.iter().all(|gap| (Duration::from_millis(950)..=Duration::from_millis(2600)).contains(gap)),
        "refreshes {gaps:?} apart (reasons {reasons:?}) after {polls} polls: not one per half-life"
    );
    // Every request presented the newest refresh token (the login's, then each one stored by the previous
    // refresh), so none was presented twice.
    let presented = assert_presented_distinct(&session.issuer);
    let mut expected = vec![session.login.refresh_token.clone()];
    expected.extend(stored_refresh_tokens[..CYCLES - 1].iter().cloned());
    assert_eq!(presented, expected, "the refresh-token chain is broken");
    assert!(session.issuer.is_current_refresh_token(&stored_refresh_tokens[CYCLES - 1]));
    // The login's token and each refreshed one but the last (the loop ends on its notification) were served.
    assert!(served.len() >= CYCLES, "the poller saw only {} distinct tokens in {polls} polls", served.len());
}

#[test]
fn the_refresh_request_is_the_codex_clis_and_goes_to_the_provenance_issuer() {
    // CODEXD_ISSUER names another issuer: refresh must follow `oauth_provenance` in auth.json.
    let provenance = start_issuer(HOUR);
    let configured = start_issuer(HOUR);
    let login = provenance.mint(&Account::default());
    let daemon = daemon_for(&configured).auth_json(login.auth_json(provenance.url())).start();
    // Tokens from now on live 2 s, so the scheduler's own refresh follows the forced one within about a second.
    provenance.set_access_token_lifetime(Duration::from_secs(2));
    let status = daemon.raw_conn().call("getAuthStatus", forced());
    assert_ne!(status["authToken"], login.access_token.as_str());

    let requests = provenance.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str(), request.query.as_deref()),
        ("POST", "/oauth/token", None)
    );
    let content_type = request.header("content-type").unwrap_or_default();
    assert_eq!(content_type.split(';').next().unwrap().trim(), "application/json", "content-type {content_type}");
    assert_eq!(request.header("originator"), Some("codex_cli_rs"));
    assert!(
        request.header("user-agent").is_some_and(|ua| ua.starts_with("codex_cli_rs/")),
        "user-agent {:?}",
        request.header("user-agent")
    );
    assert_eq!(
        request.json(),
        Some(json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_reason": "forced",
                    "refresh_token": login.refresh_token}))
    );
    assert!(configured.requests().is_empty(), "the configured issuer was asked: {:?}", configured.requests());

    assert!(provenance.wait_for_count(Endpoint::Refresh, 2, Duration::from_secs(10)), "no scheduled refresh");
    let scheduled = &provenance.requests()[1];
    let stored_before = scheduled.param("refresh_token").unwrap();
    assert_eq!(scheduled.param("refresh_reason").as_deref(), Some("proactive_expiry"));
    assert_eq!(scheduled.param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(scheduled.header("originator"), Some("codex_cli_rs"));
    assert_ne!(stored_before, login.refresh_token, "the scheduler presented the already redeemed token");
    assert!(configured.requests().is_empty());
}

#[test]
fn the_refresh_url_override_wins_over_the_provenance_issuer() {
    let provenance = start_issuer(HOUR);
    let target = start_issuer(HOUR);
    // The login belongs to the override target's refresh-token family; auth.json names the other issuer.
    let login = target.mint(&Account::default());
    let daemon = daemon_for(&provenance)
        .env("CODEX_REFRESH_TOKEN_URL_OVERRIDE", format!("{}/oauth/token", target.url()))
        .auth_json(login.auth_json(provenance.url()))
        .start();
    let status = daemon.raw_conn().call("getAuthStatus", forced());
    assert!(status["authError"].is_null(), "{status}");
    assert_ne!(status["authToken"], login.access_token.as_str());
    assert!(provenance.requests().is_empty(), "the provenance issuer was asked: {:?}", provenance.requests());
    let requests = target.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].path.as_str(), requests[0].endpoint), ("/oauth/token", Some(Endpoint::Refresh)));
    assert_eq!(requests[0].param("refresh_token").as_deref(), Some(login.refresh_token.as_str()));
}

#[test]
fn auth_json_after_a_refresh_is_in_the_codex_cli_format_and_keeps_the_other_fields() {
    let session = Session::start_with(
        HOUR,
        |_, auth| codexd_e2e::session::edit_auth_json(&auth, |doc| doc["OPENAI_API_KEY"] = json!("sk-SECRETMARK-kept")),
        |builder| builder,
    );
    let path = session.daemon.auth_path();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let before: Value = serde_json::from_slice(&session.auth_json).unwrap();
    let mut subscriber = session.daemon.subscriber();
    let asked = chrono::Utc::now();
    let status = subscriber.call("getAuthStatus", forced());
    let update = subscriber.next_account_updated();
    assert_eq!((update["reason"].clone(), update["generation"].clone()), (json!("refresh"), json!(1)), "{update}");
    assert_eq!(status["generation"], 1);

    let bytes = std::fs::read(&path).expect("auth.json");
    let text = String::from_utf8(bytes).expect("auth.json is UTF-8");
    let after: Value = serde_json::from_str(&text).expect("auth.json is JSON");
    let tokens = &after["tokens"];
    let last_refresh = after["last_refresh"].as_str().expect("last_refresh");
    // The Codex CLI's bytes: this key order, 2-space indent, no trailing newline.
    let expected = json!({
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": "sk-SECRETMARK-kept",
        "tokens": {
            "id_token": tokens["id_token"],
            "access_token": status["authToken"],
            "refresh_token": tokens["refresh_token"],
            "oauth_provenance": {"issuer": session.issuer.url(), "client_id": CLIENT_ID},
            "login_owner_id": before["tokens"]["login_owner_id"],
            "account_id": before["tokens"]["account_id"],
        },
        "last_refresh": last_refresh,
    });
    assert_eq!(text, serde_json::to_string_pretty(&expected).unwrap(), "auth.json is not in the Codex CLI format");
    assert_ne!(tokens["id_token"], before["tokens"]["id_token"], "the new id_token was not stored");
    assert_ne!(tokens["refresh_token"], before["tokens"]["refresh_token"], "the rotated refresh token was not stored");
    assert!(session.issuer.is_current_refresh_token(tokens["refresh_token"].as_str().unwrap()));
    assert!(last_refresh.ends_with('Z'), "last_refresh {last_refresh}");
    let stamped = parse_rfc3339(last_refresh);
    assert!(asked <= stamped && stamped <= chrono::Utc::now(), "last_refresh {last_refresh} is not the refresh time");

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "auth.json mode {mode:o}");
    for lock in ["auth.lock", "auth.json.lock"] {
        assert!(session.daemon.home().join(lock).is_file(), "{lock} was not left behind");
    }
}

#[test]
fn tokens_rotated_by_another_program_under_auth_lock_are_adopted_without_a_request() {
    let session = Session::start(HOUR);
    let home = session.daemon.home().canonicalize().expect("CODEX_HOME");
    let lock_path = home.join("auth.lock");
    let mut subscriber = session.daemon.subscriber();
    let lock = hold_flock(&lock_path);

    let socket = session.daemon.socket().to_owned();
    let asking = std::thread::spawn(move || {
        let mut conn = codexd_e2e::Conn::connect(&socket).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(10)));
        conn.call("getAuthStatus", forced())
    });
    // codexd keeps auth.lock open while it waits for it.
    let pid = session.daemon.pid();
    wait_until(Duration::from_secs(5), "codexd to wait for auth.lock", || process_has_open(pid, &lock_path));
    let rotated = session.issuer.mint(&Account::default());
    let rotated_json = rotated.auth_json(session.issuer.url());
    write_atomically(&home, rotated_json.as_bytes());
    drop(lock);

    let status = asking.join().expect("the asking thread panicked");
    assert_eq!(status["authToken"], rotated.access_token.as_str(), "{status}");
    assert_eq!(session.refreshes(), 0, "codexd made a request although another program had rotated the tokens");
    let update = subscriber.next_account_updated();
    assert_eq!(update["reason"], "external", "{update}");
    assert_eq!(std::fs::read(home.join("auth.json")).unwrap(), rotated_json.as_bytes(), "codexd rewrote auth.json");
    assert!(session.issuer.is_current_refresh_token(&rotated.refresh_token));
}

#[test]
fn codexctl_refresh_and_status_report_a_refreshing_daemon() {
    let session = Session::start(HOUR);
    let daemon = &session.daemon;
    let secrets = codexd_e2e::session::secrets_of(&session.auth_json);

    let out = daemon.codexctl(&["refresh"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "codexctl refresh: {stderr}");
    assert!(stdout.is_empty(), "codexctl refresh printed on stdout: {stdout}");
    assert!(stderr.contains("refreshed; the token expires at"), "{stderr}");
    assert_eq!(session.refreshes(), 1);
    assert_eq!(session.issuer.requests()[0].param("refresh_reason").as_deref(), Some("forced"));
    let stored = std::fs::read(daemon.auth_path()).unwrap();
    let mut all_secrets = secrets.clone();
    all_secrets.extend(codexd_e2e::session::secrets_of(&stored));
    codexd_e2e::session::assert_no_secrets(&format!("{stdout}{stderr}"), &all_secrets, "codexctl refresh");

    let out = daemon.codexctl(&["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "codexctl status: {stdout}");
    assert!(stdout.contains("Logged in using ChatGPT"), "{stdout}");
    assert!(stdout.contains("last refresh:") && stdout.contains("next refresh:"), "{stdout}");
    codexd_e2e::session::assert_no_secrets(&stdout, &all_secrets, "codexctl status");

    // An issuer that cannot answer now: exit 1, the daemon's "for now" message, the token still served.
    session.issuer.script(Endpoint::Refresh, Fault::Status(503));
    let out = daemon.codexctl(&["refresh"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "codexctl refresh against a failing issuer: {stderr}");
    assert!(stderr.contains("failed for now"), "{stderr}");
    assert_eq!(daemon.codexctl(&["status"]).status.code(), Some(0));

    // The issuer refuses the refresh token for good: exit 1 naming the code; status shows the problem.
    session.issuer.script(Endpoint::Refresh, Fault::RefreshError { status: 401, code: "refresh_token_reused".into() });
    let out = daemon.codexctl(&["refresh"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refresh_token_reused"), "{stderr}");
    let out = daemon.codexctl(&["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "codexctl status after a refused refresh: {stdout}");
    assert!(stdout.contains("Not logged in") && stdout.contains("refresh_token_reused"), "{stdout}");
    let out = daemon.codexctl(&["status", "--json"]);
    let line: Value = serde_json::from_slice(&out.stdout).expect("codexctl status --json prints JSON");
    assert_eq!(line["auth"]["authError"]["issuerCode"], "refresh_token_reused", "{line}");
    assert_eq!(session.refreshes(), 3);
}
