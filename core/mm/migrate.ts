// migrate_vma() (mm/migrate.c, 4.19-5.0; spec mm-hmm R4.4): move the pages of a range of one
// vma to memory the driver allocates, device-private memory included, and back. The kernel
// collects and unmaps the source pages (migration entries in their place), the driver's
// alloc_and_copy() fills dst[], the struct pages move, finalize_and_map() lets the driver see
// which succeeded, and the ptes are restored to the new pages (or the old ones on failure).

import { EINVAL } from "../errno.ts";
import type { Page } from "./memmap.ts";
import { PAGE_SIZE, ZONE_DEVICE } from "./memmap.ts";
import type { MM } from "./mm.ts";
import { MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_PUBLIC } from "./memremap.ts";
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start, _vm_normal_page } from "./memory.ts";
import { MM_ANONPAGES, VM_HUGETLB, VM_SPECIAL, VM_WRITE, vma_is_anonymous, type VmArea } from "./mm_types.ts";
import { PG_locked, PG_swapbacked, PG_uptodate } from "./page-flags.ts";
import { is_swap_pte, pfn_pte, pte_mkdirty, pte_mkwrite, pte_none, pte_pfn, pte_to_swp_entry, pte_write, swp_entry_to_pte } from "./pgtable.ts";
import { anon_vma_prepare, page_add_anon_rmap, page_add_new_anon_rmap, page_mapcount, page_remove_rmap, page_rmapping, PageAnon, rmap_walk } from "./rmap.ts";
import {
  is_device_private_entry, is_migration_entry, is_write_device_private_entry, is_write_migration_entry, make_device_private_entry, make_migration_entry,
  swp_offset,
} from "./swapops.ts";

export const MIGRATE_PFN_VALID = 1 << 0;
export const MIGRATE_PFN_MIGRATE = 1 << 1;
export const MIGRATE_PFN_LOCKED = 1 << 2;
export const MIGRATE_PFN_WRITE = 1 << 3;
export const MIGRATE_PFN_DEVICE = 1 << 4;
export const MIGRATE_PFN_ERROR = 1 << 5;
export const MIGRATE_PFN_SHIFT = 6;

/** migrate_pfn(): a src/dst entry for `pfn`, VALID. */
export function migrate_pfn(pfn: Page): number {
  return pfn * 2 ** MIGRATE_PFN_SHIFT + MIGRATE_PFN_VALID;
}
/** migrate_pfn_to_page(): the page of a VALID entry, or -1. */
export function migrate_pfn_to_page(mpfn: number): Page {
  return mpfn % 2 === 1 ? Math.floor(mpfn / 2 ** MIGRATE_PFN_SHIFT) : -1;
}
function has(mpfn: number, flag: number): boolean {
  return (mpfn % 2 ** MIGRATE_PFN_SHIFT & flag) !== 0;
}
function clear(mpfn: number, flag: number): number {
  return has(mpfn, flag) ? mpfn - flag : mpfn;
}

/** struct migrate_vma_ops */
export interface MigrateVmaOps {
  /** For each src entry with MIGRATE: allocate, copy, set dst = migrate_pfn(new) | LOCKED (and
   *  DEVICE for device memory). A device-to-system failure sets dst = MIGRATE_PFN_ERROR. */
  alloc_and_copy(vma: VmArea, src: Float64Array, dst: Float64Array, start: number, end: number, priv: unknown): void;
  /** src entries that still have MIGRATE moved; the driver may map them in its page tables. */
  finalize_and_map(vma: VmArea, src: Float64Array, dst: Float64Array, start: number, end: number, priv: unknown): void;
}

/** struct migrate_vma (internal in 4.19-5.0). */
interface Migrate {
  readonly vma: VmArea;
  readonly src: Float64Array;
  readonly dst: Float64Array;
  readonly start: number;
  readonly end: number;
  npages: number;
  cpages: number;
}

export class Migration {
  readonly #mm: MM;
  constructor(mm: MM) {
    this.#mm = mm;
  }

