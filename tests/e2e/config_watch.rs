//! `$CODEX_HOME/config.toml` watched while codexd runs: `cli_auth_credentials_store` switches the store at once
//! (the login of the new store is served, announced with reason `external` when it differs); a config that cannot
//! be used at runtime keeps the last good config and the login and is reported as `configProblem`
//! (`configInvalid`) until it is fixed; at startup it stops codexd (exit 1) with a message naming file and key.

use crate::keyring::on_bus;
use codexd_e2e::logins::{ExitedRun, LOGIN_DEADLINE, run_codexd_to_exit, wait_login_completed};
use codexd_e2e::secret_service::{self, SecretService, codex_account};
use codexd_e2e::{Conn, TestDaemon, apikey_auth_json, replace_file, wait_until, write_atomically};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// How long the daemon may take to notice a config change and act on it.
const DEADLINE: Duration = Duration::from_secs(5);

const UNKNOWN_STORE: &str =
    "cli_auth_credentials_store: unknown variant `bogus`, expected one of `file`, `keyring`, `auto`, `ephemeral`";

fn apikey_update(generation: u64, reason: &str) -> Value {
    json!({"authMode": "apikey", "planType": null, "accountId": null, "generation": generation, "reason": reason})
}

fn logged_out_update(generation: u64, reason: &str) -> Value {
    json!({"authMode": null, "planType": null, "accountId": null, "generation": generation, "reason": reason})
}

/// Replaces `$CODEX_HOME/config.toml` as editors do: a temp file beside it, then a rename, so that the daemon
/// never sees a half-written file.
fn set_config(daemon: &TestDaemon, text: &str) {
    replace_file(&daemon.home().join("config.toml"), text);
}

fn wait_store(daemon: &TestDaemon, mode: &str) {
    wait_until(DEADLINE, &format!("the store to become {mode}"), || daemon.status()["store"] == mode);
}

/// Waits until `daemon/status` reports a config problem, and returns it.
fn wait_config_problem(daemon: &TestDaemon) -> Value {
    let mut problem = Value::Null;
    wait_until(DEADLINE, "daemon/status to report a configProblem", || {
        problem = daemon.status()["configProblem"].clone();
        !problem.is_null()
    });
    problem
}

fn wait_config_fixed(daemon: &TestDaemon) {
    wait_until(DEADLINE, "the configProblem to clear", || {
        daemon.status().get("configProblem").is_none_or(Value::is_null)
    });
}

/// Asserts a `configInvalid` problem whose message starts with `start`.
fn assert_config_invalid(problem: &Value, start: &str) {
    assert_eq!(problem["reason"], "configInvalid", "{problem}");
    let message = problem["message"].as_str().unwrap_or_else(|| panic!("no message: {problem}"));
    assert!(message.starts_with(start), "expected a message starting with {start:?}, got {message:?}");
    assert!(!message.contains('\n'), "{message:?}");
}

/// Proves nothing was announced since the last notification read: an external login must be the next one.
fn assert_next_is_external_login(daemon: &TestDaemon, sub: &mut Conn, key: &str, generation: u64) {
    write_atomically(daemon.home(), &apikey_auth_json(key));
    assert_eq!(sub.next_account_updated(), apikey_update(generation, "external"));
    assert_eq!(sub.auth_status(true)["authToken"], key);
}

// Switching stores at runtime.

#[test]
fn the_store_switches_from_file_to_ephemeral_and_back_at_runtime() {
    let on_disk = apikey_auth_json("sk-SECRETMARK-on-disk");
    let daemon = TestDaemon::with_auth(on_disk.clone());
    let mut sub = daemon.subscriber();

    set_config(&daemon, "model = \"o3\"\ncli_auth_credentials_store = \"ephemeral\"\n");
    assert_eq!(sub.next_account_updated(), logged_out_update(1, "external"), "the empty memory store is served");
    let status = daemon.status();
    assert_eq!((&status["store"], &status["authMethod"]), (&json!("ephemeral"), &Value::Null), "{status}");

    sub.call("account/login/start", json!({"type": "apiKey", "apiKey": "sk-SECRETMARK-in-memory"}));
    let (before, completed) = wait_login_completed(&mut sub, &Value::Null, LOGIN_DEADLINE);
    assert_eq!(completed["success"], true, "{completed}");
    assert_eq!(before.iter().map(|n| n["params"].clone()).collect::<Vec<_>>(), [apikey_update(2, "login")]);
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-in-memory");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), on_disk, "an ephemeral login touched auth.json");

    set_config(&daemon, "model = \"o3\"\ncli_auth_credentials_store = \"file\"\n");
    assert_eq!(sub.next_account_updated(), apikey_update(3, "external"));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-on-disk");
    assert_eq!(daemon.status()["store"], "file");
}

