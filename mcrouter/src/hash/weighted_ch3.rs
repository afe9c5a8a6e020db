//! `WeightedCh3`: furc hash with per-server weights in `[0.0, 1.0]`.
//!
//! Ported from mcrouter's `mcrouter/lib/WeightedCh3HashFunc.{h,cpp}`:
//!
//! ```text
//! try 32 times:
//!   index = furc_hash(key', n)              key' = key, then key + salt_i
//!   p     = SpookyHashV2::Hash32(key', seed 0xface2014)     (as u64)
//!   w     = (u64)(weights[index] * 4294967295.0)             (C++ truncation)
//!   if p < w: return index
//!   key'  = key + decimal digits of i, least significant first ("0".."9", "01", "11", ...)
//! return index                             (the last one drawn)
//! ```
//!
//! With every weight 1.0 the first draw is accepted unless the 32-bit spooky hash is
//! exactly `u32::MAX`, so the result equals [`Ch3`](super::ch3::Ch3) for all but about
//! one key in 4 billion. Lowering one weight only moves (a share of) that server's keys.

use super::ch3::{furc_hash, MAX_POOL_SIZE};
use super::spooky;

/// Number of draws before giving up and returning the last index.
const NUM_TRIES: usize = 32;
/// Seed of the spooky hash that decides whether a draw is accepted.
const SPOOKY_SEED: u32 = 0xface_2014;

/// Why a set of weights was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    /// No weights at all (the pool would be empty).
    #[error("WeightedCh3: no weights (the pool is empty)")]
    Empty,
    /// More servers than furc supports.
    #[error("WeightedCh3: {0} servers exceed the maximum of {MAX_POOL_SIZE}")]
    TooMany(usize),
    /// A weight outside `[0.0, 1.0]` (or NaN).
    #[error("WeightedCh3: weights[{index}] = {weight} is not in [0.0, 1.0]")]
    OutOfRange { index: usize, weight: f64 },
}

/// The weights of a furc-based weighted pool (`WeightedCh3`, `WeightedCh4`): at least
/// one, at most [`MAX_POOL_SIZE`], each in `[0, 1]`.
pub fn check_weights(weights: &[f64]) -> Result<(), WeightsError> {
    if weights.is_empty() {
        return Err(WeightsError::Empty);
    }
    if weights.len() > MAX_POOL_SIZE {
        return Err(WeightsError::TooMany(weights.len()));
    }
    if let Some((index, &weight)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(0.0..=1.0).contains(*w))
    {
        return Err(WeightsError::OutOfRange { index, weight });
    }
    Ok(())
}

/// mcrouter's `WeightedCh3HashFunc`; the pool size is the number of weights.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedCh3 {
    weights: Vec<f64>,
}

impl WeightedCh3 {
    /// A weighted Ch3 over `weights.len()` servers; each weight must be in `[0, 1]`.
    pub fn new(weights: Vec<f64>) -> Result<Self, WeightsError> {
        check_weights(&weights)?;
        Ok(WeightedCh3 { weights })
    }

