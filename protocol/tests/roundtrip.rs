//! Property tests: every request and reply type survives encode -> parse unchanged, and
//! parsing never consumes more than it was given.

use proptest::prelude::*;
use protocol::{
    parse_request, parse_response, ArithKind, Keys, Limits, LruCrawlerCommand, MetaCode, Request,
    Response, RetrievalKind, SlabsCommand, StorageKind,
};

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

fn key() -> impl Strategy<Value = &'static [u8]> {
    // Any byte but NUL (it ends memcached's C-string line), space and newline, as memcached
    // accepts (other control bytes included).
    prop::collection::vec(
        prop_oneof![0x01u8..0x0a, 0x0bu8..0x20, 0x21u8..=0xff],
        1..=250,
    )
    .prop_map(leak)
}

fn data() -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(any::<u8>(), 0..300).prop_map(leak)
}

fn exptime() -> impl Strategy<Value = i64> {
    (i32::MIN as i64)..=(i32::MAX as i64)
}

fn keys() -> impl Strategy<Value = Keys<'static>> {
    prop::collection::vec(key(), 1..12).prop_map(|ks| Keys::from_raw(leak(ks.join(&b' '))))
}

/// Meta flag lines built from each command's accepted flags (distinct letters).
fn meta_flags(allowed: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::subsequence(allowed, 0..allowed.len().min(15))
        .prop_shuffle()
        .prop_map(|v| v.join(" "))
}

