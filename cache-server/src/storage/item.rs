//! Item header layout inside a chunk, and little-endian field accessors.
//!
//! ```text
//! offset  size  field
//!  0       2    it_flags (LRU id, LINKED, FETCHED, ACTIVE, STALE, TOKEN_SENT,
//!               HAS_EXP, HAS_FLAGS, CHAINED, CONT, FREE)
//!  2       1    nkey
//!  3       3    nbytes: value bytes stored in this (head) chunk
//!  6       4    LRU prev (chunk id, NIL = none)
//! 10       4    LRU next
//! 14       4    time: last access (relative seconds)
//! 18       8    cas                      (only if CAS is enabled)
//!  .       4    exptime (relative)       (only if HAS_EXP)
//!  .       4    client flags             (only if HAS_FLAGS)
//!  .       8    total value len, first continuation chunk (only if CHAINED)
//!  .   nkey     key
//!  .  nbytes    value (first part if CHAINED)
//! ```
//!
//! Continuation chunk: `it_flags = CONT` (2), pad (2), head id (4), next id (4),
//! then value bytes. Free chunk: `it_flags = FREE`, pad, prev (4), next (4).

use super::slab::Arena;

/// "No chunk".
pub(crate) const NIL: u32 = u32::MAX;

pub(crate) const HDR_FIXED: usize = 18;
pub(crate) const CHAIN_EXT: usize = 8;
pub(crate) const CONT_HDR: usize = 12;

pub(crate) const LRU_MASK: u16 = 0b11;
pub(crate) const HOT: u16 = 0;
pub(crate) const WARM: u16 = 1;
pub(crate) const COLD: u16 = 2;
pub(crate) const F_LINKED: u16 = 1 << 2;
pub(crate) const F_FETCHED: u16 = 1 << 3;
pub(crate) const F_ACTIVE: u16 = 1 << 4;
pub(crate) const F_STALE: u16 = 1 << 5;
pub(crate) const F_TOKEN: u16 = 1 << 6;
pub(crate) const F_HAS_EXP: u16 = 1 << 7;
pub(crate) const F_HAS_FLAGS: u16 = 1 << 8;
pub(crate) const F_CHAINED: u16 = 1 << 9;
pub(crate) const F_CONT: u16 = 1 << 10;
pub(crate) const F_FREE: u16 = 1 << 11;
/// Stored by `ms` with a base64 (`b`) key: `mg ... k` echoes it base64-encoded.
pub(crate) const F_BINKEY: u16 = 1 << 12;

const O_FLAGS: usize = 0;
const O_NKEY: usize = 2;
const O_NBYTES: usize = 3;
const O_PREV: usize = 6;
const O_NEXT: usize = 10;
const O_TIME: usize = 14;
const O_CAS: usize = 18;

#[inline]
pub(crate) fn rd16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
#[inline]
pub(crate) fn wr16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn rd32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
#[inline]
pub(crate) fn wr32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn rd64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}
#[inline]
pub(crate) fn wr64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Total header length for an item with these flags.
#[inline]
pub(crate) fn header_len(hdr_base: usize, flags: u16) -> usize {
    hdr_base
        + if flags & F_HAS_EXP != 0 { 4 } else { 0 }
        + if flags & F_HAS_FLAGS != 0 { 4 } else { 0 }
        + if flags & F_CHAINED != 0 { CHAIN_EXT } else { 0 }
}

/// Accessors over one chunk's bytes. `hdr_base` is 18 or 26 (with CAS).
#[derive(Clone, Copy)]
pub(crate) struct Hdr<'a> {
    pub b: &'a [u8],
    pub base: usize,
}

