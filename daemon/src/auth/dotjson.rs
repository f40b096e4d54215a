//! [`AuthDotJson`]: the `auth.json` document in exactly the Codex CLI's format (field names, key order, pretty
//! printing without a trailing newline), and its strict but never-quoting parser.
//!
//! Unknown keys are accepted on load and, as in the Codex CLI, not written back.

use super::AuthFileError;
use super::claims;
use chrono::{DateTime, Utc};
use codexd_proto::Secret;
use codexd_proto::methods::AuthMode;
use serde::{Deserialize, Deserializer, Serialize};

/// The `auth_mode` value of an API-key login.
pub const AUTH_MODE_APIKEY: &str = "apikey";
/// The `auth_mode` value of a ChatGPT login.
pub const AUTH_MODE_CHATGPT: &str = "chatgpt";

const LAST_REFRESH_EMPTY: &str = "last_refresh is empty";
const LAST_REFRESH_INVALID: &str = "last_refresh is not an RFC 3339 date";

/// The whole `auth.json` document (also the keyring entry's value), in the Codex CLI's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthDotJson {
    /// `"apikey"` or `"chatgpt"` (newer Codex modes are kept as written); absent in legacy files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// `OPENAI_API_KEY`: the API key, or the key from the token exchange; always written, `null` when absent.
    #[serde(rename = "OPENAI_API_KEY", default)]
    pub openai_api_key: Option<Secret>,
    /// The ChatGPT OAuth tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenData>,
    /// When the tokens were last obtained or refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "deserialize_last_refresh")]
    pub last_refresh: Option<DateTime<Utc>>,
    /// Agent-identity JWT of newer Codex modes, preserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity: Option<Secret>,
    /// Personal access token of newer Codex modes, preserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_access_token: Option<Secret>,
    /// Bedrock API key of newer Codex modes, preserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bedrock_api_key: Option<Secret>,
}

/// The `tokens` object of a ChatGPT login, in the Codex CLI's key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenData {
    /// The id_token, a JWT carrying the email, plan and account claims (so it is redacted like a secret).
    pub id_token: Secret,
    /// The access token (a JWT in practice): the bearer token for the ChatGPT backend.
    pub access_token: Secret,
    /// The single-use refresh token.
    pub refresh_token: Secret,
    /// The issuer and client recorded at login; absent in legacy files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_provenance: Option<OauthProvenance>,
    /// A random id of this login; absent in legacy files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_owner_id: Option<String>,
    /// The ChatGPT workspace id (`ChatGPT-Account-ID` header); always written, `null` when unknown.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// Where the tokens were issued: refreshes go to `<issuer>/oauth/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OauthProvenance {
    /// Issuer base URL, e.g. `https://auth.openai.com`.
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
}

impl AuthDotJson {
    /// The document of an API-key login (what `codex login --with-api-key` writes).
    pub fn from_api_key(api_key: Secret) -> Self {
        Self {
            auth_mode: Some(AUTH_MODE_APIKEY.to_owned()),
            openai_api_key: Some(api_key),
            tokens: None,
            last_refresh: None,
            agent_identity: None,
            personal_access_token: None,
            bedrock_api_key: None,
        }
    }

    /// The document of a ChatGPT login.
    pub fn from_chatgpt(tokens: TokenData, api_key: Option<Secret>, last_refresh: DateTime<Utc>) -> Self {
        Self {
            auth_mode: Some(AUTH_MODE_CHATGPT.to_owned()),
            openai_api_key: api_key,
            tokens: Some(tokens),
            last_refresh: Some(last_refresh),
            agent_identity: None,
            personal_access_token: None,
            bedrock_api_key: None,
        }
    }