  /**
   * migrate_vma(): -EINVAL for a missing, hugetlb or special vma, a range outside it, missing
   * ops/src/dst or start >= end; otherwise 0, whatever was migrated (src[] says).
   */
  migrate_vma(ops: MigrateVmaOps | null, vma: VmArea | null, start: number, end: number, src: Float64Array | null, dst: Float64Array | null, priv: unknown): number {
    start -= start % PAGE_SIZE;
    end -= end % PAGE_SIZE;
    if (!vma || vma.vm_flags & (VM_HUGETLB | VM_SPECIAL)) return -EINVAL;
    if (start < vma.vm_start || start >= vma.vm_end) return -EINVAL;
    if (end <= vma.vm_start || end > vma.vm_end) return -EINVAL;
    if (!ops || !src || !dst || start >= end) return -EINVAL;
    const npages = (end - start) / PAGE_SIZE;
    src.fill(0, 0, npages);
    const m: Migrate = { vma, src, dst, start, end, npages: 0, cpages: 0 };

    this.#collect(m);
    if (!m.cpages) return 0;
    this.#prepare(m);
    if (!m.cpages) return 0;
    this.#unmap(m);
    if (!m.cpages) return 0;
    ops.alloc_and_copy(vma, src, dst, start, end, priv);
    this.#pages(m);
    ops.finalize_and_map(vma, src, dst, start, end, priv);
    this.#finalize(m);
    return 0;
  }

