//! Engine tests with the manual clock.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;

const MB: usize = 1024 * 1024;

fn engine(cfg: EngineConfig) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let e = Engine::new(cfg, clock.clone()).expect("valid config");
    (e, clock)
}

fn default_engine() -> (Engine, Arc<ManualClock>) {
    engine(EngineConfig::default())
}

fn set(e: &Engine, k: &str, v: &[u8]) -> StoreOutcome {
    e.store(&StoreRequest::new(StoreMode::Set, k.as_bytes(), v, 0, 0))
}

fn set_full(e: &Engine, k: &str, v: &[u8], flags: u32, exp: i64) -> StoreOutcome {
    e.store(&StoreRequest::new(
        StoreMode::Set,
        k.as_bytes(),
        v,
        flags,
        exp,
    ))
}

fn store(e: &Engine, mode: StoreMode, k: &str, v: &[u8]) -> StoreStatus {
    e.store(&StoreRequest::new(mode, k.as_bytes(), v, 0, 0))
        .status
}

fn get(e: &Engine, k: &str) -> Option<Vec<u8>> {
    e.get(k.as_bytes(), &GetOptions::get(), |it| {
        let mut v = Vec::new();
        it.copy_value_into(&mut v);
        v
    })
}

/// (value, flags, cas, ttl)
fn gets(e: &Engine, k: &str) -> Option<(Vec<u8>, u32, u64, i64)> {
    e.get(k.as_bytes(), &GetOptions::get(), |it| {
        let mut v = Vec::new();
        it.copy_value_into(&mut v);
        (v, it.flags(), it.cas(), it.ttl())
    })
}

#[derive(Debug, PartialEq)]
struct Meta {
    value: Vec<u8>,
    win: bool,
    stale: bool,
    token_sent: bool,
    ttl: i64,
    fetched: bool,
    last_access: u32,
}

fn mg(e: &Engine, k: &str, opts: GetOptions) -> Option<Meta> {
    e.get(k.as_bytes(), &opts, |it| Meta {
        value: {
            let mut v = Vec::new();
            it.copy_value_into(&mut v);
            v
        },
        win: it.win(),
        stale: it.stale(),
        token_sent: it.token_sent(),
        ttl: it.ttl(),
        fetched: it.fetched_before(),
        last_access: it.last_access(),
    })
}

fn arith(e: &Engine, k: &str, incr: bool, delta: u64) -> ArithOutcome {
    e.arith(&ArithRequest::new(k.as_bytes(), incr, delta))
}

fn arith_value(o: ArithOutcome) -> u64 {
    match o {
        ArithOutcome::Ok { value, .. } => value,
        other => panic!("expected Ok, got {other:?}"),
    }
}

// ------------------------------------------------------------------ basics

#[test]
fn engine_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

#[test]
fn class_ladder_and_header_size() {
    let (e, _) = default_engine();
    let sizes = e.class_sizes();
    assert_eq!(&sizes[..4], &[80, 104, 136, 176]);
    assert_eq!(*sizes.last().unwrap(), 512 * 1024);
    // 26-byte header + 10-byte key + 100-byte value fits the 136-byte class.
    let (e2, _) = engine(EngineConfig {
        cas_enabled: false,
        ..EngineConfig::default()
    });
    assert_eq!(e2.class_sizes()[0], 72, "-C shrinks the header by 8 bytes");
}

#[test]
fn config_validation() {
    let bad = EngineConfig {
        growth_factor: 1.0,
        ..EngineConfig::default()
    };
    assert!(matches!(bad.validate(), Err(ConfigError::GrowthFactor(_))));
    let bad = EngineConfig {
        memory_limit: 1000,
        ..EngineConfig::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(ConfigError::MemoryLimit { .. })
    ));
    assert!(EngineConfig::default().validate().is_ok());
}

#[test]
fn set_get_delete_roundtrip() {
    let (e, _) = default_engine();
    assert_eq!(get(&e, "a"), None);
    let o = set_full(&e, "a", b"hello", 42, 0);
    assert_eq!(o.status, StoreStatus::Stored);
    assert_eq!(o.ttl, -1);
    let (v, f, cas, ttl) = gets(&e, "a").unwrap();
    assert_eq!((v.as_slice(), f, cas, ttl), (&b"hello"[..], 42, o.cas, -1));
    assert_eq!(
        e.delete(b"a", &DeleteOptions::default()),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        e.delete(b"a", &DeleteOptions::default()),
        DeleteOutcome::NotFound
    );
    assert_eq!(get(&e, "a"), None);
    let st = e.stats();
    assert_eq!(st.curr_items, 0);
    assert_eq!(st.total_items, 1);
    assert_eq!(st.bytes, 0);
    // empty value
    set(&e, "empty", b"");
    assert_eq!(get(&e, "empty").unwrap(), b"");
}

// ------------------------------------------------------------------ exptime

#[test]
fn realtime_rules() {
    let now = 1000;
    let ps = 1_700_000_000;
    assert_eq!(realtime(0, now, ps), 0);
    assert_eq!(realtime(-1, now, ps), 1);
    assert_eq!(realtime(10, now, ps), 1010);
    assert_eq!(realtime(REALTIME_MAXDELTA, now, ps), 1000 + 2_592_000);
    // one more second is an absolute time, long before the process started
    assert_eq!(realtime(REALTIME_MAXDELTA + 1, now, ps), 1);
    assert_eq!(realtime(ps + 5000, now, ps), 5000);
    assert_eq!(realtime(ps - 5, now, ps), 1);
}

#[test]
fn exptime_semantics() {
    let (e, clock) = default_engine();
    set_full(&e, "never", b"v", 0, 0);
    assert_eq!(set_full(&e, "rel", b"v", 0, 10).ttl, 10);
    let abs = clock.unix_now() + 20;
    assert_eq!(set_full(&e, "abs", b"v", 0, abs).ttl, 20);
    set_full(&e, "neg", b"v", 0, -1);
    assert_eq!(get(&e, "neg"), None, "negative exptime = already expired");
    set_full(&e, "past", b"v", 0, clock.unix_now() - 10);
    assert_eq!(get(&e, "past"), None, "absolute time in the past");
    assert_eq!(
        set_full(&e, "30d", b"v", 0, REALTIME_MAXDELTA).ttl,
        REALTIME_MAXDELTA
    );
    set_full(&e, "30d+1", b"v", 0, REALTIME_MAXDELTA + 1);
    assert_eq!(
        get(&e, "30d+1"),
        None,
        "above 30 days is an absolute (past) time"
    );

    clock.advance(9);
    assert!(get(&e, "rel").is_some());
    assert_eq!(gets(&e, "rel").unwrap().3, 1);
    clock.advance(1);
    assert_eq!(get(&e, "rel"), None, "expires when exptime <= now");
    assert!(get(&e, "abs").is_some());
    clock.advance(10);
    assert_eq!(get(&e, "abs"), None);
    assert!(get(&e, "never").is_some());
    assert!(get(&e, "30d").is_some());
    let st = e.stats();
    // expired items are reclaimed on fetch or found at an LRU tail
    assert!(st.get_expired + st.reclaimed >= 5, "{st:?}");
}

// ------------------------------------------------------------------ flush

#[test]
fn flush_all_immediate() {
    let (e, clock) = default_engine();
    for i in 0..100 {
        set(&e, &format!("k{i}"), b"v");
    }
    e.flush_all(0);
    for i in 0..100 {
        assert_eq!(get(&e, &format!("k{i}")), None);
    }
    // set in the same second after the flush survives (CAS-based)
    set(&e, "after", b"v");
    assert!(get(&e, "after").is_some());
    clock.advance(5);
    assert!(get(&e, "after").is_some());
    assert!(e.stats().get_flushed >= 100);
}

#[test]
fn flush_all_delayed() {
    let (e, clock) = default_engine();
    set(&e, "old", b"v");
    e.flush_all(10);
    clock.advance(5);
    assert!(get(&e, "old").is_some(), "not yet flushed");
    set(&e, "mid", b"v");
    clock.advance(5);
    assert_eq!(get(&e, "old"), None, "flushed at the flush time");
    assert_eq!(get(&e, "mid"), None, "set before the flush time");
    clock.advance(1);
    set(&e, "new", b"v");
    clock.advance(100);
    assert!(
        get(&e, "new").is_some(),
        "set after the flush time survives"
    );
}

#[test]
fn flush_all_without_cas() {
    let (e, clock) = engine(EngineConfig {
        cas_enabled: false,
        ..EngineConfig::default()
    });
    set(&e, "old", b"v");
    e.flush_all(0);
    assert_eq!(get(&e, "old"), None);
    clock.advance(1);
    set(&e, "new", b"v");
    assert!(get(&e, "new").is_some());
}

