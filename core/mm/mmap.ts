// The VMA layer of mm/mmap.c (4.19-5.0): mmap (address selection, merging, file and anonymous
// mappings), munmap (splitting, zapping, page-table freeing), exit_mmap, and the accounting
// /proc/PID/status reports.
//
// Address selection is x86-64's top-down search below mmap_base without randomisation, with the
// legacy bottom-up search as its fallback. The process is root: mmap_min_addr and mlock limits
// do not refuse it, and the overcommit heuristic (OVERCOMMIT_GUESS, as 4.20/5.0 have it) gives
// it the reserve a CAP_SYS_ADMIN task gets.

import { EACCES, EEXIST, EINVAL, ENODEV, ENOMEM, EOPNOTSUPP, EOVERFLOW } from "../errno.ts";
import { _PAGE_PRESENT, _PAGE_RW } from "./pgtable.ts";
import { fput, get_file, FMODE_READ, FMODE_WRITE, type File } from "../fs/file.ts";
import { PAGE_SIZE } from "./memmap.ts";
import {
  FAULT_FLAG_WRITE, free_pgd_range, handle_mm_fault, MmuGather, tlb_finish_mmu, unmap_vmas, update_hiwater_rss, VM_FAULT_ERROR,
} from "./memory.ts";
import {
  MmStruct, PMD_SIZE, TASK_SIZE, ULONG_MAX, VmArea, vma_pages, vm_get_page_prot, VM_ACCOUNT, VM_DENYWRITE, VM_EXEC, VM_GROWSDOWN, VM_HUGETLB, VM_IO,
  VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_NORESERVE, VM_PFNMAP, VM_READ, VM_SHARED, VM_SOFTDIRTY, VM_SPECIAL, VM_STACK, VM_SYNC,
  VM_WRITE, type vm_fault_t,
} from "./mm_types.ts";
import { anon_vma_clone, unlink_anon_vmas, type AnonVma } from "./rmap.ts";
import { shmem_zero_setup } from "./shmem.ts";

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x01000000;
export const PROT_GROWSUP = 0x02000000;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_32BIT = 0x40;
export const MAP_GROWSDOWN = 0x0100;
export const MAP_DENYWRITE = 0x0800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x10000;
export const MAP_STACK = 0x20000;
export const MAP_HUGETLB = 0x40000;
export const MAP_SYNC = 0x80000;
export const MAP_FIXED_NOREPLACE = 0x100000;
/** Flags plain MAP_SHARED accepts (and silently drops the rest of). */
export const LEGACY_MAP_MASK =
  MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE |
  MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB;

/** DEFAULT_MAX_MAP_COUNT */
export const sysctl_max_map_count = 65530;
/** CONFIG_DEFAULT_MMAP_MIN_ADDR of the distributions' x86-64 kernels. */
export const mmap_min_addr = 65536;
/** stack_guard_gap: 256 pages below a VM_GROWSDOWN vma stay free. */
export const stack_guard_gap = 256 * PAGE_SIZE;
/** TASK_UNMAPPED_BASE: where the legacy bottom-up search starts. */
export const TASK_UNMAPPED_BASE = Math.ceil(TASK_SIZE / 3 / PAGE_SIZE) * PAGE_SIZE;

function PAGE_ALIGN(x: number): number {
  return Math.ceil(x / PAGE_SIZE) * PAGE_SIZE;
}
function offset_in_page(x: number): boolean {
  return x % PAGE_SIZE !== 0;
}

/** calc_vm_prot_bits(): PROT_READ/WRITE/EXEC are VM_READ/WRITE/EXEC. */
export function calc_vm_prot_bits(prot: number): number {
  return prot & (VM_READ | VM_WRITE | VM_EXEC);
}
/** calc_vm_flag_bits() */
export function calc_vm_flag_bits(flags: number): number {
  return (flags & MAP_GROWSDOWN ? VM_GROWSDOWN : 0) | (flags & MAP_DENYWRITE ? VM_DENYWRITE : 0) | (flags & MAP_LOCKED ? VM_LOCKED : 0) | (flags & MAP_SYNC ? VM_SYNC : 0);
}

