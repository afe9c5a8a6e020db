//! `watch`: the log stream is memcached 1.6.18's, line for line, for the same session
//! (`ts`, `cfd`, `rport` normalised; `gid` compared as increments from the first line).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use e2e_tests::differential::{
    assert_no_differences, differing_cases, exchange, start_pair, stat_value,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A watching connection.
struct Watch {
    s: TcpStream,
    pending: Vec<u8>,
}

impl Watch {
    /// `watch <args>`, expecting `OK`.
    fn open(addr: SocketAddr, args: &str) -> Watch {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        s.write_all(format!("watch {args}\r\n").trim_end().as_bytes())
            .unwrap();
        s.write_all(b"\r\n").unwrap();
        let mut w = Watch {
            s,
            pending: Vec::new(),
        };
        let ok = w.line().expect("watch reply");
        assert_eq!(ok, "OK\r", "watch {args} on {addr}");
        w
    }

    /// The next line (without `\n`), waiting up to [`TIMEOUT`].
    fn line(&mut self) -> Option<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.pending.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l[..i]).into_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 65536];
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("watch read: {e}"),
            }
        }
    }

    /// Lines up to and including the first one `last` accepts.
    fn lines_until(&mut self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self
                .line()
                .unwrap_or_else(|| panic!("timed out after {out:#?}"));
            let done = last(&l);
            out.push(l);
            if done {
                return out;
            }
        }
    }
}

