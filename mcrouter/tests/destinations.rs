//! Destination behaviour through the whole router (in process): request timeouts,
//! connect failures and TKO fail-fast, the per-connection in-flight cap, requests held
//! while a write is unanswered, and that one bad server does not hurt requests to the
//! others. Backends are tiny in-test servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcrouter::config::Config;
use mcrouter::destination::{DestOptions, Registry};
use mcrouter::server::{Options, Router};

/// Accepts connections and never answers.
fn black_hole() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    addr
}

/// Answers every line with `END` (a miss) or `STORED` after a data block.
fn always_miss() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 {
                    let reply: &[u8] = if line.starts_with("version") {
                        b"VERSION 1\r\n"
                    } else {
                        b"END\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// A port nobody listens on.
fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn start(servers: &[SocketAddr], timeout_ms: u64, max_inflight: usize) -> Router {
    start_with(
        servers,
        DestOptions {
            server_timeout: Duration::from_millis(timeout_ms),
            max_inflight,
            ..DestOptions::default()
        },
    )
}

fn start_with(servers: &[SocketAddr], dest: DestOptions) -> Router {
    let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}}}, \"route\": {{\"type\": \"HashRoute\", \"children\": \"Pool|A\", \"hash_func\": \"Crc32\"}}}}",
        list.join(", ")
    );
    let registry = Registry::default();
    let config = Config::parse(&text, Some("test"), &registry).unwrap();
    let opts = Options {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        dest,
        ..Options::default()
    };
    Router::start_with_registry(config, opts, registry).unwrap()
}

fn connect(r: &Router) -> TcpStream {
    let s = TcpStream::connect(r.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read `n` lines.
fn lines(s: &mut TcpStream, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    while out.len() < n {
        let k = s.read(&mut b).unwrap();
        assert!(k > 0, "closed after {out:?}");
        buf.extend_from_slice(&b[..k]);
        while let Some(i) = buf.iter().position(|&c| c == b'\n') {
            out.push(String::from_utf8_lossy(&buf[..i + 1]).into_owned());
            buf.drain(..=i);
        }
    }
    out
}

/// A key that Crc32 over `n` servers puts on server `idx`.
fn key_on(idx: usize, n: usize) -> String {
    (0..)
        .map(|i| format!("k{i}"))
        .find(|k| (crc32fast::hash(k.as_bytes()) & 0x7fff_ffff) as usize % n == idx)
        .unwrap()
}

#[test]
fn timeout_fails_only_that_request() {
    let r = start(&[black_hole(), always_miss()], 200, 1000);
    let mut c = connect(&r);
    let slow = key_on(0, 2);
    let fast = key_on(1, 2);
    let t0 = Instant::now();
    c.write_all(format!("get {slow}\r\nget {fast}\r\n").as_bytes())
        .unwrap();
    let got = lines(&mut c, 2);
    let waited = t0.elapsed();
    assert!(
        got[0].starts_with("SERVER_ERROR") && got[0].contains("timeout"),
        "{got:?}"
    );
    assert_eq!(got[1], "END\r\n");
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    // The healthy server still answers at once.
    let t0 = Instant::now();
    c.write_all(format!("get {fast}\r\n").as_bytes()).unwrap();
    assert_eq!(lines(&mut c, 1), vec!["END\r\n"]);
    assert!(t0.elapsed() < Duration::from_millis(150));
}

#[test]
fn refused_connect_marks_tko_and_fails_fast() {
    let r = start(&[refused(), always_miss()], 1000, 1000);
    let mut c = connect(&r);
    let dead = key_on(0, 2);
    c.write_all(format!("get {dead}\r\n").as_bytes()).unwrap();
    let first = lines(&mut c, 1);
    assert!(
        first[0].starts_with("SERVER_ERROR") && first[0].contains("connect"),
        "{first:?}"
    );
    let t0 = Instant::now();
    for _ in 0..20 {
        c.write_all(format!("get {dead}\r\n").as_bytes()).unwrap();
        let l = lines(&mut c, 1);
        assert!(l[0].contains("TKO"), "{l:?}");
    }
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "not failing fast: {:?}",
        t0.elapsed()
    );
    c.write_all(b"stats\r\n").unwrap();
    let mut stats = String::new();
    while !stats.ends_with("END\r\n") {
        for l in lines(&mut c, 1) {
            stats.push_str(&l);
        }
    }
    assert!(stats.contains("STAT num_servers_tko 1\r\n"), "{stats}");
}

#[test]
fn in_flight_cap_sheds_with_busy() {
    let r = start(&[black_hole()], 300, 4);
    let mut c = connect(&r);
    let mut batch = String::new();
    for i in 0..10 {
        batch.push_str(&format!("get key{i}\r\n"));
    }
    c.write_all(batch.as_bytes()).unwrap();
    let got = lines(&mut c, 10);
    let busy = got.iter().filter(|l| l.contains("busy")).count();
    let timeouts = got.iter().filter(|l| l.contains("timeout")).count();
    assert_eq!((busy, timeouts), (6, 4), "{got:?}");
    // Replies stay in request order: the four admitted ones first.
    assert!(got[..4].iter().all(|l| l.contains("timeout")), "{got:?}");
}

/// A server that reports each request line on the returned channel and answers it with
/// `END` only when told to (one `()` on the sender per line).
fn answers_when_told() -> (SocketAddr, mpsc::Receiver<String>, mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Some(Ok(c)) = l.incoming().next() else {
            return;
        };
        let mut w = c.try_clone().unwrap();
        let mut r = BufReader::new(c);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            if line_tx.send(std::mem::take(&mut line)).is_err() || go_rx.recv().is_err() {
                return;
            }
            if w.write_all(b"END\r\n").is_err() {
                return;
            }
        }
    });
    (addr, line_rx, go_tx)
}

