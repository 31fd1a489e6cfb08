// The fault path and pte-level work of mm/memory.c (4.19-5.0): handle_mm_fault() and its
// handlers (anonymous, copy-on-write, file and shmem, non-present entries), zapping ptes
// (munmap, truncate, exit), and copying them at fork.
//
// What is modelled: the zero page for anonymous reads; COW with reuse when the page is mapped
// once; fault-around for file read faults; device-private entries (fault through the MM's
// devicePrivateFault slot, fork and zap rules of spec mm-hmm R3.10); mmu notifiers wherever
// the kernel calls them. Not modelled: swap (no swap entry is ever created), THP, NUMA
// balancing, userfaultfd, memcg, the LRU. kemu has one CPU, so "the pte changed under us"
// re-checks always find the pte they left.

import type { AddressSpace } from "../fs/file.ts";
import { GFP_HIGHUSER_MOVABLE, __GFP_ZERO } from "./gfp.ts";
import type { MM } from "./mm.ts";
import { PAGE_SIZE, type Page } from "./memmap.ts";
import {
  is_cow_mapping, linear_page_index, MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS, pmd_index, PMD_SIZE, pte_index, PTRS_PER_PTE,
  vma_is_anonymous, vma_pages, VM_HUGETLB, VM_MIXEDMAP, VM_PFNMAP, VM_SHARED, VM_WRITE, type MmStruct, type VmArea, type VmFault, type vm_fault_t,
} from "./mm_types.ts";
import { PG_dirty, PG_swapbacked, PG_uptodate } from "./page-flags.ts";
import {
  pfn_pte, pte_devmap, pte_dirty, pte_mkclean, pte_mkdevmap, pte_mkdirty, pte_mkold, pte_mkspecial, pte_mkwrite, pte_mkyoung, pte_pfn, pte_present, pte_special,
  pte_to_swp_entry, pte_write, pte_wrprotect, swp_entry_to_pte, type pte_t,
} from "./pgtable.ts";
import {
  anon_vma_prepare, page_add_file_rmap, page_add_new_anon_rmap, page_dup_rmap, page_mapcount, page_move_anon_rmap, page_remove_rmap, PageAnon,
  page_rmapping,
} from "./rmap.ts";
import {
  device_private_entry_to_pfn, is_device_private_entry, is_hwpoison_entry, is_migration_entry, is_write_device_private_entry, is_write_migration_entry,
  make_device_private_entry_read, make_migration_entry_read, migration_entry_to_pfn, non_swap_entry,
} from "./swapops.ts";
import { HZ } from "../clock.ts";
import { EBUSY, EFAULT, EINVAL } from "../errno.ts";
import { __pfn_to_pfn_t, PFN_DEV, pfn_t_devmap, pfn_t_to_pfn, type pfn_t } from "./pfn_t.ts";
import { TAINT_BAD_PAGE } from "../taint.ts";

// vm_fault_t bits (R3.9, include/linux/mm_types.h 4.20)
export const VM_FAULT_OOM = 0x000001;
export const VM_FAULT_SIGBUS = 0x000002;
export const VM_FAULT_MAJOR = 0x000004;
export const VM_FAULT_WRITE = 0x000008;
export const VM_FAULT_HWPOISON = 0x000010;
export const VM_FAULT_HWPOISON_LARGE = 0x000020;
export const VM_FAULT_SIGSEGV = 0x000040;
export const VM_FAULT_NOPAGE = 0x000100;
export const VM_FAULT_LOCKED = 0x000200;
export const VM_FAULT_RETRY = 0x000400;
export const VM_FAULT_FALLBACK = 0x000800;
export const VM_FAULT_DONE_COW = 0x001000;
export const VM_FAULT_NEEDDSYNC = 0x002000;
export const VM_FAULT_ERROR = VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE | VM_FAULT_FALLBACK;

// fault flags (include/linux/mm.h 4.20)
export const FAULT_FLAG_WRITE = 0x01;
export const FAULT_FLAG_MKWRITE = 0x02;
export const FAULT_FLAG_ALLOW_RETRY = 0x04;
export const FAULT_FLAG_RETRY_NOWAIT = 0x08;
export const FAULT_FLAG_KILLABLE = 0x10;
export const FAULT_FLAG_TRIED = 0x20;
export const FAULT_FLAG_USER = 0x40;
export const FAULT_FLAG_REMOTE = 0x80;
export const FAULT_FLAG_INSTRUCTION = 0x100;

/** fault_around_bytes: 64 KiB (16 pages). */
export const FAULT_AROUND_BYTES = 65536;

/** vmf_error(): an errno from a ->fault handler as a vm_fault_t. */
export function vmf_error(err: number): vm_fault_t {
  return err === -12 /* -ENOMEM */ ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
}

function flagsOf(mm: MM, page: Page): number {
  const sec = mm.memmap.section(page);
  return sec.flags[page - sec.startPfn]!;
}
function setFlag(mm: MM, page: Page, bit: number): void {
  const sec = mm.memmap.section(page);
  sec.flags[page - sec.startPfn] = sec.flags[page - sec.startPfn]! | (1 << bit);
}
/** SetPageDirty() / set_page_dirty() */
export function SetPageDirty(mm: MM, page: Page): void {
  setFlag(mm, page, PG_dirty);
}
/** __SetPageUptodate() */
export function SetPageUptodate(mm: MM, page: Page): void {
  setFlag(mm, page, PG_uptodate);
}
/** __SetPageSwapBacked() */
export function __SetPageSwapBacked(mm: MM, page: Page): void {
  setFlag(mm, page, PG_swapbacked);
}

