//! `codexctl login`: a browser or device-code login through codexd, or an API key read from stdin.
//!
//! Browser and device-code logins subscribe (`initialize`), start the login, tell the user what to do, and
//! wait for `account/login/completed` with their `loginId`. Ctrl-C and `--timeout` cancel the login in codexd.

use crate::{Ctx, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, Failure};
use crate::{browser, handshake, interrupt};
use codexd_client::proto::Secret;
use codexd_client::proto::methods::{Account, CancelStatus, LoginCompleted, LoginStartParams, LoginStartResult};
use codexd_client::{Client, ClientError};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the wait looks at the Ctrl-C flag.
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

/// The message for an empty `--with-api-key` stdin.
pub(crate) const NO_API_KEY: &str =
    "no API key on stdin; pipe it in, e.g. printenv OPENAI_API_KEY | codexctl login --with-api-key";

/// Flags of `codexctl login`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// Sign in with a code shown here, on any device with a browser (for machines without one)
    #[arg(long, conflicts_with = "with_api_key")]
    pub(crate) device_auth: bool,
    /// Store an OpenAI API key read from stdin (all of it, whitespace trimmed); nothing is echoed
    #[arg(long)]
    pub(crate) with_api_key: bool,
    /// Print the sign-in URL but do not open a browser
    #[arg(long)]
    pub(crate) no_browser: bool,
    /// Give up waiting after SECS seconds, and cancel the login
    #[arg(long, value_name = "SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
}

/// Runs the login the flags ask for.
pub(crate) fn run(ctx: &Ctx, args: &LoginArgs) -> anyhow::Result<u8> {
    if args.with_api_key {
        return login_with_api_key(ctx);
    }
    let mut client = ctx.connect_or_start()?;
    handshake::initialize(ctx, &mut client)?;
    let params = if args.device_auth { LoginStartParams::ChatgptDeviceCode } else { LoginStartParams::Chatgpt };
    let started = client.login_start(&params)?;
    let interrupted = catch_interrupts();
    let mut err = io::stderr().lock();
    let login_id = match started {
        LoginStartResult::Chatgpt { login_id, auth_url } => {
            let _ = writeln!(err, "codexctl: open this URL in a browser to sign in:\n{auth_url}");
            let _ = writeln!(err, "codexctl: on a machine without a browser, use codexctl login --device-auth");
            if !args.no_browser {
                let commands =
                    browser::commands(browser::Platform::current(), &browser::BrowserEnv::from_process(), &auth_url);
                browser::open(&commands);
            }
            login_id
        }
        LoginStartResult::ChatgptDeviceCode { login_id, verification_url, user_code } => {
            let _ = writeln!(err, "codexctl: {}", device_code_message(&verification_url, &user_code));
            login_id
        }
        LoginStartResult::ApiKey => {
            return Err(ClientError::Protocol("codexd answered a ChatGPT login as an API-key login".to_owned()).into());
        }
    };
    let _ = writeln!(err, "codexctl: waiting up to {} s for the sign-in to complete; Ctrl-C cancels it", args.timeout);
    drop(err);
    let waited = wait(&mut client, &login_id, Duration::from_secs(args.timeout), &interrupted)?;
    finish(&mut client, waited, args.timeout)
}

/// How the wait ended.
#[derive(Debug)]
enum Waited {
    Completed(LoginCompleted),
    TimedOut,
    Interrupted,
}

