// HMM mirror (mm/hmm.c, 4.19-5.0; spec mm-hmm R4.1, R4.2): a device mirrors a process's page
// tables. hmm_mirror_register() hangs one struct hmm with one mmu notifier on the mm; every
// invalidation of the CPU page tables invalidates the snapshots (hmm_range) it overlaps and is
// passed to each mirror's sync_cpu_device_pagetables(). hmm_vma_get_pfns() snapshots a range
// of a vma without faulting, hmm_vma_fault() faults what the device asks for first.

import { EBUSY, EFAULT, EINVAL, ENOMEM, EPERM } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import type { KBuf } from "./slab.ts";
import { PAGE_SIZE } from "./memmap.ts";
import { MmuNotifier, type MmuNotifierRange } from "./mmu_notifier.ts";
import { is_swap_pte, pte_none, pte_pfn, pte_to_swp_entry, pte_write } from "./pgtable.ts";
import { is_device_private_entry, is_migration_entry, is_write_device_private_entry, non_swap_entry, swp_offset } from "./swapops.ts";
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, VM_FAULT_ERROR, VM_FAULT_RETRY, handle_mm_fault,
} from "./memory.ts";
import { PMD_SIZE, VM_HUGETLB, VM_READ, VM_SPECIAL, pte_index, type MmStruct, type VmArea } from "./mm_types.ts";

/** enum hmm_update_event */
export const HMM_UPDATE_INVALIDATE = 0;

/** struct hmm_update: what sync_cpu_device_pagetables() is told. */
export interface HmmUpdate {
  readonly start: number;
  readonly end: number;
  readonly event: number;
  readonly blockable: boolean;
}

export interface HmmMirrorOps {
  /** The mm is going away (exit): stop using the mirror. */
  release?(mirror: HmmMirror): void;
  /** Update the device page tables for [start, end); synchronous. 0, or -EAGAIN only when
   *  !blockable and it would have to block. */
  sync_cpu_device_pagetables(mirror: HmmMirror, update: HmmUpdate): number;
}

/** struct hmm_mirror */
export class HmmMirror {
  hmm: HmmMm | null = null;
  readonly ops: HmmMirrorOps;
  constructor(ops: HmmMirrorOps) {
    this.ops = ops;
  }
}

// Indexes into hmm_range->flags and ->values.
export const HMM_PFN_VALID = 0;
export const HMM_PFN_WRITE = 1;
export const HMM_PFN_DEVICE_PRIVATE = 2;
export const HMM_PFN_ERROR = 0;
export const HMM_PFN_NONE = 1;
export const HMM_PFN_SPECIAL = 2;

/** struct hmm_range: the driver's encoding of each page's state, and where it is stored. */
export class HmmRange {
  vma: VmArea;
  start: number;
  end: number;
  /** One entry per page: (pfn << pfn_shift) | flags, or one of values[]. */
  pfns: Float64Array;
  /** The driver's bits for VALID, WRITE, DEVICE_PRIVATE. */
  flags: readonly [number, number, number];
  /** The driver's values for ERROR, NONE, SPECIAL. */
  values: readonly [number, number, number];
  pfn_shift: number;
  valid = false;
  constructor(init: { vma: VmArea; start: number; end: number; pfns: Float64Array; flags: readonly [number, number, number]; values: readonly [number, number, number]; pfn_shift: number }) {
    this.vma = init.vma;
    this.start = init.start;
    this.end = init.end;
    this.pfns = init.pfns;
    this.flags = init.flags;
    this.values = init.values;
    this.pfn_shift = init.pfn_shift;
  }
}

/** hmm_pfn_from_pfn(): the range's encoding of a valid pfn. */
export function hmm_pfn_from_pfn(range: HmmRange, pfn: number): number {
  return pfn * 2 ** range.pfn_shift + range.flags[HMM_PFN_VALID];
}

/** hmm_pfn_to_pfn(): -1 for the special values or when VALID is clear. */
export function hmm_pfn_to_pfn(range: HmmRange, v: number): number {
  if (v === range.values[HMM_PFN_NONE] || v === range.values[HMM_PFN_ERROR] || v === range.values[HMM_PFN_SPECIAL]) return -1;
  if (!hasBits(v, range.flags[HMM_PFN_VALID])) return -1;
  return Math.floor(v / 2 ** range.pfn_shift);
}

/** v & bits, for 64-bit-ish values held in doubles: the flag bits sit below pfn_shift. */
function hasBits(v: number, bits: number): boolean {
  return bits !== 0 && (v % 2 ** 32 & bits) === bits;
}

