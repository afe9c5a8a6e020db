//! `Rendezvous` and `WeightedRendezvous`: mcrouter's `RendezvousHashFunc` and
//! `WeightedRendezvousHashFunc` (`mcrouter/lib/RendezvousHashFunc.cpp`,
//! `WeightedRendezvousHashFunc.cpp`, `RendezvousHashHelper.h`).
//!
//! Each server is named by a *tag* (a string in the config, not its address or
//! position), hashed once with MurmurHash64A (seed 4193360111). A key is hashed with
//! MurmurHash64A (seed 2718281828), and each server's score is CityHash's
//! `Hash128to64(tag hash, key hash)`. The key goes to the highest score; the first
//! server wins a tie.
//!
//! - `Rendezvous` compares the raw 64-bit scores.
//! - `WeightedRendezvous` maps a score to `U` in `[0, 1)` (its low 53 bits over 2^53)
//!   and compares `weight / -ln(U)`. When every weight is the same positive number,
//!   that order is the order of the low 53 bits, which mcrouter compares directly (the
//!   same answer, without the logarithm); so does this port.
//!
//! Removing a server moves only the keys that were on it (about 1/n of them), whatever
//! its position: the reason to choose these over `Ch3`.

use super::ch3::murmur_hash_64a;

/// MurmurHash64A seed for the tags (`hash.c` takes a 32-bit seed).
pub const TAG_SEED: u32 = 4_193_360_111;
/// MurmurHash64A seed for the keys.
pub const KEY_SEED: u32 = 2_718_281_828;

const FIFTY_THREE_ONES: u64 = u64::MAX >> (64 - 53);

/// CityHash's `Hash128to64`.
pub fn hash128to64(upper: u64, lower: u64) -> u64 {
    const K_MUL: u64 = 0x9ddf_ea08_eb38_2d69;
    let mut a = (lower ^ upper).wrapping_mul(K_MUL);
    a ^= a >> 47;
    let mut b = (upper ^ a).wrapping_mul(K_MUL);
    b ^= b >> 47;
    b.wrapping_mul(K_MUL)
}

/// A score's low 53 bits as a number in `[0, 1)` (mcrouter's `convertInt64ToDouble01`).
fn unit(score: u64) -> f64 {
    (score & FIFTY_THREE_ONES) as f64 / (1u64 << 53) as f64
}

/// How scores compare.
#[derive(Debug, Clone, PartialEq)]
enum Scoring {
    /// `Rendezvous`: the raw 64-bit score.
    Raw,
    /// `WeightedRendezvous` with one positive weight for all: the low 53 bits.
    Masked,
    /// `WeightedRendezvous`: `weight / -ln(U)`.
    Weighted(Vec<f64>),
}

/// A rendezvous hash over a pool's tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous {
    tag_hashes: Vec<u64>,
    scoring: Scoring,
}

impl Rendezvous {
    /// `Rendezvous` over `tags` (one per server, in pool order).
    pub fn new<S: AsRef<str>>(tags: &[S]) -> Self {
        Rendezvous {
            tag_hashes: hash_tags(tags),
            scoring: Scoring::Raw,
        }
    }

    /// `WeightedRendezvous` over `tags` with one weight per tag.
    pub fn weighted<S: AsRef<str>>(tags: &[S], weights: Vec<f64>) -> Self {
        debug_assert_eq!(tags.len(), weights.len());
        let uniform =
            weights.first().is_some_and(|&w| w > 0.0) && weights.windows(2).all(|p| p[0] == p[1]);
        Rendezvous {
            tag_hashes: hash_tags(tags),
            scoring: if uniform {
                Scoring::Masked
            } else {
                Scoring::Weighted(weights)
            },
        }
    }

    /// Whether this is `WeightedRendezvous`.
    pub fn is_weighted(&self) -> bool {
        self.scoring != Scoring::Raw
    }

    pub fn len(&self) -> usize {
        self.tag_hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tag_hashes.is_empty()
    }