fn request() -> impl Strategy<Value = Request<'static>> {
    let storage_kind = prop_oneof![
        Just(StorageKind::Set),
        Just(StorageKind::Add),
        Just(StorageKind::Replace),
        Just(StorageKind::Append),
        Just(StorageKind::Prepend),
        Just(StorageKind::Cas)
    ];
    let retrieval_kind = prop_oneof![
        Just(RetrievalKind::Get),
        Just(RetrievalKind::Gets),
        Just(RetrievalKind::Gat),
        Just(RetrievalKind::Gats)
    ];
    let mg = &[
        "v", "f", "t", "c", "s", "k", "h", "l", "q", "u", "O123abc", "T30", "N5", "R-1", "E77",
    ][..];
    let ms = &[
        "c",
        "C12",
        "E5",
        "F4294967295",
        "I",
        "k",
        "Oxy",
        "q",
        "s",
        "T-1",
        "MA",
        "N10",
        "S3",
    ][..];
    let md = &["C9", "E1", "I", "k", "O1", "q", "T20", "x"][..];
    let ma = &[
        "C1",
        "E2",
        "N0",
        "J13",
        "D18446744073709551615",
        "T5",
        "M-",
        "O9",
        "q",
        "t",
        "c",
        "v",
        "k",
    ][..];
    let meta = prop_oneof![
        (key(), meta_flags(mg))
            .prop_map(|(k, f)| format!("mg {} {f}\r\n", String::from_utf8_lossy(k))),
        (key(), meta_flags(ms), data()).prop_map(|(k, f, d)| {
            let mut s =
                format!("ms {} {} {f}\r\n", String::from_utf8_lossy(k), d.len()).into_bytes();
            s.extend_from_slice(d);
            s.extend_from_slice(b"\r\n");
            String::from_utf8_lossy(&s).into_owned()
        }),
        (key(), meta_flags(md))
            .prop_map(|(k, f)| format!("md {} {f}\r\n", String::from_utf8_lossy(k))),
        (key(), meta_flags(ma))
            .prop_map(|(k, f)| format!("ma {} {f}\r\n", String::from_utf8_lossy(k))),
        (key(), meta_flags(mg)).prop_map(|(_, f)| format!("mg Zm9vYmFy b {f}\r\n")),
    ]
    .prop_filter_map("valid meta line", |line| {
        let line = leak(line.into_bytes());
        match parse_request(line, &Limits::default()) {
            Ok(Some((r, _))) => Some(r),
            _ => None,
        }
    });
    prop_oneof![
        (
            storage_kind,
            key(),
            any::<u32>(),
            exptime(),
            data(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(kind, key, flags, exptime, data, cas, noreply)| Request::Storage {
                    kind,
                    key,
                    flags,
                    exptime,
                    data,
                    cas: if kind == StorageKind::Cas { cas } else { 0 },
                    noreply
                }
            ),
        (retrieval_kind, exptime(), keys()).prop_map(|(kind, e, keys)| Request::Retrieval {
            kind,
            exptime: matches!(kind, RetrievalKind::Gat | RetrievalKind::Gats).then_some(e),
            keys
        }),
        (key(), any::<bool>()).prop_map(|(key, noreply)| Request::Delete { key, noreply }),
        (key(), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
            |(key, delta, incr, noreply)| Request::Arith {
                kind: if incr {
                    ArithKind::Incr
                } else {
                    ArithKind::Decr
                },
                key,
                delta,
                noreply
            }
        ),
        (key(), exptime(), any::<bool>()).prop_map(|(key, exptime, noreply)| Request::Touch {
            key,
            exptime,
            noreply
        }),
        (prop::option::of(exptime()), any::<bool>())
            .prop_map(|(delay, noreply)| Request::FlushAll { delay, noreply }),
        Just(Request::Version),
        Just(Request::Quit),
        Just(Request::MetaNoop),
        (any::<u64>(), any::<bool>())
            .prop_map(|(level, noreply)| Request::Verbosity { level, noreply }),
        (any::<bool>(), any::<bool>()).prop_map(|(graceful, bad_mode)| Request::Shutdown {
            graceful: graceful && !bad_mode,
            bad_mode
        }),
        (any::<u64>(), any::<bool>())
            .prop_map(|(megabytes, noreply)| Request::CacheMemlimit { megabytes, noreply }),
        prop::sample::select(vec![
            &b""[..],
            b"slabs",
            b"items",
            b"settings",
            b"detail dump",
            b"sizes",
            b"conns",
            b"reset"
        ])
        .prop_map(|args| Request::Stats { args }),
        (-1i64..64, 1i64..64)
            .prop_map(|(src, dst)| Request::Slabs(SlabsCommand::Reassign { src, dst })),
        (0u64..=2).prop_map(|n| Request::Slabs(SlabsCommand::Automove(n))),
        prop_oneof![
            Just(LruCrawlerCommand::Enable),
            Just(LruCrawlerCommand::Disable),
            Just(LruCrawlerCommand::Crawl(b"all")),
            Just(LruCrawlerCommand::Crawl(b"1,2,3")),
            any::<u64>().prop_map(LruCrawlerCommand::Sleep),
            any::<u64>().prop_map(LruCrawlerCommand::ToCrawl),
            Just(LruCrawlerCommand::Metadump(b"all")),
            Just(LruCrawlerCommand::Mgdump(b"hash")),
        ]
        .prop_map(Request::LruCrawler),
        key().prop_map(|key| Request::MetaDebug { key, base64: false }),
        Just(Request::MetaDebug {
            key: b"Zm9v",
            base64: true
        }),
        key().prop_map(|key| Request::LeaseGet { key }),
        (
            key(),
            any::<u64>(),
            any::<u32>(),
            exptime(),
            data(),
            any::<bool>()
        )
            .prop_map(
                |(key, token, flags, exptime, data, noreply)| Request::LeaseSet {
                    key,
                    token,
                    flags,
                    exptime,
                    data,
                    noreply
                }
            ),
        meta,
    ]
}

fn text() -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(prop_oneof![0x20u8..0x7f], 0..60).prop_map(leak)
}

fn word() -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(0x21u8..0x7f, 1..30).prop_map(leak)
}

