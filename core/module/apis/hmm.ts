// HMM's mirror and migration API as 4.20/5.0 modules use it (include/linux/hmm.h,
// include/linux/migrate.h): hmm_mirror_register() with the module's ops, hmm_range snapshots
// (hmm_vma_get_pfns, hmm_vma_fault, hmm_vma_range_done), migrate_vma() with the module's
// alloc_and_copy/finalize_and_map, and the page helpers a migration needs.
//
// Arrays are the module's: range->pfns, src[] and dst[] cross as copies, and come back when
// the kernel (or the module's callback) wrote them (abi.ts io:f64).

import type { HmmMirror, HmmRange } from "../../mm/hmm-mirror.ts";
import { PAGE_SIZE, type Page } from "../../mm/memmap.ts";
import {
  lock_page, migrate_pfn_flags, migrate_pfn_to_page, MIGRATE_PFN_LOCKED, PageLocked, trylock_page, unlock_page, type MigrateVmaOps,
} from "../../mm/migrate.ts";
import type { MmStruct, VmArea } from "../../mm/mm_types.ts";
import { defineApis, type CallCtx } from "../api.ts";
import { ArgError } from "../marshal.ts";
import { mirrorOps, rangeTracked, type MigrateVmaOpsTwin } from "../twins.ts";

/** The range's arrays and vma must be there: the kernel would dereference them. */
function checkRange(range: HmmRange): HmmRange {
  if (!range.vma) throw new ArgError("range->vma is NULL");
  if (!(range.end > range.start)) return range;
  const npages = Math.ceil((range.end - range.start) / PAGE_SIZE);
  if (range.pfns.length < npages) throw new ArgError(`range->pfns has ${range.pfns.length} entries, the range [${hex(range.start)}, ${hex(range.end)}) needs ${npages}`);
  return range;
}

function hex(v: number): string {
  return "0x" + v.toString(16);
}

/**
 * The module's dst[] after its alloc_and_copy(): every entry naming a page must name a page
 * that exists, that someone holds (the module allocated it) and that is locked as the entry
 * says; anything else is dropped with a line, instead of the kernel migrating into memory
 * that is not the module's.
 */
function checkDst(c: CallCtx, dst: Float64Array, npages: number, who: string): void {
  const mm = c.k.mm;
  for (let i = 0; i < npages; i++) {
    const v = dst[i]!;
    if (v === 0) continue;
    const page = Number.isSafeInteger(v) && v > 0 ? migrate_pfn_to_page(v) : -2;
    if (page === -1) continue; // no page (0, MIGRATE_PFN_ERROR)
    if (page >= 0 && mm.memmap.pfn_valid(page) && mm.page_ref_count(page) > 0 && (migrate_pfn_flags(v) & MIGRATE_PFN_LOCKED) !== 0 && PageLocked(mm, page)) continue;
    c.k.printk(`\x013kemu: ${c.mod.name}: ${who}() set dst[${i}] to ${hex(v)}, which is not a locked page it holds; the entry is dropped\n`);
    dst[i] = 0;
  }
}

