//! Number parsing.
//!
//! Requests use memcached 1.6.18's `safe_strto*` helpers (util.c) exactly: C `strtol` /
//! `strtoul` / `strtoull` in base 10 on a 64-bit `long`, refused only when no digit was read,
//! on `ERANGE`, or when the digits are followed by something other than whitespace or the
//! end of the token; then the 64-bit result is stored into the field's own type, truncating:
//!
//! | helper | memcached | fields | result |
//! |--------|-----------|--------|--------|
//! | [`mc_strtol`] | `safe_strtol` | exptimes (`set`.., `touch`, `gat(s)`, `flush_all`, meta `T N R`), data lengths (`set`.., `ms`), `slabs reassign` classes | low 32 bits of the `i64`, as `i32` |
//! | [`mc_strtoul`] | `safe_strtoul` | `slabs automove` | low 32 bits of the `u64` |
//! | [`mc_strtoul_flags`] | `safe_strtoul` | client flags (`set`.., meta `F`) | the `u64` if it fits 32 bits, else refused (deliberate) |
//! | [`mc_strtoull`] | `safe_strtoull` | `cas` unique, `incr`/`decr` delta, meta `C D J E` | `u64` |
//!
//! `verbosity`, `cache_memlimit` and `lru_crawler sleep|tocrawl` are `safe_strtoul` too, but
//! their requests carry a `u64` (they re-encode exactly, for the router): they are read with
//! [`mc_strtoull`] and the server keeps the low 32 bits.
//!
//! So `4294967297` is 1 as a length, `T4294967396` is `T100`, `-4294967295` is 1
//! as an exptime, and the unsigned helpers take `-0` and even `-18446744073709551615` (C
//! negates modulo 2^64, giving 1) but refuse any `-` whose result has the top bit set (`-1`).
//! Before the digits C skips whitespace (`\t \n \v \f \r`; a token never holds a space)
//! and reads one `+` or `-`; after them a whitespace byte ends the number and the rest of
//! the token is ignored (`5\tzz` is 5). Leading zeros are unlimited.
//!
//! Replies (`VALUE`, `VA`, numbers) are parsed strictly with [`parse_u64`] and friends.

