// User address spaces (include/linux/mm_types.h, mm.h of 4.19-5.0): struct mm_struct with its
// page tables, VMA list, rss counters and reference counts, and struct vm_area_struct.
//
// Page tables: kemu walks no pgd/p4d/pud levels, but it keeps the last level as the kernel does:
// one 512-entry pte table (a Float64Array, 4 KiB like the real one) per 2 MiB of address space
// that has been touched, in a map keyed by pmd index. A table comes into existence when a pte is
// first set under it (pte_alloc) and goes away only in free_pgtables(), so "is this pmd
// populated" answers as it would in the kernel (mprotect's notifier range depends on it).

import type { File } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { PAGE_SIZE, type Page } from "./memmap.ts";
import { MmuNotifierMm } from "./mmu_notifier.ts";
import { _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, _PAGE_USER, type pte_t } from "./pgtable.ts";
import type { AnonVma } from "./rmap.ts";

/** vm_fault_t: VM_FAULT_* bits (memory.ts). */
export type vm_fault_t = number;

// vm_flags (include/linux/mm.h, 4.20). VM_MERGEABLE (bit 31) is left out: kemu has no KSM.
export const VM_NONE = 0x00000000;
export const VM_READ = 0x00000001;
export const VM_WRITE = 0x00000002;
export const VM_EXEC = 0x00000004;
export const VM_SHARED = 0x00000008;
export const VM_MAYREAD = 0x00000010;
export const VM_MAYWRITE = 0x00000020;
export const VM_MAYEXEC = 0x00000040;
export const VM_MAYSHARE = 0x00000080;
export const VM_GROWSDOWN = 0x00000100;
export const VM_UFFD_MISSING = 0x00000200;
export const VM_PFNMAP = 0x00000400;
export const VM_DENYWRITE = 0x00000800;
export const VM_UFFD_WP = 0x00001000;
export const VM_LOCKED = 0x00002000;
export const VM_IO = 0x00004000;
export const VM_SEQ_READ = 0x00008000;
export const VM_RAND_READ = 0x00010000;
export const VM_DONTCOPY = 0x00020000;
export const VM_DONTEXPAND = 0x00040000;
export const VM_LOCKONFAULT = 0x00080000;
export const VM_ACCOUNT = 0x00100000;
export const VM_NORESERVE = 0x00200000;
export const VM_HUGETLB = 0x00400000;
export const VM_SYNC = 0x00800000;
/** VM_ARCH_1: VM_PAT on x86 */
export const VM_ARCH_1 = 0x01000000;
export const VM_WIPEONFORK = 0x02000000;
export const VM_DONTDUMP = 0x04000000;
/** CONFIG_MEM_SOFT_DIRTY */
export const VM_SOFTDIRTY = 0x08000000;
export const VM_MIXEDMAP = 0x10000000;
export const VM_HUGEPAGE = 0x20000000;
export const VM_NOHUGEPAGE = 0x40000000;
/** x86: the stack grows down */
export const VM_STACK = VM_GROWSDOWN;
/** Mappings the VMA code must not merge or expand. */
export const VM_SPECIAL = VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP;

// mm->rss_stat members
export const MM_FILEPAGES = 0;
export const MM_ANONPAGES = 1;
export const MM_SWAPENTS = 2;
export const MM_SHMEMPAGES = 3;
export const NR_MM_COUNTERS = 4;

// x86-64, 4-level paging
export const PMD_SHIFT = 21;
export const PMD_SIZE = 2 ** PMD_SHIFT;
export const PUD_SIZE = 2 ** 30;
export const PTRS_PER_PTE = 512;
/** TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE: the top of user space. */
export const TASK_SIZE = 2 ** 47 - PAGE_SIZE;
export const DEFAULT_MAP_WINDOW = TASK_SIZE;
/** mmap_base() without randomisation (randomize_va_space=0, or setarch -R): TASK_SIZE minus the
 *  minimum stack gap of 128 MiB, the familiar 0x7ffff7fff000. */
export const MMAP_BASE = TASK_SIZE - 128 * 2 ** 20;
/** -1UL, the end exit_mmap() passes to unmap everything. */
export const ULONG_MAX = 2 ** 64 - 1;

/** protection_map[] / vm_get_page_prot() on x86: private mappings are never writable in the pte
 *  (a write faults and copies), shared writable ones are; no access at all is PAGE_NONE, which
 *  is a present-to-the-kernel pte the user cannot touch (kemu: present without _PAGE_USER). */
export function vm_get_page_prot(vm_flags: number): number {
  if (!(vm_flags & (VM_READ | VM_WRITE | VM_EXEC))) return _PAGE_PRESENT | _PAGE_ACCESSED;
  const rw = (vm_flags & (VM_SHARED | VM_WRITE)) === (VM_SHARED | VM_WRITE) ? _PAGE_RW : 0;
  return _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | rw;
}

/** pte_protnone(): mapped, but PROT_NONE (the hardware sees it not present). */
export function pte_protnone(pte: pte_t): boolean {
  return (pte % PAGE_SIZE & (_PAGE_PRESENT | _PAGE_USER)) === _PAGE_PRESENT;
}

