// mprotect() (mm/mprotect.c, 4.19-5.0): split or merge the vmas of the range, then rewrite the
// ptes with the new protection. Each pud-sized (1 GiB) piece of the range that has a pte table
// is changed inside an mmu notifier invalidation that starts at the first populated pmd and
// ends at the piece's end, as change_pmd_range() does; a range nobody touched sends none.

import { EACCES, EINVAL, ENOMEM } from "../errno.ts";
import { PAGE_SIZE } from "./memmap.ts";
import { mmu_notifier_invalidate_range_end, mmu_notifier_invalidate_range_start } from "./memory.ts";
import { calc_vm_prot_bits, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM, PROT_WRITE, security_vm_enough_memory_mm, split_vma, vma_merge, vma_set_page_prot, vm_stat_account } from "./mmap.ts";
import {
  pmd_index, PMD_SIZE, pte_index, PUD_SIZE, VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_HUGETLB, VM_NORESERVE, VM_READ, VM_SHARED, VM_WRITE, type MmStruct, type VmArea,
} from "./mm_types.ts";
import { pfn_pte, pte_present, pte_pfn, pte_to_swp_entry, swp_entry_to_pte, _PAGE_ACCESSED, _PAGE_DEVMAP, _PAGE_DIRTY, _PAGE_SPECIAL } from "./pgtable.ts";
import {
  is_write_device_private_entry, is_write_migration_entry, make_device_private_entry_read, make_migration_entry_read,
} from "./swapops.ts";

/** _PAGE_CHG_MASK: the bits pte_modify() keeps (pfn aside). */
const _PAGE_CHG_MASK = _PAGE_SPECIAL | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_DEVMAP;

/** pte_modify(): the same page with the protection bits of `newprot`. */
export function pte_modify(pte: number, newprot: number): number {
  const flags = pte % PAGE_SIZE;
  return pfn_pte(pte_pfn(pte), (flags & _PAGE_CHG_MASK) | (newprot & ~_PAGE_CHG_MASK));
}

/** change_pte_range(): present ptes get `newprot`; writable migration and device-private
 *  entries become read-only (4.20 does this on every mprotect). */
function change_pte_range(table: Float64Array, start: number, end: number, newprot: number): void {
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const i = pte_index(addr);
    const oldpte = table[i]!;
    if (oldpte === 0) continue;
    if (pte_present(oldpte)) {
      table[i] = pte_modify(oldpte, newprot);
      continue;
    }
    const entry = pte_to_swp_entry(oldpte);
    if (is_write_migration_entry(entry)) table[i] = swp_entry_to_pte(make_migration_entry_read(entry));
    if (is_write_device_private_entry(entry)) table[i] = swp_entry_to_pte(make_device_private_entry_read(entry));
  }
}

/** change_protection(): rewrite the ptes of [start, end) in `vma`. */
export function change_protection(vma: VmArea, start: number, end: number, newprot: number): void {
  const mm = vma.vm_mm;
  for (let addr = start; addr < end; ) {
    const next = Math.min(end, (Math.floor(addr / PUD_SIZE) + 1) * PUD_SIZE);
    // change_pmd_range(): the notifier starts at the first pmd with a table.
    let mni_start = -1;
    for (const pi of mm.tablesIn(pmd_index(addr), pmd_index(next - 1) + 1)) {
      const lo = Math.max(addr, pi * PMD_SIZE);
      const hi = Math.min(next, (pi + 1) * PMD_SIZE);
      if (mni_start < 0) {
        mni_start = lo;
        mmu_notifier_invalidate_range_start(mm, mni_start, next);
      }
      change_pte_range(mm.pgd.get(pi)!, lo, hi, newprot);
    }
    if (mni_start >= 0) mmu_notifier_invalidate_range_end(mm, mni_start, next);
    addr = next;
  }
}

/**
 * mprotect_fixup(): give [start, end) of `vma` the flags `newflags`, merging with a neighbour
 * or splitting `vma`. `prev` is the vma before the range (or `vma` itself when the range starts
 * inside it); returns [error, the vma now covering the range].
 */