/** vma_set_page_prot(): the protection new ptes get (write-notify is never wanted here: no
 *  mapping of kemu's tracks dirty pages, except through ->page_mkwrite). */
export function vma_set_page_prot(vma: VmArea): void {
  let flags = vma.vm_flags;
  const ops = vma.vm_ops;
  if ((flags & (VM_WRITE | VM_SHARED)) === (VM_WRITE | VM_SHARED) && ops !== null && (ops.page_mkwrite || ops.pfn_mkwrite)) flags &= ~VM_SHARED;
  vma.vm_page_prot = vm_get_page_prot(flags);
}

/** vm_stat_account(): total_vm and the exec/stack/data split of /proc/PID/status. */
export function vm_stat_account(mm: MmStruct, flags: number, npages: number): void {
  mm.total_vm += npages;
  if ((flags & (VM_EXEC | VM_WRITE | VM_STACK)) === VM_EXEC) mm.exec_vm += npages;
  else if ((flags & VM_STACK) === VM_STACK) mm.stack_vm += npages;
  else if ((flags & (VM_WRITE | VM_SHARED | VM_STACK)) === VM_WRITE) mm.data_vm += npages;
}

export function update_hiwater_vm(mm: MmStruct): void {
  if (mm.hiwater_vm < mm.total_vm) mm.hiwater_vm = mm.total_vm;
}

/**
 * security_vm_enough_memory_mm() -> __vm_enough_memory() under OVERCOMMIT_GUESS (4.20/5.0):
 * free pages plus page cache that is not shmem, less the reserves; the task is CAP_SYS_ADMIN.
 */
export function security_vm_enough_memory_mm(mm: MmStruct, pages: number): number {
  const kmm = mm.k.mm;
  let free = kmm.pageAlloc.nr_free_pages() + kmm.vmstat.nr_file_pages - kmm.vmstat.nr_shmem;
  let totalreserve = 0;
  for (const z of kmm.pageAlloc.zones) totalreserve += z.watermark.high;
  if (free <= totalreserve) return -ENOMEM;
  free -= totalreserve;
  return free > pages ? 0 : -ENOMEM;
}

/** accountable_mapping(): private writable memory is committed (VM_ACCOUNT). */
function accountable_mapping(file: File | null, vm_flags: number): boolean {
  void file; // hugetlbfs files would not be accounted here; kemu has none
  return (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE;
}

// ---- the VMA list ----------------------------------------------------------------------

/** vma_link(): insert `vma` in address order; a file mapping joins the file's i_mmap. */
export function vma_link(mm: MmStruct, vma: VmArea): void {
  const a = mm.mmap;
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]!.vm_start < vma.vm_start) lo = mid + 1;
    else hi = mid;
  }
  a.splice(lo, 0, vma);
  vma.vm_file?.f_mapping?.i_mmap.add(vma);
  mm.vmacache_invalidate();
}

/** unlink_file_vma() */
export function unlink_file_vma(vma: VmArea): void {
  vma.vm_file?.f_mapping?.i_mmap.delete(vma);
}

/** remove_vma(): ->close, drop the file. */
export function remove_vma(vma: VmArea): void {
  vma.vm_ops?.close?.(vma);
  if (vma.vm_file) fput(vma.vm_file);
}

/** vm_area_dup(): a copy with its own (empty) anon_vma chain. */
export function vm_area_dup(vma: VmArea, mm: MmStruct = vma.vm_mm): VmArea {
  const nv = new VmArea(mm, vma.vm_start, vma.vm_end, vma.vm_flags, vma.vm_pgoff);
  nv.vm_page_prot = vma.vm_page_prot;
  nv.vm_file = vma.vm_file;
  nv.anon_vma = vma.anon_vma;
  nv.vm_ops = vma.vm_ops;
  nv.vm_private_data = vma.vm_private_data;
  return nv;
}

/**
 * __split_vma(): cut `vma` at `addr`; the new vma is the part below (new_below) or above.
 * Both keep the anon_vma chain and the file.
 */
