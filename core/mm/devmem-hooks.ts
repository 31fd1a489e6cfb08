// The device-memory hooks (DESIGN principle 5): a CPU fault on a device-private page and the
// return of a device page to its driver go through per-pgmap tapable hooks. When a pgmap is
// registered its owner's callbacks become taps named after the owning module (or "kernel");
// host observers (tracers, tests) tap the same hooks, e.g. with a lower stage to see every
// call first, returning undefined so the owner still answers.

import { HookMap, SyncBailHook, SyncHook } from "tapable";
import type { Page } from "./memmap.ts";

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
