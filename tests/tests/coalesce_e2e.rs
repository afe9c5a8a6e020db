//! Request coalescing in the router, against a backend that holds `get` replies until the
//! test releases them (so "in flight at the same time" is certain, not a race), and the
//! read-your-writes rule: a get sent after a write never joins an older flight.
//!
//! By default the router holds new requests to a server while a write to it is unanswered
//! (`--max-inflight-batches 1`). The tests that watch requests reach the backend while a
//! `get` is held there turn that off (`0`); one test keeps it and checks the rule with it.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{ensure, Result};
use e2e_tests::router_support::{pool_config, wait_until, Client, Router};
use protocol::{Limits, Request};

/// Answers `get`/`set`; every `get` reply waits for a permit from [`Gate::release`].
/// Requests are logged (and sets applied) as soon as they are read, one `get` entry per
/// key of a `get` line.
struct GatedBackend {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    gate: Arc<(Mutex<usize>, Condvar)>,
}

impl GatedBackend {
    fn start() -> Result<GatedBackend> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let gate: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let store: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>> = Arc::default();
        store.lock().unwrap().insert(b"k".to_vec(), b"v0".to_vec());
        let (log2, gate2) = (log.clone(), gate.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let (log, gate, store) = (log2.clone(), gate2.clone(), store.clone());
                std::thread::spawn(move || serve(conn, log, gate, store));
            }
        });
        Ok(GatedBackend { addr, log, gate })
    }

    fn gets(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("get"))
            .count()
    }

    fn release(&self, n: usize) {
        *self.gate.0.lock().unwrap() += n;
        self.gate.1.notify_all();
    }
}

