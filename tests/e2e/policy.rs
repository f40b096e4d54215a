//! Managed login policy (`forced_login_method`, `forced_chatgpt_workspace_id`, and requirements.toml's
//! `allowed_login_methods` / `allowed_chatgpt_workspaces`) as codexd enforces it: each row of the Codex CLI's
//! table (stored credentials that break the policy are removed without a revoke and every subscriber is told
//! with reason `policy`; logins of the wrong kind or for a forbidden workspace are refused before anything is
//! stored), the precedence of the four config layers, the allowed lists, and policy files that change while the
//! daemon runs.

use crate::keyring::{compact, on_bus};
use codexd_e2e::fixtures::fake_jwt_signed;
use codexd_e2e::logins::{
    API_DISABLED, API_REQUIRED, CHATGPT_DISABLED, CHATGPT_REQUIRED, LOGIN_DEADLINE, assert_policy_refused,
    click_through, device_issuer, start_browser_login, start_device_login, wait_login_completed, wait_login_failed,
    write_config,
};
use codexd_e2e::session::{edit_auth_json, jwt_payload};
use codexd_e2e::{
    AuthFixture, Conn, SECRET_MARK, TestDaemon, TestDaemonBuilder, apikey_auth_json, chatgpt_auth_json, replace_file,
    wait_until, write_atomically,
};
use codexd_fake_issuer::{Account, Endpoint, FakeIssuer};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// How long the daemon may take to notice a file change and act on it.
const DEADLINE: Duration = Duration::from_secs(5);

/// `account/updated` params of a removal by policy.
fn policy_update(generation: u64, message: &str) -> Value {
    json!({"authMode": null, "planType": null, "accountId": null, "generation": generation, "reason": "policy",
           "authError": {"reason": "policy", "message": message}})
}

/// Asserts that `getAuthStatus` serves nothing and names the policy with `message`.
fn assert_policy_mark(conn: &mut Conn, message: &str) {
    let status = conn.auth_status(true);
    assert_eq!((&status["authMethod"], &status["authToken"]), (&Value::Null, &Value::Null), "{status}");
    assert_eq!(status["authError"], json!({"reason": "policy", "message": message}), "{status}");
}

fn wait_removed(daemon: &TestDaemon) {
    wait_until(DEADLINE, "codexd to remove auth.json", || !daemon.auth_path().exists());
}

fn revokes(issuer: &FakeIssuer) -> usize {
    issuer.count(Endpoint::Revoke)
}

/// The config layers, highest precedence first.
#[derive(Debug, Clone, Copy)]
enum Layer {
    Requirements,
    Managed,
    User,
    System,
}

impl Layer {
    fn with(self, builder: TestDaemonBuilder, text: &str) -> TestDaemonBuilder {
        match self {
            Layer::Requirements => builder.system_file("requirements.toml", text),
            Layer::Managed => builder.system_file("managed_config.toml", text),
            Layer::User => builder.config_toml(text),
            Layer::System => builder.system_file("config.toml", text),
        }
    }

    fn path(self, daemon: &TestDaemon) -> PathBuf {
        match self {
            Layer::Requirements => daemon.system_config_dir().join("requirements.toml"),
            Layer::Managed => daemon.system_config_dir().join("managed_config.toml"),
            Layer::User => daemon.home().join("config.toml"),
            Layer::System => daemon.system_config_dir().join("config.toml"),
        }
    }
}

/// A ChatGPT `auth.json` whose tokens carry no workspace: no `tokens.account_id`, no `chatgpt_account_id` claim.
fn chatgpt_auth_json_without_workspace() -> Vec<u8> {
    let fixture = AuthFixture::default();
    edit_auth_json(&chatgpt_auth_json(&fixture), |doc| {
        let tokens = doc["tokens"].as_object_mut().expect("tokens");
        tokens.remove("account_id");
        for (name, tag) in [("id_token", "id"), ("access_token", "access")] {
            let mut payload = jwt_payload(tokens[name].as_str().expect("a token"));
            payload["https://api.openai.com/auth"].as_object_mut().expect("auth claims").remove("chatgpt_account_id");
            tokens[name] = json!(fake_jwt_signed(&payload, &format!("{SECRET_MARK}-{tag}-noworkspace")));
        }
    })
}

// The rows of codex-auth.md §7 as they apply to a daemon.

