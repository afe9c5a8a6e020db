//! The two I/O paths of the driver (io_uring, and epoll with `--no-io-uring`) run the same
//! scenarios and must agree: every request completed, no errors, verification clean, dead
//! connections noticed. The report must say which path ran, and io_uring must be the one
//! used wherever the kernel offers it (so a broken io_uring set-up cannot hide behind the
//! fallback).

// Not every helper of the shared fake server is used here.
#[allow(dead_code)]
mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{FakeServer, Misbehave};
use loadgen::workload::{Proto, Range, Ratio};
use loadgen::{Report, RunConfig, Stop};

/// `loadgen::run`, failing the test instead of hanging if a broken I/O path stalls it.
fn run(cfg: &RunConfig) -> Result<Report, loadgen::RunError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cfg = cfg.clone();
    std::thread::spawn(move || {
        let _ = tx.send(loadgen::run(&cfg));
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("run did not finish within 60 s")
}

/// Whether the io_uring path must be available here: io_uring is allowed (a plain ring can
/// be created) and the kernel is 6.1 or newer (what the driver's ring needs).
fn io_uring_expected() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let recent = (major, minor) >= (6, 1);
    recent && io_uring::IoUring::new(8).is_ok()
}

/// The path a run asking for `io_uring` must report.
fn expected_path(io_uring: bool) -> &'static str {
    if io_uring && loadgen::io_uring_available() {
        "io_uring"
    } else {
        "epoll"
    }
}

#[test]
fn io_uring_is_used_wherever_the_kernel_offers_it() {
    let expected = io_uring_expected();
    assert_eq!(
        loadgen::io_uring_available(),
        expected,
        "io_uring expected to be {}available on this kernel",
        if expected { "" } else { "un" }
    );
    if !expected {
        eprintln!("note: io_uring unavailable here; only the epoll path runs in these tests");
    }
}

fn config(addr: &str) -> RunConfig {
    let mut cfg = RunConfig::new(&[addr], "Ch3").unwrap();
    cfg.threads = 2;
    cfg.connections = 4;
    cfg.workload.key_space = 1000;
    cfg
}

fn assert_clean(r: &Report, io_uring: bool, want_ops: u64, what: &str) {
    let path = expected_path(io_uring);
    assert_eq!(r.io_path(), path, "{what}");
    assert_eq!(r.to_json(false, false).io, path, "{what}");
    assert!(
        r.table().contains(&format!("(I/O via {path})")),
        "{what}: {}",
        r.table()
    );
    assert_eq!(r.total().ops, want_ops, "{what}");
    assert_eq!(r.stats.conn_errors, 0, "{what}");
    assert_eq!(r.stats.unsent, 0, "{what}");
    assert_eq!(r.sets().errors + r.gets().errors, 0, "{what}");
    let v = r.stats.verify;
    assert_eq!(v.failures(), 0, "{what}: {v:?}");
    assert_eq!(v.unexpected_misses, 0, "{what}: {v:?}");
}

#[test]
fn both_paths_complete_every_request_against_the_fake_server() {
    for io_uring in [true, false] {
        // Pipelined, values up to 100 KB: replies span many receive buffers.
        let srv = FakeServer::start(Misbehave::default());
        let mut cfg = config(&srv.addr.to_string());
        cfg.io_uring = io_uring;
        cfg.pipeline = 8;
        cfg.workload.ratio = Ratio { sets: 1, gets: 1 };
        cfg.workload.value_size = Range {
            min: 10,
            max: 100_000,
        };
        cfg.stop = Stop::Requests(3001);
        let r = run(&cfg).unwrap();
        assert_clean(
            &r,
            io_uring,
            3001,
            &format!("pipelined io_uring={io_uring}"),
        );
        assert_eq!(srv.counters.requests.load(Ordering::Relaxed), 3001);
        assert!(r.gets().hits_per_sec > 0.0);

        // Verified meta multi-gets, pipelined.
        for proto in [Proto::Text, Proto::Meta] {
            let srv = FakeServer::start(Misbehave::default());
            let mut cfg = config(&srv.addr.to_string());
            cfg.io_uring = io_uring;
            cfg.verify = true;
            cfg.pipeline = 4;
            cfg.workload.key_space = 400;
            cfg.workload.multiget = 5;
            cfg.workload.protocol = proto;
            cfg.workload.ratio = Ratio { sets: 1, gets: 1 };
            cfg.workload.value_size = Range { min: 40, max: 3000 };
            cfg.stop = Stop::Requests(4000);
            let r = run(&cfg).unwrap();
            let what = format!("verify {proto:?} io_uring={io_uring}");
            assert_clean(&r, io_uring, 4000, &what);
            assert!(
                r.stats.verify.checked > 1000,
                "{what}: {:?}",
                r.stats.verify
            );
        }
    }
}

