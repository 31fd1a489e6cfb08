// HMM mirror (mm/hmm.c, 4.19-5.0; spec mm-hmm R4.1, R4.2): a device mirrors a process's page
// tables. hmm_mirror_register() hangs one struct hmm with one mmu notifier on the mm; every
// invalidation of the CPU page tables invalidates the snapshots (hmm_range) it overlaps and is
// passed to each mirror's sync_cpu_device_pagetables(). hmm_vma_get_pfns() snapshots a range
// of a vma without faulting, hmm_vma_fault() faults what the device asks for first.
//
// 4.20 and 5.0 behave alike here (5.0 only passes the notifier range as a struct). Their bugs
// are kept, because a driver tested against kemu meets them as it would on those kernels:
// - hmm_mirror_unregister() clears hmm->mm even while other mirrors remain; the last
//   unregister then sees no mm and returns early: the notifier stays registered (holding its
//   mm_count reference, so the mm_struct and the struct hmm outlive the process), and a later
//   hmm_mirror_register() on that mm spins in its "racing unregister" retry loop forever.
// - The notifier's mmgrab() (__mmu_notifier_register) is only dropped by the unregister of
//   the last mirror; when that is the mm's last reference, __mmdrop()'s hmm_mm_destroy() frees
//   the struct hmm and hmm_mirror_unregister() frees it again.
// - hmm_vma_fault() faults every page from the first one that needs a fault to the end of its
//   page-table walk step (the rest of the pmd, or of the whole hole when there is no page
//   table), with the first such page's write flag, overwriting those pages' requests with
//   NONE; on error it sets NONE from where that step began, over the ERROR it just stored.
//
// The walk follows walk_page_range()'s levels: kemu keeps only pte tables, so a pmd counts as
// present when its pte table exists, a pud when any pte table under its 1 GiB does, and a pgd
// entry when any under its 512 GiB does (that is also what VmPTE counts).