    /// Every server index, best first: mcrouter's `RendezvousIterator` (scores compared
    /// as doubles, a tie going to the higher index), used by `RendezvousPolicy`.
    pub fn rank(&self, key: &[u8]) -> Vec<usize> {
        let key_hash = murmur_hash_64a(key, KEY_SEED);
        let mut scored: Vec<(f64, usize)> = self
            .tag_hashes
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let s = hash128to64(t, key_hash);
                let score = match &self.scoring {
                    Scoring::Raw => s as f64,
                    Scoring::Masked => (s & FIFTY_THREE_ONES) as f64,
                    Scoring::Weighted(w) => w[i] * (1.0 / -unit(s).ln()),
                };
                (score, i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
        scored.into_iter().map(|(_, i)| i).collect()
    }

    /// The server index for `key` (0 for an empty pool).
    pub fn pick(&self, key: &[u8]) -> usize {
        let key_hash = murmur_hash_64a(key, KEY_SEED);
        let scores = self.tag_hashes.iter().map(|&t| hash128to64(t, key_hash));
        match &self.scoring {
            Scoring::Raw => first_max(scores, 0u64),
            Scoring::Masked => first_max(scores.map(|s| s & FIFTY_THREE_ONES), 0u64),
            Scoring::Weighted(w) => first_max(
                scores.zip(w).map(|(s, &w)| w * (1.0 / -unit(s).ln())),
                0.0f64,
            ),
        }
    }
}

fn hash_tags<S: AsRef<str>>(tags: &[S]) -> Vec<u64> {
    tags.iter()
        .map(|t| murmur_hash_64a(t.as_ref().as_bytes(), TAG_SEED))
        .collect()
}

/// The position of the first score strictly above every earlier one and above `floor`
/// (0 when none is).
fn first_max<T: PartialOrd>(scores: impl Iterator<Item = T>, floor: T) -> usize {
    let mut best = floor;
    let mut pos = 0;
    for (i, s) in scores.enumerate() {
        if s > best {
            best = s;
            pos = i;
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    //! Golden vectors from mcrouter's `lib/test/RendezvousHashTest.cpp` and
    //! `lib/test/WeightedRendezvousHashTest.cpp` (tags `xxx.<i>.yy`).
    use super::*;

    fn tags(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("xxx.{i}.yy")).collect()
    }

    /// Bytes -128..=127 as C++ `char`s.
    fn max_key() -> Vec<u8> {
        (0..256).map(|i| (i - 128) as i8 as u8).collect()
    }

    fn counts(f: &Rendezvous, keys: usize) -> Vec<usize> {
        let mut c = vec![0; f.len()];
        for i in 0..keys {
            c[f.pick(format!("mykey:{i}").as_bytes())] += 1;
        }
        c
    }

    /// Keys of 10000 that move when the server at `removed` leaves.
    fn moved(build: impl Fn(&[String]) -> Rendezvous, n: usize, removed: usize) -> usize {
        let all = tags(n);
        let mut fewer = all.clone();
        fewer.remove(removed);
        let (a, b) = (build(&all), build(&fewer));
        (0..10000)
            .filter(|i| {
                let k = format!("mykey:{i}");
                all[a.pick(k.as_bytes())] != fewer[b.pick(k.as_bytes())]
            })
            .count()
    }

    #[test]
    fn rendezvous_golden() {
        let f3 = Rendezvous::new(&tags(3));
        assert_eq!(f3.pick(b"sample"), 1);
        assert_eq!(f3.pick(b""), 1);
        assert_eq!(f3.pick(b"mykey"), 1);
        assert_eq!(f3.pick(&max_key()), 1);
        let f343 = Rendezvous::new(&tags(343));
        assert_eq!(f343.pick(&max_key()), 183);
        assert_eq!(f343.pick(b"sample"), 45);
        assert_eq!(f343.pick(b""), 291);
        assert_eq!(f343.pick(b"mykey"), 132);
        assert_eq!(counts(&f3, 1000), vec![337, 353, 310]);
        assert_eq!(
            counts(&Rendezvous::new(&tags(10)), 10000),
            vec![947, 1026, 1028, 981, 1016, 970, 1013, 939, 1023, 1057]
        );
    }

    #[test]
    fn rendezvous_moves_only_the_removed_servers_keys() {
        let build = |t: &[String]| Rendezvous::new(t);
        assert_eq!(moved(build, 499, 0), 14);
        assert_eq!(moved(build, 499, 498), 24);
        assert_eq!(moved(build, 499, 499 / 2), 15);
    }

    #[test]
    fn weighted_rendezvous_golden() {
        let f3 = Rendezvous::weighted(&tags(3), vec![1.0; 3]);
        assert_eq!(f3.pick(b"sample"), 0);
        assert_eq!(f3.pick(b""), 2);
        assert_eq!(f3.pick(b"mykey"), 1);
        assert_eq!(f3.pick(&max_key()), 1);
        let f343 = Rendezvous::weighted(&tags(343), vec![1.0; 343]);
        assert_eq!(f343.pick(&max_key()), 142);
        assert_eq!(f343.pick(b"sample"), 115);
        assert_eq!(f343.pick(b""), 279);
        assert_eq!(f343.pick(b"mykey"), 302);
        assert_eq!(counts(&f3, 10000), vec![3409, 3360, 3231]);
        let w = |v: Vec<f64>| Rendezvous::weighted(&tags(v.len()), v);
        assert_eq!(
            counts(&w(vec![1.0, 0.5, 0.1]), 10000),
            vec![6292, 3118, 590]
        );
        assert_eq!(counts(&w(vec![1.0, 0.0, 0.5]), 10000), vec![6737, 0, 3263]);
        assert_eq!(
            counts(
                &w(vec![1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5]),
                10000
            ),
            vec![1381, 1299, 1283, 1359, 1296, 667, 669, 665, 672, 709]
        );
    }

    #[test]
    fn weighted_rendezvous_moves_only_the_removed_servers_keys() {
        let build = |t: &[String]| Rendezvous::weighted(t, vec![1.0; t.len()]);
        assert_eq!(moved(build, 499, 0), 19);
        assert_eq!(moved(build, 499, 498), 17);
        assert_eq!(moved(build, 499, 499 / 2), 21);
    }

    #[test]
    fn rank_starts_with_the_pick_and_lists_every_server_once() {
        for f in [
            Rendezvous::new(&tags(11)),
            Rendezvous::weighted(&tags(11), vec![2.0; 11]),
            Rendezvous::weighted(&tags(11), (0..11).map(|i| 1.0 + i as f64).collect()),
        ] {
            for i in 0..300 {
                let k = format!("key{i}");
                let r = f.rank(k.as_bytes());
                assert_eq!(r[0], f.pick(k.as_bytes()), "{k}");
                let mut sorted = r.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..11).collect::<Vec<_>>());
            }
        }
        // The order is the rendezvous order: removing the best server leaves the rest
        // ranked as before, the second best now first.
        let all = tags(9);
        let f = Rendezvous::new(&all);
        let r = f.rank(b"sample");
        let rest: Vec<String> = all.iter().filter(|t| **t != all[r[0]]).cloned().collect();
        let g = Rendezvous::new(&rest);
        let expect: Vec<&String> = r[1..].iter().map(|&i| &all[i]).collect();
        let got: Vec<&String> = g.rank(b"sample").iter().map(|&i| &rest[i]).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn equal_weights_pick_as_the_weighted_formula_does() {
        // The masked shortcut must agree with weight / -ln(U) for equal weights: force
        // the formula with a negligibly different last weight that never wins a key.
        let t = tags(7);
        let shortcut = Rendezvous::weighted(&t, vec![0.5; 7]);
        let mut w = vec![0.5; 7];
        w[6] = 0.0;
        let formula = Rendezvous::weighted(&t, w);
        assert!(matches!(formula.scoring, Scoring::Weighted(_)));
        for i in 0..5000 {
            let k = format!("k{i}");
            let s = shortcut.pick(k.as_bytes());
            if s != 6 {
                assert_eq!(s, formula.pick(k.as_bytes()), "{k}");
            }
        }
    }
}
