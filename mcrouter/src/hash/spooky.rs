//! SpookyHash V2 (Bob Jenkins, public domain), as shipped in folly
//! (`folly/hash/SpookyHashV2.{h,cpp}`), which mcrouter's `WeightedCh3` uses to draw
//! its per-key "probability".
//!
//! Messages shorter than 192 bytes go through the short hash (4 words of state,
//! 32-byte blocks); longer ones through the 12-word `Mix`/`End` rounds over 96-byte
//! blocks. All reads are little-endian, matching folly on x86-64.

const SC_NUM_VARS: usize = 12;
const SC_BLOCK_SIZE: usize = SC_NUM_VARS * 8;
const SC_BUF_SIZE: usize = 2 * SC_BLOCK_SIZE;
const SC_CONST: u64 = 0xdead_beef_dead_beef;

/// `SpookyHashV2::Hash32(message, len, seed)`.
pub fn hash32(message: &[u8], seed: u32) -> u32 {
    hash128(message, u64::from(seed), u64::from(seed)).0 as u32
}

/// `SpookyHashV2::Hash64(message, len, seed)`.
pub fn hash64(message: &[u8], seed: u64) -> u64 {
    hash128(message, seed, seed).0
}

/// `SpookyHashV2::Hash128(message, len, &hash1, &hash2)` with `(seed1, seed2)` in,
/// `(hash1, hash2)` out.
pub fn hash128(message: &[u8], seed1: u64, seed2: u64) -> (u64, u64) {
    if message.len() < SC_BUF_SIZE {
        return short(message, seed1, seed2);
    }

    let mut h = [0u64; SC_NUM_VARS];
    for i in (0..SC_NUM_VARS).step_by(3) {
        h[i] = seed1;
        h[i + 1] = seed2;
        h[i + 2] = SC_CONST;
    }

    let mut blocks = message.chunks_exact(SC_BLOCK_SIZE);
    for block in &mut blocks {
        mix(&words::<SC_NUM_VARS>(block), &mut h);
    }

    // Last partial block, zero padded, with its length in the final byte.
    let rest = blocks.remainder();
    let mut buf = [0u8; SC_BLOCK_SIZE];
    buf[..rest.len()].copy_from_slice(rest);
    buf[SC_BLOCK_SIZE - 1] = rest.len() as u8;
    end(&words::<SC_NUM_VARS>(&buf), &mut h);
    (h[0], h[1])
}

fn words<const N: usize>(bytes: &[u8]) -> [u64; N] {
    let mut out = [0u64; N];
    for (w, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("chunk of 8"));
    }
    out
}

fn read8(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Little-endian value of up to 8 bytes.
fn le_partial(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &b)| acc | (u64::from(b) << (8 * i)))
}

const MIX_ROT: [u32; SC_NUM_VARS] = [11, 32, 43, 31, 17, 28, 39, 57, 55, 54, 22, 46];

/// `Mix`: line `i` is
/// `s[i] += d[i]; s[i+2] ^= s[i+10]; s[i+11] ^= s[i]; s[i] = rot(s[i]); s[i+11] += s[i+1]`
/// (indices mod 12).
fn mix(data: &[u64; SC_NUM_VARS], s: &mut [u64; SC_NUM_VARS]) {
    for i in 0..SC_NUM_VARS {
        let at = |k: usize| (i + k) % SC_NUM_VARS;
        s[i] = s[i].wrapping_add(data[i]);
        s[at(2)] ^= s[at(10)];
        s[at(11)] ^= s[i];
        s[i] = s[i].rotate_left(MIX_ROT[i]);
        s[at(11)] = s[at(11)].wrapping_add(s[at(1)]);
    }
}

const END_ROT: [u32; SC_NUM_VARS] = [44, 15, 34, 21, 38, 33, 10, 13, 38, 53, 42, 54];

/// `EndPartial`: line `i` is `h[i+11] += h[i+1]; h[i+2] ^= h[i+11]; h[i+1] = rot(h[i+1])`.
fn end_partial(h: &mut [u64; SC_NUM_VARS]) {
    for (i, &r) in END_ROT.iter().enumerate() {
        let at = |k: usize| (i + k) % SC_NUM_VARS;
        h[at(11)] = h[at(11)].wrapping_add(h[at(1)]);
        h[at(2)] ^= h[at(11)];
        h[at(1)] = h[at(1)].rotate_left(r);
    }
}

fn end(data: &[u64; SC_NUM_VARS], h: &mut [u64; SC_NUM_VARS]) {
    for (hi, di) in h.iter_mut().zip(data) {
        *hi = hi.wrapping_add(*di);
    }
    end_partial(h);
    end_partial(h);
    end_partial(h);
}

