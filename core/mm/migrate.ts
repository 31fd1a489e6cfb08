// migrate_vma() (mm/migrate.c, 4.19-5.0; spec mm-hmm R4.4): move the pages of a range of one
// vma to memory the driver allocates, device-private memory included, and back. The kernel
// collects and unmaps the source pages (migration entries in their place), the driver's
// alloc_and_copy() fills dst[], the struct pages move, finalize_and_map() lets the driver see
// which succeeded, and the ptes are restored to the new pages (or the old ones on failure).
//
// The steps keep the kernel's names, order, reference counting and mmu notifier calls:
// - migrate_vma_collect(): one invalidation of [start, end); each present page (or device-
//   private entry) is pinned, and when it can be locked at once its pte becomes a migration
//   entry; holes and the zero page are collected as MIGRATE without a page.
// - migrate_vma_prepare(): lock (trylock only: a page it cannot lock is dropped), isolate
//   from the LRU (kemu keeps no LRU lists: isolation always succeeds and only its reference is
//   modelled), drop pinned pages.
// - migrate_vma_unmap(): try_to_unmap() the pages other ptes still map (after fork), through
//   the reverse map, with try_to_unmap_one()'s invalidation of each candidate vma's page.
// - migrate_vma_pages(): migrate_page() moves ->mapping, ->index and the page state; holes
//   and zero-page ptes get the new page (migrate_vma_insert_page(), inside one invalidation
//   from the first such address to the end).
// - migrate_vma_finalize(): remove_migration_ptes() to the new page or back to the old one.
// Pages in the page cache (shmem, memfd) are collected but kemu does not move page-cache
// entries: migrate_page() fails for them (the kernel refuses them for device-private memory
// anyway).

import { EINVAL } from "../errno.ts";
import type { MM } from "./mm.ts";
import { PAGE_SIZE, ZONE_DEVICE, type MemSection, type Page } from "./memmap.ts";
import { MEMORY_DEVICE_PRIVATE, MEMORY_DEVICE_PUBLIC } from "./memremap.ts";
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start, SetPageDirty, SetPageUptodate, _vm_normal_page } from "./memory.ts";
import { MM_ANONPAGES, pmd_addr_end, pmd_index, pte_index, VM_HUGETLB, VM_SPECIAL, VM_WRITE, vma_is_anonymous, type VmArea } from "./mm_types.ts";
import { PG_dirty, PG_error, PG_locked, PG_mappedtodisk, PG_referenced, PG_swapbacked, PG_uptodate } from "./page-flags.ts";
import {
  _PAGE_DIRTY, _PAGE_RW, is_swap_pte, pfn_pte, pte_mkdevmap, pte_mkdirty, pte_mkold, pte_mkwrite, pte_pfn, pte_present, pte_to_swp_entry,
  pte_write, swp_entry_to_pte,
} from "./pgtable.ts";
import {
  AnonVma, anon_vma_prepare, page_add_anon_rmap_at, page_add_file_rmap_at, page_add_new_anon_rmap, page_remove_rmap, page_remove_rmap_at, rmap_walk, vma_address,
} from "./rmap.ts";
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

const FLAGS = 1 << MIGRATE_PFN_SHIFT;

/** migrate_pfn(): a src/dst entry for `pfn`, VALID. */
export function migrate_pfn(pfn: Page): number {
  return pfn * FLAGS + MIGRATE_PFN_VALID;
}
/** migrate_pfn_to_page(): the page of a VALID entry, or -1 (NULL). */
export function migrate_pfn_to_page(mpfn: number): Page {
  return mpfn % 2 === 1 ? Math.floor(mpfn / FLAGS) : -1;
}
/** The MIGRATE_PFN_* bits of an entry. */
export function migrate_pfn_flags(mpfn: number): number {
  return mpfn % FLAGS;
}
/** mpfn & ~flag */
function clear(mpfn: number, flag: number): number {
  return mpfn % FLAGS & flag ? mpfn - flag : mpfn;
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
  end: number;
  npages: number;
  cpages: number;
}

// ---- page locks (include/linux/pagemap.h) -------------------------------------------------

