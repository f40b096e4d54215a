//! Settings owns reading the Codex config layers (system `requirements.toml`, `managed_config.toml`,
//! `config.toml` and `$CODEX_HOME/config.toml`), merging them with the Codex CLI's precedence into the credential
//! store mode and the login policy, and the one write codexd makes to config: `cli_auth_credentials_store`.
//!
//! Precedence for every key, first layer that sets it wins: `requirements.toml` > `managed_config.toml` >
//! `$CODEX_HOME/config.toml` > system `config.toml` > the default. Only the winning value is checked, as the
//! Codex CLI merges the layers before it reads them. Unknown keys and tables (`[profiles.x]`, ...) are ignored.

use crate::policy::LoginPolicy;
use codexd_proto::methods::AuthMode;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where managed config lives when `CODEXD_SYSTEM_CONFIG_DIR` is unset (as the Codex CLI).
pub const DEFAULT_SYSTEM_CONFIG_DIR: &str = "/etc/codex";

/// The key that selects the credential store.
const STORE_KEY: &str = "cli_auth_credentials_store";
const FORCED_METHOD_KEY: &str = "forced_login_method";
const FORCED_WORKSPACE_KEY: &str = "forced_chatgpt_workspace_id";
const ALLOWED_METHODS_KEY: &str = "allowed_login_methods";
const ALLOWED_WORKSPACES_KEY: &str = "allowed_chatgpt_workspaces";
const CONFIG_FILE: &str = "config.toml";
const REQUIREMENTS_FILE: &str = "requirements.toml";
const MANAGED_FILE: &str = "managed_config.toml";

/// Where the credentials are kept (`cli_auth_credentials_store`, the Codex CLI's `AuthCredentialsStoreMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreMode {
    /// `auth.json` only (the default).
    #[default]
    File,
    /// The OS keyring only.
    Keyring,
    /// The keyring, falling back to `auth.json`.
    Auto,
    /// In memory only; nothing persists.
    Ephemeral,
}

impl StoreMode {
    /// The config value: `file`, `keyring`, `auto` or `ephemeral`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreMode::File => "file",
            StoreMode::Keyring => "keyring",
            StoreMode::Auto => "auto",
            StoreMode::Ephemeral => "ephemeral",
        }
    }

    /// Reads a config value, exactly (case-sensitive) as the Codex CLI does; `None` for anything else.
    pub fn parse(s: &str) -> Option<StoreMode> {
        match s {
            "file" => Some(StoreMode::File),
            "keyring" => Some(StoreMode::Keyring),
            "auto" => Some(StoreMode::Auto),
            "ephemeral" => Some(StoreMode::Ephemeral),
            _ => None,
        }
    }
}

impl std::fmt::Display for StoreMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where settings come from.
#[derive(Debug, Clone)]
pub struct SettingsSources {
    /// `$CODEX_HOME`, holding the user's `config.toml`.
    pub codex_home: PathBuf,
    /// The system config dir (`/etc/codex` unless `CODEXD_SYSTEM_CONFIG_DIR` says otherwise).
    pub system_dir: PathBuf,
}

impl SettingsSources {
    /// Sources for this credential home and system config dir.
    pub fn new(codex_home: PathBuf, system_dir: PathBuf) -> Self {
        SettingsSources { codex_home, system_dir }
    }

