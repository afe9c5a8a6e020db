//! `WeightedCh4`: mcrouter's `WeightedCh4HashFunc` (`mcrouter/lib/WeightedCh4HashFunc.cpp`
//! and `lib/fbi/WeightedFurcHash.cpp`, `weightedFurcHash`).
//!
//! The furc walk of [`Ch3`](super::Ch3) picks a server; the next 32 bits of the same
//! bit stream then accept it with probability `weight` (a weight of 1 always accepts).
//! A rejected pick starts a new walk further along the stream, up to 32 walks; after
//! that the last 32 bits read, modulo the pool size, decide. With every weight 1 it is
//! exactly `Ch3`. Weights are `[0, 1]`, one per server, as for `WeightedCh3`; unlike
//! `WeightedCh3` it needs no second hash and no retries on key variations.

use super::ch3::{murmur_hash_64a, murmur_rehash_64a, FURC_SHIFT, MAX_TRIES, SEED};
use super::weighted_ch3::{check_weights, WeightsError};

/// Walks before giving up (mcrouter's `kNumTries`).
const NUM_TRIES: u32 = 32;
/// Words of the bit stream kept (a cyclic cache, as in mcrouter: a walk never looks
/// back further than its own start).
const CACHE_WORDS: usize = 1 << 10;
const CACHE_MASK: u32 = CACHE_WORDS as u32 - 1;

/// mcrouter's `WeightedCh4HashFunc`; the pool size is the number of weights.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCh4 {
    weights: Vec<f64>,
}

impl WeightedCh4 {
    /// Over `weights.len()` servers; each weight must be in `[0, 1]` (the checks and
    /// errors of `WeightedCh3`).
    pub fn new(weights: Vec<f64>) -> Result<Self, WeightsError> {
        check_weights(&weights)?;
        Ok(WeightedCh4 { weights })
    }

    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn pick(&self, key: &[u8]) -> usize {
        weighted_furc_hash(key, &self.weights, NUM_TRIES) as usize
    }
}

/// The key's bit stream: word 0 is MurmurHash64A(key), word n the rehash of word n-1.
struct Stream {
    words: Box<[u64; CACHE_WORDS]>,
    /// Highest word computed.
    last: u32,
}

impl Stream {
    fn new(key: &[u8]) -> Self {
        let mut words = Box::new([0u64; CACHE_WORDS]);
        words[0] = murmur_hash_64a(key, SEED);
        Stream { words, last: 0 }
    }

    fn word(&self, ord: u32) -> u64 {
        self.words[(ord & CACHE_MASK) as usize]
    }

    fn fill_to(&mut self, ord: u32) {
        while self.last < ord {
            let next = murmur_rehash_64a(self.word(self.last));
            self.last += 1;
            self.words[(self.last & CACHE_MASK) as usize] = next;
        }
    }

    fn bit(&mut self, idx: u32) -> u32 {
        self.fill_to(idx >> 6);
        ((self.word(idx >> 6) >> (idx & 0x3f)) & 1) as u32
    }

    /// The 32 bits starting at bit `idx`.
    fn next32(&mut self, idx: u32) -> u32 {
        self.fill_to((idx + 32) >> 6);
        let (ord, shift) = (idx >> 6, idx & 0x3f);
        let low = self.word(ord) >> shift;
        if shift <= 32 {
            return low as u32;
        }
        (low | (self.word(ord + 1) << (64 - shift))) as u32
    }
}