export function PageLocked(kmm: MM, page: Page): boolean {
  const sec = kmm.memmap.section(page);
  return (sec.flags[page - sec.startPfn]! & (1 << PG_locked)) !== 0;
}
/** trylock_page(): kemu runs one task at a time, so a page is locked only by whoever holds it. */
export function trylock_page(kmm: MM, page: Page): boolean {
  const sec = kmm.memmap.section(page);
  return trylock_page_at(sec, page - sec.startPfn);
}
/** trylock_page() of page `i` of `sec`, for callers that looked the section up already. */
function trylock_page_at(sec: MemSection, i: number): boolean {
  const f = sec.flags[i]!;
  if (f & (1 << PG_locked)) return false;
  sec.flags[i] = f | (1 << PG_locked);
  return true;
}
/** lock_page(): sleeps until the holder unlocks; nobody can while kemu's one task waits. */
export function lock_page(kmm: MM, page: Page): void {
  if (!trylock_page(kmm, page)) kmm.k.sched.waitUntil(() => trylock_page(kmm, page), "lock_page");
}
export function unlock_page(kmm: MM, page: Page): void {
  const sec = kmm.memmap.section(page);
  unlock_page_at(sec, page - sec.startPfn);
}
/** unlock_page() of page `i` of `sec`. */
function unlock_page_at(sec: MemSection, i: number): void {
  sec.flags[i] = sec.flags[i]! & ~(1 << PG_locked);
}

export class Migration {
  readonly #mm: MM;
  constructor(mm: MM) {
    this.#mm = mm;
  }

  /**
   * migrate_vma(): -EINVAL for a missing, hugetlb or special vma, a range outside it, missing
   * ops/src/dst or start >= end (start and end are rounded down to pages); otherwise 0,
   * whatever was migrated (src[] says). src and dst need (end - start) / PAGE_SIZE entries.
   */
  migrate_vma(ops: MigrateVmaOps | null, vma: VmArea | null, start: number, end: number, src: Float64Array | null, dst: Float64Array | null, priv: unknown): number {
    start -= start % PAGE_SIZE;
    end -= end % PAGE_SIZE;
    // (vma_is_dax() too: kemu has no DAX filesystem and no device-dax file mappings.)
    if (!vma || vma.vm_flags & (VM_HUGETLB | VM_SPECIAL)) return -EINVAL;
    if (start < vma.vm_start || start >= vma.vm_end) return -EINVAL;
    if (end <= vma.vm_start || end > vma.vm_end) return -EINVAL;
    if (!ops || !src || !dst || start >= end) return -EINVAL;
    src.fill(0, 0, (end - start) / PAGE_SIZE);
    const m: Migrate = { vma, src, dst, start, end, npages: 0, cpages: 0 };

    // Collect, and try to unmap source pages
    this.#collect(m);
    if (!m.cpages) return 0;
    // Lock and isolate page
    this.#prepare(m);
    if (!m.cpages) return 0;
    // Unmap pages
    this.#unmap(m);
    if (!m.cpages) return 0;
    // The pages are locked and unmapped: their contents are stable for the copy.
    ops.alloc_and_copy(vma, src, dst, start, end, priv);
    // This does the real migration of struct page
    this.#pages(m);
    ops.finalize_and_map(vma, src, dst, start, end, priv);
    // Unlock and remap pages
    this.#finalize(m);
    return 0;
  }

