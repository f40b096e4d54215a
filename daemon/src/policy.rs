//! Login policy owns the checks of `forced_login_method`, `forced_chatgpt_workspace_id` and the
//! `requirements.toml` lists `allowed_login_methods` / `allowed_chatgpt_workspaces`, with the Codex CLI's
//! messages: before a login stores anything, and on credentials already stored. [`crate::settings`] reads them.

use codexd_proto::methods::AuthMode;

/// The message when no login method is left.
const LOGIN_DISABLED: &str =
    "Login is disabled by your administrator (allowed_login_methods is empty in requirements.toml).";

/// The restrictions that apply to logins, merged from every config layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Only this kind of login is allowed (`forced_login_method`).
    pub forced_login_method: Option<AuthMode>,
    /// Only these ChatGPT workspaces (`chatgpt_account_id`) are allowed (`forced_chatgpt_workspace_id`).
    pub forced_workspace_ids: Option<Vec<String>>,
    /// Only these kinds of login are allowed (`allowed_login_methods`, requirements.toml only; empty denies all).
    pub allowed_login_methods: Option<Vec<AuthMode>>,
    /// Only these workspaces are allowed (`allowed_chatgpt_workspaces`, requirements.toml only; empty denies all).
    pub allowed_workspaces: Option<Vec<String>>,
}

impl LoginPolicy {
    /// Whether `mode` passes both `forced_login_method` and `allowed_login_methods`.
    fn allows(&self, mode: AuthMode) -> bool {
        self.forced_login_method.is_none_or(|forced| forced == mode)
            && self.allowed_login_methods.as_ref().is_none_or(|allowed| allowed.contains(&mode))
    }

    /// The kinds of login allowed, when `forced_login_method` or `allowed_login_methods` restricts them.
    pub fn allowed_methods(&self) -> Option<Vec<AuthMode>> {
        (self.forced_login_method.is_some() || self.allowed_login_methods.is_some())
            .then(|| [AuthMode::ApiKey, AuthMode::Chatgpt].into_iter().filter(|m| self.allows(*m)).collect())
    }

    /// Whether neither kind of login is allowed.
    fn denies_all(&self) -> bool {
        !self.allows(AuthMode::ApiKey) && !self.allows(AuthMode::Chatgpt)
    }

    /// Login-time check of the kind of login, with the Codex CLI's messages.
    pub fn check_method(&self, mode: AuthMode) -> Result<(), String> {
        if self.allows(mode) {
            return Ok(());
        }
        if self.denies_all() {
            return Err(LOGIN_DISABLED.to_owned());
        }
        Err(match mode {
            AuthMode::Chatgpt => "ChatGPT login is disabled. Use API key login instead.",
            AuthMode::ApiKey => "API key login is disabled. Use ChatGPT login instead.",
        }
        .to_owned())
    }

    /// Login-time workspace check of a ChatGPT login, before anything is stored.
    pub fn check_workspace(&self, account_id: Option<&str>) -> Result<(), String> {
        let Some(allowed) = self.effective_workspaces() else { return Ok(()) };
        match account_id {
            Some(id) if allowed.iter().any(|a| a == id) => Ok(()),
            _ => Err(format!("Login is restricted to workspace id(s) {}.", list(&allowed))),
        }
    }

    /// Enforcement on stored credentials (the daemon removes them when this errs), with the Codex CLI's texts.
    /// The workspace check applies to ChatGPT credentials only.
    pub fn check_stored(&self, mode: AuthMode, account_id: Option<&str>) -> Result<(), String> {
        if !self.allows(mode) {
            if self.denies_all() {
                return Err(format!("{LOGIN_DISABLED} Logging out."));
            }
            return Err(match mode {
                AuthMode::Chatgpt => "API key login is required, but ChatGPT is currently being used. Logging out.",
                AuthMode::ApiKey => "ChatGPT login is required, but an API key is currently being used. Logging out.",
            }
            .to_owned());
        }
        if mode != AuthMode::Chatgpt {
            return Ok(());
        }
        let Some(allowed) = self.effective_workspaces() else { return Ok(()) };
        match account_id {
            Some(id) if allowed.iter().any(|a| a == id) => Ok(()),
            Some(id) => Err(format!(
                "Login is restricted to workspace(s) {}, but current credentials belong to {id}. Logging out.",
                list(&allowed)
            )),
            None => Err(format!(
                "Login is restricted to workspace(s) {}, but current credentials lack a workspace identifier. \
                 Logging out.",
                list(&allowed)
            )),
        }
    }