  /** migrate_vma_collect(): fill src[], pin each page, and replace the ptes of pages we can
   *  lock right away with migration entries. */
  #collect(m: Migrate): void {
    const kmm = this.#mm;
    const mm = m.vma.vm_mm;
    mmu_notifier_invalidate_range_start(mm, m.start, m.end);
    for (let addr = m.start; addr < m.end; addr += PAGE_SIZE) {
      const pte = mm.ptep_get(addr);
      let mpfn = 0;
      let page: Page = -1;
      if (pte_none(pte)) {
        mpfn = MIGRATE_PFN_MIGRATE; // a hole: the driver may give it fresh memory
        m.cpages++;
      } else if (is_swap_pte(pte)) {
        const entry = pte_to_swp_entry(pte);
        if (is_device_private_entry(entry)) {
          page = swp_offset(entry);
          mpfn = migrate_pfn(page) + MIGRATE_PFN_DEVICE + MIGRATE_PFN_MIGRATE + (is_write_device_private_entry(entry) ? MIGRATE_PFN_WRITE : 0);
        }
      } else if (pte_pfn(pte) === kmm.zeroPfn) {
        mpfn = MIGRATE_PFN_MIGRATE;
        m.cpages++;
      } else {
        page = _vm_normal_page(m.vma, addr, pte, true);
        mpfn = page < 0 ? 0 : migrate_pfn(page) + MIGRATE_PFN_MIGRATE + (pte_write(pte) ? MIGRATE_PFN_WRITE : 0);
      }
      // THP and pages without ->mapping are not migrated.
      if (page >= 0 && !page_rmapping(kmm, page)) {
        mpfn = 0;
        page = -1;
      }
      if (page >= 0) {
        kmm.get_page(page);
        m.cpages++;
        if (trylock_page(kmm, page)) {
          mpfn += MIGRATE_PFN_LOCKED;
          const write = is_swap_pte(pte) ? is_write_device_private_entry(pte_to_swp_entry(pte)) : pte_write(pte);
          mm.set_pte_at(addr, swp_entry_to_pte(make_migration_entry(page, write)));
          page_remove_rmap(kmm, page);
          kmm.put_page(page);
        }
      }
      m.dst[m.npages] = 0;
      m.src[m.npages++] = mpfn;
    }
    mmu_notifier_invalidate_range_end(mm, m.start, m.end);
  }

  /** migrate_vma_prepare(): lock and isolate each collected page; a page that cannot be is
   *  restored and dropped from the migration. */
  #prepare(m: Migrate): void {
    const kmm = this.#mm;
    for (let i = 0; i < m.npages; i++) {
      const page = migrate_pfn_to_page(m.src[i]!);
      if (page < 0) continue;
      if (!has(m.src[i]!, MIGRATE_PFN_LOCKED)) {
        lock_page(kmm, page);
        m.src[i] = m.src[i]! + MIGRATE_PFN_LOCKED;
      }
      if (!is_zone_device_page(kmm, page)) {
        // isolate_lru_page() takes a reference; the one collect took goes.
        if (!isolate_lru_page(kmm, page)) {
          this.#drop(m, i, page, false);
          continue;
        }
        kmm.put_page(page);
      }
      if (!migrate_vma_check_page(kmm, page)) this.#drop(m, i, page, true);
    }
  }

  /** Give a page back its ptes and drop it from the migration (prepare's and unmap's restore). */
  #drop(m: Migrate, i: number, page: Page, isolated: boolean): void {
    const kmm = this.#mm;
    m.src[i] = 0;
    m.cpages--;
    remove_migration_ptes(kmm, page, page);
    unlock_page(kmm, page);
    if (is_zone_device_page(kmm, page)) kmm.put_page(page);
    else if (isolated) putback_lru_page(kmm, page);
    else kmm.put_page(page);
  }

  /** migrate_vma_unmap(): unmap what the collect pass could not (other processes' ptes, via
   *  the reverse map); pages still mapped or pinned are restored. */
  #unmap(m: Migrate): void {
    const kmm = this.#mm;
    for (let i = 0; i < m.npages; i++) {
      const page = migrate_pfn_to_page(m.src[i]!);
      if (page < 0 || !has(m.src[i]!, MIGRATE_PFN_MIGRATE)) continue;
      if (page_mapcount(kmm, page) > 0) try_to_unmap_migration(kmm, page);
      if (page_mapcount(kmm, page) > 0 || !migrate_vma_check_page(kmm, page)) this.#drop(m, i, page, !is_zone_device_page(kmm, page));
    }
  }

  /** migrate_vma_pages(): move each struct page to its new page; holes get the new page
   *  inserted; what cannot move loses MIGRATE. */
  #pages(m: Migrate): void {
    const kmm = this.#mm;
    const mm = m.vma.vm_mm;
    let notified = false;
    for (let i = 0, addr = m.start; i < m.npages; i++, addr += PAGE_SIZE) {
      const newpage = migrate_pfn_to_page(m.dst[i]!);
      const page = migrate_pfn_to_page(m.src[i]!);
      if (newpage < 0) {
        m.src[i] = clear(m.src[i]!, MIGRATE_PFN_MIGRATE);
        continue;
      }
      if (page < 0) {
        if (!has(m.src[i]!, MIGRATE_PFN_MIGRATE)) continue;
        if (!notified) {
          notified = true;
          mmu_notifier_invalidate_range_start(mm, addr, m.end);
        }
        this.#insertPage(m, addr, newpage, i);
        continue;
      }
      const fileBacked = !PageAnon(kmm, page);
      if (is_zone_device_page(kmm, newpage)) {
        const type = pgmapType(kmm, newpage);
        // Only private anonymous memory goes to device-private memory; other device pages
        // than private and public are not supported.
        if ((type === MEMORY_DEVICE_PRIVATE && fileBacked) || (type !== MEMORY_DEVICE_PRIVATE && type !== MEMORY_DEVICE_PUBLIC)) {
          m.src[i] = clear(m.src[i]!, MIGRATE_PFN_MIGRATE);
          continue;
        }
      }
      if (!migrate_page(kmm, newpage, page, fileBacked)) m.src[i] = clear(m.src[i]!, MIGRATE_PFN_MIGRATE);
    }
    if (notified) mmu_notifier_invalidate_range_end(mm, m.start, m.end);
  }

  /** migrate_vma_insert_page(): a hole gets the new page, anonymous private vmas only. */
  #insertPage(m: Migrate, addr: number, page: Page, i: number): void {
    const kmm = this.#mm;
    const vma = m.vma;
    const mm = vma.vm_mm;
    const fail = () => void (m.src[i] = clear(m.src[i]!, MIGRATE_PFN_MIGRATE));
    if (!vma_is_anonymous(vma) || anon_vma_prepare(vma)) return fail();
    setFlag(kmm, page, PG_uptodate);
    const device = is_zone_device_page(kmm, page);
    if (device && pgmapType(kmm, page) !== MEMORY_DEVICE_PRIVATE) return fail();
    if (!pte_none(mm.ptep_get(addr))) return fail();
    const writable = (vma.vm_flags & VM_WRITE) !== 0;
    let pte = device ? swp_entry_to_pte(make_device_private_entry(page, writable)) : pfn_pte(page, vma.vm_page_prot);
    if (!device && writable) pte = pte_mkwrite(pte_mkdirty(pte));
    mm.rss[MM_ANONPAGES]!++;
    page_add_new_anon_rmap(kmm, page, vma, addr);
    kmm.get_page(page);
    mm.set_pte_at(addr, pte);
    m.src[i] = MIGRATE_PFN_MIGRATE;
  }

  /** migrate_vma_finalize(): restore the ptes (to the new page when it moved) and let go. */
  #finalize(m: Migrate): void {
    const kmm = this.#mm;
    for (let i = 0; i < m.npages; i++) {
      let newpage = migrate_pfn_to_page(m.dst[i]!);
      const page = migrate_pfn_to_page(m.src[i]!);
      if (page < 0) {
        if (newpage >= 0) {
          unlock_page(kmm, newpage);
          kmm.put_page(newpage);
        }
        continue;
      }
      if (!has(m.src[i]!, MIGRATE_PFN_MIGRATE) || newpage < 0) {
        if (newpage >= 0) {
          unlock_page(kmm, newpage);
          kmm.put_page(newpage);
        }
        newpage = page;
      }
      remove_migration_ptes(kmm, page, newpage);
      unlock_page(kmm, page);
      m.cpages--;
      if (is_zone_device_page(kmm, page)) kmm.put_page(page);
      else putback_lru_page(kmm, page);
      if (newpage !== page) {
        unlock_page(kmm, newpage);
        if (is_zone_device_page(kmm, newpage)) kmm.put_page(newpage);
        else putback_lru_page(kmm, newpage);
      }
    }
  }
}