/** mm_counter_file(): shmem pages (swap backed) count as MM_SHMEMPAGES. */
export function mm_counter_file(mm: MM, page: Page): number {
  return flagsOf(mm, page) & (1 << PG_swapbacked) ? MM_SHMEMPAGES : MM_FILEPAGES;
}
/** mm_counter(): the rss counter a page mapped by a pte is charged to. */
export function mm_counter(mm: MM, page: Page): number {
  return PageAnon(mm, page) ? MM_ANONPAGES : mm_counter_file(mm, page);
}

/** maybe_mkwrite() */
function maybe_mkwrite(pte: pte_t, vma: VmArea): pte_t {
  return vma.vm_flags & VM_WRITE ? pte_mkwrite(pte) : pte;
}

// ---- mmu notifiers ---------------------------------------------------------------------

/** mmu_notifier_invalidate_range_start(): only builds a range when someone listens. */
export function mmu_notifier_invalidate_range_start(mm: MmStruct, start: number, end: number): void {
  const n = mm.mmu_notifier_mm;
  const hook = mm.k.hooks.mm.invalidate;
  if (n.list.length === 0 && !hook.isUsed()) return;
  const range = { mm, start, end, blockable: true };
  if (hook.isUsed()) hook.call(range);
  if (n.list.length !== 0) n.invalidate_range_start(range);
}
export function mmu_notifier_invalidate_range_end(mm: MmStruct, start: number, end: number): void {
  const n = mm.mmu_notifier_mm;
  if (n.list.length !== 0) n.invalidate_range_end({ mm, start, end, blockable: true });
}

// ---- vm_normal_page and bad ptes -------------------------------------------------------

/**
 * _vm_normal_page(): the struct page behind a present pte, or -1 for ptes without one the
 * caller may touch: the zero page, pfn maps, devmap pages (device public pages only when
 * `with_public_device`).
 */
export function _vm_normal_page(vma: VmArea, addr: number, pte: pte_t, with_public_device: boolean): Page {
  const pfn = pte_pfn(pte);
  const mm = vma.vm_mm.k.mm;
  if (pte_special(pte)) {
    const ops = vma.vm_ops;
    if (ops !== null && ops.find_special_page) return ops.find_special_page(vma, addr);
    if (vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP)) return -1;
    if (pfn === mm.zeroPfn) return -1;
    if (mm.memmap.pfn_valid(pfn) && mm.is_device_public_page(pfn)) return with_public_device ? pfn : -1;
    if (pte_devmap(pte)) return -1;
    print_bad_pte(vma, addr, pte, -1);
    return -1;
  }
  if (!mm.memmap.pfn_valid(pfn)) {
    print_bad_pte(vma, addr, pte, -1);
    return -1;
  }
  return pfn;
}

/** vm_normal_page() */
export function vm_normal_page(vma: VmArea, addr: number, pte: pte_t): Page {
  return _vm_normal_page(vma, addr, pte, false);
}

interface BadPteState {
  shown: number;
  unshown: number;
  resume: number;
}
const badPteStates = new WeakMap<MM, BadPteState>();

/**
 * print_bad_pte(): "BUG: Bad page map", 60 reports, then quiet for the rest of the minute.
 * kemu's pte tables are not pages, so the pmd prints as a table entry with pfn 0 (_PAGE_TABLE).
 */
export function print_bad_pte(vma: VmArea, addr: number, pte: pte_t, page: Page): void {
  const mm = vma.vm_mm.k.mm;
  const k = mm.k;
  let st = badPteStates.get(mm);
  if (!st) badPteStates.set(mm, (st = { shown: 0, unshown: 0, resume: 0 }));
  const now = k.clock.jiffies;
  if (st.shown === 60) {
    if (now < st.resume) {
      st.unshown++;
      return;
    }
    if (st.unshown) {
      k.printk(`\x011BUG: Bad page map: ${st.unshown} messages suppressed\n`);
      st.unshown = 0;
    }
    st.shown = 0;
  }
  if (st.shown++ === 0) st.resume = now + 60 * HZ;
  const mapping = vma.vm_file?.f_mapping ?? null;
  const hex8 = (v: number) => v.toString(16).padStart(8, "0");
  k.printk(`\x011BUG: Bad page map in process ${k.sched.current.comm}  pte:${hex8(pte)} pmd:${hex8(0x67)}\n`);
  if (page >= 0) mm.dump_page(page, "bad pte");
  k.printk(
    `\x011addr:${k.hashPointer(BigInt(addr))} vm_flags:${hex8(vma.vm_flags >>> 0)} anon_vma:${mm.ptrP(vma.anon_vma)} mapping:${mm.ptrP(mapping)} ` +
      `index:${linear_page_index(vma, addr).toString(16)}\n`,
  );
  const fn = (f: Function | undefined) => (f ? k.symbolName(f) : "(null)".padStart(16));
  k.printk(
    `\x011file:${vma.vm_file ? vma.vm_file.dname : "(null)".padStart(16)} fault:${fn(vma.vm_ops?.fault)} mmap:${fn(vma.vm_file?.f_op.mmap)} ` +
      `readpage:${"(null)".padStart(16)}\n`,
  );
  k.bugs.dumpStack(4);
  k.taint.add(TAINT_BAD_PAGE, "LOCKDEP_NOW_UNRELIABLE");
}