  /**
   * migrate_vma_collect() with migrate_vma_collect_pmd()/_hole(): fill src[], pin each page,
   * and replace the ptes of the pages it can lock right away with migration entries.
   */
  #collect(m: Migrate): void {
    const kmm = this.#mm;
    const vma = m.vma;
    const mm = vma.vm_mm;
    const src = m.src;
    const dst = m.dst;
    const zeroPfn = kmm.zeroPfn;
    mmu_notifier_invalidate_range_start(mm, m.start, m.end);
    for (let addr = m.start; addr < m.end; ) {
      const next = pmd_addr_end(addr, m.end);
      const table = mm.pgd.get(pmd_index(addr));
      if (table === undefined) {
        // migrate_vma_collect_hole(): a hole is a candidate; the driver may give it memory.
        for (; addr < next; addr += PAGE_SIZE) {
          src[m.npages] = MIGRATE_PFN_MIGRATE;
          dst[m.npages++] = 0;
          m.cpages++;
        }
        continue;
      }
      for (; addr < next; addr += PAGE_SIZE) {
        const idx = pte_index(addr);
        const pte = table[idx]!;
        let mpfn = 0;
        let page: Page = -1;
        if (pte === 0) {
          mpfn = MIGRATE_PFN_MIGRATE;
          m.cpages++;
        } else if (!pte_present(pte)) {
          // Only device-private entries: other special entries cannot move, swap is left.
          const entry = pte_to_swp_entry(pte);
          if (is_device_private_entry(entry)) {
            page = swp_offset(entry);
            mpfn = migrate_pfn(page) + MIGRATE_PFN_DEVICE + MIGRATE_PFN_MIGRATE + (is_write_device_private_entry(entry) ? MIGRATE_PFN_WRITE : 0);
          }
        } else if (pte_pfn(pte) === zeroPfn) {
          mpfn = MIGRATE_PFN_MIGRATE;
          m.cpages++;
        } else {
          page = _vm_normal_page(vma, addr, pte, true);
          mpfn = migrate_pfn(pte_pfn(pte)) + MIGRATE_PFN_MIGRATE + (pte_write(pte) ? MIGRATE_PFN_WRITE : 0);
        }
        if (page >= 0) {
          const sec = kmm.memmap.section(page);
          const i = page - sec.startPfn;
          // FIXME support THP: no compound pages in kemu. A page without ->mapping stays.
          if (!sec.hasMapping() || sec.mapping[i] === null) {
            mpfn = 0;
          } else {
            m.cpages++;
            // trylock_page(): the common case, the page is mapped once, in this process.
            if (trylock_page_at(sec, i)) {
              mpfn += MIGRATE_PFN_LOCKED;
              table[idx] = swp_entry_to_pte(make_migration_entry(page, (mpfn & MIGRATE_PFN_WRITE) !== 0));
              // Like a regular unmap: no rmap, one reference less. get_page() (the pin that
              // "freezes" the pte) and the unmap's put_page() leave the count as it was.
              page_remove_rmap_at(kmm, sec, i);
            } else {
              // Pin it: that blocks any other migration and "freezes" the pte.
              kmm.get_page(page);
            }
          }
        }
        dst[m.npages] = 0;
        src[m.npages++] = mpfn;
      }
    }
    mmu_notifier_invalidate_range_end(mm, m.start, m.end);
    m.end = m.start + m.npages * PAGE_SIZE;
  }

  /**
   * migrate_vma_prepare(): lock (best effort: a page it cannot lock at once is dropped) and
   * isolate each collected page, dropping collect's reference; pinned pages are put back,
   * and those collect had unmapped get their pte again.
   */
  #prepare(m: Migrate): void {
    const kmm = this.#mm;
    const src = m.src;
    const npages = m.npages;
    let restore = 0;
    for (let i = 0; i < npages && m.cpages; i++) {
      const page = migrate_pfn_to_page(src[i]!);
      if (page < 0) continue;
      const sec = kmm.memmap.section(page);
      const pi = page - sec.startPfn;
      let remap = true;
      if (!(src[i]! & MIGRATE_PFN_LOCKED)) {
        if (!trylock_page_at(sec, pi)) {
          src[i] = 0;
          m.cpages--;
          kmm.put_page_at(sec, pi);
          continue;
        }
        remap = false;
        src[i] = src[i]! + MIGRATE_PFN_LOCKED;
      }
      // ZONE_DEVICE pages are not on the LRU. isolate_lru_page() takes a reference and
      // collect's is dropped: the count does not change, so neither is done here.
      if (!migrate_vma_check_page(kmm, sec, pi)) {
        if (remap) {
          src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
          m.cpages--;
          restore++;
          // (get_page() + putback_lru_page() for an LRU page: no change either.)
        } else {
          src[i] = 0;
          unlock_page_at(sec, pi);
          m.cpages--;
          // putback_lru_page() drops isolation's reference, put_page() collect's.
          kmm.put_page_at(sec, pi);
        }
      }
    }
    for (let i = 0, addr = m.start; i < npages && restore; i++, addr += PAGE_SIZE) {
      const page = migrate_pfn_to_page(src[i]!);
      if (page < 0 || src[i]! % FLAGS & MIGRATE_PFN_MIGRATE) continue;
      const sec = kmm.memmap.section(page);
      const pi = page - sec.startPfn;
      remove_migration_pte(kmm, sec, pi, m.vma, addr, page);
      src[i] = 0;
      unlock_page_at(sec, pi);
      kmm.put_page_at(sec, pi);
      restore--;
    }
  }

  /**
   * migrate_vma_unmap(): try_to_unmap() what the collect pass could not unmap (other
   * processes' ptes, through the reverse map); pages still mapped or pinned are restored.
   */
  #unmap(m: Migrate): void {
    const kmm = this.#mm;
    const src = m.src;
    const npages = m.npages;
    let restore = 0;
    for (let i = 0; i < npages; i++) {
      const page = migrate_pfn_to_page(src[i]!);
      if (page < 0 || !(src[i]! % FLAGS & MIGRATE_PFN_MIGRATE)) continue;
      let sec = kmm.memmap.section(page);
      // page_mapped(): the common case, collect unmapped the page's only pte, skips the walk.
      if (sec.mapcount[page - sec.startPfn]! >= 0) {
        try_to_unmap_migration(kmm, page);
        if (page_mapped(kmm, page)) {
          src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
          m.cpages--;
          restore++;
          continue;
        }
        sec = kmm.memmap.section(page);
      }
      if (migrate_vma_check_page(kmm, sec, page - sec.startPfn)) continue;
      src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
      m.cpages--;
      restore++;
    }
    for (let i = 0; i < npages && restore; i++) {
      const page = migrate_pfn_to_page(src[i]!);
      if (page < 0 || src[i]! % FLAGS & MIGRATE_PFN_MIGRATE) continue;
      remove_migration_ptes(kmm, page, page, m.vma);
      src[i] = 0;
      unlock_page(kmm, page);
      restore--;
      // put_page() for a device page, putback_lru_page() (a put) for the others.
      kmm.put_page(page);
    }
  }

  /**
   * migrate_vma_pages(): move each struct page to its new page; holes (and the zero page) get
   * the new page inserted; what cannot move loses MIGRATE.
   */
  #pages(m: Migrate): void {
    const kmm = this.#mm;
    const src = m.src;
    const dst = m.dst;
    const mm = m.vma.vm_mm;
    let mmu_start = -1;
    for (let i = 0, addr = m.start; i < m.npages; i++, addr += PAGE_SIZE) {
      const newpage = migrate_pfn_to_page(dst[i]!);
      const page = migrate_pfn_to_page(src[i]!);
      if (newpage < 0) {
        src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
        continue;
      }
      if (page < 0) {
        if (!(src[i]! % FLAGS & MIGRATE_PFN_MIGRATE)) continue;
        if (mmu_start < 0) {
          mmu_start = addr;
          mmu_notifier_invalidate_range_start(mm, mmu_start, m.end);
        }
        this.#insert_page(m, addr, newpage, i);
        continue;
      }
      const osec = kmm.memmap.section(page);
      const anon = isAnonOrNone(osec, page - osec.startPfn);
      const nsec = kmm.memmap.section(newpage);
      if (nsec.zone[newpage - nsec.startPfn] === ZONE_DEVICE) {
        const type = secPgmapType(kmm, nsec, newpage - nsec.startPfn);
        if (type === MEMORY_DEVICE_PRIVATE) {
          // For now only private anonymous memory goes to un-addressable device memory.
          if (!anon) {
            src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
            continue;
          }
        } else if (type !== MEMORY_DEVICE_PUBLIC) {
          // Other types of ZONE_DEVICE page are not supported.
          src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
          continue;
        }
      }
      if (!migrate_page(kmm, nsec, newpage, osec, page, anon)) src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
    }
    // (mmu_notifier_invalidate_range_only_end(): the insertions already flushed.)
    if (mmu_start >= 0) mmu_notifier_invalidate_range_end(mm, mmu_start, m.end);
  }

  /**
   * migrate_vma_insert_page(): a hole, or a pte of the zero page, gets the new page: anonymous
   * vmas only; a device-private page becomes a device-private entry, writable iff the vma is.
   */
  #insert_page(m: Migrate, addr: number, page: Page, i: number): void {
    const kmm = this.#mm;
    const vma = m.vma;
    const mm = vma.vm_mm;
    const src = m.src;
    // Only allow populating anonymous memory
    if (!vma_is_anonymous(vma) || anon_vma_prepare(vma)) {
      src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
      return;
    }
    SetPageUptodate(kmm, page);
    let entry: number;
    if (kmm.page_zonenum(page) === ZONE_DEVICE) {
      const type = pgmapType(kmm, page);
      if (type === MEMORY_DEVICE_PRIVATE) {
        entry = swp_entry_to_pte(make_device_private_entry(page, (vma.vm_flags & VM_WRITE) !== 0));
      } else if (type === MEMORY_DEVICE_PUBLIC) {
        entry = pte_mkold(pfn_pte(page, vma.vm_page_prot));
        if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
        entry = pte_mkdevmap(entry);
      } else {
        // (4.20 leaves the entry uninitialised here; no such page gets this far in kemu.)
        src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
        return;
      }
    } else {
      entry = pfn_pte(page, vma.vm_page_prot);
      if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
    }
    const cur = mm.ptep_get(addr);
    // A pte of the zero page is replaced (ptep_clear_flush_notify + set_pte_at_notify: HMM has
    // neither callback); anything else there now means someone else filled the hole.
    if (cur !== 0 && !(pte_present(cur) && pte_pfn(cur) === kmm.zeroPfn)) {
      src[i] = clear(src[i]!, MIGRATE_PFN_MIGRATE);
      return;
    }
    mm.rss[MM_ANONPAGES]!++;
    page_add_new_anon_rmap(kmm, page, vma, addr);
    kmm.get_page(page);
    mm.set_pte_at(addr, entry);
    src[i] = MIGRATE_PFN_MIGRATE;
  }

  /** migrate_vma_finalize(): restore the ptes (to the new page when it moved) and let go. */
  #finalize(m: Migrate): void {
    const kmm = this.#mm;
    const src = m.src;
    const dst = m.dst;
    for (let i = 0; i < m.npages; i++) {
      let newpage = migrate_pfn_to_page(dst[i]!);
      const page = migrate_pfn_to_page(src[i]!);
      if (page < 0) {
        if (newpage >= 0) {
          unlock_page(kmm, newpage);
          kmm.put_page(newpage);
        }
        continue;
      }
      if (!(src[i]! % FLAGS & MIGRATE_PFN_MIGRATE) || newpage < 0) {
        if (newpage >= 0) {
          unlock_page(kmm, newpage);
          kmm.put_page(newpage);
        }
        newpage = page;
      }
      const osec = kmm.memmap.section(page);
      const oi = page - osec.startPfn;
      let nsec = newpage === page ? osec : kmm.memmap.section(newpage);
      remove_migration_ptes_at(kmm, page, nsec, newpage - nsec.startPfn, m.vma);
      unlock_page_at(osec, oi);
      m.cpages--;
      // A device page's last put calls its driver: look newpage up again after that.
      const device = osec.zone[oi] === ZONE_DEVICE;
      // put_page() for a device page, putback_lru_page() (a put) for the others.
      kmm.put_page_at(osec, oi);
      if (newpage !== page) {
        if (device) nsec = kmm.memmap.section(newpage);
        const ni = newpage - nsec.startPfn;
        unlock_page_at(nsec, ni);
        kmm.put_page_at(nsec, ni);
      }
    }
  }
}