// ---- page state helpers -------------------------------------------------------------------

function flagsOf(kmm: MM, page: Page): { sec: ReturnType<MM["memmap"]["section"]>; i: number } {
  const sec = kmm.memmap.section(page);
  return { sec, i: page - sec.startPfn };
}
function testFlag(kmm: MM, page: Page, bit: number): boolean {
  const { sec, i } = flagsOf(kmm, page);
  return (sec.flags[i]! & (1 << bit)) !== 0;
}
function setFlag(kmm: MM, page: Page, bit: number): void {
  const { sec, i } = flagsOf(kmm, page);
  sec.flags[i] = sec.flags[i]! | (1 << bit);
}
function clearFlag(kmm: MM, page: Page, bit: number): void {
  const { sec, i } = flagsOf(kmm, page);
  sec.flags[i] = sec.flags[i]! & ~(1 << bit);
}

/** trylock_page(): nobody else holds page locks in kemu's single CPU, unless a driver does. */
function trylock_page(kmm: MM, page: Page): boolean {
  if (testFlag(kmm, page, PG_locked)) return false;
  setFlag(kmm, page, PG_locked);
  return true;
}
function lock_page(kmm: MM, page: Page): void {
  if (!trylock_page(kmm, page)) kmm.k.sched.waitUntil(() => trylock_page(kmm, page), "lock_page");
}
function unlock_page(kmm: MM, page: Page): void {
  clearFlag(kmm, page, PG_locked);
}

function is_zone_device_page(kmm: MM, page: Page): boolean {
  return kmm.page_zonenum(page) === ZONE_DEVICE;
}
function pgmapType(kmm: MM, page: Page): number {
  const { sec, i } = flagsOf(kmm, page);
  return kmm.memremap.pgmapOf(sec.pgmap[i]!)?.type ?? -1;
}

/** isolate_lru_page(): take the page off the LRU with a reference. kemu keeps no LRU lists
 *  (no reclaim), so only the reference is modelled. */
function isolate_lru_page(kmm: MM, page: Page): boolean {
  kmm.get_page(page);
  return true;
}
/** putback_lru_page(): back on the LRU, dropping isolation's reference. */
function putback_lru_page(kmm: MM, page: Page): void {
  kmm.put_page(page);
}