// ---- the fault path --------------------------------------------------------------------

/**
 * handle_mm_fault(): resolve a fault at `address` in `vma` (the caller found the vma and
 * checked the access against its flags). Returns VM_FAULT_* bits; 0 means "retry the access".
 */
export function handle_mm_fault(vma: VmArea, address: number, flags: number): vm_fault_t {
  const mm = vma.vm_mm;
  mm.k.mm.vmstat.pgfault++;
  // hugetlbfs is not modelled: nothing creates a VM_HUGETLB vma.
  const ret = vma.vm_flags & VM_HUGETLB ? VM_FAULT_SIGBUS : handle_pte_fault(vma, address - (address % PAGE_SIZE), flags);
  const hook = mm.k.hooks.mm.fault;
  if (hook.isUsed()) hook.call(vma, address, flags, ret);
  return ret;
}

/** handle_pte_fault(): dispatch on the pte the fault found. `address` is page aligned. */
function handle_pte_fault(vma: VmArea, address: number, flags: number): vm_fault_t {
  const mm = vma.vm_mm;
  const table = mm.pgd.get(pmd_index(address));
  const idx = pte_index(address);
  const orig = table === undefined ? 0 : table[idx]!;
  if (orig === 0) return vma_is_anonymous(vma) ? do_anonymous_page(vma, address, flags) : do_fault(vma, address, flags, orig);
  if (!pte_present(orig)) return do_swap_page(vma, address, flags, orig);
  let entry = orig;
  if (flags & FAULT_FLAG_WRITE) {
    if (!pte_write(orig)) return do_wp_page(vma, address, orig);
    entry = pte_mkdirty(entry);
  }
  entry = pte_mkyoung(entry);
  // ptep_set_access_flags(): a spurious fault (the pte already allowed the access) changes nothing.
  if (entry !== orig) table![idx] = entry;
  return 0;
}

/** do_anonymous_page(): the zero page for a read, a new zeroed page for a write. */
function do_anonymous_page(vma: VmArea, address: number, flags: number): vm_fault_t {
  // A shared mapping without ->vm_ops: a file mapping that lost its ops.
  if (vma.vm_flags & VM_SHARED) return VM_FAULT_SIGBUS;
  const mm = vma.vm_mm;
  const kmm = mm.k.mm;
  if (!(flags & FAULT_FLAG_WRITE)) {
    mm.set_pte_at(address, pte_mkspecial(pfn_pte(kmm.zeroPfn, vma.vm_page_prot)));
    return 0;
  }
  if (anon_vma_prepare(vma)) return VM_FAULT_OOM;
  // alloc_zeroed_user_highpage_movable()
  const page = kmm.alloc_pages(GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0);
  if (page < 0) return VM_FAULT_OOM;
  SetPageUptodate(kmm, page);
  let entry = pfn_pte(page, vma.vm_page_prot);
  if (vma.vm_flags & VM_WRITE) entry = pte_mkwrite(pte_mkdirty(entry));
  mm.rss[MM_ANONPAGES]!++;
  page_add_new_anon_rmap(kmm, page, vma, address);
  mm.set_pte_at(address, entry);
  return 0;
}

/** wp_page_reuse(): the write may go to the page the pte maps; make the pte writable. */
function wp_page_reuse(vma: VmArea, address: number, orig: pte_t): void {
  vma.vm_mm.set_pte_at(address, maybe_mkwrite(pte_mkdirty(pte_mkyoung(orig)), vma));
}

/** do_wp_page(): a write to a present, write-protected pte. */
function do_wp_page(vma: VmArea, address: number, orig: pte_t): vm_fault_t {
  const kmm = vma.vm_mm.k.mm;
  const page = vm_normal_page(vma, address, orig);
  const sharedWritable = (vma.vm_flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED);
  if (page < 0) {
    // VM_MIXEDMAP/VM_PFNMAP, or the zero page: never COW a shared writable mapping.
    if (sharedWritable) return wp_pfn_shared(vma, address, orig);
    return wp_page_copy(vma, address, orig, -1);
  }
  if (PageAnon(kmm, page)) {
    // reuse_swap_page(): no swap cache here, so the page is ours when it is mapped once.
    const mapcount = page_mapcount(kmm, page);
    if (mapcount <= 1) {
      if (mapcount === 1) page_move_anon_rmap(kmm, page, vma);
      wp_page_reuse(vma, address, orig);
      return VM_FAULT_WRITE;
    }
  } else if (sharedWritable) {
    return wp_page_shared(vma, address, orig, page);
  }
  kmm.get_page(page);
  return wp_page_copy(vma, address, orig, page);
}

function wp_pfn_shared(vma: VmArea, address: number, orig: pte_t): vm_fault_t {
  const mkwrite = vma.vm_ops?.pfn_mkwrite;
  if (mkwrite) {
    const vmf = newVmf(vma, address, FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE);
    vmf.orig_pte = orig;
    const ret = mkwrite(vmf);
    if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) return ret;
  }
  wp_page_reuse(vma, address, orig);
  return VM_FAULT_WRITE;
}