    /// Reads and merges every layer. A missing file (or missing system dir) is an empty layer.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let [requirements, managed, user, system] = self.files();
        let layers = [
            Layer::read(requirements, true)?,
            Layer::read(managed, false)?,
            Layer::read(user, false)?,
            Layer::read(system, false)?,
        ];
        let store = first(&layers, STORE_KEY, store_mode)?;
        let policy = LoginPolicy {
            forced_login_method: first(&layers, FORCED_METHOD_KEY, auth_mode)?.map(|(m, _)| m),
            forced_workspace_ids: first(&layers, FORCED_WORKSPACE_KEY, one_or_many)?.map(|(ids, _)| ids),
            allowed_login_methods: first(&layers, ALLOWED_METHODS_KEY, |v| list_of(v, auth_mode))?.map(|(m, _)| m),
            allowed_workspaces: first(&layers, ALLOWED_WORKSPACES_KEY, |v| list_of(v, string))?.map(|(ids, _)| ids),
        };
        // requirements.toml and managed_config.toml come before $CODEX_HOME/config.toml.
        let store_managed_by = match &store {
            Some((_, path)) if *path == layers[0].path || *path == layers[1].path => Some(path.clone()),
            _ => None,
        };
        Ok(Settings {
            store: store.as_ref().map(|(mode, _)| *mode).unwrap_or_default(),
            store_set_by: store.map(|(_, path)| path),
            store_managed_by,
            policy,
        })
    }

    /// The four files, in precedence order (for watchers and messages).
    pub fn files(&self) -> [PathBuf; 4] {
        [
            self.system_dir.join(REQUIREMENTS_FILE),
            self.system_dir.join(MANAGED_FILE),
            self.user_config(),
            self.system_dir.join(CONFIG_FILE),
        ]
    }

    /// $CODEX_HOME/config.toml
    pub fn user_config(&self) -> PathBuf {
        self.codex_home.join(CONFIG_FILE)
    }
}

/// The merged settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// Where the credentials are kept.
    pub store: StoreMode,
    /// The file that set `store` (None = default).
    pub store_set_by: Option<PathBuf>,
    /// Some(file) when `requirements.toml` or `managed_config.toml` sets the store, which
    /// `$CODEX_HOME/config.toml` then cannot change.
    pub store_managed_by: Option<PathBuf>,
    /// The login restrictions of every layer.
    pub policy: LoginPolicy,
}

/// A config file that cannot be used; nothing is assumed from a file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is not TOML.
    #[error("{}: not valid TOML: {detail}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message with line and column.
        detail: String,
    },
    /// A key has a bad value.
    #[error("{}: {key}: {detail}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong, in serde's words (as the Codex CLI reports it).
        detail: String,
    },
    /// The new config file cannot be written; the old one is unchanged.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Sets `cli_auth_credentials_store = "<mode>"` in $CODEX_HOME/config.toml, keeping every other line, comment and
/// the key order (toml_edit). Creates the file (mode 0600) if missing. Atomic: temp file in the same dir + fsync +
/// rename; keeps the existing file's permission bits. Refuses (SettingsError::Parse) a file that is not TOML.
pub fn set_user_store(codex_home: &Path, mode: StoreMode) -> Result<(), SettingsError> {
    let path = codex_home.join(CONFIG_FILE);
    // A config.toml that links into a dotfiles repo stays a link: the write goes to its target.
    let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        match fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == io::ErrorKind::NotFound => path.clone(),
            Err(source) => return Err(SettingsError::Read { path, source }),
        }
    } else {
        path.clone()
    };
    let (mut doc, permissions) = match read_text(&target, &path)? {
        Some(text) => {
            let doc = text.parse::<toml_edit::DocumentMut>().map_err(|e| SettingsError::Parse {
                path: path.clone(),
                detail: parse_detail(e.message(), e.span(), &text),
            })?;
            let permissions =
                fs::metadata(&target).map_err(|source| SettingsError::Read { path: path.clone(), source })?;
            (doc, Some(permissions.permissions()))
        }
        None => (toml_edit::DocumentMut::new(), None),
    };
    let mut value = toml_edit::Value::from(mode.as_str());
    if let Some(old) = doc.get(STORE_KEY).and_then(toml_edit::Item::as_value) {
        // Keep a trailing comment on the same line.
        *value.decor_mut() = old.decor().clone();
    }
    doc[STORE_KEY] = toml_edit::Item::Value(value);
    // A new file is 0600 whatever the umask; an existing one keeps its permission bits.
    #[cfg(unix)]
    let permissions = permissions.or_else(|| Some(std::os::unix::fs::PermissionsExt::from_mode(0o600)));
    let name = target.file_name().map_or_else(|| "config.toml".into(), |n| n.to_string_lossy().into_owned());
    let temp_name = |_| format!(".{name}.{:016x}.tmp", rand::random::<u64>());
    crate::auth::file::replace_atomically(&target, temp_name, doc.to_string().as_bytes(), permissions, || Ok(()))
        .map_err(|source| SettingsError::Write { path, source })
}

