//! Differential test of number parsing and a few meta edge cases: the same sessions sent to
//! the real `memcached` 1.6.18 and to `cache-server` must get byte-identical replies.
//!
//! memcached reads numbers with `safe_strtol` / `safe_strtoul` / `safe_strtoull` (util.c):
//! C `strtol`/`strtoul` into a 64-bit `long`, refused only on `ERANGE`, no digits, or bytes
//! after the digits that are not whitespace; then the value is stored into the field's type.
//! So 32-bit fields (exptimes, data lengths, meta `T N R`, `verbosity`, ...) truncate:
//! `set k 0 0 4294967297` takes 1 byte and `T4294967396` means 100. The unsigned readers
//! accept a `-` unless the result is negative as a signed number (`-0` is 0,
//! `-18446744073709551615` is 1, `-1` is refused). See protocol/src/number.rs.
//!
//! Also: `mg` with `N` and an over-long `O` creates the item but hands out no win token,
//! `me <bad base64> b` is `bad command line format`, and `ms` compares `C` per mode.
//!
//! Each case runs on its own connection with its own keys; `mn` is the sentinel that ends a
//! reply (see `e2e_tests::differential::exchange`).

use e2e_tests::bins::OurServer;
use e2e_tests::differential::{
    assert_no_differences, assert_our_replies, differing_cases, exchange, start_pair, stat_value,
};

