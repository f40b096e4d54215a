//! Opening the sign-in page in the user's browser: `$BROWSER` if set, else the platform's opener (`xdg-open`
//! on Linux and the BSDs, only when a display is there; `open` on macOS; `cmd /c start` on Windows).

use std::process::{Command, Stdio};

/// The platforms that open URLs differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    /// macOS: `open URL`.
    MacOs,
    /// Windows: `cmd /c start "" URL`.
    Windows,
    /// Linux, the BSDs and other Unix: `xdg-open URL`, only with `DISPLAY` or `WAYLAND_DISPLAY`.
    OtherUnix,
}

impl Platform {
    /// The platform codexctl was built for.
    pub(crate) fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::OtherUnix
        }
    }
}

/// What the environment says about browsers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BrowserEnv {
    /// `$BROWSER`, when set and not empty.
    pub(crate) browser: Option<String>,
    /// Whether `DISPLAY` or `WAYLAND_DISPLAY` is set and not empty.
    pub(crate) has_display: bool,
}

impl BrowserEnv {
    /// Reads `BROWSER`, `DISPLAY` and `WAYLAND_DISPLAY`.
    pub(crate) fn from_process() -> BrowserEnv {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        BrowserEnv {
            browser: set("BROWSER"),
            has_display: set("DISPLAY").is_some() || set("WAYLAND_DISPLAY").is_some(),
        }
    }
}

/// The commands to try in order to show `url`, each as program and arguments; empty when there is no display.
///
/// `$BROWSER` is a list of commands (separated by `:`, or `;` on Windows); `%s` in one stands for the URL,
/// otherwise the URL is appended. The platform's opener comes last.
pub(crate) fn commands(platform: Platform, env: &BrowserEnv, url: &str) -> Vec<Vec<String>> {
    if platform == Platform::OtherUnix && !env.has_display {
        return Vec::new();
    }
    let separator = if platform == Platform::Windows { ';' } else { ':' };
    let mut commands: Vec<Vec<String>> =
        env.browser.as_deref().unwrap_or_default().split(separator).filter_map(|entry| with_url(entry, url)).collect();
    commands.push(match platform {
        Platform::MacOs => vec!["open".to_owned(), url.to_owned()],
        // `start` is a cmd built-in; the empty title keeps a quoted URL from being taken as the title, and `^`
        // keeps cmd from reading `&` and friends in the query string as its own syntax.
        Platform::Windows => {
            vec!["cmd".to_owned(), "/c".to_owned(), "start".to_owned(), String::new(), escape_for_cmd(url)]
        }
        Platform::OtherUnix => vec!["xdg-open".to_owned(), url.to_owned()],
    });
    commands
}

/// One `$BROWSER` entry as a command line, `None` when it is blank.
fn with_url(entry: &str, url: &str) -> Option<Vec<String>> {
    let mut words: Vec<String> = entry.split_whitespace().map(str::to_owned).collect();
    if words.is_empty() {
        return None;
    }
    if words.iter().any(|w| w.contains("%s")) {
        for word in &mut words {
            *word = word.replace("%s", url);
        }
    } else {
        words.push(url.to_owned());
    }
    Some(words)
}

fn escape_for_cmd(url: &str) -> String {
    let mut escaped = String::with_capacity(url.len());
    for c in url.chars() {
        if matches!(c, '&' | '|' | '<' | '>' | '^' | '(' | ')') {
            escaped.push('^');
        }
        escaped.push(c);
    }
    escaped
}

/// Starts the first of `commands` that can be started, without waiting for it; `false` when none could be.
/// Its output is discarded, so that nothing but codexctl's own lines reaches the terminal.
pub(crate) fn open(commands: &[Vec<String>]) -> bool {
    for command in commands {
        let Some((program, args)) = command.split_first() else { continue };
        let spawned =
            Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        if let Ok(mut child) = spawned {
            // Reap it when it ends (a browser may run for longer than codexctl, which is fine).
            let _ = std::thread::Builder::new().name("codexctl-browser".to_owned()).spawn(move || child.wait());
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://auth.example/oauth/authorize?a=1&b=%2F";

    fn env(browser: Option<&str>, has_display: bool) -> BrowserEnv {
        BrowserEnv { browser: browser.map(str::to_owned), has_display }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn linux_without_a_display_opens_nothing_even_with_browser_set() {
        assert!(commands(Platform::OtherUnix, &env(Some("firefox"), false), URL).is_empty());
    }

    #[test]
    fn linux_with_a_display_uses_xdg_open() {
        assert_eq!(commands(Platform::OtherUnix, &env(None, true), URL), vec![argv(&["xdg-open", URL])]);
    }

    #[test]
    fn the_browser_variable_comes_first_with_percent_s_or_the_url_appended() {
        let got = commands(Platform::OtherUnix, &env(Some("firefox --new-window:: my-open %s --x"), true), URL);
        assert_eq!(
            got,
            vec![argv(&["firefox", "--new-window", URL]), argv(&["my-open", URL, "--x"]), argv(&["xdg-open", URL])]
        );
    }

    #[test]
    fn macos_uses_open_without_needing_a_display_variable() {
        assert_eq!(commands(Platform::MacOs, &env(None, false), URL), vec![argv(&["open", URL])]);
    }

    #[test]
    fn windows_uses_start_with_cmd_syntax_escaped_and_splits_browser_on_semicolons() {
        let got = commands(Platform::Windows, &env(Some(r"C:\b\chrome.exe"), false), URL);
        assert_eq!(got[0], argv(&[r"C:\b\chrome.exe", URL]));
        assert_eq!(got[1], argv(&["cmd", "/c", "start", "", "https://auth.example/oauth/authorize?a=1^&b=%2F"]));
    }

    #[test]
    fn a_command_that_cannot_start_falls_through_and_none_is_false() {
        assert!(!open(&[argv(&["/nonexistent/codexctl-test-browser", URL])]));
        assert!(!open(&[]));
    }
}