#[test]
fn crawler_reclaims_expired_and_flushed() {
    let (e, clock) = default_engine();
    for i in 0..1000 {
        set_full(&e, &format!("e{i}"), b"v", 0, 5);
        set(&e, &format!("n{i}"), b"v");
    }
    clock.advance(10);
    let mut total = WorkReport::default();
    for _ in 0..100 {
        let r = e.crawler_step(1000);
        total.checked += r.checked;
        total.reclaimed += r.reclaimed;
    }
    assert_eq!(total.reclaimed, 1000);
    let st = e.stats();
    assert_eq!(st.curr_items, 1000);
    assert_eq!(st.crawler_reclaimed, 1000);
    assert!(st.crawler_items_checked >= 2000);
    e.flush_all(0);
    for _ in 0..100 {
        e.crawler_step(1000);
    }
    assert_eq!(e.stats().curr_items, 0);
}

// ------------------------------------------------------------------ modes

#[test]
fn add_replace_append_prepend() {
    let (e, clock) = default_engine();
    assert_eq!(
        store(&e, StoreMode::Replace, "k", b"x"),
        StoreStatus::NotStored
    );
    assert_eq!(
        store(&e, StoreMode::Append, "k", b"x"),
        StoreStatus::NotStored
    );
    assert_eq!(
        store(&e, StoreMode::Prepend, "k", b"x"),
        StoreStatus::NotStored
    );
    assert_eq!(store(&e, StoreMode::Add, "k", b"abc"), StoreStatus::Stored);
    assert_eq!(
        store(&e, StoreMode::Add, "k", b"zzz"),
        StoreStatus::NotStored
    );
    assert_eq!(get(&e, "k").unwrap(), b"abc");
    assert_eq!(
        store(&e, StoreMode::Replace, "k", b"def"),
        StoreStatus::Stored
    );
    assert_eq!(get(&e, "k").unwrap(), b"def");

    set_full(&e, "f", b"mid", 77, 100);
    let r = e.store(&StoreRequest::new(StoreMode::Append, b"f", b">>", 1, 0));
    assert_eq!(r.status, StoreStatus::Stored);
    let r2 = e.store(&StoreRequest::new(StoreMode::Prepend, b"f", b"<<", 2, 5));
    assert_eq!(r2.status, StoreStatus::Stored);
    assert_eq!(r2.ttl, 100, "append/prepend keep the exptime");
    let (v, flags, _, ttl) = gets(&e, "f").unwrap();
    assert_eq!(v, b"<<mid>>");
    assert_eq!(flags, 77, "append/prepend keep the flags");
    assert_eq!(ttl, 100);
    clock.advance(100);
    assert_eq!(get(&e, "f"), None);
}

#[test]
fn cas_semantics() {
    let (e, _) = default_engine();
    let a = set(&e, "a", b"1").cas;
    let b = set(&e, "b", b"1").cas;
    assert!(a != 0 && b > a, "CAS values are unique and increasing");
    let req = StoreRequest::new(StoreMode::Cas, b"a", b"2", 0, 0);
    assert_eq!(e.store(&req.with_cas(a + 1000)).status, StoreStatus::Exists);
    assert_eq!(e.store(&req.with_cas(0)).status, StoreStatus::Exists);
    let ok = e.store(&req.with_cas(a));
    assert_eq!(ok.status, StoreStatus::Stored);
    assert!(ok.cas > b);
    assert_eq!(gets(&e, "a").unwrap().2, ok.cas);
    let miss = StoreRequest::new(StoreMode::Cas, b"zz", b"2", 0, 0).with_cas(5);
    assert_eq!(e.store(&miss).status, StoreStatus::NotFound);
    // append with a mismatching CAS
    let ap = StoreRequest::new(StoreMode::Append, b"a", b"x", 0, 0).with_cas(1);
    assert_eq!(e.store(&ap).status, StoreStatus::Exists);
    let ap = StoreRequest::new(StoreMode::Append, b"a", b"x", 0, 0).with_cas(ok.cas);
    assert_eq!(e.store(&ap).status, StoreStatus::Stored);
    // explicit new CAS
    let ex = StoreRequest::new(StoreMode::Set, b"e", b"x", 0, 0).with_explicit_cas(Some(999_999));
    assert_eq!(e.store(&ex).cas, 999_999);
    assert_eq!(gets(&e, "e").unwrap().2, 999_999);
    let cls = e.class_stats();
    assert_eq!(cls.iter().map(|c| c.cas_hits).sum::<u64>(), 1);
    assert_eq!(cls.iter().map(|c| c.cas_badval).sum::<u64>(), 2);
}

#[test]
fn cas_disabled() {
    let (e, _) = engine(EngineConfig {
        cas_enabled: false,
        ..EngineConfig::default()
    });
    assert_eq!(set(&e, "a", b"1").cas, 0);
    assert_eq!(gets(&e, "a").unwrap().2, 0);
    match arith(&e, "a", true, 1) {
        ArithOutcome::Ok { cas, value, .. } => assert_eq!((cas, value), (0, 2)),
        o => panic!("{o:?}"),
    }
}

// ------------------------------------------------------------------ arith

#[test]
fn incr_decr() {
    let (e, _) = default_engine();
    assert_eq!(arith(&e, "n", true, 1), ArithOutcome::NotFound);
    set(&e, "n", b"10");
    assert_eq!(arith_value(arith(&e, "n", false, 1)), 9);
    assert_eq!(
        get(&e, "n").unwrap(),
        b"9 ",
        "shorter result padded in place"
    );
    assert_eq!(arith_value(arith(&e, "n", true, 5)), 14);
    assert_eq!(get(&e, "n").unwrap(), b"14");
    assert_eq!(arith_value(arith(&e, "n", true, 86)), 100);
    assert_eq!(get(&e, "n").unwrap(), b"100", "longer result reallocates");
    assert_eq!(
        arith_value(arith(&e, "n", false, 1000)),
        0,
        "decr floors at 0"
    );
    set(&e, "max", b"18446744073709551615");
    assert_eq!(
        arith_value(arith(&e, "max", true, 2)),
        1,
        "incr wraps at 2^64"
    );
    set(&e, "txt", b"abc");
    assert_eq!(arith(&e, "txt", true, 1), ArithOutcome::NonNumeric);
    set(&e, "empty", b"");
    assert_eq!(arith(&e, "empty", true, 1), ArithOutcome::NonNumeric);
    set(&e, "neg", b"-5");
    assert_eq!(arith(&e, "neg", true, 1), ArithOutcome::NonNumeric);
    set(&e, "big", b"99999999999999999999999");
    assert_eq!(arith(&e, "big", true, 1), ArithOutcome::NonNumeric);
    set(&e, "sp", b" 12");
    assert_eq!(arith_value(arith(&e, "sp", true, 1)), 13);
    set_full(&e, "keep", b"1", 9, 50);
    arith(&e, "keep", true, 1000);
    let (v, f, _, ttl) = gets(&e, "keep").unwrap();
    assert_eq!((v.as_slice(), f, ttl), (&b"1001"[..], 9, 50));
    // CAS changes on incr and is checked
    let c0 = gets(&e, "keep").unwrap().2;
    let mut req = ArithRequest::new(b"keep", true, 1);
    req.cas = Some(c0 + 1);
    assert_eq!(e.arith(&req), ArithOutcome::Exists);
    req.cas = Some(c0);
    match e.arith(&req) {
        ArithOutcome::Ok { cas, .. } => assert!(cas > c0),
        o => panic!("{o:?}"),
    }
    // ma N J autovivify
    let mut req = ArithRequest::new(b"viv", true, 5);
    req.vivify = Some((13, 0));
    assert_eq!(
        e.arith(&req),
        ArithOutcome::Ok {
            value: 13,
            cas: gets(&e, "viv").map(|g| g.2).unwrap_or(0),
            ttl: -1,
            ttl_before: -1,
            created: true
        }
    );
    assert_eq!(arith_value(e.arith(&req)), 18);
    let cls = e.class_stats();
    assert!(cls.iter().map(|c| c.incr_hits).sum::<u64>() >= 5);
    assert!(cls.iter().map(|c| c.decr_hits).sum::<u64>() >= 2);
}

#[test]
fn parse_like_strtoull() {
    use super::shard::parse_u64;
    assert_eq!(parse_u64(b"0"), Some(0));
    assert_eq!(parse_u64(b"9 "), Some(9));
    assert_eq!(parse_u64(b"+7"), Some(7));
    assert_eq!(parse_u64(b"12a"), None);
    assert_eq!(parse_u64(b""), None);
    assert_eq!(parse_u64(b"18446744073709551616"), None);
}

// ------------------------------------------------------------------ touch

#[test]
fn touch_and_gat() {
    let (e, clock) = default_engine();
    set(&e, "t", b"v");
    assert!(e.touch(b"t", 10));
    assert!(!e.touch(b"missing", 10));
    assert_eq!(gets(&e, "t").unwrap().3, 10);
    let ttl = e.get(b"t", &GetOptions::touch(100), |it| it.ttl()).unwrap();
    assert_eq!(ttl, 100);
    clock.advance(50);
    assert_eq!(gets(&e, "t").unwrap().3, 50);
    assert!(e.touch(b"t", 0));
    clock.advance(1000);
    assert!(get(&e, "t").is_some());
    // an item that exactly fills its chunk must be moved to grow its header
    let v = vec![b'x'; 100];
    set(&e, "key:123456", &v); // 26 + 10 + 100 = 136 = chunk size
    assert!(e.touch(b"key:123456", 30));
    let (got, _, _, ttl) = gets(&e, "key:123456").unwrap();
    assert_eq!((got, ttl), (v, 30));
    assert_eq!(e.class_stats().iter().map(|c| c.touch_hits).sum::<u64>(), 4);
    assert_eq!(e.stats().curr_items, 2);
}

