// struct page flag bits and page types, as include/linux/page-flags.h has them in 4.20/5.0
// (x86-64: no PG_uncached; MEMORY_FAILURE and IDLE_PAGE_TRACKING on).

export const PG_locked = 0;
export const PG_referenced = 1;
export const PG_uptodate = 2;
export const PG_dirty = 3;
export const PG_lru = 4;
export const PG_active = 5;
export const PG_workingset = 6;
export const PG_waiters = 7;
export const PG_error = 8;
export const PG_slab = 9;
export const PG_owner_priv_1 = 10;
export const PG_arch_1 = 11;
export const PG_reserved = 12;
export const PG_private = 13;
export const PG_private_2 = 14;
export const PG_writeback = 15;
export const PG_head = 16;
export const PG_mappedtodisk = 17;
export const PG_reclaim = 18;
export const PG_swapbacked = 19;
export const PG_unevictable = 20;
export const PG_mlocked = 21;
export const PG_hwpoison = 22;
export const PG_young = 23;
export const PG_idle = 24;
export const NR_PAGEFLAGS = 25;
export const PG_swapcache = PG_owner_priv_1;

/** Names for %pGp, in bit order (include/trace/events/mmflags.h __def_pageflag_names). */
export const PAGEFLAG_NAMES: readonly string[] = [
  "locked", "referenced", "uptodate", "dirty", "lru", "active", "workingset", "waiters",
  "error", "slab", "owner_priv_1", "arch_1", "reserved", "private", "private_2", "writeback",
  "head", "mappedtodisk", "reclaim", "swapbacked", "unevictable", "mlocked", "hwpoison",
  "young", "idle",
];

/** PAGE_FLAGS_CHECK_AT_FREE: a page being freed must have none of these. */
export const PAGE_FLAGS_CHECK_AT_FREE =
  (1 << PG_lru) | (1 << PG_locked) | (1 << PG_private) | (1 << PG_private_2) | (1 << PG_writeback) |
  (1 << PG_reserved) | (1 << PG_slab) | (1 << PG_active) | (1 << PG_unevictable) | (1 << PG_mlocked);

/** PAGE_FLAGS_CHECK_AT_PREP: a page leaving the allocator must have none of these. */
export const PAGE_FLAGS_CHECK_AT_PREP = (1 << NR_PAGEFLAGS) - 1;

// Page types live in page->_mapcount (4.20 page_type): a freshly initialised page has
// _mapcount == -1; a type is "set" by clearing its bit under PAGE_TYPE_BASE.
export const PAGE_TYPE_BASE = 0xf0000000 | 0;
export const PG_buddy = 0x00000080;
export const PG_balloon = 0x00000100;
export const PG_kmemcg = 0x00000200;
export const PG_table = 0x00000400;

/** page->flags of a struct page that was never initialised (page_init_poison, 0xff bytes). */
export const PAGE_POISON_PATTERN = 0xffffffff;

/** "reserved|private" as %pGp prints it; "" when no flag is set. */
export function formatPageFlags(flags: number): string {
  const names: string[] = [];
  for (let bit = 0; bit < NR_PAGEFLAGS; bit++) if (flags & (1 << bit)) names.push(PAGEFLAG_NAMES[bit]!);
  return names.join("|");
}