#[test]
fn a_stored_chatgpt_login_is_removed_at_startup_without_revoke_when_api_login_is_required() {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .auth_json(tokens.auth_json(issuer.url()))
        .system_file("requirements.toml", "forced_login_method = \"api\"\n")
        .start();
    let mut conn = daemon.raw_conn();
    assert_policy_mark(&mut conn, API_REQUIRED);
    wait_removed(&daemon);
    assert_policy_mark(&mut conn, API_REQUIRED);
    let status = daemon.status();
    assert_eq!((&status["authMethod"], &status["authError"]["reason"]), (&Value::Null, &json!("policy")), "{status}");
    assert_eq!(revokes(&issuer), 0, "a login removed by policy was revoked");
    assert!(issuer.is_current_refresh_token(&tokens.refresh_token), "the refresh token was spent");
}

#[test]
fn a_stored_api_key_is_removed_when_chatgpt_login_becomes_required() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-stored"));
    let mut sub = daemon.subscriber();
    write_config(daemon.home(), "forced_login_method = \"chatgpt\"\n");
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
    assert_policy_mark(&mut sub, CHATGPT_REQUIRED);
    assert!(!daemon.stderr().contains(SECRET_MARK), "a secret is in codexd's log");
}

#[test]
fn a_stored_login_of_another_workspace_is_removed_without_revoke() {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account { account_id: "acct-1111".into(), ..Account::default() });
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .auth_json(tokens.auth_json(issuer.url()))
        .system_file("config.toml", "model = \"o3\"\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_eq!(sub.auth_status(false)["accountId"], "acct-1111");
    replace_file(
        &daemon.system_config_dir().join("managed_config.toml"),
        "forced_chatgpt_workspace_id = \"acct-OTHER\"\n",
    );
    let text =
        "Login is restricted to workspace(s) acct-OTHER, but current credentials belong to acct-1111. Logging out.";
    assert_eq!(sub.next_account_updated(), policy_update(1, text));
    wait_removed(&daemon);
    assert_policy_mark(&mut sub, text);
    assert_eq!(revokes(&issuer), 0, "a login removed by policy was revoked");
    assert!(issuer.is_current_refresh_token(&tokens.refresh_token));
}

#[test]
fn a_login_without_a_workspace_claim_is_removed_when_it_appears() {
    let daemon =
        TestDaemon::builder().system_file("config.toml", "forced_chatgpt_workspace_id = [\"acct-OTHER\"]\n").start();
    let mut sub = daemon.subscriber();
    write_atomically(daemon.home(), &chatgpt_auth_json_without_workspace());
    let text = "Login is restricted to workspace(s) acct-OTHER, but current credentials lack a workspace identifier. \
                Logging out.";
    assert_eq!(sub.next_account_updated(), policy_update(1, text));
    wait_removed(&daemon);
    assert_policy_mark(&mut sub, text);
    // The removal itself is no news: the subscriber heard of the refusal once.
    sub.assert_silent_for(Duration::from_millis(300));
    assert_eq!(daemon.status()["generation"], 1);
}

#[test]
fn an_api_key_login_is_refused_when_requirements_force_chatgpt() {
    let daemon = TestDaemon::builder().system_file("requirements.toml", "forced_login_method = \"chatgpt\"\n").start();
    let mut sub = daemon.subscriber();
    let error = sub.call_error("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-refused"}));
    assert_policy_refused(&error, API_DISABLED);
    let out =
        daemon.spawn_codexctl(&["login", "--with-api-key"], Some(b"sk-SECRETMARK-ctl\n")).wait_output(LOGIN_DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr, format!("codexctl: {API_DISABLED}\n"));
    assert!(!daemon.auth_path().exists(), "a refused API key was stored");
    assert_eq!(sub.auth_status(false)["generation"], 0);
    sub.assert_silent_for(Duration::from_millis(200));
}