#[test]
fn both_paths_keep_the_open_loop_rate() {
    for io_uring in [true, false] {
        let srv = FakeServer::start(Misbehave::default());
        let mut cfg = config(&srv.addr.to_string());
        cfg.io_uring = io_uring;
        cfg.connections = 16;
        // 1000/s per thread (precise timers) and 15k/s (the tick).
        for rate in [2000.0, 30_000.0] {
            cfg.rate = Some(rate);
            cfg.stop = Stop::Duration(Duration::from_secs(1));
            let r = run(&cfg).unwrap();
            let sent = (r.total().ops + r.stats.unsent) as f64;
            assert!(
                (sent / rate - 1.0).abs() < 0.03,
                "io_uring={io_uring} rate {rate}: sent {sent}"
            );
            assert_eq!(r.io_path(), expected_path(io_uring));
            let lag = r.stats.send_lag.value_at_quantile(0.5);
            assert!(
                lag < 1000,
                "io_uring={io_uring} rate {rate}: send lag p50 {lag} us"
            );
        }
    }
}

/// A server that reads the first request on each connection and answers `reply` (then
/// keeps the connection open), or hangs up if `reply` is empty.
fn one_reply_server(reply: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                if !reply.is_empty() {
                    let _ = std::io::Write::write_all(&mut conn, reply);
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                }
            });
        }
    });
    addr
}

/// A server that reads the first request on each connection and hangs up.
fn hang_up_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
            });
        }
    });
    addr
}

#[test]
fn both_paths_notice_dead_connections() {
    for io_uring in [true, false] {
        let addr = hang_up_server();
        let mut cfg = config(&addr);
        cfg.io_uring = io_uring;
        cfg.stop = Stop::Duration(Duration::from_millis(300));
        let t0 = Instant::now();
        let r = run(&cfg).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert_eq!(r.io_path(), expected_path(io_uring));
        assert_eq!(r.total().ops, 0);
        // One error per connection (2 threads x 4), each with its request lost.
        assert_eq!(r.stats.conn_errors, 8, "io_uring={io_uring}");
        assert_eq!(r.stats.unsent, 8, "io_uring={io_uring}");

        // A reply that is not memcached's: one error per connection, and the run still ends
        // on time (the connection's receive is cancelled).
        let mut cfg = config(&one_reply_server(b"HELLO THERE\r\n"));
        cfg.io_uring = io_uring;
        cfg.stop = Stop::Duration(Duration::from_millis(300));
        let t0 = Instant::now();
        let r = run(&cfg).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert_eq!(r.io_path(), expected_path(io_uring));
        assert_eq!(r.total().ops, 0);
        assert_eq!(r.stats.conn_errors, 8, "io_uring={io_uring}");
    }
}

/// memcached on a free loopback port, killed on drop.
struct Memcached {
    child: Child,
    addr: String,
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn memcached() -> Option<Memcached> {
    let path = std::env::var_os("PATH")?;
    let bin = std::env::split_paths(&path)
        .map(|d| d.join("memcached"))
        .find(|p| p.is_file())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(bin);
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(["-t", "2", "-m", "64"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    let child = cmd.spawn().ok()?;
    let mc = Memcached {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&mc.addr).is_err() {
        assert!(Instant::now() < deadline, "memcached did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(mc)
}

#[test]
fn both_paths_complete_every_request_against_memcached() {
    let Some(mc) = memcached() else {
        eprintln!("skipped: no memcached on PATH");
        return;
    };
    for io_uring in [true, false] {
        // The benchmark's shape: no pipelining, 1:9, 100-byte values, every reply verified.
        let mut cfg = config(&mc.addr);
        cfg.io_uring = io_uring;
        cfg.connections = 8;
        cfg.verify = true;
        cfg.workload.ratio = Ratio { sets: 1, gets: 9 };
        cfg.workload.value_size = Range { min: 100, max: 100 };
        cfg.stop = Stop::Requests(30_000);
        let r = run(&cfg).unwrap();
        let what = format!("memcached io_uring={io_uring}");
        assert_clean(&r, io_uring, 30_000, &what);
        assert!(
            r.stats.verify.checked > 10_000,
            "{what}: {:?}",
            r.stats.verify
        );

        // Pipelined meta multi-gets with values from 1 KB to 200 KB.
        let mut cfg = config(&mc.addr);
        cfg.io_uring = io_uring;
        cfg.pipeline = 16;
        cfg.workload.key_space = 200;
        cfg.workload.multiget = 4;
        cfg.workload.protocol = Proto::Meta;
        cfg.workload.value_size = Range {
            min: 1000,
            max: 200_000,
        };
        cfg.stop = Stop::Requests(5000);
        let r = run(&cfg).unwrap();
        assert_clean(
            &r,
            io_uring,
            5000,
            &format!("memcached pipelined io_uring={io_uring}"),
        );
    }
}
