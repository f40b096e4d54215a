//! [`AuthFile`]: `$CODEX_HOME/auth.json` on disk, read plainly and changed only with the Codex CLI's protocol.
//!
//! A change takes `flock(LOCK_EX)` on `auth.lock` (waiting, but never forever), then try-locks `auth.json.lock`
//! for the moment of the write (a few ms apart, for about 2 s), writes a temp file `.auth-XXXXXX` created with
//! `O_CREAT|O_EXCL` mode 0600, fsyncs it, renames it over `auth.json`, fsyncs the directory and unlocks both.
//! A failure before the rename removes the temp file and leaves the old `auth.json` untouched. The lock files
//! are left behind, as the Codex CLI leaves them.

use super::AuthFileError;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The credential file's name in `$CODEX_HOME`.
pub const AUTH_FILE_NAME: &str = "auth.json";
/// The lock held around every read-compare-write of `auth.json`.
pub const AUTH_LOCK_NAME: &str = "auth.lock";
/// The lock held only for the moment `auth.json` is replaced.
pub const AUTH_JSON_LOCK_NAME: &str = "auth.json.lock";

/// How long a change waits for `auth.lock` by default.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change waits for `auth.json.lock` by default.
const DEFAULT_WRITE_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two attempts at `auth.lock`.
const LOCK_POLL: Duration = Duration::from_millis(10);
/// Pause between two attempts at `auth.json.lock`.
const WRITE_LOCK_POLL: Duration = Duration::from_millis(5);
/// Prefix of the temp file, as the Codex CLI names it.
const TEMP_PREFIX: &str = ".auth-";

/// `$CODEX_HOME/auth.json` with the Codex CLI's locking and atomic replace.
#[derive(Debug, Clone)]
pub struct AuthFile {
    home: PathBuf,
    path: PathBuf,
    lock_timeout: Duration,
    write_lock_timeout: Duration,
    /// Test hook: fail after the temp file is written, just before the rename.
    #[cfg(test)]
    fail_before_rename: bool,
}

impl AuthFile {
    /// The store in `codex_home`, waiting at most 10 s for `auth.lock` and 2 s for `auth.json.lock`.
    pub fn new(codex_home: PathBuf) -> Self {
        Self::with_lock_timeouts(codex_home, DEFAULT_LOCK_TIMEOUT, DEFAULT_WRITE_LOCK_TIMEOUT)
    }

    /// The store in `codex_home` with other bounds on the waits for `auth.lock` and `auth.json.lock`.
    pub fn with_lock_timeouts(codex_home: PathBuf, lock_timeout: Duration, write_lock_timeout: Duration) -> Self {
        Self {
            path: codex_home.join(AUTH_FILE_NAME),
            home: codex_home,
            lock_timeout,
            write_lock_timeout,
            #[cfg(test)]
            fail_before_rename: false,
        }
    }

    /// `$CODEX_HOME`.
    pub fn codex_home(&self) -> &Path {
        &self.home
    }

