//! End-to-end tests: the real `codexd` and `codexctl` binaries, each test with its own daemon, socket and
//! `CODEX_HOME`. One module per feature.

mod auth_files;
mod autostart;
mod cli;
mod client;
mod codexctl;
mod config_watch;
mod external;
mod faults;
mod faults_auth;
mod faults_load;
mod faults_secrets;
mod faults_uid;
mod keyring;
mod login;
mod login_device;
mod logout;
mod logout_revoke;
mod policy;
mod protocol;
mod refresh;
mod refresh_faults;
mod refresh_races;
mod service;
mod shutdown;
mod socket;
mod ssh;
mod store_auto;
mod store_ephemeral;
mod store_migrate;
mod store_races;
mod tls;
mod units;