#[test]
fn a_browser_login_is_refused_when_managed_config_forces_api() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .system_file("managed_config.toml", "forced_login_method = \"api\"\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_policy_refused(&sub.call_error("account/login/start", json!({"type": "chatgpt"})), CHATGPT_DISABLED);
    assert_eq!(issuer.requests(), Vec::new(), "a refused login reached the issuer");
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

#[test]
fn a_device_code_login_is_refused_when_requirements_force_api() {
    let issuer = device_issuer(Some(0));
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .system_file("requirements.toml", "forced_login_method = \"api\"\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_policy_refused(
        &sub.call_error("account/login/start", json!({"type": "chatgptDeviceCode"})),
        CHATGPT_DISABLED,
    );
    assert_eq!(issuer.requests(), Vec::new(), "a refused device login asked the issuer for a code");
    assert!(!daemon.auth_path().exists());
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

#[test]
fn a_browser_login_for_a_forbidden_workspace_is_refused_before_saving() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .system_file("managed_config.toml", "forced_chatgpt_workspace_id = \"acct-OTHER\"\n")
        .start();
    let mut sub = daemon.subscriber();
    let (login, page) = click_through(&mut sub, None);
    assert_eq!(login.param("allowed_workspace_id"), "acct-OTHER");
    let refusal = "Login is restricted to workspace id(s) acct-OTHER.";
    assert!(page.body.contains(refusal), "{page:?}");
    let (before, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": false, "error": refusal}));
    assert_eq!(before, Vec::<Value>::new(), "the refused login was announced as stored");
    assert!(!daemon.auth_path().exists(), "a refused workspace was stored");
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

#[test]
fn a_device_login_for_a_forbidden_workspace_is_refused_before_saving() {
    let issuer = device_issuer(Some(0));
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .system_file("requirements.toml", "allowed_chatgpt_workspaces = [\"acct-OTHER\"]\n")
        .start();
    let mut sub = daemon.subscriber();
    let login = start_device_login(&mut sub);
    let (before, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    let refusal = "Login is restricted to workspace id(s) acct-OTHER.";
    assert_eq!(completed, json!({"loginId": login.login_id, "success": false, "error": refusal}));
    assert_eq!(before, Vec::<Value>::new(), "the refused login was announced as stored");
    assert_eq!(issuer.count(Endpoint::CodeExchange), 1, "the device login did not get as far as its tokens");
    assert!(!daemon.auth_path().exists(), "a refused workspace was stored");
    assert_eq!(sub.auth_status(false)["generation"], 0);
}

// Precedence: requirements.toml > managed_config.toml > $CODEX_HOME/config.toml > system config.toml.

/// With both layers set, `high` wins; once its file is removed, `low` rules (and refuses the stored API key).
fn assert_precedence(high: Layer, low: Layer) {
    let key = "sk-SECRETMARK-precedence";
    let builder = TestDaemon::builder().auth_json(apikey_auth_json(key));
    let builder = high.with(builder, "forced_login_method = \"api\"\nforced_chatgpt_workspace_id = \"ws-high\"\n");
    let builder =
        low.with(builder, "forced_login_method = \"chatgpt\"\nforced_chatgpt_workspace_id = [\"ws-low\", \"ws-2\"]\n");
    let daemon = builder.start();
    let mut sub = daemon.subscriber();
    let what = format!("{high:?} over {low:?}");
    assert_eq!(
        daemon.status()["loginPolicy"],
        json!({"allowedMethods": ["apikey"], "allowedWorkspaces": ["ws-high"]}),
        "{what}"
    );
    assert_eq!(sub.auth_status(true)["authToken"], key, "{what}");
    assert_policy_refused(&sub.call_error("account/login/start", json!({"type": "chatgpt"})), CHATGPT_DISABLED);

    std::fs::remove_file(high.path(&daemon)).unwrap();
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED), "{low:?} alone");
    wait_removed(&daemon);
    assert_eq!(
        daemon.status()["loginPolicy"],
        json!({"allowedMethods": ["chatgpt"], "allowedWorkspaces": ["ws-low", "ws-2"]}),
        "{low:?} alone"
    );
    assert_policy_refused(
        &sub.call_error("account/login/start", json!({"type": "apiKey", "apiKey": key})),
        API_DISABLED,
    );
}

#[test]
fn requirements_toml_wins_over_managed_config_toml() {
    assert_precedence(Layer::Requirements, Layer::Managed);
}

#[test]
fn requirements_toml_wins_over_the_user_config_toml() {
    assert_precedence(Layer::Requirements, Layer::User);
}

#[test]
fn requirements_toml_wins_over_the_system_config_toml() {
    assert_precedence(Layer::Requirements, Layer::System);
}

#[test]
fn managed_config_toml_wins_over_the_user_config_toml() {
    assert_precedence(Layer::Managed, Layer::User);
}

#[test]
fn managed_config_toml_wins_over_the_system_config_toml() {
    assert_precedence(Layer::Managed, Layer::System);
}

#[test]
fn the_user_config_toml_wins_over_the_system_config_toml() {
    assert_precedence(Layer::User, Layer::System);
}

// requirements.toml's allowed lists.

#[test]
fn allowed_login_methods_limits_logins_like_a_forced_method() {
    let issuer = device_issuer(Some(0));
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .system_file("requirements.toml", "allowed_login_methods = [\"api\"]\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["loginPolicy"], json!({"allowedMethods": ["apikey"], "allowedWorkspaces": null}));
    assert_policy_refused(&sub.call_error("account/login/start", json!({"type": "chatgpt"})), CHATGPT_DISABLED);
    assert_policy_refused(
        &sub.call_error("account/login/start", json!({"type": "chatgptDeviceCode"})),
        CHATGPT_DISABLED,
    );
    assert_eq!(issuer.requests(), Vec::new(), "a refused login reached the issuer");
    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-allowed"}));
    let (_, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-allowed"));

    // A ChatGPT login written by another program is refused with the Codex text and removed.
    write_atomically(daemon.home(), &chatgpt_auth_json(&AuthFixture::default()));
    assert_eq!(sub.next_account_updated(), policy_update(2, API_REQUIRED));
    wait_removed(&daemon);
}

#[test]
fn an_empty_allowed_login_methods_list_denies_every_login_and_removes_what_is_stored() {
    let daemon = TestDaemon::builder()
        .auth_json(apikey_auth_json("sk-SECRETMARK-denied"))
        .system_file("config.toml", "")
        .start();
    let mut sub = daemon.subscriber();
    replace_file(&daemon.system_config_dir().join("requirements.toml"), "allowed_login_methods = []\n");
    let update = sub.next_account_updated();
    assert_eq!(
        (&update["reason"], &update["authMode"], &update["generation"]),
        (&json!("policy"), &Value::Null, &json!(1))
    );
    assert_eq!(update["authError"]["reason"], "policy", "{update}");
    let message = update["authError"]["message"].as_str().expect("a message").to_owned();
    assert!(message.contains("allowed_login_methods") && message.ends_with("Logging out."), "{message}");
    wait_removed(&daemon);
    assert_policy_mark(&mut sub, &message);
    assert_eq!(daemon.status()["loginPolicy"]["allowedMethods"], json!([]));
    for params in [
        json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-again"}),
        json!({"type": "chatgpt"}),
        json!({"type": "chatgptDeviceCode"}),
    ] {
        let error = sub.call_error("account/login/start", params.clone());
        assert_eq!((&error["code"], &error["data"]["reason"]), (&json!(-32002), &json!("policyRefused")), "{params}");
        assert!(error["message"].as_str().is_some_and(|m| m.contains("allowed_login_methods")), "{error}");
    }
    assert!(!daemon.auth_path().exists());
}

#[test]
fn allowed_lists_outside_requirements_toml_are_ignored() {
    let issuer = FakeIssuer::start();
    let lists = "allowed_login_methods = []\nallowed_chatgpt_workspaces = []\n";
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .config_toml(lists)
        .system_file("managed_config.toml", lists)
        .system_file("config.toml", lists)
        .start();
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["loginPolicy"], Value::Null);
    let login = start_browser_login(&mut sub);
    assert!(!login.auth_url.contains("allowed_workspace_id"), "{}", login.auth_url);
    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-free"}));
    assert_eq!(wait_login_failed(&mut sub, &login.login_id), "replaced by a newer login");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-free"));
}

#[test]
fn allowed_chatgpt_workspaces_intersect_with_the_forced_list() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .config_toml("forced_chatgpt_workspace_id = [\"acct-fake-0001\", \"ws-b\", \"ws-c\"]\n")
        .system_file("requirements.toml", "allowed_chatgpt_workspaces = [\"ws-c\", \"ws-z\", \"acct-fake-0001\"]\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_eq!(
        daemon.status()["loginPolicy"],
        json!({"allowedMethods": null, "allowedWorkspaces": ["acct-fake-0001", "ws-c"]})
    );
    let (login, _) = click_through(&mut sub, None);
    assert_eq!(login.param("allowed_workspace_id"), "acct-fake-0001,ws-c");
    let (_, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(sub.auth_status(false)["accountId"], "acct-fake-0001");

    // In the forced list only, or in the allowed list only: refused.
    let refusal = "Login is restricted to workspace id(s) acct-fake-0001, ws-c.";
    for outside in ["ws-b", "ws-z"] {
        issuer.set_account(Account { account_id: outside.into(), ..Account::default() });
        let (login, _) = click_through(&mut sub, None);
        assert_eq!(wait_login_failed(&mut sub, &login.login_id), refusal, "{outside}");
    }
    assert_eq!(sub.auth_status(false)["accountId"], "acct-fake-0001", "a refused login replaced the stored one");
}

#[test]
fn an_empty_workspace_intersection_refuses_chatgpt_logins_but_not_api_keys() {
    let issuer = device_issuer(Some(0));
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .config_toml("forced_chatgpt_workspace_id = \"ws-b\"\n")
        .system_file("requirements.toml", "allowed_chatgpt_workspaces = [\"ws-a\"]\n")
        .start();
    let mut sub = daemon.subscriber();
    assert_eq!(daemon.status()["loginPolicy"], json!({"allowedMethods": null, "allowedWorkspaces": []}));
    for kind in ["chatgpt", "chatgptDeviceCode"] {
        let error = sub.call_error("account/login/start", json!({"type": kind}));
        assert_eq!((&error["code"], &error["data"]["reason"]), (&json!(-32002), &json!("policyRefused")), "{kind}");
        assert!(
            error["message"].as_str().is_some_and(|m| m.starts_with("Login is restricted to workspace")),
            "{error}"
        );
    }
    assert_eq!(issuer.requests(), Vec::new(), "a refused login reached the issuer");
    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-ws"}));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-ws");
}

// Policy files that change while the daemon runs.

#[test]
fn a_policy_removal_never_revokes_but_a_logout_of_the_same_login_does() {
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let auth_json = tokens.auth_json(issuer.url());
    let daemon = TestDaemon::builder()
        .issuer(issuer.url())
        .auth_json(auth_json.clone())
        .system_file("config.toml", "model = \"o3\"\n")
        .start();
    let mut sub = daemon.subscriber();
    let requirements = daemon.system_config_dir().join("requirements.toml");
    replace_file(&requirements, "forced_login_method = \"api\"\n");
    assert_eq!(sub.next_account_updated(), policy_update(1, API_REQUIRED));
    wait_removed(&daemon);
    assert_eq!(revokes(&issuer), 0, "a login removed by policy was revoked");
    assert!(issuer.is_current_refresh_token(&tokens.refresh_token));

    // Without the policy, the same login comes back and a logout revokes it: the removal above could have.
    std::fs::remove_file(&requirements).unwrap();
    wait_until(DEADLINE, "the policy to be lifted", || daemon.status()["loginPolicy"].is_null());
    write_atomically(daemon.home(), auth_json.as_bytes());
    let update = sub.next_account_updated();
    assert_eq!((&update["reason"], &update["authMode"]), (&json!("external"), &json!("chatgpt")), "{update}");
    assert_eq!(daemon.raw_conn().call("account/logout", Value::Null), json!({}));
    assert_eq!(issuer.revoked(), [tokens.refresh_token.as_str()]);
}

#[test]
fn a_policy_edit_reaches_every_subscriber_exactly_once_and_removes_auth_json() {
    let fixture = AuthFixture::default();
    let daemon = TestDaemon::builder()
        .auth_json(chatgpt_auth_json(&fixture))
        .system_file("requirements.toml", "# no restrictions yet\n")
        .start();
    let mut subscribers: Vec<Conn> = (0..3).map(|_| daemon.subscriber()).collect();
    // Edited in place, as with an editor that writes through.
    std::fs::write(daemon.system_config_dir().join("requirements.toml"), "forced_login_method = \"api\"\n").unwrap();
    for (i, sub) in subscribers.iter_mut().enumerate() {
        assert_eq!(sub.next_account_updated(), policy_update(1, API_REQUIRED), "subscriber {i}");
    }
    wait_removed(&daemon);
    subscribers[0].assert_silent_for(Duration::from_millis(300));
    for sub in &mut subscribers[1..] {
        sub.assert_silent_for(Duration::from_millis(20));
    }
    let status = daemon.status();
    assert_eq!((&status["generation"], &status["authError"]["reason"]), (&json!(1), &json!("policy")), "{status}");
}

#[test]
fn a_system_config_directory_created_while_running_is_read() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-before-etc"));
    let system_dir = daemon.system_config_dir();
    assert!(!system_dir.exists(), "the kit created {}", system_dir.display());
    let mut sub = daemon.subscriber();
    std::fs::create_dir(&system_dir).unwrap();
    std::fs::write(system_dir.join("requirements.toml"), "forced_login_method = \"chatgpt\"\n").unwrap();
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
    assert_eq!(daemon.status()["loginPolicy"]["allowedMethods"], json!(["chatgpt"]));
}

#[test]
fn a_relaxed_policy_lets_a_new_login_in_and_the_mark_stays_until_then() {
    let daemon = TestDaemon::builder()
        .auth_json(apikey_auth_json("sk-SECRETMARK-first"))
        .system_file("config.toml", "model = \"o3\"\n")
        .start();
    let mut sub = daemon.subscriber();
    let managed = daemon.system_config_dir().join("managed_config.toml");
    replace_file(&managed, "forced_login_method = \"chatgpt\"\n");
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
    let second = json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-second"});
    assert_policy_refused(&sub.call_error("account/login/start", second.clone()), API_DISABLED);

    replace_file(&managed, "# relaxed\n");
    wait_until(DEADLINE, "the policy to be lifted", || daemon.status()["loginPolicy"].is_null());
    assert_policy_mark(&mut sub, CHATGPT_REQUIRED);
    assert_eq!(sub.call("account/login/start", second), json!({"type": "apiKey"}));
    let (before, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": null, "success": true, "error": null}));
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        before[0]["params"],
        json!({"authMode": "apikey", "planType": null, "accountId": null, "generation": 2, "reason": "login"})
    );
    let status = sub.auth_status(true);
    assert_eq!((&status["authToken"], status.get("authError")), (&json!("sk-SECRETMARK-second"), None), "{status}");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), apikey_auth_json("sk-SECRETMARK-second"));
}