/// `O` plus `n` bytes of opaque.
fn opaque(n: usize) -> String {
    format!("O{}", "o".repeat(n))
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let o40 = opaque(40);
    vec![
        // 1. Data lengths: `safe_strtol`, truncated to 32 bits, then `0..=INT_MAX-2`.
        (
            "set data length truncates",
            b"set a1 0 0 4294967297\r\nx\r\nget a1\r\nset a2 0 0 -4294967295\r\ny\r\nget a2\r\nappend a1 0 0 4294967298\r\nzz\r\nprepend a1 0 0 4294967297\r\nw\r\nget a1\r\n"
                .to_vec(),
        ),
        (
            "set data length refused",
            b"set a3 0 0 4294967295\r\nx\r\nset a3 0 0 2147483647\r\nset a3 0 0 2147483646\r\nset a3 0 0 9223372036854775807\r\nx\r\nset a3 0 0 99999999999999999999\r\nx\r\nset a3 0 0 -9223372036854775809\r\nget a3\r\n"
                .to_vec(),
        ),
        (
            "set data length LONG_MIN is 0",
            b"set a4 0 0 -9223372036854775808\r\nget a4\r\n".to_vec(),
        ),
        (
            "ms data length",
            b"ms a5 4294967297 T4294967396\r\nx\r\nmg a5 v t\r\nms a6 -4294967295 C-0\r\nx\r\nms a6 2147483646\r\nx\r\nms a6 4294967295\r\nx\r\nms a6 9223372036854775808\r\nx\r\nmg a6 v\r\n"
                .to_vec(),
        ),
        // 2. Exptimes: `safe_strtol`, truncated (4294967295 is -1: expired at once).
        (
            "storage exptime",
            b"set e1 0 4294967296 1\r\nx\r\nmg e1 v t\r\nset e2 0 4294967295 1\r\nx\r\nget e2\r\nadd e3 0 4294967396 1\r\nx\r\nmg e3 t\r\nreplace e3 0 -4294967196 1\r\ny\r\nmg e3 t v\r\n"
                .to_vec(),
        ),
        (
            "touch and gat exptime",
            b"set e4 0 0 1\r\nx\r\ntouch e4 4294967396\r\nmg e4 t\r\ntouch e4 -4294967296\r\nmg e4 t\r\ngat 4294967397 e4\r\nmg e4 t\r\ngat -9223372036854775808 e4\r\nmg e4 t\r\ngat 9223372036854775808 e4\r\ntouch e4 99999999999999999999\r\ntouch e4 4294967295\r\nget e4\r\n"
                .to_vec(),
        ),
        // 3. Client flags: `safe_strtoul` syntax (values over 32 bits: see below).
        (
            "flags syntax",
            b"set f1 -0 0 1\r\nx\r\nset f2 -18446744073709551615 0 1\r\nx\r\nset f3 -1 0 1\r\nx\r\nset f4 +7 0 1\r\nx\r\nget f1 f2 f3 f4\r\nms f5 1 F-18446744073709551615\r\nx\r\nms f6 1 F-0\r\nx\r\nms f7 1 F-1\r\nx\r\nmg f5 f\r\nmg f6 f\r\n"
                .to_vec(),
        ),
        // 4. 64-bit numbers: `safe_strtoull`.
        (
            "incr delta and cas unique",
            b"set n1 0 0 1\r\n5\r\nincr n1 -0\r\nincr n1 -18446744073709551615\r\ndecr n1 -18446744073709551614\r\nincr n1 -1\r\nincr n1 18446744073709551616\r\ncas nope 0 0 1 -18446744073709551615\r\nx\r\ncas nope 0 0 1 -1\r\nx\r\ncas nope 0 0 1 -0\r\nx\r\n"
                .to_vec(),
        ),
        // 5. Whitespace: C skips it before the number and stops at it after.
        (
            "whitespace around numbers",
            b"set w1 0 0 1\t\r\nx\r\nget w1\r\nset w2 0 \t5 1\r\nx\r\nmg w2 t v\r\nset w3 0 5\tzz 1\r\nx\r\nmg w3 t v\r\nset w4 \x0b7 0 1\r\nx\r\nmg w4 f v\r\nset w5 0 0 1\r\r\nx\r\nmg w5 v\r\nset w6 0 0 \t\r\nx\r\nset w6 0 0 - 1\r\nx\r\nset w6 0 0 +-1\r\nx\r\nset w6 0 0 0x1\r\nx\r\n"
                .to_vec(),
        ),
        (
            "meta whitespace and leading zeros",
            b"ms w7 1 T\t7\r\nx\r\nmg w7 t\r\nms w8 1 T7\t\x01\r\nx\r\nmg w8 t\r\nms w9 000000000000000000000000001 T0000000000000000000000000009\r\nx\r\nmg w9 t v\r\nmg w9 T\r\nmg w9 T- t\r\nmg w9 T-0 t\r\n"
                .to_vec(),
        ),
        // 6. Meta `T N R` truncate; `C D J` take memcached's minus rules.
        (
            "mg N T R truncate",
            b"mg m1 N4294967396 T4294967397 v t\r\nmg m1 R4294967396 v t\r\nmg m1 t\r\n".to_vec(),
        ),
        (
            "ma numbers",
            b"ma m2 N4294967396 J-18446744073709551615 D-0 v t\r\nma m2 D-18446744073709551615 v\r\nma m2 D-1 v\r\nma m2 J-1 N0 v\r\nma m2 C-0 v\r\nma m2 C-1 v\r\nma m2 D18446744073709551616 v\r\n"
                .to_vec(),
        ),
        (
            "md numbers",
            b"md nope C-18446744073709551615\r\nmd nope C-1\r\nms m3 1\r\nx\r\nmd m3 T4294967296 I\r\nmg m3 v t\r\n"
                .to_vec(),
        ),
        // 7. `mg` with `N` and an over-long `O`: the item is created (with the `N` TTL if
        //    `N` came before the `O`, and a `T` before the `O` applied in flag order) but
        //    no win token is handed out, so the next mg sees neither `W` nor `Z`.
        (
            "mg N with a too-long opaque",
            format!(
                "mg o1 N30 {o40} v t\r\nmg o1 N30 v t\r\nmg o1 N30 v t\r\nmg o2 N30 {o40} q v\r\nmg o2 v\r\nmg o3 {o40} N30 v\r\nmg o3 v t\r\nmg o4 N30 {o40} T5 t v\r\nmg o4 v t\r\nmg o5 T5 N30 {o40} v\r\nmg o5 t\r\nmg o6 N30 T5 {o40} v\r\nmg o6 t\r\nmg o7 T5 {o40} N30 v\r\nmg o7 t\r\n"
            )
            .into_bytes(),
        ),
        (
            "mg too-long opaque on a stale or recache item",
            format!(
                "ms o8 1 T100\r\nx\r\nmd o8 I T30\r\nmg o8 {o40} v\r\nmg o8 v\r\nmg o8 v\r\nms o9 1 T100\r\nx\r\nmg o9 R200 {o40} v t\r\nmg o9 t v\r\nmg o9 R200 t v\r\n"
            )
            .into_bytes(),
        ),
        (
            "mg T then N on a miss",
            b"mg o10 T5 N30 v t\r\nmg o10 t\r\nmg o11 N30 T5 v t\r\nmg o11 t\r\nms o12 1\r\nx\r\nmg o12 T5 N30 t\r\n"
                .to_vec(),
        ),
        // 8. `me` with a key that is not base64.
        (
            "me bad base64 key",
            b"me !!!! b\r\nme Zm8 b\r\nme Z b\r\nme A=== b\r\nme !!!! b x\r\nme !!!! x\r\nme Zm9v b\r\n"
                .to_vec(),
        ),
        // 9. `ms` with `C`: set/replace compare any CAS (C0 included); append/prepend
        //    compare only a non-zero CAS; add ignores it.
        (
            "ms C per mode",
            b"ms p1 1\r\na\r\nms p1 1 MA C0\r\nb\r\nms p1 1 MA C1\r\nc\r\nmg p1 v\r\nms p2 1\r\na\r\nms p2 1 MP C0\r\nb\r\nms p2 1 MP C1\r\nc\r\nmg p2 v\r\nms p3 1\r\na\r\nms p3 1 MR C0\r\nb\r\nms p3 1 MS C0\r\nb\r\nms p3 1 ME C0\r\nb\r\nmg p3 v\r\n"
                .to_vec(),
        ),
        (
            "ms C on a miss",
            b"ms p4 1 MS C0\r\nb\r\nms p5 1 ME C0\r\nb\r\nms p6 1 MR C0\r\nb\r\nms p7 1 MA C0\r\nb\r\nms p8 1 MP C7\r\nb\r\nms p9 1 MA C0 N0\r\nb\r\nmg p4 v\r\nmg p5 v\r\nmg p9 v\r\n"
                .to_vec(),
        ),
        // A NUL byte ends the line: memcached tokenizes it as a C string.
        (
            "NUL ends the line",
            b"set nul 0 0 1\r\nx\r\nget nul\0b\r\nmg nul\0 v\r\nset w4 0 5\0zz 1\r\nx\r\nget\0 nul\r\nver\0sion\r\n"
                .to_vec(),
        ),
        // 10. Admin numbers (`safe_strtoul` / `safe_strtol`). Nothing here changes a limit.
        (
            "verbosity",
            b"verbosity -0\r\nverbosity -18446744073709551615\r\nverbosity \x0c1\r\nverbosity 00000000000000000000000000001\r\nverbosity 18446744073709551616\r\nverbosity -1\r\nverbosity 4294967296 noreply\r\nverbosity 0\r\n"
                .to_vec(),
        ),
        (
            "cache_memlimit refusals",
            b"cache_memlimit 4294967297\r\ncache_memlimit -0\r\ncache_memlimit 1000000001\r\ncache_memlimit 18446744073709551615\r\ncache_memlimit 1 noreply\r\ncache_memlimit 1000000001 noreply\r\ncache_memlimit x noreply\r\ncache_memlimit x\r\n"
                .to_vec(),
        ),
        (
            "slabs and lru_crawler",
            b"slabs automove 3\r\nslabs automove x\r\nslabs reassign 4294967297 4294967298\r\nslabs reassign -4294967295 2\r\nslabs reassign 99999999999999999999 1\r\nslabs reassign 1x 2\r\nslabs automove 4294967296\r\nslabs automove -0\r\nslabs automove 4294967297\r\nlru_crawler sleep 1000001\r\nlru_crawler sleep 4294967297\r\nlru_crawler sleep -0\r\nlru_crawler sleep 100\r\nlru_crawler tocrawl -0\r\nlru_crawler tocrawl 0\r\n"
                .to_vec(),
        ),
    ]
}