function mprotect_fixup(vma: VmArea, prev: VmArea | null, start: number, end: number, newflags: number): [number, VmArea] {
  const mm = vma.vm_mm;
  const oldflags = vma.vm_flags;
  const nrpages = (end - start) / PAGE_SIZE;
  if (newflags === oldflags) return [0, vma];
  // A private mapping becoming writable is committed now (and stays so).
  if (newflags & VM_WRITE) {
    if (!(oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE))) {
      if (security_vm_enough_memory_mm(mm, nrpages)) return [-ENOMEM, vma];
      newflags |= VM_ACCOUNT;
    }
  }
  const pgoff = vma.vm_pgoff + (start - vma.vm_start) / PAGE_SIZE;
  const merged = vma_merge(mm, prev, start, end, newflags, vma.anon_vma, vma.vm_file, pgoff);
  if (merged) {
    vma = merged;
  } else {
    if (start !== vma.vm_start) {
      const error = split_vma(mm, vma, start, true);
      if (error) return [error, vma];
    }
    if (end !== vma.vm_end) {
      const error = split_vma(mm, vma, end, false);
      if (error) return [error, vma];
    }
  }
  vma.vm_flags = newflags >>> 0;
  vma_set_page_prot(vma);
  change_protection(vma, start, end, vma.vm_page_prot);
  vm_stat_account(mm, oldflags, -nrpages);
  vm_stat_account(mm, newflags, nrpages);
  return [0, vma];
}

/**
 * do_mprotect_pkey(): 0 or -EINVAL (bad address or prot bits), -ENOMEM (a hole in the range:
 * the vmas before it are changed already), -EACCES (more than the mapping may allow).
 */
export function do_mprotect(mm: MmStruct, start: number, len: number, prot: number): number {
  const grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
  prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP);
  if (grows === (PROT_GROWSDOWN | PROT_GROWSUP)) return -EINVAL;
  if (start % PAGE_SIZE) return -EINVAL;
  if (!len) return 0;
  len = Math.ceil(len / PAGE_SIZE) * PAGE_SIZE;
  const end = start + len;
  if (end <= start) return -ENOMEM;
  // arch_validate_prot()
  if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) return -EINVAL;
  const reqprot = prot;
  let i = mm.find_vma_index(start);
  if (i < 0) return -ENOMEM;
  let vma = mm.mmap[i]!;
  if (grows & PROT_GROWSDOWN) {
    // Only a VM_GROWSDOWN vma may be extended to its start: kemu grows no stacks.
    if (vma.vm_start >= end) return -ENOMEM;
    start = vma.vm_start;
    if (!(vma.vm_flags & VM_GROWSDOWN)) return -EINVAL;
  } else {
    if (vma.vm_start > start) return -ENOMEM;
    if (grows & PROT_GROWSUP) return -EINVAL;
  }
  let prev: VmArea | null = start > vma.vm_start ? vma : (mm.mmap[i - 1] ?? null);
  for (let nstart = start; ; ) {
    const newflags = calc_vm_prot_bits(prot) | (vma.vm_flags & ~(VM_READ | VM_WRITE | VM_EXEC));
    // newflags >> 4 shifts VM_MAY% in place of VM_%
    if ((newflags & ~(newflags >> 4)) & (VM_READ | VM_WRITE | VM_EXEC)) return -EACCES;
    const tmp = Math.min(vma.vm_end, end);
    const [error, covering] = mprotect_fixup(vma, prev, nstart, tmp, newflags);
    if (error) return error;
    prev = covering;
    nstart = tmp;
    if (nstart < prev.vm_end) nstart = prev.vm_end;
    if (nstart >= end) return 0;
    i = mm.mmap.indexOf(prev) + 1;
    vma = mm.mmap[i]!;
    if (!vma || vma.vm_start !== nstart) return -ENOMEM;
    prot = reqprot;
  }
}