/// `weightedFurcHash(key, weights, maxRetries)`.
fn weighted_furc_hash(key: &[u8], weights: &[f64], max_retries: u32) -> u32 {
    let m = weights.len() as u32;
    if m <= 1 {
        return 0;
    }
    let msb = 32 - (m - 1).leading_zeros();
    let mut bits = Stream::new(key);
    let (mut d, mut start, mut a) = (msb, 0u32, msb);
    let mut num = m;
    let mut furc_attempt = 0;
    let mut next32 = 0u32;
    let mut attempt = 0;
    while attempt < max_retries {
        while bits.bit(a) == 0 {
            d -= 1;
            if d == start {
                num = 0;
                break;
            }
            a = d;
        }
        a += FURC_SHIFT;
        if num != 0 {
            num = 1;
            for _ in start..d.saturating_sub(1) {
                num = (num << 1) | bits.bit(a);
                a += FURC_SHIFT;
            }
            if num >= m {
                furc_attempt += 1;
                if furc_attempt == MAX_TRIES {
                    num = 0;
                } else {
                    num = m;
                    continue;
                }
            }
        }
        let w = weights[num as usize];
        if w == 1.0 {
            return num;
        }
        let threshold = (w * f64::from(u32::MAX)) as u64;
        next32 = bits.next32(a);
        if u64::from(next32) < threshold {
            return num;
        }
        furc_attempt = 0;
        start = a;
        d = a + msb;
        a = d;
        num = m;
        attempt += 1;
    }
    // Give up: the last 32 bits read decide.
    next32 % m
}

#[cfg(test)]
mod tests {
    //! Golden vectors from mcrouter's `lib/test/WeightedCh4HashFuncTest.cpp`.
    use super::*;
    use crate::hash::ch3::{tests::all_bytes_key, Ch3, MAX_POOL_SIZE};

    fn ones(n: usize) -> WeightedCh4 {
        WeightedCh4::new(vec![1.0; n]).unwrap()
    }

    #[test]
    fn all_weights_one_is_ch3() {
        assert_eq!(ones(100).pick(b"sample"), 97);
        assert_eq!(ones(1).pick(b"sample"), 0);
        assert_eq!(ones(100).pick(b""), 72);
        assert_eq!(ones(1).pick(b""), 0);
        let max = ones(MAX_POOL_SIZE);
        assert_eq!(max.pick(b""), 6173600);
        assert_eq!(max.pick(b"sample"), 5167780);
        let mut key = all_bytes_key();
        assert_eq!(ones(99999).pick(&key), 31015);
        key.reverse();
        assert_eq!(ones(99999).pick(&key), 67101);
    }

    #[test]
    fn zero_weights_give_up_with_a_valid_index() {
        let one = WeightedCh4::new(vec![0.0]).unwrap();
        assert_eq!(one.pick(b"sample"), 0);
        assert_eq!(one.pick(b""), 0);
        let hundred = WeightedCh4::new(vec![0.0; 100]).unwrap();
        assert_eq!(hundred.pick(b"sample"), 12);
        assert_eq!(hundred.pick(b""), 69);
    }

    #[test]
    fn a_reduced_weight_sheds_only_that_servers_keys() {
        let ch3 = Ch3::new(3).unwrap();
        let w = WeightedCh4::new(vec![1.0, 1.0, 0.7]).unwrap();
        let (mut c3, mut c4) = (vec![0; 3], vec![0; 3]);
        for i in 0..1000 {
            let key = i.to_string();
            let (a, b) = (ch3.pick(key.as_bytes()), w.pick(key.as_bytes()));
            if a != 2 {
                assert_eq!(a, b, "{key}");
            }
            c3[a] += 1;
            c4[b] += 1;
        }
        assert_eq!(c3, [307, 342, 351]);
        assert_eq!(c4, [352, 378, 270]);
    }

    #[test]
    fn random_weights() {
        let w = WeightedCh4::new(vec![
            0.429, 0.541, 0.117, 0.998, 0.283, 0.065, 0.109, 0.042, 0.676, 0.943,
        ])
        .unwrap();
        let mut c = vec![0; 10];
        for i in 0..10000 {
            c[w.pick(i.to_string().as_bytes())] += 1;
        }
        assert_eq!(c, [963, 1226, 305, 2371, 700, 162, 250, 105, 1615, 2303]);
    }
}
