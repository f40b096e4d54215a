//! End-to-end tests: the real `codexd` and `codexctl` binaries, each test with its own daemon, socket and
//! `CODEX_HOME`. One module per feature.

mod auth_files;
mod cli;
mod client;
mod codexctl;
mod external;
mod logout;
mod protocol;
mod shutdown;
mod socket;
