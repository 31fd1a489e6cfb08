// The device-memory and mm hooks (DESIGN principle 5): a CPU fault on a device-private page and
// the return of a device page to its driver go through per-pgmap tapable hooks; every handled
// fault and every invalidation of a user range is announced on the mm hooks. When a pgmap is
// registered its owner's callbacks become taps named after the owning module (or "kernel");
// host observers (tracers, tests) tap the same hooks, e.g. with a lower stage to see every
// call first, returning undefined so the owner still answers.

import { HookMap, SyncBailHook, SyncHook } from "tapable";
import type { Page } from "./memmap.ts";
import type { VmArea, vm_fault_t } from "./mm_types.ts";
import type { MmuNotifierRange } from "./mmu_notifier.ts";

/** The CPU fault on a device-private page: (vma, address, page, flags) -> vm_fault_t, or
 *  undefined from a tap that only observes. */
export type DevmemFaultHook = SyncBailHook<[vma: unknown, address: number, page: Page, flags: number], number | undefined>;
/** A device page's refcount dropped back to 1: (page). */
export type DevmemFreeHook = SyncHook<[page: Page]>;

export interface DevmemHooks {
  /** Keyed by the pgmap's id (the value page->pgmap holds). */
  readonly fault: HookMap<DevmemFaultHook>;
  readonly free: HookMap<DevmemFreeHook>;
}

export function devmemHooks(): DevmemHooks {
  return Object.freeze({
    fault: new HookMap<DevmemFaultHook>(() => new SyncBailHook(["vma", "address", "page", "flags"])),
    free: new HookMap<DevmemFreeHook>(() => new SyncHook(["page"])),
  });
}

export interface MmHooks {
  /** After handle_mm_fault(): (vma, address, flags, result). */
  readonly fault: SyncHook<[vma: VmArea, address: number, flags: number, ret: vm_fault_t]>;
  /** mmu_notifier_invalidate_range_start(): the range about to change, before any notifier. */
  readonly invalidate: SyncHook<[range: MmuNotifierRange]>;
}

export function mmHooks(): MmHooks {
  return Object.freeze({
    fault: new SyncHook<[VmArea, number, number, vm_fault_t]>(["vma", "address", "flags", "ret"]),
    invalidate: new SyncHook<[MmuNotifierRange]>(["range"]),
  });
}
