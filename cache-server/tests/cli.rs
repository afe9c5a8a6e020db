//! The `cache-server` binary: memcached's flags, the `listening on` line, clean shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cache-server");

fn start(args: &[&str]) -> (Server, std::net::SocketAddr) {
    launch(args, Stdio::inherit())
}

/// Spawn with `stderr` and wait for the `listening on` line.
/// A spawned server, killed and reaped when dropped (also when a test panics).
struct Server(std::process::Child);

impl std::ops::Deref for Server {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn launch(args: &[&str], stderr: Stdio) -> (Server, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn cache-server");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (Server(child), addr)
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "cache-server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_flags_fail_with_memcacheds_message() {
    for (args, msg) in [
        (&["-o", "foo"][..], "Illegal suboption \"foo\""),
        (&["-t", "0"][..], "Number of threads must be greater than 0"),
        (
            &["-o", "slab_automove=9"][..],
            "slab_automove must be between 0 and 2",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: stderr {err:?}");
    }
}

/// memcached 1.6.18 exits with status 1 for its start-up checks, except the `-I` size checks
/// (64, `EX_USAGE`). Clap's own usage errors (unknown flag, bad number) keep clap's 2.
#[test]
fn start_up_errors_exit_with_memcacheds_status() {
    for (args, msg, code) in [
        (
            &["-c", "0"][..],
            "Maximum connections must be greater than 0",
            1,
        ),
        (
            &["-t", "0"][..],
            "Number of threads must be greater than 0",
            1,
        ),
        (&["-f", "1"][..], "Factor must be greater than 1", 1),
        (&["-o", "foo"][..], "Illegal suboption \"foo\"", 1),
        (
            &["-o", "slab_automove=3"][..],
            "slab_automove must be between 0 and 2",
            1,
        ),
        (
            &["-I", "5"][..],
            "Item max size cannot be less than 1024 bytes.",
            64,
        ),
        (
            &["-I", "2000m"][..],
            "Cannot set item size limit higher than 1/2 of memory max.",
            64,
        ),
        (&["-Z"][..], "", 2),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: stderr {err:?}");
    }
}

/// memcached takes the last of a repeated option; `-o` and `-v` accumulate.
#[test]
fn repeated_options_take_the_last_value() {
    // -vv logs every connection at debug level: keep that out of the test output.
    let args: Vec<&str> = "-p 11211 -p 0 -m 64 -m 128 -t 2 -t 3 -c 100 -c 200 -M -M -C -C \
         -I 2m -I 1m -f 1.5 -f 1.25 -l 127.0.0.1 -l 127.0.0.1 \
         -o hashpower=20 -o idle_timeout=7,hashpower=18 -v -v"
        .split_whitespace()
        .collect();
    let (_child, addr) = launch(&args, Stdio::null());
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"stats settings\r\n").unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    while !reply.ends_with(b"END\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    for want in [
        "STAT maxbytes 134217728\r\n",
        "STAT maxconns 200\r\n",
        "STAT num_threads 3\r\n",
        "STAT evictions off\r\n",
        "STAT cas_enabled no\r\n",
        "STAT item_size_max 1048576\r\n",
        "STAT growth_factor 1.25\r\n",
        "STAT inter 127.0.0.1\r\n",
        "STAT hashpower_init 18\r\n",
        "STAT idle_timeout 7\r\n",
        "STAT verbosity 2\r\n",
    ] {
        assert!(text.contains(want), "want {want:?} in {text}");
    }
}

/// memcached listens on every `-l` address given; we listen on one, so two different ones
/// are refused at start-up rather than half-honoured.
#[test]
fn two_listen_addresses_are_refused() {
    let out = Command::new(BIN)
        .args(["-p", "0", "-l", "127.0.0.1", "-l", "127.0.0.2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-l given more than once (127.0.0.1 127.0.0.2)"),
        "{err:?}"
    );
}

#[test]
fn sigterm_finishes_inflight_requests_and_exits_zero() {
    let (mut child, addr) = start(&["-p", "0", "-t", "2"]);
    let mut c = TcpStream::connect(addr).unwrap();
    // One round trip so the server has accepted the connection.
    c.write_all(b"version\r\n").unwrap();
    let mut first = [0u8; 64];
    let n = c.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"VERSION "));
    // A pipelined batch, then SIGTERM right away: every reply must still arrive.
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend_from_slice(format!("set k{i} 0 0 1\r\nx\r\nget k{i}\r\n").as_bytes());
    }
    c.write_all(&batch).unwrap();
    // SAFETY: kill(2) on our own child; no memory is involved.
    unsafe { libc_kill(child.id() as i32, 15) };
    let mut got = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("STORED\r\n").count(), 200, "{text}");
    assert_eq!(text.matches("END\r\n").count(), 200);
    let status = wait_exit(&mut child);
    assert!(status.success(), "exit status {status:?}");
    // And the port is closed.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn shutdown_command_needs_dash_a() {
    let (mut child, addr) = start(&["-p", "0", "-A"]);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Any argument but `graceful` is refused, as by memcached 1.6.18.
    c.write_all(b"shutdown now\r\n").unwrap();
    let want = b"CLIENT_ERROR invalid shutdown mode\r\n";
    let mut got = vec![0u8; want.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    c.write_all(b"shutdown\r\n").unwrap();
    assert!(wait_exit(&mut child).success());
}