    /// The effective workspace list: the forced list intersected with the allowed list (in the forced list's
    /// order), or whichever is set; None when unrestricted. An empty list allows no workspace.
    pub fn effective_workspaces(&self) -> Option<Vec<String>> {
        match (&self.forced_workspace_ids, &self.allowed_workspaces) {
            (None, None) => None,
            (Some(only), None) | (None, Some(only)) => Some(only.clone()),
            (Some(forced), Some(allowed)) => Some(forced.iter().filter(|id| allowed.contains(id)).cloned().collect()),
        }
    }

    /// The `allowed_workspace_id` authorize-URL param: effective list comma-joined (empty when none is allowed).
    pub fn allowed_workspace_param(&self) -> Option<String> {
        self.effective_workspaces().map(|ids| ids.join(","))
    }

    /// Whether the policy restricts anything.
    pub fn is_restricted(&self) -> bool {
        self.forced_login_method.is_some()
            || self.forced_workspace_ids.is_some()
            || self.allowed_login_methods.is_some()
            || self.allowed_workspaces.is_some()
    }
}

/// A workspace list for a message: ", "-joined, or "(none allowed)".
fn list(ids: &[String]) -> String {
    if ids.is_empty() { "(none allowed)".to_owned() } else { ids.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| s.to_owned()).collect()
    }

    fn forced(mode: AuthMode) -> LoginPolicy {
        LoginPolicy { forced_login_method: Some(mode), ..LoginPolicy::default() }
    }

    fn allowed(modes: &[AuthMode]) -> LoginPolicy {
        LoginPolicy { allowed_login_methods: Some(modes.to_vec()), ..LoginPolicy::default() }
    }

    const DISABLED: &str =
        "Login is disabled by your administrator (allowed_login_methods is empty in requirements.toml).";

    #[test]
    fn no_policy_allows_everything() {
        let open = LoginPolicy::default();
        assert!(!open.is_restricted());
        for mode in [AuthMode::ApiKey, AuthMode::Chatgpt] {
            assert!(open.check_method(mode).is_ok());
            assert!(open.check_stored(mode, None).is_ok());
        }
        assert!(open.check_workspace(None).is_ok());
        assert_eq!(open.effective_workspaces(), None);
        assert_eq!(open.allowed_workspace_param(), None);
    }

    #[test]
    fn check_method_uses_the_codex_messages() {
        let chatgpt_refused = "ChatGPT login is disabled. Use API key login instead.";
        let api_refused = "API key login is disabled. Use ChatGPT login instead.";
        for api_only in [forced(AuthMode::ApiKey), allowed(&[AuthMode::ApiKey])] {
            assert!(api_only.is_restricted());
            assert_eq!(api_only.check_method(AuthMode::Chatgpt).unwrap_err(), chatgpt_refused);
            assert!(api_only.check_method(AuthMode::ApiKey).is_ok());
        }
        for chatgpt_only in [forced(AuthMode::Chatgpt), allowed(&[AuthMode::Chatgpt])] {
            assert_eq!(chatgpt_only.check_method(AuthMode::ApiKey).unwrap_err(), api_refused);
            assert!(chatgpt_only.check_method(AuthMode::Chatgpt).is_ok());
        }
        let both = allowed(&[AuthMode::Chatgpt, AuthMode::ApiKey]);
        assert!(both.check_method(AuthMode::ApiKey).is_ok() && both.check_method(AuthMode::Chatgpt).is_ok());
    }

    #[test]
    fn no_method_left_disables_login() {
        let forced_api_allowed_chatgpt =
            LoginPolicy { allowed_login_methods: Some(vec![AuthMode::Chatgpt]), ..forced(AuthMode::ApiKey) };
        for policy in [allowed(&[]), forced_api_allowed_chatgpt] {
            for mode in [AuthMode::ApiKey, AuthMode::Chatgpt] {
                assert_eq!(policy.check_method(mode).unwrap_err(), DISABLED);
                assert_eq!(policy.check_stored(mode, Some("ws-A")).unwrap_err(), format!("{DISABLED} Logging out."));
            }
        }
    }

    #[test]
    fn check_workspace_uses_the_codex_messages() {
        let ws = LoginPolicy { forced_workspace_ids: Some(ids(&["ws-A", "ws-B"])), ..LoginPolicy::default() };
        assert!(ws.is_restricted());
        assert!(ws.check_workspace(Some("ws-B")).is_ok());
        assert_eq!(
            ws.check_workspace(Some("acct-1")).unwrap_err(),
            "Login is restricted to workspace id(s) ws-A, ws-B."
        );
        assert_eq!(ws.check_workspace(None).unwrap_err(), "Login is restricted to workspace id(s) ws-A, ws-B.");

        let none = LoginPolicy { allowed_workspaces: Some(ids(&[])), ..LoginPolicy::default() };
        assert_eq!(
            none.check_workspace(Some("ws-A")).unwrap_err(),
            "Login is restricted to workspace id(s) (none allowed)."
        );
    }

    #[test]
    fn effective_workspaces_intersect_in_forced_order() {
        let both = LoginPolicy {
            forced_workspace_ids: Some(ids(&["ws-A", "ws-B", "ws-C"])),
            allowed_workspaces: Some(ids(&["ws-C", "ws-A", "ws-Z"])),
            ..LoginPolicy::default()
        };
        assert_eq!(both.effective_workspaces(), Some(ids(&["ws-A", "ws-C"])));
        assert_eq!(both.allowed_workspace_param().as_deref(), Some("ws-A,ws-C"));
        assert!(both.check_workspace(Some("ws-C")).is_ok());
        assert_eq!(
            both.check_workspace(Some("ws-B")).unwrap_err(),
            "Login is restricted to workspace id(s) ws-A, ws-C."
        );
        assert_eq!(
            both.check_workspace(Some("ws-Z")).unwrap_err(),
            "Login is restricted to workspace id(s) ws-A, ws-C."
        );

        let allowed_only = LoginPolicy { allowed_workspaces: Some(ids(&["ws-Z"])), ..LoginPolicy::default() };
        assert_eq!(allowed_only.effective_workspaces(), Some(ids(&["ws-Z"])));
        let disjoint = LoginPolicy { forced_workspace_ids: Some(ids(&["ws-A"])), ..allowed_only };
        assert_eq!(disjoint.effective_workspaces(), Some(ids(&[])));
        assert_eq!(disjoint.allowed_workspace_param().as_deref(), Some(""));
        assert!(disjoint.check_workspace(Some("ws-A")).is_err());
    }

    #[test]
    fn check_stored_uses_the_codex_messages() {
        assert_eq!(
            forced(AuthMode::ApiKey).check_stored(AuthMode::Chatgpt, Some("acct-1")).unwrap_err(),
            "API key login is required, but ChatGPT is currently being used. Logging out."
        );
        assert_eq!(
            forced(AuthMode::Chatgpt).check_stored(AuthMode::ApiKey, None).unwrap_err(),
            "ChatGPT login is required, but an API key is currently being used. Logging out."
        );
        assert_eq!(
            allowed(&[AuthMode::ApiKey]).check_stored(AuthMode::Chatgpt, None).unwrap_err(),
            "API key login is required, but ChatGPT is currently being used. Logging out."
        );

        let ws = LoginPolicy { forced_workspace_ids: Some(ids(&["acct-OTHER"])), ..LoginPolicy::default() };
        assert_eq!(
            ws.check_stored(AuthMode::Chatgpt, Some("acct-1111")).unwrap_err(),
            "Login is restricted to workspace(s) acct-OTHER, but current credentials belong to acct-1111. Logging out."
        );
        assert_eq!(
            ws.check_stored(AuthMode::Chatgpt, None).unwrap_err(),
            "Login is restricted to workspace(s) acct-OTHER, but current credentials lack a workspace identifier. \
             Logging out."
        );
        assert!(ws.check_stored(AuthMode::Chatgpt, Some("acct-OTHER")).is_ok());
        // The workspace check applies to ChatGPT credentials only.
        assert!(ws.check_stored(AuthMode::ApiKey, None).is_ok());

        let two = LoginPolicy { forced_workspace_ids: Some(ids(&["ws-A", "ws-B"])), ..LoginPolicy::default() };
        assert_eq!(
            two.check_stored(AuthMode::Chatgpt, Some("ws-C")).unwrap_err(),
            "Login is restricted to workspace(s) ws-A, ws-B, but current credentials belong to ws-C. Logging out."
        );
        let none = LoginPolicy { allowed_workspaces: Some(ids(&[])), ..LoginPolicy::default() };
        assert_eq!(
            none.check_stored(AuthMode::Chatgpt, Some("ws-C")).unwrap_err(),
            "Login is restricted to workspace(s) (none allowed), but current credentials belong to ws-C. Logging out."
        );
    }
}
