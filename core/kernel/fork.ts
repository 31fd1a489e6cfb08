// The life of an mm_struct (kernel/fork.c, 4.19-5.0): mm_alloc(), the two reference counts
// (mm_users: mmget/mmput, whose last put tears the address space down with exit_mmap();
// mm_count: mmgrab/mmdrop, whose last put frees the struct and checks its rss counters), and
// dup_mm()/dup_mmap() for fork.

import { ENOMEM } from "../errno.ts";
import { get_file } from "../fs/file.ts";
import type { Kernel } from "../kernel.ts";
import { copy_page_range } from "../mm/memory.ts";
import { exit_mmap, security_vm_enough_memory_mm, vma_link, vm_area_dup, vm_stat_account } from "../mm/mmap.ts";
import { MmStruct, NR_MM_COUNTERS, vma_pages, VM_ACCOUNT, VM_DONTCOPY, VM_LOCKED, VM_LOCKONFAULT, VM_WIPEONFORK } from "../mm/mm_types.ts";
import { anon_vma_fork, anon_vma_prepare } from "../mm/rmap.ts";

/** mm_alloc(): a new, empty address space with one user. */
export function mm_alloc(k: Kernel): MmStruct {
  const mm = new MmStruct(k);
  k.mm.mms.add(mm);
  return mm;
}

/** mmget() */
export function mmget(mm: MmStruct): void {
  mm.mm_users++;
}
/** mmget_not_zero(): a user reference unless the address space is already going away. */
export function mmget_not_zero(mm: MmStruct): boolean {
  if (mm.mm_users === 0) return false;
  mm.mm_users++;
  return true;
}
/** mmgrab() */
export function mmgrab(mm: MmStruct): void {
  mm.mm_count++;
}

/** check_mm(): a freed mm must have nothing counted any more. */
function check_mm(mm: MmStruct): void {
  const k = mm.k;
  for (let i = 0; i < NR_MM_COUNTERS; i++) {
    const x = mm.rss[i]!;
    if (x) k.printk(`\x011BUG: Bad rss-counter state mm:${k.mm.ptrP(mm)} idx:${i} val:${x}\n`);
  }
  const bytes = mm.pgtables_bytes();
  if (bytes) k.printk(`\x011BUG: non-zero pgtables_bytes on freeing mm: ${bytes}\n`);
}

/** mmdrop(): the last reference frees the mm (__mmdrop: HMM's state, then check_mm). */
export function mmdrop(mm: MmStruct): void {
  if (--mm.mm_count !== 0) return;
  const k = mm.k;
  k.mm.hmm_mm_destroy(mm);
  mm.hmm = null;
  check_mm(mm);
  k.mm.mms.delete(mm);
}

/** mmput(): the last user reference tears the address space down (__mmput). */
export function mmput(mm: MmStruct): void {
  if (--mm.mm_users !== 0) return;
  exit_mmap(mm);
  mmdrop(mm);
}

/**
 * dup_mmap(): copy every vma of `oldmm` (not VM_DONTCOPY) with its anon_vma chain and file,
 * and its ptes where copy_page_range() copies them. 0 or -ENOMEM (the overcommit check).
 */
function dup_mmap(mm: MmStruct, oldmm: MmStruct): number {
  mm.total_vm = oldmm.total_vm;
  mm.data_vm = oldmm.data_vm;
  mm.exec_vm = oldmm.exec_vm;
  mm.stack_vm = oldmm.stack_vm;
  for (const mpnt of oldmm.mmap) {
    if (mpnt.vm_flags & VM_DONTCOPY) {
      vm_stat_account(mm, mpnt.vm_flags, -vma_pages(mpnt));
      continue;
    }
    if (mpnt.vm_flags & VM_ACCOUNT && security_vm_enough_memory_mm(oldmm, vma_pages(mpnt))) return -ENOMEM;
    const tmp = vm_area_dup(mpnt, mm);
    if (tmp.vm_flags & VM_WIPEONFORK) {
      // VM_WIPEONFORK gets a clean slate in the child.
      tmp.anon_vma = null;
      tmp.anon_vma_chain = [];
      if (anon_vma_prepare(tmp)) return -ENOMEM;
    } else if (anon_vma_fork(tmp, mpnt)) {
      return -ENOMEM;
    }
    tmp.vm_flags &= ~(VM_LOCKED | VM_LOCKONFAULT);
    if (tmp.vm_file) get_file(tmp.vm_file);
    vma_link(mm, tmp);
    if (!(tmp.vm_flags & VM_WIPEONFORK)) copy_page_range(mm, oldmm, mpnt);
    tmp.vm_ops?.open?.(tmp);
  }
  return 0;
}

/** dup_mm(): the child's copy of `oldmm`, or -ENOMEM (the partial copy is torn down). */
export function dup_mm(oldmm: MmStruct): MmStruct | number {
  const mm = mm_alloc(oldmm.k);
  mm.mmap_base = oldmm.mmap_base;
  mm.task_size = oldmm.task_size;
  mm.def_flags = oldmm.def_flags;
  const err = dup_mmap(mm, oldmm);
  if (err) {
    mmput(mm);
    return err;
  }
  mm.hiwater_rss = mm.get_mm_rss();
  mm.hiwater_vm = mm.total_vm;
  return mm;
}
