//! The end-to-end test kit for codexd: start the real `codexd` binary on its own socket with its own
//! `CODEX_HOME` and a cleared environment, talk to it over the wire, build `auth.json` fixtures, and run
//! `codexctl` against it.
//!
//! Everything here synchronises by asking (connect-and-ask readiness, reads with timeouts, polling with a
//! deadline), never by sleeping a fixed time. A [`TestDaemon`] is stopped with SIGTERM when dropped, and its
//! stderr is printed when the test is failing.
//!
//! ```no_run
//! use codexd_e2e::{AuthFixture, TestDaemon, chatgpt_auth_json};
//! let fixture = AuthFixture::default();
//! let daemon = TestDaemon::builder().auth_json(chatgpt_auth_json(&fixture)).start();
//! let mut conn = daemon.raw_conn();
//! let status = conn.call("getAuthStatus", serde_json::json!({"includeToken": true}));
//! assert_eq!(status["authToken"], fixture.access_token().as_str());
//! ```

pub mod autostart;
pub mod bin;
pub mod conn;
pub mod daemon;
pub mod fixtures;
pub mod logins;
pub mod process;
pub mod secret_service;
pub mod session;
pub mod sshd;
pub mod wait;

pub use bin::bin_path;
pub use conn::Conn;
pub use daemon::{DEAD_ISSUER, TestDaemon, TestDaemonBuilder, codexd_isolation_env, system_config_dir_in};
pub use fixtures::{
    AuthFixture, SECRET_MARK, apikey_auth_json, chatgpt_auth_json, fake_jwt, hold_flock, legacy_chatgpt_auth_json,
    parse_rfc3339, remove_auth, replace_file, rfc3339, write_atomically,
};
pub use process::{Spawned, clean_command, run_with_deadline, text};
pub use wait::wait_until;
