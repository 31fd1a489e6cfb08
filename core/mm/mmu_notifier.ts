// MMU notifiers (mm/mmu_notifier.c, 4.19-5.0): secondary MMUs (a device mirroring a process's
// page tables) hear about every change of the primary one. Each invalidation of [start, end)
// calls invalidate_range_start before the ptes change and invalidate_range_end after;
// release is called once, when the address space is torn down (exit_mmap) or at unregister.

import type { Kernel } from "../kernel.ts";

/** struct mmu_notifier_range (5.0; 4.19/4.20 pass the same fields as arguments). */
export interface MmuNotifierRange {
  readonly mm: object;
  readonly start: number;
  readonly end: number;
  readonly blockable: boolean;
}

export interface MmuNotifierOps {
  /** The mm is going away: stop using it. */
  release?(mn: MmuNotifier, mm: object): void;
  /** Before [start, end) changes; 0, or -EAGAIN only when !blockable and it would block. */
  invalidate_range_start?(mn: MmuNotifier, range: MmuNotifierRange): number;
  invalidate_range_end?(mn: MmuNotifier, range: MmuNotifierRange): void;
}

/** struct mmu_notifier: embedded by its user (HMM embeds one per mm). */
export class MmuNotifier {
  readonly ops: MmuNotifierOps;
  constructor(ops: MmuNotifierOps) {
    this.ops = ops;
  }
}

/** struct mmu_notifier_mm: the notifiers of one mm. */
export class MmuNotifierMm {
  readonly #k: Kernel;
  readonly list: MmuNotifier[] = [];
  constructor(k: Kernel) {
    this.#k = k;
  }

  /** mmu_notifier_register(): add `mn` (the mm's users hold the mm). */
  register(mn: MmuNotifier): number {
    this.list.push(mn);
    return 0;
  }

  /** mmu_notifier_unregister(): call ->release unless __mmu_notifier_release() already did,
   *  then remove it. */
  unregister(mn: MmuNotifier, mm: object): void {
    const i = this.list.indexOf(mn);
    if (i < 0) return;
    mn.ops.release?.(mn, mm);
    this.list.splice(i, 1);
  }

  /** mmu_notifier_unregister_no_release() */
  unregister_no_release(mn: MmuNotifier): void {
    const i = this.list.indexOf(mn);
    if (i >= 0) this.list.splice(i, 1);
  }

  /** __mmu_notifier_release(): exit_mmap() tells every notifier, which is then unhashed. */
  release(mm: object): void {
    for (const mn of this.list.splice(0)) mn.ops.release?.(mn, mm);
  }

  /** __mmu_notifier_invalidate_range_start(): every notifier, in order; a failure is reported
   *  and returned, the others are still called. */
  invalidate_range_start(range: MmuNotifierRange): number {
    let ret = 0;
    for (const mn of [...this.list]) {
      const fn = mn.ops.invalidate_range_start;
      if (!fn) continue;
      const r = fn.call(mn.ops, mn, range);
      if (r) {
        this.#k.printk(`\x016${this.#k.symbolName(fn)} callback failed with ${r} in ${range.blockable ? "" : "non-"}blockable context.\n`);
        ret = r;
      }
    }
    return ret;
  }

  /** __mmu_notifier_invalidate_range_end() */
  invalidate_range_end(range: MmuNotifierRange): void {
    for (const mn of [...this.list]) mn.ops.invalidate_range_end?.call(mn.ops, mn, range);
  }
}