    /// Parses `auth.json` (or a keyring value). Errors say what is wrong, with a line and column for JSON
    /// errors, and never quote the input.
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthFileError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AuthFileError::corrupt("the file is empty"));
        }
        let doc: Self = serde_json::from_slice(bytes).map_err(|e| AuthFileError::corrupt(describe_json_error(&e)))?;
        if let Some(tokens) = &doc.tokens {
            claims::parse_id_token(tokens.id_token.expose())
                .map_err(|e| AuthFileError::corrupt(format!("id_token {e}")))?;
        }
        Ok(doc)
    }

    /// The file contents: pretty-printed with a 2-space indent and no trailing newline, byte for byte as the
    /// Codex CLI writes them.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        // Infallible: every field is a string, an option of one, or a chrono date, and the keys are strings.
        serde_json::to_vec_pretty(self).expect("AuthDotJson serializes to JSON")
    }

    /// The keyring value as bytes: the same document as compact JSON (also the canonical form the daemon
    /// fingerprints, so the same login read from the file or the keyring is the same login).
    pub fn to_compact_bytes(&self) -> Vec<u8> {
        // Infallible, as for `to_file_bytes`.
        serde_json::to_vec(self).expect("AuthDotJson serializes to JSON")
    }

    /// How the document authenticates: `auth_mode` when set (`None` for modes codexd does not support), else
    /// the Codex CLI's rule: a non-null `OPENAI_API_KEY` means an API key even when tokens are present, else
    /// tokens mean ChatGPT.
    pub fn resolved_mode(&self) -> Option<AuthMode> {
        match self.auth_mode.as_deref() {
            Some(AUTH_MODE_APIKEY) => Some(AuthMode::ApiKey),
            Some(AUTH_MODE_CHATGPT) => Some(AuthMode::Chatgpt),
            None if self.openai_api_key.is_some() => Some(AuthMode::ApiKey),
            None if self.tokens.is_some() => Some(AuthMode::Chatgpt),
            // Another mode (unsupported by codexd), or nothing to authenticate with.
            Some(_) | None => None,
        }
    }
}

fn deserialize_last_refresh<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    use serde::de::Error as _;
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Err(D::Error::custom(LAST_REFRESH_EMPTY));
    }
    // `FromStr` is what chrono's own `Deserialize` (and so the Codex CLI) uses.
    text.parse::<DateTime<Utc>>().map(Some).map_err(|_| D::Error::custom(LAST_REFRESH_INVALID))
}

/// Describes a serde_json error by category and position only: its own message can quote the input (`invalid
/// type: string "sk-..."`), so only messages known to name nothing but our field names are kept.
fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("at line {} column {}", err.line(), err.column());
    let full = err.to_string();
    let message = full.strip_suffix(&format!(" {at}")).unwrap_or(&full);
    match err.classify() {
        Category::Eof => format!("the JSON ends early (truncated file?) {at}"),
        // Syntax messages are fixed texts such as "expected `,` or `}`" or "trailing characters".
        Category::Syntax => format!("invalid JSON {at}: {message}"),
        Category::Io => format!("read error {at}"),
        Category::Data => {
            let safe = if message.starts_with("missing field `")
                || message.starts_with("duplicate field `")
                || message == LAST_REFRESH_EMPTY
                || message == LAST_REFRESH_INVALID
            {
                message.to_owned()
            } else if let Some(expected) = message.strip_prefix("invalid type: ").and_then(expected_part) {
                format!("a value has the wrong type (expected {expected})")
            } else {
                "a value is not valid".to_owned()
            };
            format!("{safe} {at}")
        }
    }
}