/// C `isspace` in the "C" locale.
#[inline]
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The common front of `strtol`/`strtoull` with memcached's end check: whether a `-` sign
/// was read and the magnitude, or `None` (no digits, more than `u64::MAX`, or trailing bytes
/// that are not whitespace).
#[inline]
fn c_strto(s: &[u8]) -> Option<(bool, u64)> {
    let mut i = 0;
    while i < s.len() && c_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if let Some(&c @ (b'+' | b'-')) = s.get(i) {
        neg = c == b'-';
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while let Some(&b) = s.get(i) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        match v.checked_mul(10).and_then(|x| x.checked_add(d as u64)) {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || overflow {
        return None;
    }
    match s.get(i) {
        Some(&b) if !c_space(b) => None,
        _ => Some((neg, v)),
    }
}

/// memcached's `safe_strtol` into an `int32_t`: `strtol` (64-bit), then truncated.
#[inline]
pub(crate) fn mc_strtol(s: &[u8]) -> Option<i32> {
    let (neg, mag) = c_strto(s)?;
    let v: i64 = if neg {
        // ERANGE below LONG_MIN.
        if mag > 1 << 63 {
            return None;
        }
        (mag as i64).wrapping_neg()
    } else {
        i64::try_from(mag).ok()?
    };
    Some(v as i32)
}

/// memcached's `safe_strtoull`: `strtoull`, refusing a `-` only when the result would be
/// negative as a signed number.
#[inline]
pub(crate) fn mc_strtoull(s: &[u8]) -> Option<u64> {
    let (neg, mag) = c_strto(s)?;
    if !neg {
        return Some(mag);
    }
    let v = mag.wrapping_neg();
    if (v as i64) < 0 {
        None
    } else {
        Some(v)
    }
}

/// memcached's `safe_strtoul` into a `uint32_t`: as [`mc_strtoull`] (`unsigned long` is 64
/// bits), then truncated.
#[inline]
pub(crate) fn mc_strtoul(s: &[u8]) -> Option<u32> {
    mc_strtoull(s).map(|v| v as u32)
}

/// Client flags (`set`.. and meta `F`): [`mc_strtoull`]'s syntax, but a value that does not
/// fit 32 bits is refused instead of truncated. A deliberate difference from memcached 1.6.18,
/// which stores `4294967297` as 1: a client would silently get back other flags than it
/// stored (and decode the value wrongly), where a refusal tells it at once.
#[inline]
pub(crate) fn mc_strtoul_flags(s: &[u8]) -> Option<u32> {
    mc_strtoull(s).and_then(|v| u32::try_from(v).ok())
}

#[inline]
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Strict unsigned 64-bit: an optional `+` and decimal digits, no overflow.
#[inline]
pub(crate) fn parse_u64(s: &[u8]) -> Option<u64> {
    match s.first() {
        Some(b'+') => digits(&s[1..]),
        _ => digits(s),
    }
}

/// Strict unsigned 32-bit.
#[inline]
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Append the decimal form of `v`.
#[inline]
pub(crate) fn push_u64(out: &mut Vec<u8>, v: u64) {
    let mut buf = itoa_buf();
    out.extend_from_slice(fmt_u64(&mut buf, v));
}

#[inline]
pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

#[inline]
fn itoa_buf() -> [u8; 20] {
    [0u8; 20]
}

#[inline]
fn fmt_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_parsers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"+1"), Some(1));
        assert_eq!(parse_u64(b"01"), Some(1));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"0x1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"+"), None);
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
    }

    #[test]
    fn strtol_truncates_like_memcached() {
        assert_eq!(mc_strtol(b"0"), Some(0));
        assert_eq!(mc_strtol(b"-0"), Some(0));
        assert_eq!(mc_strtol(b"+7"), Some(7));
        assert_eq!(mc_strtol(b"-5"), Some(-5));
        assert_eq!(mc_strtol(b"2147483647"), Some(i32::MAX));
        assert_eq!(mc_strtol(b"2147483648"), Some(i32::MIN));
        assert_eq!(mc_strtol(b"4294967295"), Some(-1));
        assert_eq!(mc_strtol(b"4294967297"), Some(1));
        assert_eq!(mc_strtol(b"4294967396"), Some(100));
        assert_eq!(mc_strtol(b"-4294967295"), Some(1));
        assert_eq!(mc_strtol(b"9223372036854775807"), Some(-1));
        assert_eq!(mc_strtol(b"9223372036854775808"), None);
        assert_eq!(mc_strtol(b"-9223372036854775808"), Some(0));
        assert_eq!(mc_strtol(b"-9223372036854775809"), None);
        assert_eq!(mc_strtol(b"99999999999999999999999"), None);
        assert_eq!(mc_strtol(b"000000000000000000000000000001"), Some(1));
        // Whitespace before, whitespace (and anything after it) behind.
        assert_eq!(mc_strtol(b"\t5"), Some(5));
        assert_eq!(mc_strtol(b"\x0b\x0c\r\n-5"), Some(-5));
        assert_eq!(mc_strtol(b"5\t"), Some(5));
        assert_eq!(mc_strtol(b"5\tzz"), Some(5));
        assert_eq!(mc_strtol(b"5\r"), Some(5));
        // Refused: no digits, garbage, a second sign, space after the sign, hex, NUL.
        for bad in [
            &b""[..],
            b"+",
            b"-",
            b"\t",
            b"abc",
            b"5x",
            b"+-1",
            b"--1",
            b"-\t1",
            b"0x10",
            b"1.5",
            b"5\x00",
        ] {
            assert_eq!(mc_strtol(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strtoul_allows_minus_unless_the_result_is_negative() {
        assert_eq!(mc_strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(mc_strtoull(b"18446744073709551616"), None);
        assert_eq!(mc_strtoull(b"-0"), Some(0));
        assert_eq!(mc_strtoull(b"-1"), None);
        assert_eq!(mc_strtoull(b"-9223372036854775808"), None);
        assert_eq!(mc_strtoull(b"-9223372036854775809"), Some(i64::MAX as u64));
        assert_eq!(mc_strtoull(b"-18446744073709551615"), Some(1));
        assert_eq!(mc_strtoull(b"-18446744073709551616"), None);
        assert_eq!(mc_strtoull(b"+5"), Some(5));
        assert_eq!(mc_strtoull(b"\t5\t"), Some(5));
        assert_eq!(mc_strtoull(b"5a"), None);
        assert_eq!(mc_strtoul(b"4294967295"), Some(u32::MAX));
        assert_eq!(mc_strtoul(b"4294967297"), Some(1));
        assert_eq!(mc_strtoul(b"18446744073709551615"), Some(u32::MAX));
        assert_eq!(mc_strtoul(b"-18446744073709551615"), Some(1));
        assert_eq!(mc_strtoul(b"-4294967295"), None);
        assert_eq!(mc_strtoul(b"-0"), Some(0));
        // Flags: same syntax, no truncation.
        assert_eq!(mc_strtoul_flags(b"4294967295"), Some(u32::MAX));
        assert_eq!(mc_strtoul_flags(b"4294967296"), None);
        assert_eq!(mc_strtoul_flags(b"-18446744073709551615"), Some(1));
        assert_eq!(mc_strtoul_flags(b"-0"), Some(0));
        assert_eq!(mc_strtoul_flags(b"\t7"), Some(7));
        assert_eq!(mc_strtoul_flags(b"-1"), None);
    }

    #[test]
    fn formats() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        v.push(b' ');
        push_i64(&mut v, -42);
        assert_eq!(v, b"0 18446744073709551615 -42");
    }
}