/** wp_page_shared(): a shared file page becomes writable (->page_mkwrite first, if any). */
function wp_page_shared(vma: VmArea, address: number, orig: pte_t, page: Page): vm_fault_t {
  const kmm = vma.vm_mm.k.mm;
  kmm.get_page(page);
  if (vma.vm_ops?.page_mkwrite) {
    const vmf = newVmf(vma, address, FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE);
    vmf.orig_pte = orig;
    vmf.page = page;
    const tmp = vma.vm_ops.page_mkwrite(vmf);
    if (tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      kmm.put_page(page);
      return tmp;
    }
  }
  wp_page_reuse(vma, address, orig);
  SetPageDirty(kmm, page);
  kmm.put_page(page);
  return VM_FAULT_WRITE;
}

/**
 * wp_page_copy(): copy-on-write. A new page (zeroed when the pte mapped the zero page) replaces
 * `old` in this pte only, inside an mmu notifier invalidation of the page. `old` (if >= 0)
 * carries an extra reference the caller took.
 */
function wp_page_copy(vma: VmArea, address: number, orig: pte_t, old: Page): vm_fault_t {
  const mm = vma.vm_mm;
  const kmm = mm.k.mm;
  let page: Page;
  if (anon_vma_prepare(vma)) page = -1;
  else if (pte_pfn(orig) === kmm.zeroPfn) page = kmm.alloc_pages(GFP_HIGHUSER_MOVABLE | __GFP_ZERO, 0);
  else {
    page = kmm.alloc_pages(GFP_HIGHUSER_MOVABLE, 0);
    // cow_user_page(): from the old page, or (a pfn map without a struct page) from the pfn.
    if (page >= 0) kmm.physmem.copyPage(page, old >= 0 ? old : pte_pfn(orig));
  }
  if (page < 0) {
    if (old >= 0) kmm.put_page(old);
    return VM_FAULT_OOM;
  }
  SetPageUptodate(kmm, page);
  const end = address + PAGE_SIZE;
  mmu_notifier_invalidate_range_start(mm, address, end);
  if (old >= 0) {
    if (!PageAnon(kmm, old)) {
      mm.rss[mm_counter_file(kmm, old)]!--;
      mm.rss[MM_ANONPAGES]!++;
    }
  } else {
    mm.rss[MM_ANONPAGES]!++;
  }
  const entry = maybe_mkwrite(pte_mkdirty(pfn_pte(page, vma.vm_page_prot)), vma);
  // ptep_clear_flush_notify(), then the new page goes in.
  mm.pte_clear(address);
  page_add_new_anon_rmap(kmm, page, vma, address);
  mm.set_pte_at(address, entry);
  if (old >= 0) {
    // Only after the pte points at the new page may the old one lose its mapcount.
    page_remove_rmap(kmm, old);
    kmm.put_page(old); // the reference the old pte held
  }
  mmu_notifier_invalidate_range_end(mm, address, end);
  if (old >= 0) kmm.put_page(old); // the caller's reference
  return VM_FAULT_WRITE;
}

function newVmf(vma: VmArea, address: number, flags: number): VmFault {
  return { vma, flags, pgoff: linear_page_index(vma, address), address, orig_pte: 0, cow_page: -1, page: -1 };
}

/** do_fault(): a missing pte in a mapping with ->vm_ops (files, shmem, devices). */
function do_fault(vma: VmArea, address: number, flags: number, orig: pte_t): vm_fault_t {
  if (!vma.vm_ops!.fault) return VM_FAULT_SIGBUS;
  const vmf = newVmf(vma, address, flags);
  vmf.orig_pte = orig;
  if (!(flags & FAULT_FLAG_WRITE)) return do_read_fault(vmf);
  if (!(vma.vm_flags & VM_SHARED)) return do_cow_fault(vmf);
  return do_shared_fault(vmf);
}

/** __do_fault(): ask ->fault for the page. */
function __do_fault(vmf: VmFault): vm_fault_t {
  return vmf.vma.vm_ops!.fault!(vmf);
}

/**
 * alloc_set_pte(): map `page` at vmf.address unless something is there already. A private
 * write maps a new anonymous page (the COW copy), everything else a file page.
 */
export function alloc_set_pte(vmf: VmFault, page: Page): vm_fault_t {
  const vma = vmf.vma;
  const mm = vma.vm_mm;
  const kmm = mm.k.mm;
  const write = (vmf.flags & FAULT_FLAG_WRITE) !== 0;
  if (mm.ptep_get(vmf.address) !== 0) return VM_FAULT_NOPAGE;
  let entry = pfn_pte(page, vma.vm_page_prot);
  if (write) entry = maybe_mkwrite(pte_mkdirty(entry), vma);
  if (write && !(vma.vm_flags & VM_SHARED)) {
    mm.rss[MM_ANONPAGES]!++;
    page_add_new_anon_rmap(kmm, page, vma, vmf.address);
  } else {
    mm.rss[mm_counter_file(kmm, page)]!++;
    page_add_file_rmap(kmm, page);
  }
  mm.set_pte_at(vmf.address, entry);
  return 0;
}

// ---- drivers inserting pages and pfns (vm_insert_page, vmf_insert_pfn/mixed) ------------

/**
 * insert_page(): map a driver's page at `addr` as a file page (it gains a reference, a mapcount
 * and an rss count). -EINVAL for an anonymous page, -EBUSY when the pte is not empty.
 */