// ------------------------------------------------------------------ meta

#[test]
fn meta_fetched_and_last_access() {
    let (e, clock) = default_engine();
    set(&e, "k", b"hi");
    let m = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(!m.fetched);
    clock.advance(3);
    let m = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(m.fetched);
    assert_eq!(m.last_access, 3);
    // `u` does not mark it fetched
    set(&e, "u", b"x");
    mg(
        &e,
        "u",
        GetOptions {
            no_bump: true,
            ..Default::default()
        },
    );
    assert!(!mg(&e, "u", GetOptions::default()).unwrap().fetched);
}

#[test]
fn meta_stale_and_win() {
    let (e, _) = default_engine();
    let c0 = set(&e, "k", b"hi").cas;
    let del = DeleteOptions {
        invalidate: true,
        new_exptime: Some(30),
        ..Default::default()
    };
    assert_eq!(e.delete(b"k", &del), DeleteOutcome::Deleted);
    let m1 = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(m1.stale && m1.win && !m1.token_sent);
    assert_eq!(m1.ttl, 30);
    assert_eq!(m1.value, b"hi");
    let m2 = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(m2.stale && !m2.win && m2.token_sent);
    let c1 = gets(&e, "k").unwrap().2;
    assert!(c1 > c0, "invalidate bumps the CAS");
    // ms with I and an older CAS: stored but still stale, keeps TTL and token
    let req = StoreRequest::new(StoreMode::Cas, b"k", b"zz", 0, 0)
        .with_cas(c0)
        .with_invalidate(true);
    assert_eq!(e.store(&req).status, StoreStatus::Stored);
    let m3 = mg(&e, "k", GetOptions::default()).unwrap();
    assert_eq!(m3.value, b"zz");
    assert!(m3.stale && m3.token_sent && !m3.win);
    assert_eq!(m3.ttl, 30);
    // without I an older CAS fails
    let req = StoreRequest::new(StoreMode::Cas, b"k", b"yy", 0, 0).with_cas(c0);
    assert_eq!(e.store(&req).status, StoreStatus::Exists);
    // a normal set clears everything
    set(&e, "k", b"fresh");
    let m4 = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(!m4.stale && !m4.win && !m4.token_sent);
    // ms I with a CAS of a stale item with no token sent: first fetch wins
    let c = gets(&e, "k").unwrap().2;
    let req = StoreRequest::new(StoreMode::Cas, b"k", b"q", 0, 0)
        .with_cas(c - 1)
        .with_invalidate(true);
    assert_eq!(e.store(&req).status, StoreStatus::Stored);
    let m5 = mg(&e, "k", GetOptions::default()).unwrap();
    assert!(m5.stale && m5.win);
    // delete with a CAS compare
    let bad = DeleteOptions {
        cas: Some(1),
        ..Default::default()
    };
    assert_eq!(e.delete(b"k", &bad), DeleteOutcome::Exists);
}

#[test]
fn meta_vivify_and_recache() {
    let (e, _) = default_engine();
    let viv = GetOptions {
        vivify: Some(30),
        ..Default::default()
    };
    let m1 = mg(&e, "v", viv).unwrap();
    assert!(m1.win && !m1.token_sent && m1.value.is_empty());
    assert_eq!(m1.ttl, 30);
    let m2 = mg(&e, "v", viv).unwrap();
    assert!(!m2.win && m2.token_sent);
    // replaced by a real value: token state cleared
    set_full(&e, "v", b"z", 0, 100);
    let rc = |t| GetOptions {
        recache: Some(t),
        ..Default::default()
    };
    let m3 = mg(&e, "v", rc(200)).unwrap();
    assert!(m3.win, "remaining TTL 100 < 200");
    let m4 = mg(&e, "v", rc(200)).unwrap();
    assert!(!m4.win && m4.token_sent);
    set_full(&e, "w", b"z", 0, 100);
    assert!(
        !mg(&e, "w", rc(50)).unwrap().win,
        "TTL above the recache threshold"
    );
    set_full(&e, "nottl", b"z", 0, 0);
    assert!(!mg(&e, "nottl", rc(50)).unwrap().win, "no TTL never wins");
    // append autovivify
    let req = StoreRequest::new(StoreMode::Append, b"av", b"x", 0, 0).with_vivify(Some(50));
    let o = e.store(&req);
    assert_eq!((o.status, o.ttl), (StoreStatus::Stored, 50));
    assert_eq!(e.store(&req).status, StoreStatus::Stored);
    assert_eq!(get(&e, "av").unwrap(), b"xx");
}

#[test]
fn already_expired_store_reports_its_own_cas() {
    let (e, _) = default_engine();
    for i in 0..50 {
        let o = set_full(&e, &format!("x{i}"), b"v", 0, -1);
        assert_eq!(o.status, StoreStatus::Stored);
        assert!(o.cas > 0);
        assert_eq!(o.ttl, 1 - 1000);
    }
    let o = set(&e, "y", b"v");
    assert_eq!(gets(&e, "y").unwrap().2, o.cas);
    let viv = GetOptions {
        vivify: Some(-1),
        ..Default::default()
    };
    assert!(mg(&e, "z", viv).unwrap().win);
    assert_eq!(get(&e, "z"), None);
    e.crawler_step(100_000);
    assert_eq!(e.stats().curr_items, 1);
}

#[test]
fn key_length_limit() {
    let (e, _) = default_engine();
    let k = "k".repeat(KEY_MAX_LENGTH);
    assert_eq!(set(&e, &k, b"v").status, StoreStatus::Stored);
    assert_eq!(get(&e, &k).unwrap(), b"v");
    let long = "k".repeat(KEY_MAX_LENGTH + 10);
    assert_eq!(set(&e, &long, b"v").status, StoreStatus::TooLarge);
    assert!(!e.contains(long.as_bytes()));
}

// ------------------------------------------------------------------ sizes

#[test]
fn too_large_items() {
    let (e, _) = default_engine();
    set(&e, "k", b"old");
    let big = vec![0u8; MB];
    assert_eq!(set(&e, "k", &big).status, StoreStatus::TooLarge);
    assert_eq!(get(&e, "k"), None, "a failed set removes the old value");
    set(&e, "k", b"old");
    assert_eq!(store(&e, StoreMode::Add, "k", &big), StoreStatus::TooLarge);
    assert_eq!(get(&e, "k").unwrap(), b"old");
    let fits = vec![7u8; e.max_value_len(1)];
    assert_eq!(set_full(&e, "k", &fits, 5, 100).status, StoreStatus::Stored);
    assert_eq!(get(&e, "k").unwrap(), fits);
    // memcached's count: 48-byte header, key + NUL, flags, value + CRLF, CAS.
    assert_eq!(fits.len(), MB - (48 + 1 + 1 + 4 + 2 + 8));
    let over = vec![7u8; fits.len() + 1];
    assert_eq!(
        set_full(&e, "k", &over, 5, 100).status,
        StoreStatus::TooLarge
    );
    // Without client flags the item is 4 bytes smaller.
    assert_eq!(set_full(&e, "k", &over, 0, 100).status, StoreStatus::Stored);
}

#[test]
fn chained_large_items() {
    let (e, _) = engine(EngineConfig {
        max_item_size: 2 * MB,
        memory_limit: 16 * MB,
        ..EngineConfig::default()
    });
    let v: Vec<u8> = (0..MB).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(set_full(&e, "big", &v, 5, 0).status, StoreStatus::Stored);
    let parts = e
        .get(b"big", &GetOptions::get(), |it| {
            assert!(it.value().is_none());
            assert_eq!(it.value_len(), MB);
            it.value_parts().count()
        })
        .unwrap();
    assert!(parts >= 3);
    assert_eq!(get(&e, "big").unwrap(), v);
    assert_eq!(gets(&e, "big").unwrap().1, 5);
    // append to a chained item
    assert_eq!(
        store(&e, StoreMode::Append, "big", b"tail"),
        StoreStatus::Stored
    );
    let mut w = v.clone();
    w.extend_from_slice(b"tail");
    assert_eq!(get(&e, "big").unwrap(), w);
    assert_eq!(arith(&e, "big", true, 1), ArithOutcome::NonNumeric);
    // many of them evict each other without exceeding the budget
    for i in 0..40 {
        assert_eq!(set(&e, &format!("b{i}"), &v).status, StoreStatus::Stored);
        assert!(e.memory_used() <= 16 * MB);
    }
    assert_eq!(get(&e, "b39").unwrap(), v);
    e.delete(b"b39", &DeleteOptions::default());
    let used: u64 = e.class_stats().iter().map(|c| c.used_chunks).sum();
    let items = e.stats().curr_items;
    assert!(used >= items * 3 && used <= items * 3 + 3);
}

// ------------------------------------------------------------------ LRU