#[test]
fn numbers_like_memcached() {
    let Some((mc, ours)) = start_pair("numbers_like_memcached", &["-t", "1"]) else {
        return;
    };
    let cases = cases()
        .into_iter()
        .map(|(name, input)| (name, input, false));
    let mut failures = differing_cases(mc.addr(), ours.addr(), cases);
    // Values that only show in `stats settings` (the rest of which differs).
    let settings: &[(&[u8], &str)] = &[
        (b"verbosity 4294967297\r\n", "verbosity"),
        (b"verbosity 4294967298\r\n", "verbosity"),
        (b"verbosity 4294967296\r\n", "verbosity"),
        (b"lru_crawler sleep 4294967297\r\n", "lru_crawler_sleep"),
        (b"lru_crawler sleep 100\r\n", "lru_crawler_sleep"),
        (b"lru_crawler tocrawl 4294967298\r\n", "lru_crawler_tocrawl"),
        (b"lru_crawler tocrawl 0\r\n", "lru_crawler_tocrawl"),
    ];
    for (cmd, stat) in settings {
        let mut input = cmd.to_vec();
        input.extend_from_slice(b"stats settings\r\n");
        let (want, got) = (
            exchange(mc.addr(), &input, false),
            exchange(ours.addr(), &input, false),
        );
        let (want, got) = (stat_value(&want, stat), stat_value(&got, stat));
        if want.is_none() || want != got {
            failures.push(format!(
                "{:?} then stat {stat}: memcached {want:?}, cache-server {got:?}",
                String::from_utf8_lossy(cmd)
            ));
        }
    }
    let _ = exchange(mc.addr(), b"verbosity 0\r\n", false);
    let _ = exchange(ours.addr(), b"verbosity 0\r\n", false);
    assert_no_differences(&failures);
}