import { EAGAIN, EBUSY, EFAULT, EINVAL, ENOMEM, EPERM } from "../errno.ts";
import type { Kernel } from "../kernel.ts";
import { HungTaskError } from "../kernel/sched.ts";
import { mmdrop, mmgrab } from "../kernel/fork.ts";
import { TAINT_SOFTLOCKUP } from "../taint.ts";
import { NSEC_PER_SEC } from "../clock.ts";
import type { KBuf } from "./slab.ts";
import { PAGE_SIZE, type Page } from "./memmap.ts";
import { MmuNotifier, type MmuNotifierOps, type MmuNotifierRange } from "./mmu_notifier.ts";
import { _PAGE_PRESENT, _PAGE_RW, pte_pfn, pte_to_swp_entry } from "./pgtable.ts";
import { is_device_private_entry, is_migration_entry, is_write_device_private_entry, non_swap_entry, swp_offset } from "./swapops.ts";
import {
  FAULT_FLAG_ALLOW_RETRY, FAULT_FLAG_REMOTE, FAULT_FLAG_WRITE, VM_FAULT_ERROR, VM_FAULT_RETRY, handle_mm_fault, migration_entry_wait,
} from "./memory.ts";
import { pmd_addr_end, pmd_index, PMD_SIZE, pte_index, PTRS_PER_PTE, VM_HUGETLB, VM_READ, VM_SPECIAL, type MmStruct, type VmArea } from "./mm_types.ts";

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
  readonly ops: HmmMirrorOps | null;
  constructor(ops: HmmMirrorOps | null) {
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
  /** The driver's bits for VALID, WRITE, DEVICE_PRIVATE (below 2^pfn_shift and 2^32). */
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

/** The flag bits of an entry (flags live below pfn_shift, within the low 32 bits). */
function low(v: number): number {
  return v % 4294967296 | 0;
}

/** hmm_pfn_from_pfn(): the range's encoding of a valid pfn. */
export function hmm_pfn_from_pfn(range: HmmRange, pfn: number): number {
  return pfn * 2 ** range.pfn_shift + range.flags[HMM_PFN_VALID];
}
/** hmm_pfn_from_page() */
export function hmm_pfn_from_page(range: HmmRange, page: Page): number {
  return hmm_pfn_from_pfn(range, page);
}

/** hmm_pfn_to_pfn(): -1 for the special values or when VALID is clear. */
export function hmm_pfn_to_pfn(range: HmmRange, v: number): number {
  if (v === range.values[HMM_PFN_NONE] || v === range.values[HMM_PFN_ERROR] || v === range.values[HMM_PFN_SPECIAL]) return -1;
  if (!(low(v) & range.flags[HMM_PFN_VALID])) return -1;
  return Math.floor(v / 2 ** range.pfn_shift);
}
/** hmm_pfn_to_page(): the struct page (its pfn in kemu), or -1 for NULL. */
export function hmm_pfn_to_page(range: HmmRange, v: number): Page {
  return hmm_pfn_to_pfn(range, v);
}

/** sizeof(struct hmm) in 4.20/5.0: mm, lock, ranges, mirrors, mmu_notifier, mirrors_sem. */
const SIZEOF_HMM = 112;

/** struct hmm: one per mm with mirrors. */
export class HmmMm {
  /** 4.19/4.20/5.0 hmm_mirror_unregister() clears it even when other mirrors remain (R4.1). */
  mm: MmStruct | null;
  /** The mirrors list, head first (list_add() puts a new one at the head). */
  readonly mirrors: HmmMirror[] = [];
  /** The ranges being snapshotted, head first. */
  readonly ranges: HmmRange[] = [];
  readonly mmu_notifier: MmuNotifier;
  /** The kmalloc() behind the struct. */
  readonly buf: KBuf;
  constructor(mm: MmStruct, notifier: MmuNotifier, buf: KBuf) {
    this.mm = mm;
    this.mmu_notifier = notifier;
    this.buf = buf;
  }
}

/** struct hmm_vma_walk, with the walk's own state. */
interface HmmVmaWalk {
  readonly range: HmmRange;
  last: number;
  readonly fault: boolean;
  readonly block: boolean;
  /** hmm_pte_need_fault()'s two out-parameters. */
  needFault: boolean;
  needWrite: boolean;
}

const PUD_SIZE = PMD_SIZE * PTRS_PER_PTE;
const PGDIR_SIZE = PUD_SIZE * PTRS_PER_PTE;

export class HmmMirrors {
  readonly #k: Kernel;
  /** hmm_mmu_notifier_ops */
  readonly #ops: MmuNotifierOps;

  constructor(k: Kernel) {
    this.#k = k;
    const self = this;
    this.#ops = Object.freeze({
      release(_mn: MmuNotifier, mm: object) {
        self.#release(mm as MmStruct);
      },
      invalidate_range_start(_mn: MmuNotifier, r: MmuNotifierRange) {
        return self.#invalidate_range_start(r);
      },
      invalidate_range_end(_mn: MmuNotifier, r: MmuNotifierRange) {
        self.#invalidate_range_end(r);
      },
    });
  }

  /**
   * hmm_register(): the mm's struct hmm, created on first use: mm->hmm is set first, then the
   * notifier is registered (__mmu_notifier_register() pins the mm with mmgrab()). Any caller
   * creates it, hmm_vma_*() included. null for -ENOMEM.
   */
  #register(mm: MmStruct): HmmMm | null {
    const cur = mm.hmm as HmmMm | null;
    if (cur) return cur;
    const buf = this.#k.mm.kmalloc(SIZEOF_HMM, undefined, "hmm");
    if (!buf) return null;
    const hmm = new HmmMm(mm, new MmuNotifier(this.#ops), buf);
    mm.hmm = hmm;
    // __mmu_notifier_register()
    mmgrab(mm);
    mm.mmu_notifier_mm.register(hmm.mmu_notifier);
    return mm.hmm as HmmMm;
  }

  /** hmm_mm_destroy(): __mmdrop() frees the mm's struct hmm: kfree(mm->hmm). */
  hmm_mm_destroy(mm: MmStruct): void {
    const hmm = mm.hmm as HmmMm | null;
    if (hmm) this.#k.mm.kfree(hmm.buf);
  }

  /** hmm_mirror_register() (the caller holds mmap_sem for write): -EINVAL without mm, mirror
   *  or ops; -ENOMEM. */
  hmm_mirror_register(mirror: HmmMirror | null, mm: MmStruct | null): number {
    if (!mm || !mirror || !mirror.ops) return -EINVAL;
    let stale: HmmMm | null = null;
    for (;;) {
      const hmm = this.#register(mm);
      mirror.hmm = hmm;
      if (!hmm) return -ENOMEM;
      if (hmm.mm !== null) {
        hmm.mirrors.unshift(mirror); // list_add()
        return 0;
      }
      // "A racing hmm_mirror_unregister() is about to destroy the hmm struct. Try again to
      // allocate a new one." Nothing is racing: after the double-unregister bug mm->hmm
      // keeps pointing at this struct, so the retry returns it again, forever.
      mirror.hmm = null;
      if (stale === hmm) this.#softLockup("hmm_mirror_register");
      stale = hmm;
    }
  }

  /** The soft-lockup watchdog on a loop that never ends; the looping host call is unwound. */
  #softLockup(where: string): never {
    const k = this.#k;
    const t = k.sched.current;
    k.clock.advance(22 * NSEC_PER_SEC);
    k.printk(`\x010watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [${t.comm}:${t.pid}]\n`);
    k.taint.add(TAINT_SOFTLOCKUP, "LOCKDEP_STILL_OK");
    throw new HungTaskError(t, where);
  }

  /** hmm_mirror_unregister(): the last mirror takes the notifier and the struct hmm with it. */
  hmm_mirror_unregister(mirror: HmmMirror): void {
    const hmm = mirror.hmm;
    if (hmm === null) return;
    const i = hmm.mirrors.indexOf(mirror);
    if (i >= 0) hmm.mirrors.splice(i, 1); // list_del_init()
    const should_unregister = hmm.mirrors.length === 0;
    mirror.hmm = null;
    const mm = hmm.mm;
    hmm.mm = null;
    if (!should_unregister || mm === null) return;
    // mmu_notifier_unregister_no_release(): unhash, then drop the registration's mmgrab().
    // When that was the mm's last reference, __mmdrop() runs hmm_mm_destroy() right here.
    mm.mmu_notifier_mm.unregister_no_release(hmm.mmu_notifier);
    mmdrop(mm);
    // (On a freed mm the kernel reads a stale mm->hmm here; kemu's freed mm has none.)
    if (mm.hmm === hmm) mm.hmm = null;
    this.#k.mm.kfree(hmm.buf);
  }

  /** hmm_release(): the mm is torn down; each mirror is taken off the list and told. */
  #release(mm: MmStruct): void {
    const hmm = mm.hmm as HmmMm;
    for (let mirror = hmm.mirrors.shift(); mirror; mirror = hmm.mirrors.shift()) mirror.ops!.release?.(mirror);
  }

  #invalidate_range_start(r: MmuNotifierRange): number {
    const hmm = (r.mm as MmStruct).hmm as HmmMm;
    return this.#invalidate(hmm, true, { start: r.start, end: r.end, event: HMM_UPDATE_INVALIDATE, blockable: r.blockable });
  }

  #invalidate_range_end(r: MmuNotifierRange): void {
    const hmm = (r.mm as MmStruct).hmm as HmmMm;
    // Only the snapshots: the device was told at the start (4.20 "invalidate device page
    // table at start of invalidation").
    if (hmm.ranges.length !== 0) this.#invalidate(hmm, false, { start: r.start, end: r.end, event: HMM_UPDATE_INVALIDATE, blockable: true });
  }

  /** hmm_invalidate_range(): invalidate the overlapping snapshots (zeroing their pfns: 0, not
   *  the NONE value), then, from invalidate_range_start, every mirror's sync callback. */
  #invalidate(hmm: HmmMm, device: boolean, update: HmmUpdate): number {
    const ranges = hmm.ranges;
    for (let j = 0; j < ranges.length; j++) {
      const range = ranges[j]!;
      // (An update ending exactly at range->start counts, and zeroes nothing.)
      if (update.end < range.start || update.start >= range.end) continue;
      range.valid = false;
      const addr = Math.max(update.start, range.start);
      const idx = (addr - range.start) / PAGE_SIZE;
      const npages = Math.floor((Math.min(range.end, update.end) - addr) / PAGE_SIZE);
      range.pfns.fill(0, idx, idx + npages);
    }
    if (!device) return 0;
    const mirrors = hmm.mirrors;
    for (let j = 0; j < mirrors.length; j++) {
      const mirror = mirrors[j]!;
      const ret = mirror.ops!.sync_cpu_device_pagetables(mirror, update);
      if (!update.blockable && ret === -EAGAIN) return -EAGAIN;
    }
    return 0;
  }

  /**
   * The checks hmm_vma_get_pfns() and hmm_vma_fault() share, in their order: the range must
   * lie in the vma; hmm_register() (which creates the struct hmm and its notifier if no mirror
   * did); hugetlb and VM_SPECIAL vmas; vmas without VM_READ. Returns the struct hmm, or the
   * error to return.
   */
  #check(range: HmmRange, fault: boolean): HmmMm | number {
    const vma = range.vma;
    if (range.start < vma.vm_start || range.start >= vma.vm_end) return -EINVAL;
    if (range.end < vma.vm_start || range.end > vma.vm_end) return -EINVAL;
    const hmm = this.#register(vma.vm_mm);
    if (!hmm) {
      if (fault) this.#fill(range, range.start, range.end, range.values[HMM_PFN_NONE]);
      return -ENOMEM;
    }
    // "Caller must have registered a mirror": never true, hmm_register() just set the ops.
    if (!hmm.mmu_notifier.ops) return -EINVAL;
    // (vma_is_dax() too: kemu has no DAX filesystem and no device-dax file mappings.)
    if (vma.vm_flags & (VM_HUGETLB | VM_SPECIAL)) {
      this.#fill(range, range.start, range.end, range.values[HMM_PFN_SPECIAL]);
      return -EINVAL;
    }
    if (!(vma.vm_flags & VM_READ)) {
      this.#fill(range, range.start, range.end, range.values[HMM_PFN_NONE]);
      return -EPERM;
    }
    range.valid = true;
    hmm.ranges.unshift(range); // list_add_rcu()
    return hmm;
  }

  /** hmm_pfns_clear() / hmm_pfns_special(): `v` for every page of [from, to). */
  #fill(range: HmmRange, from: number, to: number, v: number): void {
    if (to > from) range.pfns.fill(v, (from - range.start) / PAGE_SIZE, (to - range.start) / PAGE_SIZE);
  }

  /**
   * hmm_vma_get_pfns(): snapshot the CPU page table for [start, end) without faulting. On 0
   * the caller must call hmm_vma_range_done() once, which says whether the snapshot held.
   */
  hmm_vma_get_pfns(range: HmmRange): number {
    const hmm = this.#check(range, false);
    if (typeof hmm === "number") return hmm;
    const walk: HmmVmaWalk = { range, last: range.start, fault: false, block: false, needFault: false, needWrite: false };
    // The walk's result is ignored: an error entry stops it, the call still succeeds.
    this.#walk_page_range(walk, range.start, range.end);
    return 0;
  }

  /** hmm_vma_range_done(): stop tracking the range; true when no invalidation hit it. */
  hmm_vma_range_done(range: HmmRange): boolean {
    if (range.end <= range.start) this.#k.bugs.bug({ file: "mm/hmm.c", func: "hmm_vma_range_done" });
    const hmm = this.#register(range.vma.vm_mm);
    if (!hmm) {
      range.pfns.fill(0, 0, (range.end - range.start) / PAGE_SIZE);
      return false;
    }
    const i = hmm.ranges.indexOf(range);
    if (i >= 0) hmm.ranges.splice(i, 1);
    return range.valid;
  }

  /**
   * hmm_vma_fault(): like hmm_vma_get_pfns(), but first fault in what pfns[] asks for (VALID:
   * the page, WRITE: writable, DEVICE_PRIVATE: also migrate device memory back). -EFAULT when
   * a fault failed, -EBUSY when it returned VM_FAULT_RETRY; on error pfns[] is NONE from where
   * the failing walk step began to the end, and the range is done.
   */
  hmm_vma_fault(range: HmmRange, block: boolean): number {
    const hmm = this.#check(range, true);
    if (typeof hmm === "number") return hmm;
    const walk: HmmVmaWalk = { range, last: range.start, fault: true, block, needFault: false, needWrite: false };
    let start = range.start;
    let ret: number;
    do {
      ret = this.#walk_page_range(walk, start, range.end);
      start = walk.last;
    } while (ret === -EAGAIN);
    if (ret) {
      this.#fill(range, walk.last, range.end, range.values[HMM_PFN_NONE]);
      this.hmm_vma_range_done(range);
    }
    return ret;
  }

  /**
   * walk_page_range() over [start, end) of the range's vma with HMM's callbacks: pte_hole
   * for each empty pgd, pud or pmd entry (as far as that entry reaches), pmd_entry for each pte
   * table. Returns the first callback error.
   */
  #walk_page_range(walk: HmmVmaWalk, start: number, end: number): number {
    if (start >= end) return -EINVAL;
    const mm = walk.range.vma.vm_mm;
    for (let addr = start; addr < end; ) {
      const table = mm.pgd.get(pmd_index(addr));
      let next: number;
      let err: number;
      if (table === undefined) {
        next = holeEnd(mm, addr, end);
        err = this.#hmm_vma_walk_hole(walk, addr, next);
      } else {
        next = pmd_addr_end(addr, end);
        err = this.#hmm_vma_walk_pmd(walk, table, addr, next);
      }
      if (err) return err;
      addr = next;
    }
    return 0;
  }

  /** hmm_vma_walk_hole(): no page table: fault all of it if any page asks for a fault. */
  #hmm_vma_walk_hole(walk: HmmVmaWalk, addr: number, end: number): number {
    this.#hmm_range_need_fault(walk, addr, end, 0);
    return this.#hmm_vma_walk_hole_(walk, addr, end);
  }

  /**
   * hmm_vma_walk_hole_(): every page of [addr, end) is set NONE and, when a fault is needed
   * (walk.needFault/needWrite, as hmm_pte_need_fault() left them), faulted (all with the same
   * write flag) — requested or not. -EAGAIN after faulting (the walk restarts at `last`, where
   * the requests are gone), or the fault's error.
   */
  #hmm_vma_walk_hole_(walk: HmmVmaWalk, addr: number, end: number): number {
    const fault = walk.needFault;
    const write = walk.needWrite;
    const range = walk.range;
    const pfns = range.pfns;
    const none = range.values[HMM_PFN_NONE];
    walk.last = addr;
    for (let i = (addr - range.start) / PAGE_SIZE; addr < end; addr += PAGE_SIZE, i++) {
      pfns[i] = none;
      if (fault || write) {
        const ret = this.#hmm_vma_do_fault(walk, addr, write, i);
        if (ret !== -EAGAIN) return ret;
      }
    }
    return fault || write ? -EAGAIN : 0;
  }

  /** hmm_vma_do_fault(): handle_mm_fault() on the device's behalf. ALLOW_RETRY is set even
   *  when blocking (4.20 sets it, then ORs it again unless block). */
  #hmm_vma_do_fault(walk: HmmVmaWalk, addr: number, write: boolean, i: number): number {
    const flags = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_REMOTE | (walk.block ? 0 : FAULT_FLAG_ALLOW_RETRY) | (write ? FAULT_FLAG_WRITE : 0);
    const ret = handle_mm_fault(walk.range.vma, addr, flags);
    if (ret & VM_FAULT_RETRY) return -EBUSY;
    if (ret & VM_FAULT_ERROR) {
      walk.range.pfns[i] = walk.range.values[HMM_PFN_ERROR];
      return -EFAULT;
    }
    return -EAGAIN;
  }

  /**
   * hmm_pte_need_fault(): does the request `req` need a CPU fault, given the CPU's `cpu`
   * flags? Sets walk.needFault / walk.needWrite. Device memory is only faulted back when the
   * request says DEVICE_PRIVATE (then a write request makes it a write fault).
   */
  #hmm_pte_need_fault(walk: HmmVmaWalk, req: number, cpu: number): void {
    walk.needFault = walk.needWrite = false;
    if (!walk.fault) return;
    const f = walk.range.flags;
    const r = low(req);
    if (!(r & f[HMM_PFN_VALID])) return;
    if (cpu & f[HMM_PFN_DEVICE_PRIVATE]) {
      if (r & f[HMM_PFN_DEVICE_PRIVATE]) {
        walk.needWrite = (r & f[HMM_PFN_WRITE]) !== 0;
        walk.needFault = true;
      }
      return;
    }
    walk.needFault = !(cpu & f[HMM_PFN_VALID]);
    if (r & f[HMM_PFN_WRITE] && !(cpu & f[HMM_PFN_WRITE])) walk.needWrite = walk.needFault = true;
  }

  /** hmm_range_need_fault(): the first page of [addr, end) that needs a fault decides. */
  #hmm_range_need_fault(walk: HmmVmaWalk, addr: number, end: number, cpu: number): void {
    walk.needFault = walk.needWrite = false;
    if (!walk.fault) return;
    const range = walk.range;
    const pfns = range.pfns;
    for (let i = (addr - range.start) / PAGE_SIZE, n = i + (end - addr) / PAGE_SIZE; i < n; i++) {
      this.#hmm_pte_need_fault(walk, pfns[i]!, cpu);
      if (walk.needFault || walk.needWrite) return;
    }
  }

  /** hmm_vma_walk_pmd(): a pte table: each pte in turn; `last` ends at the failing pte. */
  #hmm_vma_walk_pmd(walk: HmmVmaWalk, table: Float64Array, start: number, end: number): number {
    let addr = start;
    for (; addr < end; addr += PAGE_SIZE) {
      const r = this.#hmm_vma_handle_pte(walk, addr, end, table[pte_index(addr)]!);
      if (r) {
        walk.last = addr;
        return r;
      }
    }
    walk.last = addr;
    return 0;
  }

  /** hmm_vma_handle_pte(): one pte's value, or the fault of it and the rest of the step. */
  #hmm_vma_handle_pte(walk: HmmVmaWalk, addr: number, end: number, pte: number): number {
    const range = walk.range;
    const f = range.flags;
    const i = (addr - range.start) / PAGE_SIZE;
    const orig = range.pfns[i]!;
    range.pfns[i] = range.values[HMM_PFN_NONE];
    const fl = pte % PAGE_SIZE;
    // pte_to_hmm_pfn_flags(): 0 for none and non-present ptes.
    let cpu = fl & _PAGE_PRESENT ? f[HMM_PFN_VALID] | (fl & _PAGE_RW ? f[HMM_PFN_WRITE] : 0) : 0;
    this.#hmm_pte_need_fault(walk, orig, cpu);
    if (pte === 0) {
      if (walk.needFault || walk.needWrite) return this.#hmm_vma_walk_hole_(walk, addr, end);
      return 0;
    }
    if (!(fl & _PAGE_PRESENT)) {
      const entry = pte_to_swp_entry(pte);
      if (!non_swap_entry(entry)) {
        // A real swap entry (kemu never makes one): fault it in if asked.
        if (walk.needFault || walk.needWrite) return this.#hmm_vma_walk_hole_(walk, addr, end);
        return 0;
      }
      // A special swap entry: use device memory, ignore migration, report anything else.
      if (is_device_private_entry(entry)) {
        cpu = f[HMM_PFN_VALID] | f[HMM_PFN_DEVICE_PRIVATE] | (is_write_device_private_entry(entry) ? f[HMM_PFN_WRITE] : 0);
        this.#hmm_pte_need_fault(walk, orig, cpu);
        if (walk.needFault || walk.needWrite) return this.#hmm_vma_walk_hole_(walk, addr, end);
        range.pfns[i] = swp_offset(entry) * 2 ** range.pfn_shift + (f[HMM_PFN_VALID] | cpu);
        return 0;
      }
      if (is_migration_entry(entry)) {
        if (walk.needFault || walk.needWrite) {
          walk.last = addr;
          migration_entry_wait(range.vma.vm_mm, addr, pte);
          return -EAGAIN;
        }
        return 0;
      }
      range.pfns[i] = range.values[HMM_PFN_ERROR];
      return -EFAULT;
    }
    if (walk.needFault || walk.needWrite) return this.#hmm_vma_walk_hole_(walk, addr, end);
    range.pfns[i] = pte_pfn(pte) * 2 ** range.pfn_shift + (f[HMM_PFN_VALID] | cpu);
    return 0;
  }
}

/**
 * How far the empty page-table entry at `addr` reaches (at most `end`): the pgd entry's
 * 512 GiB when no pte table lies under it, else the pud's 1 GiB when none lies under that,
 * else the pmd's 2 MiB.
 */
function holeEnd(mm: MmStruct, addr: number, end: number): number {
  for (const size of [PGDIR_SIZE, PUD_SIZE]) {
    const lo = Math.floor(addr / size) * size;
    const hi = lo + size;
    if (!anyTable(mm, lo, hi)) return Math.min(end, hi);
  }
  return pmd_addr_end(addr, end);
}

/** Is there a pte table for any address of [lo, hi)? */
function anyTable(mm: MmStruct, lo: number, hi: number): boolean {
  const a = lo / PMD_SIZE;
  const b = hi / PMD_SIZE;
  if (b - a <= mm.pgd.size) {
    for (let i = a; i < b; i++) if (mm.pgd.has(i)) return true;
    return false;
  }
  for (const i of mm.pgd.keys()) if (i >= a && i < b) return true;
  return false;
}