export function __split_vma(mm: MmStruct, vma: VmArea, addr: number, new_below: boolean): number {
  if (vma.vm_ops?.split) {
    const err = vma.vm_ops.split(vma, addr);
    if (err) return err;
  }
  const nv = vm_area_dup(vma);
  if (new_below) nv.vm_end = addr;
  else {
    nv.vm_start = addr;
    nv.vm_pgoff += (addr - vma.vm_start) / PAGE_SIZE;
  }
  anon_vma_clone(nv, vma);
  if (nv.vm_file) get_file(nv.vm_file);
  nv.vm_ops?.open?.(nv);
  if (new_below) {
    vma.vm_pgoff += (addr - nv.vm_start) / PAGE_SIZE;
    vma.vm_start = addr;
  } else {
    vma.vm_end = addr;
  }
  vma_link(mm, nv);
  return 0;
}

/** split_vma(): __split_vma() within the map count limit. */
export function split_vma(mm: MmStruct, vma: VmArea, addr: number, new_below: boolean): number {
  if (mm.map_count >= sysctl_max_map_count) return -ENOMEM;
  return __split_vma(mm, vma, addr, new_below);
}

/** is_mergeable_vma(): same flags (soft-dirty aside), same file, no ->close. */
function is_mergeable_vma(vma: VmArea, file: File | null, vm_flags: number): boolean {
  if ((vma.vm_flags ^ vm_flags) & ~VM_SOFTDIRTY) return false;
  if (vma.vm_file !== file) return false;
  if (vma.vm_ops?.close) return false;
  return true;
}

/** is_mergeable_anon_vma(): the same anon_vma, or none on one side while the other's was
 *  never shared by a fork. */
function is_mergeable_anon_vma(a1: AnonVma | null, a2: AnonVma | null, vma: VmArea | null): boolean {
  if ((!a1 || !a2) && (!vma || vma.anon_vma_chain.length === 1)) return true;
  return a1 === a2;
}

function can_vma_merge_before(vma: VmArea, vm_flags: number, anon_vma: AnonVma | null, file: File | null, vm_pgoff: number): boolean {
  return is_mergeable_vma(vma, file, vm_flags) && is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma) && vma.vm_pgoff === vm_pgoff;
}

function can_vma_merge_after(vma: VmArea, vm_flags: number, anon_vma: AnonVma | null, file: File | null, vm_pgoff: number): boolean {
  return is_mergeable_vma(vma, file, vm_flags) && is_mergeable_anon_vma(anon_vma, vma.anon_vma, vma) && vma.vm_pgoff + vma_pages(vma) === vm_pgoff;
}

/** The vma that stays takes over the anon_vma of a part it absorbs (__vma_adjust's importer). */
function import_anon_vma(importer: VmArea, exporter: VmArea): void {
  if (exporter.anon_vma && !importer.anon_vma) {
    importer.anon_vma = exporter.anon_vma;
    anon_vma_clone(importer, exporter);
  }
}

/** A vma absorbed by a merge goes away (__vma_adjust's remove_next). */
function remove_merged(mm: MmStruct, vma: VmArea): void {
  mm.mmap.splice(mm.mmap.indexOf(vma), 1);
  unlink_anon_vmas(vma);
  unlink_file_vma(vma);
  if (vma.vm_file) fput(vma.vm_file);
  mm.vmacache_invalidate();
}

/**
 * vma_merge(): can [addr, end) with these properties join `prev` (the vma before addr, or the
 * vma being changed itself when mprotect starts inside it) and/or the vma after it? Returns
 * the vma that now covers [addr, end), or null. The eight cases of mm/mmap.c:
 *
 *     AAAA             AAAA                   AAAA
 *    PPPPPPNNNNNN    PPPPPPNNNNNN       PPPPPPCCCCCC
 *    cannot merge    might become       might become
 *                    PPNNNNNNNNNN       PPPPPPPPPPCC
 *    mmap, brk or    case 4 below       case 5 below
 *    mremap move:
 *                        AAAA               AAAA
 *                    PPPP    NNNN       PPPPNNNNXXXX
 *                    might become       might become
 *                    PPPPPPPPPPPP 1 or  PPPPPPPPPPPP 6 or
 *                    PPPPPPPPNNNN 2 or  PPPPPPPPXXXX 7 or
 *                    PPPPNNNNNNNN 3     PPPPXXXXXXXX 8
 */