fn short_mix(h: &mut [u64; 4]) {
    // (rotated word, rotation): word i is rotated, then `h[i] += h[i+1]; h[i+2] ^= h[i]`
    // with the four words renamed each line, exactly as in `ShortMix`.
    const STEPS: [(usize, u32); 12] = [
        (2, 50),
        (3, 52),
        (0, 30),
        (1, 41),
        (2, 54),
        (3, 48),
        (0, 38),
        (1, 37),
        (2, 62),
        (3, 34),
        (0, 5),
        (1, 36),
    ];
    for (x, r) in STEPS {
        let y = (x + 1) % 4;
        let z = (x + 2) % 4;
        h[x] = h[x].rotate_left(r);
        h[x] = h[x].wrapping_add(h[y]);
        h[z] ^= h[x];
    }
}

fn short_end(h: &mut [u64; 4]) {
    // Line: `h[z] ^= h[x]; h[x] = rot(h[x]); h[z] += h[x]` with (z, x) below.
    const STEPS: [(usize, usize, u32); 11] = [
        (3, 2, 15),
        (0, 3, 52),
        (1, 0, 26),
        (2, 1, 51),
        (3, 2, 28),
        (0, 3, 9),
        (1, 0, 47),
        (2, 1, 54),
        (3, 2, 32),
        (0, 3, 25),
        (1, 0, 63),
    ];
    for (z, x, r) in STEPS {
        h[z] ^= h[x];
        h[x] = h[x].rotate_left(r);
        h[z] = h[z].wrapping_add(h[x]);
    }
}