// ---- page state helpers -------------------------------------------------------------------

function pgmapType(kmm: MM, page: Page): number {
  return kmm.page_pgmap(page)?.type ?? -1;
}
/** The pgmap type of page `i` of `sec` (a ZONE_DEVICE page). */
function secPgmapType(kmm: MM, sec: MemSection, i: number): number {
  return kmm.memremap.pgmapOf(sec.pgmap[i]!)?.type ?? -1;
}

/** page_mapped() */
function page_mapped(kmm: MM, page: Page): boolean {
  const sec = kmm.memmap.section(page);
  return sec.mapcount[page - sec.startPfn]! >= 0;
}

/** !page_mapping(): an anonymous page (or one without ->mapping); no swap cache in kemu. */
function isAnonOrNone(sec: MemSection, i: number): boolean {
  if (!sec.hasMapping()) return true;
  const mapping = sec.mapping[i];
  return mapping === null || mapping instanceof AnonVma;
}

/**
 * migrate_vma_check_page(): can the page move? Device-private pages always can (they cannot
 * be pinned, and a migration-entry waiter's reference looks like a pin); device-public ones
 * hold one more reference; others only when nobody holds one beyond the ptes and ours (plus
 * the page cache's for a file page). The page is page `i` of `sec`.
 */
function migrate_vma_check_page(kmm: MM, sec: MemSection, i: number): boolean {
  let extra = 1;
  if (sec.zone[i] === ZONE_DEVICE) {
    const type = secPgmapType(kmm, sec, i);
    if (type === MEMORY_DEVICE_PRIVATE) return true;
    if (type !== MEMORY_DEVICE_PUBLIC) return false;
    extra++;
  }
  // For file-backed pages (page_has_private(): no buffer heads in kemu).
  if (!isAnonOrNone(sec, i)) extra += 1;
  return sec.refcount[i]! - extra <= sec.mapcount[i]! + 1;
}

