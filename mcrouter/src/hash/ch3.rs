//! `Ch3`: mcrouter's default consistent hash, `furc_hash()`.
//!
//! Ported from `mcrouter/lib/fbi/hash.c` (facebook/mcrouter) and its wrapper
//! `mcrouter/lib/Ch3HashFunc.h`. The algorithm is Mark Rabkin's "FurcHash", a
//! consistent hash over a binary decision tree:
//!
//! 1. `d` is the number of bits needed for `m` buckets (smallest `d` with `m <= 2^d`).
//! 2. A pseudorandom bit stream is generated from the key: word 0 is
//!    MurmurHash64A(key, seed 4193360111), word `n` is MurmurHash64A of word `n-1`
//!    (an 8-byte rehash); bit `i` is bit `i % 64` of word `i / 64`.
//! 3. Starting at bit `a = d`: while bit `a` is 0, decrease `d` (returning 0 when it
//!    reaches 0) and set `a = d`. Then `a += 23` and read `d - 1` more bits, each 23
//!    positions apart, to form `num` (with a leading 1). If `num < m` it is the
//!    answer, otherwise try again (at most 32 tries, then 0).
//!
//! The result for `m` buckets either equals the result for `m - 1` buckets or is
//! `m - 1`, so growing a pool moves keys only onto the new servers.

/// Seed of the first MurmurHash64A and of every rehash.
pub(crate) const SEED: u32 = 4_193_360_111;
/// Maximum number of tries for an in-range result before returning 0.
pub(crate) const MAX_TRIES: u32 = 32;
/// Gap in bit index between the bits of one try; limits pools to `2^FURC_SHIFT`.
pub(crate) const FURC_SHIFT: u32 = 23;
/// Words of the bit stream kept per call; must exceed the highest word a call can
/// touch (`MAX_TRIES * FURC_SHIFT * (FURC_SHIFT + 1) / 64` < 300).
const FURC_CACHE_SIZE: usize = 1024;

const MURMUR_M: u64 = 0xc6a4_a793_5bd1_e995;
const MURMUR_R: u32 = 47;

/// Largest pool `furc_hash` supports: `2^23` (8,388,608) buckets.
pub const MAX_POOL_SIZE: usize = 1 << FURC_SHIFT;

/// MurmurHash64A by Austin Appleby (64-bit, little-endian reads), as in `hash.c`.
pub fn murmur_hash_64a(key: &[u8], seed: u32) -> u64 {
    let len = key.len();
    let mut h = u64::from(seed) ^ (len as u64).wrapping_mul(MURMUR_M);

    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("chunk of 8"));
        k = k.wrapping_mul(MURMUR_M);
        k ^= k >> MURMUR_R;
        k = k.wrapping_mul(MURMUR_M);
        h ^= k;
        h = h.wrapping_mul(MURMUR_M);
    }

    let tail = chunks.remainder();
    if !tail.is_empty() {
        // The C `switch (len & 7)` falls through from the highest byte down to byte 0.
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(MURMUR_M);
    }

    h ^= h >> MURMUR_R;
    h = h.wrapping_mul(MURMUR_M);
    h ^= h >> MURMUR_R;
    h
}

/// MurmurHash64A of one `u64` word with seed [`SEED`] (`murmur_rehash_64A`).
pub(crate) fn murmur_rehash_64a(mut k: u64) -> u64 {
    let mut h = u64::from(SEED) ^ 8u64.wrapping_mul(MURMUR_M);
    k = k.wrapping_mul(MURMUR_M);
    k ^= k >> MURMUR_R;
    k = k.wrapping_mul(MURMUR_M);
    h ^= k;
    h = h.wrapping_mul(MURMUR_M);
    h ^= h >> MURMUR_R;
    h = h.wrapping_mul(MURMUR_M);
    h ^= h >> MURMUR_R;
    h
}

/// The key-dependent bit stream of `furc_get_bit`, computed lazily.
struct BitStream<'a> {
    key: &'a [u8],
    words: [u64; FURC_CACHE_SIZE],
    /// Number of valid entries at the front of `words`.
    filled: usize,
}

impl<'a> BitStream<'a> {
    fn new(key: &'a [u8]) -> Self {
        BitStream {
            key,
            words: [0; FURC_CACHE_SIZE],
            filled: 0,
        }
    }

    fn bit(&mut self, idx: u32) -> u32 {
        let ord = (idx >> 6) as usize;
        while self.filled <= ord {
            let n = self.filled;
            self.words[n] = if n == 0 {
                murmur_hash_64a(self.key, SEED)
            } else {
                murmur_rehash_64a(self.words[n - 1])
            };
            self.filled += 1;
        }
        ((self.words[ord] >> (idx & 0x3f)) & 1) as u32
    }
}

/// `furc_hash(key, len, m)`: the bucket in `0..m` for `key` (0 when `m <= 1`).
///
/// # Panics
///
/// If `m` exceeds [`MAX_POOL_SIZE`] (the C code asserts the same).
pub fn furc_hash(key: &[u8], m: u32) -> u32 {
    assert!(
        m as usize <= MAX_POOL_SIZE,
        "furc_hash: pool size {m} exceeds {MAX_POOL_SIZE}"
    );
    if m <= 1 {
        return 0;
    }

    let mut bits = BitStream::new(key);
    let mut d: u32 = 0;
    while u64::from(m) > (1u64 << d) {
        d += 1;
    }

    let mut a = d;
    for _ in 0..MAX_TRIES {
        while bits.bit(a) == 0 {
            d -= 1;
            if d == 0 {
                return 0;
            }
            a = d;
        }
        a += FURC_SHIFT;
        let mut num: u32 = 1;
        for _ in 0..d - 1 {
            num = (num << 1) | bits.bit(a);
            a += FURC_SHIFT;
        }
        if num < m {
            return num;
        }
    }
    // Give up; 0 is a legal value in all cases.
    0
}

