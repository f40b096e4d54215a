//! [`Event`]: a notification from codexd, decoded.

use codexd_proto::Notification;
use codexd_proto::methods::{AccountUpdated, LoginCompleted, notification};

/// A notification from codexd. Connections receive them after `initialize`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `account/updated`: the credentials changed; drop cached tokens and ask again.
    AccountUpdated(AccountUpdated),
    /// `account/login/completed`: a login started on this daemon finished.
    LoginCompleted(LoginCompleted),
    /// `daemon/shuttingDown`: the last message before the daemon closes the connection.
    ShuttingDown,
    /// Any other notification, or a known one whose params did not decode, kept as received.
    Other(Notification),
}

impl Event {
    /// Decodes a notification; unknown or malformed ones become [`Event::Other`], so nothing is lost.
    pub fn from_notification(n: Notification) -> Event {
        match n.method.as_str() {
            notification::ACCOUNT_UPDATED => match serde_json::from_value(n.params.clone()) {
                Ok(updated) => Event::AccountUpdated(updated),
                Err(_) => Event::Other(n),
            },
            notification::LOGIN_COMPLETED => match serde_json::from_value(n.params.clone()) {
                Ok(completed) => Event::LoginCompleted(completed),
                Err(_) => Event::Other(n),
            },
            notification::SHUTTING_DOWN => Event::ShuttingDown,
            _ => Event::Other(n),
        }
    }

    /// The completion of login `login_id`, when this event is it (`account/login/completed` with that `loginId`).
    pub fn login_completed(&self, login_id: &str) -> Option<&LoginCompleted> {
        match self {
            Event::LoginCompleted(c) if completes(c, login_id) => Some(c),
            _ => None,
        }
    }

    /// [`Event::login_completed`], by value: the completion of login `login_id`, or the event given back when it is
    /// something else.
    // The event is given back as it came: by value, as events are passed everywhere.
    #[allow(clippy::result_large_err)]
    pub fn into_login_completed(self, login_id: &str) -> Result<LoginCompleted, Event> {
        match self {
            Event::LoginCompleted(c) if completes(&c, login_id) => Ok(c),
            other => Err(other),
        }
    }
}

/// Whether `completed` ends login `login_id`.
fn completes(completed: &LoginCompleted, login_id: &str) -> bool {
    completed.login_id.as_deref() == Some(login_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codexd_proto::methods::UpdateReason;
    use serde_json::json;

    fn note(method: &str, params: &serde_json::Value) -> Notification {
        Notification::new(method, params).unwrap()
    }

    #[test]
    fn account_updated_decodes_into_its_params() {
        let n = note(
            "account/updated",
            &json!({"authMode":"chatgpt","planType":"plus","accountId":"a","generation":3,"reason":"refresh"}),
        );
        let Event::AccountUpdated(u) = Event::from_notification(n) else { panic!("not AccountUpdated") };
        assert_eq!((u.generation, u.reason, u.account_id.as_deref()), (3, UpdateReason::Refresh, Some("a")));
    }

    #[test]
    fn login_completed_and_shutting_down_decode() {
        let n = note("account/login/completed", &json!({"loginId":"l1","success":false,"error":"denied"}));
        let Event::LoginCompleted(c) = Event::from_notification(n) else { panic!("not LoginCompleted") };
        assert_eq!((c.login_id.as_deref(), c.success, c.error.as_deref()), (Some("l1"), false, Some("denied")));
        assert_eq!(Event::from_notification(note("daemon/shuttingDown", &json!({}))), Event::ShuttingDown);
    }

    #[test]
    fn login_completed_matches_only_its_own_login() {
        let n = note("account/login/completed", &json!({"loginId":"l1","success":true,"error":null}));
        let event = Event::from_notification(n);
        assert!(event.login_completed("l1").is_some_and(|c| c.success));
        assert_eq!(event.login_completed("l2"), None);
        let api_key = note("account/login/completed", &json!({"loginId":null,"success":true,"error":null}));
        assert_eq!(Event::from_notification(api_key).login_completed(""), None);
        assert_eq!(Event::ShuttingDown.login_completed("l1"), None);
        assert!(event.clone().into_login_completed("l1").is_ok_and(|c| c.success));
        assert_eq!(event.clone().into_login_completed("l2"), Err(event));
        assert_eq!(Event::ShuttingDown.into_login_completed("l1"), Err(Event::ShuttingDown));
    }

    #[test]
    fn unknown_and_malformed_notifications_are_kept_as_other() {
        let unknown = note("daemon/somethingNew", &json!({"x":1}));
        assert_eq!(Event::from_notification(unknown.clone()), Event::Other(unknown));
        let malformed = note("account/updated", &json!({"generation":"three"}));
        assert_eq!(Event::from_notification(malformed.clone()), Event::Other(malformed));
    }
}