function insert_page(vma: VmArea, addr: number, page: Page, prot: number): number {
  const mm = vma.vm_mm;
  const kmm = mm.k.mm;
  if (PageAnon(kmm, page)) return -EINVAL;
  if (mm.ptep_get(addr) !== 0) return -EBUSY;
  kmm.get_page(page);
  mm.rss[mm_counter_file(kmm, page)]!++;
  page_add_file_rmap(kmm, page);
  mm.set_pte_at(addr, pfn_pte(page, prot));
  return 0;
}

/**
 * vm_insert_page(): insert a driver's page into a user vma (from ->mmap or ->fault). The vma
 * becomes VM_MIXEDMAP. -EFAULT outside the vma, -EINVAL for a page nobody holds.
 */
export function vm_insert_page(vma: VmArea, addr: number, page: Page): number {
  if (addr < vma.vm_start || addr >= vma.vm_end) return -EFAULT;
  if (!vma.vm_mm.k.mm.page_ref_count(page)) return -EINVAL;
  if (!(vma.vm_flags & VM_MIXEDMAP)) {
    // BUG_ON(vma->vm_flags & VM_PFNMAP)
    if (vma.vm_flags & VM_PFNMAP) vma.vm_mm.k.bugs.bug({ file: "mm/memory.c", func: "vm_insert_page" });
    vma.vm_flags = (vma.vm_flags | VM_MIXEDMAP) >>> 0;
  }
  return insert_page(vma, addr - (addr % PAGE_SIZE), page, vma.vm_page_prot);
}

/**
 * insert_pfn(): a pte with no struct page reference behind it: pte_devmap for device memory
 * with a memmap (pfn_t_devmap), pte_special otherwise. A pte already there is left alone.
 */
function insert_pfn(vma: VmArea, addr: number, pfn: pfn_t, prot: number): vm_fault_t {
  const mm = vma.vm_mm;
  addr -= addr % PAGE_SIZE;
  if (mm.ptep_get(addr) !== 0) return VM_FAULT_NOPAGE;
  const pte = pfn_pte(pfn_t_to_pfn(pfn), prot);
  mm.set_pte_at(addr, pfn_t_devmap(pfn) ? pte_mkdevmap(pte) : pte_mkspecial(pte));
  return VM_FAULT_NOPAGE;
}

/** vmf_insert_pfn(): map `pfn` (PFN_DEV, no struct page) in a VM_PFNMAP or VM_MIXEDMAP vma. */
export function vmf_insert_pfn(vma: VmArea, addr: number, pfn: number): vm_fault_t {
  const kmm = vma.vm_mm.k.mm;
  const flags = vma.vm_flags;
  // The BUG_ON()s of vmf_insert_pfn_prot().
  const bug =
    !(flags & (VM_PFNMAP | VM_MIXEDMAP)) || (flags & (VM_PFNMAP | VM_MIXEDMAP)) === (VM_PFNMAP | VM_MIXEDMAP) ||
    (flags & VM_PFNMAP && is_cow_mapping(flags)) || (flags & VM_MIXEDMAP && kmm.memmap.pfn_valid(pfn));
  if (bug) kmm.k.bugs.bug({ file: "mm/memory.c", func: "vmf_insert_pfn_prot" });
  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;
  return insert_pfn(vma, addr, __pfn_to_pfn_t(pfn, PFN_DEV), vma.vm_page_prot);
}

/**
 * vmf_insert_mixed(): map a pfn_t in a VM_MIXEDMAP vma. x86 has pte_special, so every pfn
 * (with a struct page or not) goes in through insert_pfn(), without a page reference.
 */
export function vmf_insert_mixed(vma: VmArea, addr: number, pfn: pfn_t): vm_fault_t {
  if (!(vma.vm_flags & VM_MIXEDMAP)) vma.vm_mm.k.bugs.bug({ file: "mm/memory.c", func: "__vm_insert_mixed" });
  if (addr < vma.vm_start || addr >= vma.vm_end) return VM_FAULT_SIGBUS;
  return insert_pfn(vma, addr, pfn, vma.vm_page_prot);
}

/** finish_fault(): map the page __do_fault() found (or its COW copy). */
function finish_fault(vmf: VmFault): vm_fault_t {
  const page = vmf.flags & FAULT_FLAG_WRITE && !(vmf.vma.vm_flags & VM_SHARED) ? vmf.cow_page : vmf.page;
  return alloc_set_pte(vmf, page);
}

/**
 * do_fault_around(): before a read fault goes to ->fault, map the neighbouring pages that are
 * already in the page cache: up to 16 pages, aligned, within the vma and the pte table.
 */
function do_fault_around(vmf: VmFault): vm_fault_t {
  const vma = vmf.vma;
  const address = vmf.address;
  const nr_pages = FAULT_AROUND_BYTES / PAGE_SIZE;
  const mask = nr_pages * PAGE_SIZE;
  const start = Math.max(address - (address % mask), vma.vm_start);
  const off = ((address - start) / PAGE_SIZE) & (PTRS_PER_PTE - 1);
  const start_pgoff = vmf.pgoff - off;
  let end_pgoff = start_pgoff - pte_index(start) + PTRS_PER_PTE - 1;
  end_pgoff = Math.min(end_pgoff, vma_pages(vma) + vma.vm_pgoff - 1, start_pgoff + nr_pages - 1);
  vmf.address = start;
  vma.vm_ops!.map_pages!(vmf, start_pgoff, end_pgoff);
  vmf.address = address;
  return vma.vm_mm.ptep_get(address) !== 0 ? VM_FAULT_NOPAGE : 0;
}