    /// The per-server weights.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Always false: a `WeightedCh3` has at least one server.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The server index in `0..len()` for `hashable`.
    pub fn pick(&self, hashable: &[u8]) -> usize {
        let n = self.weights.len() as u32;
        let mut salted: Vec<u8> = Vec::new();
        let mut index = 0;
        for attempt in 0..NUM_TRIES {
            let key: &[u8] = if attempt == 0 { hashable } else { &salted };
            index = furc_hash(key, n) as usize;
            let p = u64::from(spooky::hash32(key, SPOOKY_SEED));
            // `uint64_t w = weight * std::numeric_limits<uint32_t>::max();`
            let w = (self.weights[index] * f64::from(u32::MAX)) as u64;
            if p < w {
                return index;
            }
            // Next key: the original plus the reversed decimal digits of `attempt`.
            salted.clear();
            salted.extend_from_slice(hashable);
            let mut s = attempt;
            loop {
                salted.push(b'0' + (s % 10) as u8);
                s /= 10;
                if s == 0 {
                    break;
                }
            }
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ch3::tests::golden_cases;
    use crate::hash::ch3::Ch3;

    fn counts(f: &WeightedCh3, keys: usize) -> Vec<usize> {
        let mut c = vec![0; f.len()];
        for i in 0..keys {
            c[f.pick(i.to_string().as_bytes())] += 1;
        }
        c
    }

    /// `WeightedCh3HashFuncTest.cpp` `basic`: all weights 1.0 behave like Ch3.
    #[test]
    fn golden_all_ones_match_ch3_vectors() {
        for (key, n, want) in golden_cases() {
            let f = WeightedCh3::new(vec![1.0; n]).unwrap();
            assert_eq!(f.pick(&key), want, "n {n}");
        }
    }

    /// `zeroWeight`: every draw is rejected, so the 32nd draw is returned.
    #[test]
    fn golden_zero_weights() {
        let one = WeightedCh3::new(vec![0.0]).unwrap();
        assert_eq!(one.pick(b"sample"), 0);
        assert_eq!(one.pick(b""), 0);
        let hundred = WeightedCh3::new(vec![0.0; 100]).unwrap();
        assert_eq!(hundred.pick(b"sample"), 59);
        assert_eq!(hundred.pick(b""), 45);
    }

    /// `reducedWeight`: servers with weight 1.0 keep all their Ch3 keys; the reduced
    /// server loses some; exact golden counts.
    #[test]
    fn golden_reduced_weight() {
        let ch3 = Ch3::new(3).unwrap();
        let f = WeightedCh3::new(vec![1.0, 1.0, 0.7]).unwrap();
        for i in 0..1000 {
            let key = i.to_string();
            let c = ch3.pick(key.as_bytes());
            if c != 2 {
                assert_eq!(f.pick(key.as_bytes()), c, "key {key}");
            }
        }
        assert_eq!(counts(&f, 1000), vec![341, 371, 288]);
    }

    /// `randomWeights`: exact golden counts for ten uneven weights.
    #[test]
    fn golden_random_weights() {
        let f = WeightedCh3::new(vec![
            0.429, 0.541, 0.117, 0.998, 0.283, 0.065, 0.109, 0.042, 0.676, 0.943,
        ])
        .unwrap();
        assert_eq!(
            counts(&f, 10_000),
            vec![1016, 1252, 288, 2354, 661, 195, 247, 122, 1668, 2197]
        );
    }

    /// The share of a server is proportional to its weight (relative to the others),
    /// within a statistical tolerance, and weight-0 servers get nothing as long as
    /// some server has a positive weight (32 draws make falling through negligible).
    #[test]
    fn distribution_follows_weights() {
        let weights = vec![1.0, 0.5, 0.0, 0.25, 1.0, 0.0];
        let f = WeightedCh3::new(weights.clone()).unwrap();
        let keys = 40_000;
        let c = counts(&f, keys);
        assert_eq!(c[2], 0);
        assert_eq!(c[5], 0);
        let total: f64 = weights.iter().sum();
        for (i, &w) in weights.iter().enumerate() {
            let expected = keys as f64 * w / total;
            let got = c[i] as f64;
            // ~5 standard deviations of a binomial at these sizes.
            let tol = 5.0 * (expected.max(1.0)).sqrt() + 1.0;
            assert!(
                (got - expected).abs() <= tol,
                "server {i}: got {got}, expected {expected:.0} ± {tol:.0} ({c:?})"
            );
        }
    }

    #[test]
    fn rejects_bad_weights() {
        assert_eq!(WeightedCh3::new(vec![]), Err(WeightsError::Empty));
        assert_eq!(
            WeightedCh3::new(vec![1.0, 1.5]),
            Err(WeightsError::OutOfRange {
                index: 1,
                weight: 1.5
            })
        );
        assert!(matches!(
            WeightedCh3::new(vec![f64::NAN]),
            Err(WeightsError::OutOfRange { index: 0, .. })
        ));
        assert!(matches!(
            WeightedCh3::new(vec![-0.1]),
            Err(WeightsError::OutOfRange { index: 0, .. })
        ));
    }
}