#[test]
fn the_store_switches_from_file_to_keyring_and_back_at_runtime() {
    if !secret_service::available() {
        return;
    }
    let keyring = SecretService::start();
    let on_disk = apikey_auth_json("sk-SECRETMARK-file-copy");
    let daemon = on_bus(&keyring, "file").auth_json(on_disk.clone()).start();
    let account = codex_account(daemon.home());
    keyring.store_codex_entry(&account, r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-SECRETMARK-keyring-copy"}"#);
    let mut sub = daemon.subscriber();

    set_config(&daemon, "cli_auth_credentials_store = \"keyring\"\n");
    assert_eq!(sub.next_account_updated(), apikey_update(1, "external"));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-keyring-copy");
    let status = daemon.status();
    assert_eq!((&status["store"], &status["storeLocation"]), (&json!("keyring"), &json!("keyring")), "{status}");
    assert_eq!(std::fs::read(daemon.auth_path()).unwrap(), on_disk, "switching the store changed auth.json");

    set_config(&daemon, "cli_auth_credentials_store = \"file\"\n");
    assert_eq!(sub.next_account_updated(), apikey_update(2, "external"));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-file-copy");
    assert!(
        keyring.lookup(secret_service::CODEX_SERVICE, &account).is_some(),
        "switching the store cleared the keyring"
    );
}

#[test]
fn switching_to_a_keyring_that_holds_the_same_login_is_no_change() {
    if !secret_service::available() {
        return;
    }
    let keyring = SecretService::start();
    let daemon = on_bus(&keyring, "file").auth_json(apikey_auth_json("sk-SECRETMARK-same")).start();
    keyring.store_codex_entry(
        &codex_account(daemon.home()),
        r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-SECRETMARK-same"}"#,
    );
    let mut sub = daemon.subscriber();
    set_config(&daemon, "cli_auth_credentials_store = \"keyring\"\n");
    wait_store(&daemon, "keyring");
    wait_until(DEADLINE, "the keyring to be read", || daemon.status()["storeLocation"] == "keyring");
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-same");
    set_config(&daemon, "cli_auth_credentials_store = \"file\"\n");
    wait_store(&daemon, "file");
    // Neither switch was announced: the next notification is this change, at generation 1.
    assert_next_is_external_login(&daemon, &mut sub, "sk-SECRETMARK-after", 1);
}

#[test]
fn a_store_set_by_managed_config_wins_and_the_user_store_takes_over_when_it_goes() {
    let daemon = TestDaemon::builder()
        .config_toml("cli_auth_credentials_store = \"file\"\n")
        .system_file("managed_config.toml", "cli_auth_credentials_store = \"ephemeral\"\n")
        .auth_json(apikey_auth_json("sk-SECRETMARK-user-file"))
        .start();
    let mut sub = daemon.subscriber();
    let status = daemon.status();
    assert_eq!((&status["store"], &status["authMethod"]), (&json!("ephemeral"), &Value::Null), "{status}");
    std::fs::remove_file(daemon.system_config_dir().join("managed_config.toml")).unwrap();
    assert_eq!(sub.next_account_updated(), apikey_update(1, "external"));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-user-file");
    assert_eq!(daemon.status()["store"], "file");
}

#[test]
fn a_store_pinned_by_requirements_ignores_the_user_config() {
    let daemon = TestDaemon::builder()
        .system_file("requirements.toml", "cli_auth_credentials_store = \"file\"\n")
        .auth_json(apikey_auth_json("sk-SECRETMARK-pinned"))
        .start();
    let mut sub = daemon.subscriber();
    set_config(&daemon, "forced_login_method = \"api\"\ncli_auth_credentials_store = \"ephemeral\"\n");
    // The user's policy line applies (so the file was read), the store line does not.
    wait_until(DEADLINE, "the user config to be read", || !daemon.status()["loginPolicy"].is_null());
    let status = daemon.status();
    assert_eq!((&status["store"], &status["authMethod"]), (&json!("file"), &json!("apikey")), "{status}");
    assert_next_is_external_login(&daemon, &mut sub, "sk-SECRETMARK-pinned-2", 1);
}

// A config that cannot be used while running.

#[test]
fn an_unknown_store_at_runtime_keeps_the_login_and_the_last_good_config_until_fixed() {
    let daemon = TestDaemon::builder()
        .config_toml("cli_auth_credentials_store = \"file\"\nforced_login_method = \"api\"\n")
        .auth_json(apikey_auth_json("sk-SECRETMARK-kept"))
        .start();
    let mut sub = daemon.subscriber();
    let config = daemon.home().join("config.toml");
    set_config(&daemon, "cli_auth_credentials_store = \"bogus\"\n");
    let problem = wait_config_problem(&daemon);
    assert_config_invalid(&problem, &format!("{}: {UNKNOWN_STORE}", config.display()));

    let status = daemon.status();
    assert_eq!((&status["store"], &status["authMethod"]), (&json!("file"), &json!("apikey")), "{status}");
    assert_eq!(status["loginPolicy"]["allowedMethods"], json!(["apikey"]), "the last good policy was dropped");
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-kept");
    let error = sub.call_error("account/login/start", json!({"type": "chatgpt"}));
    assert_eq!(error["data"]["reason"], "policyRefused", "the bad file's missing policy took effect: {error}");

    set_config(&daemon, "cli_auth_credentials_store = \"file\"\n");
    wait_config_fixed(&daemon);
    assert!(daemon.status()["loginPolicy"].is_null(), "the fixed file's (absent) policy did not take effect");
    assert_next_is_external_login(&daemon, &mut sub, "sk-SECRETMARK-next", 1);
}

#[test]
fn unparsable_toml_at_runtime_keeps_the_login_until_fixed() {
    let daemon =
        TestDaemon::builder().config_toml("model = \"o3\"\n").auth_json(apikey_auth_json("sk-SECRETMARK-kept")).start();
    let mut sub = daemon.subscriber();
    let config = daemon.home().join("config.toml");
    set_config(&daemon, "model = \"o3\"\ncli_auth_credentials_store = [[[\n");
    let problem = wait_config_problem(&daemon);
    assert_config_invalid(&problem, &format!("{}: not valid TOML: ", config.display()));
    assert!(problem["message"].as_str().unwrap().contains("line 2"), "{problem}");
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-kept");
    assert_eq!(daemon.status()["store"], "file");

    set_config(&daemon, "model = \"o3\"\ncli_auth_credentials_store = \"ephemeral\"\n");
    wait_config_fixed(&daemon);
    assert_eq!(sub.next_account_updated(), logged_out_update(1, "external"), "the fixed file's store was not used");
    assert_eq!(daemon.status()["store"], "ephemeral");
}

#[test]
fn a_config_toml_that_cannot_be_read_at_runtime_is_reported_until_fixed() {
    // Tests run as root here, so chmod 000 would not stop a read: a directory in the file's place does.
    let daemon = TestDaemon::builder()
        .config_toml("forced_login_method = \"api\"\n")
        .auth_json(apikey_auth_json("sk-SECRETMARK-kept"))
        .start();
    let mut sub = daemon.subscriber();
    let config = daemon.home().join("config.toml");
    // Swapped in one step (renameat2 RENAME_EXCHANGE): the daemon never sees config.toml missing, which would be
    // a good (empty) config of its own.
    let dir = daemon.home().join("config.d");
    std::fs::create_dir(&dir).unwrap();
    rustix::fs::renameat_with(rustix::fs::CWD, &dir, rustix::fs::CWD, &config, rustix::fs::RenameFlags::EXCHANGE)
        .expect("cannot swap config.toml with a directory");
    assert!(config.is_dir());
    let problem = wait_config_problem(&daemon);
    assert_config_invalid(&problem, &format!("cannot read {}: ", config.display()));
    assert_eq!(sub.auth_status(true)["authToken"], "sk-SECRETMARK-kept");
    assert_eq!(daemon.status()["loginPolicy"]["allowedMethods"], json!(["apikey"]), "the last good policy was dropped");

    std::fs::remove_dir(&config).unwrap();
    set_config(&daemon, "model = \"o3\"\n");
    wait_config_fixed(&daemon);
    assert!(daemon.status()["loginPolicy"].is_null());
    assert_next_is_external_login(&daemon, &mut sub, "sk-SECRETMARK-next", 1);
}

// A config that cannot be used at startup.

/// Runs `codexd` on a fresh home and system config dir, prepared by `prepare(home, system_dir)`, expecting it
/// to exit by itself, and asserts that it left no socket behind.
fn run_to_exit(prepare: impl FnOnce(&Path, &Path)) -> ExitedRun {
    let run = run_codexd_to_exit(&[], prepare);
    assert!(!run.socket.exists(), "codexd left its socket behind after a failed start");
    run
}

fn assert_exit_1_with(run: &ExitedRun, line_start: &str) {
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert_eq!(run.output.status.code(), Some(1), "stderr:\n{stderr}");
    let expected = format!("codexd: {line_start}");
    assert!(stderr.lines().any(|l| l.starts_with(&expected)), "no line starting {expected:?} in stderr:\n{stderr}");
}

#[test]
fn an_unknown_store_at_startup_exits_1_naming_file_and_key() {
    let run = run_to_exit(|home, _| {
        std::fs::write(home.join("config.toml"), "cli_auth_credentials_store = \"bogus\"\n").unwrap();
        std::fs::write(home.join("auth.json"), apikey_auth_json("sk-SECRETMARK-unused")).unwrap();
    });
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert_exit_1_with(&run, &format!("{}: {UNKNOWN_STORE}", run.home.join("config.toml").display()));
    assert!(stderr.lines().any(|l| l.ends_with(UNKNOWN_STORE)), "the message has a tail:\n{stderr}");
    assert!(!stderr.contains("SECRETMARK"), "a secret is in codexd's stderr:\n{stderr}");
}

#[test]
fn a_bad_managed_value_at_startup_exits_1_naming_file_and_key() {
    let run = run_to_exit(|_, system| {
        std::fs::write(system.join("requirements.toml"), "forced_login_method = \"apikey\"\n").unwrap();
    });
    assert_exit_1_with(
        &run,
        &format!(
            "{}: forced_login_method: unknown variant `apikey`, expected `chatgpt` or `api`",
            run.system_dir.join("requirements.toml").display()
        ),
    );
}

#[test]
fn unparsable_toml_at_startup_exits_1_naming_the_file() {
    let run = run_to_exit(|_, system| {
        std::fs::write(system.join("managed_config.toml"), "model = \"o3\"\nthis is not toml\n").unwrap();
    });
    assert_exit_1_with(&run, &format!("{}: not valid TOML: ", run.system_dir.join("managed_config.toml").display()));
}

#[test]
fn a_config_toml_that_cannot_be_read_at_startup_exits_1_naming_it() {
    let run = run_to_exit(|home, _| std::fs::create_dir(home.join("config.toml")).unwrap());
    assert_exit_1_with(&run, &format!("cannot read {}: ", run.home.join("config.toml").display()));
}

#[test]
fn a_symlinked_config_toml_edited_at_its_target_is_read() {
    let daemon = TestDaemon::with_auth(apikey_auth_json("sk-SECRETMARK-dotfiles"));
    let dotfiles = daemon.scratch().join("dotfiles");
    std::fs::create_dir(&dotfiles).unwrap();
    std::fs::write(dotfiles.join("config.toml"), "forced_login_method = \"api\"\n").unwrap();
    std::os::unix::fs::symlink(dotfiles.join("config.toml"), daemon.home().join("config.toml")).unwrap();
    let mut sub = daemon.subscriber();
    wait_until(DEADLINE, "the linked config to apply", || !daemon.status()["loginPolicy"].is_null());
    std::fs::write(dotfiles.join("config.toml"), "cli_auth_credentials_store = \"ephemeral\"\n").unwrap();
    assert_eq!(sub.next_account_updated(), logged_out_update(1, "external"));
    assert_eq!(daemon.status()["store"], "ephemeral");
}