#[test]
fn connection_limit_answers_memcacheds_error() {
    let (mut child, addr) = start(&["-p", "0", "-c", "2", "-t", "1"]);
    let mut keep = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"version\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"VERSION "));
        keep.push(c);
    }
    let mut extra = TcpStream::connect(addr).unwrap();
    let mut got = Vec::new();
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = extra.read_to_end(&mut got);
    assert_eq!(got, b"ERROR Too many open connections\r\n");
    drop(keep);
    child.kill().unwrap();
    child.wait().unwrap();
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// How workers write replies: batched through io_uring (the default) or one `send` per
/// connection (`-o no_io_uring`, and the fallback where io_uring is unavailable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WritePath {
    Batched,
    Direct,
}

impl WritePath {
    const ALL: [WritePath; 2] = [WritePath::Batched, WritePath::Direct];
}

/// Start with `-v` and `path`'s options, and check from each worker's start-up line that
/// the path asked for is the one in use (batched only where this machine has io_uring).
fn start_with(path: WritePath, args: &[&str]) -> (Server, std::net::SocketAddr) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("-v");
    if path == WritePath::Direct {
        all.extend(["-o", "no_io_uring"]);
    }
    let (mut child, addr) = launch(&all, Stdio::piped());
    let want = match path {
        WritePath::Batched if io_uring_works() => "replies sent in batches through io_uring",
        WritePath::Batched => "io_uring unavailable",
        WritePath::Direct => "one send per connection (no_io_uring)",
    };
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut l = String::new();
        if err.read_line(&mut l).unwrap() == 0 {
            panic!("{path:?}: no worker start-up line in {log:?}");
        }
        log.push_str(&l);
        if l.contains("worker-0") {
            assert!(
                l.contains(want),
                "{path:?}: worker line {l:?}, want {want:?}"
            );
            break;
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, addr)
}

/// Whether this machine lets a process use io_uring. Probed on a thread of its own: tearing
/// a ring down queues task work on the thread that used it, which interrupts that thread's
/// next blocking read that has a timeout (EINTR).
fn io_uring_works() -> bool {
    std::thread::spawn(|| cache_server::send_ring::SendRing::new().is_ok())
        .join()
        .unwrap()
}