/**
 * migrate_vma_check_page(): can the page move? Device-private pages always can (they cannot be
 * pinned); others only when nobody holds a reference beyond the ptes and our own (one, plus
 * one for a ZONE_DEVICE public page, plus one for the page cache).
 */
function migrate_vma_check_page(kmm: MM, page: Page): boolean {
  let extra = 1;
  if (is_zone_device_page(kmm, page)) {
    const type = pgmapType(kmm, page);
    if (type === MEMORY_DEVICE_PRIVATE) return true;
    if (type !== MEMORY_DEVICE_PUBLIC) return false;
    extra++;
  }
  if (!PageAnon(kmm, page) && page_rmapping(kmm, page)) extra += 1;
  const { sec, i } = flagsOf(kmm, page);
  return sec.refcount[i]! - extra <= page_mapcount(kmm, page);
}

/** try_to_unmap(TTU_MIGRATION): every pte mapping the page becomes a migration entry. */
function try_to_unmap_migration(kmm: MM, page: Page): void {
  rmap_walk(kmm, page, (vma, addr) => {
    const mm = vma.vm_mm;
    const pte = mm.ptep_get(addr);
    let write: boolean;
    if (is_swap_pte(pte)) {
      const entry = pte_to_swp_entry(pte);
      if (!is_device_private_entry(entry) || swp_offset(entry) !== page) return;
      write = is_write_device_private_entry(entry);
    } else if (!pte_none(pte) && pte_pfn(pte) === page) {
      write = pte_write(pte);
    } else {
      return;
    }
    mmu_notifier_invalidate_range_start(mm, addr, addr + PAGE_SIZE);
    mm.set_pte_at(addr, swp_entry_to_pte(make_migration_entry(page, write)));
    page_remove_rmap(kmm, page);
    kmm.put_page(page);
    mmu_notifier_invalidate_range_end(mm, addr, addr + PAGE_SIZE);
  });
}

/**
 * remove_migration_ptes(old, new): each migration entry for `old` maps `new` again: a
 * device-private entry for device-private memory, a pte otherwise, writable as the entry was.
 */
function remove_migration_ptes(kmm: MM, old: Page, page: Page): void {
  const device = is_zone_device_page(kmm, page) && pgmapType(kmm, page) === MEMORY_DEVICE_PRIVATE;
  rmap_walk(kmm, page, (vma, addr) => {
    const mm = vma.vm_mm;
    const pte = mm.ptep_get(addr);
    if (!is_swap_pte(pte)) return;
    const entry = pte_to_swp_entry(pte);
    if (!is_migration_entry(entry) || swp_offset(entry) !== old) return;
    const write = is_write_migration_entry(entry);
    kmm.get_page(page);
    let next = device ? swp_entry_to_pte(make_device_private_entry(page, write)) : pfn_pte(page, vma.vm_page_prot);
    if (!device && write && vma.vm_flags & VM_WRITE) next = pte_mkwrite(next); // maybe_mkwrite()
    mm.set_pte_at(addr, next);
    page_add_anon_rmap(kmm, page, vma, addr);
  });
}

/**
 * migrate_page(MIGRATE_SYNC_NO_COPY): the struct page state moves (the driver copied the
 * data). An anonymous page must hold only migration's reference (and a device page its idle
 * one); false when it does not.
 */
function migrate_page(kmm: MM, newpage: Page, page: Page, fileBacked: boolean): boolean {
  // kemu does not move page-cache pages (migrate_page_move_mapping() with a mapping): a
  // file-backed page stays where it is.
  if (fileBacked) return false;
  const expected = 1 + (is_zone_device_page(kmm, page) && pgmapType(kmm, page) === MEMORY_DEVICE_PRIVATE ? 1 : 0);
  const o = flagsOf(kmm, page);
  if (o.sec.refcount[o.i]! !== expected) return false;
  const n = flagsOf(kmm, newpage);
  n.sec.index[n.i] = o.sec.hasIndex() ? o.sec.index[o.i]! : 0;
  n.sec.mapping[n.i] = o.sec.hasMapping() ? o.sec.mapping[o.i]! : null;
  if (testFlag(kmm, page, PG_swapbacked)) setFlag(kmm, newpage, PG_swapbacked);
  setFlag(kmm, newpage, PG_uptodate);
  return true;
}