/// `flush_all` delays truncate too (`4294967296` flushes now); on its own pair of servers,
/// as it empties the cache.
#[test]
fn flush_all_delay_like_memcached() {
    let Some((mc, ours)) = start_pair("flush_all_delay_like_memcached", &["-t", "1"]) else {
        return;
    };
    let cases = [
        (
            "flush_all 2^32",
            b"set k1 0 0 1\r\nx\r\nflush_all 4294967296\r\nget k1\r\n".to_vec(),
        ),
        (
            "flush_all -2^32",
            b"set k2 0 0 1\r\nx\r\nflush_all -4294967296\r\nget k2\r\n".to_vec(),
        ),
        (
            "flush_all out of range",
            b"set k3 0 0 1\r\nx\r\nflush_all 9223372036854775808\r\nflush_all -0 noreply\r\nget k3\r\nflush_all \t0\r\n"
                .to_vec(),
        ),
    ]
    .into_iter()
    .map(|(name, input)| (name, input, false));
    assert_no_differences(&differing_cases(mc.addr(), ours.addr(), cases));
}

/// Where we differ on purpose: client flags that do not fit 32 bits are refused, where
/// memcached 1.6.18 silently keeps the low 32 bits (`4294967297` comes back as 1), which
/// hands a client other flags than it stored.
#[test]
fn flags_over_32_bits_are_refused() {
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-t", "1"])
        .expect("start cache-server");
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"set f 4294967297 0 1\r\nx\r\nget f\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\nEND\r\n",
        ),
        (
            b"ms f 1 F4294967297\r\nx\r\nmg f v\r\n",
            b"CLIENT_ERROR bad command line format\r\nEN\r\n",
        ),
        (
            b"set f 18446744073709551615 0 1\r\nx\r\n",
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        ),
    ];
    assert_our_replies(ours.addr(), cases);
}