function do_read_fault(vmf: VmFault): vm_fault_t {
  const ops = vmf.vma.vm_ops!;
  if (ops.map_pages && FAULT_AROUND_BYTES / PAGE_SIZE > 1) {
    const ret = do_fault_around(vmf);
    if (ret) return ret;
  }
  let ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  ret |= finish_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) vmf.vma.vm_mm.k.mm.put_page(vmf.page);
  return ret;
}

/** do_cow_fault(): a write to a private file mapping: the page is copied before it is mapped. */
function do_cow_fault(vmf: VmFault): vm_fault_t {
  const vma = vmf.vma;
  const kmm = vma.vm_mm.k.mm;
  if (anon_vma_prepare(vma)) return VM_FAULT_OOM;
  const cow = kmm.alloc_pages(GFP_HIGHUSER_MOVABLE, 0);
  if (cow < 0) return VM_FAULT_OOM;
  vmf.cow_page = cow;
  let ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    kmm.put_page(cow);
    return ret;
  }
  if (ret & VM_FAULT_DONE_COW) return ret;
  kmm.physmem.copyPage(cow, vmf.page);
  SetPageUptodate(kmm, cow);
  ret |= finish_fault(vmf);
  kmm.put_page(vmf.page);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) kmm.put_page(cow);
  return ret;
}

/** do_shared_fault(): a write to a shared file mapping maps the cache page writable, dirty. */
function do_shared_fault(vmf: VmFault): vm_fault_t {
  const vma = vmf.vma;
  const kmm = vma.vm_mm.k.mm;
  let ret = __do_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) return ret;
  const mkwrite = vma.vm_ops!.page_mkwrite;
  if (mkwrite) {
    const flags = vmf.flags;
    vmf.flags = FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE;
    const tmp = mkwrite(vmf);
    vmf.flags = flags;
    if (tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE)) {
      kmm.put_page(vmf.page);
      return tmp;
    }
  }
  ret |= finish_fault(vmf);
  if (ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY)) {
    kmm.put_page(vmf.page);
    return ret;
  }
  // fault_dirty_shared_page()
  SetPageDirty(kmm, vmf.page);
  return ret;
}

/**
 * do_swap_page(): a non-present pte that is not none. Swap is not modelled, so only non-swap
 * entries can be here: migration (wait for it to finish), device-private (the pgmap's fault
 * handler through the MM's devicePrivateFault slot, R3.8), hwpoison; anything else is a bad pte.
 */
function do_swap_page(vma: VmArea, address: number, flags: number, orig: pte_t): vm_fault_t {
  const entry = pte_to_swp_entry(orig);
  if (non_swap_entry(entry)) {
    if (is_migration_entry(entry)) {
      migration_entry_wait(vma.vm_mm, address, orig);
      return 0;
    }
    if (is_device_private_entry(entry)) return vma.vm_mm.k.mm.devicePrivateFault(vma, address, entry, flags);
    if (is_hwpoison_entry(entry)) return VM_FAULT_HWPOISON;
  }
  print_bad_pte(vma, address, orig, -1);
  return VM_FAULT_SIGBUS;
}

/**
 * migration_entry_wait(): sleep until the migration that put the entry there is done. kemu's
 * migrations run to completion synchronously, so one can only be seen from inside itself (a
 * driver callback touching the memory being migrated): deferred work gets its chance, and if
 * the entry stays the wait is reported as a hung task and unwound.
 */
export function migration_entry_wait(mm: MmStruct, address: number, orig: pte_t): void {
  mm.k.sched.waitUntil(() => mm.ptep_get(address) !== orig, "migration_entry_wait");
}

// ---- zap: unmapping ptes ---------------------------------------------------------------

/** struct mmu_gather: pages whose last pte went away are freed after the TLB flush. */
export class MmuGather {
  readonly mm: MmStruct;
  readonly pages: Page[] = [];
  constructor(mm: MmStruct) {
    this.mm = mm;
  }
}

/** tlb_finish_mmu(): flush, then drop the references the zapped ptes held. */
export function tlb_finish_mmu(tlb: MmuGather): void {
  const kmm = tlb.mm.k.mm;
  const pages = tlb.pages.splice(0);
  for (const page of pages) kmm.put_page(page);
}

/** struct zap_details: truncation zaps one file's pages only (or COWed copies too). */
export interface ZapDetails {
  /** Only pages of this mapping (null: every page, "even_cows"). */
  readonly check_mapping: AddressSpace | null;
}

