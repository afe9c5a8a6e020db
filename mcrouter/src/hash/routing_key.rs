//! mcrouter's key anatomy: routing prefix, routing key and hash stop.
//!
//! Ported from the rule in mcrouter's `carbon::Keys::update()`
//! (`mcrouter/lib/carbon/Keys-inl.h`):
//!
//! ```text
//!   /region/cluster/foo:key|#|etc
//!   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^   full key
//!                   ^^^^^^^^^^^^^   key without route
//!   ^^^^^^^^^^^^^^^^                routing prefix
//!                   ^^^^^^^         routing key (what the hash functions see)
//! ```
//!
//! - The routing prefix exists only when the key starts with `/` and at least two more
//!   `/` follow: it then runs up to and including the second `/` after the first byte.
//!   A key such as `/a/b` (only one more `/`) has no prefix and is used whole.
//! - The routing key is the key without route, cut before the first `|#|` (the
//!   "hash stop"), so `user:1|#|name` and `user:1|#|email` land on the same server.

/// The hash stop marker: bytes from it on do not take part in hashing.
pub const HASH_STOP: &[u8] = b"|#|";

/// Length of the `/region/cluster/` routing prefix of `key`, or 0 when it has none.
fn routing_prefix_len(key: &[u8]) -> usize {
    if key.first() != Some(&b'/') {
        return 0;
    }
    // Find '/' twice, each search starting right after the previous match (the first
    // search starts at index 1, after the leading slash).
    let mut pos = 1;
    for _ in 0..2 {
        match memchr::memchr(b'/', &key[pos..]) {
            Some(i) => pos += i + 1,
            None => return 0,
        }
    }
    pos
}

/// The `/region/cluster/` routing prefix of `key` (empty when the key has none).
pub fn routing_prefix(key: &[u8]) -> &[u8] {
    &key[..routing_prefix_len(key)]
}

/// `key` without its `/region/cluster/` routing prefix.
pub fn key_without_route(key: &[u8]) -> &[u8] {
    &key[routing_prefix_len(key)..]
}

/// The part of `key` that hash functions see: the key without its routing prefix, cut
/// at the first `|#|` hash stop.
pub fn routing_key(key: &[u8]) -> &[u8] {
    let rest = key_without_route(key);
    match memchr::memmem::find(rest, HASH_STOP) {
        Some(stop) => &rest[..stop],
        None => rest,
    }
}

/// Whether `key` (after its routing prefix) contains a `|#|` hash stop.
pub fn has_hash_stop(key: &[u8]) -> bool {
    memchr::memmem::find(key_without_route(key), HASH_STOP).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (full key, routing prefix, key without route, routing key)
    const CASES: &[(&str, &str, &str, &str)] = &[
        // The example from mcrouter's Keys.h doc comment.
        (
            "/region/cluster/foo:key|#|etc",
            "/region/cluster/",
            "foo:key|#|etc",
            "foo:key",
        ),
        ("plain", "", "plain", "plain"),
        ("", "", "", ""),
        ("user:1|#|name", "", "user:1|#|name", "user:1"),
        // Only the first hash stop counts.
        ("a|#|b|#|c", "", "a|#|b|#|c", "a"),
        ("|#|", "", "|#|", ""),
        ("|#|abc", "", "|#|abc", ""),
        // Incomplete markers are ordinary bytes.
        ("a|#b", "", "a|#b", "a|#b"),
        ("a#|b", "", "a#|b", "a#|b"),
        // Not starting with '/': slashes elsewhere do not make a prefix.
        ("a/b/c/d", "", "a/b/c/d", "a/b/c/d"),
        // Needs two more slashes after the leading one.
        ("/a/b", "", "/a/b", "/a/b"),
        ("/ab", "", "/ab", "/ab"),
        ("/", "", "/", "/"),
        ("/a/b/", "/a/b/", "", ""),
        ("/a/b/c", "/a/b/", "c", "c"),
        ("/a/b/c/d", "/a/b/", "c/d", "c/d"),
        // Empty region or cluster still counts (`find` from pos 1 matches index 1).
        ("//b/c", "//b/", "c", "c"),
        ("///c", "///", "c", "c"),
        ("//", "", "//", "//"),
        // Hash stop inside the prefix does not count; only after it.
        ("/r|#|x/c/key", "/r|#|x/c/", "key", "key"),
        ("/r/c/key|#|tail", "/r/c/", "key|#|tail", "key"),
        // The hash stop is searched only after the prefix, and the prefix is not part
        // of the routing key.
        ("/r/c/|#|", "/r/c/", "|#|", ""),
    ];

    #[test]
    fn table() {
        for &(key, prefix, without, rk) in CASES {
            let k = key.as_bytes();
            assert_eq!(routing_prefix(k), prefix.as_bytes(), "prefix of {key:?}");
            assert_eq!(
                key_without_route(k),
                without.as_bytes(),
                "without route {key:?}"
            );
            assert_eq!(routing_key(k), rk.as_bytes(), "routing key of {key:?}");
            assert_eq!(has_hash_stop(k), without.contains("|#|"), "{key:?}");
        }
    }

    #[test]
    fn binary_keys() {
        let key = b"/\xff/\x00/\x80\x81|#|\xfe";
        assert_eq!(routing_prefix(key), b"/\xff/\x00/");
        assert_eq!(routing_key(key), b"\x80\x81");
    }
}
