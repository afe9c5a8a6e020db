//! Hash functions that pick a destination in a pool for a key.
//!
//! Each function is a port of a reference implementation and is pinned by golden
//! vectors taken from that implementation's own tests:
//!
//! | config name    | module             | reference                                         |
//! |----------------|--------------------|---------------------------------------------------|
//! | `Ch3` (default)| [`ch3`]            | mcrouter `furc_hash` (`lib/fbi/hash.c`)           |
//! | `Crc32`        | [`crc32`]          | mcrouter `Crc32HashFunc`                          |
//! | `WeightedCh3`  | [`weighted_ch3`]   | mcrouter `WeightedCh3HashFunc` (+ SpookyHash V2)  |
//! | `WeightedCh4`  | [`weighted_ch4`]   | mcrouter `WeightedCh4HashFunc` (`weightedFurcHash`) |
//! | `Ketama`       | [`ketama`]         | libmemcached `MEMCACHED_BEHAVIOR_KETAMA` (pylibmc `{"ketama": True}`) |
//! | `KetamaMd5`    | [`ketama`]         | twemproxy `ketama`+`md5`, libmemcached `KETAMA_WEIGHTED` |
//! | `ConstShard`   | [`const_shard`]    | mcrouter `ConstShardHashFunc` (shard in the key, else Ch3) |
//! | `Rendezvous`   | [`rendezvous`]     | mcrouter `RendezvousHashFunc` (needs `tags`)      |
//! | `WeightedRendezvous` | [`rendezvous`] | mcrouter `WeightedRendezvousHashFunc` (`tags`, `weights`) |
//!
//! A pool hashes the *routing key* ([`routing_key()`]: no `/region/cluster/` prefix,
//! cut at `|#|`) with the pool's optional salt appended, exactly as mcrouter's
//! `HashSelector` does; [`HashSelector`] bundles the two.
//!
//! ```
//! use mcrouter::hash::{HashFunc, HashSelector};
//!
//! let servers = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];
//! let func = HashFunc::from_config("Ch3", &servers, None).unwrap();
//! let selector = HashSelector::new(func, None);
//! let index = selector.select(b"/region/cluster/user:42|#|profile");
//! assert!(index < servers.len());
//! assert_eq!(index, selector.select(b"user:42"));
//! ```

pub mod ch3;
pub mod const_shard;
pub mod crc32;
pub mod ketama;
pub mod rendezvous;
pub mod routing_key;
pub mod spooky;
pub mod weighted_ch3;
pub mod weighted_ch4;

pub use ch3::Ch3;
pub use const_shard::ConstShard;
pub use crc32::Crc32;
pub use ketama::{Ketama, KetamaVariant};
pub use rendezvous::Rendezvous;
pub use routing_key::{key_without_route, routing_key, routing_prefix, HASH_STOP};
pub use weighted_ch3::WeightedCh3;
pub use weighted_ch4::WeightedCh4;

/// Default hash function name, as in mcrouter.
pub const DEFAULT_HASH_FUNC: &str = "Ch3";

/// Names accepted by [`HashFunc::from_config`].
pub const HASH_FUNC_NAMES: &[&str] = &[
    "Ch3",
    "Crc32",
    "WeightedCh3",
    "WeightedCh4",
    "Ketama",
    "KetamaMd5",
    "ConstShard",
    "Rendezvous",
    "WeightedRendezvous",
];

/// Whether the function named `name` reads `weights`.
pub fn takes_weights(name: &str) -> bool {
    matches!(
        name,
        "WeightedCh3" | "WeightedCh4" | "KetamaMd5" | "WeightedRendezvous"
    )
}

/// Weight given to servers that have no entry in a too-short `weights` list
/// (mcrouter's `WeightedChHashFuncBase::parseWeights` does the same, loudly).
pub const MISSING_WEIGHT: f64 = 0.5;