    /// `$CODEX_HOME/auth.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `$CODEX_HOME` (mode 0700 when codexd creates it) if it does not exist yet.
    pub fn create_home(&self) -> Result<(), AuthFileError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.home).map_err(|source| AuthFileError::Write { path: self.home.clone(), source })
    }

    /// The raw contents of `auth.json`; `Ok(None)` when it does not exist. Takes no lock (the file is only ever
    /// replaced by rename, so a read sees one whole version).
    pub fn read(&self) -> Result<Option<Vec<u8>>, AuthFileError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AuthFileError::Read { path: self.path.clone(), source }),
        }
    }

    /// Replaces `auth.json` with `contents`, atomically and under both locks. The result has mode 0600.
    pub fn write(&self, contents: &[u8]) -> Result<(), AuthFileError> {
        self.lock_store()?.write(contents)
    }

    /// Removes `auth.json` under both locks; returns whether it existed (`false` also when `$CODEX_HOME` does not
    /// exist). The lock files stay.
    pub fn remove(&self) -> Result<bool, AuthFileError> {
        match self.lock_store() {
            Err(AuthFileError::MissingHome { .. }) => Ok(false),
            other => other?.remove(),
        }
    }

    /// Takes `auth.lock`, the lock every writer of the store holds for its read-compare-write, waiting at most
    /// the lock timeout. The daemon holds it across a whole refresh, network call included, so that no other
    /// program redeems the same refresh token meanwhile. Released when the guard drops.
    pub fn lock_store(&self) -> Result<StoreLock, AuthFileError> {
        let file = self.lock(AUTH_LOCK_NAME, self.lock_timeout, LOCK_POLL)?;
        Ok(StoreLock { _auth_lock: file, store: self.clone() })
    }

    /// Opens (creating it 0600) and exclusively locks `$CODEX_HOME/<name>`, polling until `timeout`. The lock
    /// lasts as long as the returned file is open.
    fn lock(&self, name: &str, timeout: Duration, poll: Duration) -> Result<File, AuthFileError> {
        let path = self.home.join(name);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound && !self.home.is_dir() {
                AuthFileError::MissingHome { path: self.home.clone() }
            } else {
                AuthFileError::Lock { path: path.clone(), source }
            }
        })?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => return Err(AuthFileError::Lock { path, source }),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(AuthFileError::Locked { path, waited: timeout });
            }
            std::thread::sleep(poll.min(deadline - now));
        }
    }

    /// Writes `contents` to a fresh temp file `.auth-XXXXXX` and renames it over `auth.json` (mode 0600, as the
    /// Codex CLI's). The caller holds both locks.
    fn replace(&self, contents: &[u8]) -> Result<(), AuthFileError> {
        #[cfg(unix)]
        // Created 0600; make sure no umask made it narrower than the Codex CLI's 0600 either.
        let permissions = Some(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        #[cfg(not(unix))]
        let permissions = None;
        let before_rename = || {
            #[cfg(test)]
            if self.fail_before_rename {
                return Err(io::Error::other("injected failure"));
            }
            Ok(())
        };
        let temp_name = |attempt| format!("{TEMP_PREFIX}{}", random_suffix(attempt));
        replace_atomically(&self.path, temp_name, contents, permissions, before_rename)
            .map_err(|source| AuthFileError::Write { path: self.path.clone(), source })
    }

    /// Fsyncs `$CODEX_HOME` so a rename or removal is durable. The change is already made, so a failure is only
    /// logged.
    fn sync_home(&self) {
        sync_dir(&self.home);
    }
}

/// `auth.lock`, held: the store may be read, written and removed without another writer in between.
#[derive(Debug)]
pub struct StoreLock {
    _auth_lock: File,
    store: AuthFile,
}

impl StoreLock {
    /// The raw contents of `auth.json`; `Ok(None)` when it does not exist.
    pub fn read(&self) -> Result<Option<Vec<u8>>, AuthFileError> {
        self.store.read()
    }

    /// Replaces `auth.json` atomically, taking `auth.json.lock` only for the moment of the write.
    pub fn write(&self, contents: &[u8]) -> Result<(), AuthFileError> {
        let store = &self.store;
        let _inner = store.lock(AUTH_JSON_LOCK_NAME, store.write_lock_timeout, WRITE_LOCK_POLL)?;
        store.replace(contents)
    }

    /// Replaces `auth.json` with `contents` only if it still holds `expected` (re-read under `auth.json.lock`,
    /// as the Codex CLI re-reads before its write); returns whether it wrote. Programs that ignore `auth.lock`
    /// may have changed the file since it was read.
    pub fn replace_if_unchanged(&self, expected: &[u8], contents: &[u8]) -> Result<bool, AuthFileError> {
        let store = &self.store;
        let _inner = store.lock(AUTH_JSON_LOCK_NAME, store.write_lock_timeout, WRITE_LOCK_POLL)?;
        if store.read()?.as_deref() != Some(expected) {
            return Ok(false);
        }
        store.replace(contents)?;
        Ok(true)
    }

    /// Removes `auth.json` (under `auth.json.lock`); returns whether it existed.
    pub fn remove(&self) -> Result<bool, AuthFileError> {
        let store = &self.store;
        let _inner = store.lock(AUTH_JSON_LOCK_NAME, store.write_lock_timeout, WRITE_LOCK_POLL)?;
        match fs::remove_file(&store.path) {
            Ok(()) => {
                store.sync_home();
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AuthFileError::Remove { path: store.path.clone(), source }),
        }
    }
}