export function vma_merge(
  mm: MmStruct, prev: VmArea | null, addr: number, end: number, vm_flags: number, anon_vma: AnonVma | null, file: File | null, pgoff: number,
): VmArea | null {
  const pglen = (end - addr) / PAGE_SIZE;
  if (vm_flags & VM_SPECIAL) return null;
  const a = mm.mmap;
  const pi = prev ? a.indexOf(prev) : -1;
  const area = a[pi + 1] ?? null;
  let next = area;
  if (area && area.vm_end === end) next = a[pi + 2] ?? null; // cases 6, 7, 8
  if (prev && prev.vm_end === addr && can_vma_merge_after(prev, vm_flags, anon_vma, file, pgoff)) {
    if (next && end === next.vm_start && can_vma_merge_before(next, vm_flags, anon_vma, file, pgoff + pglen) && is_mergeable_anon_vma(prev.anon_vma, next.anon_vma, null)) {
      // cases 1, 6: prev, the area (case 6) and next become one
      if (area !== next && area) {
        import_anon_vma(prev, area);
        remove_merged(mm, area);
      }
      import_anon_vma(prev, next);
      prev.vm_end = next.vm_end;
      remove_merged(mm, next);
    } else {
      // cases 2, 5, 7: prev grows to end; the area shrinks (5) or goes (7)
      if (area && area.vm_start < end) {
        import_anon_vma(prev, area);
        if (area.vm_end === end) remove_merged(mm, area);
        else {
          area.vm_pgoff += (end - area.vm_start) / PAGE_SIZE;
          area.vm_start = end;
        }
      }
      prev.vm_end = end;
    }
    mm.vmacache_invalidate();
    return prev;
  }
  if (next && end === next.vm_start && can_vma_merge_before(next, vm_flags, anon_vma, file, pgoff + pglen)) {
    if (prev && addr < prev.vm_end) {
      // case 4: prev shrinks to addr, next grows down to it
      import_anon_vma(next, prev);
      prev.vm_end = addr;
    } else if (area && area !== next) {
      // case 8: the area goes, next grows down over it
      import_anon_vma(next, area);
      remove_merged(mm, area);
    }
    // case 3 (and 4, 8): next starts at addr
    next.vm_start = addr;
    next.vm_pgoff -= pglen;
    mm.vmacache_invalidate();
    return next;
  }
  return null;
}

// ---- address selection -----------------------------------------------------------------

/** vm_start_gap(): a stack vma keeps stack_guard_gap free below it. */
function vm_start_gap(vma: VmArea): number {
  let start = vma.vm_start;
  if (vma.vm_flags & VM_GROWSDOWN) {
    start -= stack_guard_gap;
    if (start > vma.vm_start) start = 0;
  }
  return Math.max(start, 0);
}

/** unmapped_area_topdown(): the highest `length`-byte gap in [low, high), or -ENOMEM. */
function unmapped_area_topdown(mm: MmStruct, length: number, low: number, high: number): number {
  if (high < length || low > high - length) return -ENOMEM;
  const a = mm.mmap;
  for (let i = a.length; i >= 0; i--) {
    const gap_start = i > 0 ? a[i - 1]!.vm_end : 0;
    let gap_end = i < a.length ? vm_start_gap(a[i]!) : Infinity;
    if (gap_end < low + length) return -ENOMEM;
    if (gap_start > high - length) continue;
    if (gap_end > high) gap_end = high;
    if (gap_end - gap_start >= length && gap_end - length >= low) return gap_end - length;
  }
  return -ENOMEM;
}

/** unmapped_area(): the lowest `length`-byte gap in [low, high), or -ENOMEM. */
function unmapped_area(mm: MmStruct, length: number, low: number, high: number): number {
  if (high < length || low > high - length) return -ENOMEM;
  const a = mm.mmap;
  for (let i = 0; i <= a.length; i++) {
    const gap_start = Math.max(i > 0 ? a[i - 1]!.vm_end : 0, low);
    const gap_end = Math.min(i < a.length ? vm_start_gap(a[i]!) : Infinity, high);
    if (gap_start > high - length) return -ENOMEM;
    if (gap_end - gap_start >= length) return gap_start;
  }
  return -ENOMEM;
}