/// One file's top-level table, or an empty one when the file is missing.
struct Layer {
    path: PathBuf,
    table: toml::Table,
    /// Only `requirements.toml` may set `allowed_*`.
    requirements: bool,
}

impl Layer {
    fn read(path: PathBuf, requirements: bool) -> Result<Layer, SettingsError> {
        let table = match read_text(&path, &path)? {
            Some(text) => toml::from_str::<toml::Table>(&text).map_err(|e| SettingsError::Parse {
                detail: parse_detail(e.message(), e.span(), &text),
                path: path.clone(),
            })?,
            None => toml::Table::new(),
        };
        Ok(Layer { path, table, requirements })
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        if !self.requirements && (key == ALLOWED_METHODS_KEY || key == ALLOWED_WORKSPACES_KEY) {
            return None;
        }
        self.table.get(key)
    }
}

/// The value of `key` from the first layer that sets it, converted, with that layer's file.
fn first<T>(
    layers: &[Layer],
    key: &'static str,
    convert: impl Fn(&toml::Value) -> Result<T, String>,
) -> Result<Option<(T, PathBuf)>, SettingsError> {
    let Some((layer, value)) = layers.iter().find_map(|l| l.get(key).map(|v| (l, v))) else { return Ok(None) };
    match convert(value) {
        Ok(converted) => Ok(Some((converted, layer.path.clone()))),
        Err(detail) => Err(SettingsError::Invalid { path: layer.path.clone(), key, detail }),
    }
}

/// `Ok(None)` when the file (or its directory) does not exist. `shown` is the path errors name.
fn read_text(path: &Path, shown: &Path) -> Result<Option<String>, SettingsError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(None),
        Err(source) => return Err(SettingsError::Read { path: shown.to_owned(), source }),
    };
    String::from_utf8(bytes).map(Some).map_err(|e| SettingsError::Parse {
        path: shown.to_owned(),
        detail: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })
}

/// The parser's one-line message with the line and column of the error (the file's text is not repeated).
fn parse_detail(message: &str, span: Option<std::ops::Range<usize>>, text: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    let Some(span) = span else { return message };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{message} at line {line}, column {column}")
}

fn store_mode(value: &toml::Value) -> Result<StoreMode, String> {
    let s = string(value)?;
    StoreMode::parse(&s)
        .ok_or_else(|| format!("unknown variant `{s}`, expected one of `file`, `keyring`, `auto`, `ephemeral`"))
}

fn auth_mode(value: &toml::Value) -> Result<AuthMode, String> {
    match string(value)?.as_str() {
        "chatgpt" => Ok(AuthMode::Chatgpt),
        "api" => Ok(AuthMode::ApiKey),
        other => Err(format!("unknown variant `{other}`, expected `chatgpt` or `api`")),
    }
}

fn string(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(invalid_type(other, "a string")),
    }
}

/// A string or a list of strings.
fn one_or_many(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::String(s) => Ok(vec![s.clone()]),
        toml::Value::Array(_) => list_of(value, string),
        other => Err(invalid_type(other, "a string or a list of strings")),
    }
}

fn list_of<T>(value: &toml::Value, item: impl Fn(&toml::Value) -> Result<T, String>) -> Result<Vec<T>, String> {
    let toml::Value::Array(items) = value else { return Err(invalid_type(value, "a list")) };
    items.iter().map(item).collect()
}