/**
 * try_to_unmap(TTU_MIGRATION | TTU_IGNORE_MLOCK | TTU_IGNORE_ACCESS): the reverse-map walk of
 * try_to_unmap_one() until the page is unmapped. Each candidate vma gets an invalidation of
 * the page's address whether or not its pte maps the page; each pte that does becomes a
 * migration entry (read-only for a ZONE_DEVICE page, as 4.20 makes them).
 */
function try_to_unmap_migration(kmm: MM, page: Page): void {
  const device = kmm.page_zonenum(page) === ZONE_DEVICE;
  if (device && pgmapType(kmm, page) !== MEMORY_DEVICE_PRIVATE) return;
  rmap_walk(kmm, page, (vma, address) => {
    const mm = vma.vm_mm;
    const end = Math.min(vma.vm_end, address + PAGE_SIZE);
    mmu_notifier_invalidate_range_start(mm, address, end);
    const table = mm.pgd.get(pmd_index(address));
    const idx = pte_index(address);
    const pte = table === undefined ? 0 : table[idx]!;
    let mapped = false;
    let write = false;
    if (pte_present(pte)) {
      if (pte_pfn(pte) === page) {
        mapped = true;
        write = pte_write(pte);
        // Move the dirty bit to the page.
        if (pte % PAGE_SIZE & _PAGE_DIRTY) SetPageDirty(kmm, page);
      }
    } else if (is_swap_pte(pte)) {
      const entry = pte_to_swp_entry(pte);
      mapped = is_device_private_entry(entry) && swp_offset(entry) === page;
    }
    if (mapped) {
      table![idx] = swp_entry_to_pte(make_migration_entry(page, device ? false : write));
      page_remove_rmap(kmm, page);
      kmm.put_page(page);
    }
    mmu_notifier_invalidate_range_end(mm, address, end);
    return page_mapped(kmm, page); // rwc.done: page_mapcount_is_zero
  });
}