/** mmap_address_hint_valid(): the hint fits below TASK_SIZE without crossing the 47-bit window. */
function mmap_address_hint_valid(addr: number, len: number): boolean {
  return TASK_SIZE - len >= addr;
}

/** arch_get_unmapped_area_topdown() (x86-64), falling back to the legacy bottom-up search:
 *  mm->get_unmapped_area. */
export function arch_get_unmapped_area_topdown(mm: MmStruct, addr0: number, len: number, flags: number): number {
  if (len > TASK_SIZE) return -ENOMEM;
  if (flags & MAP_FIXED) return addr0;
  if (addr0) {
    const addr = Math.floor(addr0 / PAGE_SIZE) * PAGE_SIZE;
    if (mmap_address_hint_valid(addr, len)) {
      const vma = mm.find_vma(addr);
      if (!vma || addr + len <= vm_start_gap(vma)) return addr;
    }
  }
  const addr = unmapped_area_topdown(mm, len, PAGE_SIZE, mm.mmap_base);
  if (addr >= 0) return addr;
  // arch_get_unmapped_area(): bottom-up from TASK_UNMAPPED_BASE to the top
  if (addr0) {
    const a = PAGE_ALIGN(addr0);
    const vma = mm.find_vma(a);
    if (TASK_SIZE - len >= a && (!vma || a + len <= vm_start_gap(vma))) return a;
  }
  return unmapped_area(mm, len, TASK_UNMAPPED_BASE, TASK_SIZE);
}

/**
 * get_unmapped_area(): an address for [addr, addr+len), or a negative errno; a file's
 * ->get_unmapped_area chooses for a mapping of it (device-dax aligns its mappings).
 */
export function get_unmapped_area(mm: MmStruct, addr: number, len: number, flags: number, file: File | null = null, pgoff = 0): number {
  if (len > TASK_SIZE) return -ENOMEM;
  const get_area = file?.f_op.get_unmapped_area;
  addr = get_area ? get_area(file!, addr, len, pgoff, flags) : arch_get_unmapped_area_topdown(mm, addr, len, flags);
  if (addr < 0) return addr;
  if (addr > TASK_SIZE - len) return -ENOMEM;
  if (offset_in_page(addr)) return -EINVAL;
  return addr;
}

/** round_hint_to_min(): a hint below mmap_min_addr is raised to it. */
function round_hint_to_min(hint: number): number {
  hint = Math.floor(hint / PAGE_SIZE) * PAGE_SIZE;
  if (hint && hint < mmap_min_addr) return PAGE_ALIGN(mmap_min_addr);
  return hint;
}

// ---- mmap ------------------------------------------------------------------------------

/** file_mmap_ok(): the mapping fits in the file's maximum size (MAX_LFS_FILESIZE). */
function file_mmap_ok(pgoff: number, len: number): boolean {
  const maxsize = 2 ** 63 - 1;
  if (len > maxsize) return false;
  return pgoff <= Math.floor((maxsize - len) / PAGE_SIZE);
}

/** vmas a file's ->mmap is setting up: not linked yet, but alive for the driver. */
export const vma_in_mmap = new WeakSet<VmArea>();

/**
 * mmap_region(): clear what is at [addr, addr+len), then extend a neighbour or create a vma
 * (a file's ->mmap sets it up; an anonymous shared one becomes a tmpfs file).
 */
