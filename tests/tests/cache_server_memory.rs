//! Memory: how many keys survive in a fixed budget (vs the real memcached, same run), and
//! the process RSS staying near `-m` whatever the workload.
//!
//! Figures are printed (run with `--nocapture` to see them) and asserted against the
//! targets: >= 1.3x memcached's retained keys, RSS <= -m + documented overhead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use e2e_tests::bins::OurServer;
use e2e_tests::external::{skip, Memcached};

/// The overhead we document on top of `-m`: binary, thread stacks, hash table, buffers.
const RSS_OVERHEAD_MIB: u64 = 40;

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// `set key:i 0 0 len` for i in range, pipelined in batches; returns how many were STORED.
fn fill(addr: SocketAddr, n: usize, value: &[u8]) -> usize {
    let (mut w, mut r) = connect(addr);
    let mut stored = 0;
    let mut line = String::new();
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let mut batch = Vec::with_capacity((end - start) * (value.len() + 40));
        for i in start..end {
            batch.extend_from_slice(format!("set key:{i} 0 0 {}\r\n", value.len()).as_bytes());
            batch.extend_from_slice(value);
            batch.extend_from_slice(b"\r\n");
        }
        w.write_all(&batch).unwrap();
        for _ in start..end {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "STORED\r\n" {
                stored += 1;
            }
        }
    }
    stored
}

/// How many of key:0..n are retrievable (multi-gets of 100 keys).
fn count(addr: SocketAddr, n: usize, value_len: usize) -> usize {
    let (mut w, mut r) = connect(addr);
    let mut found = 0;
    let mut line = String::new();
    let mut data = vec![0u8; value_len + 2];
    for start in (0..n).step_by(100) {
        let end = (start + 100).min(n);
        let mut req = b"get".to_vec();
        for i in start..end {
            req.extend_from_slice(format!(" key:{i}").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        w.write_all(&req).unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "END\r\n" {
                break;
            }
            assert!(line.starts_with("VALUE "), "unexpected {line:?}");
            r.read_exact(&mut data).unwrap();
            found += 1;
        }
    }
    found
}

#[test]
fn keeps_more_keys_than_memcached_in_64_mib() {
    const N: usize = 1_000_000;
    let value = vec![b'v'; 100];
    let ours = OurServer::start(
        "cache-server",
        &["-p", "0", "-U", "0", "-m", "64", "-t", "2"],
    )
    .unwrap();
    assert_eq!(fill(ours.addr(), N, &value), N, "every set is acknowledged");
    let kept = count(ours.addr(), N, value.len());
    let rss = ours.rss_kib().unwrap() / 1024;
    println!("cache-server -m 64: {kept} of {N} keys retrievable, RSS {rss} MiB");
    assert!(
        rss <= 64 + RSS_OVERHEAD_MIB,
        "RSS {rss} MiB over 64 + {RSS_OVERHEAD_MIB}"
    );

    let mc = match Memcached::start_with(&["-m", "64", "-t", "2"]) {
        Ok(m) => m,
        Err(e) => {
            // Without memcached, hold ourselves to its published figure (1.6.18: 349,504).
            skip(
                "keeps_more_keys_than_memcached_in_64_mib",
                &format!("memcached unavailable ({e}): comparing with 349,504"),
            );
            assert!(kept as f64 >= 1.3 * 349_504.0, "kept {kept}");
            return;
        }
    };
    // memcached itself sometimes answers `SERVER_ERROR out of memory storing object` under
    // this pipelined fill (its tail-locking allocator gives up); that is the reference's
    // behaviour, so it is reported rather than asserted.
    let acked = fill(mc.addr(), N, &value);
    if acked != N {
        println!("memcached acknowledged {acked} of {N} sets");
    }
    let theirs = count(mc.addr(), N, value.len());
    let ratio = kept as f64 / theirs as f64;
    println!("memcached -m 64: {theirs} of {N} keys retrievable; ratio {ratio:.3}");
    assert!(
        ratio >= 1.3,
        "kept {kept} vs memcached {theirs} (ratio {ratio:.3}), target >= 1.3"
    );
}

#[test]
fn rss_stays_bounded_under_mixed_sizes() {
    // 300 MiB of writes with sizes from 10 B to 200 KiB into a 32 MiB cache.
    let ours = OurServer::start(
        "cache-server",
        &["-p", "0", "-U", "0", "-m", "32", "-t", "2"],
    )
    .unwrap();
    let (mut w, mut r) = connect(ours.addr());
    let mut line = String::new();
    let mut written = 0usize;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut i = 0u64;
    let mut peak = 0;
    while written < 300 * 1024 * 1024 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = match seed % 4 {
            0 => 10 + (seed >> 8) as usize % 100,
            1 => 100 + (seed >> 8) as usize % 2_000,
            2 => 2_000 + (seed >> 8) as usize % 50_000,
            _ => 50_000 + (seed >> 8) as usize % 150_000,
        };
        let value = vec![b'a' + (i % 26) as u8; len];
        w.write_all(format!("set mixed:{i} 0 0 {len}\r\n").as_bytes())
            .unwrap();
        w.write_all(&value).unwrap();
        w.write_all(b"\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "STORED\r\n", "set of {len} bytes");
        written += len;
        i += 1;
        if i.is_multiple_of(500) {
            peak = peak.max(ours.rss_kib().unwrap() / 1024);
        }
    }
    let hwm = ours.peak_rss_kib().unwrap() / 1024;
    println!(
        "mixed sizes: {i} sets, {} MiB written, peak RSS {hwm} MiB (sampled {peak})",
        written >> 20
    );
    assert!(
        hwm <= 32 + RSS_OVERHEAD_MIB,
        "peak RSS {hwm} MiB over 32 + {RSS_OVERHEAD_MIB}"
    );
    // And the server still answers.
    w.write_all(b"version\r\n").unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("VERSION "));
}