fn small_cfg() -> EngineConfig {
    EngineConfig {
        memory_limit: MB,
        shards: 1,
        slab_automove: 0,
        ..EngineConfig::default()
    }
}

#[test]
fn lru_evicts_cold_tail_only_and_keeps_active() {
    let (e, clock) = engine(small_cfg());
    let v = vec![b'v'; 100];
    let perslab = 1024 * 1024 / 136;
    for i in 0..perslab {
        assert_eq!(
            set(&e, &format!("key:{i:06}"), &v).status,
            StoreStatus::Stored
        );
    }
    assert_eq!(e.stats().evictions, 0);
    // key 0 is fetched twice: ACTIVE while in COLD, moved to WARM by the maintainer
    clock.advance(1);
    assert!(get(&e, "key:000000").is_some());
    assert!(get(&e, "key:000000").is_some());
    e.lru_maintainer_tick();
    let before = e.class_stats()[0].clone();
    assert!(before.number_warm >= 1, "{before:?}");
    for i in perslab..perslab + 1000 {
        assert_eq!(
            set(&e, &format!("key:{i:06}"), &v).status,
            StoreStatus::Stored
        );
    }
    let st = e.stats();
    assert_eq!(st.evictions, 1000);
    assert!(get(&e, "key:000000").is_some(), "active item survived");
    for i in 1..1001 {
        assert_eq!(
            get(&e, &format!("key:{i:06}")),
            None,
            "oldest evicted first ({i})"
        );
    }
    for i in 1001..perslab + 1000 {
        assert!(get(&e, &format!("key:{i:06}")).is_some(), "{i}");
    }
    let c = &e.class_stats()[0];
    assert_eq!(c.evicted, 1000);
    assert!(c.moves_to_cold > 0 && c.moves_to_warm >= 1);
    assert!(c.number_hot > 0 && c.number_cold > 0);
}

#[test]
fn hot_limit_and_warm_rules() {
    let (e, clock) = engine(small_cfg());
    let v = vec![b'v'; 100];
    for i in 0..2000 {
        set(&e, &format!("key:{i:06}"), &v);
    }
    let c = e.class_stats()[0].clone();
    // HOT stays near 20% of the class bytes
    assert!(c.number_hot <= 2000 * 21 / 100 + 1, "{c:?}");
    // hits in HOT: fetched, then active -> flows to WARM on the maintainer tick
    let k = "key:001999";
    get(&e, k);
    get(&e, k);
    clock.advance(2);
    e.lru_maintainer_tick();
    let c2 = e.class_stats()[0].clone();
    assert!(c2.number_warm >= 1, "{c2:?}");
    assert!(c2.hits_to_hot + c2.hits_to_cold + c2.hits_to_warm >= 2);
    // repeated hits on a WARM item are absorbed by the ACTIVE bit (no re-link
    // per hit); the maintainer re-links it at most once per tick.
    let m0 = c2.moves_within_lru;
    for _ in 0..100 {
        get(&e, k);
    }
    e.lru_maintainer_tick();
    let c3 = e.class_stats()[0].clone();
    assert!(c3.moves_within_lru - m0 <= 1, "{c3:?}");
}

// ------------------------------------------------------------------ memory

#[test]
fn out_of_memory_without_eviction() {
    let (e, _) = engine(EngineConfig {
        evict: false,
        ..small_cfg()
    });
    let v = vec![b'v'; 100];
    let mut stored = 0;
    let mut oom = 0;
    for i in 0..10_000 {
        match set(&e, &format!("key:{i:06}"), &v).status {
            StoreStatus::Stored => stored += 1,
            StoreStatus::OutOfMemory => oom += 1,
            s => panic!("{s:?}"),
        }
    }
    assert_eq!(stored, 1024 * 1024 / 136);
    assert_eq!(oom, 10_000 - stored);
    assert_eq!(e.stats().evictions, 0);
    assert!(get(&e, "key:000000").is_some());
    assert!(e.stats().outofmemory > 0);
}

#[test]
fn memory_bound_with_random_sizes() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 8 * MB,
        shards: 4,
        ..EngineConfig::default()
    });
    let mut x: u64 = 12345;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let buf = vec![b'z'; 300_000];
    for i in 0..20_000 {
        let r = rnd();
        let len = match r % 10 {
            0 => (r >> 8) as usize % 300_000,
            1..=3 => (r >> 8) as usize % 5000,
            _ => (r >> 8) as usize % 500,
        };
        let st = set(&e, &format!("k{}", rnd() % 5000), &buf[..len]).status;
        assert_eq!(st, StoreStatus::Stored, "op {i} len {len}");
        assert!(e.memory_used() <= 8 * MB);
        if i % 1000 == 0 {
            e.automove_tick();
            e.lru_maintainer_tick();
        }
    }
    let st = e.stats();
    assert!(st.total_malloced <= 8 * MB as u64);
    assert!(st.hash_bytes < MB as u64);
}

#[test]
fn memory_limit_shrink() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 16 * MB,
        ..EngineConfig::default()
    });
    let v = vec![b'v'; 1000];
    for i in 0..40_000 {
        set(&e, &format!("k{i}"), &v);
    }
    assert_eq!(e.memory_used(), 16 * MB);
    e.set_memory_limit(8 * MB);
    e.automove_tick();
    assert!(e.memory_used() <= 8 * MB);
    for i in 0..40_000 {
        set(&e, &format!("k{i}"), &v);
        assert!(e.memory_used() <= 8 * MB);
    }
    assert_eq!(e.stats().limit_maxbytes, 8 * MB as u64);
}

#[test]
fn sharding_pitfall_no_spurious_oom() {
    // Tiny budget, several shards, many classes: shards must borrow pages.
    let (e, _) = engine(EngineConfig {
        memory_limit: 16 * MB,
        shards: 2,
        slab_automove: 0,
        ..EngineConfig::default()
    });
    let buf = vec![b'q'; 200_000];
    for round in 0..3 {
        for (j, len) in [10usize, 100, 1000, 5000, 20_000, 100_000, 200_000]
            .iter()
            .enumerate()
        {
            for i in 0..200 {
                let st = set(&e, &format!("r{round}c{j}k{i}"), &buf[..*len]).status;
                assert_eq!(st, StoreStatus::Stored, "class len {len}");
            }
        }
    }
    assert!(e.memory_used() <= 16 * MB);
    assert_eq!(e.stats().outofmemory, 0);
}

// ------------------------------------------------------------------ pages

#[test]
fn slabs_reassign_outcomes() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 8 * MB,
        shards: 1,
        slab_automove: 0,
        ..EngineConfig::default()
    });
    let v = vec![b'v'; 100];
    for i in 0..100_000 {
        set(&e, &format!("key:{i:06}"), &v);
    }
    let n = e.class_sizes().len() as i32;
    assert_eq!(e.slabs_reassign(3, 3), ReassignOutcome::Same);
    assert_eq!(e.slabs_reassign(0, 5), ReassignOutcome::BadClass);
    assert_eq!(e.slabs_reassign(3, n + 1), ReassignOutcome::BadClass);
    assert_eq!(e.slabs_reassign(-2, 5), ReassignOutcome::BadClass);
    assert_eq!(e.slabs_reassign(5, 3), ReassignOutcome::NoSpare);
    let before = e
        .class_stats()
        .iter()
        .find(|c| c.id == 3)
        .unwrap()
        .total_pages;
    assert_eq!(before, 8);
    assert_eq!(e.slabs_reassign(3, 10), ReassignOutcome::Ok);
    assert_eq!(e.slabs_reassign(-1, 10), ReassignOutcome::Ok);
    let rows = e.class_stats();
    assert_eq!(rows.iter().find(|c| c.id == 3).unwrap().total_pages, 6);
    assert_eq!(rows.iter().find(|c| c.id == 10).unwrap().total_pages, 2);
    let st = e.stats();
    assert_eq!(st.slabs_moved, 2);
    assert!(st.slab_reassign_evictions_nomem > 0);
    assert!(e.memory_used() <= 8 * MB);
    // the remaining items are intact
    let live = (0..100_000)
        .filter(|i| get(&e, &format!("key:{i:06}")).is_some())
        .count() as u64;
    assert_eq!(live, e.stats().curr_items);
    let (d, _) = engine(EngineConfig {
        slab_reassign: false,
        ..EngineConfig::default()
    });
    assert_eq!(d.slabs_reassign(1, 2), ReassignOutcome::Disabled);
}

#[test]
fn reassign_rescues_items_into_free_chunks() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 8 * MB,
        shards: 1,
        slab_automove: 0,
        ..EngineConfig::default()
    });
    let v = vec![b'v'; 100];
    for i in 0..30_000 {
        set(&e, &format!("key:{i:06}"), &v);
    }
    // free most of the items so a page's items fit elsewhere
    for i in 0..30_000 {
        if i % 4 != 0 {
            e.delete(format!("key:{i:06}").as_bytes(), &DeleteOptions::default());
        }
    }
    let items = e.stats().curr_items;
    assert_eq!(e.slabs_reassign(3, 10), ReassignOutcome::Ok);
    let st = e.stats();
    assert!(st.slab_reassign_rescues > 0);
    assert_eq!(st.curr_items, items, "all items rescued");
    for i in (0..30_000).step_by(4) {
        assert_eq!(get(&e, &format!("key:{i:06}")).unwrap(), v);
    }
}

