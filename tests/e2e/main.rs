//! End-to-end tests: the real `codexd` and `codexctl` binaries, each test with its own daemon, socket and
//! `CODEX_HOME`. One module per feature.

mod auth_files;
mod cli;
mod client;
mod codexctl;
mod external;
mod faults;
mod faults_auth;
mod faults_load;
mod faults_secrets;
mod faults_uid;
mod logout;
mod protocol;
mod shutdown;
mod socket;