#[test]
fn a_policy_tightened_during_a_browser_login_refuses_it_before_saving() {
    let issuer = FakeIssuer::start();
    let daemon = TestDaemon::builder().issuer(issuer.url()).system_file("config.toml", "model = \"o3\"\n").start();
    let mut sub = daemon.subscriber();
    let login = start_browser_login(&mut sub);
    replace_file(&daemon.system_config_dir().join("requirements.toml"), "forced_login_method = \"api\"\n");
    wait_until(DEADLINE, "the policy to apply", || !daemon.status()["loginPolicy"].is_null());
    let page = codexd_e2e::logins::visit(&login.auth_url, None);
    assert!(page.body.contains(CHATGPT_DISABLED), "{page:?}");
    let (before, completed) = wait_login_completed(&mut sub, &json!(login.login_id), LOGIN_DEADLINE);
    assert_eq!(completed, json!({"loginId": login.login_id, "success": false, "error": CHATGPT_DISABLED}));
    assert_eq!(before, Vec::<Value>::new(), "the refused login was announced as stored");
    assert!(!daemon.auth_path().exists(), "a login the new policy refuses was stored");
}

#[test]
fn a_broken_requirements_toml_keeps_the_last_good_policy() {
    let daemon = TestDaemon::builder().system_file("requirements.toml", "forced_login_method = \"chatgpt\"\n").start();
    let mut sub = daemon.subscriber();
    let requirements = daemon.system_config_dir().join("requirements.toml");
    replace_file(&requirements, "forced_login_method = \"apikey\"\n");
    let mut problem = Value::Null;
    wait_until(DEADLINE, "daemon/status to report a configProblem", || {
        problem = daemon.status()["configProblem"].clone();
        !problem.is_null()
    });
    assert_eq!(problem["reason"], "configInvalid", "{problem}");
    let start = format!(
        "{}: forced_login_method: unknown variant `apikey`, expected `chatgpt` or `api`",
        requirements.display()
    );
    assert!(problem["message"].as_str().is_some_and(|m| m.starts_with(&start)), "{problem}");
    // A typo in the admin's file must not lift the restriction.
    let error = sub.call_error("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-sneak"}));
    assert_policy_refused(&error, API_DISABLED);
    assert!(!daemon.auth_path().exists());
    assert_eq!(daemon.status()["loginPolicy"]["allowedMethods"], json!(["chatgpt"]));
}

