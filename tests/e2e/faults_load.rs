//! Fault injection under load: a subscriber that never reads its replies, and a thousand connections dropped
//! abruptly in every state. The daemon must drop the bad client, keep serving the others promptly, keep its
//! memory bounded, and forget every dead connection.

use crate::faults::{SOON, is_reset, open_fds, vm_rss_kib, wait_for_connections};
use codexd_e2e::{TestDaemon, apikey_auth_json, wait_until};
use rustix::io::ioctl_fionread;
use rustix::net::sockopt::set_socket_linger;
use serde_json::{Value, json};
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What "promptly" means for a round trip while another client is stuck: less than the write timeout (300 ms)
/// that the stuck client holds its writer, so a daemon that made others wait behind it would fail.
const PROMPT: Duration = Duration::from_millis(250);

/// The most resident memory the daemon may use while a client floods it without reading.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// The largest `VmRSS` seen so far.
struct RssWatch {
    pid: u32,
    max_kib: u64,
}

impl RssWatch {
    fn sample(&mut self) {
        let now = vm_rss_kib(self.pid);
        self.max_kib = self.max_kib.max(now);
        assert!(now < RSS_LIMIT_KIB, "codexd's VmRSS reached {now} KiB (limit {RSS_LIMIT_KIB} KiB)");
    }
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_without_slowing_others_or_growing_memory() {
    // A 96 KiB API key: every getAuthStatus reply is that large, so two or three fill the socket buffers.
    let key = format!("sk-e2e-slow-{}", "k".repeat(96 * 1024));
    let daemon = TestDaemon::builder().env("CODEXD_WRITE_TIMEOUT_MS", "300").auth_json(apikey_auth_json(&key)).start();
    let mut rss = RssWatch { pid: daemon.pid(), max_kib: 0 };
    rss.sample();
    let mut good = daemon.subscriber();
    let mut actor = daemon.raw_conn();
    let bad = daemon.subscriber();
    wait_for_connections(&mut actor, 3, "before the flood");

    // The bad client pipelines requests for the big token and never reads a reply.
    let mut writer = bad.stream().try_clone().expect("cannot clone the stream");
    writer.set_write_timeout(Some(Duration::from_secs(10))).expect("set_write_timeout failed");
    let gone = Arc::new(AtomicBool::new(false));
    let flood = std::thread::spawn({
        let gone = gone.clone();
        move || {
            let mut batch = Vec::new();
            for id in 0..64 {
                let request = json!({"jsonrpc": "2.0", "id": id, "method": "getAuthStatus",
                                     "params": {"includeToken": true}});
                batch.extend(serde_json::to_vec(&request).expect("JSON encodes"));
                batch.push(b'\n');
            }
            // At most ~2 MB: far more than the socket buffers hold, so the writes block until codexd drops us.
            for _ in 0..400 {
                if let Err(e) = writer.write_all(&batch) {
                    gone.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            Ok(())
        }
    });

    let pending = |bad: &codexd_e2e::Conn| ioctl_fionread(bad.stream()).expect("FIONREAD failed");
    wait_until(SOON, "codexd's replies to pile up unread on the bad client", || {
        rss.sample();
        pending(&bad) >= key.len() as u64
    });

    // While codexd's write to the bad client is blocked, the good client is answered promptly.
    let mut answered_while_stuck = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let status = good.auth_status(true);
        let took = started.elapsed();
        assert!(status["authToken"].as_str() == Some(key.as_str()), "getAuthStatus lost the token");
        assert!(took < PROMPT, "getAuthStatus took {took:?} while a client was not reading");
        if !gone.load(Ordering::SeqCst) {
            answered_while_stuck += 1;
        }
        rss.sample();
    }
    // And it hears a logout promptly.
    let started = Instant::now();
    let logout_while_stuck = !gone.load(Ordering::SeqCst);
    assert_eq!(actor.call("account/logout", Value::Null), json!({}));
    let update = good.next_account_updated();
    let took = started.elapsed();
    assert_eq!(update["reason"], "logout", "{update}");
    assert_eq!(update["authMode"], Value::Null, "{update}");
    assert!(took < PROMPT, "the logout notification took {took:?} while a client was not reading");
    assert!(
        answered_while_stuck > 0 || logout_while_stuck,
        "nothing was answered before codexd dropped the bad client, so nothing shows others are not slowed"
    );

    // The bad client is dropped: the daemon counts it no more, and its writes fail.
    let end = Instant::now() + SOON;
    loop {
        rss.sample();
        let status = actor.daemon_status();
        if status["connections"] == 2 && status["subscribers"] == 1 {
            break;
        }
        assert!(Instant::now() < end, "codexd did not drop the client that does not read: {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
    match flood.join().expect("the flood thread panicked") {
        Err(e) if is_reset(&e) => {}
        other => panic!("the bad client's writes should fail once codexd drops it, got {other:?}"),
    }
    rss.sample();
    assert_eq!(good.auth_status(true)["authMethod"], Value::Null);
    assert!(rss.max_kib < RSS_LIMIT_KIB);
    drop(bad);
}

/// One way to leave a connection.
#[derive(Clone, Copy, Debug)]
enum Leave {
    RightAfterConnect,
    MidFrame,
    RequestUnread,
    SubscribedUnread,
    /// `SO_LINGER` 0 and the reply left unread: on a Unix socket, closing with unread data resets the peer.
    Reset,
}

const LEAVES: [Leave; 5] =
    [Leave::RightAfterConnect, Leave::MidFrame, Leave::RequestUnread, Leave::SubscribedUnread, Leave::Reset];

#[test]
fn a_thousand_connections_dropped_abruptly_leave_the_daemon_serving() {
    const BATCH: usize = 100;
    const ROUNDS: usize = 10;
    let mut daemon = TestDaemon::with_auth(apikey_auth_json("sk-e2e-storm"));
    let pid = daemon.pid();
    let mut status = daemon.raw_conn();
    wait_for_connections(&mut status, 1, "before the storm");
    let fds_before = open_fds(pid);

    let request = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getAuthStatus\",\"params\":{\"includeToken\":true}}\n";
    let initialize =
        b"{\"id\":1,\"method\":\"initialize\",\"params\":{\"clientInfo\":{\"name\":\"x\",\"version\":\"0\"}}}\n";
    for round in 0..ROUNDS {
        let mut streams = Vec::with_capacity(BATCH);
        let mut resets = Vec::new();
        for i in 0..BATCH {
            let mut stream = UnixStream::connect(daemon.socket())
                .unwrap_or_else(|e| panic!("connection {} refused: {e}", round * BATCH + i));
            stream.set_write_timeout(Some(SOON)).expect("set_write_timeout failed");
            let leave = LEAVES[(round * BATCH + i) % LEAVES.len()];
            let written = match leave {
                Leave::RightAfterConnect => Ok(()),
                Leave::MidFrame => stream.write_all(br#"{"jsonrpc":"2.0","id":1,"meth"#),
                Leave::RequestUnread => stream.write_all(request),
                Leave::SubscribedUnread => stream.write_all(initialize),
                Leave::Reset => {
                    set_socket_linger(&stream, Some(Duration::ZERO)).expect("SO_LINGER failed");
                    resets.push(i);
                    stream.write_all(request)
                }
            };
            written.unwrap_or_else(|e| panic!("{leave:?}: write failed: {e}"));
            streams.push(stream);
        }
        wait_until(SOON, "the replies to the resetting connections to be queued", || {
            resets.iter().all(|&i| ioctl_fionread(&streams[i]).unwrap_or(0) > 0)
        });
        drop(streams);
    }

    wait_for_connections(&mut status, 1, "after 1,000 abrupt disconnects");
    assert!(daemon.try_exit().is_none(), "codexd exited");
    assert_eq!(status.auth_status(true)["authToken"], "sk-e2e-storm");
    assert_eq!(daemon.codexctl(&["token"]).stdout, b"sk-e2e-storm\n");
    let mut subscriber = daemon.subscriber();
    assert_eq!(status.call("account/logout", Value::Null), json!({}));
    assert_eq!(subscriber.next_account_updated()["reason"], "logout");
    drop(subscriber);
    wait_for_connections(&mut status, 1, "after the last subscriber left");
    wait_until(SOON, "codexd to close the file descriptors of dead connections", || open_fds(pid) <= fds_before + 2);
    let stderr = daemon.stderr();
    assert!(!stderr.to_lowercase().contains("panick"), "codexd panicked:\n{stderr}");
}