/** struct hmm: one per mm with mirrors. */
export class HmmMm {
  /** 4.19/4.20/5.0 hmm_mirror_unregister() clears it even when other mirrors remain (R4.1). */
  mm: MmStruct | null;
  readonly mirrors: HmmMirror[] = [];
  readonly ranges: HmmRange[] = [];
  readonly mmu_notifier: MmuNotifier;
  constructor(mm: MmStruct, notifier: MmuNotifier) {
    this.mm = mm;
    this.mmu_notifier = notifier;
  }
}

export class HmmMirrors {
  readonly #k: Kernel;
  constructor(k: Kernel) {
    this.#k = k;
  }

  /** hmm_register(): the mm's struct hmm, created with its notifier on first use. */
  #register(mm: MmStruct): HmmMm | null {
    const cur = mm.hmm as HmmMm | null;
    if (cur) return cur;
    const buf = this.#k.mm.kmalloc(96, undefined, "hmm");
    if (!buf) return null;
    const hmm: HmmMm = new HmmMm(mm, new MmuNotifier({
      release: () => this.#release(hmm),
      invalidate_range_start: (_mn, r) => this.#invalidate(hmm, true, r),
      invalidate_range_end: (_mn, r) => void this.#invalidate(hmm, false, r),
    }));
    mm.hmm = hmm;
    this.#slab.set(hmm, buf);
    mm.mmu_notifier_mm.register(hmm.mmu_notifier);
    return hmm;
  }

  /** The kmalloc() behind each struct hmm, freed by kfree(hmm). */
  readonly #slab = new WeakMap<HmmMm, KBuf>();

  /** hmm_mm_destroy(): __mmdrop() frees the mm's struct hmm. */
  hmm_mm_destroy(mm: MmStruct): void {
    const hmm = mm.hmm as HmmMm | null;
    if (!hmm) return;
    this.#kfree(hmm);
    mm.hmm = null;
  }

  #kfree(hmm: HmmMm): void {
    const buf = this.#slab.get(hmm);
    if (buf) this.#k.mm.kfree(buf);
    this.#slab.delete(hmm);
  }

  /** hmm_mirror_register(): -EINVAL without mm, mirror or ops; -ENOMEM. */
  hmm_mirror_register(mirror: HmmMirror | null, mm: MmStruct | null): number {
    if (!mm || !mirror || !mirror.ops) return -EINVAL;
    const hmm = this.#register(mm);
    if (!hmm) return -ENOMEM;
    mirror.hmm = hmm;
    hmm.mirrors.unshift(mirror); // list_add()
    return 0;
  }

  /** hmm_mirror_unregister(): the last mirror takes the notifier and the struct hmm with it. */
  hmm_mirror_unregister(mirror: HmmMirror): void {
    const hmm = mirror.hmm;
    if (!hmm) return;
    const i = hmm.mirrors.indexOf(mirror);
    if (i >= 0) hmm.mirrors.splice(i, 1);
    const shouldUnregister = hmm.mirrors.length === 0;
    mirror.hmm = null;
    const mm = hmm.mm;
    hmm.mm = null;
    if (!shouldUnregister || !mm) return;
    mm.mmu_notifier_mm.unregister_no_release(hmm.mmu_notifier);
    if (mm.hmm === hmm) mm.hmm = null;
    this.#kfree(hmm);
  }

  /** hmm_release(): the mm is torn down; each mirror is taken off the list and told. */
  #release(hmm: HmmMm): void {
    for (let mirror = hmm.mirrors.shift(); mirror; mirror = hmm.mirrors.shift()) mirror.ops.release?.(mirror);
  }

  /** hmm_invalidate_range(): invalidate the overlapping snapshots (zeroing their pfns), then,
   *  from invalidate_range_start, every mirror's sync_cpu_device_pagetables(). */
  #invalidate(hmm: HmmMm, device: boolean, r: MmuNotifierRange): number {
    const update: HmmUpdate = { start: r.start, end: r.end, event: HMM_UPDATE_INVALIDATE, blockable: r.blockable };
    for (const range of hmm.ranges) {
      if (update.end < range.start || update.start >= range.end) continue;
      range.valid = false;
      const addr = Math.max(update.start, range.start);
      const idx = (addr - range.start) / PAGE_SIZE;
      const npages = (Math.min(range.end, update.end) - addr) / PAGE_SIZE;
      range.pfns.fill(0, idx, idx + npages);
    }
    if (!device) return 0;
    for (const mirror of [...hmm.mirrors]) {
      const ret = mirror.ops.sync_cpu_device_pagetables(mirror, update);
      if (!update.blockable && ret === -11) return ret;
    }
    return 0;
  }

  /** The checks hmm_vma_get_pfns() and hmm_vma_fault() share; 0 or the error to return. */
  #check(range: HmmRange, fault: boolean): number {
    const vma = range.vma;
    if (range.start < vma.vm_start || range.start >= vma.vm_end) return -EINVAL;
    if (range.end < vma.vm_start || range.end > vma.vm_end) return -EINVAL;
    const hmm = this.#register(vma.vm_mm);
    if (!hmm) {
      if (fault) this.#fill(range, range.start, range.end, range.values[HMM_PFN_NONE]);
      return -ENOMEM;
    }
    // (vma_is_dax() too; kemu has no DAX files, and device-dax mappings are VM_MIXEDMAP.)
    if (vma.vm_flags & (VM_HUGETLB | VM_SPECIAL)) {
      this.#fill(range, range.start, range.end, range.values[HMM_PFN_SPECIAL]);
      return -EINVAL;
    }
    if (!(vma.vm_flags & VM_READ)) {
      this.#fill(range, range.start, range.end, range.values[HMM_PFN_NONE]);
      return -EPERM;
    }
    range.valid = true;
    hmm.ranges.push(range);
    return 0;
  }

  #fill(range: HmmRange, from: number, to: number, v: number): void {
    range.pfns.fill(v, (from - range.start) / PAGE_SIZE, (to - range.start) / PAGE_SIZE);
  }

  /**
   * hmm_vma_get_pfns(): snapshot the CPU page table for [start, end) without faulting. The
   * caller must call hmm_vma_range_done() once, which says whether the snapshot still holds.
   */
  hmm_vma_get_pfns(range: HmmRange): number {
    const err = this.#check(range, false);
    if (err) return err;
    this.#walk(range, range.start, null);
    return 0;
  }

  /** hmm_vma_range_done(): stop tracking the range; true when no invalidation hit it. */
  hmm_vma_range_done(range: HmmRange): boolean {
    if (range.end <= range.start) this.#k.bugs.bug({ file: "mm/hmm.c", func: "hmm_vma_range_done" });
    const hmm = this.#register(range.vma.vm_mm);
    if (!hmm) {
      range.pfns.fill(0);
      return false;
    }
    const i = hmm.ranges.indexOf(range);
    if (i >= 0) hmm.ranges.splice(i, 1);
    return range.valid;
  }

  /**
   * hmm_vma_fault(): like hmm_vma_get_pfns(), but first fault in what pfns[] asks for (VALID:
   * the page, WRITE: writable, DEVICE_PRIVATE: also migrate device memory back). -EFAULT when
   * a fault failed, -EBUSY when it returned VM_FAULT_RETRY; on error the rest of pfns[] is NONE
   * and the range is done.
   */
  hmm_vma_fault(range: HmmRange, block: boolean): number {
    const err = this.#check(range, true);
    if (err) return err;
    const walk = { block, last: range.start };
    let ret: number;
    let start = range.start;
    do {
      ret = this.#walk(range, start, walk);
      start = walk.last;
    } while (ret === -11); // -EAGAIN: faulted, walk again from where the fault began
    if (ret) {
      this.#fill(range, walk.last, range.end, range.values[HMM_PFN_NONE]);
      this.hmm_vma_range_done(range);
    }
    return ret;
  }

  /**
   * walk_page_range() with HMM's callbacks over [from, range.end). `fault` is null for a
   * snapshot. Returns 0, -EAGAIN after faulting (walk again from fault.last), -EFAULT, -EBUSY.
   */
  #walk(range: HmmRange, from: number, fault: { block: boolean; last: number } | null): number {
    const f = range.flags;
    const mm = range.vma.vm_mm;
    for (let addr = from; addr < range.end; ) {
      const pmdEnd = Math.min(range.end, (Math.floor(addr / PMD_SIZE) + 1) * PMD_SIZE);
      const table = mm.pmd_table(addr);
      if (!table) {
        // hmm_vma_walk_hole(): no page table; fault all of it if any page asks for it.
        let need: NeedFault = NO_FAULT;
        for (let a = addr; fault && a < pmdEnd && !need.write; a += PAGE_SIZE) need = orFault(need, needFault(range, range.pfns[(a - range.start) / PAGE_SIZE]!, 0));
        if (need.fault) return this.#faultFrom(range, addr, pmdEnd, need.write, fault!);
        this.#fill(range, addr, pmdEnd, range.values[HMM_PFN_NONE]);
        addr = pmdEnd;
        continue;
      }
      for (; addr < pmdEnd; addr += PAGE_SIZE) {
        const i = (addr - range.start) / PAGE_SIZE;
        const orig = range.pfns[i]!;
        const pte = table[pte_index(addr)]!;
        range.pfns[i] = range.values[HMM_PFN_NONE];
        let cpu = 0;
        let value = range.values[HMM_PFN_NONE];
        if (is_swap_pte(pte)) {
          const entry = pte_to_swp_entry(pte);
          if (non_swap_entry(entry)) {
            if (is_device_private_entry(entry)) {
              cpu = f[HMM_PFN_VALID] | f[HMM_PFN_DEVICE_PRIVATE] | (is_write_device_private_entry(entry) ? f[HMM_PFN_WRITE] : 0);
              value = hmm_pfn_from_pfn(range, swp_offset(entry)) + (cpu & ~f[HMM_PFN_VALID]);
            } else if (is_migration_entry(entry)) {
              // Skipped (NONE); a fault would wait for the migration to finish and walk again.
              if (fault && needFault(range, orig, 0).fault) {
                fault.last = addr;
                return -11;
              }
              continue;
            } else {
              range.pfns[i] = range.values[HMM_PFN_ERROR];
              return -EFAULT;
            }
          }
        } else if (!pte_none(pte)) {
          cpu = f[HMM_PFN_VALID] | (pte_write(pte) ? f[HMM_PFN_WRITE] : 0);
          value = hmm_pfn_from_pfn(range, pte_pfn(pte)) + (cpu & ~f[HMM_PFN_VALID]);
        }
        if (fault) {
          const need = needFault(range, orig, cpu);
          if (need.fault) return this.#faultFrom(range, addr, pmdEnd, need.write, fault);
        }
        range.pfns[i] = value;
      }
    }
    return 0;
  }

  /**
   * hmm_vma_walk_hole_() from a page that needs a fault: every page from `addr` to `end` (the
   * end of its page-table page or of the range) is set NONE and faulted, then the walk restarts.
   */
  #faultFrom(range: HmmRange, addr: number, end: number, write: boolean, walk: { block: boolean; last: number }): number {
    walk.last = addr;
    const flags = FAULT_FLAG_REMOTE | (walk.block ? 0 : FAULT_FLAG_ALLOW_RETRY) | (write ? FAULT_FLAG_WRITE : 0);
    for (let a = addr; a < end; a += PAGE_SIZE) {
      const i = (a - range.start) / PAGE_SIZE;
      range.pfns[i] = range.values[HMM_PFN_NONE];
      const r = handle_mm_fault(range.vma, a, flags);
      if (r & VM_FAULT_RETRY) return -EBUSY; // mmap_sem was dropped
      if (r & VM_FAULT_ERROR) {
        range.pfns[i] = range.values[HMM_PFN_ERROR];
        return -EFAULT;
      }
    }
    return -11; // -EAGAIN: walk again from walk.last
  }
}


interface NeedFault {
  readonly fault: boolean;
  readonly write: boolean;
}

/** hmm_pte_need_fault(): does the device's request `req` need a CPU fault, given `cpu`? */
function needFault(range: HmmRange, req: number, cpu: number): NeedFault {
  const f = range.flags;
  if (!hasBits(req, f[HMM_PFN_VALID])) return NO_FAULT;
  // Device memory is only faulted back when the request says so.
  if (cpu & f[HMM_PFN_DEVICE_PRIVATE]) {
    if (hasBits(req, f[HMM_PFN_DEVICE_PRIVATE])) return { fault: true, write: hasBits(req, f[HMM_PFN_WRITE]) };
    return NO_FAULT;
  }
  const write = hasBits(req, f[HMM_PFN_WRITE]) && !(cpu & f[HMM_PFN_WRITE]);
  return { fault: write || !(cpu & f[HMM_PFN_VALID]), write };
}

const NO_FAULT: NeedFault = Object.freeze({ fault: false, write: false });

function orFault(a: NeedFault, b: NeedFault): NeedFault {
  return { fault: a.fault || b.fault, write: a.write || b.write };
}