/// Why a hash function could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HashError {
    /// The name is not one of [`HASH_FUNC_NAMES`].
    #[error("unknown hash function {name:?}; expected one of: Ch3, Crc32, WeightedCh3, WeightedCh4, Ketama, KetamaMd5, ConstShard, Rendezvous, WeightedRendezvous")]
    UnknownFunction { name: String },
    /// The pool has no servers.
    #[error("{func}: the pool has no servers")]
    EmptyPool { func: &'static str },
    /// The pool is larger than the function supports.
    #[error("{func}: pool size {size} exceeds the maximum of {max}")]
    PoolTooLarge {
        func: &'static str,
        size: usize,
        max: usize,
    },
    /// `WeightedCh3`/`WeightedCh4` without `weights`.
    #[error("{func}: `weights` is required (one number in [0.0, 1.0] per server)")]
    MissingWeights { func: &'static str },
    /// `weights` given to a function that does not use them.
    #[error("{func}: does not take `weights`")]
    UnexpectedWeights { func: &'static str },
    /// A weight with a value the function cannot use.
    #[error("{func}: weights[{index}] = {weight} is invalid: {expected}")]
    BadWeight {
        func: &'static str,
        index: usize,
        weight: f64,
        expected: &'static str,
    },
    /// Weights that do not fit the pool (for example not one per server).
    #[error("{func}: bad weights: {reason}")]
    BadWeights { func: &'static str, reason: String },
    /// `Rendezvous`/`WeightedRendezvous` without `tags`, or with not one per server.
    #[error("{func}: {reason}")]
    BadTags { func: &'static str, reason: String },
    /// A server string Ketama cannot name.
    #[error("{func}: server {server:?} is not `host` or `host:port`")]
    BadServer { func: &'static str, server: String },
}

/// A hash function bound to a pool size, built from its config name.
#[derive(Debug, Clone)]
pub enum HashFunc {
    Ch3(Ch3),
    Crc32(Crc32),
    WeightedCh3(WeightedCh3),
    WeightedCh4(WeightedCh4),
    Ketama(Ketama),
    ConstShard(ConstShard),
    Rendezvous(Rendezvous),
}

/// A pool's `weights`: one per server in order, or (older mcrouter `WeightedRendezvous`
/// configs) by tag.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    List(&'a [f64]),
    ByTag(&'a [(String, f64)]),
}

impl HashFunc {
    /// Builds the function named `name` for the pool `servers` (`host:port` strings,
    /// in pool order; only Ketama reads them, the others only count them).
    ///
    /// `weights` is required by `WeightedCh3` and `WeightedCh4` (each in `[0, 1]`; like
    /// mcrouter, extra weights are ignored and missing ones become [`MISSING_WEIGHT`]),
    /// by `WeightedRendezvous` (see [`HashFunc::from_config_tagged`]) and optional
    /// for `KetamaMd5` (positive whole numbers, one per server, like twemproxy's
    /// `host:port:weight`). The other functions refuse weights rather than ignore them.
    pub fn from_config<S: AsRef<str>>(
        name: &str,
        servers: &[S],
        weights: Option<&[f64]>,
    ) -> Result<Self, HashError> {
        Self::from_config_tagged(name, servers, weights.map(Weights::List), None)
    }

    /// As [`HashFunc::from_config`], with the pool's `tags` (the server names the
    /// rendezvous functions hash; required by them, one per server; the other functions
    /// ignore them, as in mcrouter, where newer configs tag every pool) and weights that
    /// may be given by tag (`WeightedRendezvous` only).
    ///
    /// As in mcrouter, a one-server pool needs no tags: every key goes to its server.
    pub fn from_config_tagged<S: AsRef<str>>(
        name: &str,
        servers: &[S],
        weights: Option<Weights<'_>>,
        tags: Option<&[String]>,
    ) -> Result<Self, HashError> {
        let n = servers.len();
        if let "Rendezvous" | "WeightedRendezvous" = name {
            return rendezvous_from(name, n, weights, tags);
        }
        let weights = match weights {
            None => None,
            Some(Weights::List(w)) => Some(w),
            Some(Weights::ByTag(_)) => {
                return Err(HashError::BadWeights {
                    func: static_name(name),
                    reason: "weights by tag are for WeightedRendezvous; expected a list".into(),
                })
            }
        };
        match name {
            "Ch3" => {
                no_weights("Ch3", weights)?;
                pool_size("Ch3", n, ch3::MAX_POOL_SIZE)?;
                Ok(HashFunc::Ch3(Ch3::new(n).expect("size checked")))
            }
            "ConstShard" => {
                no_weights("ConstShard", weights)?;
                pool_size("ConstShard", n, ch3::MAX_POOL_SIZE)?;
                Ok(HashFunc::ConstShard(
                    ConstShard::new(n).expect("size checked"),
                ))
            }
            "Crc32" => {
                no_weights("Crc32", weights)?;
                pool_size("Crc32", n, u32::MAX as usize)?;
                Ok(HashFunc::Crc32(Crc32::new(n).expect("size checked")))
            }
            "WeightedCh3" => {
                let w = furc_weights("WeightedCh3", n, weights)?;
                Ok(HashFunc::WeightedCh3(
                    WeightedCh3::new(w).expect("weights checked"),
                ))
            }
            "WeightedCh4" => {
                let w = furc_weights("WeightedCh4", n, weights)?;
                Ok(HashFunc::WeightedCh4(
                    WeightedCh4::new(w).expect("weights checked"),
                ))
            }
            "Ketama" => {
                no_weights("Ketama", weights)?;
                ketama_from(
                    "Ketama",
                    servers,
                    Ketama::new(KetamaVariant::Libmemcached, servers),
                )
            }
            "KetamaMd5" => {
                let built = match weights {
                    None => Ketama::new(KetamaVariant::Md5, servers),
                    Some(w) => Ketama::md5_weighted(servers, &integer_weights(w)?),
                };
                ketama_from("KetamaMd5", servers, built)
            }
            other => Err(HashError::UnknownFunction {
                name: other.to_owned(),
            }),
        }
    }

    /// The config name of this function.
    pub fn name(&self) -> &'static str {
        match self {
            HashFunc::Ch3(_) => "Ch3",
            HashFunc::Crc32(_) => "Crc32",
            HashFunc::WeightedCh3(_) => "WeightedCh3",
            HashFunc::WeightedCh4(_) => "WeightedCh4",
            HashFunc::Ketama(k) => match k.variant() {
                KetamaVariant::Libmemcached => "Ketama",
                KetamaVariant::Md5 => "KetamaMd5",
            },
            HashFunc::ConstShard(_) => "ConstShard",
            HashFunc::Rendezvous(r) if r.is_weighted() => "WeightedRendezvous",
            HashFunc::Rendezvous(_) => "Rendezvous",
        }
    }

    /// Number of servers in the pool.
    pub fn len(&self) -> usize {
        match self {
            HashFunc::Ch3(f) => f.len(),
            HashFunc::Crc32(f) => f.len(),
            HashFunc::WeightedCh3(f) => f.len(),
            HashFunc::WeightedCh4(f) => f.len(),
            HashFunc::Ketama(f) => f.len(),
            HashFunc::ConstShard(f) => f.len(),
            HashFunc::Rendezvous(f) => f.len(),
        }
    }

    /// Always false: every function is built over at least one server.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The server index in `0..len()` for `hashable` (a routing key, salt included).
    pub fn pick(&self, hashable: &[u8]) -> usize {
        match self {
            HashFunc::Ch3(f) => f.pick(hashable),
            HashFunc::Crc32(f) => f.pick(hashable),
            HashFunc::WeightedCh3(f) => f.pick(hashable),
            HashFunc::WeightedCh4(f) => f.pick(hashable),
            HashFunc::Ketama(f) => f.pick(hashable),
            HashFunc::ConstShard(f) => f.pick(hashable),
            HashFunc::Rendezvous(f) => f.pick(hashable),
        }
    }
}

/// `name` as one of [`HASH_FUNC_NAMES`] (for error values), or "hash".
fn static_name(name: &str) -> &'static str {
    HASH_FUNC_NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("hash")
}

/// `Rendezvous` / `WeightedRendezvous` over `n` servers (mcrouter's `getTags` and the
/// two functions' constructors).
fn rendezvous_from(
    name: &str,
    n: usize,
    weights: Option<Weights<'_>>,
    tags: Option<&[String]>,
) -> Result<HashFunc, HashError> {
    let func = static_name(name);
    let weighted = func == "WeightedRendezvous";
    if !weighted && weights.is_some() {
        return Err(HashError::UnexpectedWeights { func });
    }
    pool_size(func, n, u32::MAX as usize)?;
    let tags: Vec<String> = match tags {
        Some(t) if t.len() == n => t.to_vec(),
        Some(t) => {
            return Err(HashError::BadTags {
                func,
                reason: format!(
                    "number of tags {} doesn't match number of route handles {n}",
                    t.len()
                ),
            })
        }
        // mcrouter builds no hash function for a single server.
        None if n == 1 => vec![String::new()],
        None => {
            return Err(HashError::BadTags {
                func,
                reason: "`tags` is required (one string per server)".into(),
            })
        }
    };
    if !weighted {
        return Ok(HashFunc::Rendezvous(Rendezvous::new(&tags)));
    }
    let w: Vec<f64> = match weights {
        None if n == 1 => vec![1.0],
        None => {
            return Err(HashError::BadWeights {
                func,
                reason: "`weights` is required (one number per server)".into(),
            })
        }
        Some(Weights::List(w)) if w.len() == n => w.to_vec(),
        Some(Weights::List(w)) => {
            return Err(HashError::BadWeights {
                func,
                reason: format!(
                    "number of weights {} doesn't match number of route handles {n}",
                    w.len()
                ),
            })
        }
        Some(Weights::ByTag(by_tag)) => tags
            .iter()
            .map(|t| match by_tag.iter().find(|(k, _)| k == t) {
                Some(&(_, w)) => w,
                None => {
                    tracing::error!(
                        tag = %t,
                        "WeightedRendezvous: no weight for this tag; using {MISSING_WEIGHT}"
                    );
                    MISSING_WEIGHT
                }
            })
            .collect(),
    };
    if let Some((index, &weight)) = w
        .iter()
        .enumerate()
        .find(|(_, w)| !w.is_finite() || **w < 0.0)
    {
        return Err(HashError::BadWeight {
            func,
            index,
            weight,
            expected: "expected a number >= 0",
        });
    }
    Ok(HashFunc::Rendezvous(Rendezvous::weighted(&tags, w)))
}

/// The weights of `WeightedCh3`/`WeightedCh4` over `n` servers (mcrouter's
/// `WeightedChHashFuncBase::parseWeights`): required; extra ones are ignored and missing
/// ones become [`MISSING_WEIGHT`] (loudly); each in `[0, 1]`.
fn furc_weights(
    func: &'static str,
    n: usize,
    weights: Option<&[f64]>,
) -> Result<Vec<f64>, HashError> {
    let given = weights.ok_or(HashError::MissingWeights { func })?;
    pool_size(func, n, ch3::MAX_POOL_SIZE)?;
    if given.len() < n {
        tracing::error!(
            weights = given.len(),
            servers = n,
            "{func}: fewer weights than servers; missing weights are set to {MISSING_WEIGHT}"
        );
    }
    let mut w: Vec<f64> = given.iter().copied().take(n).collect();
    w.resize(n, MISSING_WEIGHT);
    if let Some((index, &weight)) = w
        .iter()
        .enumerate()
        .find(|(_, w)| !(0.0..=1.0).contains(*w))
    {
        return Err(HashError::BadWeight {
            func,
            index,
            weight,
            expected: "expected a number in [0.0, 1.0]",
        });
    }
    Ok(w)
}

fn no_weights(func: &'static str, weights: Option<&[f64]>) -> Result<(), HashError> {
    match weights {
        Some(_) => Err(HashError::UnexpectedWeights { func }),
        None => Ok(()),
    }
}

fn pool_size(func: &'static str, n: usize, max: usize) -> Result<(), HashError> {
    if n == 0 {
        return Err(HashError::EmptyPool { func });
    }
    if n > max {
        return Err(HashError::PoolTooLarge { func, size: n, max });
    }
    Ok(())
}

fn integer_weights(weights: &[f64]) -> Result<Vec<u32>, HashError> {
    weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            if weight >= 1.0 && weight <= f64::from(u32::MAX) && weight.fract() == 0.0 {
                Ok(weight as u32)
            } else {
                Err(HashError::BadWeight {
                    func: "KetamaMd5",
                    index,
                    weight,
                    expected: "expected a whole number >= 1",
                })
            }
        })
        .collect()
}

fn ketama_from<S: AsRef<str>>(
    func: &'static str,
    servers: &[S],
    built: Result<Ketama, ketama::KetamaError>,
) -> Result<HashFunc, HashError> {
    built.map(HashFunc::Ketama).map_err(|e| match e {
        ketama::KetamaError::Empty => HashError::EmptyPool { func },
        ketama::KetamaError::BadServer(server) => HashError::BadServer { func, server },
        ketama::KetamaError::BadWeights(reason) => HashError::BadWeights { func, reason },
        ketama::KetamaError::TooLarge => HashError::PoolTooLarge {
            func,
            size: servers.len(),
            max: u32::MAX as usize,
        },
    })
}

/// Longest routing key + salt hashed from a stack buffer (as in mcrouter's
/// `hashWithSalt`); longer ones use a heap buffer.
const MAX_STACK_KEY_SALT: usize = 512;

/// A hash function plus the pool's salt: mcrouter's `HashSelector`.
///
/// `select(key)` hashes `routing_key(key) ++ salt`.
#[derive(Debug, Clone)]
pub struct HashSelector {
    func: HashFunc,
    salt: Vec<u8>,
}

impl HashSelector {
    /// A selector; an empty salt is the same as none.
    pub fn new(func: HashFunc, salt: Option<&str>) -> Self {
        HashSelector {
            func,
            salt: salt.unwrap_or_default().as_bytes().to_vec(),
        }
    }

    /// The hash function.
    pub fn func(&self) -> &HashFunc {
        &self.func
    }

    /// The salt (empty when none).
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// mcrouter's selector description, e.g. `hash|Ch3|salt=abc`.
    pub fn describe(&self) -> String {
        if self.salt.is_empty() {
            format!("hash|{}", self.func.name())
        } else {
            format!(
                "hash|{}|salt={}",
                self.func.name(),
                String::from_utf8_lossy(&self.salt)
            )
        }
    }

    /// The server index for a full key (routing prefix and hash stop are applied).
    pub fn select(&self, key: &[u8]) -> usize {
        self.select_routing_key(routing_key(key))
    }

    /// The server index for an already extracted routing key.
    pub fn select_routing_key(&self, routing_key: &[u8]) -> usize {
        if self.salt.is_empty() {
            return self.func.pick(routing_key);
        }
        let len = routing_key.len() + self.salt.len();
        if len <= MAX_STACK_KEY_SALT {
            let mut buf = [0u8; MAX_STACK_KEY_SALT];
            buf[..routing_key.len()].copy_from_slice(routing_key);
            buf[routing_key.len()..len].copy_from_slice(&self.salt);
            self.func.pick(&buf[..len])
        } else {
            let mut buf = Vec::with_capacity(len);
            buf.extend_from_slice(routing_key);
            buf.extend_from_slice(&self.salt);
            self.func.pick(&buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn builds_each_function_by_name() {
        /// (name, weights, key, expected server)
        type Case<'a> = (&'a str, Option<&'a [f64]>, &'a [u8], usize);
        let s = servers(100);
        let table: &[Case] = &[
            // mcrouter golden vectors through the config path.
            ("Ch3", None, b"sample", 97),
            ("Crc32", None, b"sample", 7),
            ("WeightedCh3", Some(&[1.0; 100]), b"sample", 97),
            ("WeightedCh3", Some(&[0.0; 100]), b"sample", 59),
        ];
        for &(name, weights, key, want) in table {
            let f = HashFunc::from_config(name, &s, weights).unwrap();
            assert_eq!(f.name(), name);
            assert_eq!(f.len(), 100);
            assert_eq!(f.pick(key), want, "{name}");
        }
        for name in ["Ketama", "KetamaMd5"] {
            let f = HashFunc::from_config(name, &s, None).unwrap();
            assert_eq!(f.name(), name);
            assert!(f.pick(b"sample") < 100);
        }
    }

    #[test]
    fn config_errors_are_clear() {
        let s = servers(3);
        let none: Vec<String> = vec![];
        let cases: Vec<(HashError, &str)> = vec![
            (
                HashFunc::from_config("ch4", &s, None).unwrap_err(),
                "unknown hash function \"ch4\"",
            ),
            (
                HashFunc::from_config("Ch3", &none, None).unwrap_err(),
                "Ch3: the pool has no servers",
            ),
            (
                HashFunc::from_config("WeightedCh3", &s, None).unwrap_err(),
                "`weights` is required",
            ),
            (
                HashFunc::from_config("WeightedCh3", &s, Some(&[1.0, 2.0, 0.0])).unwrap_err(),
                "weights[1] = 2 is invalid",
            ),
            (
                HashFunc::from_config("Crc32", &s, Some(&[1.0, 1.0, 1.0])).unwrap_err(),
                "Crc32: does not take `weights`",
            ),
            (
                HashFunc::from_config("Ketama", &["a:b"], None).unwrap_err(),
                "server \"a:b\"",
            ),
            (
                HashFunc::from_config("KetamaMd5", &s, Some(&[1.0])).unwrap_err(),
                "1 weights for 3 servers",
            ),
            (
                HashFunc::from_config("KetamaMd5", &s, Some(&[1.0, 1.5, 1.0])).unwrap_err(),
                "whole number",
            ),
        ];
        for (err, want) in cases {
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
        // Names are case-sensitive, as in mcrouter.
        assert!(HashFunc::from_config("ch3", &s, None).is_err());
    }

    /// Like mcrouter: missing WeightedCh3 weights become 0.5, extra ones are ignored.
    #[test]
    fn weighted_ch3_pads_and_truncates_weights() {
        let f = HashFunc::from_config("WeightedCh3", &servers(3), Some(&[1.0])).unwrap();
        match &f {
            HashFunc::WeightedCh3(w) => assert_eq!(w.weights(), &[1.0, 0.5, 0.5]),
            other => panic!("{other:?}"),
        }
        let f = HashFunc::from_config("WeightedCh3", &servers(2), Some(&[0.1, 0.2, 0.3])).unwrap();
        match &f {
            HashFunc::WeightedCh3(w) => assert_eq!(w.weights(), &[0.1, 0.2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selector_applies_routing_key_and_salt() {
        let func = HashFunc::from_config("Ch3", &servers(100), None).unwrap();
        let plain = HashSelector::new(func.clone(), None);
        // Same routing key -> same server, whatever the prefix and hash stop tail.
        for key in [
            &b"sample"[..],
            b"/r/c/sample",
            b"sample|#|x",
            b"/region/cluster/sample|#|y",
        ] {
            assert_eq!(plain.select(key), 97, "{}", String::from_utf8_lossy(key));
        }
        assert_eq!(plain.select(b""), 72);
        assert_eq!(plain.describe(), "hash|Ch3");

        // The salt is appended to the routing key: "sam" + salt "ple" == "sample".
        let salted = HashSelector::new(func.clone(), Some("ple"));
        assert_eq!(salted.select(b"/r/c/sam|#|zzz"), 97);
        assert_eq!(salted.select_routing_key(b""), func.pick(b"ple"));
        assert_eq!(salted.describe(), "hash|Ch3|salt=ple");
        assert_eq!(HashSelector::new(func, Some("")).describe(), "hash|Ch3");
    }

    #[test]
    fn selector_salts_long_keys_the_same_way() {
        let func = HashFunc::from_config("Crc32", &servers(1000), None).unwrap();
        let salt = "s".repeat(100);
        let selector = HashSelector::new(func.clone(), Some(&salt));
        for len in [0, 100, 411, 412, 413, 600] {
            let key = vec![b'k'; len];
            let mut joined = key.clone();
            joined.extend_from_slice(salt.as_bytes());
            assert_eq!(selector.select(&key), func.pick(&joined), "len {len}");
        }
    }

    #[test]
    fn picks_are_in_range() {
        let s = servers(7);
        let funcs = [
            HashFunc::from_config("Ch3", &s, None).unwrap(),
            HashFunc::from_config("Crc32", &s, None).unwrap(),
            HashFunc::from_config("WeightedCh3", &s, Some(&[0.3; 7])).unwrap(),
            HashFunc::from_config("Ketama", &s, None).unwrap(),
            HashFunc::from_config("KetamaMd5", &s, Some(&[1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 9.0]))
                .unwrap(),
        ];
        for f in &funcs {
            let mut seen = [false; 7];
            for i in 0..2000 {
                let p = f.pick(format!("k{i}").as_bytes());
                assert!(p < 7, "{}", f.name());
                seen[p] = true;
            }
            assert!(
                seen.iter().all(|&s| s),
                "{} never picked some server",
                f.name()
            );
        }
    }
}