/// `SpookyHashV2::Short`, for messages under 192 bytes.
fn short(message: &[u8], seed1: u64, seed2: u64) -> (u64, u64) {
    let len = message.len();
    let mut remainder = len % 32;
    // [a, b, c, d]
    let mut h = [seed1, seed2, SC_CONST, SC_CONST];
    let mut off = 0;

    if len > 15 {
        let end = (len / 32) * 32;
        while off < end {
            h[2] = h[2].wrapping_add(read8(message, off));
            h[3] = h[3].wrapping_add(read8(message, off + 8));
            short_mix(&mut h);
            h[0] = h[0].wrapping_add(read8(message, off + 16));
            h[1] = h[1].wrapping_add(read8(message, off + 24));
            off += 32;
        }
        if remainder >= 16 {
            h[2] = h[2].wrapping_add(read8(message, off));
            h[3] = h[3].wrapping_add(read8(message, off + 8));
            short_mix(&mut h);
            off += 16;
            remainder -= 16;
        }
    }

    // The last 0..15 bytes: bytes 0..8 go into c, bytes 8..15 into d (little-endian),
    // which is what the fall-through `switch (remainder)` in folly adds up to.
    h[3] = h[3].wrapping_add((len as u64) << 56);
    let tail = &message[off..off + remainder];
    if remainder == 0 {
        h[2] = h[2].wrapping_add(SC_CONST);
        h[3] = h[3].wrapping_add(SC_CONST);
    } else {
        let (lo, hi) = tail.split_at(remainder.min(8));
        h[2] = h[2].wrapping_add(le_partial(lo));
        h[3] = h[3].wrapping_add(le_partial(hi));
    }
    short_end(&mut h);
    (h[0], h[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected `Hash32(buf, len, 0)` with `buf[i] = i + 128`, from Bob Jenkins'
    /// `TestResults()` (folly `folly/hash/test/SpookyHashV2Test.cpp`), for the lengths
    /// `start..start + values.len()`. The chosen ranges cover every short-hash tail
    /// length, the 32-byte loop, the short/long boundary (191/192) and multi-block
    /// long messages.
    const EXPECTED: &[(usize, &[u32])] = &[
        (
            0,
            &[
                0x6bf50919, 0x70de1d26, 0xa2b37298, 0x35bc5fbf, 0x8223b279, 0x5bcb315e, 0x53fe88a1,
                0xf9f1a233, 0xee193982, 0x54f86f29, 0xc8772d36, 0x9ed60886, 0x5f23d1da, 0x1ed9f474,
                0xf2ef0c89, 0x83ec01f9, 0xf274736c, 0x7e9ac0df, 0xc7aed250, 0xb1015811, 0xe23470f5,
                0x48ac20c4, 0xe2ab3cd5, 0x608f8363, 0xd0639e68, 0xc4e8e7ab, 0x863c7c5b, 0x4ea63579,
                0x99ae8622, 0x170c658b, 0x149ba493, 0x027bca7c, 0xe5cfc8b6, 0xce01d9d7, 0x11103330,
                0x5d1f5ed4, 0xca720ecb, 0xef408aec, 0x733b90ec, 0x855737a6, 0x9856c65f, 0x647411f7,
                0x50777c74, 0xf0f1a8b7, 0x9d7e55a5, 0xc68dd371, 0xfc1af2cc, 0x75728d0a, 0x390e5fdc,
                0xf389b84c, 0xfb0ccf23, 0xc95bad0e, 0x5b1cb85a, 0x6bdae14f, 0x6deb4626, 0x93047034,
                0x6f3266c6, 0xf529c3bd, 0x396322e7, 0x3777d042, 0x1cd6a5a2, 0x197b402e, 0xc28d0d2b,
                0x09c1afb4,
            ],
        ),
        (
            176,
            &[
                0x90a6a680, 0x1b44169e, 0x1dce237c, 0x518e0a59, 0xccb11358, 0x7b8175fb, 0xb8fe701a,
                0x10d259bb, 0xe806ce10, 0x9212be79, 0x4604ae7b, 0x7fa22a84, 0xe715b13a, 0x0394c3b2,
                0x11efbbae, 0xe13d9e19,
            ],
        ),
        (
            192,
            &[
                0x77e012bd, 0x2d05114c, 0xaecf2ddd, 0xb2a2b4aa, 0xb9429546, 0x55dce815, 0xc89138f8,
                0x46dcae20, 0x1f6f7162, 0x0c557ebc, 0x5b996932, 0xafbbe7e2, 0xd2bd5f62, 0xff475b9f,
                0x9cec7108, 0xeaddcffb, 0x5d751aef, 0xf68f7bdf, 0xf3f4e246, 0x00983fcd, 0x00bc82bb,
                0xbf5fd3e7, 0xe80c7e2c, 0x187d8b1f, 0xefafb9a7, 0x8f27a148, 0x5c9606a9, 0xf2d2be3e,
                0xe992d13a, 0xe4bcd152, 0xce40b436, 0x63d6a1fc, 0xdc1455c4, 0x64641e39, 0xd83010c9,
                0x2d535ae0, 0x5b748f3e, 0xf9a9146b, 0x80f10294, 0x2859acd4, 0x5fc846da, 0x56d190e9,
                0x82167225, 0x98e4daba, 0xbf7865f3, 0x00da7ae4, 0x9b7cd126, 0x644172f8, 0xde40c78f,
                0xe8803efc, 0xdd331a2b, 0x48485c3c, 0x4ed01ddc, 0x9c0b2d9e, 0xb1c6e9d7, 0xd797d43c,
                0x274101ff, 0x3bf7e127, 0x91ebbc56, 0x7ffeb321, 0x4d42096f, 0xd6e9456a, 0x0bade318,
                0x2f40ee0b,
            ],
        ),
        (
            448,
            &[
                0xad7baa23, 0xd181714a, 0x9bbdab78, 0x6c7d1577, 0x645eb1e7, 0xa0648264, 0x35839ca6,
                0x2287ef45, 0x32a64ca3, 0x26111f6f, 0x64814946, 0xb0cddaf1, 0x4351c59e, 0x1b30471c,
                0xb970788a, 0x30e9f597, 0xd7e58df1, 0xc6d2b953, 0xf5f37cf4, 0x3d7c419e, 0xf91ecb2d,
                0x9c87fd5d, 0xb22384ce, 0x8c7ac51c, 0x62c96801, 0x57e54091, 0x964536fe, 0x13d3b189,
                0x4afd1580, 0xeba62239, 0xb82ea667, 0xae18d43a, 0xbef04402, 0x1942534f, 0xc54bf260,
                0x3c8267f5, 0xa1020ddd, 0x112fcc8a, 0xde596266, 0xe91d0856, 0xf300c914, 0xed84478e,
                0x5b65009e, 0x4764da16, 0xaf8e07a2, 0x4088dc2c, 0x9a0cad41, 0x2c3f179b, 0xa67b83f7,
                0xf27eab09, 0xdbe10e28, 0xf04c911f, 0xd1169f87, 0x8e1e4976, 0x17f57744, 0xe4f5a33f,
                0x27c2e04b, 0x0b7523bd, 0x07305776, 0xc6be7503, 0x918fa7c9, 0xaf2e2cd9, 0x82046f8e,
                0xcc1c8250,
            ],
        ),
    ];

    #[test]
    fn jenkins_test_results() {
        let buf: Vec<u8> = (0..512).map(|i| (i + 128) as u8).collect();
        let mut checked = 0;
        for &(start, values) in EXPECTED {
            for (i, &want) in values.iter().enumerate() {
                let len = start + i;
                assert_eq!(
                    hash32(&buf[..len], 0),
                    want,
                    "length {len}: got {:#010x}, want {want:#010x}",
                    hash32(&buf[..len], 0)
                );
                checked += 1;
            }
        }
        // Guards against a table row lost in transcription.
        assert_eq!(checked, 64 + 16 + 64 + 64);
    }

    #[test]
    fn seeds_and_widths_are_consistent() {
        let msg = b"hello world";
        assert_eq!(hash64(msg, 7), hash128(msg, 7, 7).0);
        assert_eq!(hash32(msg, 7), hash64(msg, 7) as u32);
        assert_ne!(hash32(msg, 0), hash32(msg, 1));
        let long = [0x5au8; 300];
        assert_ne!(hash128(&long, 1, 2), hash128(&long, 2, 1));
    }
}
