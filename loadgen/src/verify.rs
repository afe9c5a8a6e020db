//! `--verify`: self-describing values.
//!
//! A value is `KEY '#' VERSION(8 hex) '#' FILLER CHECKSUM(8 hex)` where the checksum is
//! FNV-1a 32 of everything before it and the filler is derived from the key and version.
//! A reply is then checked three ways: the checksum (corrupt), the embedded key against the
//! key asked for (wrong key), and the version against the last one this connection wrote
//! for that key (stale). Each key is owned by exactly one connection in verify mode, so
//! "the last value written" is well defined: requests on one connection are answered in
//! order.

/// Smallest value that can carry a key of `key_len` bytes.
pub fn min_value_len(key_len: usize) -> usize {
    key_len + 1 + 8 + 1 + 8
}

fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn push_hex32(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..8).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
}

fn parse_hex32(s: &[u8]) -> Option<u32> {
    if s.len() != 8 {
        return None;
    }
    let mut v = 0u32;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u32;
    }
    Some(v)
}

/// Append a verifiable value of exactly `len` bytes (`len >= min_value_len(key.len())`).
pub fn write_value(out: &mut Vec<u8>, key: &[u8], version: u32, len: usize) {
    let start = out.len();
    out.extend_from_slice(key);
    out.push(b'#');
    push_hex32(out, version);
    out.push(b'#');
    let filler = len.saturating_sub(out.len() - start + 8);
    let mut x = fnv1a(key) ^ version.wrapping_mul(0x9e37_79b9);
    for _ in 0..filler {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(b'a' + (x % 26) as u8);
    }
    let sum = fnv1a(&out[start..]);
    push_hex32(out, sum);
}

/// What a checked value turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Intact, for the right key, with this version.
    Ok { version: u32 },
    /// Checksum mismatch or not one of our values.
    Corrupt,
    /// Intact but written for another key.
    WrongKey,
}

/// Check `data` returned for `key`.
pub fn check_value(key: &[u8], data: &[u8]) -> Check {
    if data.len() < 8 + 10 {
        return Check::Corrupt;
    }
    let (body, sum) = data.split_at(data.len() - 8);
    match parse_hex32(sum) {
        Some(s) if s == fnv1a(body) => {}
        _ => return Check::Corrupt,
    }
    // body = KEY '#' VERSION '#' FILLER; the key never contains '#'... unless the prefix does,
    // so split from the version side: find the '#' 9 bytes after the key.
    if body.len() < key.len() + 10 || &body[..key.len()] != key || body[key.len()] != b'#' {
        return Check::WrongKey;
    }
    let ver = &body[key.len() + 1..key.len() + 9];
    if body[key.len() + 9] != b'#' {
        return Check::WrongKey;
    }
    match parse_hex32(ver) {
        Some(version) => Check::Ok { version },
        None => Check::Corrupt,
    }
}

/// Counters of `--verify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyStats {
    /// Hits whose value was checked.
    pub checked: u64,
    /// Checksum mismatch or unrecognisable value.
    pub corrupt: u64,
    /// Value (or reply key) belonging to another key.
    pub wrong_key: u64,
    /// Intact value but not the last version written.
    pub stale: u64,
    /// Misses for keys this run had written (evictions or lost writes).
    pub unexpected_misses: u64,
    /// Hits for keys this run never wrote (left over from earlier runs): not checked.
    pub unverifiable: u64,
}

impl VerifyStats {
    pub fn merge(&mut self, o: &VerifyStats) {
        self.checked += o.checked;
        self.corrupt += o.corrupt;
        self.wrong_key += o.wrong_key;
        self.stale += o.stale;
        self.unexpected_misses += o.unexpected_misses;
        self.unverifiable += o.unverifiable;
    }

    /// Corrupt + wrong key + stale.
    pub fn failures(&self) -> u64 {
        self.corrupt + self.wrong_key + self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_detection() {
        for len in [min_value_len(5), 64, 1000] {
            let mut v = Vec::new();
            write_value(&mut v, b"key:1", 7, len);
            assert_eq!(v.len(), len);
            assert_eq!(check_value(b"key:1", &v), Check::Ok { version: 7 });
            assert_eq!(check_value(b"key:2", &v), Check::WrongKey);
            for i in 0..v.len() {
                let mut c = v.clone();
                c[i] ^= 0x01;
                assert_ne!(
                    check_value(b"key:1", &c),
                    Check::Ok { version: 7 },
                    "flip at {i}"
                );
            }
        }
        assert_eq!(check_value(b"k", b"short"), Check::Corrupt);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_single_byte_change_is_caught(
            key in "[a-z0-9:]{1,40}",
            version in 1u32..,
            extra in 0usize..300,
            pos in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let len = min_value_len(key.len()) + extra;
            let mut v = Vec::new();
            write_value(&mut v, key.as_bytes(), version, len);
            prop_assert_eq!(v.len(), len);
            prop_assert_eq!(check_value(key.as_bytes(), &v), Check::Ok { version });
            let i = pos.index(v.len());
            v[i] ^= flip;
            prop_assert_ne!(check_value(key.as_bytes(), &v), Check::Ok { version });
        }
    }
}