export const HMM_APIS = defineApis([
  {
    name: "hmm_mirror_register", symbols: ["hmm_mirror_register"], params: ["s:hmm_mirror", "o:mm_struct"], ret: "int", proto: "int hmm_mirror_register(struct hmm_mirror *mirror, struct mm_struct *mm)",
    impl: (c: CallCtx, mirror: HmmMirror, mm: MmStruct) => {
      // "if (!mm || !mirror || !mirror->ops) return -EINVAL;"
      if (!mirrorOps.get(mirror)?.ops) return -22;
      if (mirror.hmm) throw new ArgError("the mirror is registered already");
      const rc = c.k.hmm.mirror.hmm_mirror_register(mirror, mm);
      if (!rc) c.mod.holdings.mirrors.add(mirror);
      return rc;
    },
  },
  {
    name: "hmm_mirror_unregister", symbols: ["hmm_mirror_unregister"], params: ["s:hmm_mirror"], ret: "void", proto: "void hmm_mirror_unregister(struct hmm_mirror *mirror)",
    impl: (c: CallCtx, mirror: HmmMirror) => {
      c.mod.holdings.mirrors.delete(mirror);
      c.k.hmm.mirror.hmm_mirror_unregister(mirror);
    },
  },
  {
    name: "hmm_vma_get_pfns", symbols: ["hmm_vma_get_pfns"], params: ["s:hmm_range"], ret: "int", proto: "int hmm_vma_get_pfns(struct hmm_range *range)",
    impl: (c: CallCtx, range: HmmRange) => {
      if (rangeTracked(range)) throw new ArgError("the range is tracked already: hmm_vma_range_done() it first");
      return c.k.hmm.mirror.hmm_vma_get_pfns(checkRange(range));
    },
  },
  {
    name: "hmm_vma_range_done", symbols: ["hmm_vma_range_done"], params: ["s:hmm_range"], ret: "bool", proto: "bool hmm_vma_range_done(struct hmm_range *range)",
    impl: (c: CallCtx, range: HmmRange) => c.k.hmm.mirror.hmm_vma_range_done(checkRange(range)),
  },
  {
    name: "hmm_vma_fault", symbols: ["hmm_vma_fault"], params: ["s:hmm_range", "bool"], ret: "int", proto: "int hmm_vma_fault(struct hmm_range *range, bool block)",
    impl: (c: CallCtx, range: HmmRange, block: boolean) => {
      if (rangeTracked(range)) throw new ArgError("the range is tracked already: hmm_vma_range_done() it first");
      return c.k.hmm.mirror.hmm_vma_fault(checkRange(range), block);
    },
  },
  {
    name: "hmm_vma_alloc_locked_page", symbols: ["hmm_vma_alloc_locked_page"], params: ["o:vm_area_struct", "num"], ret: "page", proto: "struct page *hmm_vma_alloc_locked_page(struct vm_area_struct *vma, unsigned long addr)",
    impl: (c: CallCtx, vma: VmArea, addr: number) => c.k.hmm.hmm_vma_alloc_locked_page(vma, addr),
  },
  {
    name: "migrate_vma", symbols: ["migrate_vma"], params: ["s:migrate_vma_ops", "o?:vm_area_struct", "num", "num", "io:f64", "io:f64", "p"], ret: "int",
    proto: "int migrate_vma(const struct migrate_vma_ops *ops, struct vm_area_struct *vma, unsigned long start, unsigned long end, unsigned long *src, unsigned long *dst, void *private)",
    impl: (c: CallCtx, ops: MigrateVmaOpsTwin, vma: VmArea | null, start: number, end: number, src: Float64Array | null, dst: Float64Array | null, priv: unknown) => {
      const s = start - (start % PAGE_SIZE);
      const e = end - (end % PAGE_SIZE);
      const npages = e > s ? (e - s) / PAGE_SIZE : 0;
      if (src && src.length < npages) throw new ArgError(`src[] has ${src.length} entries, the range needs ${npages}`);
      if (dst && dst.length < npages) throw new ArgError(`dst[] has ${dst.length} entries, the range needs ${npages}`);
      const mm = c.k.mm;
      // A NULL callback is called all the same, as the kernel would.
      const host: MigrateVmaOps = {
        alloc_and_copy(v, sr, ds, st, en, p) {
          if (!ops.alloc_and_copy) return mm.nullDeref("migrate_vma");
          ops.alloc_and_copy(v, sr, ds, st, en, p);
          checkDst(c, ds, npages, "alloc_and_copy");
        },
        finalize_and_map(v, sr, ds, st, en, p) {
          if (!ops.finalize_and_map) return mm.nullDeref("migrate_vma");
          ops.finalize_and_map(v, sr, ds, st, en, p);
        },
      };
      return mm.migration.migrate_vma(host, vma, start, end, src, dst, priv);
    },
  },
  { name: "lock_page", symbols: ["__lock_page"], params: ["page"], ret: "void", proto: "static inline void lock_page(struct page *page)", impl: (c: CallCtx, page: Page) => lock_page(c.k.mm, page) },
  { name: "trylock_page", symbols: [], params: ["page"], ret: "bool", proto: "static inline int trylock_page(struct page *page)", impl: (c: CallCtx, page: Page) => trylock_page(c.k.mm, page) },
  {
    name: "unlock_page", symbols: ["unlock_page"], params: ["page"], ret: "void", proto: "void unlock_page(struct page *page)",
    impl: (c: CallCtx, page: Page) => {
      // VM_BUG_ON_PAGE(!PageLocked(page), page) under CONFIG_DEBUG_VM.
      if (!PageLocked(c.k.mm, page)) throw new ArgError(`page ${hex(page)} is not locked`);
      unlock_page(c.k.mm, page);
    },
  },
  { name: "PageLocked", symbols: [], params: ["page"], ret: "bool", proto: "static __always_inline int PageLocked(struct page *page)", impl: (c: CallCtx, page: Page) => PageLocked(c.k.mm, page) },
  {
    name: "copy_highpage", symbols: ["copy_page"], params: ["page", "page"], ret: "void", proto: "static inline void copy_highpage(struct page *to, struct page *from)",
    impl: (c: CallCtx, to: Page, from: Page) => {
      const memmap = c.k.mm.memmap;
      // kmap_atomic() of a pfn without a struct page faults as the kernel's would.
      memmap.section(to);
      memmap.section(from);
      c.k.mm.physmem.copyPage(to, from);
    },
  },
]);