/**
 * remove_migration_ptes(old, new): every migration entry for `old` in the vmas `new`'s
 * reverse map gives maps `new`.
 */
function remove_migration_ptes(kmm: MM, old: Page, page: Page, hint: VmArea | null): void {
  const sec = kmm.memmap.section(page);
  remove_migration_ptes_at(kmm, old, sec, page - sec.startPfn, hint);
}

/** remove_migration_ptes() to page `i` of `sec`. */
function remove_migration_ptes_at(kmm: MM, old: Page, sec: MemSection, i: number, hint: VmArea | null): void {
  if (!sec.hasMapping()) return;
  const mapping = sec.mapping[i] as AnonVma | { i_mmap: Set<VmArea> } | null;
  if (mapping === null) return;
  const pgoff = sec.hasIndex() ? sec.index[i]! : 0;
  // The common case without walking a Set: the page's reverse map has one vma, `hint`.
  if (hint !== null && (mapping instanceof AnonVma ? mapping === hint.anon_vma && mapping.vmas.size === 1 : mapping.i_mmap.size === 1 && mapping.i_mmap.has(hint))) {
    const address = vma_address(pgoff, hint);
    if (address >= 0) remove_migration_pte(kmm, sec, i, hint, address, old);
    return;
  }
  for (const vma of mapping instanceof AnonVma ? mapping.vmas : mapping.i_mmap) {
    const address = vma_address(pgoff, vma);
    if (address >= 0) remove_migration_pte(kmm, sec, i, vma, address, old);
  }
}