fn size_shift_hit_ratio(automove: u8) -> f64 {
    let (e, clock) = engine(EngineConfig {
        memory_limit: 16 * MB,
        shards: 2,
        slab_automove: automove,
        ..EngineConfig::default()
    });
    let small = vec![b's'; 100];
    for i in 0..200_000 {
        set(&e, &format!("small:{i}"), &small);
    }
    clock.advance(300);
    let big = vec![b'b'; 2000];
    let keys = 4000;
    let mut last_ratio = 0.0;
    for _round in 0..40 {
        let mut hits = 0;
        for i in 0..keys {
            let k = format!("big:{i}");
            if get(&e, &k).is_some() {
                hits += 1;
            } else {
                assert_eq!(set(&e, &k, &big).status, StoreStatus::Stored);
            }
        }
        last_ratio = f64::from(hits) / f64::from(keys);
        clock.advance(1);
        e.lru_maintainer_tick();
        for _ in 0..3 {
            e.automove_tick();
        }
        assert!(e.memory_used() <= 16 * MB);
    }
    last_ratio
}

#[test]
fn automove_after_size_shift() {
    let with = size_shift_hit_ratio(1);
    let without = size_shift_hit_ratio(0);
    assert!(with > 0.9, "automove recovers the hit ratio: {with}");
    assert!(
        without < 0.2,
        "without automove the big class stays starved: {without}"
    );
}

// ------------------------------------------------------------------ hash

#[test]
fn incremental_hash_resize_with_many_items() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 256 * MB,
        hashpower_init: 10,
        shards: 2,
        ..EngineConfig::default()
    });
    let mut saw_expanding = false;
    for i in 0..200_000u32 {
        set(&e, &format!("k{i}"), &i.to_le_bytes());
        if i % 1000 == 0 {
            saw_expanding |= e.stats().hash_is_expanding;
        }
    }
    assert!(saw_expanding);
    for i in 0..200_000u32 {
        assert_eq!(get(&e, &format!("k{i}")).unwrap(), i.to_le_bytes(), "{i}");
    }
    let st = e.stats();
    assert_eq!(st.curr_items, 200_000);
    // a few bytes per item: 5 bytes per slot, load >= 0.2 after growth
    assert!(st.hash_bytes <= 200_000 * 25, "{}", st.hash_bytes);
    assert!(st.hash_power_level >= 18);
}

// ------------------------------------------------------------------ stats

#[test]
fn stats_rows() {
    let (e, _) = default_engine();
    set(&e, "a", b"1");
    set(&e, "b", &[b'x'; 500]);
    get(&e, "a");
    get(&e, "zz");
    e.delete(b"b", &DeleteOptions::default());
    let rows = e.class_stats();
    let a = rows.iter().find(|r| r.id == 1).unwrap();
    assert_eq!(a.chunk_size, 80);
    assert_eq!(a.total_pages, 1);
    assert_eq!(a.chunks_per_page, 1024 * 1024 / 80);
    assert_eq!(a.used_chunks, 1);
    assert_eq!(a.get_hits, 1);
    assert_eq!(a.cmd_set, 1);
    assert_eq!(a.number, 1);
    assert_eq!(a.mem_requested, 26 + 1 + 1);
    assert_eq!(
        a.free_chunks + a.free_chunks_end + a.used_chunks,
        a.total_chunks
    );
    let b = rows.iter().find(|r| r.delete_hits == 1).unwrap();
    assert_eq!(b.number, 0);
    let hist = e.size_histogram();
    assert_eq!(hist, vec![SizeBucket { size: 32, count: 1 }]);
    let st = e.stats();
    assert_eq!(st.bytes, 28);
    assert_eq!(st.total_malloced, 2 * MB as u64);
    assert_eq!(e.memory_used(), 2 * MB);
}

/// `stats reset` zeroes the counters memcached zeroes (global, per class, item stats,
/// `evicted_time` included) and keeps gauges; the raw counters keep counting.
#[test]
fn reset_stats_zeroes_counters_keeps_gauges() {
    let (e, clock) = engine(EngineConfig {
        memory_limit: 2 * MB,
        shards: 1,
        slab_automove: 0,
        ..EngineConfig::default()
    });
    let v = vec![b'v'; 100];
    for i in 0..40_000 {
        set_full(&e, &format!("k{i}"), &v, 0, if i % 2 == 0 { 0 } else { 5 });
    }
    for i in 39_000..40_000 {
        get(&e, &format!("k{i}"));
        get(&e, &format!("k{i}"));
    }
    set(&e, "n", b"1");
    arith(&e, "n", true, 1);
    arith(&e, "n", false, 1);
    e.touch(b"n", 100);
    let cas = gets(&e, "n").unwrap().2;
    e.store(&StoreRequest::new(StoreMode::Cas, b"n", b"2", 0, 0).with_cas(cas));
    e.store(&StoreRequest::new(StoreMode::Cas, b"n", b"3", 0, 0).with_cas(1));
    e.delete(b"n", &DeleteOptions::default());
    set_full(&e, "exp", b"x", 0, 5);
    clock.advance(10);
    assert_eq!(get(&e, "exp"), None); // expired
    e.crawler_step(100_000);
    e.lru_maintainer_tick();
    let before = e.stats();
    let rows_before = e.class_stats();
    assert!(before.evictions > 0 && before.total_items > 0 && before.get_expired > 0);
    assert!(before.crawler_reclaimed > 0 && before.moves_to_cold > 0);
    e.reset_stats();
    let after = e.stats();
    let zeroed = EngineStats {
        curr_items: before.curr_items,
        bytes: before.bytes,
        lru_bumps_dropped: before.lru_bumps_dropped,
        limit_maxbytes: before.limit_maxbytes,
        total_malloced: before.total_malloced,
        total_pages: before.total_pages,
        hash_power_level: before.hash_power_level,
        hash_bytes: before.hash_bytes,
        hash_is_expanding: before.hash_is_expanding,
        shards: before.shards,
        slab_automove: before.slab_automove,
        slab_reassign_running: before.slab_reassign_running,
        ..EngineStats::default()
    };
    assert_eq!(after, zeroed);
    assert_eq!(e.raw_stats().evictions, before.evictions);
    for (r, b) in e.class_stats().iter().zip(&rows_before) {
        let kept = ClassStats {
            id: b.id,
            chunk_size: b.chunk_size,
            chunks_per_page: b.chunks_per_page,
            total_pages: b.total_pages,
            total_chunks: b.total_chunks,
            used_chunks: b.used_chunks,
            free_chunks: b.free_chunks,
            free_chunks_end: b.free_chunks_end,
            mem_requested: b.mem_requested,
            number: b.number,
            number_hot: b.number_hot,
            number_warm: b.number_warm,
            number_cold: b.number_cold,
            number_temp: b.number_temp,
            age_hot: b.age_hot,
            age_warm: b.age_warm,
            age: b.age,
            ..ClassStats::default()
        };
        assert_eq!(r, &kept);
    }
    // Counting resumes from zero.
    set(&e, "again", b"x");
    get(&e, "again");
    let st = e.stats();
    assert_eq!(st.total_items, 1);
    let row = e
        .class_stats()
        .into_iter()
        .find(|r| r.cmd_set == 1)
        .unwrap();
    assert_eq!(row.get_hits, 1);
    assert_eq!(
        e.raw_class_stats()
            .iter()
            .find(|r| r.id == row.id)
            .unwrap()
            .get_hits,
        rows_before
            .iter()
            .find(|r| r.id == row.id)
            .unwrap()
            .get_hits
            + 1
    );
}

// ------------------------------------------------------------------ threads

#[test]
fn concurrent_workers() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 8 * MB,
        ..EngineConfig::default()
    });
    let e = Arc::new(e);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let v = vec![b'a' + t as u8; 50 + t * 300];
                for i in 0..30_000 {
                    let k = format!("t{t}k{}", i % 3000);
                    assert_eq!(set(&e, &k, &v).status, StoreStatus::Stored);
                    if let Some(got) = get(&e, &k) {
                        assert_eq!(got, v);
                    }
                    if i % 7 == 0 {
                        e.delete(k.as_bytes(), &DeleteOptions::default());
                    }
                    if i % 5000 == 0 {
                        e.lru_maintainer_tick();
                        e.automove_tick();
                        e.crawler_step(1000);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(e.memory_used() <= 8 * MB);
}

// ------------------------------------------------------------------ efficiency

/// The hard requirement: 1,000,000 keys `key:N` with 100-byte values into
/// 64 MiB must leave at least 460,000 retrievable (memcached 1.6.18: 349,504).
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in debug builds; run with --release")]
fn memory_efficiency_64m() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 64 * MB,
        ..EngineConfig::default()
    });
    let start = std::time::Instant::now();
    let v = [b'x'; 100];
    let mut key = String::with_capacity(16);
    for i in 0..1_000_000u32 {
        key.clear();
        key.push_str("key:");
        key.push_str(&i.to_string());
        let st = e.store(&StoreRequest::new(StoreMode::Set, key.as_bytes(), &v, 0, 0));
        assert_eq!(st.status, StoreStatus::Stored);
    }
    let mut kept = 0u32;
    for i in 0..1_000_000u32 {
        key.clear();
        key.push_str("key:");
        key.push_str(&i.to_string());
        if e.get(key.as_bytes(), &GetOptions::get(), |_| ()).is_some() {
            kept += 1;
        }
    }
    let elapsed = start.elapsed();
    println!(
        "memory efficiency: {kept} of 1000000 retained at 64 MiB in {elapsed:?}; hash_bytes = {}",
        e.hash_bytes()
    );
    assert!(kept >= 460_000, "kept {kept}");
    assert!(e.memory_used() <= 64 * MB);
    assert!(elapsed.as_secs() < 10);
}