impl<'a> Hdr<'a> {
    #[inline]
    pub fn new(b: &'a [u8], base: usize) -> Self {
        Hdr { b, base }
    }
    #[inline]
    pub fn flags(&self) -> u16 {
        rd16(self.b, O_FLAGS)
    }
    #[inline]
    pub fn nkey(&self) -> usize {
        self.b[O_NKEY] as usize
    }
    #[inline]
    pub fn nbytes(&self) -> usize {
        (self.b[O_NBYTES] as usize)
            | ((self.b[O_NBYTES + 1] as usize) << 8)
            | ((self.b[O_NBYTES + 2] as usize) << 16)
    }
    #[inline]
    pub fn prev(&self) -> u32 {
        rd32(self.b, O_PREV)
    }
    #[inline]
    pub fn next(&self) -> u32 {
        rd32(self.b, O_NEXT)
    }
    #[inline]
    pub fn time(&self) -> u32 {
        rd32(self.b, O_TIME)
    }
    #[inline]
    pub fn cas(&self) -> u64 {
        if self.base > HDR_FIXED {
            rd64(self.b, O_CAS)
        } else {
            0
        }
    }
    #[inline]
    fn opt_off(&self) -> usize {
        self.base
    }
    #[inline]
    pub fn exptime(&self) -> u32 {
        if self.flags() & F_HAS_EXP != 0 {
            rd32(self.b, self.opt_off())
        } else {
            0
        }
    }
    #[inline]
    pub fn client_flags(&self) -> u32 {
        let f = self.flags();
        if f & F_HAS_FLAGS != 0 {
            let o = self.opt_off() + if f & F_HAS_EXP != 0 { 4 } else { 0 };
            rd32(self.b, o)
        } else {
            0
        }
    }
    #[inline]
    fn chain_off(&self) -> usize {
        let f = self.flags();
        self.base
            + if f & F_HAS_EXP != 0 { 4 } else { 0 }
            + if f & F_HAS_FLAGS != 0 { 4 } else { 0 }
    }
    /// Total value length (all chunks).
    #[inline]
    pub fn value_len(&self) -> usize {
        if self.flags() & F_CHAINED != 0 {
            rd32(self.b, self.chain_off()) as usize
        } else {
            self.nbytes()
        }
    }
    /// First continuation chunk (NIL if not chained).
    #[inline]
    pub fn first_cont(&self) -> u32 {
        if self.flags() & F_CHAINED != 0 {
            rd32(self.b, self.chain_off() + 4)
        } else {
            NIL
        }
    }
    #[inline]
    pub fn hlen(&self) -> usize {
        header_len(self.base, self.flags())
    }
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        let h = self.hlen();
        &self.b[h..h + self.nkey()]
    }
    /// Value bytes stored in this chunk.
    #[inline]
    pub fn head_value(&self) -> &'a [u8] {
        let o = self.hlen() + self.nkey();
        &self.b[o..o + self.nbytes()]
    }
    /// Bytes of this item in its head chunk (header + key + head value).
    #[inline]
    pub fn head_total(&self) -> usize {
        self.hlen() + self.nkey() + self.nbytes()
    }
}

/// Mutable accessors.
pub(crate) struct HdrMut<'a> {
    pub b: &'a mut [u8],
    pub base: usize,
}