enum Job {
    /// A `get` line's keys (the router joins concurrent single-key gets into one line).
    Get(Vec<Vec<u8>>),
    Line(&'static [u8]),
}

fn serve(
    conn: TcpStream,
    log: Arc<Mutex<Vec<String>>>,
    gate: Arc<(Mutex<usize>, Condvar)>,
    store: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
) {
    let (tx, rx) = mpsc::channel::<Job>();
    let mut w = conn.try_clone().expect("clone");
    let store2 = store.clone();
    std::thread::spawn(move || {
        for job in rx {
            let out = match job {
                Job::Line(l) => l.to_vec(),
                Job::Get(keys) => {
                    let mut n = gate.0.lock().unwrap();
                    while *n == 0 {
                        n = gate.1.wait(n).unwrap();
                    }
                    *n -= 1;
                    drop(n);
                    let mut out = Vec::new();
                    for key in keys {
                        if let Some(v) = store2.lock().unwrap().get(&key) {
                            out.extend_from_slice(b"VALUE ");
                            out.extend_from_slice(&key);
                            out.extend_from_slice(format!(" 0 {}\r\n", v.len()).as_bytes());
                            out.extend_from_slice(v);
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                    out.extend_from_slice(b"END\r\n");
                    out
                }
            };
            if w.write_all(&out).is_err() {
                return;
            }
        }
    });
    let mut r = conn;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let limits = Limits::default();
    loop {
        match protocol::parse_request(&buf, &limits) {
            Ok(Some((req, n))) => {
                let job = match req {
                    Request::Retrieval { keys, .. } => {
                        let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
                        let mut log = log.lock().unwrap();
                        for k in &keys {
                            log.push(format!("get {}", String::from_utf8_lossy(k)));
                        }
                        Job::Get(keys)
                    }
                    Request::Storage { key, data, .. } => {
                        log.lock()
                            .unwrap()
                            .push(format!("set {}", String::from_utf8_lossy(key)));
                        store.lock().unwrap().insert(key.to_vec(), data.to_vec());
                        Job::Line(b"STORED\r\n")
                    }
                    Request::Version => Job::Line(b"VERSION 1.6.18\r\n"),
                    _ => Job::Line(b"ERROR\r\n"),
                };
                buf.drain(..n);
                if tx.send(job).is_err() {
                    return;
                }
            }
            Ok(None) => match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            },
            Err(_) => return,
        }
    }
}

fn coalesced(admin: &mut Client) -> u64 {
    admin
        .stats()
        .ok()
        .and_then(|s| s.get("coalesced_requests").and_then(|v| v.parse().ok()))
        .unwrap_or(u64::MAX)
}

#[test]
fn identical_gets_in_flight_share_one_backend_request() -> Result<()> {
    let b = GatedBackend::start()?;
    let router = Router::start(
        &pool_config(&[b.addr.to_string()]),
        &["--num-proxies", "1", "--max-inflight-batches", "0"],
    )?;
    let mut admin = router.client()?;
    let mut clients: Vec<Client> = (0..3).map(|_| router.client()).collect::<Result<_>>()?;
    clients[0].send("get k\r\n")?;
    ensure!(wait_until(Duration::from_secs(5), || b.gets() == 1));
    clients[1].send("get k\r\n")?;
    clients[2].send("get k\r\n")?;
    ensure!(
        wait_until(Duration::from_secs(5), || coalesced(&mut admin) == 2),
        "coalesced_requests = {}",
        coalesced(&mut admin)
    );
    b.release(1);
    for c in clients.iter_mut() {
        assert_eq!(c.read_reply()?, "VALUE k 0 2\r\nv0\r\nEND\r\n");
    }
    assert_eq!(b.gets(), 1, "one backend request for three gets");

    // Read-your-writes: client 1 writes k while client 0's get is in flight; its next get
    // must not join client 0's (older) request.
    clients[0].send("get k\r\n")?;
    ensure!(wait_until(Duration::from_secs(5), || b.gets() == 2));
    clients[1].send("set k 0 0 2\r\nv1\r\n")?;
    ensure!(wait_until(Duration::from_secs(5), || b
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l == "set k")));
    clients[1].send("get k\r\n")?;
    ensure!(
        wait_until(Duration::from_secs(5), || b.gets() == 3),
        "the get after the write started its own request"
    );
    b.release(2);
    // Client 0's get raced with the write (this backend applies sets as soon as it reads
    // them): either value is right for it.
    let r0 = clients[0].read_reply()?;
    ensure!(r0.starts_with("VALUE k 0 2\r\nv"), "{r0:?}");
    assert_eq!(clients[1].read_reply()?, "STORED\r\n");
    assert_eq!(clients[1].read_reply()?, "VALUE k 0 2\r\nv1\r\nEND\r\n");
    assert_eq!(coalesced(&mut admin), 2);
    Ok(())
}

#[test]
fn coalescing_can_be_turned_off_per_pool() -> Result<()> {
    let b = GatedBackend::start()?;
    let cfg = format!(
        "{{\"pools\": {{\"A\": {{\"servers\": [\"{}\"], \"coalesce\": false}}}}, \"route\": \"PoolRoute|A\"}}",
        b.addr
    );
    let router = Router::start(&cfg, &["--num-proxies", "1", "--max-inflight-batches", "0"])?;
    let mut clients: Vec<Client> = (0..3).map(|_| router.client()).collect::<Result<_>>()?;
    for c in clients.iter_mut() {
        c.send("get k\r\n")?;
    }
    ensure!(
        wait_until(Duration::from_secs(5), || b.gets() == 3),
        "three backend requests, got {}",
        b.gets()
    );
    b.release(3);
    for c in clients.iter_mut() {
        assert_eq!(c.read_reply()?, "VALUE k 0 2\r\nv0\r\nEND\r\n");
    }
    assert_eq!(coalesced(&mut router.client()?), 0);
    Ok(())
}

/// Requests the router has sent or queued for its servers (`stats servers`).
fn routed(admin: &mut Client) -> u64 {
    admin.server_counter("requests").unwrap_or(0)
}

/// With the default hold, a write queued behind an unanswered `get` waits for it, and the
/// `get` after the write still starts its own request rather than joining the older one.
#[test]
fn a_get_after_a_held_write_does_not_join_the_older_flight() -> Result<()> {
    let b = GatedBackend::start()?;
    let router = Router::start(&pool_config(&[b.addr.to_string()]), &["--num-proxies", "1"])?;
    let mut admin = router.client()?;
    let mut clients: Vec<Client> = (0..2).map(|_| router.client()).collect::<Result<_>>()?;
    clients[0].send("get k\r\n")?;
    ensure!(wait_until(Duration::from_secs(5), || b.gets() == 1));
    clients[1].send("set k 0 0 2\r\nv1\r\nget k\r\n")?;
    ensure!(
        wait_until(Duration::from_secs(5), || routed(&mut admin) == 3),
        "routed {}",
        routed(&mut admin)
    );
    // Both wait behind the unanswered get: the backend has seen nothing more.
    assert_eq!(
        b.log.lock().unwrap().len(),
        1,
        "{:?}",
        b.log.lock().unwrap()
    );
    assert_eq!(
        coalesced(&mut admin),
        0,
        "the get after the write joined nothing"
    );
    b.release(1);
    assert_eq!(clients[0].read_reply()?, "VALUE k 0 2\r\nv0\r\nEND\r\n");
    ensure!(wait_until(Duration::from_secs(5), || b.gets() == 2));
    assert_eq!(
        b.log.lock().unwrap()[1..],
        ["set k".to_string(), "get k".to_string()],
        "the write went first, in the next write"
    );
    b.release(1);
    assert_eq!(clients[1].read_reply()?, "STORED\r\n");
    assert_eq!(clients[1].read_reply()?, "VALUE k 0 2\r\nv1\r\nEND\r\n");
    Ok(())
}