fn response() -> impl Strategy<Value = Response<'static>> {
    let meta_code = prop_oneof![
        Just(MetaCode::Hd),
        Just(MetaCode::En),
        Just(MetaCode::Ns),
        Just(MetaCode::Ex),
        Just(MetaCode::Nf),
        Just(MetaCode::Mn),
        Just(MetaCode::Me)
    ];
    let meta_flags = || prop::collection::vec(word(), 0..6).prop_map(|w| leak(w.join(&b' ')));
    prop_oneof![
        (key(), any::<u32>(), prop::option::of(any::<u64>()), data()).prop_map(
            |(key, flags, cas, data)| Response::Value {
                key,
                flags,
                cas,
                data
            }
        ),
        (key(), any::<u64>(), any::<u32>(), data()).prop_map(|(key, token, flags, data)| {
            Response::LeaseValue {
                key,
                token,
                flags,
                data,
            }
        }),
        Just(Response::End),
        Just(Response::Stored),
        Just(Response::NotStored),
        Just(Response::StaleStored),
        Just(Response::Exists),
        Just(Response::NotFound),
        Just(Response::Deleted),
        Just(Response::Touched),
        Just(Response::Ok),
        Just(Response::Reset),
        any::<u64>().prop_map(Response::Number),
        text().prop_map(Response::Version),
        (word(), text()).prop_map(|(name, value)| Response::Stat { name, value }),
        (meta_flags(), data()).prop_map(|(flags, d)| Response::Meta {
            code: MetaCode::Va,
            flags,
            data: Some(d)
        }),
        (meta_code, meta_flags()).prop_map(|(code, flags)| Response::Meta {
            code,
            flags,
            data: None
        }),
        prop_oneof![
            Just(&b""[..]),
            Just(&b" Too many open connections"[..]),
            Just(&b": shutdown not enabled"[..])
        ]
        .prop_map(Response::Error),
        text().prop_map(Response::ClientError),
        text().prop_map(Response::ServerError),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn request_round_trip(req in request()) {
        let mut wire = Vec::new();
        req.encode(&mut wire);
        let (parsed, n) = parse_request(&wire, &Limits::default())
            .unwrap_or_else(|e| panic!("{e:?} for {:?}", String::from_utf8_lossy(&wire)))
            .expect("complete");
        prop_assert_eq!(n, wire.len());
        prop_assert_eq!(parsed, req);
        // Every strict prefix is incomplete (or, for a line cut short, still a valid prefix).
        for cut in [0, 1, wire.len() / 2, wire.len() - 1] {
            if let Ok(Some((_, n))) = parse_request(&wire[..cut], &Limits::default()) {
                prop_assert!(n <= cut);
            }
        }
    }

    #[test]
    fn response_round_trip(resp in response()) {
        let mut wire = Vec::new();
        resp.encode(&mut wire);
        let (parsed, n) = parse_response(&wire)
            .unwrap_or_else(|e| panic!("{e:?} for {:?}", String::from_utf8_lossy(&wire)))
            .expect("complete");
        prop_assert_eq!(n, wire.len());
        prop_assert_eq!(parsed, resp);
        prop_assert_eq!(parse_response(&wire[..wire.len() - 1]).ok().flatten(), None);
    }

    #[test]
    fn arbitrary_bytes_never_overconsume(buf in prop::collection::vec(any::<u8>(), 0..600)) {
        match parse_request(&buf, &Limits::default()) {
            Ok(Some((_, n))) => prop_assert!(n <= buf.len()),
            Err(e) => prop_assert!(e.consumed <= buf.len()),
            Ok(None) => {}
        }
        if let Ok(Some((_, n))) = parse_response(&buf) {
            prop_assert!(n <= buf.len());
        }
    }
}

#[test]
fn response_stream_of_a_multiget() {
    let wire = b"VALUE a 0 1 5\r\nx\r\nVALUE b 3 2\r\nyz\r\nEND\r\nVA 2 c5 kfoo\r\nhi\r\nEN\r\nHD c9\r\n12\r\nSTAT pid 1\r\nERROR Too many open connections\r\n";
    let mut pos = 0;
    let mut seen = Vec::new();
    while let Some((r, n)) = parse_response(&wire[pos..]).unwrap() {
        seen.push(r);
        pos += n;
    }
    assert_eq!(pos, wire.len());
    assert_eq!(
        seen[0],
        Response::Value {
            key: b"a",
            flags: 0,
            cas: Some(5),
            data: b"x"
        }
    );
    assert_eq!(
        seen[1],
        Response::Value {
            key: b"b",
            flags: 3,
            cas: None,
            data: b"yz"
        }
    );
    assert_eq!(seen[2], Response::End);
    assert_eq!(seen[3].meta_flag(b'c'), Some(&b"5"[..]));
    assert_eq!(seen[3].meta_flag(b'k'), Some(&b"foo"[..]));
    assert_eq!(
        seen[4],
        Response::Meta {
            code: MetaCode::En,
            flags: b"",
            data: None
        }
    );
    assert_eq!(seen[6], Response::Number(12));
    assert_eq!(
        seen[7],
        Response::Stat {
            name: b"pid",
            value: b"1"
        }
    );
    assert_eq!(seen[8], Response::Error(b" Too many open connections"));
    assert!(parse_response(b"VALUE a 0 1\r\nxy\r\n").is_err());
    assert!(parse_response(b"WHAT\r\n").is_err());
    assert_eq!(parse_response(b"VALUE a 0 10\r\nabc").unwrap(), None);
}