impl<'a> HdrMut<'a> {
    #[inline]
    pub fn new(b: &'a mut [u8], base: usize) -> Self {
        HdrMut { b, base }
    }
    #[inline]
    pub fn ro(&self) -> Hdr<'_> {
        Hdr::new(self.b, self.base)
    }
    #[inline]
    pub fn set_flags(&mut self, f: u16) {
        wr16(self.b, O_FLAGS, f)
    }
    #[inline]
    pub fn or_flags(&mut self, f: u16) {
        let v = self.ro().flags() | f;
        self.set_flags(v)
    }
    #[inline]
    pub fn clear_flags(&mut self, f: u16) {
        let v = self.ro().flags() & !f;
        self.set_flags(v)
    }
    #[inline]
    pub fn set_lru(&mut self, lru: u16) {
        let v = (self.ro().flags() & !LRU_MASK) | lru;
        self.set_flags(v)
    }
    #[inline]
    pub fn set_nkey(&mut self, n: usize) {
        self.b[O_NKEY] = n as u8;
    }
    #[inline]
    pub fn set_nbytes(&mut self, n: usize) {
        debug_assert!(n < (1 << 24));
        self.b[O_NBYTES] = n as u8;
        self.b[O_NBYTES + 1] = (n >> 8) as u8;
        self.b[O_NBYTES + 2] = (n >> 16) as u8;
    }
    #[inline]
    pub fn set_prev(&mut self, v: u32) {
        wr32(self.b, O_PREV, v)
    }
    #[inline]
    pub fn set_next(&mut self, v: u32) {
        wr32(self.b, O_NEXT, v)
    }
    #[inline]
    pub fn set_time(&mut self, v: u32) {
        wr32(self.b, O_TIME, v)
    }
    #[inline]
    pub fn set_cas(&mut self, v: u64) {
        if self.base > HDR_FIXED {
            wr64(self.b, O_CAS, v)
        }
    }
    /// Requires HAS_EXP.
    #[inline]
    pub fn set_exptime(&mut self, v: u32) {
        debug_assert!(self.ro().flags() & F_HAS_EXP != 0);
        let o = self.base;
        wr32(self.b, o, v)
    }
    /// Requires HAS_FLAGS; writes the client flags.
    #[inline]
    pub fn set_client_flags(&mut self, v: u32) {
        let f = self.ro().flags();
        debug_assert!(f & F_HAS_FLAGS != 0);
        let o = self.base + if f & F_HAS_EXP != 0 { 4 } else { 0 };
        wr32(self.b, o, v)
    }
    /// Requires CHAINED.
    #[inline]
    pub fn set_chain(&mut self, total: usize, first: u32) {
        let f = self.ro().flags();
        let o = self.base
            + if f & F_HAS_EXP != 0 { 4 } else { 0 }
            + if f & F_HAS_FLAGS != 0 { 4 } else { 0 };
        wr32(self.b, o, total as u32);
        wr32(self.b, o + 4, first);
    }
}

/// Continuation chunk accessors.
pub(crate) fn cont_next(b: &[u8]) -> u32 {
    rd32(b, 8)
}
pub(crate) fn cont_head(b: &[u8]) -> u32 {
    rd32(b, 4)
}
pub(crate) fn init_cont(b: &mut [u8], head: u32, next: u32) {
    wr16(b, 0, F_CONT);
    wr16(b, 2, 0);
    wr32(b, 4, head);
    wr32(b, 8, next);
}

/// Free chunk list links.
pub(crate) fn free_prev(b: &[u8]) -> u32 {
    rd32(b, 4)
}
pub(crate) fn free_next(b: &[u8]) -> u32 {
    rd32(b, 8)
}
pub(crate) fn set_free(b: &mut [u8], prev: u32, next: u32) {
    wr16(b, 0, F_FREE);
    wr32(b, 4, prev);
    wr32(b, 8, next);
}
pub(crate) fn set_free_prev(b: &mut [u8], prev: u32) {
    wr32(b, 4, prev);
}
pub(crate) fn set_free_next(b: &mut [u8], next: u32) {
    wr32(b, 8, next);
}

/// Iterator over the value slices of an item.
#[derive(Clone)]
pub(crate) struct PartsIter<'a> {
    arena: &'a Arena,
    first: Option<&'a [u8]>,
    next_chunk: u32,
    remaining: usize,
}

impl<'a> PartsIter<'a> {
    pub(crate) fn new(arena: &'a Arena, id: u32, base: usize) -> Self {
        let h = Hdr::new(arena.chunk(id), base);
        let first = h.head_value();
        PartsIter {
            arena,
            first: Some(first),
            next_chunk: h.first_cont(),
            remaining: h.value_len() - first.len(),
        }
    }

    pub(crate) fn contiguous(&self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            Some(self.first.unwrap_or(&[]))
        } else {
            None
        }
    }
}

impl<'a> Iterator for PartsIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(f) = self.first.take() {
            return Some(f);
        }
        if self.remaining == 0 || self.next_chunk == NIL {
            return None;
        }
        let c = self.arena.chunk(self.next_chunk);
        let n = self.remaining.min(c.len() - CONT_HDR);
        self.remaining -= n;
        self.next_chunk = cont_next(c);
        Some(&c[CONT_HDR..CONT_HDR + n])
    }
}
