//! `Crc32`: `(crc32(key) & 0x7fffffff) % n`.
//!
//! From mcrouter's `mcrouter/lib/Crc32HashFunc.h` and `crc32_hash()` in
//! `mcrouter/lib/fbi/hash.c`: the standard reflected CRC-32 (polynomial 0xedb88320,
//! initial value and final xor 0xffffffff, the zlib/IEEE one), with the top bit
//! cleared, modulo the pool size. Not consistent: resizing a pool moves most keys.

/// mcrouter's `crc32_hash()`: standard CRC-32 of `key`.
pub fn crc32_hash(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

/// mcrouter's `Crc32HashFunc` over a fixed pool size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crc32 {
    n: u32,
}

impl Crc32 {
    /// A Crc32 function over `n` servers; `None` when `n` is 0 or above `u32::MAX`.
    pub fn new(n: usize) -> Option<Self> {
        let n = u32::try_from(n).ok()?;
        (n > 0).then_some(Crc32 { n })
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Always false: a `Crc32` has at least one server.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The server index in `0..len()` for `hashable`.
    pub fn pick(&self, hashable: &[u8]) -> usize {
        ((crc32_hash(hashable) & 0x7fff_ffff) % self.n) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ch3::tests::all_bytes_key;

    /// Golden vectors from mcrouter's `mcrouter/lib/test/Crc32HashTest.cpp`.
    #[test]
    fn golden_mcrouter() {
        let mut reversed = all_bytes_key();
        reversed.reverse();
        let cases: &[(&[u8], usize, usize)] = &[
            (b"sample", 100, 7),
            (b"sample", 1, 0),
            (b"", 100, 0),
            (b"", 1, 0),
            (b"", (1 << 30) - 1, 0),
            (b"sample", (1 << 30) - 1, 822_834_884),
            (&all_bytes_key(), 99_999, 11_697),
            (&reversed, 99_999, 97_630),
        ];
        for &(key, n, want) in cases {
            let f = Crc32::new(n).unwrap();
            assert_eq!(
                f.pick(key),
                want,
                "key {:?} n {n}",
                String::from_utf8_lossy(key)
            );
        }
    }

    /// The CRC-32 check value ("123456789" -> 0xcbf43926) and libmemcached's
    /// `test/fixtures/hashes.hpp` crc outputs, which are `(crc32 >> 16) & 0x7fff`
    /// (libhashkit's variant), pin the underlying CRC.
    #[test]
    fn golden_crc32() {
        assert_eq!(crc32_hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32_hash(b""), 0);
        let libhashkit: &[(&str, u32)] = &[
            ("apple", 10542),
            ("beat", 22009),
            ("carrot", 14526),
            ("daikon", 19510),
            ("The quick brown fox jumps over the lazy dog", 16719),
        ];
        for &(key, want) in libhashkit {
            assert_eq!((crc32_hash(key.as_bytes()) >> 16) & 0x7fff, want, "{key}");
        }
    }

    #[test]
    fn rejects_empty_pool() {
        assert!(Crc32::new(0).is_none());
    }
}
