//! Table-driven request parsing tests. Expected errors and their resynchronisation (bytes
//! consumed, data swallowed) were taken from memcached 1.6.18's observed behaviour.

use protocol::{
    parse_request, ArithKind, ErrorKind, Keys, Limits, LruCrawlerCommand, MetaMode, Request,
    RetrievalKind, SlabsCommand, StorageKind,
};

#[derive(Debug)]
enum Want {
    Req(Request<'static>),
    Incomplete,
    /// kind, consumed, swallow, noreply, close
    Fail(ErrorKind, usize, usize, bool, bool),
}
use Want::*;

fn k(s: &'static str) -> &'static [u8] {
    s.as_bytes()
}

fn set(
    kind: StorageKind,
    key: &'static str,
    flags: u32,
    exptime: i64,
    data: &'static str,
    cas: u64,
    noreply: bool,
) -> Want {
    Req(Request::Storage {
        kind,
        key: k(key),
        flags,
        exptime,
        data: k(data),
        cas,
        noreply,
    })
}

fn get(kind: RetrievalKind, exptime: Option<i64>, keys: &'static str) -> Want {
    Req(Request::Retrieval {
        kind,
        exptime,
        keys: Keys::from_raw(k(keys)),
    })
}

fn err(kind: ErrorKind, consumed: usize) -> Want {
    Fail(kind, consumed, 0, false, false)
}

fn check(input: &[u8], want: &Want) {
    let limits = Limits::default();
    let got = parse_request(input, &limits);
    match (want, got) {
        (Req(w), Ok(Some((r, n)))) => {
            assert_eq!(&r, w, "input {:?}", String::from_utf8_lossy(input));
            assert_eq!(
                n,
                input.len(),
                "consumed, input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        (Incomplete, Ok(None)) => {}
        (Fail(kind, consumed, swallow, noreply, close), Err(e)) => {
            assert_eq!(
                (e.kind, e.consumed, e.swallow, e.noreply, e.close),
                (*kind, *consumed, *swallow, *noreply, *close),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        (w, g) => panic!(
            "input {:?}: want {w:?}, got {g:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

#[test]
fn storage_commands() {
    use StorageKind::*;
    let key250 = "a".repeat(250);
    let key251 = "a".repeat(251);
    let cases: Vec<(Vec<u8>, Want)> = vec![
        (
            b"set k 0 0 1\r\na\r\n".to_vec(),
            set(Set, "k", 0, 0, "a", 0, false),
        ),
        (
            b"set k 5 100 3 noreply\r\nabc\r\n".to_vec(),
            set(Set, "k", 5, 100, "abc", 0, true),
        ),
        (
            b"set k 0 0 1 garbage\r\na\r\n".to_vec(),
            set(Set, "k", 0, 0, "a", 0, false),
        ),
        (
            b"add k 1 -1 0\r\n\r\n".to_vec(),
            set(Add, "k", 1, -1, "", 0, false),
        ),
        (
            b"replace k 0 0 1\na\r\n".to_vec(),
            set(Replace, "k", 0, 0, "a", 0, false),
        ),
        (
            b"append k 0 0 1\r\na\r\n".to_vec(),
            set(Append, "k", 0, 0, "a", 0, false),
        ),
        (
            b"prepend k 0 0 1\r\na\r\n".to_vec(),
            set(Prepend, "k", 0, 0, "a", 0, false),
        ),
        (
            b"cas k 0 0 1 42\r\na\r\n".to_vec(),
            set(Cas, "k", 0, 0, "a", 42, false),
        ),
        (
            b"cas k 0 0 1 42 noreply\r\na\r\n".to_vec(),
            set(Cas, "k", 0, 0, "a", 42, true),
        ),
        (
            b"set k 4294967295 0 1\r\na\r\n".to_vec(),
            set(Set, "k", u32::MAX, 0, "a", 0, false),
        ),
        (
            b"set k 0 0 +1\r\na\r\n".to_vec(),
            set(Set, "k", 0, 0, "a", 0, false),
        ),
        (
            b"set k 0 0 2\r\na\r\r\n".to_vec(),
            set(Set, "k", 0, 0, "a\r", 0, false),
        ),
        (
            format!("set {key250} 0 0 1\r\na\r\n").into_bytes(),
            Req(Request::Storage {
                kind: Set,
                key: Box::leak(key250.clone().into_boxed_str()).as_bytes(),
                flags: 0,
                exptime: 0,
                data: b"a",
                cas: 0,
                noreply: false,
            }),
        ),
        // incomplete: header or data not all there
        (b"set k 0 0 5\r\nab".to_vec(), Incomplete),
        (b"set k 0 0 5\r\nabcde\r".to_vec(), Incomplete),
        (b"set k 0 0".to_vec(), Incomplete),
        // wrong token counts -> ERROR, nothing swallowed
        (b"set k 0 0\r\n".to_vec(), err(ErrorKind::Error, 11)),
        (
            b"set k 0 0 1 noreply extra\r\n".to_vec(),
            err(ErrorKind::Error, 27),
        ),
        (b"cas k 0 0 1\r\n".to_vec(), err(ErrorKind::Error, 13)),
        // bad numbers -> CLIENT_ERROR bad command line format, data not swallowed
        (
            b"set k 0 0 abc\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 15),
        ),
        (
            b"set k 0 0 -1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 14),
        ),
        (
            b"set k 0 0 99999999999999999999\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 32),
        ),
        (
            b"set k abc 0 1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 15),
        ),
        (
            b"set k -1 0 1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 14),
        ),
        (
            b"set k 4294967296 0 1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 22),
        ),
        (
            b"set k 0 abc 1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 15),
        ),
        (
            b"set k 0 0x1 1\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 15),
        ),
        (
            b"cas k 0 0 1 abc\r\n".to_vec(),
            err(ErrorKind::BadCommandLineFormat, 17),
        ),
        (
            b"set k 0 0 abc noreply\r\n".to_vec(),
            Fail(ErrorKind::BadCommandLineFormat, 23, 0, true, false),
        ),
        (
            format!("set {key251} 0 0 1\r\n").into_bytes(),
            err(ErrorKind::BadCommandLineFormat, 263),
        ),
        (
            // memcached accepts control characters in keys (it splits on spaces only).
            b"set k\x01 0 0 1\r\na\r\n".to_vec(),
            set(Set, "k\u{1}", 0, 0, "a", 0, false),
        ),
        (
            // ... but a NUL ends its C-string line: `set k` lacks arguments (then `a` is
            // another unknown command).
            b"set k\x00 0 0 1\r\na\r\n".to_vec(),
            err(ErrorKind::Error, 14),
        ),
        // too large: SERVER_ERROR and the data block is swallowed
        (
            b"set k 0 0 2000000\r\n".to_vec(),
            Fail(ErrorKind::TooLarge, 19, 2_000_002, false, false),
        ),
        (
            b"set k 0 0 2000000 noreply\r\n".to_vec(),
            Fail(ErrorKind::TooLarge, 27, 2_000_002, true, false),
        ),
        // bad data chunk: the declared length is consumed, the rest is parsed again
        (
            b"set k 0 0 1\r\nabc\r\n".to_vec(),
            err(ErrorKind::BadDataChunk, 16),
        ),
        (
            b"set k 0 0 1 noreply\r\nabc\r\n".to_vec(),
            Fail(ErrorKind::BadDataChunk, 24, 0, true, false),
        ),
        (
            b"set k 0 0 1\r\na\n\n".to_vec(),
            err(ErrorKind::BadDataChunk, 16),
        ),
    ];
    for (input, want) in &cases {
        check(input, want);
    }
}

#[test]
fn retrieval_commands() {
    use RetrievalKind::*;
    let key251 = "a".repeat(251);
    let cases: Vec<(Vec<u8>, Want)> = vec![
        (b"get k\r\n".to_vec(), get(Get, None, "k")),
        (b"get k\n".to_vec(), get(Get, None, "k")),
        (b"get a b  c \r\n".to_vec(), get(Get, None, "a b c")),
        (b"  get k\r\n".to_vec(), get(Get, None, "k")),
        (b"gets a b\r\n".to_vec(), get(Gets, None, "a b")),
        (b"gat 10 a b\r\n".to_vec(), get(Gat, Some(10), "a b")),
        (b"gats -1 a\r\n".to_vec(), get(Gats, Some(-1), "a")),
        (b"gat 10\r\n".to_vec(), get(Gat, Some(10), "")),
        (
            b"get __mcrouter__.route(get,foo)\r\n".to_vec(),
            get(Get, None, "__mcrouter__.route(get,foo)"),
        ),
        (b"get / HTTP/1.1\r\n".to_vec(), get(Get, None, "/ HTTP/1.1")),
        (b"get\r\n".to_vec(), err(ErrorKind::Error, 5)),
        (b"get \r\n".to_vec(), err(ErrorKind::Error, 6)),
        (b"gat\r\n".to_vec(), err(ErrorKind::Error, 5)),
        (
            b"gat abc k\r\n".to_vec(),
            err(ErrorKind::InvalidExptime, 11),
        ),
        (
            format!("get {key251}\r\n").into_bytes(),
            err(ErrorKind::BadCommandLineFormat, 257),
        ),
        (
            format!("get a {key251}\r\n").into_bytes(),
            err(ErrorKind::BadCommandLineFormat, 259),
        ),
        (b"get k\r\r\n".to_vec(), get(Get, None, "k\r")),
        (
            b"get \x10\x10key\r\n".to_vec(),
            get(Get, None, "\u{10}\u{10}key"),
        ),
        (b"get k".to_vec(), Incomplete),
    ];
    for (input, want) in &cases {
        check(input, want);
    }
}

#[test]
fn other_commands() {
    let cases: Vec<(&[u8], Want)> = vec![
        (
            b"delete k\r\n",
            Req(Request::Delete {
                key: b"k",
                noreply: false,
            }),
        ),
        (
            b"delete k 0\r\n",
            Req(Request::Delete {
                key: b"k",
                noreply: false,
            }),
        ),
        (
            b"delete k noreply\r\n",
            Req(Request::Delete {
                key: b"k",
                noreply: true,
            }),
        ),
        (
            b"delete k 0 noreply\r\n",
            Req(Request::Delete {
                key: b"k",
                noreply: true,
            }),
        ),
        (b"delete k 5\r\n", err(ErrorKind::BadDeleteFormat, 12)),
        (b"delete k 0 noreply x\r\n", err(ErrorKind::Error, 22)),
        (b"delete\r\n", err(ErrorKind::Error, 8)),
        (
            b"incr k 5\r\n",
            Req(Request::Arith {
                kind: ArithKind::Incr,
                key: b"k",
                delta: 5,
                noreply: false,
            }),
        ),
        (
            b"decr k 18446744073709551615 noreply\r\n",
            Req(Request::Arith {
                kind: ArithKind::Decr,
                key: b"k",
                delta: u64::MAX,
                noreply: true,
            }),
        ),
        (b"incr k abc\r\n", err(ErrorKind::InvalidDelta, 12)),
        (b"incr k -1\r\n", err(ErrorKind::InvalidDelta, 11)),
        (
            b"incr k 18446744073709551616\r\n",
            err(ErrorKind::InvalidDelta, 29),
        ),
        (
            b"incr k abc noreply\r\n",
            Fail(ErrorKind::InvalidDelta, 20, 0, true, false),
        ),
        (b"incr k\r\n", err(ErrorKind::Error, 8)),
        (
            b"touch k 10\r\n",
            Req(Request::Touch {
                key: b"k",
                exptime: 10,
                noreply: false,
            }),
        ),
        (b"touch k abc\r\n", err(ErrorKind::InvalidExptime, 13)),
        // memcached's safe_strtol: a 64-bit value cut to 32 bits (99999999999 mod 2^32).
        (
            b"touch k 99999999999\r\n",
            Req(Request::Touch {
                key: b"k",
                exptime: 1215752191,
                noreply: false,
            }),
        ),
        (
            b"touch k 99999999999999999999\r\n",
            err(ErrorKind::InvalidExptime, 30),
        ),
        (
            b"flush_all\r\n",
            Req(Request::FlushAll {
                delay: None,
                noreply: false,
            }),
        ),
        (
            b"flush_all 0\r\n",
            Req(Request::FlushAll {
                delay: Some(0),
                noreply: false,
            }),
        ),
        (
            b"flush_all 10 noreply\r\n",
            Req(Request::FlushAll {
                delay: Some(10),
                noreply: true,
            }),
        ),
        (
            b"flush_all noreply\r\n",
            Req(Request::FlushAll {
                delay: None,
                noreply: true,
            }),
        ),
        (
            b"flush_all -1\r\n",
            Req(Request::FlushAll {
                delay: Some(-1),
                noreply: false,
            }),
        ),
        (b"flush_all abc\r\n", err(ErrorKind::InvalidFlushDelay, 15)),
        (b"flush_all 1 2 3\r\n", err(ErrorKind::Error, 17)),
        (b"version\r\n", Req(Request::Version)),
        (b"version x\r\n", Req(Request::Version)),
        (b"quit\r\n", Req(Request::Quit)),
        (
            b"verbosity 1\r\n",
            Req(Request::Verbosity {
                level: 1,
                noreply: false,
            }),
        ),
        (
            b"verbosity 1 noreply\r\n",
            Req(Request::Verbosity {
                level: 1,
                noreply: true,
            }),
        ),
        (b"verbosity\r\n", err(ErrorKind::Error, 11)),
        (
            b"verbosity abc\r\n",
            err(ErrorKind::BadCommandLineFormat, 15),
        ),
        (b"verbosity 1 2 3\r\n", err(ErrorKind::Error, 17)),
        (
            b"shutdown\r\n",
            Req(Request::Shutdown {
                graceful: false,
                bad_mode: false,
            }),
        ),
        (
            b"shutdown graceful\r\n",
            Req(Request::Shutdown {
                graceful: true,
                bad_mode: false,
            }),
        ),
        (
            b"shutdown now\r\n",
            Req(Request::Shutdown {
                graceful: false,
                bad_mode: true,
            }),
        ),
        (
            b"shutdown graceful now\r\n",
            Req(Request::Shutdown {
                graceful: false,
                bad_mode: true,
            }),
        ),
        (
            b"cache_memlimit 100\r\n",
            Req(Request::CacheMemlimit {
                megabytes: 100,
                noreply: false,
            }),
        ),
        (b"cache_memlimit abc\r\n", err(ErrorKind::Error, 20)),
        (b"cache_memlimit\r\n", err(ErrorKind::Error, 16)),
        (b"stats\r\n", Req(Request::Stats { args: b"" })),
        (b"stats slabs\r\n", Req(Request::Stats { args: b"slabs" })),
        (
            b"stats detail dump \r\n",
            Req(Request::Stats {
                args: b"detail dump",
            }),
        ),
        (
            b"slabs reassign 1 2\r\n",
            Req(Request::Slabs(SlabsCommand::Reassign { src: 1, dst: 2 })),
        ),
        (
            b"slabs reassign -1 2\r\n",
            Req(Request::Slabs(SlabsCommand::Reassign { src: -1, dst: 2 })),
        ),
        (
            b"slabs automove 2\r\n",
            Req(Request::Slabs(SlabsCommand::Automove(2))),
        ),
        (b"slabs automove 3\r\n", err(ErrorKind::Error, 18)),
        (
            b"slabs automove x\r\n",
            err(ErrorKind::BadCommandLineFormat, 18),
        ),
        // A NUL byte ends the line, as memcached's C-string tokenizer does.
        (b"get a\0b c\r\n", get(RetrievalKind::Get, None, " a")),
        (b"slabs foo\r\n", err(ErrorKind::Error, 11)),
        (
            b"lru_crawler crawl all\r\n",
            Req(Request::LruCrawler(LruCrawlerCommand::Crawl(b"all"))),
        ),
        (
            b"lru_crawler enable\r\n",
            Req(Request::LruCrawler(LruCrawlerCommand::Enable)),
        ),
        (
            b"lru_crawler sleep 100\r\n",
            Req(Request::LruCrawler(LruCrawlerCommand::Sleep(100))),
        ),
        (b"lru_crawler foo\r\n", err(ErrorKind::Error, 17)),
        (b"lease-get k\r\n", Req(Request::LeaseGet { key: b"k" })),
        (b"lease-get\r\n", err(ErrorKind::Error, 11)),
        (
            b"lease-set k 123 1 0 2\r\nhi\r\n",
            Req(Request::LeaseSet {
                key: b"k",
                token: 123,
                flags: 1,
                exptime: 0,
                data: b"hi",
                noreply: false,
            }),
        ),
        (
            b"lease-set k 123 1 0 2 noreply\r\nhi\r\n",
            Req(Request::LeaseSet {
                key: b"k",
                token: 123,
                flags: 1,
                exptime: 0,
                data: b"hi",
                noreply: true,
            }),
        ),
        (
            b"lease-set k x 1 0 2\r\n",
            err(ErrorKind::BadCommandLineFormat, 21),
        ),
        (b"\r\n", err(ErrorKind::Error, 2)),
        (b"\n", err(ErrorKind::Error, 1)),
        (b"bogus\r\n", err(ErrorKind::Error, 7)),
        (b"GET k\r\n", err(ErrorKind::Error, 7)),
        (
            b"GET / HTTP/1.1\r\n",
            Fail(ErrorKind::Http, 16, 0, false, true),
        ),
        (
            b"me k\r\n",
            Req(Request::MetaDebug {
                key: b"k",
                base64: false,
            }),
        ),
        (
            b"me Zm9v b\r\n",
            Req(Request::MetaDebug {
                key: b"Zm9v",
                base64: true,
            }),
        ),
        (b"me\r\n", err(ErrorKind::BadCommandLineFormat, 4)),
        (b"mn\r\n", Req(Request::MetaNoop)),
        (b"mn x\r\n", Req(Request::MetaNoop)),
    ];
    for (input, want) in &cases {
        check(input, want);
    }
}

#[test]
fn meta_commands() {
    let limits = Limits::default();
    fn ok(input: &[u8]) -> Request<'_> {
        match parse_request(input, &Limits::default()) {
            Ok(Some((r, n))) => {
                assert_eq!(n, input.len());
                r
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
    match ok(b"mg k v f t c s k h l O123 q\r\n") {
        Request::MetaGet { key, flags } => {
            assert_eq!(key, b"k");
            assert!(flags.has(b'v') && flags.has(b'q') && !flags.has(b'u'));
            assert_eq!(flags.opaque, Some(&b"123"[..]));
            let order: Vec<u8> = flags.iter().map(|(c, _)| c).collect();
            assert_eq!(order, b"vftcskhlOq");
        }
        r => panic!("{r:?}"),
    }
    match ok(b"ms k 2 T0 F5 c MA I\r\nhi\r\n") {
        Request::MetaSet { key, flags, data } => {
            assert_eq!((key, data), (&b"k"[..], &b"hi"[..]));
            assert_eq!(
                (flags.ttl, flags.client_flags, flags.mode),
                (Some(0), Some(5), Some(MetaMode::Append))
            );
            assert!(flags.has(b'I') && flags.has(b'c'));
        }
        r => panic!("{r:?}"),
    }
    match ok(b"ma k N0 J13 D5 MD v\r\n") {
        Request::MetaArithmetic { flags, .. } => {
            assert_eq!(
                (flags.vivify, flags.initial, flags.delta, flags.mode),
                (Some(0), Some(13), Some(5), Some(MetaMode::Decr))
            );
        }
        r => panic!("{r:?}"),
    }
    match ok(b"md Zm9v b I T30 q\r\n") {
        Request::MetaDelete { key, flags } => {
            assert_eq!(key, b"Zm9v");
            assert!(flags.base64_key() && flags.has(b'I') && flags.quiet());
            assert_eq!(flags.ttl, Some(30));
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(ok(b"mg k\r\n"), Request::MetaGet { .. }));
    // Flags that mean nothing for the command are ignored (memcached 1.6.18).
    assert!(matches!(
        ok(b"md k v f t c\r\n"),
        Request::MetaDelete { .. }
    ));
    assert!(matches!(ok(b"mg k vx C1\r\n"), Request::MetaGet { .. }));
    // mg/ma notice a long opaque only while answering (after the fetch or the increment).
    match ok(b"mg k Oabcdefghijabcdefghijabcdefghijab\r\n") {
        Request::MetaGet { flags, .. } => assert!(flags.opaque_too_long),
        r => panic!("{r:?}"),
    }

    let key251 = "a".repeat(251);
    let flags17 = "b c f h k l q s t u v O1 T1 N1 R1 E1 x".to_string();
    let flags16 = "b c C1 F1 I k O1 q s T1 MS N1 E1 S1 x y".to_string();
    let errs: Vec<(Vec<u8>, ErrorKind, usize, usize)> = vec![
        (b"mg\r\n".to_vec(), ErrorKind::Error, 4, 0),
        (b"mg k v v\r\n".to_vec(), ErrorKind::DuplicateFlag, 10, 0),
        (b"mg k zz\r\n".to_vec(), ErrorKind::InvalidFlag, 9, 0),
        // md and ms refuse a long opaque up front (mg and ma after the work: see below).
        (
            b"md k Oabcdefghijabcdefghijabcdefghijab\r\n".to_vec(),
            ErrorKind::OpaqueTooLong,
            40,
            0,
        ),
        (b"mg k S1\r\n".to_vec(), ErrorKind::InvalidFlag, 9, 0),
        (b"mg k Dx\r\n".to_vec(), ErrorKind::InvalidDeltaValue, 9, 0),
        (b"mg k Tabc v\r\n".to_vec(), ErrorKind::BadToken, 13, 0),
        (b"mg !!! b v\r\n".to_vec(), ErrorKind::KeyDecode, 12, 0),
        (
            format!("mg {key251} v\r\n").into_bytes(),
            ErrorKind::BadCommandLineFormat,
            258,
            0,
        ),
        // 1.6.18 accepts 19 tokens; the 20th is "too long", checked before flag validity.
        (
            format!("mg k {flags17}\r\n").into_bytes(),
            ErrorKind::KeyDecode,
            0,
            0,
        ),
        (
            format!("mg k {flags17} y\r\n").into_bytes(),
            ErrorKind::TooManyTokens,
            0,
            0,
        ),
        (
            format!("ms k 1 {flags16}\r\n").into_bytes(),
            ErrorKind::InvalidFlag,
            0,
            3,
        ),
        (
            format!("ms k 1 {flags16} z\r\n").into_bytes(),
            ErrorKind::TooManyFlags,
            0,
            0,
        ),
        (
            format!("md k {flags17} y\r\n").into_bytes(),
            ErrorKind::TooManyFlags,
            0,
            0,
        ),
        (
            b"md k T1 T1\r\n".to_vec(),
            ErrorKind::InvalidOrDuplicateFlag,
            12,
            0,
        ),
        (
            b"md k Tx\r\n".to_vec(),
            ErrorKind::InvalidOrDuplicateFlag,
            9,
            0,
        ),
        (
            b"ma k Dx\r\n".to_vec(),
            ErrorKind::InvalidOrDuplicateFlag,
            9,
            0,
        ),
        (
            b"ma k b\r\n".to_vec(),
            ErrorKind::InvalidOrDuplicateFlag,
            8,
            0,
        ),
        // ms: flag errors swallow the data block; a bad length does not
        (
            b"ms k 2 Z\r\nhi\r\n".to_vec(),
            ErrorKind::InvalidFlag,
            10,
            4,
        ),
        (
            b"ms k 2 MX\r\nhi\r\n".to_vec(),
            ErrorKind::InvalidSetMode,
            11,
            4,
        ),
        (
            b"ms k 2 T1 T2\r\nhi\r\n".to_vec(),
            ErrorKind::DuplicateFlag,
            14,
            4,
        ),
        (
            b"ms k 2 Cabc\r\nhi\r\n".to_vec(),
            ErrorKind::BadToken,
            13,
            4,
        ),
        (b"ms k 2 b\r\nhi\r\n".to_vec(), ErrorKind::KeyDecode, 10, 4),
        (
            b"ms k\r\nhi\r\n".to_vec(),
            ErrorKind::BadCommandLineFormat,
            6,
            0,
        ),
        (
            b"ms k abc\r\nhi\r\n".to_vec(),
            ErrorKind::BadCommandLineFormat,
            10,
            0,
        ),
        (
            b"ms k 2000000 T0 q\r\n".to_vec(),
            ErrorKind::TooLarge,
            19,
            2_000_002,
        ),
        (b"ma k MZ\r\n".to_vec(), ErrorKind::InvalidArithMode, 9, 0),
        (b"ma k Mi\r\n".to_vec(), ErrorKind::InvalidArithMode, 9, 0),
        (
            b"md k zz\r\n".to_vec(),
            ErrorKind::InvalidOrDuplicateFlag,
            9,
            0,
        ),
        (b"ms\r\n".to_vec(), ErrorKind::Error, 4, 0),
        (
            b"ms k 2 S2\r\nhi\r\n".to_vec(),
            ErrorKind::InvalidFlag,
            11,
            4,
        ),
        (
            b"ms k 2 Ma\r\nhi\r\n".to_vec(),
            ErrorKind::InvalidSetMode,
            11,
            4,
        ),
        (
            b"ms k 2 M\r\nhi\r\n".to_vec(),
            ErrorKind::BadModeLength,
            10,
            4,
        ),
    ];
    for (input, kind, consumed, swallow) in &errs {
        match parse_request(input, &limits) {
            Err(e) => {
                assert_eq!(e.kind, *kind, "{:?}", String::from_utf8_lossy(input));
                if *consumed != 0 {
                    assert_eq!(
                        e.consumed,
                        *consumed,
                        "{:?}",
                        String::from_utf8_lossy(input)
                    );
                }
                assert_eq!(e.swallow, *swallow, "{:?}", String::from_utf8_lossy(input));
                assert!(!e.noreply && !e.close);
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
}

#[test]
fn line_length_limits() {
    let limits = Limits::default();
    // A non-get line over 2048 bytes with no newline closes the connection.
    let junk = vec![b'x'; 2049];
    let e = parse_request(&junk, &limits).unwrap_err();
    assert_eq!((e.kind, e.close), (ErrorKind::LineTooLong, true));
    assert_eq!(e.reply_line(), None, "memcached closes without a reply");
    // Only get/gets may grow past 2048 bytes without a newline (memcached 1.6.18).
    let mut gat = b"gat 10".to_vec();
    gat.extend(b" k".repeat(1100));
    assert_eq!(
        parse_request(&gat, &limits).unwrap_err().kind,
        ErrorKind::LineTooLong
    );
    // ... but 2048 bytes may still become a valid line.
    assert_eq!(parse_request(&junk[..2048], &limits), Ok(None));
    // A long multi-get keeps reading.
    let mut g = b"get ".to_vec();
    for i in 0..1000 {
        g.extend_from_slice(format!("key:{i} ").as_bytes());
    }
    assert!(g.len() > 2048);
    assert_eq!(parse_request(&g, &limits), Ok(None));
    g.extend_from_slice(b"\r\n");
    match parse_request(&g, &limits) {
        Ok(Some((Request::Retrieval { keys, .. }, n))) => {
            assert_eq!(n, g.len());
            assert_eq!(keys.count(), 1000);
            assert_eq!(keys.iter().nth(999), Some(&b"key:999"[..]));
        }
        other => panic!("{other:?}"),
    }
    // A complete line is executed whatever its length, as when it arrives whole in
    // memcached's 16 KiB read buffer ...
    let mut spaced = b"set k 0 0 1".to_vec();
    spaced.extend(std::iter::repeat_n(b' ', 3000));
    spaced.extend_from_slice(b"\r\na\r\n");
    match parse_request(&spaced, &limits) {
        Ok(Some((Request::Storage { key, data, .. }, n))) => {
            assert_eq!((key, data, n), (&b"k"[..], &b"a"[..], spaced.len()));
        }
        other => panic!("{other:?}"),
    }
    let mut long = b"touch ".to_vec();
    long.extend(std::iter::repeat_n(b'k', 3000));
    long.extend_from_slice(b" 1\r\n");
    let e = parse_request(&long, &limits).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadCommandLineFormat, "a 3000-byte key");
    // ... but one that could not arrive whole there closes the connection silently.
    let mut huge = b"touch k 1".to_vec();
    huge.extend(std::iter::repeat_n(b' ', Limits::MAX_WHOLE_LINE));
    huge.extend_from_slice(b"\r\n");
    let e = parse_request(&huge, &limits).unwrap_err();
    assert_eq!(
        (e.kind, e.close, e.consumed, e.reply_line()),
        (ErrorKind::LineTooLong, true, huge.len(), None)
    );
    // Value size limit is configurable.
    let small = Limits::with_max_value_size(10);
    let e = parse_request(b"set k 0 0 11\r\n", &small).unwrap_err();
    assert_eq!((e.kind, e.swallow), (ErrorKind::TooLarge, 13));
    assert!(parse_request(b"set k 0 0 10\r\n0123456789\r\n", &small)
        .unwrap()
        .is_some());
}

/// Parse a whole pipelined stream; errors are recorded with how they resynchronise.
fn parse_all(buf: &[u8]) -> (Vec<String>, usize) {
    let limits = Limits::default();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        match parse_request(&buf[pos..], &limits) {
            Ok(Some((r, n))) => {
                out.push(format!("{r:?}"));
                pos += n;
            }
            Ok(None) => break,
            Err(e) => {
                out.push(format!("{:?}", e.kind));
                if pos + e.consumed + e.swallow > buf.len() || e.close {
                    break;
                }
                pos += e.consumed + e.swallow;
            }
        }
    }
    (out, pos)
}

const PIPELINE: &[u8] = b"get a\r\nset k 1 2 3\r\nabc\r\nget a b c d e f g h i j\r\nbogus\r\n\
ms k 2 T5 c\r\nhi\r\nmg k v c f O1\r\nset k 0 0 1\r\nabc\r\nincr n 5\nms k 2 Z\r\nhi\r\n\
delete k noreply\r\ncas k 0 0 1 7\r\nx\r\nlease-set k 9 0 0 1\r\nz\r\nmn\r\n";

#[test]
fn strict_keys_refuse_control_characters() {
    let strict = Limits {
        strict_keys: true,
        ..Limits::default()
    };
    for input in [
        &b"get k\x01\r\n"[..],
        b"set k\x10 0 0 1\r\na\r\n",
        b"get a\x7f\r\n",
    ] {
        let e = parse_request(input, &strict).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadCommandLineFormat, "{input:?}");
        assert!(
            parse_request(input, &Limits::default()).unwrap().is_some(),
            "{input:?}"
        );
    }
}

#[test]
fn pipelined_mixed_commands() {
    let (reqs, used) = parse_all(PIPELINE);
    assert_eq!(used, PIPELINE.len());
    let kinds: Vec<&str> = reqs
        .iter()
        .map(|s| s.split([' ', '(', '{']).next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Retrieval",
            "Storage",
            "Retrieval",
            "Error",
            "MetaSet",
            "MetaGet",
            "BadDataChunk",
            "Error",
            "Arith",
            "InvalidFlag",
            "Delete",
            "Storage",
            "LeaseSet",
            "MetaNoop"
        ]
    );
}

#[test]
fn split_reads_at_every_byte_boundary() {
    // Feeding any prefix gives a prefix of the full parse, then "incomplete"; never a
    // different request and never consumption beyond what was given.
    let (full, _) = parse_all(PIPELINE);
    for cut in 0..=PIPELINE.len() {
        let (part, used) = parse_all(&PIPELINE[..cut]);
        assert!(used <= cut);
        assert!(part.len() <= full.len(), "cut {cut}");
        assert_eq!(part[..], full[..part.len()], "cut {cut}");
    }
    // Two-step: the first `cut` bytes then the rest, with a carry-over buffer like a server.
    for cut in 0..=PIPELINE.len() {
        let mut buf = PIPELINE[..cut].to_vec();
        let mut seen = Vec::new();
        let limits = Limits::default();
        let mut swallow = 0usize;
        for chunk in [&PIPELINE[cut..], &b""[..]] {
            buf.extend_from_slice(chunk);
            loop {
                if swallow > 0 {
                    let n = swallow.min(buf.len());
                    buf.drain(..n);
                    swallow -= n;
                    if swallow > 0 {
                        break;
                    }
                }
                match parse_request(&buf, &limits) {
                    Ok(Some((r, n))) => {
                        seen.push(format!("{r:?}"));
                        buf.drain(..n);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        seen.push(format!("{:?}", e.kind));
                        buf.drain(..e.consumed);
                        swallow = e.swallow;
                    }
                }
            }
        }
        assert_eq!(seen, full, "cut {cut}");
    }
}

#[test]
fn error_reply_strings_are_memcacheds() {
    let replies = [
        (ErrorKind::Error, "ERROR"),
        (
            ErrorKind::BadCommandLineFormat,
            "CLIENT_ERROR bad command line format",
        ),
        (ErrorKind::BadDataChunk, "CLIENT_ERROR bad data chunk"),
        (
            ErrorKind::TooLarge,
            "SERVER_ERROR object too large for cache",
        ),
        (
            ErrorKind::InvalidExptime,
            "CLIENT_ERROR invalid exptime argument",
        ),
        (
            ErrorKind::InvalidDelta,
            "CLIENT_ERROR invalid numeric delta argument",
        ),
        (
            ErrorKind::BadDeleteFormat,
            "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
        ),
        (
            ErrorKind::TooManyTokens,
            "CLIENT_ERROR options flags are too long",
        ),
        (
            ErrorKind::OpaqueTooLong,
            "CLIENT_ERROR opaque token too long",
        ),
    ];
    for (k, s) in replies {
        assert_eq!(k.reply(), s);
        assert_eq!(k.to_string(), s);
    }
    let e = parse_request(b"set k 0 0 x noreply\r\n", &Limits::default()).unwrap_err();
    assert_eq!(e.reply_line(), None);
    let e = parse_request(b"bogus\r\n", &Limits::default()).unwrap_err();
    assert_eq!(e.reply_line().as_deref(), Some("ERROR\r\n"));
}