/** struct vm_fault: one fault as the handlers see it. */
export interface VmFault {
  readonly vma: VmArea;
  flags: number;
  /** Logical page offset of the fault in the file (linear_page_index). */
  readonly pgoff: number;
  /** The faulting address, page aligned. */
  address: number;
  orig_pte: pte_t;
  /** The page a private write copies into, or -1. */
  cow_page: Page;
  /** The page ->fault found (with a reference taken for the caller), or -1. */
  page: Page;
}

/** struct vm_operations_struct: what a driver or filesystem provides for its mappings. */
export interface VmOperationsStruct {
  open?(vma: VmArea): void;
  close?(vma: VmArea): void;
  /** May the vma be split at `addr`? 0 or a negative errno (device-dax refuses unaligned). */
  split?(vma: VmArea, addr: number): number;
  /** Find the page for vmf->pgoff; return VM_FAULT_* and set vmf.page (referenced). */
  fault?(vmf: VmFault): vm_fault_t;
  /** Fault-around: map the cached pages of [start_pgoff, end_pgoff] that are ready. */
  map_pages?(vmf: VmFault, start_pgoff: number, end_pgoff: number): void;
  /** A shared page is about to become writable. */
  page_mkwrite?(vmf: VmFault): vm_fault_t;
  pfn_mkwrite?(vmf: VmFault): vm_fault_t;
  /** The name /proc/PID/maps shows for a mapping without a file. */
  name?(vma: VmArea): string | null;
  /** The page behind a special pte, or -1. */
  find_special_page?(vma: VmArea, addr: number): Page;
}

/** struct vm_area_struct */
export class VmArea {
  readonly vm_mm: MmStruct;
  vm_start: number;
  /** First byte after the end. */
  vm_end: number;
  vm_flags: number;
  /** The pte protection bits of new ptes (vma_set_page_prot()). */
  vm_page_prot = 0;
  /** Offset in the file (PAGE_SIZE units); for private anonymous mappings vm_start >> PAGE_SHIFT. */
  vm_pgoff: number;
  vm_file: File | null = null;
  /** The anon_vma new anonymous pages of this vma go to (page->mapping). */
  anon_vma: AnonVma | null = null;
  /** anon_vma_chain: every anon_vma this vma is linked to (its own and its ancestors'). */
  anon_vma_chain: AnonVma[] = [];
  vm_ops: VmOperationsStruct | null = null;
  vm_private_data: unknown = null;

  constructor(mm: MmStruct, start: number, end: number, flags: number, pgoff: number) {
    this.vm_mm = mm;
    this.vm_start = start;
    this.vm_end = end;
    this.vm_flags = flags;
    this.vm_pgoff = pgoff;
  }
}

/** vma_is_anonymous(): no vm_ops means anonymous memory (do_anonymous_page). */
export function vma_is_anonymous(vma: VmArea): boolean {
  return vma.vm_ops === null;
}
export function vma_pages(vma: VmArea): number {
  return (vma.vm_end - vma.vm_start) / PAGE_SIZE;
}
/** linear_page_index(): the page offset of `address` in the vma's file (or anon_vma). */
export function linear_page_index(vma: VmArea, address: number): number {
  return Math.floor((address - vma.vm_start) / PAGE_SIZE) + vma.vm_pgoff;
}
/** is_cow_mapping(): private and possibly writable. */
export function is_cow_mapping(flags: number): boolean {
  return (flags & (VM_SHARED | VM_MAYWRITE)) === VM_MAYWRITE;
}
export function vma_is_accessible(vma: VmArea): boolean {
  return (vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)) !== 0;
}

/** Node page counters of /proc/meminfo that mappings change (NR_ANON_MAPPED, NR_FILE_MAPPED, ...). */
export class VmStat {
  /** NR_ANON_MAPPED (AnonPages) */
  nr_anon_mapped = 0;
  /** NR_FILE_MAPPED (Mapped) */
  nr_file_mapped = 0;
  /** NR_FILE_PAGES (Cached + SwapCached + Buffers) */
  nr_file_pages = 0;
  /** NR_SHMEM (Shmem) */
  nr_shmem = 0;
  /** PGFAULT of /proc/vmstat */
  pgfault = 0;
}

/** pmd_index of an address: the key of its pte table. */
export function pmd_index(addr: number): number {
  return Math.floor(addr / PMD_SIZE);
}
/** pmd_addr_end(): where the pte table of `addr` ends, or `end` if that comes first. */
export function pmd_addr_end(addr: number, end: number): number {
  return Math.min(end, (pmd_index(addr) + 1) * PMD_SIZE);
}
/** pte_index(): the slot of `addr` in its pte table. */
export function pte_index(addr: number): number {
  return (addr / PAGE_SIZE) & (PTRS_PER_PTE - 1);
}