// ------------------------------------------------------------------ model

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Set(u8, Vec<u8>, u32, i64),
        Add(u8, Vec<u8>),
        Replace(u8, Vec<u8>),
        Append(u8, Vec<u8>),
        Prepend(u8, Vec<u8>),
        Cas(u8, Vec<u8>, bool),
        Get(u8),
        Delete(u8),
        Incr(u8, u64),
        Decr(u8, u64),
        Touch(u8, i64),
        Flush,
        Advance(u32),
    }

    fn val() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            (0u64..1000).prop_map(|n| n.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..3000),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let k = 0u8..12;
        prop_oneof![
            (
                k.clone(),
                val(),
                any::<u32>(),
                prop_oneof![Just(0i64), 1i64..20, Just(-1i64)]
            )
                .prop_map(|(k, v, f, e)| Op::Set(k, v, f, e)),
            (k.clone(), val()).prop_map(|(k, v)| Op::Add(k, v)),
            (k.clone(), val()).prop_map(|(k, v)| Op::Replace(k, v)),
            (k.clone(), val()).prop_map(|(k, v)| Op::Append(k, v)),
            (k.clone(), val()).prop_map(|(k, v)| Op::Prepend(k, v)),
            (k.clone(), val(), any::<bool>()).prop_map(|(k, v, g)| Op::Cas(k, v, g)),
            k.clone().prop_map(Op::Get),
            k.clone().prop_map(Op::Get),
            k.clone().prop_map(Op::Delete),
            (k.clone(), prop_oneof![0u64..100, Just(u64::MAX)]).prop_map(|(k, d)| Op::Incr(k, d)),
            (k.clone(), 0u64..100).prop_map(|(k, d)| Op::Decr(k, d)),
            (k, prop_oneof![Just(0i64), 1i64..20]).prop_map(|(k, e)| Op::Touch(k, e)),
            Just(Op::Flush),
            (0u32..5).prop_map(Op::Advance),
        ]
    }

    #[derive(Clone, Debug)]
    struct MItem {
        value: Vec<u8>,
        flags: u32,
        exp: u32,
        cas: u64,
    }

    struct Model {
        items: HashMap<u8, MItem>,
    }

    impl Model {
        fn live(&mut self, k: u8, now: u32) -> Option<&mut MItem> {
            let dead = self
                .items
                .get(&k)
                .is_some_and(|i| i.exp != 0 && i.exp <= now);
            if dead {
                self.items.remove(&k);
            }
            self.items.get_mut(&k)
        }
    }

    fn key(k: u8) -> String {
        format!("key{k}")
    }

    fn concat(
        e: &Engine,
        m: &mut Model,
        now: u32,
        k: u8,
        v: &[u8],
        append: bool,
    ) -> Result<(), TestCaseError> {
        let mode = if append {
            StoreMode::Append
        } else {
            StoreMode::Prepend
        };
        let o = e.store(&StoreRequest::new(mode, key(k).as_bytes(), v, 9, 5));
        match m.live(k, now) {
            Some(i) => {
                prop_assert_eq!(o.status, StoreStatus::Stored);
                if append {
                    i.value.extend_from_slice(v);
                } else {
                    let mut n = v.to_vec();
                    n.extend_from_slice(&i.value);
                    i.value = n;
                }
                i.cas = o.cas;
            }
            None => prop_assert_eq!(o.status, StoreStatus::NotStored),
        }
        Ok(())
    }

    fn incr(
        e: &Engine,
        m: &mut Model,
        now: u32,
        k: u8,
        d: u64,
        up: bool,
    ) -> Result<(), TestCaseError> {
        let o = e.arith(&ArithRequest::new(key(k).as_bytes(), up, d));
        match m.live(k, now) {
            None => prop_assert_eq!(o, ArithOutcome::NotFound),
            Some(i) => match super::super::shard::parse_u64(&i.value) {
                Some(cur) if !i.value.is_empty() => {
                    let new = if up {
                        cur.wrapping_add(d)
                    } else {
                        cur.saturating_sub(d)
                    };
                    let s = new.to_string().into_bytes();
                    let ArithOutcome::Ok { value, cas, .. } = o else {
                        return Err(TestCaseError::fail(format!("{o:?}")));
                    };
                    prop_assert_eq!(value, new);
                    if s.len() <= i.value.len() {
                        let mut p = s;
                        p.resize(i.value.len(), b' ');
                        i.value = p;
                    } else {
                        i.value = s;
                    }
                    i.cas = cas;
                }
                _ => prop_assert_eq!(o, ArithOutcome::NonNumeric),
            },
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn engine_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let (e, clock) = engine(EngineConfig { memory_limit: 64 * MB, ..EngineConfig::default() });
            let mut m = Model { items: HashMap::new() };
            for op in ops {
                let now = clock.now();
                match op {
                    Op::Set(k, v, f, ex) => {
                        let o = set_full(&e, &key(k), &v, f, ex);
                        prop_assert_eq!(o.status, StoreStatus::Stored);
                        m.items.insert(k, MItem { value: v, flags: f, exp: e.realtime(ex), cas: o.cas });
                    }
                    Op::Add(k, v) => {
                        let st = e.store(&StoreRequest::new(StoreMode::Add, key(k).as_bytes(), &v, 0, 0));
                        if m.live(k, now).is_some() {
                            prop_assert_eq!(st.status, StoreStatus::NotStored);
                        } else {
                            prop_assert_eq!(st.status, StoreStatus::Stored);
                            m.items.insert(k, MItem { value: v, flags: 0, exp: 0, cas: st.cas });
                        }
                    }
                    Op::Replace(k, v) => {
                        let st = e.store(&StoreRequest::new(StoreMode::Replace, key(k).as_bytes(), &v, 3, 0));
                        if m.live(k, now).is_some() {
                            prop_assert_eq!(st.status, StoreStatus::Stored);
                            m.items.insert(k, MItem { value: v, flags: 3, exp: 0, cas: st.cas });
                        } else {
                            prop_assert_eq!(st.status, StoreStatus::NotStored);
                        }
                    }
                    Op::Append(k, v) => concat(&e, &mut m, now, k, &v, true)?,
                    Op::Prepend(k, v) => concat(&e, &mut m, now, k, &v, false)?,
                    Op::Cas(k, v, good) => {
                        let cur = m.live(k, now).map(|i| i.cas);
                        let c = match (cur, good) { (Some(c), true) => c, (Some(c), false) => c + 1, (None, _) => 7 };
                        let st = e.store(&StoreRequest::new(StoreMode::Cas, key(k).as_bytes(), &v, 1, 0).with_cas(c));
                        match (cur, good) {
                            (None, _) => prop_assert_eq!(st.status, StoreStatus::NotFound),
                            (Some(_), false) => prop_assert_eq!(st.status, StoreStatus::Exists),
                            (Some(_), true) => {
                                prop_assert_eq!(st.status, StoreStatus::Stored);
                                m.items.insert(k, MItem { value: v, flags: 1, exp: 0, cas: st.cas });
                            }
                        }
                    }
                    Op::Get(k) => {
                        let got = gets(&e, &key(k));
                        let want = m.live(k, now).map(|i| (i.value.clone(), i.flags, i.cas, if i.exp == 0 { -1 } else { i64::from(i.exp) - i64::from(now) }));
                        prop_assert_eq!(got, want);
                    }
                    Op::Delete(k) => {
                        let st = e.delete(key(k).as_bytes(), &DeleteOptions::default());
                        let had = m.live(k, now).is_some();
                        m.items.remove(&k);
                        prop_assert_eq!(st, if had { DeleteOutcome::Deleted } else { DeleteOutcome::NotFound });
                    }
                    Op::Incr(k, d) => incr(&e, &mut m, now, k, d, true)?,
                    Op::Decr(k, d) => incr(&e, &mut m, now, k, d, false)?,
                    Op::Touch(k, ex) => {
                        let ok = e.touch(key(k).as_bytes(), ex);
                        let exp = e.realtime(ex);
                        match m.live(k, now) {
                            Some(i) => { prop_assert!(ok); i.exp = exp; }
                            None => prop_assert!(!ok),
                        }
                    }
                    Op::Flush => {
                        e.flush_all(0);
                        m.items.clear();
                    }
                    Op::Advance(s) => clock.advance(s),
                }
            }
        }
    }
}

