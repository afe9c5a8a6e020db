//! Differential test of meta-command flag handling: the same scripts sent to the real
//! `memcached` 1.6.18 (Debian package) and to `cache-server` must get byte-identical replies.
//!
//! memcached checks the flags of `mg ms md ma` with one table (`_meta_flag_preparse`): a flag
//! that means nothing for the command is ignored, an unknown letter is `invalid flag`, token
//! errors are reported last-one-wins, `md`/`ma` word every flag error `invalid or duplicate
//! flag`, and then each command checks its `M` mode and the `O` opaque length itself (mg and
//! ma only after doing the work). Base64 keys are echoed re-encoded from the decoded key.
//!
//! Each case runs on its own connection with its own keys against one pair of fresh servers;
//! `mn` is the sentinel that ends a reply (see `e2e_tests::differential::exchange`).

use e2e_tests::bins::OurServer;
use e2e_tests::differential::{
    assert_no_differences, assert_our_replies, differing_cases, exchange, start_pair, stat_value,
};

/// `O` plus `n` bytes of opaque.
fn opaque(n: usize) -> String {
    format!("O{}", "o".repeat(n))
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let o31 = opaque(31);
    let o32 = opaque(32);
    vec![
        // 1. Flags that mean nothing for the command are accepted and ignored; a flag without
        //    a token ignores what follows its letter.
        (
            "ignored flags: mg",
            b"ms ig1 2 F5\r\nhi\r\nmg ig1 vx\r\nmg ig1 v C1 D1 J1 MZ F9 I L P\r\nmg ig1 s1 f2 k3\r\nmg nope vx\r\n"
                .to_vec(),
        ),
        (
            "ignored flags: md",
            b"ms ig2 1\r\na\r\nmd ig2 c t v f\r\nms ig2 1\r\na\r\nmd ig2 MZ D1 J1 N5 R5 h l u s F1\r\nmd ig2 c t v f k\r\n"
                .to_vec(),
        ),
        (
            "ignored flags: ms",
            b"ms ig3 1 t v s f\r\nx\r\nms ig3 1 h l u D1 J1 R1 L P\r\ny\r\nmg ig3 v\r\n".to_vec(),
        ),
        (
            "ignored flags: ma",
            b"ms ig4 1\r\n5\r\nma ig4 f s h l u F1 R1 I L P\r\nma ig4 v\r\n".to_vec(),
        ),
        // 2. `S` is no flag at all in 1.6.18 (the data length is positional); the data block
        //    is swallowed.
        (
            "S is an invalid flag",
            b"ms sz 3 S3\r\nabc\r\nmg sz v\r\nmg sz S3\r\nmd sz S1\r\nma sz S1\r\n".to_vec(),
        ),
        // 3. `M` tokens: one character, upper case (ms) or `I + D -` (ma); mg/md ignore them.
        (
            "ms modes",
            b"ms md1 1 MX\r\na\r\nms md1 1 Ms\r\na\r\nms md1 1 Me\r\na\r\nms md1 1 Ma\r\na\r\nms md1 1 Mp\r\na\r\nms md1 1 Mr\r\na\r\nms md1 1 M\r\na\r\nms md1 1 MEE\r\na\r\nms md1 1 M+\r\na\r\nmg md1 v\r\nms md1 1 MS\r\nb\r\nmg md1 v\r\n"
                .to_vec(),
        ),
        (
            "ma modes",
            b"ms md2 2\r\n10\r\nma md2 MI v\r\nma md2 M+ v\r\nma md2 MD v\r\nma md2 M- v\r\nma md2 Mi v\r\nma md2 Md v\r\nma md2 M v\r\nma md2 MII v\r\nma md2 MX v\r\nma md2 MA v\r\n"
                .to_vec(),
        ),
        ("mode ignored by mg/md", b"ms md3 1\r\na\r\nmg md3 MX v\r\nmd md3 MZ\r\nmg md3 v\r\n".to_vec()),
        // Preparse errors come before the mode check, in scan order, last one wins; `F`
        // leaves the message alone (default `bad command line format`).
        (
            "error precedence",
            b"mg pe Tabc zz\r\nmg pe Tabc Cabc\r\nmg pe Tabc Jx\r\nmg pe Tabc F\r\nmg pe F Tabc\r\nmg pe F\r\nmg pe Dx\r\nmg pe Jx\r\nmg pe M\r\nmg pe N\r\nmg pe R\r\nms pe 1 Dx\r\na\r\nms pe 1 F\r\na\r\nms pe 1 MX F\r\na\r\nms pe 1 MX Tx\r\na\r\nma pe MX Tx\r\nma pe D\r\nmd pe Tx\r\nmg pe zz zz\r\nmg pe v v\r\nmg pe vv v\r\nmg pe \xc3\x89\r\nmg pe +\r\nms pe 1 c c\r\na\r\n"
                .to_vec(),
        ),
        // 4. Base64 keys: memcached decodes leniently and echoes the key re-encoded.
        (
            "base64 key echo",
            b"ms Zm9v 1 b\r\nx\r\nmg Zm9v b k v\r\nmg Zm9vYh== b k\r\nmg Zm8= b k\r\nmg Zg=x b k\r\nmg Zm9v! b k v\r\nms Zm9vYh== 1 b k\r\nq\r\nmd Zm9vYh== b k\r\nma Zm9vYh== b k\r\nma Zm9vYh== b k N0 v\r\nmd Zm9vYh== b k q\r\nmd Zm9vYg== b k\r\nget foo\r\n"
                .to_vec(),
        ),
        (
            "base64 key errors",
            b"mg Zm8 b k\r\nmg Z b k\r\nmg A=== b\r\nmg !!!! b\r\nmg !!! Tx b\r\nmg !!! b Tx\r\nmd !!! b k\r\nma !!! b\r\nms !!! 1 b\r\na\r\nme Zm9vYh== b\r\n"
                .to_vec(),
        ),
        // Opaque: the whole token (letter included) may be 32 bytes. ms/md refuse a longer one
        // up front; mg/ma do the work (vivify, touch before the `O`, increment) first. (The
        // win token such an mg does not hand out is compared in cache_server_numbers.rs.)
        (
            "opaque length",
            format!(
                "ms op1 1 {o31} k\r\na\r\nmg op1 {o31}\r\nms op1 1 {o32}\r\nb\r\nms op1 1 q {o32}\r\nb\r\nms op1 1 {o32} MX\r\nb\r\nmg op1 v\r\nmd op1 {o32}\r\nmd nope q {o32}\r\nmg op1 v\r\n"
            )
            .into_bytes(),
        ),
        (
            "opaque too long after the work",
            format!(
                "ms op2 1\r\n5\r\nma op2 {o32}\r\nmg op2 v\r\nma op2 q {o32}\r\nmg op2 v\r\nma nope q {o32}\r\nma op2 MX {o32}\r\nmg op2 {o32} T100 t\r\nmg op2 t\r\nmg nope q {o32}\r\nmg op3 N30 {o32}\r\nget op3\r\n"
            )
            .into_bytes(),
        ),
        // Bare commands are `ERROR`; ms counts its tokens before it reads the data length.
        (
            "command shapes",
            b"ms\r\nmg\r\nmd\r\nma\r\nms k\r\nms k abc c c c c c c c c c c c c c c c c c c\r\nms k abc\r\n"
                .to_vec(),
        ),
        // `N` on ms is ignored by 1.6.18 (newer memcached vivifies an append miss with it).
        ("ms ignores N", b"ms nv 1 MA N30\r\nx\r\nmg nv v\r\n".to_vec()),
        // `C0` compares (and fails) like any other CAS; `q` does not hide the HD of an
        // item `ma ... N` just created.
        (
            "C0 and ma q N",
            b"set c0a 0 0 1\r\n1\r\nmd c0a C0\r\nmg c0a v\r\nset c0b 0 0 1\r\n5\r\nma c0b C0\r\nmg c0b v\r\nms c0c 1 C0\r\nx\r\nma viv1 q N0\r\nma viv1 q\r\nmg viv1 v\r\n".to_vec(),
        ),
        // `mg` hits echo `k` by how the item was stored (`ms ... b` marks it), everything
        // else by the request's `b`.
        (
            "base64 key echo by item",
            b"ms YmtB 1 b\r\nx\r\nmg bkA k v\r\nmg YmtB b k v\r\nms bkB 1\r\ny\r\nmg YmtC b k v\r\nmg bkB k\r\nmg YmtD b k v N30\r\nmg bkC k\r\nmg YmtE b k q O1\r\nmg YmtE b k\r\nms YmtC 1 b MA k\r\nz\r\nmg bkB k v\r\nmd YmtB b k\r\nma YmtB b k\r\nms YmtF 1 b\r\nx\r\nms bkE 1 MA\r\ny\r\nmg bkE k v\r\n".to_vec(),
        ),
        // A too-large ms drops the old item whatever the mode, so no stale value is served.
        (
            "too-large ms drops the old item",
            [
                b"set big1 0 0 1\r\nx\r\nset big2 0 0 1\r\ny\r\nms big1 2000000\r\n".to_vec(),
                vec![b'v'; 2_000_000],
                b"\r\nms big2 2000000 MA\r\n".to_vec(),
                vec![b'w'; 2_000_000],
                b"\r\nmg big1 v\r\nmg big2 v\r\n".to_vec(),
            ]
            .concat(),
        ),
        // How an mg counts: a hit (or an item `N` just created) is a touch with `T` and a
        // get without; a miss is a get miss even with `T` (compared in the stats below).
        (
            "mg counts",
            b"mg cnt1 T30 N30 v\r\nmg cnt2 N30 v\r\nmg cnt3 T30 v\r\nms cnt4 1\r\na\r\nmg cnt4 T30 v\r\nmg cnt4 s\r\nmg cnt1 T5 N30 v\r\n".to_vec(),
        ),
    ]
}