/// The `expected ...` tail of an `invalid type` message, which comes from our types, not from the input.
fn expected_part(message: &str) -> Option<&str> {
    message.rfind(", expected ").map(|i| &message[i + ", expected ".len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::claims::tests::jwt;

    use crate::auth::golden::*;

    /// Every string value of a JSON document, however deep (the secrets a message must not contain).
    pub(crate) fn string_values(bytes: &[u8]) -> Vec<String> {
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&serde_json::from_slice(bytes).unwrap(), &mut out);
        out
    }

    #[test]
    fn the_apikey_file_round_trips_to_the_exact_62_bytes() {
        assert_eq!(APIKEY.len(), 62);
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        assert_eq!(doc.resolved_mode(), Some(AuthMode::ApiKey));
        assert_eq!(doc.openai_api_key.as_ref().unwrap().expose(), "sk-test-123");
        assert_eq!(doc.to_file_bytes(), APIKEY);
        assert_eq!(AuthDotJson::from_api_key(Secret::new("sk-test-123")).to_file_bytes(), APIKEY);
    }

    #[test]
    fn files_codex_wrote_round_trip_byte_for_byte() {
        for bytes in [CHATGPT, DEVICE, APIKEY] {
            let doc = AuthDotJson::parse(bytes).unwrap();
            assert_eq!(String::from_utf8(doc.to_file_bytes()).unwrap(), std::str::from_utf8(bytes).unwrap());
        }
    }

    #[test]
    fn keys_are_written_in_codex_order() {
        let doc = AuthDotJson::parse(CHATGPT).unwrap();
        let text = String::from_utf8(doc.to_file_bytes()).unwrap();
        let order = [
            "\"auth_mode\"",
            "\"OPENAI_API_KEY\"",
            "\"tokens\"",
            "\"id_token\"",
            "\"access_token\"",
            "\"refresh_token\"",
            "\"oauth_provenance\"",
            "\"issuer\"",
            "\"client_id\"",
            "\"login_owner_id\"",
            "\"account_id\"",
            "\"last_refresh\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(!text.ends_with('\n'));
        assert!(text.contains("\"last_refresh\": \"2026-11-29T03:10:06.242282525Z\""));
    }

    #[test]
    fn the_keyring_string_is_the_compact_document() {
        let doc = AuthDotJson::parse(APIKEY).unwrap();
        assert_eq!(doc.to_compact_bytes(), br#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-test-123"}"#);
        assert_eq!(AuthDotJson::parse(&doc.to_compact_bytes()).unwrap(), doc);
    }

    #[test]
    fn legacy_files_load_and_are_written_back_without_new_keys() {
        let doc = AuthDotJson::parse(LEGACY).unwrap();
        assert_eq!(doc.auth_mode, None);
        assert_eq!(doc.resolved_mode(), Some(AuthMode::Chatgpt));
        let tokens = doc.tokens.as_ref().unwrap();
        assert_eq!((&tokens.oauth_provenance, &tokens.login_owner_id), (&None, &None));
        let text = String::from_utf8(doc.to_file_bytes()).unwrap();
        assert!(text.contains("\"OPENAI_API_KEY\": null"));
        assert!(!text.contains("auth_mode") && !text.contains("oauth_provenance") && !text.contains("login_owner_id"));
    }

    #[test]
    fn a_non_null_key_wins_over_tokens_when_auth_mode_is_absent() {
        let doc = AuthDotJson::parse(LEGACY_APIKEY).unwrap();
        assert!(doc.tokens.is_some());
        assert_eq!(doc.resolved_mode(), Some(AuthMode::ApiKey));
    }

    #[test]
    fn the_minimal_file_loads_and_gains_a_null_account_id() {
        let doc = AuthDotJson::parse(MINIMAL).unwrap();
        assert_eq!(doc.resolved_mode(), Some(AuthMode::Chatgpt));
        assert_eq!(doc.tokens.as_ref().unwrap().id_token.expose(), "e30.e30.c2ln");
        assert!(String::from_utf8(doc.to_file_bytes()).unwrap().contains("\"account_id\": null"));
    }

    #[test]
    fn unknown_keys_are_accepted_and_newer_fields_preserved() {
        let text = format!(
            r#"{{"auth_mode":"agentIdentity","OPENAI_API_KEY":null,"future":{{"x":[1,2]}},"agent_identity":"{}",
            "personal_access_token":"pat-1","bedrock_api_key":"br-1",
            "tokens":{{"id_token":"e30.e30.c2ln","access_token":"a","refresh_token":"r","new_thing":true}}}}"#,
            jwt(&serde_json::json!({}))
        );
        let doc = AuthDotJson::parse(text.as_bytes()).unwrap();
        assert_eq!(doc.resolved_mode(), None);
        assert_eq!(doc.personal_access_token.as_ref().unwrap().expose(), "pat-1");
        let written = String::from_utf8(doc.to_file_bytes()).unwrap();
        assert!(written.contains("\"bedrock_api_key\": \"br-1\"") && !written.contains("future"));
    }

    #[test]
    fn resolved_mode_is_none_without_credentials() {
        let doc = AuthDotJson::parse(br#"{"OPENAI_API_KEY": null}"#).unwrap();
        assert_eq!(doc.resolved_mode(), None);
        let doc = AuthDotJson::parse(br#"{"auth_mode": "chatgpt", "OPENAI_API_KEY": "sk-x"}"#).unwrap();
        assert_eq!(doc.resolved_mode(), Some(AuthMode::Chatgpt));
    }

    #[test]
    fn corrupt_files_fail_with_a_message_that_says_what_is_wrong() {
        let cases: [(&[u8], &str); 3] = [
            (TRUNCATED, "auth.json: the JSON ends early"),
            (EMPTY_LAST_REFRESH, "auth.json: last_refresh is empty"),
            (BAD_ID_TOKEN, "auth.json: id_token is not a JWT"),
        ];
        for (bytes, expected) in cases {
            let err = AuthDotJson::parse(bytes).unwrap_err();
            assert!(matches!(err, AuthFileError::Corrupt { .. }), "{err:?}");
            assert!(err.to_string().starts_with(expected), "{err}");
        }
        assert_eq!(AuthDotJson::parse(b" \n").unwrap_err().to_string(), "auth.json: the file is empty");
    }

    #[test]
    fn other_bad_values_are_reported_without_quoting_them() {
        let cases: [(&[u8], &str); 6] = [
            (
                br#"{"OPENAI_API_KEY": "sk-a", "last_refresh": "sk-secret-date"}"#,
                "last_refresh is not an RFC 3339 date",
            ),
            (br#"{"OPENAI_API_KEY": 12345678}"#, "a value has the wrong type (expected a string)"),
            (br#"{"tokens": "sk-secret-tokens"}"#, "a value has the wrong type"),
            (
                br#"{"tokens": {"id_token": "e30.e30.c2ln", "access_token": "sk-secret-at"}}"#,
                "missing field `refresh_token`",
            ),
            (br#"{"OPENAI_API_KEY": "sk-secret-key" "#, "the JSON ends early"),
            (br#"{"OPENAI_API_KEY": "sk-secret-key" x}"#, "invalid JSON at line 1 column 36"),
        ];
        for (bytes, expected) in cases {
            let message = AuthDotJson::parse(bytes).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("secret") && !message.contains("12345678"), "{message}");
        }
    }

    #[test]
    fn errors_never_contain_a_value_of_the_file() {
        for bytes in [EMPTY_LAST_REFRESH, BAD_ID_TOKEN] {
            let err = AuthDotJson::parse(bytes).unwrap_err();
            let shown = format!("{err} {err:?}");
            for value in string_values(bytes).iter().filter(|v| v.len() >= 6) {
                assert!(!shown.contains(value.as_str()), "{shown} contains {value}");
            }
        }
        // The truncated file is not JSON; check the fragments it starts with.
        let err = AuthDotJson::parse(TRUNCATED).unwrap_err();
        let shown = format!("{err} {err:?}");
        for fragment in ["sk-proj", "eyJ", "rt_", "user@"] {
            assert!(!shown.contains(fragment), "{shown}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        for bytes in [APIKEY, CHATGPT, DEVICE, LEGACY, LEGACY_APIKEY, MINIMAL] {
            let doc = AuthDotJson::parse(bytes).unwrap();
            let shown = format!("{doc:?} {doc:#?}");
            let tokens = doc.tokens.iter().flat_map(|t| [&t.id_token, &t.access_token, &t.refresh_token]);
            for secret in doc.openai_api_key.iter().chain(tokens) {
                assert!(!shown.contains(secret.expose()), "{shown}");
            }
        }
    }
}