export function mmap_region(mm: MmStruct, file: File | null, addr: number, len: number, vm_flags: number, pgoff: number): number {
  const end = addr + len;
  // Clear old maps (MAP_FIXED over existing mappings).
  for (;;) {
    const v = mm.find_vma(addr);
    if (!v || v.vm_start >= end) break;
    if (do_munmap(mm, addr, len)) return -ENOMEM;
  }
  if (accountable_mapping(file, vm_flags)) {
    if (security_vm_enough_memory_mm(mm, len / PAGE_SIZE)) return -ENOMEM;
    vm_flags |= VM_ACCOUNT;
  }
  const i = mm.find_vma_index(addr);
  const prev = i < 0 ? (mm.mmap[mm.mmap.length - 1] ?? null) : (mm.mmap[i - 1] ?? null);
  let vma = vma_merge(mm, prev, addr, end, vm_flags, null, file, pgoff);
  if (!vma) {
    vma = new VmArea(mm, addr, end, vm_flags, pgoff);
    // A driver's ->mmap may map pages (vm_insert_page()) with the vma's protection.
    vma.vm_page_prot = vm_get_page_prot(vm_flags);
    if (file) {
      vma.vm_file = get_file(file);
      vma_in_mmap.add(vma);
      let error: number;
      try {
        error = file.f_op.mmap!(file, vma);
      } finally {
        vma_in_mmap.delete(vma);
      }
      if (error) {
        // unmap_and_free_vma: undo what a driver's ->mmap may have mapped
        vma.vm_file = null;
        fput(file);
        const tlb = new MmuGather(mm);
        unmap_vmas(tlb, [vma], vma.vm_start, vma.vm_end);
        free_pgd_range(mm, vma.vm_start, vma.vm_end, prev ? prev.vm_end : 0, mm.mmap[mm.mmap.indexOf(prev!) + 1]?.vm_start ?? 0);
        tlb_finish_mmu(tlb);
        return error;
      }
      addr = vma.vm_start;
      vm_flags = vma.vm_flags;
    } else if (vm_flags & VM_SHARED) {
      const error = shmem_zero_setup(vma);
      if (error) return error;
    }
    vma_link(mm, vma);
  }
  vm_stat_account(mm, vm_flags, len / PAGE_SIZE);
  if (vm_flags & VM_LOCKED) mm.locked_vm += len / PAGE_SIZE;
  // New (or expanded) vmas are soft-dirty.
  vma.vm_flags = (vma.vm_flags | VM_SOFTDIRTY) >>> 0;
  vma_set_page_prot(vma);
  return addr;
}

/**
 * do_mmap(): check the request and map it; the address, or a negative errno (as the syscall
 * returns it: -EINVAL, -ENOMEM, -EACCES, -EEXIST, -EOPNOTSUPP, -ENODEV, -EOVERFLOW).
 */
export function do_mmap(mm: MmStruct, file: File | null, addr: number, len: number, prot: number, flags: number, pgoff: number): number {
  if (!len) return -EINVAL;
  if (flags & MAP_FIXED_NOREPLACE) flags |= MAP_FIXED;
  if (!(flags & MAP_FIXED)) addr = round_hint_to_min(addr);
  len = PAGE_ALIGN(len);
  if (!len || len >= ULONG_MAX) return -ENOMEM;
  if (mm.map_count > sysctl_max_map_count) return -ENOMEM;
  addr = get_unmapped_area(mm, addr, len, flags, file, pgoff);
  if (addr < 0) return addr;
  if (flags & MAP_FIXED_NOREPLACE) {
    const vma = mm.find_vma(addr);
    if (vma && vma.vm_start < addr + len) return -EEXIST;
  }
  let vm_flags = calc_vm_prot_bits(prot) | calc_vm_flag_bits(flags) | mm.def_flags | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
  if (file) {
    if (!file_mmap_ok(pgoff, len)) return -EOVERFLOW;
    const type = flags & MAP_TYPE;
    if (type === MAP_SHARED || type === MAP_SHARED_VALIDATE) {
      // Plain MAP_SHARED drops unknown flags; MAP_SHARED_VALIDATE refuses them (tmpfs
      // supports none beyond the legacy ones, so MAP_SYNC is -EOPNOTSUPP).
      if (type === MAP_SHARED) flags &= LEGACY_MAP_MASK;
      if (flags & ~LEGACY_MAP_MASK) return -EOPNOTSUPP;
      if (prot & PROT_WRITE && !(file.f_mode & FMODE_WRITE)) return -EACCES;
      vm_flags |= VM_SHARED | VM_MAYSHARE;
      if (!(file.f_mode & FMODE_WRITE)) vm_flags &= ~(VM_MAYWRITE | VM_SHARED);
    } else if (type !== MAP_PRIVATE) {
      return -EINVAL;
    }
    // MAP_SHARED falls through to the MAP_PRIVATE checks.
    if (!(file.f_mode & FMODE_READ)) return -EACCES;
    if (!file.f_op.mmap) return -ENODEV;
    if (vm_flags & VM_GROWSDOWN) return -EINVAL;
  } else {
    switch (flags & MAP_TYPE) {
      case MAP_SHARED:
        if (vm_flags & VM_GROWSDOWN) return -EINVAL;
        pgoff = 0; // ignored: the tmpfs file starts at the mapping
        vm_flags |= VM_SHARED | VM_MAYSHARE;
        break;
      case MAP_PRIVATE:
        // pgoff follows the address, so that anonymous neighbours merge.
        pgoff = addr / PAGE_SIZE;
        break;
      default:
        return -EINVAL;
    }
  }
  if (flags & MAP_NORESERVE) vm_flags |= VM_NORESERVE;
  return mmap_region(mm, file, addr, len, vm_flags, pgoff);
}