/// Waits for the login's completion in short slices, so that Ctrl-C is noticed; cancels the login when the
/// timeout passes or Ctrl-C came.
fn wait(client: &mut Client, login_id: &str, timeout: Duration, interrupted: &AtomicBool) -> anyhow::Result<Waited> {
    let deadline = Instant::now() + timeout;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            return cancel(client, login_id, Waited::Interrupted);
        }
        let slice = deadline.min(Instant::now() + INTERRUPT_CHECK);
        match client.wait_for_login(login_id, slice) {
            Ok(completed) => return Ok(Waited::Completed(completed)),
            Err(ClientError::LoginTimedOut { .. }) if slice >= deadline => {
                return cancel(client, login_id, Waited::TimedOut);
            }
            Err(ClientError::LoginTimedOut { .. }) => {}
            Err(ClientError::ShuttingDown | ClientError::Disconnected) => {
                return Err(Failure::new(EXIT_UNREACHABLE, "the daemon stopped before the login completed").into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Cancels the login; when it had already ended (`notFound`), its completion, if it came meanwhile, wins.
fn cancel(client: &mut Client, login_id: &str, why: Waited) -> anyhow::Result<Waited> {
    match client.login_cancel(login_id) {
        Ok(CancelStatus::Canceled) => Ok(why),
        Ok(CancelStatus::NotFound) => match client.wait_for_login(login_id, Instant::now()) {
            Ok(completed) => Ok(Waited::Completed(completed)),
            Err(_) => Ok(why),
        },
        Err(e) if matches!(why, Waited::Interrupted) => Err(Failure::new(
            EXIT_INTERRUPTED,
            format!("interrupted; codexd could not be told to cancel the login ({e}), it ends it by itself later"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// The exit code and message for how the wait ended.
fn finish(client: &mut Client, waited: Waited, timeout_secs: u64) -> anyhow::Result<u8> {
    match waited {
        Waited::Completed(LoginCompleted { success: true, .. }) => {
            // Who signed in, when the daemon says; the login stands either way.
            let account = client.account_read().ok().and_then(|r| r.account);
            let _ = writeln!(io::stderr().lock(), "codexctl: {}", logged_in_message(account.as_ref()));
            Ok(EXIT_OK)
        }
        Waited::Completed(LoginCompleted { error, .. }) => {
            Err(Failure::new(EXIT_REFUSED, login_failed_message(error.as_deref())).into())
        }
        Waited::TimedOut => Err(Failure::new(
            EXIT_REFUSED,
            format!("the login did not complete within {timeout_secs} s, so it was canceled; run codexctl login again"),
        )
        .into()),
        Waited::Interrupted => Err(Failure::new(EXIT_INTERRUPTED, "login canceled").into()),
    }
}

/// A flag that the first Ctrl-C sets; a second one ends codexctl at once. Without a handler (it could not be
/// installed), Ctrl-C ends codexctl as usual and the daemon times the login out by itself.
fn catch_interrupts() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    let _ = interrupt::on_interrupt(move |count| {
        if count == 1 {
            set.store(true, Ordering::SeqCst);
        } else {
            let _ = writeln!(io::stderr().lock(), "codexctl: interrupted");
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    flag
}

/// Stores the API key from stdin.
fn login_with_api_key(ctx: &Ctx) -> anyhow::Result<u8> {
    let api_key = read_api_key()?;
    let mut client = ctx.connect_or_start()?;
    match client.login_start(&LoginStartParams::ApiKey { api_key })? {
        LoginStartResult::ApiKey => {
            let _ = writeln!(io::stderr().lock(), "codexctl: logged in with an API key");
            Ok(EXIT_OK)
        }
        _ => Err(ClientError::Protocol("codexd answered an API-key login as a ChatGPT login".to_owned()).into()),
    }
}

/// The API key from stdin: all of a pipe or file, or one line typed at a terminal (with echo off).
fn read_api_key() -> anyhow::Result<Secret> {
    let stdin = io::stdin();
    let read = if stdin.is_terminal() {
        read_line_unechoed()
    } else {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).map(|_| text)
    };
    match read {
        Ok(text) => Ok(api_key_from_input(&text)?),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            Err(Failure::new(EXIT_USAGE, "the API key on stdin is not UTF-8 text").into())
        }
        Err(e) => Err(Failure::new(EXIT_USAGE, format!("cannot read the API key from stdin: {e}")).into()),
    }
}

/// The key in what stdin held: trimmed, and not empty.
pub(crate) fn api_key_from_input(text: &str) -> Result<Secret, Failure> {
    match text.trim() {
        "" => Err(Failure::new(EXIT_USAGE, NO_API_KEY)),
        key => Ok(Secret::new(key)),
    }
}

/// One line from the terminal, with echo off while it is typed (restored on Ctrl-C too).
#[cfg(unix)]
fn read_line_unechoed() -> io::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    let _ = write!(io::stderr().lock(), "codexctl: type or paste the API key, then press Enter (it is not shown): ");
    let Ok(original) = tcgetattr(&stdin) else {
        return read_line(&stdin);
    };
    let restore = original.clone();
    let _ = interrupt::on_interrupt(move |_| {
        let _ = tcsetattr(io::stdin(), OptionalActions::Now, &restore);
        let _ = writeln!(io::stderr().lock(), "\ncodexctl: interrupted");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    let mut quiet = original.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    let hidden = tcsetattr(&stdin, OptionalActions::Now, &quiet).is_ok();
    let line = read_line(&stdin);
    if hidden {
        let _ = tcsetattr(&stdin, OptionalActions::Now, &original);
        // The Enter the user typed was not echoed either.
        let _ = writeln!(io::stderr().lock());
    }
    line
}

/// One line from the console (Windows keeps its own echo).
#[cfg(not(unix))]
fn read_line_unechoed() -> io::Result<String> {
    let stdin = io::stdin();
    let _ = write!(io::stderr().lock(), "codexctl: type or paste the API key, then press Enter: ");
    read_line(&stdin)
}

fn read_line(stdin: &io::Stdin) -> io::Result<String> {
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line)
}

/// What the device-code login asks the user to do.
pub(crate) fn device_code_message(verification_url: &str, user_code: &str) -> String {
    format!("to sign in, open {verification_url} and enter the code {user_code}")
}

/// `logged in`, with the email and plan when the daemon knows them.
pub(crate) fn logged_in_message(account: Option<&Account>) -> String {
    let Some(Account::Chatgpt { email, plan_type, .. }) = account else { return "logged in".to_owned() };
    let plan = plan_type.as_deref().filter(|p| !p.is_empty());
    match (email.as_deref().filter(|e| !e.is_empty()), plan) {
        (Some(email), Some(plan)) => format!("logged in as {email} ({plan} plan)"),
        (Some(email), None) => format!("logged in as {email}"),
        (None, Some(plan)) => format!("logged in ({plan} plan)"),
        (None, None) => "logged in".to_owned(),
    }
}

/// `login failed: <error>`.
pub(crate) fn login_failed_message(error: Option<&str>) -> String {
    match error.map(str::trim).filter(|e| !e.is_empty()) {
        Some(error) => format!("login failed: {error}"),
        None => "login failed (codexd gave no reason); check its logs".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_is_trimmed_and_an_empty_one_is_a_usage_error() {
        assert_eq!(api_key_from_input("  sk-abc\n").unwrap().expose(), "sk-abc");
        for empty in ["", " \n\t\r\n"] {
            let err = api_key_from_input(empty).unwrap_err();
            assert_eq!((err.code, err.message.as_deref()), (EXIT_USAGE, Some(NO_API_KEY)));
        }
    }

    #[test]
    fn the_device_code_message_names_the_page_and_the_code() {
        assert_eq!(
            device_code_message("https://auth.example/codex/device", "ABCD-1234"),
            "to sign in, open https://auth.example/codex/device and enter the code ABCD-1234"
        );
    }

    #[test]
    fn the_success_message_adds_what_account_read_knows() {
        let chatgpt = |email: Option<&str>, plan: Option<&str>| Account::Chatgpt {
            email: email.map(str::to_owned),
            plan_type: plan.map(str::to_owned),
            account_id: Some("acct".to_owned()),
        };
        assert_eq!(logged_in_message(None), "logged in");
        assert_eq!(logged_in_message(Some(&Account::ApiKey)), "logged in");
        assert_eq!(logged_in_message(Some(&chatgpt(Some("a@b.c"), Some("plus")))), "logged in as a@b.c (plus plan)");
        assert_eq!(logged_in_message(Some(&chatgpt(Some("a@b.c"), None))), "logged in as a@b.c");
        assert_eq!(logged_in_message(Some(&chatgpt(None, Some("team")))), "logged in (team plan)");
        assert_eq!(logged_in_message(Some(&chatgpt(None, Some("")))), "logged in");
    }

    #[test]
    fn the_failure_message_quotes_the_daemon() {
        assert_eq!(login_failed_message(Some("login canceled")), "login failed: login canceled");
        assert!(login_failed_message(None).starts_with("login failed"));
        assert!(login_failed_message(Some("  ")).starts_with("login failed"));
    }
}