/**
 * remove_migration_pte(): the migration entry for `old` at `addr` maps page `i` of `sec`
 * again: an old, clean pte (writable if the entry was and the vma still is), or a
 * device-private entry for device-private memory; one more reference and mapping.
 */
function remove_migration_pte(kmm: MM, sec: MemSection, i: number, vma: VmArea, addr: number, old: Page): void {
  const mm = vma.vm_mm;
  const table = mm.pgd.get(pmd_index(addr));
  if (table === undefined) return;
  const idx = pte_index(addr);
  const cur = table[idx]!;
  if (!is_swap_pte(cur)) return;
  const entry = pte_to_swp_entry(cur);
  if (!is_migration_entry(entry) || swp_offset(entry) !== old) return;
  const page = sec.startPfn + i;
  kmm.get_page_at(sec, i);
  let pte = pte_mkold(pfn_pte(page, vma.vm_page_prot));
  // Recheck the vma: permissions can change while the migration runs (maybe_mkwrite()).
  if (is_write_migration_entry(entry) && vma.vm_flags & VM_WRITE) pte = pte_mkwrite(pte);
  if (sec.zone[i] === ZONE_DEVICE) {
    const type = secPgmapType(kmm, sec, i);
    if (type === MEMORY_DEVICE_PRIVATE) pte = swp_entry_to_pte(make_device_private_entry(page, (pte % PAGE_SIZE & _PAGE_RW) !== 0));
    else if (type === MEMORY_DEVICE_PUBLIC) pte = pte_mkdevmap(pte);
  }
  table[idx] = pte;
  if (sec.hasMapping() && sec.mapping[i] instanceof AnonVma) page_add_anon_rmap_at(kmm, sec, i, vma, addr);
  else page_add_file_rmap_at(kmm, sec, i);
}

/**
 * migrate_page(mapping, newpage, page, MIGRATE_SYNC_NO_COPY): migrate_page_move_mapping()
 * (an anonymous page must hold exactly the migration's reference, plus its idle one for a
 * device page) and migrate_page_states(); the driver copied the data. kemu does not move
 * page-cache entries, so a file page fails as a busy one would (-EAGAIN).
 */
function migrate_page(kmm: MM, n: MemSection, newpage: Page, o: MemSection, page: Page, anon: boolean): boolean {
  if (!anon) return false;
  const oi = page - o.startPfn;
  let expected = 1;
  if (o.zone[oi] === ZONE_DEVICE) {
    const type = secPgmapType(kmm, o, oi);
    if (type === MEMORY_DEVICE_PRIVATE || type === MEMORY_DEVICE_PUBLIC) expected++;
  }
  if (o.refcount[oi] !== expected) return false;
  // No turning back from here
  const ni = newpage - n.startPfn;
  n.index[ni] = o.hasIndex() ? o.index[oi]! : 0;
  n.mapping[ni] = o.hasMapping() ? o.mapping[oi]! : null;
  const of = o.flags[oi]!;
  const moved = (1 << PG_swapbacked) | (1 << PG_error) | (1 << PG_referenced) | (1 << PG_uptodate) | (1 << PG_mappedtodisk) | (1 << PG_dirty);
  n.flags[ni] = n.flags[ni]! | (of & moved);
  return true;
}