/**
 * vm_mmap_pgoff(): do_mmap(), then populate the mapping for MAP_POPULATE or MAP_LOCKED
 * (mm_populate ignores errors, as the kernel's does).
 */
export function vm_mmap_pgoff(mm: MmStruct, file: File | null, addr: number, len: number, prot: number, flags: number, pgoff: number): number {
  if (flags & MAP_HUGETLB && !file) return -ENOMEM; // no huge pages are reserved (hugetlbfs is not modelled)
  const ret = do_mmap(mm, file, addr, len, prot, flags, pgoff);
  if (ret >= 0 && (flags & MAP_LOCKED || (flags & (MAP_POPULATE | MAP_NONBLOCK)) === MAP_POPULATE)) mm_populate(mm, ret, PAGE_ALIGN(len));
  return ret;
}

/**
 * mm_populate() -> populate_vma_page_range(): fault in every page of [start, start+len) as
 * get_user_pages() would: a write fault for private writable memory (breaking COW), a read
 * fault otherwise; VM_IO/VM_PFNMAP and inaccessible vmas are skipped.
 */
export function mm_populate(mm: MmStruct, start: number, len: number): void {
  const end = start + len;
  for (let addr = start; addr < end; ) {
    const vma = mm.find_vma(addr);
    if (!vma || vma.vm_start >= end) break;
    const s = Math.max(addr, vma.vm_start);
    const e = Math.min(end, vma.vm_end);
    addr = e;
    if (vma.vm_flags & (VM_IO | VM_PFNMAP) || !(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))) continue;
    const write = (vma.vm_flags & (VM_WRITE | VM_SHARED)) === VM_WRITE;
    for (let a = s; a < e; a += PAGE_SIZE) {
      if (faultin_page(vma, a, write) & VM_FAULT_ERROR) break; // -EFAULT: on to the next vma
    }
  }
}

/** follow_page() + faultin_page(): fault until the pte allows the access (GUP, FOLL_TOUCH). */
function faultin_page(vma: VmArea, addr: number, write: boolean): vm_fault_t {
  for (let tries = 0; tries < 8; tries++) {
    const pte = vma.vm_mm.ptep_get(addr);
    const fl = pte % PAGE_SIZE;
    if (fl & _PAGE_PRESENT && (!write || fl & _PAGE_RW)) return 0;
    const ret = handle_mm_fault(vma, addr, write ? FAULT_FLAG_WRITE : 0);
    if (ret & VM_FAULT_ERROR) return ret;
  }
  return 0;
}

// ---- munmap ----------------------------------------------------------------------------

/**
 * free_pgtables(): unlink the vmas from their anon_vmas and files, and free the pte tables
 * only they used (between `floor` and `ceiling`, the neighbours that stay).
 */