/// `ts=`, `cfd=`, `rport=` replaced; `gid=` as the increment from the first line's (which
/// must be consecutive in each server's stream).
fn normalise(lines: &[String]) -> Vec<String> {
    let mut first: Option<u64> = None;
    lines
        .iter()
        .map(|l| {
            l.split(' ')
                .map(|f| match f.split_once('=') {
                    Some(("ts", _)) => "ts=T".to_string(),
                    Some(("cfd", _)) => "cfd=C".to_string(),
                    Some(("rport", _)) => "rport=P".to_string(),
                    Some(("gid", g)) => {
                        let g: u64 = g.parse().expect("numeric gid");
                        let base = *first.get_or_insert(g);
                        format!("gid=+{}", g - base)
                    }
                    _ => f.to_string(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The session for fetchers and mutations: every command that looks items up or stores
/// them, hits and misses, meta commands, keys that need encoding. Ends with the sentinel
/// `set __end__`.
fn item_session() -> Vec<u8> {
    b"get foo\r\nset foo 5 0 3\r\nbar\r\nget foo\r\ngets foo bar\r\nadd foo 0 0 1\r\nx\r\n\
add nk 0 100 1\r\nx\r\nreplace foo 0 0 2\r\nxy\r\nreplace nope 0 0 2\r\nxy\r\n\
append foo 0 0 2\r\nzz\r\nprepend foo 0 0 2\r\naa\r\nappend nope 0 0 2\r\nzz\r\n\
cas foo 0 0 1 999\r\nq\r\ncas nope 0 0 1 1\r\nq\r\ntouch foo 100\r\ntouch nope 100\r\n\
gat 200 foo nope\r\ngats 200 foo\r\ndelete foo\r\ndelete foo\r\nset n 0 0 1\r\n5\r\n\
incr n 3\r\ndecr n 1\r\nincr nope 1\r\nset s 0 0 1\r\nx\r\nincr s 1\r\n\
delete nope noreply\r\nms mk 2 T100\r\nhi\r\nmg mk v\r\nmg mk v T30\r\nmg nope v\r\n\
ms mk 2 MA\r\nzz\r\nms mk 2 ME\r\nzz\r\nms mk 2 MR\r\nzz\r\nms nk2 2 MR\r\nzz\r\n\
ms mk 2 C1\r\nzz\r\nms mk 2 I\r\nzz\r\nms Zm9vYg== 2 b\r\nhi\r\nmg Zm9vYg== b v\r\n\
ma cnt N0 J5\r\nma cnt\r\nma nope\r\nmd mk\r\nmd mk\r\nmd cnt q\r\nmg viv N30\r\n\
mg viv N30\r\nme foo\r\nset k%x 0 0 1\r\nx\r\nset a=b&c 0 0 1\r\nx\r\nms AAEC/w== 1 b\r\nx\r\n\
set k~-._* 0 0 1\r\nx\r\nset __end__ 0 0 1\r\nx\r\n"
        .to_vec()
}

fn session_lines(addr: SocketAddr, args: &str, session: &[u8], last: &str) -> Vec<String> {
    let mut w = Watch::open(addr, args);
    exchange(addr, session, false);
    normalise(&w.lines_until(|l| l.contains(last)))
}

fn compare_item_session(test: &str, args: &str, last: &str) {
    let Some((mc, ours)) = start_pair(test, &[]) else {
        return;
    };
    let want = session_lines(mc.addr(), args, &item_session(), last);
    let got = session_lines(ours.addr(), args, &item_session(), last);
    assert!(want.len() > 10, "{want:#?}");
    assert_eq!(got, want, "watch {args}");
}

#[test]
fn fetchers_match_memcached() {
    // Plain `watch` is `watch fetchers`.
    compare_item_session(
        "fetchers_match_memcached",
        "",
        "key=__end__ status=not_found",
    );
}

#[test]
fn mutations_match_memcached() {
    compare_item_session(
        "mutations_match_memcached",
        "mutations",
        "key=__end__ status=stored",
    );
}

#[test]
fn fetchers_and_mutations_interleave_as_memcached() {
    compare_item_session(
        "fetchers_and_mutations_interleave_as_memcached",
        "fetchers mutations",
        "key=__end__ status=stored",
    );
}

#[test]
fn too_large_store_is_logged_as_memcached() {
    let Some((mc, ours)) = start_pair("too_large_store_is_logged_as_memcached", &[]) else {
        return;
    };
    let mut session = b"set big 0 0 2000000\r\n".to_vec();
    session.extend(std::iter::repeat_n(b'x', 2_000_000));
    session.extend_from_slice(b"\r\nset __end__ 0 0 1\r\nx\r\n");
    let run = |addr| {
        // memcached 1.6.18 shifts the arguments of this line: the fd lands in clsid.
        session_lines(
            addr,
            "fetchers mutations",
            &session,
            "key=__end__ status=stored",
        )
        .into_iter()
        .map(|l| {
            l.split(' ')
                .map(|f| {
                    if f.starts_with("clsid=") && l.contains("too_large") {
                        "clsid=FD"
                    } else {
                        f
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
    };
    let want = run(mc.addr());
    assert!(want[0].contains("status=too_large cmd=set"), "{want:#?}");
    assert_eq!(run(ours.addr()), want);
}

#[test]
fn evictions_have_memcacheds_shape() {
    let Some((mc, ours)) = start_pair("evictions_have_memcacheds_shape", &["-m", "2"]) else {
        return;
    };
    let shapes = |addr: SocketAddr| {
        let mut w = Watch::open(addr, "evictions");
        let mut session = Vec::new();
        for i in 0..3000 {
            let ttl = if i % 2 == 0 { 1000 } else { 0 };
            session.extend_from_slice(format!("set key{i} 0 {ttl} 1000\r\n").as_bytes());
            session.extend(std::iter::repeat_n(b'x', 1000));
            session.extend_from_slice(b"\r\n");
        }
        exchange(addr, &session, false);
        let mut shapes = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let l = w.line().expect("eviction line");
            let n = normalise(&[l]).remove(0);
            let shape: Vec<String> = n
                .split(' ')
                .map(|f| match f.split_once('=') {
                    Some(("gid", _)) => "gid=G".into(),
                    Some(("key", k)) => {
                        assert!(k.starts_with("key"), "{n}");
                        "key=K".into()
                    }
                    Some(("ttl", t)) if t != "-1" => {
                        let t: i64 = t.parse().unwrap();
                        assert!((990..=1000).contains(&t), "{n}");
                        "ttl=T".into()
                    }
                    Some(("la", l)) => {
                        assert!(l.parse::<i64>().unwrap() <= 2, "{n}");
                        "la=L".into()
                    }
                    _ => f.to_string(),
                })
                .collect();
            shapes.insert(shape.join(" "));
        }
        shapes
    };
    let want = shapes(mc.addr());
    assert_eq!(want.len(), 2, "{want:#?}");
    assert_eq!(shapes(ours.addr()), want);
}

#[test]
fn connevents_and_a_watcher_disconnecting() {
    let Some((mc, ours)) = start_pair("connevents_and_a_watcher_disconnecting", &[]) else {
        return;
    };
    let run = |addr: SocketAddr| {
        let mut w = Watch::open(addr, "connevents");
        let mut lines = Vec::new();
        // Another watcher comes and goes: cleaned up, its close logged.
        let w2 = Watch::open(addr, "fetchers");
        lines.extend(w.lines_until(|l| l.contains("type=conn_new")));
        drop(w2);
        lines.extend(w.lines_until(|l| l.contains("type=conn_close")));
        // A client that quits, one that just goes away.
        exchange(addr, b"get a\r\nquit\r\n", true);
        lines.extend(w.lines_until(|l| l.contains("type=conn_close")));
        drop(TcpStream::connect(addr).unwrap());
        lines.extend(w.lines_until(|l| l.contains("type=conn_close")));
        // The watcher count is back to one.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let stats = exchange(addr, b"stats\r\n", false);
            if stat_value(&stats, "log_watchers").as_deref() == Some("1") {
                break;
            }
            assert!(Instant::now() < deadline, "log_watchers stays above 1");
        }
        let out = normalise(&lines);
        // Each stats connection logged its own pair; those come after what we compare.
        out
    };
    let want = run(mc.addr());
    assert_eq!(want.len(), 6, "{want:#?}");
    assert!(want[1].contains("reason=error"), "{want:#?}");
    assert_eq!(run(ours.addr()), want);
}

#[test]
fn unknown_types_answer_error_and_the_connection_stays_normal() {
    let Some((mc, ours)) = start_pair("unknown_types_answer_error", &[]) else {
        return;
    };
    let cases = [
        ("bogus", b"watch bogus\r\nget a\r\n".to_vec(), false),
        (
            "deletions",
            b"watch deletions\r\nversion\r\n".to_vec(),
            false,
        ),
        ("case", b"watch FETCHERS\r\nget a\r\n".to_vec(), false),
        (
            "mixed",
            b"watch fetchers bogus\r\nget a\r\n".to_vec(),
            false,
        ),
        (
            "noreply",
            b"watch fetchers noreply\r\nget a\r\n".to_vec(),
            false,
        ),
    ];
    let diffs = differing_cases(mc.addr(), ours.addr(), cases);
    // `version` differs by design; compare those replies up to it.
    let diffs: Vec<_> = diffs
        .into_iter()
        .filter(|d| !d.contains("\"deletions\""))
        .collect();
    assert_no_differences(&diffs);
    let r = exchange(ours.addr(), b"watch deletions\r\nget a\r\n", false);
    assert_eq!(r, b"ERROR\r\nEND\r\nMN\r\n");
}

#[test]
fn watch_types_memcached_accepts() {
    let Some((mc, ours)) = start_pair("watch_types_memcached_accepts", &[]) else {
        return;
    };
    for args in [
        "",
        "fetchers mutations",
        "evictions connevents",
        "sysevents rawcmds",
    ] {
        Watch::open(mc.addr(), args);
        Watch::open(ours.addr(), args);
    }
    let stats = exchange(ours.addr(), b"stats\r\n", false);
    for s in [
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
    ] {
        assert!(stat_value(&stats, s).is_some(), "{s} missing");
    }
}
