//! The router's write paths (batched through io_uring, see `mcrouter::send_batch`, and
//! direct with `io_uring: false`) under many pipelining clients: every reply byte for
//! byte, large values that fill sockets (the partial-send fallback, both towards clients
//! and towards the server), and a client that stops reading does not stall the others.
//! The backend is an in-test server whose values are a function of the key, and which
//! checks every stored value byte for byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcrouter::config::Config;
use mcrouter::destination::Registry;
use mcrouter::send_batch;
use mcrouter::server::{Options, Router};

/// The value of `key`: its length is the number after the last `-`, its bytes a pattern
/// seeded by the key.
fn value_of(key: &str) -> Vec<u8> {
    let len: usize = key.rsplit('-').next().unwrap().parse().unwrap();
    let seed = key
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    (0..len)
        .map(|i| b'a' + ((seed as usize + i * 7) % 26) as u8)
        .collect()
}

/// `get k` answers `value_of(k)`; `set k 0 0 n` answers `STORED` if the data is
/// `value_of(k)`, `SERVER_ERROR corrupt` otherwise.
fn pattern_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = std::io::BufWriter::new(c.try_clone().unwrap());
                let mut r = BufReader::new(c);
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    let mut out = Vec::new();
                    match parts.first().copied() {
                        Some("get") => {
                            for k in &parts[1..] {
                                let v = value_of(k);
                                out.extend_from_slice(
                                    format!("VALUE {k} 0 {}\r\n", v.len()).as_bytes(),
                                );
                                out.extend_from_slice(&v);
                                out.extend_from_slice(b"\r\n");
                            }
                            out.extend_from_slice(b"END\r\n");
                        }
                        Some("set") => {
                            let n: usize = parts[4].parse().unwrap();
                            let mut data = vec![0u8; n + 2];
                            if r.read_exact(&mut data).is_err() {
                                return;
                            }
                            if data[..n] == value_of(parts[1])[..] && &data[n..] == b"\r\n" {
                                out.extend_from_slice(b"STORED\r\n");
                            } else {
                                out.extend_from_slice(b"SERVER_ERROR corrupt\r\n");
                            }
                        }
                        Some("version") => out.extend_from_slice(b"VERSION 1\r\n"),
                        _ => out.extend_from_slice(b"ERROR\r\n"),
                    }
                    if w.write_all(&out).is_err() {
                        return;
                    }
                    // Flush only when no further request is buffered (pipelined replies
                    // leave together).
                    if r.buffer().is_empty() && w.flush().is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn start(servers: &[SocketAddr], io_uring: bool) -> Router {
    let list: Vec<String> = servers.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|A\"}}",
        list.join(", ")
    );
    let registry = Registry::default();
    let config = Config::parse(&text, Some("test"), &registry).unwrap();
    let opts = Options {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        num_proxies: 2,
        io_uring,
        ..Options::default()
    };
    Router::start_with_registry(config, opts, registry).unwrap()
}

fn connect(r: &Router) -> TcpStream {
    let s = TcpStream::connect(r.local_addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One client's pipelined requests and the exact bytes it must get back.
fn workload(client: usize, rounds: usize, big: usize) -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..rounds {
        // Mostly small values; some big gets and sets (they fill socket buffers).
        let len = if i % 16 == 5 || i % 32 == 8 {
            big
        } else {
            1 + (i * 13) % 300
        };
        if i % 4 == 0 {
            // Sets stay under the router's value size limit.
            let len = len.min(512 * 1024);
            let k = format!("c{client}-r{i}-{len}");
            let v = value_of(&k);
            req.extend_from_slice(format!("set {k} 0 0 {}\r\n", v.len()).as_bytes());
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n");
            want.extend_from_slice(b"STORED\r\n");
        } else {
            let k = format!("c{client}-r{i}-{len}");
            let k2 = format!("c{client}-r{i}b-{}", len / 2 + 1);
            req.extend_from_slice(format!("get {k}\r\nget {k} {k2}\r\n").as_bytes());
            for keys in [vec![&k], vec![&k, &k2]] {
                for k in keys {
                    let v = value_of(k);
                    want.extend_from_slice(format!("VALUE {k} 0 {}\r\n", v.len()).as_bytes());
                    want.extend_from_slice(&v);
                    want.extend_from_slice(b"\r\n");
                }
                want.extend_from_slice(b"END\r\n");
            }
        }
    }
    (req, want)
}

/// Send `req` in chunks from a writer thread while reading; compare with `want`.
fn run_client(mut s: TcpStream, req: Vec<u8>, want: Vec<u8>, name: &str) {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for chunk in req.chunks(7001) {
            w.write_all(chunk).unwrap();
        }
    });
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("{name}: reading replies: {e}"));
    writer.join().unwrap();
    if got != want {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
        panic!(
            "{name}: reply differs at byte {at}: got {:?}, want {:?}",
            String::from_utf8_lossy(&got[at..(at + 60).min(got.len())]),
            String::from_utf8_lossy(&want[at..(at + 60).min(want.len())])
        );
    }
}

fn many_clients(io_uring: bool) {
    let servers = [pattern_server(), pattern_server(), pattern_server()];
    let r = start(&servers, io_uring);
    let before = (
        send_batch::FLUSHES.load(Ordering::Relaxed),
        send_batch::SENDS.load(Ordering::Relaxed),
        send_batch::SHORT.load(Ordering::Relaxed),
    );

    // A client that sends big gets and does not read: the router's sends to it come back
    // short and then EAGAIN, and must not hold up anyone else.
    let mut stalled = connect(&r);
    let (stalled_req, stalled_want) = workload(999, 96, 2 << 20);
    stalled.write_all(&stalled_req).unwrap();
    // Until its replies have filled the sockets between it and the router.
    std::thread::sleep(Duration::from_millis(300));

    let t0 = Instant::now();
    let clients: Vec<_> = (0..24)
        .map(|c| {
            let s = connect(&r);
            std::thread::spawn(move || {
                let (req, want) = workload(c, 400, 96 * 1024);
                run_client(s, req, want, &format!("client {c}"));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "clients took {:?} next to a stalled one",
        t0.elapsed()
    );
    // Now the stalled client reads: everything is there, in order.
    run_client(stalled, Vec::new(), stalled_want, "stalled client");

    if io_uring {
        let flushes = send_batch::FLUSHES.load(Ordering::Relaxed) - before.0;
        let sends = send_batch::SENDS.load(Ordering::Relaxed) - before.1;
        if flushes == 0 {
            eprintln!("io_uring unavailable here: the direct path was tested instead");
        } else {
            assert!(
                sends > flushes,
                "no batch carried more than one send ({sends} sends in {flushes} batches)"
            );
            let short = send_batch::SHORT.load(Ordering::Relaxed) - before.2;
            assert!(
                short > 0,
                "no send came back short: the fallback was not tested"
            );
        }
    }
}

#[test]
fn many_pipelining_clients_through_io_uring_batches() {
    many_clients(true);
}

#[test]
fn many_pipelining_clients_writing_directly() {
    many_clients(false);
}
