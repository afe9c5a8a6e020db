//! The arena: pages (one heap allocation of `page_size` bytes each), split
//! into equal chunks per slab class, addressed by `u32` chunk ids
//! (`page_no << slot_bits | slot`). All access is bounds-checked safe code.

use super::item::{self, NIL};
use super::EngineConfig;

/// memcached's `CHUNK_ALIGN_BYTES`.
pub(crate) const CHUNK_ALIGN: usize = 8;
/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES - 1` usable ids.
pub(crate) const MAX_CLASSES: usize = 63;

/// Static description of one slab class.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClassInfo {
    pub size: u32,
    pub perslab: u32,
}

/// memcached's `slabs_init` ladder: start at header + min space, multiply by
/// the factor (truncating), align to 8, stop before `page_size / 2 / factor`;
/// the last class is exactly `page_size / 2`.
pub(crate) fn build_classes(cfg: &EngineConfig, hdr_base: usize) -> Vec<ClassInfo> {
    let max = cfg.page_size / 2;
    let mut out = Vec::new();
    let mut size = hdr_base + cfg.min_space;
    while out.len() < MAX_CLASSES - 1 {
        if size as f64 >= max as f64 / cfg.growth_factor {
            break;
        }
        if !size.is_multiple_of(CHUNK_ALIGN) {
            size += CHUNK_ALIGN - size % CHUNK_ALIGN;
        }
        out.push(ClassInfo {
            size: size as u32,
            perslab: (cfg.page_size / size) as u32,
        });
        size = (size as f64 * cfg.growth_factor) as usize;
    }
    out.push(ClassInfo {
        size: max as u32,
        perslab: (cfg.page_size / max) as u32,
    });
    out
}

/// Smallest class whose chunk holds `total` bytes (None: larger than the largest).
pub(crate) fn class_for(classes: &[ClassInfo], total: usize) -> Option<usize> {
    let i = classes.partition_point(|c| (c.size as usize) < total);
    (i < classes.len()).then_some(i)
}

pub(crate) struct Page {
    pub mem: Box<[u8]>,
    pub class: u8,
}

/// The pages one shard owns.
pub(crate) struct Arena {
    pages: Vec<Option<Page>>,
    free_nos: Vec<u32>,
    slot_bits: u32,
    sizes: Vec<u32>,
}

impl Arena {
    pub(crate) fn new(slot_bits: u32, sizes: Vec<u32>) -> Self {
        Arena {
            pages: Vec::new(),
            free_nos: Vec::new(),
            slot_bits,
            sizes,
        }
    }

    #[inline]
    pub(crate) fn id(&self, page_no: u32, slot: u32) -> u32 {
        (page_no << self.slot_bits) | slot
    }

    #[inline]
    pub(crate) fn page_of(&self, id: u32) -> u32 {
        id >> self.slot_bits
    }

    #[inline]
    pub(crate) fn slot_of(&self, id: u32) -> u32 {
        id & ((1u32 << self.slot_bits) - 1)
    }

    #[inline]
    fn page(&self, page_no: u32) -> &Page {
        self.pages[page_no as usize]
            .as_ref()
            .expect("chunk id refers to a released page")
    }

    #[inline]
    pub(crate) fn class_of(&self, id: u32) -> usize {
        self.page(self.page_of(id)).class as usize
    }

    #[inline]
    pub(crate) fn page_class(&self, page_no: u32) -> usize {
        self.page(page_no).class as usize
    }

    #[inline]
    pub(crate) fn chunk(&self, id: u32) -> &[u8] {
        let p = self.page(self.page_of(id));
        let size = self.sizes[p.class as usize] as usize;
        let off = self.slot_of(id) as usize * size;
        &p.mem[off..off + size]
    }

    #[inline]
    pub(crate) fn chunk_mut(&mut self, id: u32) -> &mut [u8] {
        let page_no = self.page_of(id);
        let slot = self.slot_of(id) as usize;
        let p = self.pages[page_no as usize]
            .as_mut()
            .expect("chunk id refers to a released page");
        let size = self.sizes[p.class as usize] as usize;
        let off = slot * size;
        &mut p.mem[off..off + size]
    }

    /// Copies `len` bytes from chunk `src` (at `src_off`) to chunk `dst` (at `dst_off`).
    pub(crate) fn copy_between(
        &mut self,
        src: u32,
        src_off: usize,
        dst: u32,
        dst_off: usize,
        len: usize,
    ) {
        let (sp, dp) = (self.page_of(src) as usize, self.page_of(dst) as usize);
        let s_base = self.slot_of(src) as usize
            * self.sizes[self.page_class(src >> self.slot_bits)] as usize;
        let d_base = self.slot_of(dst) as usize
            * self.sizes[self.page_class(dst >> self.slot_bits)] as usize;
        if sp == dp {
            let p = self.pages[sp].as_mut().expect("live page");
            p.mem
                .copy_within(s_base + src_off..s_base + src_off + len, d_base + dst_off);
        } else {
            let (a, b) = if sp < dp {
                let (l, r) = self.pages.split_at_mut(dp);
                (&l[sp], &mut r[0])
            } else {
                let (l, r) = self.pages.split_at_mut(sp);
                (&r[0], &mut l[dp])
            };
            let (a, b) = (
                a.as_ref().expect("live page"),
                b.as_mut().expect("live page"),
            );
            b.mem[d_base + dst_off..d_base + dst_off + len]
                .copy_from_slice(&a.mem[s_base + src_off..s_base + src_off + len]);
        }
    }

    /// Adds a page for `class`; returns its page number.
    pub(crate) fn add_page(&mut self, mem: Box<[u8]>, class: usize) -> u32 {
        let page = Some(Page {
            mem,
            class: class as u8,
        });
        if let Some(no) = self.free_nos.pop() {
            self.pages[no as usize] = page;
            no
        } else {
            self.pages.push(page);
            (self.pages.len() - 1) as u32
        }
    }

    /// Removes a page and returns its memory (contents are stale).
    pub(crate) fn remove_page(&mut self, page_no: u32) -> Box<[u8]> {
        let p = self.pages[page_no as usize].take().expect("live page");
        self.free_nos.push(page_no);
        p.mem
    }

    /// Reassigns a page to another class in place (its contents must be dead).
    pub(crate) fn set_page_class(&mut self, page_no: u32, class: usize) {
        let p = self.pages[page_no as usize].as_mut().expect("live page");
        p.mem.fill(0);
        p.class = class as u8;
    }

    /// Page numbers in use.
    pub(crate) fn page_nos(&self) -> impl Iterator<Item = u32> + '_ {
        self.pages
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| i as u32)
    }

    pub(crate) fn page_slots(&self) -> usize {
        self.pages.len()
    }

    pub(crate) fn has_page(&self, page_no: u32) -> bool {
        self.pages
            .get(page_no as usize)
            .is_some_and(|p| p.is_some())
    }
}

/// Chunk bookkeeping of one class in one shard (memcached's `slabclass_t`).
#[derive(Default)]
pub(crate) struct ChunkPool {
    pub pages: Vec<u32>,
    pub free_head: u32,
    pub free_count: u32,
    pub end_page: u32,
    pub end_next: u32,
    pub end_left: u32,
    pub used: u64,
}

impl ChunkPool {
    pub(crate) fn new() -> Self {
        ChunkPool {
            free_head: NIL,
            end_page: NIL,
            ..Default::default()
        }
    }

    /// Takes a free chunk (free list first, then the unused end of the newest page).
    pub(crate) fn alloc(&mut self, arena: &mut Arena) -> Option<u32> {
        if self.free_head != NIL {
            let id = self.free_head;
            let next = item::free_next(arena.chunk(id));
            self.free_head = next;
            if next != NIL {
                item::set_free_prev(arena.chunk_mut(next), NIL);
            }
            self.free_count -= 1;
            self.used += 1;
            let c = arena.chunk_mut(id);
            c[..12].fill(0);
            return Some(id);
        }
        if self.end_left > 0 {
            let id = arena.id(self.end_page, self.end_next);
            self.end_next += 1;
            self.end_left -= 1;
            self.used += 1;
            return Some(id);
        }
        None
    }

    /// Returns a chunk to the free list.
    pub(crate) fn free(&mut self, arena: &mut Arena, id: u32) {
        let head = self.free_head;
        item::set_free(arena.chunk_mut(id), NIL, head);
        if head != NIL {
            item::set_free_prev(arena.chunk_mut(head), id);
        }
        self.free_head = id;
        self.free_count += 1;
        self.used -= 1;
    }

    /// Unlinks a free chunk from the free list (page being released).
    pub(crate) fn unfree(&mut self, arena: &mut Arena, id: u32) {
        let (p, n) = {
            let c = arena.chunk(id);
            (item::free_prev(c), item::free_next(c))
        };
        if p != NIL {
            item::set_free_next(arena.chunk_mut(p), n);
        } else {
            self.free_head = n;
        }
        if n != NIL {
            item::set_free_prev(arena.chunk_mut(n), p);
        }
        self.free_count -= 1;
    }

    /// Adds a fresh (zeroed) page whose chunks become the "end" area.
    pub(crate) fn add_page(&mut self, page_no: u32, perslab: u32, arena: &mut Arena) {
        // Leftover end chunks of the previous page go to the free list.
        while self.end_left > 0 {
            let id = arena.id(self.end_page, self.end_next);
            self.end_next += 1;
            self.end_left -= 1;
            self.used += 1;
            self.free(arena, id);
        }
        self.pages.push(page_no);
        self.end_page = page_no;
        self.end_next = 0;
        self.end_left = perslab;
    }

    /// Free chunks including the unused end (`free_chunks + free_chunks_end`).
    pub(crate) fn total_free(&self) -> u64 {
        u64::from(self.free_count) + u64::from(self.end_left)
    }
}
