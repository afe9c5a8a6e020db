//! A small closed-loop load driver for comparing proxies (used for the numbers in the
//! mcrouter report): `conns` connections, each on its own thread, each sending one
//! request at a time (90% `get`, 10% `set`, 100-byte values over `keys` keys), for
//! `secs` seconds. Prints requests, throughput and latency percentiles.
//!
//! ```text
//! cargo run --release -p mcrouter --example bench_driver -- ADDR [conns=8] [secs=10] [keys=10000] [depth=1] [rate=0]
//! ```
//!
//! With `depth` > 1 each connection pipelines that many requests per round trip. With
//! `rate` > 0 the connections together send at most that many rounds per second (an
//! open schedule, so two proxies can be compared at the same request rate).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:11211".into());
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let keys: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let depth: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rate: f64 = args.get(6).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let interval = if rate > 0.0 {
        Some(Duration::from_secs_f64(conns as f64 / rate))
    } else {
        None
    };
    let value = vec![b'x'; 100];
    // Preload so gets hit.
    {
        let mut s = TcpStream::connect(&addr).expect("connect");
        let mut batch = Vec::new();
        for k in 0..keys {
            batch.extend_from_slice(format!("set key:{k} 0 0 {}\r\n", value.len()).as_bytes());
            batch.extend_from_slice(&value);
            batch.extend_from_slice(b"\r\n");
        }
        s.write_all(&batch).unwrap();
        let mut got = 0u64;
        let mut buf = vec![0u8; 65536];
        let mut tail = Vec::new();
        while got < keys {
            let n = s.read(&mut buf).unwrap();
            tail.extend_from_slice(&buf[..n]);
            got += tail.iter().filter(|&&b| b == b'\n').count() as u64;
            tail.clear();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let addr = addr.clone();
            let value = value.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1);
                let mut buf = vec![0u8; 1 << 16];
                let mut req = Vec::new();
                let mut n_req = 0u64;
                let mut next = Instant::now() + Duration::from_micros(c as u64 * 37);
                while Instant::now() < deadline {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    req.clear();
                    let mut expect_lines = 0usize;
                    for _ in 0..depth {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let k = x % keys;
                        if x.is_multiple_of(10) {
                            req.extend_from_slice(
                                format!("set key:{k} 0 0 {}\r\n", value.len()).as_bytes(),
                            );
                            req.extend_from_slice(&value);
                            req.extend_from_slice(b"\r\n");
                            expect_lines += 1;
                        } else {
                            req.extend_from_slice(format!("get key:{k}\r\n").as_bytes());
                            expect_lines += 3; // VALUE, data, END (preloaded)
                        }
                    }
                    let t0 = Instant::now();
                    s.write_all(&req).unwrap();
                    let mut lines = 0usize;
                    while lines < expect_lines {
                        let n = s.read(&mut buf).unwrap();
                        assert!(n > 0, "server closed");
                        lines += buf[..n].iter().filter(|&&b| b == b'\n').count();
                    }
                    lat.push(t0.elapsed().as_nanos() as u32);
                    n_req += depth as u64;
                }
                (n_req, lat)
            })
        })
        .collect();
    let mut total = 0u64;
    let mut all: Vec<u32> = Vec::new();
    for h in handles {
        let (n, l) = h.join().unwrap();
        total += n;
        all.extend(l);
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "requests {total} rps {:.0} p50_us {:.1} p90_us {:.1} p99_us {:.1}",
        total as f64 / secs as f64,
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
}
