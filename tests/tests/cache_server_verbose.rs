//! `-vv`: the per-command trace on stderr (`<FD command`, `>FD reply`, `NOREPLY`,
//! `sending key`, connection open/close) is memcached 1.6.18's, line for line, for the
//! same session (file descriptor numbers aside).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e_tests::bins::OurServer;
use e2e_tests::external::{free_port, memcached_path, skip, Daemon, STARTUP_TIMEOUT};
use e2e_tests::router_support::TempDir;

/// The session: storage, retrieval, meta (traced only on error), noreply, errors, admin
/// commands, a rejected oversized value, then `quit`.
fn session() -> Vec<u8> {
    let mut s = b"set foo 0 0 3\r\nbar\r\nget foo bar\r\ngets foo\r\nmg foo v k\r\nmg foo zz\r\n\
bogus\r\nincr foo 1\r\nset n 0 0 1\r\n5\r\nincr n 2\r\ndecr n 100 noreply\r\ntouch n 10\r\n\
delete foo noreply\r\ndelete foo\r\nstats detail dump\r\nstats reset\r\nstats nothing\r\n\
verbosity 2\r\nflush_all 0 noreply\r\nmn\r\nincr n x noreply\r\nset q 0 abc 1 noreply\r\nadd n 0 0 1 noreply\r\nx\r\nset big 0 0 2000000\r\n"
        .to_vec();
    s.extend(std::iter::repeat_n(b'x', 2_000_000));
    s.extend_from_slice(b"\r\nquit\r\n");
    s
}

/// Runs the session to the end (the server closes on `quit`).
fn run_session(addr: SocketAddr) {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&session()).unwrap();
    let mut sink = Vec::new();
    c.read_to_end(&mut sink)
        .expect("read until the server closes");
}

/// The trace lines of the last client connection in `log`, with `<FD`/`>FD` turned into
/// `<N`/`>N`, once its `connection closed.` line is there (polled up to 10 s).
fn trace_of_last_connection(log: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let dir = l.chars().next().filter(|c| *c == '<' || *c == '>')?;
                let rest = &l[1..];
                let digits = rest.find(|c: char| !c.is_ascii_digit())?;
                (digits > 0 && rest[digits..].starts_with(' '))
                    .then(|| format!("{dir}N{}", &rest[digits..]))
            })
            .collect();
        if let Some(start) = lines
            .iter()
            .rposition(|l| l == "<N new auto-negotiating client connection")
        {
            lines.drain(..start);
            if lines.last().map(String::as_str) == Some("<N connection closed.") {
                return lines;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete trace in {}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn vv_traces_commands_like_memcached() {
    let Some(mc_bin) = memcached_path() else {
        return skip(
            "vv_traces_commands_like_memcached",
            "memcached not installed",
        );
    };
    let dir = TempDir::new("vv-trace").unwrap();
    let mc_log = dir.path().join("memcached.err");
    let our_log = dir.path().join("ours.err");

    let port = free_port().unwrap();
    let mc_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut args: Vec<String> = ["-l", "127.0.0.1", "-U", "0", "-t", "1", "-vv", "-p"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(port.to_string());
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        args.extend(["-u".to_string(), "root".to_string()]);
    }
    let mut mc =
        Daemon::spawn_with_stderr(&mc_bin, &args, Stdio::from(File::create(&mc_log).unwrap()))
            .unwrap();
    mc.wait_for_accept(mc_addr, STARTUP_TIMEOUT).unwrap();
    let ours = OurServer::start_with_stderr(
        "cache-server",
        &["-p", "0", "-U", "0", "-t", "1", "-vv"],
        Stdio::from(File::create(&our_log).unwrap()),
    )
    .unwrap();

    run_session(mc_addr);
    run_session(ours.addr());
    let want = trace_of_last_connection(&mc_log);
    let got: Vec<String> = trace_of_last_connection(&our_log)
        .into_iter()
        .map(|l| l.replace("VERSION 1.6.18-cachetier", "VERSION 1.6.18"))
        .collect();
    assert!(
        want.iter().any(|l| l == ">N NOREPLY DELETED"),
        "memcached's trace is not what this test expects: {want:#?}"
    );
    assert_eq!(got, want);
}

/// Without `-vv` nothing is traced; `verbosity 2` turns the trace on at run time.
#[test]
fn verbosity_command_turns_the_trace_on() {
    let dir = TempDir::new("vv-runtime").unwrap();
    let log = dir.path().join("ours.err");
    let ours = OurServer::start_with_stderr(
        "cache-server",
        &["-p", "0", "-U", "0", "-t", "1"],
        Stdio::from(File::create(&log).unwrap()),
    )
    .unwrap();
    let mut c = TcpStream::connect(ours.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"set a 0 0 1\r\n1\r\nverbosity 2\r\nget a\r\nquit\r\n")
        .unwrap();
    let mut sink = Vec::new();
    c.read_to_end(&mut sink).unwrap();
    assert_eq!(sink, b"STORED\r\nOK\r\nVALUE a 0 1\r\n1\r\nEND\r\n");
    // The connection was opened untraced, so wait for its close line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("connection closed.") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let trace: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('<') || l.starts_with('>'))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        trace,
        [
            "OK",
            "get a",
            "sending key a",
            "END",
            "quit",
            "connection closed."
        ]
    );
}