#[test]
fn the_system_config_directory_removed_and_created_again_is_still_watched() {
    let daemon = TestDaemon::builder()
        .auth_json(apikey_auth_json("sk-SECRETMARK-rewatch"))
        .system_file("config.toml", "model = \"o3\"\n")
        .start();
    let system_dir = daemon.system_config_dir();
    let mut sub = daemon.subscriber();
    std::fs::remove_dir_all(&system_dir).unwrap();
    // A policy written into a directory of the same name made afterwards still counts.
    std::fs::create_dir(&system_dir).unwrap();
    std::fs::write(system_dir.join("requirements.toml"), "forced_login_method = \"chatgpt\"\n").unwrap();
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
}

#[test]
fn the_system_config_directory_removed_while_running_then_created_is_read() {
    let daemon = TestDaemon::builder()
        .auth_json(apikey_auth_json("sk-SECRETMARK-gone-etc"))
        .system_file("requirements.toml", "forced_login_method = \"api\"\n")
        .start();
    let system_dir = daemon.system_config_dir();
    let mut sub = daemon.subscriber();
    std::fs::remove_dir_all(&system_dir).unwrap();
    wait_until(DEADLINE, "the policy to be lifted with its directory", || daemon.status()["loginPolicy"].is_null());
    std::fs::create_dir(&system_dir).unwrap();
    std::fs::write(system_dir.join("requirements.toml"), "forced_login_method = \"chatgpt\"\n").unwrap();
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
}