/** zap_pte_range() over [start, end) of one pte table. */
function zap_pte_range(tlb: MmuGather, vma: VmArea, table: Float64Array, start: number, end: number, details: ZapDetails | null): void {
  const mm = vma.vm_mm;
  const kmm = mm.k.mm;
  const rss = mm.rss;
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const i = pte_index(addr);
    const ptent = table[i]!;
    if (ptent === 0) continue;
    if (pte_present(ptent)) {
      const page = _vm_normal_page(vma, addr, ptent, true);
      if (details !== null && page >= 0 && details.check_mapping !== null && details.check_mapping !== page_rmapping(kmm, page)) continue;
      table[i] = 0;
      if (page < 0) continue;
      if (!PageAnon(kmm, page) && pte_dirty(ptent)) SetPageDirty(kmm, page);
      rss[mm_counter(kmm, page)]!--;
      page_remove_rmap(kmm, page);
      if (page_mapcount(kmm, page) < 0) print_bad_pte(vma, addr, ptent, page);
      tlb.pages.push(page);
      continue;
    }
    const entry = pte_to_swp_entry(ptent);
    if (non_swap_entry(entry) && is_device_private_entry(entry)) {
      // R3.10: this is how device pages go back to refcount 1 and to their driver.
      const page = device_private_entry_to_pfn(entry);
      if (details !== null && details.check_mapping !== null && details.check_mapping !== page_rmapping(kmm, page)) continue;
      table[i] = 0;
      rss[mm_counter(kmm, page)]!--;
      page_remove_rmap(kmm, page);
      kmm.put_page(page);
      continue;
    }
    // Truncation leaves swap and migration entries alone.
    if (details !== null) continue;
    if (!non_swap_entry(entry)) {
      rss[MM_SWAPENTS]!--;
      // free_swap_and_cache() finds no swap device: swap is not modelled.
      print_bad_pte(vma, addr, ptent, -1);
    } else if (is_migration_entry(entry)) {
      rss[mm_counter(kmm, migration_entry_to_pfn(entry))]!--;
    }
    table[i] = 0;
  }
}

/** unmap_page_range(): zap every pte of [start, end) in `vma`. */
export function unmap_page_range(tlb: MmuGather, vma: VmArea, start: number, end: number, details: ZapDetails | null): void {
  const mm = vma.vm_mm;
  for (const pi of mm.tablesIn(pmd_index(start), pmd_index(end - 1) + 1)) {
    const lo = Math.max(start, pi * PMD_SIZE);
    const hi = Math.min(end, (pi + 1) * PMD_SIZE);
    zap_pte_range(tlb, vma, mm.pgd.get(pi)!, lo, hi, details);
  }
}

/** unmap_single_vma(): the part of [start_addr, end_addr) that lies in `vma`. */
function unmap_single_vma(tlb: MmuGather, vma: VmArea, start_addr: number, end_addr: number, details: ZapDetails | null): void {
  const start = Math.max(vma.vm_start, start_addr);
  if (start >= vma.vm_end) return;
  const end = Math.min(vma.vm_end, end_addr);
  if (end <= vma.vm_start) return;
  if (start !== end) unmap_page_range(tlb, vma, start, end, details);
}

/**
 * unmap_vmas(): zap [start_addr, end_addr) in each of `vmas` (ascending, all of one mm) inside
 * one mmu notifier invalidation of exactly that range.
 */
export function unmap_vmas(tlb: MmuGather, vmas: readonly VmArea[], start_addr: number, end_addr: number): void {
  const mm = tlb.mm;
  mmu_notifier_invalidate_range_start(mm, start_addr, end_addr);
  for (const vma of vmas) {
    if (vma.vm_start >= end_addr) break;
    unmap_single_vma(tlb, vma, start_addr, end_addr, null);
  }
  mmu_notifier_invalidate_range_end(mm, start_addr, end_addr);
}

/** zap_page_range() (MADV_DONTNEED): zap [start, start+size) in `vma` and the vmas after it. */
export function zap_page_range(vma: VmArea, start: number, size: number): void {
  const mm = vma.vm_mm;
  const end = start + size;
  const tlb = new MmuGather(mm);
  update_hiwater_rss(mm);
  mmu_notifier_invalidate_range_start(mm, start, end);
  const i = mm.mmap.indexOf(vma);
  for (let j = i; j >= 0 && j < mm.mmap.length && mm.mmap[j]!.vm_start < end; j++) unmap_single_vma(tlb, mm.mmap[j]!, start, end, null);
  mmu_notifier_invalidate_range_end(mm, start, end);
  tlb_finish_mmu(tlb);
}

/** zap_page_range_single(): zap [address, address+size) of one vma. */
export function zap_page_range_single(vma: VmArea, address: number, size: number, details: ZapDetails | null): void {
  const mm = vma.vm_mm;
  const end = address + size;
  const tlb = new MmuGather(mm);
  update_hiwater_rss(mm);
  mmu_notifier_invalidate_range_start(mm, address, end);
  unmap_single_vma(tlb, vma, address, end, details);
  mmu_notifier_invalidate_range_end(mm, address, end);
  tlb_finish_mmu(tlb);
}

/**
 * unmap_mapping_pages(): zap the ptes of file pages [start, start+nr) in every vma that maps
 * them; nr 0 means to the end of the file. even_cows also zaps private COW copies (truncate).
 */
export function unmap_mapping_pages(mapping: AddressSpace, start: number, nr: number, even_cows: boolean): void {
  const details: ZapDetails = { check_mapping: even_cows ? null : mapping };
  const first = start;
  const last = nr === 0 ? Infinity : start + nr - 1;
  for (const vma of [...mapping.i_mmap]) {
    const vba = vma.vm_pgoff;
    const vea = vba + vma_pages(vma) - 1;
    if (vea < first || vba > last) continue;
    const zba = Math.max(first, vba);
    const zea = Math.min(last, vea);
    const s = (zba - vba) * PAGE_SIZE + vma.vm_start;
    const e = (zea - vba + 1) * PAGE_SIZE + vma.vm_start;
    zap_page_range_single(vma, s, e - s, details);
  }
}