#[test]
fn both_write_paths_answer_many_pipelining_clients_byte_for_byte() {
    for path in WritePath::ALL {
        let (mut child, addr) = start_with(path, &["-p", "0", "-t", "2", "-m", "256"]);
        let clients: Vec<_> = (0..8)
            .map(|c| {
                std::thread::spawn(move || {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    for round in 0..30 {
                        let mut req = Vec::new();
                        let mut want = Vec::new();
                        for i in 0..40 {
                            // Mostly small values, and every 7th large enough that a
                            // round's replies pass the output high-water mark.
                            let len = if i % 7 == 3 {
                                300_000
                            } else {
                                1 + (i * 37 + round) % 900
                            };
                            let key = format!("c{c}:r{round}:i{i}");
                            let val: Vec<u8> =
                                (0..len).map(|j| b'a' + ((j + i + c) % 26) as u8).collect();
                            req.extend_from_slice(format!("set {key} {i} 0 {len}\r\n").as_bytes());
                            req.extend_from_slice(&val);
                            req.extend_from_slice(b"\r\n");
                            want.extend_from_slice(b"STORED\r\n");
                            req.extend_from_slice(format!("get {key} nokey:{i}\r\n").as_bytes());
                            want.extend_from_slice(format!("VALUE {key} {i} {len}\r\n").as_bytes());
                            want.extend_from_slice(&val);
                            want.extend_from_slice(b"\r\nEND\r\n");
                        }
                        // Write from another thread: the replies to a big batch can
                        // exceed what the socket buffers hold while the requests are
                        // still being sent.
                        let mut w = s.try_clone().unwrap();
                        let writer = std::thread::spawn(move || w.write_all(&req).unwrap());
                        let mut got = vec![0u8; want.len()];
                        s.read_exact(&mut got).unwrap();
                        writer.join().unwrap();
                        assert!(
                            got == want,
                            "{path:?}: client {c} round {round}: wrong replies"
                        );
                    }
                })
            })
            .collect();
        for t in clients {
            t.join().unwrap();
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn a_slow_reader_does_not_stall_others_and_memory_stays_bounded() {
    for path in WritePath::ALL {
        slow_reader_case(path);
    }
}

fn slow_reader_case(path: WritePath) {
    let (mut child, addr) = start_with(path, &["-p", "0", "-t", "1", "-m", "64"]);
    let mut setup = TcpStream::connect(addr).unwrap();
    let value = vec![b'v'; 500_000];
    let mut req = format!("set big 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    setup.write_all(&req).unwrap();
    let mut ok = [0u8; 8];
    setup.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"STORED\r\n");

    // A client that asks for 200 MB of replies and never reads them.
    let mut slow = TcpStream::connect(addr).unwrap();
    let gets = b"get big\r\n".repeat(400);
    slow.write_all(&gets).unwrap();

    // Another client on the same worker thread is still answered promptly.
    let mut other = TcpStream::connect(addr).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for _ in 0..100 {
        other.write_all(b"version\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = other.read(&mut buf).expect("the other client is served");
        assert!(buf[..n].starts_with(b"VERSION "));
    }
    // The server holds only a bounded backlog for the slow reader.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        rss_kib < 40 * 1024,
        "{path:?}: RSS {rss_kib} KiB with a slow reader"
    );
    drop(slow);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_overlong_line_closes_the_connection_but_a_long_multiget_does_not() {
    let (mut child, addr) = start(&["-p", "0", "-t", "1"]);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&[b'x'; 3000]).unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert_eq!(got, b"", "closed without a reply, as memcached does");

    let mut g = TcpStream::connect(addr).unwrap();
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = b"get".to_vec();
    for i in 0..2000 {
        line.extend_from_slice(format!(" key:{i}").as_bytes());
    }
    // Sent in two parts so the server sees over 2048 bytes without a newline first.
    g.write_all(&line).unwrap();
    g.flush().unwrap();
    std::thread::yield_now();
    g.write_all(b"\r\n").unwrap();
    let mut buf = [0u8; 5];
    g.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"END\r\n");
    child.kill().unwrap();
    child.wait().unwrap();
}
