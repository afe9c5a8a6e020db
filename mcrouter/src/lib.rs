//! mcrouter-compatible routing proxy.
//!
//! Modules:
//! - [`hash`]: the hash functions a pool uses to pick a destination for a key
//!   (`Ch3`/furc, `Crc32`, `WeightedCh3`, libmemcached/twemproxy `Ketama`), and the
//!   mcrouter routing-key rules (`/region/cluster/` prefix, `|#|` hash stop).

pub mod hash;
