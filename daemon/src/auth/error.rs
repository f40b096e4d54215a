//! [`AuthFileError`]: everything that can go wrong reading, parsing or writing the credential store.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// An error of the credential store. Messages name paths and what is wrong, never a token, key or file contents.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// `auth.json` exists but could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The new `auth.json` could not be written; the old one is untouched.
    #[error("cannot write {}: {source} (the previous file is unchanged)", .path.display())]
    Write {
        /// The file being replaced.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `auth.json` could not be removed.
    #[error("cannot remove {}: {source}", .path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A lock file could not be opened or locked (the directory is missing or not writable, ...).
    #[error("cannot open or lock {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `$CODEX_HOME` does not exist, so nothing can be locked or written there.
    #[error("{} does not exist: create it, or point CODEX_HOME (or --codex-home) at an existing directory", .path.display())]
    MissingHome {
        /// The credential home.
        path: PathBuf,
    },
    /// Another program held a lock file for longer than codexd waits.
    #[error(
        "{} is held by another program (gave up after {:.1}s); retry, or find the holder with `fuser {}`",
        .path.display(), .waited.as_secs_f64(), .path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long codexd waited.
        waited: Duration,
    },
    /// The stored document is not valid; `detail` says what is wrong without quoting it.
    #[error("auth.json: {detail}")]
    Corrupt {
        /// What is wrong, e.g. `last_refresh is empty`.
        detail: String,
    },
    /// The document holds neither an API key nor ChatGPT tokens.
    #[error("no credentials in auth.json (neither an API key nor ChatGPT tokens)")]
    NoCredentials,
    /// The document uses an `auth_mode` codexd cannot serve.
    #[error("auth.json: auth_mode {mode} is not supported by codexd (only \"apikey\" and \"chatgpt\")")]
    UnsupportedMode {
        /// The mode, quoted, or a placeholder when it does not look like a mode name.
        mode: String,
    },
}

impl AuthFileError {
    /// A [`AuthFileError::Corrupt`] with the given detail.
    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        Self::Corrupt { detail: detail.into() }
    }

    /// An [`AuthFileError::UnsupportedMode`] that shows `mode` only when it looks like a mode name.
    pub(crate) fn unsupported_mode(mode: &str) -> Self {
        let looks_like_a_name =
            !mode.is_empty() && mode.len() <= 32 && mode.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let mode = if looks_like_a_name { format!("\"{mode}\"") } else { "(unrecognised value)".to_owned() };
        Self::UnsupportedMode { mode }
    }
}