// ---- leases (lease-get / lease-set, storage::lease) ----

/// `(token, stale)` of a lease-get miss, or `None` on a hit.
/// A stale copy: `(flags, value)`.
type StaleCopy = Option<(u32, Vec<u8>)>;

fn lease_get(e: &Engine, k: &str, ttl: u32) -> Option<(u64, StaleCopy)> {
    e.lease_get(k.as_bytes(), ttl, |v| match v {
        LeaseView::Hit(_) => None,
        LeaseView::Miss(m) => Some((m.token, m.stale.map(|(f, d)| (f, d.to_vec())))),
    })
}

fn lease_set(e: &Engine, k: &str, token: u64, v: &[u8]) -> bool {
    e.lease_set(
        token,
        &StoreRequest::new(StoreMode::Set, k.as_bytes(), v, 0, 0),
    )
    .is_some_and(|r| r.status == StoreStatus::Stored)
}

#[test]
fn lease_one_token_per_window_then_fill() {
    let (e, clock) = default_engine();
    let (t, stale) = lease_get(&e, "k", 10).expect("miss");
    assert!(t > HOT_MISS_TOKEN);
    assert_eq!(stale, None);
    for _ in 0..5 {
        assert_eq!(lease_get(&e, "k", 10), Some((HOT_MISS_TOKEN, None)));
    }
    // Hot-miss tokens and made-up tokens never fill.
    assert!(!lease_set(&e, "k", HOT_MISS_TOKEN, b"x"));
    assert!(!lease_set(&e, "k", t + 1, b"x"));
    assert!(!e.contains(b"k"));
    clock.advance(3);
    assert!(lease_set(&e, "k", t, b"filled"));
    assert_eq!(lease_get(&e, "k", 10), None, "a hit after the fill");
    // The token is spent.
    e.delete(b"k", &DeleteOptions::default());
    assert!(!lease_set(&e, "k", t, b"again"));
    // Placeholders are invisible to plain commands: add still succeeds.
    let (_, _) = lease_get(&e, "fresh", 10).expect("miss");
    assert!(!e.contains(b"fresh"));
    let r = e.store(&StoreRequest::new(StoreMode::Add, b"fresh", b"v", 0, 0));
    assert_eq!(r.status, StoreStatus::Stored);
}

#[test]
fn lease_window_expiry_hands_out_a_new_token_and_voids_the_old() {
    let (e, clock) = default_engine();
    let (t1, _) = lease_get(&e, "k", 2).unwrap();
    clock.advance(1);
    assert_eq!(lease_get(&e, "k", 2).unwrap().0, HOT_MISS_TOKEN);
    clock.advance(1);
    let (t2, _) = lease_get(&e, "k", 2).unwrap();
    assert!(t2 > HOT_MISS_TOKEN && t2 != t1);
    assert!(!lease_set(&e, "k", t1, b"late"), "expired token");
    assert!(lease_set(&e, "k", t2, b"ok"));
}

#[test]
fn lease_writes_invalidate_the_token() {
    let (e, _) = default_engine();
    type Write = fn(&Engine);
    let writes: [(&str, Write); 5] = [
        ("set", |e| {
            set(e, "k", b"1");
        }),
        ("delete", |e| {
            e.delete(b"k", &DeleteOptions::default());
        }),
        ("add", |e| {
            e.store(&StoreRequest::new(StoreMode::Add, b"k", b"1", 0, 0));
        }),
        ("incr", |e| {
            e.arith(&ArithRequest::new(b"k", true, 1));
        }),
        ("md I", |e| {
            e.delete(
                b"k",
                &DeleteOptions {
                    invalidate: true,
                    ..Default::default()
                },
            );
        }),
    ];
    for (name, write) in writes {
        e.delete(b"k", &DeleteOptions::default());
        let (t, _) = lease_get(&e, "k", 10).unwrap();
        write(&e);
        assert!(!lease_set(&e, "k", t, b"stale fill"), "{name}");
        e.delete(b"k", &DeleteOptions::default());
        // One fill per invalidation: the next miss gets a fresh token.
        let (t2, _) = lease_get(&e, "k", 10).unwrap();
        assert!(t2 > HOT_MISS_TOKEN && t2 != t, "{name}");
    }
}

#[test]
fn lease_stale_value_after_delete() {
    let (e, clock) = default_engine();
    set_full(&e, "k", b"old value", 42, 0);
    let keep = DeleteOptions {
        keep_stale: 5,
        ..Default::default()
    };
    assert_eq!(e.delete(b"k", &keep), DeleteOutcome::Deleted);
    // Invisible to plain commands.
    assert!(!e.contains(b"k"));
    assert!(e.get(b"k", &GetOptions::get(), |_| ()).is_none());
    let (t, stale) = lease_get(&e, "k", 10).unwrap();
    assert!(t > HOT_MISS_TOKEN);
    assert_eq!(stale, Some((42, b"old value".to_vec())));
    let (t1, stale1) = lease_get(&e, "k", 10).unwrap();
    assert_eq!(t1, HOT_MISS_TOKEN);
    assert_eq!(stale1, Some((42, b"old value".to_vec())));
    clock.advance(5);
    assert_eq!(
        lease_get(&e, "k", 10).unwrap().1,
        None,
        "stale copy expired"
    );
    // A set drops the stale copy too.
    set(&e, "j", b"v");
    e.delete(b"j", &keep);
    set(&e, "j", b"new");
    e.delete(b"j", &DeleteOptions::default());
    assert_eq!(lease_get(&e, "j", 10).unwrap().1, None);
    // flush_all forgets everything.
    e.flush_all(0);
    assert_eq!(e.lease_usage(), (0, 0));
}

#[test]
fn lease_table_is_bounded() {
    let (e, _) = default_engine();
    let big = vec![b'x'; MAX_STALE_VALUE];
    for i in 0..(LEASE_MAX_ENTRIES + 1000) {
        let k = format!("k{i}");
        if i % 64 == 0 {
            set(&e, &k, &big);
            e.delete(
                k.as_bytes(),
                &DeleteOptions {
                    keep_stale: 100,
                    ..Default::default()
                },
            );
        }
        lease_get(&e, &k, 100);
    }
    let (n, bytes) = e.lease_usage();
    assert!(n <= LEASE_MAX_ENTRIES, "{n} entries");
    let per_shard = (e.config().memory_limit / 64 / 64).max(MAX_STALE_VALUE);
    assert!(bytes <= 64 * per_shard, "{bytes}");
}

#[test]
fn lease_concurrent_misses_get_one_token() {
    let (e, _) = default_engine();
    let e = Arc::new(e);
    let barrier = Arc::new(std::sync::Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|_| {
            let (e, b) = (e.clone(), barrier.clone());
            std::thread::spawn(move || {
                b.wait();
                lease_get(&e, "hot", 10).unwrap().0
            })
        })
        .collect();
    let tokens: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(tokens.iter().filter(|&&t| t > HOT_MISS_TOKEN).count(), 1);
}

// ------------------------------------------------------------------ dump

/// One dumped item, owned.
#[derive(Clone, Debug, PartialEq)]
struct Dumped {
    key: Vec<u8>,
    exptime: i64,
    last_access: i64,
    cas: u64,
    fetched: bool,
    class_id: u8,
    size: u64,
}

/// Runs a whole dump, calling `between` after every step (with the step number).
fn dump_all(e: &Engine, classes: u64, slots: usize, mut between: impl FnMut(usize)) -> Vec<Dumped> {
    let mut cur = DumpCursor::new(classes);
    let mut out = Vec::new();
    let mut step = 0;
    loop {
        let more = e.dump_step(&mut cur, slots, |it| {
            out.push(Dumped {
                key: it.key.to_vec(),
                exptime: it.exptime,
                last_access: it.last_access,
                cas: it.cas,
                fetched: it.fetched,
                class_id: it.class_id,
                size: it.size,
            })
        });
        if !more {
            assert!(cur.is_done());
            assert!(!e.dump_step(&mut cur, slots, |_| panic!("visited after the end")));
            return out;
        }
        step += 1;
        between(step);
    }
}

