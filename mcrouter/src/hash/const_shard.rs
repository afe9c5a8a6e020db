//! `ConstShard`: mcrouter's `ConstShardHashFunc` (`mcrouter/routes/ShardHashFunc.cpp`).
//!
//! A key of the form `<prefix>:<shard>:<rest>`, where `<shard>` is all decimal digits
//! and names a server of the pool (`shard < n`), goes to server `<shard>`: the sharding
//! is in the key. Any other key (no two colons, a non-digit in the shard, a shard past
//! the pool) is placed by `Ch3` over the pool.

use super::Ch3;

/// `ConstShard` over a pool of `len()` servers.
#[derive(Debug, Clone)]
pub struct ConstShard {
    ch3: Ch3,
}

impl ConstShard {
    /// `None` for an empty pool or one larger than `Ch3` supports.
    pub fn new(n: usize) -> Option<Self> {
        Some(ConstShard { ch3: Ch3::new(n)? })
    }

    pub fn len(&self) -> usize {
        self.ch3.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ch3.is_empty()
    }

    pub fn pick(&self, key: &[u8]) -> usize {
        match shard_id(key).and_then(parse_shard) {
            Some(i) if i < self.len() => i,
            _ => self.ch3.pick(key),
        }
    }
}

/// What lies between the first and the second colon, when the byte before the second
/// colon is a digit (mcrouter's `getShardId`).
fn shard_id(key: &[u8]) -> Option<&[u8]> {
    let first = memchr::memchr(b':', key)?;
    let rest = &key[first + 1..];
    let second = memchr::memchr(b':', rest)?;
    (second > 0 && rest[second - 1].is_ascii_digit()).then(|| &rest[..second])
}

/// All decimal digits, as a number that fits (else `None`, as `folly::to<size_t>`
/// failing).
fn parse_shard(digits: &[u8]) -> Option<usize> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mcrouter's `ShardHashFuncTest.cpp`.
    #[test]
    fn const_shard_golden() {
        let f = ConstShard::new(4).unwrap();
        assert_eq!(f.pick(b"b:3:meh"), 3);
        assert_eq!(f.pick(b"bl:2:meh"), 2);
        assert_eq!(f.pick(b"bla:1:meh"), 1);
        assert_eq!(f.pick(b"blah:0:meh"), 0);
        // Not shard keys: Ch3 places them.
        assert_eq!(f.pick(b"blahmeh"), 2);
        assert_eq!(f.pick(b"blah:meh"), 0);
        assert_eq!(f.pick(b"blah::meh"), 1);
        assert_eq!(f.pick(b"blah:12c34:meh"), 0);
        assert_eq!(f.pick(b"blah:4:meh"), 3);
    }

    #[test]
    fn shards_past_the_pool_or_not_numbers_fall_back_to_ch3() {
        let f = ConstShard::new(3).unwrap();
        let ch3 = Ch3::new(3).unwrap();
        let not_shards: [&[u8]; 5] = [
            b"a:3:x",
            b"a:99999999999999999999999:x",
            b"a:+1:x",
            b"a: 1:x",
            b"a:1",
        ];
        for key in not_shards {
            assert_eq!(
                f.pick(key),
                ch3.pick(key),
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        // An empty prefix is still a prefix: shard 1.
        assert_eq!(f.pick(b":1:"), 1);
        // Leading zeros are fine.
        assert_eq!(ConstShard::new(8).unwrap().pick(b"x:007:y"), 7);
    }
}
