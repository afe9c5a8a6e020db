//! Side-by-side sessions against the real `memcached` and `cache-server`: the helpers the
//! differential tests share.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::bins::OurServer;
use crate::external::{skip, Memcached};

/// Each `(input, want)` sent to our server at `addr` on its own connection is answered
/// exactly `want` (for deliberate differences from memcached, which are not compared).
pub fn assert_our_replies(addr: SocketAddr, cases: &[(&[u8], &[u8])]) {
    for (input, want) in cases {
        let got = exchange(addr, input, false);
        let got = got.strip_suffix(b"MN\r\n").unwrap_or(&got);
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Send `input` (+ `mn\r\n` unless `closes`) and read until the `MN` sentinel or EOF.
/// Cases must not contain `mn` themselves, or the sentinel would be ambiguous.
pub fn exchange(addr: SocketAddr, input: &[u8], closes: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(input).unwrap();
    if !closes {
        s.write_all(b"mn\r\n").unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if !closes && out.ends_with(b"MN\r\n") {
                    break;
                }
            }
            Err(e) => panic!(
                "read from {addr} after {:?}: {e}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    out
}

/// Both servers freshly started with `args` (plus `-p 0 -U 0` for ours), or `None` (with a
/// printed skip) when memcached is not installed.
pub fn start_pair(test: &str, args: &[&str]) -> Option<(Memcached, OurServer)> {
    let mc = match Memcached::start_with(args) {
        Ok(m) => m,
        Err(e) => {
            skip(test, &format!("memcached unavailable: {e}"));
            return None;
        }
    };
    let mut ours_args = vec!["-p", "0", "-U", "0"];
    ours_args.extend_from_slice(args);
    let ours = OurServer::start("cache-server", &ours_args).expect("start cache-server");
    Some((mc, ours))
}

/// The value of `STAT <name> <value>` in a `stats` reply.
pub fn stat_value(reply: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(reply).lines().find_map(|l| {
        l.strip_prefix("STAT ")
            .and_then(|r| r.strip_prefix(name))
            .and_then(|r| r.strip_prefix(' '))
            .map(str::to_string)
    })
}

/// Runs each `(name, input, closes)` case on a fresh connection to memcached and to ours
/// and describes every case whose replies differ (the first 600 bytes of each).
pub fn differing_cases<N: std::fmt::Debug>(
    memcached: SocketAddr,
    ours: SocketAddr,
    cases: impl IntoIterator<Item = (N, Vec<u8>, bool)>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, input, closes) in cases {
        let want = exchange(memcached, &input, closes);
        let got = exchange(ours, &input, closes);
        if want != got {
            failures.push(format!(
                "case {name:?}:\n  memcached:    {:?}\n  cache-server: {:?}",
                String::from_utf8_lossy(&want[..want.len().min(600)]),
                String::from_utf8_lossy(&got[..got.len().min(600)])
            ));
        }
    }
    failures
}

/// Fails the test with every difference listed, if there is any.
pub fn assert_no_differences(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