export function free_pgtables(mm: MmStruct, vmas: readonly VmArea[], floor: number, ceiling: number): void {
  for (let k = 0; k < vmas.length; ) {
    let vma = vmas[k]!;
    const addr = vma.vm_start;
    unlink_anon_vmas(vma);
    unlink_file_vma(vma);
    // Optimization: gather nearby vmas into one call down.
    while (k + 1 < vmas.length && vmas[k + 1]!.vm_start <= vma.vm_end + PMD_SIZE && !(vmas[k + 1]!.vm_flags & VM_HUGETLB)) {
      vma = vmas[++k]!;
      unlink_anon_vmas(vma);
      unlink_file_vma(vma);
    }
    free_pgd_range(mm, addr, vma.vm_end, floor, k + 1 < vmas.length ? vmas[k + 1]!.vm_start : ceiling);
    k++;
  }
}

/** unmap_region(): zap [start, end) of the detached vmas, free their tables, flush. */
function unmap_region(mm: MmStruct, vmas: readonly VmArea[], floor: number, ceiling: number, start: number, end: number): void {
  const tlb = new MmuGather(mm);
  update_hiwater_rss(mm);
  unmap_vmas(tlb, vmas, start, end);
  free_pgtables(mm, vmas, floor, ceiling);
  tlb_finish_mmu(tlb);
}

/** remove_vma_list(): account and release the vmas munmap detached. */
function remove_vma_list(mm: MmStruct, vmas: readonly VmArea[]): void {
  update_hiwater_vm(mm);
  for (const vma of vmas) {
    vm_stat_account(mm, vma.vm_flags, -vma_pages(vma));
    if (vma.vm_flags & VM_LOCKED) mm.locked_vm -= vma_pages(vma);
    remove_vma(vma);
  }
}

/**
 * do_munmap(): split the vmas at the edges, detach those inside, zap them inside one mmu
 * notifier invalidation of [start, start+len), free their page tables. 0 or a negative errno;
 * nothing mapped there is not an error.
 */
export function do_munmap(mm: MmStruct, start: number, len: number): number {
  if (offset_in_page(start) || start > TASK_SIZE || len > TASK_SIZE - start) return -EINVAL;
  len = PAGE_ALIGN(len);
  if (len === 0) return -EINVAL;
  let i = mm.find_vma_index(start);
  if (i < 0) return 0;
  const end = start + len;
  const vma = mm.mmap[i]!;
  if (vma.vm_start >= end) return 0;
  if (start > vma.vm_start) {
    // munmap may take map_count just over the limit, but not split to get there.
    if (end < vma.vm_end && mm.map_count >= sysctl_max_map_count) return -ENOMEM;
    const error = __split_vma(mm, vma, start, false);
    if (error) return error;
    i++;
  }
  const li = mm.find_vma_index(end);
  if (li >= 0 && end > mm.mmap[li]!.vm_start) {
    const error = __split_vma(mm, mm.mmap[li]!, end, true);
    if (error) return error;
  }
  let j = i;
  while (j < mm.mmap.length && mm.mmap[j]!.vm_start < end) j++;
  const detached = mm.mmap.splice(i, j - i);
  mm.vmacache_invalidate();
  const floor = i > 0 ? mm.mmap[i - 1]!.vm_end : 0;
  const ceiling = i < mm.mmap.length ? mm.mmap[i]!.vm_start : 0;
  unmap_region(mm, detached, floor, ceiling, start, end);
  remove_vma_list(mm, detached);
  return 0;
}

/**
 * exit_mmap(): the last user is gone. Notifiers hear release first (and are unhashed), then
 * everything is zapped and the tables and vmas freed.
 */
export function exit_mmap(mm: MmStruct): void {
  mm.mmu_notifier_mm.release(mm);
  mm.dead = true;
  const vmas = mm.mmap;
  if (!vmas.length) return;
  const tlb = new MmuGather(mm);
  unmap_vmas(tlb, vmas, 0, ULONG_MAX);
  free_pgtables(mm, vmas, 0, 0);
  tlb_finish_mmu(tlb);
  mm.mmap = [];
  mm.vmacache_invalidate();
  for (const vma of vmas) remove_vma(vma);
}