/// Replaces `path` with `contents` atomically: a temp file in the same directory named by `temp_name(attempt)`
/// (`O_EXCL`, 0600), then `permissions` (if any), fsync, `before_rename` (a test hook), rename, and an fsync of
/// the directory. A failure before the rename removes the temp file and leaves `path` as it was.
pub(crate) fn replace_atomically(
    path: &Path,
    temp_name: impl Fn(u32) -> String,
    contents: &[u8],
    permissions: Option<fs::Permissions>,
    before_rename: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (temp_path, mut temp) = create_exclusive(dir, temp_name)?;
    let mut guard = RemoveOnDrop(Some(&temp_path));
    temp.write_all(contents)?;
    if let Some(permissions) = permissions {
        temp.set_permissions(permissions)?;
    }
    temp.sync_all()?;
    drop(temp);
    before_rename()?;
    fs::rename(&temp_path, path)?;
    guard.0 = None;
    sync_dir(dir);
    Ok(())
}

/// Fsyncs a directory so that a rename in it is durable; the change is made already, so a failure is only logged.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(error) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "cannot fsync the directory");
    }
}

/// Creates a new file in `dir` with `O_CREAT|O_EXCL`, mode 0600, named by `name(attempt)`; tries 16 names.
fn create_exclusive(dir: &Path, name: impl Fn(u32) -> String) -> io::Result<(PathBuf, File)> {
    let mut last_error = None;
    for attempt in 0..16 {
        let path = dir.join(name(attempt));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free temp file name")))
}

/// Removes a temp file unless the rename consumed it (then set the path to `None`).
struct RemoveOnDrop<'a>(Option<&'a Path>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Six characters of `[A-Za-z0-9]`, different on every call (a randomly keyed hash of the time, pid and a
/// counter); `O_EXCL` makes a collision harmless.
fn random_suffix(attempt: u32) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u32(attempt);
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    let mut n = hasher.finish();
    (0..6)
        .map(|_| {
            let c = ALPHABET[(n % 62) as usize];
            n /= 62;
            char::from(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthDotJson;

    const APIKEY: &[u8] = include_bytes!("../../../tests/data/auth-apikey.json");
    const CHATGPT: &[u8] = include_bytes!("../../../tests/data/auth-chatgpt.json");

    fn quick(home: &Path) -> AuthFile {
        AuthFile::with_lock_timeouts(home.to_owned(), Duration::from_millis(300), Duration::from_millis(100))
    }

    fn temp_files(home: &Path) -> Vec<String> {
        fs::read_dir(home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect()
    }

    #[test]
    fn read_is_none_when_absent_and_write_then_read_round_trips() {
        let home = tempfile::tempdir().unwrap();
        let file = AuthFile::new(home.path().to_owned());
        assert_eq!(file.path(), home.path().join("auth.json"));
        assert_eq!(file.read().unwrap(), None);
        file.write(APIKEY).unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(APIKEY));
        file.write(&AuthDotJson::parse(&file.read().unwrap().unwrap()).unwrap().to_file_bytes()).unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(APIKEY));
        assert!(home.path().join("auth.lock").exists() && home.path().join("auth.json.lock").exists());
        assert!(temp_files(home.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn write_replaces_the_file_atomically_with_mode_0600() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("auth.json");
        fs::write(&path, CHATGPT).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        quick(home.path()).write(APIKEY).unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!(after.permissions().mode() & 0o777, 0o600);
        assert_ne!(after.ino(), before);
        assert_eq!(fs::read(&path).unwrap(), APIKEY);
        assert!(temp_files(home.path()).is_empty());
        let lock_mode = fs::metadata(home.path().join("auth.json.lock")).unwrap().permissions().mode();
        assert_eq!(lock_mode & 0o777, 0o600);
    }

    #[test]
    fn a_failure_before_the_rename_leaves_the_old_file_and_no_temp_file() {
        let home = tempfile::tempdir().unwrap();
        let mut file = quick(home.path());
        file.write(CHATGPT).unwrap();
        file.fail_before_rename = true;
        let err = file.write(APIKEY).unwrap_err();
        assert!(matches!(err, AuthFileError::Write { .. }), "{err:?}");
        assert_eq!(fs::read(file.path()).unwrap(), CHATGPT);
        assert!(temp_files(home.path()).is_empty());
    }

    #[test]
    fn writing_into_a_missing_home_fails_and_creates_nothing() {
        let parent = tempfile::tempdir().unwrap();
        let home = parent.path().join("missing");
        let err = quick(&home).write(APIKEY).unwrap_err();
        assert!(matches!(err, AuthFileError::MissingHome { .. }), "{err:?}");
        assert!(err.to_string().contains("missing does not exist"), "{err}");
        assert!(!quick(&home).remove().unwrap());
        assert!(!home.exists());
    }

    #[test]
    fn create_home_makes_the_directory_writable() {
        let parent = tempfile::tempdir().unwrap();
        let file = quick(&parent.path().join("a/b"));
        file.create_home().unwrap();
        file.create_home().unwrap();
        file.write(APIKEY).unwrap();
        assert_eq!(file.read().unwrap().as_deref(), Some(APIKEY));
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_home_fails_the_write_and_keeps_the_old_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let home = tempfile::tempdir().unwrap();
        let file = quick(home.path());
        file.write(CHATGPT).unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o500)).unwrap();
        let result = file.write(APIKEY);
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        if rustix::process::geteuid().is_root() {
            // root writes into read-only directories; the injected-failure test covers this path for root.
            assert!(result.is_ok());
            return;
        }
        assert!(matches!(result, Err(AuthFileError::Write { .. })), "{result:?}");
        assert_eq!(fs::read(file.path()).unwrap(), CHATGPT);
        assert!(temp_files(home.path()).is_empty());
    }

    #[test]
    fn remove_says_whether_the_file_existed_and_keeps_the_lock_files() {
        let home = tempfile::tempdir().unwrap();
        let file = quick(home.path());
        assert!(!file.remove().unwrap());
        file.write(APIKEY).unwrap();
        assert!(file.remove().unwrap());
        assert_eq!(file.read().unwrap(), None);
        assert!(!file.remove().unwrap());
        assert!(home.path().join("auth.lock").exists() && home.path().join("auth.json.lock").exists());
    }

    fn hold(path: &Path) -> File {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).unwrap();
        f.try_lock().unwrap();
        f
    }

    #[test]
    fn a_held_auth_json_lock_makes_write_fail_within_the_bound() {
        let home = tempfile::tempdir().unwrap();
        let file = quick(home.path());
        file.write(CHATGPT).unwrap();
        let holder = hold(&home.path().join("auth.json.lock"));
        let started = Instant::now();
        let err = file.write(APIKEY).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(matches!(&err, AuthFileError::Locked { path, .. } if path.ends_with("auth.json.lock")), "{err:?}");
        assert!(err.to_string().contains("auth.json.lock is held by another program"), "{err}");
        assert!(matches!(file.remove(), Err(AuthFileError::Locked { .. })));
        assert_eq!(fs::read(file.path()).unwrap(), CHATGPT);
        drop(holder);
        file.write(APIKEY).unwrap();
    }

    #[test]
    fn a_held_auth_lock_makes_write_fail_within_the_bound() {
        let home = tempfile::tempdir().unwrap();
        let file = quick(home.path());
        let holder = hold(&home.path().join("auth.lock"));
        let started = Instant::now();
        let err = file.write(APIKEY).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(matches!(&err, AuthFileError::Locked { path, .. } if path.ends_with("auth.lock")), "{err:?}");
        assert_eq!(file.read().unwrap(), None);
        drop(holder);
        file.write(APIKEY).unwrap();
    }

    #[test]
    fn concurrent_writers_each_leave_a_whole_file() {
        let home = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let file = AuthFile::new(home.path().to_owned());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        file.write(if i % 2 == 0 { APIKEY } else { CHATGPT }).unwrap();
                        let now = file.read().unwrap().unwrap();
                        assert!(now == APIKEY || now == CHATGPT);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(temp_files(home.path()).is_empty());
    }

    #[test]
    fn temp_names_look_like_codex_ones() {
        let a = random_suffix(0);
        let b = random_suffix(0);
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