/// serde's wording: "invalid type: integer `1`, expected a string".
fn invalid_type(value: &toml::Value, expected: &str) -> String {
    let found = match value {
        toml::Value::String(s) => format!("string {s:?}"),
        toml::Value::Integer(i) => format!("integer `{i}`"),
        toml::Value::Float(f) => format!("floating point `{f}`"),
        toml::Value::Boolean(b) => format!("boolean `{b}`"),
        toml::Value::Datetime(d) => format!("datetime `{d}`"),
        toml::Value::Array(_) => "sequence".to_owned(),
        toml::Value::Table(_) => "map".to_owned(),
    };
    format!("invalid type: {found}, expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    struct Dirs {
        _root: TempDir,
        home: PathBuf,
        system: PathBuf,
    }

    impl Dirs {
        fn new() -> Dirs {
            let root = tempfile::tempdir().unwrap();
            let home = root.path().join("home");
            let system = root.path().join("etc-codex");
            fs::create_dir(&home).unwrap();
            fs::create_dir(&system).unwrap();
            Dirs { _root: root, home, system }
        }

        fn sources(&self) -> SettingsSources {
            SettingsSources::new(self.home.clone(), self.system.clone())
        }

        fn write(&self, which: &str, text: &str) -> PathBuf {
            let path = match which {
                "user" => self.home.join("config.toml"),
                name => self.system.join(name),
            };
            fs::write(&path, text).unwrap();
            path
        }

        fn load(&self) -> Settings {
            self.sources().load().unwrap()
        }

        fn error(&self) -> String {
            self.sources().load().unwrap_err().to_string()
        }
    }

    const ORDER: [&str; 4] = ["requirements.toml", "managed_config.toml", "user", "config.toml"];

    #[test]
    fn files_are_listed_in_precedence_order() {
        let sources = SettingsSources::new("/h".into(), "/s".into());
        assert_eq!(
            sources.files(),
            [
                PathBuf::from("/s/requirements.toml"),
                PathBuf::from("/s/managed_config.toml"),
                PathBuf::from("/h/config.toml"),
                PathBuf::from("/s/config.toml"),
            ]
        );
        assert_eq!(sources.user_config(), PathBuf::from("/h/config.toml"));
    }

    #[test]
    fn missing_files_and_missing_system_dir_give_defaults() {
        let dirs = Dirs::new();
        assert_eq!(dirs.load(), Settings::default());
        let gone = SettingsSources::new(dirs.home.join("nope"), dirs.system.join("nope"));
        assert_eq!(gone.load().unwrap(), Settings::default());
        // A system "dir" that is a file is no dir either.
        let file = dirs.write("user", "model = \"x\"\n");
        assert_eq!(SettingsSources::new(dirs.home.clone(), file).load().unwrap(), Settings::default());
    }

    #[test]
    fn unknown_keys_and_tables_are_ignored() {
        let dirs = Dirs::new();
        dirs.write(
            "user",
            "model = \"o3\"\n[profiles.work]\ncli_auth_credentials_store = \"bogus\"\nforced_login_method = 1\n",
        );
        assert_eq!(dirs.load(), Settings::default());
    }

    #[test]
    fn every_key_takes_the_first_layer_that_sets_it() {
        // For each pair (higher, lower) of layers, the higher one wins, for every key.
        for (hi, high) in ORDER.iter().enumerate() {
            for low in &ORDER[hi + 1..] {
                let dirs = Dirs::new();
                let high_path = dirs.write(
                    high,
                    "cli_auth_credentials_store = \"keyring\"\nforced_login_method = \"api\"\n\
                     forced_chatgpt_workspace_id = \"ws-high\"\n",
                );
                let low_path = dirs.write(
                    low,
                    "cli_auth_credentials_store = \"ephemeral\"\nforced_login_method = \"chatgpt\"\n\
                     forced_chatgpt_workspace_id = \"ws-low\"\n",
                );
                let settings = dirs.load();
                assert_eq!(settings.store, StoreMode::Keyring, "{high} over {low}");
                assert_eq!(settings.store_set_by.as_ref(), Some(&high_path), "{high} over {low}");
                assert_eq!(settings.policy.forced_login_method, Some(AuthMode::ApiKey), "{high} over {low}");
                assert_eq!(settings.policy.forced_workspace_ids, Some(vec!["ws-high".to_owned()]));
                let managed = matches!(*high, "requirements.toml" | "managed_config.toml").then(|| high_path.clone());
                assert_eq!(settings.store_managed_by, managed, "{high} over {low}");

                // Alone, the lower layer takes effect.
                fs::remove_file(&high_path).unwrap();
                let settings = dirs.load();
                assert_eq!(settings.store, StoreMode::Ephemeral);
                assert_eq!(settings.store_set_by, Some(low_path));
                assert_eq!(settings.policy.forced_login_method, Some(AuthMode::Chatgpt));
                assert_eq!(settings.policy.forced_workspace_ids, Some(vec!["ws-low".to_owned()]));
            }
        }
    }

    #[test]
    fn a_store_in_requirements_is_a_pin() {
        let dirs = Dirs::new();
        let requirements = dirs.write("requirements.toml", "cli_auth_credentials_store = \"file\"\n");
        dirs.write("user", "cli_auth_credentials_store = \"keyring\"\n");
        let settings = dirs.load();
        assert_eq!(settings.store, StoreMode::File);
        assert_eq!(settings.store_set_by.as_ref(), Some(&requirements));
        assert_eq!(settings.store_managed_by, Some(requirements));
    }

    #[test]
    fn every_store_mode_is_read() {
        for mode in [StoreMode::File, StoreMode::Keyring, StoreMode::Auto, StoreMode::Ephemeral] {
            let dirs = Dirs::new();
            dirs.write("user", &format!("cli_auth_credentials_store = \"{mode}\"\n"));
            assert_eq!(dirs.load().store, mode);
            assert_eq!(StoreMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(StoreMode::parse("File"), None);
        assert_eq!(StoreMode::default(), StoreMode::File);
    }

    #[test]
    fn workspace_may_be_a_string_or_a_list() {
        let dirs = Dirs::new();
        dirs.write("user", "forced_chatgpt_workspace_id = \"ws-A\"\n");
        assert_eq!(dirs.load().policy.forced_workspace_ids, Some(vec!["ws-A".to_owned()]));
        dirs.write("user", "forced_chatgpt_workspace_id = [\"ws-A\", \"ws-B\"]\n");
        let policy = dirs.load().policy;
        assert_eq!(policy.forced_workspace_ids, Some(vec!["ws-A".to_owned(), "ws-B".to_owned()]));
        assert_eq!(policy.allowed_workspace_param().as_deref(), Some("ws-A,ws-B"));
    }

    #[test]
    fn requirements_lists_intersect_with_the_forced_workspaces() {
        let dirs = Dirs::new();
        dirs.write(
            "requirements.toml",
            "allowed_login_methods = [\"chatgpt\"]\nallowed_chatgpt_workspaces = [\"ws-C\", \"ws-A\"]\n",
        );
        dirs.write("user", "forced_chatgpt_workspace_id = [\"ws-A\", \"ws-B\", \"ws-C\"]\n");
        let policy = dirs.load().policy;
        assert_eq!(policy.allowed_login_methods, Some(vec![AuthMode::Chatgpt]));
        assert_eq!(policy.allowed_workspaces, Some(vec!["ws-C".to_owned(), "ws-A".to_owned()]));
        assert_eq!(policy.effective_workspaces(), Some(vec!["ws-A".to_owned(), "ws-C".to_owned()]));
        assert_eq!(policy.allowed_workspace_param().as_deref(), Some("ws-A,ws-C"));
        assert!(policy.check_method(AuthMode::ApiKey).is_err());
    }

    #[test]
    fn allowed_lists_count_only_in_requirements() {
        let dirs = Dirs::new();
        for layer in ["managed_config.toml", "user", "config.toml"] {
            dirs.write(layer, "allowed_login_methods = []\nallowed_chatgpt_workspaces = []\n");
        }
        assert_eq!(dirs.load().policy, LoginPolicy::default());
    }

    #[test]
    fn empty_requirements_lists_deny_everything() {
        let dirs = Dirs::new();
        dirs.write("requirements.toml", "allowed_login_methods = []\nallowed_chatgpt_workspaces = []\n");
        let policy = dirs.load().policy;
        assert_eq!(policy.allowed_login_methods, Some(vec![]));
        assert!(policy.check_method(AuthMode::ApiKey).is_err());
        assert!(policy.check_method(AuthMode::Chatgpt).is_err());
        assert_eq!(policy.effective_workspaces(), Some(vec![]));
        assert!(policy.check_workspace(Some("ws-A")).is_err());
    }

    #[test]
    fn a_bad_store_value_has_the_codex_message() {
        let dirs = Dirs::new();
        let path = dirs.write("user", "cli_auth_credentials_store = \"bogus\"\n");
        assert_eq!(
            dirs.error(),
            format!(
                "{}: cli_auth_credentials_store: unknown variant `bogus`, expected one of `file`, `keyring`, \
                 `auto`, `ephemeral`",
                path.display()
            )
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_file_and_key() {
        let cases = [
            (
                "cli_auth_credentials_store = 1",
                "cli_auth_credentials_store: invalid type: integer `1`, expected a string",
            ),
            (
                "forced_login_method = \"apikey\"",
                "forced_login_method: unknown variant `apikey`, expected `chatgpt` or `api`",
            ),
            ("forced_login_method = true", "forced_login_method: invalid type: boolean `true`, expected a string"),
            (
                "forced_chatgpt_workspace_id = 7",
                "forced_chatgpt_workspace_id: invalid type: integer `7`, expected a string or a list of strings",
            ),
            (
                "forced_chatgpt_workspace_id = [\"a\", 2]",
                "forced_chatgpt_workspace_id: invalid type: integer `2`, expected a string",
            ),
            ("allowed_login_methods = \"api\"", "allowed_login_methods: invalid type: string \"api\", expected a list"),
            ("allowed_chatgpt_workspaces = [{}]", "allowed_chatgpt_workspaces: invalid type: map, expected a string"),
        ];
        for (text, message) in cases {
            let dirs = Dirs::new();
            let path = dirs.write("requirements.toml", text);
            assert_eq!(dirs.error(), format!("{}: {message}", path.display()), "{text}");
            assert!(matches!(dirs.sources().load(), Err(SettingsError::Invalid { .. })));
        }
    }

    #[test]
    fn an_overridden_bad_value_is_not_an_error() {
        let dirs = Dirs::new();
        dirs.write("managed_config.toml", "cli_auth_credentials_store = \"auto\"\n");
        dirs.write("user", "cli_auth_credentials_store = \"bogus\"\n");
        assert_eq!(dirs.load().store, StoreMode::Auto);
    }

    #[test]
    fn a_file_that_is_not_toml_is_named() {
        let dirs = Dirs::new();
        let path = dirs.write("managed_config.toml", "model = \"x\"\nthis is not toml\n");
        let error = dirs.error();
        assert!(error.starts_with(&format!("{}: not valid TOML: ", path.display())), "{error}");
        assert!(error.contains("line 2, column"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        assert!(matches!(dirs.sources().load(), Err(SettingsError::Parse { .. })));

        fs::write(&path, b"model = \"\xff\"\n").unwrap();
        assert!(dirs.error().starts_with(&format!("{}: not valid TOML: not UTF-8", path.display())));
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_file_is_an_error_not_an_empty_layer() {
        let dirs = Dirs::new();
        let path = dirs.write("requirements.toml", "");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(dirs.sources().load(), Err(SettingsError::Read { path: p, .. }) if p == path));
        assert!(dirs.error().starts_with(&format!("cannot read {}: ", path.display())));
    }

    #[test]
    fn set_user_store_keeps_comments_and_key_order() {
        let dirs = Dirs::new();
        let text = "# my config\nmodel = \"o3\" # the model\ncli_auth_credentials_store = \"file\" # store\n\
                    approval_policy = \"never\"\n\n# profiles\n[profiles.work]\nmodel = \"o4\"\n";
        let path = dirs.write("user", text);
        set_user_store(&dirs.home, StoreMode::Keyring).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text.replace("\"file\" # store", "\"keyring\" # store"));
        assert_eq!(dirs.load().store, StoreMode::Keyring);
    }

    #[test]
    fn set_user_store_adds_the_key_to_the_top_level() {
        let dirs = Dirs::new();
        let path = dirs.write("user", "# mine\nmodel = \"o3\"\n\n[profiles.work]\nmodel = \"o4\"\n");
        set_user_store(&dirs.home, StoreMode::Auto).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# mine\nmodel = \"o3\"\ncli_auth_credentials_store = \"auto\"\n\n[profiles.work]\nmodel = \"o4\"\n"
        );
        let settings = dirs.load();
        assert_eq!(settings.store, StoreMode::Auto);
        assert_eq!(settings.store_set_by, Some(path));
    }

    #[test]
    fn set_user_store_creates_the_file_0600() {
        let dirs = Dirs::new();
        set_user_store(&dirs.home, StoreMode::Ephemeral).unwrap();
        let path = dirs.home.join("config.toml");
        assert_eq!(fs::read_to_string(&path).unwrap(), "cli_auth_credentials_store = \"ephemeral\"\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
        }
        assert_no_temp_left(&dirs.home);
    }

    #[cfg(unix)]
    #[test]
    fn set_user_store_keeps_the_existing_mode_and_replaces_the_file() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dirs = Dirs::new();
        let path = dirs.write("user", "model = \"o3\"\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        set_user_store(&dirs.home, StoreMode::Keyring).unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(after.permissions().mode() & 0o7777, 0o644);
        // A rename put a new inode in place: a reader sees the old file or the new one, never half of one.
        assert_ne!(after.ino(), before);
        assert_no_temp_left(&dirs.home);
    }

    #[cfg(unix)]
    #[test]
    fn set_user_store_writes_through_a_symlink() {
        let dirs = Dirs::new();
        let real = dirs.home.parent().unwrap().join("dotfiles-config.toml");
        fs::write(&real, "model = \"o3\"\n").unwrap();
        std::os::unix::fs::symlink(&real, dirs.home.join("config.toml")).unwrap();
        set_user_store(&dirs.home, StoreMode::Keyring).unwrap();
        assert!(fs::symlink_metadata(dirs.home.join("config.toml")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "model = \"o3\"\ncli_auth_credentials_store = \"keyring\"\n");
    }

    #[test]
    fn set_user_store_refuses_a_file_that_is_not_toml() {
        let dirs = Dirs::new();
        let text = "model = \"o3\"\n[[[broken\n";
        let path = dirs.write("user", text);
        let error = set_user_store(&dirs.home, StoreMode::Keyring).unwrap_err();
        assert!(matches!(&error, SettingsError::Parse { path: p, .. } if *p == path), "{error}");
        assert!(error.to_string().starts_with(&format!("{}: not valid TOML: ", path.display())));
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        assert_no_temp_left(&dirs.home);
    }

    #[test]
    fn set_user_store_without_a_home_fails_cleanly() {
        let dirs = Dirs::new();
        let home = dirs.home.join("missing");
        let error = set_user_store(&home, StoreMode::File).unwrap_err();
        assert!(matches!(error, SettingsError::Write { .. }), "{error}");
        assert!(error.to_string().starts_with(&format!("cannot write {}: ", home.join("config.toml").display())));
    }

    fn assert_no_temp_left(dir: &Path) {
        let names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.toml")]);
    }
}