/** struct mm_struct */
export class MmStruct {
  readonly k: Kernel;
  /** The pte tables: pmd index -> 512 ptes. */
  readonly pgd = new Map<number, Float64Array>();
  /** The VMA list, sorted by address, non-overlapping (mm->mmap and mm->mm_rb in one). */
  mmap: VmArea[] = [];
  /** rss_stat: MM_FILEPAGES, MM_ANONPAGES, MM_SWAPENTS, MM_SHMEMPAGES */
  readonly rss = new Float64Array(NR_MM_COUNTERS);
  /** Users of the address space (tasks, mmget()); the last mmput() tears it down. */
  mm_users = 1;
  /** References to the struct itself (mmgrab()); the last mmdrop() frees it. */
  mm_count = 1;
  readonly mmu_notifier_mm: MmuNotifierMm;
  /** HMM's per-mm state (struct hmm), owned by mm/hmm. */
  hmm: unknown = null;
  mmap_base = MMAP_BASE;
  task_size = TASK_SIZE;
  def_flags = 0;
  total_vm = 0;
  locked_vm = 0;
  pinned_vm = 0;
  data_vm = 0;
  exec_vm = 0;
  stack_vm = 0;
  hiwater_rss = 0;
  hiwater_vm = 0;
  start_code = 0;
  end_code = 0;
  start_brk = 0;
  brk = 0;
  start_stack = 0;
  /** exit_mmap() has run. */
  dead = false;
  /** vmacache: the vma the last find_vma() returned. */
  #cache: VmArea | null = null;

  constructor(k: Kernel) {
    this.k = k;
    this.mmu_notifier_mm = new MmuNotifierMm(k);
  }

  get map_count(): number {
    return this.mmap.length;
  }

  /** highest_vm_end */
  get highest_vm_end(): number {
    const n = this.mmap.length;
    return n ? this.mmap[n - 1]!.vm_end : 0;
  }

  /** find_vma(): the first vma with vm_end > addr (it may start above addr), or null. */
  find_vma(addr: number): VmArea | null {
    const c = this.#cache;
    if (c !== null && c.vm_start <= addr && addr < c.vm_end && c.vm_mm === this) return c;
    const i = this.find_vma_index(addr);
    if (i < 0) return null;
    const vma = this.mmap[i]!;
    if (vma.vm_start <= addr) this.#cache = vma;
    return vma;
  }

  /** Index in mmap[] of find_vma(addr), or -1. */
  find_vma_index(addr: number): number {
    const a = this.mmap;
    let lo = 0;
    let hi = a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (a[mid]!.vm_end > addr) hi = mid;
      else lo = mid + 1;
    }
    return lo < a.length ? lo : -1;
  }

  /** vmacache_invalidate(): vmas moved or went away. */
  vmacache_invalidate(): void {
    this.#cache = null;
  }

  /** get_mm_rss() */
  get_mm_rss(): number {
    return this.rss[MM_FILEPAGES]! + this.rss[MM_ANONPAGES]! + this.rss[MM_SHMEMPAGES]!;
  }

  /** The pte table covering `addr` (pte_offset_map's table), or undefined when the pmd is none. */
  pmd_table(addr: number): Float64Array | undefined {
    return this.pgd.get(pmd_index(addr));
  }

  /** pte_alloc(): the pte table covering `addr`, allocated if the pmd is none. */
  pte_alloc(addr: number): Float64Array {
    const i = pmd_index(addr);
    let t = this.pgd.get(i);
    if (t === undefined) {
      t = new Float64Array(PTRS_PER_PTE);
      this.pgd.set(i, t);
    }
    return t;
  }

  /** *pte of `addr`: 0 (pte_none) when there is no table or no entry. */
  ptep_get(addr: number): pte_t {
    const t = this.pgd.get(pmd_index(addr));
    return t === undefined ? 0 : t[pte_index(addr)]!;
  }

  /** set_pte_at() */
  set_pte_at(addr: number, pte: pte_t): void {
    this.pte_alloc(addr)[pte_index(addr)] = pte;
  }

  /** pte_clear() */
  pte_clear(addr: number): void {
    const t = this.pgd.get(pmd_index(addr));
    if (t !== undefined) t[pte_index(addr)] = 0;
  }

  /** The pmd indices in [lo, hi) that have a pte table, ascending. */
  tablesIn(lo: number, hi: number): number[] {
    const out: number[] = [];
    if (hi - lo <= this.pgd.size * 4) {
      for (let i = lo; i < hi; i++) if (this.pgd.has(i)) out.push(i);
    } else {
      for (const i of this.pgd.keys()) if (i >= lo && i < hi) out.push(i);
      out.sort((a, b) => a - b);
    }
    return out;
  }

  /** mm_pgtables_bytes(): the pte tables, and the pmd and pud tables above them. */
  pgtables_bytes(): number {
    const pmds = new Set<number>();
    const puds = new Set<number>();
    for (const i of this.pgd.keys()) {
      pmds.add(Math.floor(i / PTRS_PER_PTE));
      puds.add(Math.floor(i / PTRS_PER_PTE / PTRS_PER_PTE));
    }
    return (this.pgd.size + pmds.size + puds.size) * PAGE_SIZE;
  }
}