#[test]
fn meta_flags_like_memcached() {
    let Some((mc, ours)) = start_pair("meta_flags_like_memcached", &["-t", "1"]) else {
        return;
    };
    let cases = cases()
        .into_iter()
        .map(|(name, input)| (name, input, false));
    let mut failures = differing_cases(mc.addr(), ours.addr(), cases);
    // The same sessions count the same way (`md` EX is a delete miss, ...).
    let stats_mc = exchange(mc.addr(), b"stats\r\n", false);
    let stats_ours = exchange(ours.addr(), b"stats\r\n", false);
    for name in [
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "cas_badval",
        "cmd_get",
        "get_hits",
        "get_misses",
        "cmd_touch",
        "touch_hits",
        "touch_misses",
    ] {
        let (want, got) = (stat_value(&stats_mc, name), stat_value(&stats_ours, name));
        if want != got {
            failures.push(format!(
                "stat {name}: memcached {want:?}, cache-server {got:?}"
            ));
        }
    }
    assert_no_differences(&failures);
}

/// Flags from newer memcached that 1.6.18 answers `invalid flag` to: `E` (explicit CAS) and
/// `x` (md: empty the value, keep the item). We accept them on every meta command like the
/// other known flags (ignored where they mean nothing).
#[test]
fn newer_memcached_flags_are_kept() {
    let ours = OurServer::start("cache-server", &["-p", "0", "-U", "0", "-t", "1"])
        .expect("start cache-server");
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"ms x1 1 E77\r\na\r\nmg x1 c v E1\r\n",
            b"HD\r\nVA 1 c77\r\na\r\n",
        ),
        (
            b"ms x2 2 F3\r\nab\r\nmd x2 x\r\nmg x2 v f\r\nmg x2 x\r\n",
            b"HD\r\nHD\r\nVA 0 f3\r\n\r\nHD\r\n",
        ),
        (
            b"ma x3 N0 J1 x Ex v\r\n",
            b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ),
        (
            b"mg x4 Ex\r\n",
            b"CLIENT_ERROR bad token in command line format\r\n",
        ),
    ];
    assert_our_replies(ours.addr(), cases);
}