/// Wait until the router has queued `n` requests for its only server (`stats servers`).
fn wait_requests(r: &Router, n: u64) {
    let mut c = connect(r);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.write_all(b"stats servers\r\n").unwrap();
        let mut text = String::new();
        while !text.ends_with("END\r\n") {
            text.push_str(&lines(&mut c, 1).concat());
        }
        if text.contains(&format!(" requests:{n} ")) {
            return;
        }
        assert!(Instant::now() < deadline, "never {n} requests: {text}");
        std::thread::yield_now();
    }
}

/// Three gets from three clients while the first client's get is unanswered: the line the
/// server reads next.
fn next_line_after_an_unanswered_get(max_inflight_batches: usize) -> String {
    let (addr, lines_rx, go) = answers_when_told();
    let r = start_with(
        &[addr],
        DestOptions {
            max_inflight_batches,
            ..DestOptions::default()
        },
    );
    let wait = Duration::from_secs(10);
    let mut first = connect(&r);
    first.write_all(b"get k1\r\n").unwrap();
    assert_eq!(lines_rx.recv_timeout(wait).unwrap(), "get k1\r\n");
    let mut others: Vec<TcpStream> = (2..=4).map(|_| connect(&r)).collect();
    for (i, c) in others.iter_mut().enumerate() {
        c.write_all(format!("get k{}\r\n", i + 2).as_bytes())
            .unwrap();
        wait_requests(&r, i as u64 + 2);
    }
    go.send(()).unwrap();
    assert_eq!(lines(&mut first, 1), ["END\r\n"]);
    let next = lines_rx.recv_timeout(wait).unwrap();
    // Answer whatever else comes; every client gets its (missing) value.
    for _ in 0..4 {
        let _ = go.send(());
    }
    for c in &mut others {
        assert_eq!(lines(c, 1), ["END\r\n"]);
    }
    next
}

#[test]
fn requests_wait_while_a_write_is_unanswered_and_leave_together() {
    // The default: one unanswered write per connection. The three gets queue behind the
    // first and leave as one joined line once it is answered.
    assert_eq!(DestOptions::default().max_inflight_batches, 1);
    assert_eq!(next_line_after_an_unanswered_get(1), "get k2 k3 k4\r\n");
    // Without the limit each left in its own write as it came.
    assert_eq!(next_line_after_an_unanswered_get(0), "get k2\r\n");
}