/** unmap_mapping_range(): unmap_mapping_pages() in bytes; holelen 0 means to the end. */
export function unmap_mapping_range(mapping: AddressSpace, holebegin: number, holelen: number, even_cows: boolean): void {
  const hba = Math.floor(holebegin / PAGE_SIZE);
  const hlen = Math.ceil(holelen / PAGE_SIZE);
  unmap_mapping_pages(mapping, hba, hlen, even_cows);
}

/** update_hiwater_rss() */
export function update_hiwater_rss(mm: MmStruct): void {
  const rss = mm.get_mm_rss();
  if (mm.hiwater_rss < rss) mm.hiwater_rss = rss;
}

/**
 * free_pgd_range(): free the pte tables of [addr, end) that no other vma can use: those wholly
 * above `floor` (the previous vma's end) and below `ceiling` (the next vma's start; 0 = none).
 */
export function free_pgd_range(mm: MmStruct, addr: number, end: number, floor: number, ceiling: number): void {
  addr = Math.floor(addr / PMD_SIZE) * PMD_SIZE;
  if (addr < floor) addr += PMD_SIZE;
  if (ceiling) {
    ceiling = Math.floor(ceiling / PMD_SIZE) * PMD_SIZE;
    if (!ceiling) return;
    if (end - 1 > ceiling - 1) end -= PMD_SIZE;
  }
  if (addr > end - 1) return;
  for (const pi of mm.tablesIn(pmd_index(addr), pmd_index(end - 1) + 1)) mm.pgd.delete(pi);
}

// ---- fork ------------------------------------------------------------------------------

/** copy_one_pte(): one pte of a fork; COW write-protects both sides. Returns the child's pte. */
function copy_one_pte(dst_mm: MmStruct, src_table: Float64Array, i: number, vma: VmArea, addr: number): pte_t {
  const kmm = dst_mm.k.mm;
  const vm_flags = vma.vm_flags;
  let pte = src_table[i]!;
  if (!pte_present(pte)) {
    const entry = pte_to_swp_entry(pte);
    if (!non_swap_entry(entry)) {
      dst_mm.rss[MM_SWAPENTS]!++;
    } else if (is_migration_entry(entry)) {
      const page = migration_entry_to_pfn(entry);
      dst_mm.rss[mm_counter(kmm, page)]!++;
      if (is_write_migration_entry(entry) && is_cow_mapping(vm_flags)) {
        pte = swp_entry_to_pte(make_migration_entry_read(entry));
        src_table[i] = pte;
      }
    } else if (is_device_private_entry(entry)) {
      // R3.10: the device page gains a reference, an rss count and a mapping; a writable
      // entry of a COW mapping becomes read-only on both sides.
      const page = device_private_entry_to_pfn(entry);
      kmm.get_page(page);
      dst_mm.rss[mm_counter(kmm, page)]!++;
      page_dup_rmap(kmm, page);
      if (is_write_device_private_entry(entry) && is_cow_mapping(vm_flags)) {
        pte = swp_entry_to_pte(make_device_private_entry_read(entry));
        src_table[i] = pte;
      }
    }
    return pte;
  }
  if (is_cow_mapping(vm_flags) && pte_write(pte)) {
    src_table[i] = pte_wrprotect(pte);
    pte = pte_wrprotect(pte);
  }
  if (vm_flags & VM_SHARED) pte = pte_mkclean(pte);
  pte = pte_mkold(pte);
  const page = vm_normal_page(vma, addr, pte);
  if (page >= 0) {
    kmm.get_page(page);
    page_dup_rmap(kmm, page);
    dst_mm.rss[mm_counter(kmm, page)]!++;
  } else if (pte_devmap(pte)) {
    const dpage = pte_pfn(pte);
    if (kmm.is_device_public_page(dpage)) {
      kmm.get_page(dpage);
      page_dup_rmap(kmm, dpage);
      dst_mm.rss[mm_counter(kmm, dpage)]!++;
    }
  }
  return pte;
}

/**
 * copy_page_range(): fork copies the ptes of `vma` into `dst_mm`. Mappings a fault can fill
 * again (no anon_vma, not a pfn map) are not copied. For a COW mapping the parent's ptes are
 * write-protected inside an mmu notifier invalidation of the whole vma (4.20 notifies here).
 */
export function copy_page_range(dst_mm: MmStruct, src_mm: MmStruct, vma: VmArea): number {
  if (!(vma.vm_flags & (VM_HUGETLB | VM_PFNMAP | VM_MIXEDMAP)) && !vma.anon_vma) return 0;
  const is_cow = is_cow_mapping(vma.vm_flags);
  const start = vma.vm_start;
  const end = vma.vm_end;
  if (is_cow) mmu_notifier_invalidate_range_start(src_mm, start, end);
  for (const pi of src_mm.tablesIn(pmd_index(start), pmd_index(end - 1) + 1)) {
    const src = src_mm.pgd.get(pi)!;
    const lo = Math.max(start, pi * PMD_SIZE);
    const hi = Math.min(end, (pi + 1) * PMD_SIZE);
    const dst = dst_mm.pte_alloc(lo);
    for (let addr = lo; addr < hi; addr += PAGE_SIZE) {
      const i = pte_index(addr);
      if (src[i] === 0) continue;
      dst[i] = copy_one_pte(dst_mm, src, i, vma, addr);
    }
  }
  if (is_cow) mmu_notifier_invalidate_range_end(src_mm, start, end);
  return 0;
}