#[test]
fn dump_reports_items_like_metadump() {
    let (e, clock) = default_engine();
    let started = clock.process_started();
    set_full(&e, "plain", b"abc", 0, 0);
    set_full(&e, "ttl", b"x", 5, 100);
    set_full(&e, "abs", b"y", 0, 2_000_000_000);
    set_full(&e, "gone", b"z", 0, 10);
    let big = vec![b'b'; 700_000];
    set_full(&e, "big", &big, 0, 0);
    get(&e, "plain");
    clock.advance(20); // "gone" expires
    let now = i64::from(clock.now());
    let mut d = dump_all(&e, ALL_CLASSES, 512, |_| {});
    d.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&[u8]> = d.iter().map(|x| x.key.as_slice()).collect();
    assert_eq!(keys, [&b"abs"[..], b"big", b"plain", b"ttl"]);
    let by = |k: &str| d.iter().find(|x| x.key == k.as_bytes()).unwrap().clone();
    let (plain, ttl, abs, bigd) = (by("plain"), by("ttl"), by("abs"), by("big"));
    assert_eq!(plain.exptime, -1);
    assert!(plain.fetched && !ttl.fetched);
    assert_eq!(plain.last_access, started + now - 20);
    assert_eq!(ttl.exptime, started + now - 20 + 100);
    assert_eq!(abs.exptime, 2_000_000_000);
    assert_eq!(plain.cas, 1);
    assert_eq!(ttl.cas, 2);
    // The class and size agree with the item's own view and the class ladder.
    let sizes = e.class_sizes();
    for x in [&plain, &ttl, &abs] {
        let cls = e
            .get(
                &x.key,
                &GetOptions {
                    no_bump: true,
                    ..GetOptions::default()
                },
                |it| it.class_id(),
            )
            .unwrap();
        assert_eq!(x.class_id, cls);
        let i = usize::from(cls) - 1;
        assert!(x.size <= u64::from(sizes[i]));
        assert!(i == 0 || x.size > u64::from(sizes[i - 1]));
    }
    // A chained item: the largest class, its whole size.
    assert_eq!(usize::from(bigd.class_id), sizes.len());
    assert!(bigd.size > 700_000 && bigd.size < 700_100);
    // Class filter.
    let only = dump_all(&e, 1 << plain.class_id, 7, |_| {});
    assert!(!only.is_empty() && only.iter().all(|x| x.class_id == plain.class_id));
    assert_eq!(
        only.len(),
        d.iter().filter(|x| x.class_id == plain.class_id).count()
    );
    assert!(dump_all(&e, 0, 512, |_| {}).is_empty());
    // Flushed items are not dumped.
    e.flush_all(0);
    assert!(dump_all(&e, ALL_CLASSES, 512, |_| {}).is_empty());
}

/// The cursor sees every item present for the whole dump exactly once, and no key twice,
/// while items are stored, deleted, re-stored, touched (reallocated), evicted, moved by
/// page reassignment and the hash tables grow and migrate between steps.
#[test]
fn dump_cursor_exactly_once_under_churn() {
    let (e, clock) = engine(EngineConfig {
        memory_limit: 48 * MB,
        shards: 2,
        slab_automove: 0,
        hashpower_init: 8,
        ..EngineConfig::default()
    });
    let val = |i: usize| vec![b'v'; 20 + (i * 37) % 900];
    // Stable items: never deleted, never evicted (fetched twice: ACTIVE; little memory
    // pressure on their classes), some rescued by page moves.
    let stable: Vec<String> = (0..4000).map(|i| format!("stable:{i}")).collect();
    for (i, k) in stable.iter().enumerate() {
        set(&e, k, &val(i));
    }
    for i in 0..3000 {
        set_full(
            &e,
            &format!("churn:{i}"),
            &val(i),
            0,
            if i % 3 == 0 { 50 } else { 0 },
        );
    }
    let mut ever: std::collections::HashSet<Vec<u8>> = stable
        .iter()
        .map(|k| k.clone().into_bytes())
        .chain((0..3000).map(|i| format!("churn:{i}").into_bytes()))
        .collect();
    let mut next = 3000;
    let mut expanded = false;
    let d = dump_all(&e, ALL_CLASSES, 16, |step| {
        // New keys (the hash tables grow and migrate).
        for _ in 0..10 {
            let k = format!("churn:{next}");
            set(&e, &k, &val(next));
            ever.insert(k.into_bytes());
            next += 1;
        }
        expanded |= e.stats().hash_is_expanding;
        // Delete and re-store older churn keys.
        let j = (step * 7) % next;
        e.delete(format!("churn:{j}").as_bytes(), &DeleteOptions::default());
        let j = (step * 13) % next;
        set(&e, &format!("churn:{j}"), &val(j + 1));
        // Overwrite an older key (a new item for the same key: dumped at most once).
        let j = (step * 17) % next;
        set(&e, &format!("churn:{j}"), &val(step));
        // Touch a stable key: the exptime field may not fit, and the item is copied to
        // a new chunk, still under its key the whole time.
        e.touch(stable[(step * 31) % stable.len()].as_bytes(), 100_000);
        if step % 97 == 0 {
            e.slabs_reassign(-1, 20);
            e.lru_maintainer_tick();
        }
        if step % 500 == 0 {
            clock.advance(30);
        }
    });
    assert!(expanded, "no hash resize happened during the dump");
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for x in &d {
        *seen.entry(x.key.clone()).or_default() += 1;
    }
    for (k, n) in &seen {
        assert_eq!(*n, 1, "{} dumped {n} times", String::from_utf8_lossy(k));
        assert!(ever.contains(k));
    }
    let st = e.stats();
    assert!(st.slabs_moved > 0, "no page moved during the dump");
    // Stable keys are never stored again: one still there was there all along.
    let mut kept = 0;
    for k in &stable {
        if e.contains(k.as_bytes()) {
            kept += 1;
            assert_eq!(seen.get(k.as_bytes()), Some(&1), "{k} missed");
        }
    }
    assert!(
        kept > stable.len() / 2,
        "only {kept} stable keys left: {:?}",
        e.stats()
    );
}

/// Dumping from one thread while others store and delete: items nobody touches are
/// each seen exactly once, and no key twice.
#[test]
fn dump_concurrent_with_writers() {
    let (e, _) = engine(EngineConfig {
        memory_limit: 32 * MB,
        hashpower_init: 8,
        ..EngineConfig::default()
    });
    let e = Arc::new(e);
    for i in 0..20_000 {
        set(&e, &format!("fixed:{i}"), b"0123456789");
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let e = e.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = format!("w{t}:{}", i % 50_000);
                    set(&e, &k, &vec![b'x'; (i % 500) as usize]);
                    if i.is_multiple_of(3) {
                        e.delete(
                            format!("w{t}:{}", (i / 2) % 50_000).as_bytes(),
                            &DeleteOptions::default(),
                        );
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let d = dump_all(&e, ALL_CLASSES, 16, |_| std::thread::yield_now());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for x in &d {
        *seen.entry(x.key.clone()).or_default() += 1;
    }
    assert!(seen.values().all(|&n| n == 1), "a key was dumped twice");
    for i in 0..20_000 {
        assert!(
            seen.contains_key(format!("fixed:{i}").as_bytes()),
            "fixed:{i} missed"
        );
    }
}

/// A few items in each of many size classes fit in a small memory limit, as in memcached:
/// pages belong to shards, so a small budget must not be split into more shards than it
/// can give a page per class (otherwise the shards steal each other's pages and evict).
#[test]
fn many_classes_fit_in_a_small_budget() {
    for mb in [64, 100] {
        let (e, _) = engine(EngineConfig {
            memory_limit: mb * MB,
            ..EngineConfig::default()
        });
        let sizes: Vec<usize> = (0..30).map(|i| (16.0 * 1.3f64.powi(i)) as usize).collect();
        for &s in &sizes {
            for j in 0..16 {
                let st = set(&e, &format!("k{s}_{j}"), &vec![b'x'; s]).status;
                assert_eq!(st, StoreStatus::Stored, "-m {mb}: size {s} #{j}");
            }
        }
        let missing: Vec<String> = sizes
            .iter()
            .flat_map(|&s| (0..16).map(move |j| format!("k{s}_{j}")))
            .filter(|k| get(&e, k).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "-m {mb}: {} of 480 items gone (shards {}): {:?}",
            missing.len(),
            e.shard_count(),
            &missing[..missing.len().min(8)]
        );
        assert_eq!(e.stats().evictions, 0);
    }
}

#[test]
fn cachedump_walks_cold_from_head_with_absolute_exptime() {
    let (e, clock) = default_engine();
    e.set_lru_segmented(false); // flat: new items enter COLD
    set(&e, "a", b"1");
    set_full(&e, "b", b"22", 0, 100);
    let mut seen = Vec::new();
    e.cachedump(1, |k, n, exp| {
        seen.push((k.to_vec(), n, exp));
        true
    });
    let started = clock.process_started();
    let now = i64::from(clock.now());
    assert_eq!(
        seen,
        vec![
            (b"b".to_vec(), 2, started + now + 100),
            (b"a".to_vec(), 1, 0)
        ]
    );
    // Stopping early, and classes out of range.
    let mut n = 0;
    e.cachedump(1, |_, _, _| {
        n += 1;
        false
    });
    assert_eq!(n, 1);
    e.cachedump(0, |_, _, _| panic!("class 0"));
    e.cachedump(200, |_, _, _| panic!("class 200"));
    // Segmented (the default): a new item starts in HOT, invisible to cachedump.
    e.set_lru_segmented(true);
    assert!(e.lru_params().segmented);
}

#[test]
fn lru_tune_changes_the_parameters_in_force() {
    let (e, _) = default_engine();
    let p = e.lru_params();
    assert_eq!((p.hot_lru_pct, p.warm_lru_pct), (20, 40));
    e.set_lru_tune(10, 30, 0.5, 3.0);
    let p = e.lru_params();
    assert_eq!((p.hot_lru_pct, p.warm_lru_pct), (10, 30));
    assert_eq!((p.hot_max_factor, p.warm_max_factor), (0.5, 3.0));
}