/// mcrouter's `Ch3HashFunc`: furc hash over a fixed pool size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ch3 {
    n: u32,
}

impl Ch3 {
    /// A Ch3 function over `n` servers; `None` when `n` is 0 or above
    /// [`MAX_POOL_SIZE`] (mcrouter throws "Pool size out of range for Ch3").
    pub fn new(n: usize) -> Option<Self> {
        if n == 0 || n > MAX_POOL_SIZE {
            return None;
        }
        Some(Ch3 { n: n as u32 })
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Always false: a `Ch3` has at least one server.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The server index in `0..len()` for `hashable`.
    pub fn pick(&self, hashable: &[u8]) -> usize {
        furc_hash(hashable, self.n) as usize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bytes -128..=127 as `char`s, i.e. 0x80..=0xff followed by 0x00..=0x7f, as built
    /// by mcrouter's tests (`test_max_key.push_back(i - 128)`).
    pub(crate) fn all_bytes_key() -> Vec<u8> {
        (-128i32..128).map(|i| i as i8 as u8).collect()
    }

    /// Golden vectors from mcrouter's `mcrouter/lib/test/Ch3HashTest.cpp`: (key, servers,
    /// expected index). WeightedCh3 with all weights 1.0 must give the same.
    pub(crate) fn golden_cases() -> Vec<(Vec<u8>, usize, usize)> {
        let mut reversed = all_bytes_key();
        reversed.reverse();
        vec![
            (b"sample".to_vec(), 100, 97),
            (b"sample".to_vec(), 1, 0),
            (b"".to_vec(), 100, 72),
            (b"".to_vec(), 1, 0),
            (b"".to_vec(), MAX_POOL_SIZE, 6_173_600),
            (b"sample".to_vec(), MAX_POOL_SIZE, 5_167_780),
            (all_bytes_key(), 99_999, 31_015),
            (reversed, 99_999, 67_101),
        ]
    }

    #[test]
    fn golden_single_keys() {
        for (key, n, want) in golden_cases() {
            let f = Ch3::new(n).unwrap();
            assert_eq!(
                f.pick(&key),
                want,
                "key {:?} n {n}",
                String::from_utf8_lossy(&key)
            );
        }
    }

    fn decimal_key_counts(n: usize, keys: usize) -> Vec<usize> {
        let f = Ch3::new(n).unwrap();
        let mut counts = vec![0; n];
        for i in 0..keys {
            counts[f.pick(i.to_string().as_bytes())] += 1;
        }
        counts
    }

    /// Golden distributions from `Ch3HashTest.cpp` (`ch3_3`, `ch3_10`).
    #[test]
    fn golden_distributions() {
        assert_eq!(decimal_key_counts(3, 1000), vec![307, 342, 351]);
        assert_eq!(
            decimal_key_counts(10, 10_000),
            vec![995, 955, 1046, 968, 1032, 972, 1016, 1038, 1010, 968]
        );
    }

    #[test]
    fn pool_of_one_is_always_zero() {
        let f = Ch3::new(1).unwrap();
        for key in [&b""[..], b"a", b"sample", &all_bytes_key()] {
            assert_eq!(f.pick(key), 0);
        }
        assert_eq!(furc_hash(b"anything", 0), 0);
    }

    #[test]
    fn rejects_bad_pool_sizes() {
        assert!(Ch3::new(0).is_none());
        assert!(Ch3::new(MAX_POOL_SIZE + 1).is_none());
        assert!(Ch3::new(MAX_POOL_SIZE).is_some());
    }

    /// The consistency property from mcrouter's `hash_test.cpp`: growing the pool from
    /// `m` to `m + k` either keeps a key's bucket or moves it into the new range.
    #[test]
    fn growing_pool_only_moves_keys_to_new_servers() {
        let sizes = [
            1u32, 2, 3, 5, 8, 13, 17, 64, 100, 101, 1000, 1023, 1024, 1025,
        ];
        for i in 0..2000 {
            let key = format!("key-{i}");
            let mut prev: Option<(u32, u32)> = None;
            for &m in &sizes {
                let b = furc_hash(key.as_bytes(), m);
                assert!(b < m);
                if let Some((pm, pb)) = prev {
                    assert!(b == pb || b >= pm, "{key}: {pm}->{m} moved {pb}->{b}");
                }
                prev = Some((m, b));
            }
        }
    }

    /// Properties of MurmurHash64A that follow from the algorithm: every input byte
    /// matters, and the length (not only the bytes) feeds the initial state.
    #[test]
    fn murmur_depends_on_every_byte_and_length() {
        let base = murmur_hash_64a(b"0123456789abcdef", SEED);
        for i in 0..16 {
            let mut k = *b"0123456789abcdef";
            k[i] ^= 1;
            assert_ne!(murmur_hash_64a(&k, SEED), base, "byte {i}");
        }
        assert_ne!(murmur_hash_64a(b"", SEED), murmur_hash_64a(b"\0", SEED));
        assert_ne!(murmur_hash_64a(b"a", 0), murmur_hash_64a(b"a", 1));
    }
}
