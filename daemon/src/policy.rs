//! Login policy: `forced_login_method` and `forced_chatgpt_workspace_id`, read from `$CODEX_HOME/config.toml`
//! with the Codex CLI's key names and messages; checked before a login stores anything.

use codexd_proto::methods::AuthMode;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The restrictions that apply to logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Only this kind of login is allowed.
    pub forced_login_method: Option<AuthMode>,
    /// Only these ChatGPT workspaces (`chatgpt_account_id`) are allowed.
    pub forced_workspace_ids: Option<Vec<String>>,
}

/// A config file that cannot be read; logins are refused rather than let through unchecked.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key has the wrong type.
    #[error("{}: {detail}; fix the file, then sign in again", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Deserialize)]
struct ConfigToml {
    #[serde(default)]
    forced_login_method: Option<ForcedMethod>,
    #[serde(default)]
    forced_chatgpt_workspace_id: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ForcedMethod {
    Chatgpt,
    Api,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl LoginPolicy {
    /// Reads the policy from `$CODEX_HOME/config.toml`; no file means no restriction.
    pub fn load(codex_home: &Path) -> Result<LoginPolicy, PolicyError> {
        let path = codex_home.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoginPolicy::default()),
            Err(source) => return Err(PolicyError::Read { path, source }),
        };
        Self::parse(&text).map_err(|detail| PolicyError::Parse { path, detail })
    }

    fn parse(text: &str) -> Result<LoginPolicy, String> {
        let config: ConfigToml = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        Ok(LoginPolicy {
            forced_login_method: config.forced_login_method.map(|m| match m {
                ForcedMethod::Chatgpt => AuthMode::Chatgpt,
                ForcedMethod::Api => AuthMode::ApiKey,
            }),
            forced_workspace_ids: config.forced_chatgpt_workspace_id.map(|ids| match ids {
                OneOrMany::One(id) => vec![id],
                OneOrMany::Many(ids) => ids,
            }),
        })
    }

    /// Refuses a login of the wrong kind with the Codex CLI's message.
    pub fn check_method(&self, mode: AuthMode) -> Result<(), String> {
        match (self.forced_login_method, mode) {
            (Some(AuthMode::ApiKey), AuthMode::Chatgpt) => {
                Err("ChatGPT login is disabled. Use API key login instead.".to_owned())
            }
            (Some(AuthMode::Chatgpt), AuthMode::ApiKey) => {
                Err("API key login is disabled. Use ChatGPT login instead.".to_owned())
            }
            _ => Ok(()),
        }
    }

    /// Refuses a ChatGPT login for a workspace outside the allowed list, before anything is stored.
    pub fn check_workspace(&self, account_id: Option<&str>) -> Result<(), String> {
        let Some(allowed) = &self.forced_workspace_ids else { return Ok(()) };
        match account_id {
            Some(id) if allowed.iter().any(|a| a == id) => Ok(()),
            _ => Err(format!("Login is restricted to workspace id(s) {}.", allowed.join(", "))),
        }
    }

    /// The `allowed_workspace_id` parameter of the authorize URL, when workspaces are restricted.
    pub fn allowed_workspace_param(&self) -> Option<String> {
        self.forced_workspace_ids.as_ref().map(|ids| ids.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_the_codex_cli_reads_them() {
        let policy =
            LoginPolicy::parse("forced_login_method = \"api\"\nforced_chatgpt_workspace_id = \"ws-A\"\n").unwrap();
        assert_eq!(policy.forced_login_method, Some(AuthMode::ApiKey));
        assert_eq!(policy.forced_workspace_ids, Some(vec!["ws-A".to_owned()]));
        let list = LoginPolicy::parse("forced_chatgpt_workspace_id = [\"ws-A\", \"ws-B\"]").unwrap();
        assert_eq!(list.allowed_workspace_param().as_deref(), Some("ws-A,ws-B"));
        assert_eq!(LoginPolicy::parse("model = \"x\"").unwrap(), LoginPolicy::default());
        assert!(LoginPolicy::parse("forced_login_method = \"bogus\"").is_err());
    }

    #[test]
    fn refusals_use_the_codex_cli_messages() {
        let api = LoginPolicy { forced_login_method: Some(AuthMode::ApiKey), ..LoginPolicy::default() };
        assert_eq!(
            api.check_method(AuthMode::Chatgpt).unwrap_err(),
            "ChatGPT login is disabled. Use API key login instead."
        );
        assert!(api.check_method(AuthMode::ApiKey).is_ok());
        let chatgpt = LoginPolicy { forced_login_method: Some(AuthMode::Chatgpt), ..LoginPolicy::default() };
        assert_eq!(
            chatgpt.check_method(AuthMode::ApiKey).unwrap_err(),
            "API key login is disabled. Use ChatGPT login instead."
        );
        let ws =
            LoginPolicy { forced_workspace_ids: Some(vec!["ws-A".into(), "ws-B".into()]), ..LoginPolicy::default() };
        assert!(ws.check_workspace(Some("ws-B")).is_ok());
        assert_eq!(
            ws.check_workspace(Some("acct-1")).unwrap_err(),
            "Login is restricted to workspace id(s) ws-A, ws-B."
        );
        assert!(ws.check_workspace(None).is_err());
    }
}