#[test]
fn a_policy_file_swapped_through_a_symlink_like_a_configmap_is_read() {
    // Kubernetes mounts a ConfigMap as `<dir>/<file> -> ..data/<file>` and updates it by re-pointing `..data`
    // (a rename of a new symlink over it): requirements.toml itself is never written.
    let daemon = TestDaemon::builder()
        .auth_json(apikey_auth_json("sk-SECRETMARK-configmap"))
        .system_file("config.toml", "model = \"o3\"\n")
        .start();
    let system_dir = daemon.system_config_dir();
    std::fs::create_dir(system_dir.join("..v1")).unwrap();
    std::fs::write(system_dir.join("..v1/requirements.toml"), "forced_login_method = \"api\"\n").unwrap();
    std::os::unix::fs::symlink("..v1", system_dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/requirements.toml", system_dir.join("requirements.toml")).unwrap();
    let mut sub = daemon.subscriber();
    wait_until(DEADLINE, "the first version to apply", || {
        daemon.status()["loginPolicy"]["allowedMethods"] == json!(["apikey"])
    });
    std::fs::create_dir(system_dir.join("..v2")).unwrap();
    std::fs::write(system_dir.join("..v2/requirements.toml"), "forced_login_method = \"chatgpt\"\n").unwrap();
    std::os::unix::fs::symlink("..v2", system_dir.join("..data_tmp")).unwrap();
    std::fs::rename(system_dir.join("..data_tmp"), system_dir.join("..data")).unwrap();
    assert_eq!(sub.next_account_updated(), policy_update(1, CHATGPT_REQUIRED));
    wait_removed(&daemon);
}

#[test]
fn a_keyring_login_refused_by_policy_is_removed_from_the_keyring_without_revoke() {
    if !codexd_e2e::secret_service::available() {
        return;
    }
    let keyring = codexd_e2e::secret_service::SecretService::start();
    let issuer = FakeIssuer::start();
    let tokens = issuer.mint(&Account::default());
    let daemon = on_bus(&keyring, "keyring")
        .issuer(issuer.url())
        .system_file("requirements.toml", "forced_login_method = \"api\"\n")
        .start();
    let mut sub = daemon.subscriber();
    let account = codexd_e2e::secret_service::codex_account(daemon.home());
    keyring.store_codex_entry(&account, &compact(tokens.auth_json(issuer.url()).as_bytes()));
    assert_eq!(sub.next_account_updated(), policy_update(1, API_REQUIRED));
    wait_until(DEADLINE, "codexd to remove the keyring entry", || {
        keyring.lookup(codexd_e2e::secret_service::CODEX_SERVICE, &account).is_none()
    });
    assert_policy_mark(&mut sub, API_REQUIRED);
    assert!(!daemon.auth_path().exists(), "a keyring-mode daemon wrote auth.json");
    assert_eq!(revokes(&issuer), 0, "a login removed by policy was revoked");
    assert!(issuer.is_current_refresh_token(&tokens.refresh_token));
}
